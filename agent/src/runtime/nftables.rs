//! nftables rules for workloads with host ports, used when `nft` is on the host's `PATH`
//! (see [`super::host::HostFeatures`]).
//!
//! Everything lives in the table `inet flotta`. Each workload with `hostPort`s gets its own
//! base chain `workload-<name>` (hook `input`, priority `filter`, policy `accept`) holding
//! one `accept` rule per port and protocol; removing the workload deletes the chain. Each
//! change is one `nft -f -` script, so it applies atomically, and both scripts are
//! idempotent (they declare the table and chain before flushing or deleting). Limits: an
//! `accept` in one nftables table does not override a `drop` in another table hooked at
//! `input` (nftables evaluates every base chain), so on a host whose own firewall drops
//! by default the ports must also be opened there; these rules make the ports explicit
//! and are what a host policy can be built around.

use std::sync::Arc;

use serde_json::Value;

use super::RuntimeError;
use super::host::HostCommand;

/// The table holding the agent's rules.
pub const TABLE: &str = "inet flotta";

/// A host port of a workload.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostPort {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: &'static str,
    /// The port number.
    pub port: u16,
}

/// The host ports of a Kubernetes Pod manifest (`spec.containers[].ports[].hostPort`,
/// protocol `TCP` unless given), sorted and without duplicates.
pub fn host_ports(pod: &Value) -> Vec<HostPort> {
    let mut ports: Vec<HostPort> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|container| container["ports"].as_array().into_iter().flatten())
        .filter_map(|port| {
            let number = u16::try_from(port["hostPort"].as_u64()?).ok()?;
            let protocol = match port["protocol"].as_str().unwrap_or("TCP") {
                "UDP" => "udp",
                "SCTP" => "sctp",
                _ => "tcp",
            };
            (number != 0).then_some(HostPort {
                protocol,
                port: number,
            })
        })
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

/// The chain of workload `workload`.
pub fn chain_name(workload: &str) -> String {
    format!("workload-{workload}")
}

fn declare(workload: &str) -> String {
    let chain = chain_name(workload);
    format!(
        "add table {TABLE}\n\
         add chain {TABLE} {chain} {{ type filter hook input priority filter; policy accept; }}\n\
         flush chain {TABLE} {chain}\n"
    )
}

/// The `nft -f` script giving workload `workload` exactly the rules for `ports`.
pub fn apply_script(workload: &str, ports: &[HostPort]) -> String {
    let chain = chain_name(workload);
    let mut script = declare(workload);
    for HostPort { protocol, port } in ports {
        script.push_str(&format!(
            "add rule {TABLE} {chain} {protocol} dport {port} accept comment \"flotta workload {workload}\"\n"
        ));
    }
    script
}

/// The `nft -f` script deleting the rules of workload `workload` (present or not).
pub fn remove_script(workload: &str) -> String {
    format!(
        "{}delete chain {TABLE} {}\n",
        declare(workload),
        chain_name(workload)
    )
}

/// Applies and removes workload rules through a [`HostCommand`] running `nft`.
#[derive(Clone, Debug)]
pub struct NftRules {
    command: Arc<dyn HostCommand>,
}

impl NftRules {
    /// Rules applied by running `nft` through `command`.
    pub fn new(command: Arc<dyn HostCommand>) -> Self {
        Self { command }
    }

    async fn nft(&self, script: String) -> Result<(), RuntimeError> {
        let args = ["-f".to_owned(), "-".to_owned()];
        self.command
            .run("nft", &args, Some(script.as_bytes()))
            .await
            .map(|_| ())
    }

    /// Makes the rules of `workload` those of `ports`; with no ports, removes them.
    pub async fn apply(&self, workload: &str, ports: &[HostPort]) -> Result<(), RuntimeError> {
        if ports.is_empty() {
            return self.remove(workload).await;
        }
        self.nft(apply_script(workload, ports)).await
    }

    /// Removes the rules of `workload`.
    pub async fn remove(&self, workload: &str) -> Result<(), RuntimeError> {
        self.nft(remove_script(workload)).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::host::double::RecordingHost;
    use super::*;

    #[test]
    fn host_ports_come_from_the_containers() {
        let pod = json!({"spec": {"containers": [
            {"ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"}]},
            {"ports": [{"containerPort": 9000}, {"containerPort": 80, "hostPort": 8080}]},
            {"name": "no-ports"},
        ]}});
        assert_eq!(
            host_ports(&pod),
            [
                HostPort {
                    protocol: "tcp",
                    port: 8080
                },
                HostPort {
                    protocol: "udp",
                    port: 5353
                },
            ]
        );
        assert!(host_ports(&json!({"spec": {}})).is_empty());
    }

    #[test]
    fn scripts_declare_flush_and_fill_the_chain() {
        let ports = [
            HostPort {
                protocol: "tcp",
                port: 8080,
            },
            HostPort {
                protocol: "udp",
                port: 5353,
            },
        ];
        assert_eq!(
            apply_script("web", &ports),
            "add table inet flotta\n\
             add chain inet flotta workload-web { type filter hook input priority filter; policy accept; }\n\
             flush chain inet flotta workload-web\n\
             add rule inet flotta workload-web tcp dport 8080 accept comment \"flotta workload web\"\n\
             add rule inet flotta workload-web udp dport 5353 accept comment \"flotta workload web\"\n"
        );
        assert_eq!(
            remove_script("web"),
            "add table inet flotta\n\
             add chain inet flotta workload-web { type filter hook input priority filter; policy accept; }\n\
             flush chain inet flotta workload-web\n\
             delete chain inet flotta workload-web\n"
        );
    }

    #[tokio::test]
    async fn rules_go_through_nft_f_stdin() {
        let host = Arc::new(RecordingHost::default());
        let rules = NftRules::new(host.clone());
        let port = HostPort {
            protocol: "tcp",
            port: 8080,
        };
        rules.apply("web", &[port]).await.unwrap();
        rules.apply("web", &[]).await.unwrap();
        let calls = host.calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            [
                format!(
                    "nft -f -\n{}",
                    apply_script(
                        "web",
                        &[HostPort {
                            protocol: "tcp",
                            port: 8080
                        }]
                    )
                ),
                format!("nft -f -\n{}", remove_script("web")),
            ]
        );
    }
}
