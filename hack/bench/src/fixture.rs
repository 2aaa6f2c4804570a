//! The EdgeDevices the benchmark creates: about 1 KB of JSON each, shaped like a
//! registered Flotta device (the labels the EDSR and hardware controllers set, and a spec
//! with heartbeat, OS image and metrics settings).
//!
//! Each device carries the finalizer `device-finalizer`, as devices created by approval do,
//! and no `workload/*` labels (no workloads exist), so the server's controllers have
//! nothing to write back and the create figures count one write per device.
//!
//! Limits: no status (a create ignores it anyway); values vary per device only where a real
//! fleet's would (name, hostname, serial, set membership).

use serde_json::{Value, json};

/// A well-mixed 64-bit hash of `x` (splitmix64), so names look like machine IDs but are
/// reproducible.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The name of device number `i`: 32 hex digits, like the `/etc/machine-id` Flotta uses
/// as the device ID.
pub fn device_name(i: usize) -> String {
    let i = i as u64;
    format!("{:016x}{:016x}", mix(2 * i), mix(2 * i + 1))
}

/// The EdgeDevice object for device number `i` in `namespace`.
pub fn device(i: usize, namespace: &str) -> Value {
    let name = device_name(i);
    let site = i % 50;
    let hostname = format!("edge-{i:06}");
    json!({
        "apiVersion": "management.project-flotta.io/v1alpha1",
        "kind": "EdgeDevice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "edgedeviceSignedRequest": "true",
                "flotta/member-of": format!("site-{site:02}"),
                "device.hostname": hostname,
                "device.cpu-architecture": "x86_64",
                "device.cpu-model": "intel-r-core-tm-i5-8365u-cpu-1.60ghz",
                "device.system-manufacturer": "dell-inc",
                "device.system-product": "optiplex-3080",
                "device.system-serial": format!("8hx3k{i:06}")
            },
            "finalizers": ["device-finalizer"]
        },
        "spec": {
            "requestTime": "2024-05-02T09:14:27Z",
            "heartbeat": {
                "periodSeconds": 60,
                "hardwareProfile": { "include": true, "scope": "delta" }
            },
            "osInformation": {
                "automaticallyUpgrade": true,
                "commitID": "9d1a0e7ba3c54f6f28b1e2c6a5dd0f4e3b7c8a91f2e4d6b0c3a5e7f9d1b3c5a7",
                "hostedObjectsURL": "https://ostree.fleet.example.com/repos/fedora-iot-38"
            },
            "metrics": {
                "retention": { "maxMiB": 200, "maxHours": 24 },
                "system": { "interval": 60, "allowList": { "name": "system-metrics-allow" } },
                "dataTransfer": { "interval": 300, "disabled": false },
                "receiverConfiguration": {
                    "requestNumSamples": 10000,
                    "timeoutSeconds": 10,
                    "url": "https://thanos-receive.fleet.example.com/api/v1/receive",
                    "caSecretName": "thanos-receive-ca"
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_valid_machine_ids() {
        let names: std::collections::BTreeSet<String> = (0..10_000).map(device_name).collect();
        assert_eq!(names.len(), 10_000);
        for name in names.iter().take(100) {
            assert_eq!(name.len(), 32);
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
        assert_eq!(device_name(7), device_name(7), "reproducible");
    }

    #[test]
    fn device_is_about_one_kilobyte_and_well_formed() {
        let dev = device(1234, "bench");
        let len = serde_json::to_vec(&dev).unwrap().len();
        assert!((900..=1300).contains(&len), "device JSON is {len} bytes");
        assert_eq!(dev["metadata"]["name"], device_name(1234));
        assert_eq!(dev["metadata"]["namespace"], "bench");
        assert_eq!(dev["metadata"]["labels"]["device.hostname"], "edge-001234");
        assert_eq!(dev["spec"]["heartbeat"]["periodSeconds"], 60);
        assert_eq!(dev["metadata"]["finalizers"][0], "device-finalizer");
        // Every label value must be a valid Kubernetes label value (≤ 63 characters,
        // alphanumerics and `-_.`, alphanumeric at both ends).
        for (key, value) in dev["metadata"]["labels"].as_object().unwrap() {
            let v = value.as_str().unwrap();
            assert!(v.len() <= 63, "{key}");
            assert!(
                v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "{key}={v}"
            );
            assert!(
                v.starts_with(|c: char| c.is_ascii_alphanumeric()),
                "{key}={v}"
            );
            assert!(
                v.ends_with(|c: char| c.is_ascii_alphanumeric()),
                "{key}={v}"
            );
        }
    }
}
