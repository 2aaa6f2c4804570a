//! The hardware inventory, read from procfs and sysfs only (no external commands).
//!
//! Full inventory: CPU (count, model, flags, architecture), memory, hostname, system vendor
//! (DMI), network interfaces (name, MAC, MTU, carrier, IPv6 addresses). The mutable part is
//! the hostname and the interfaces. Limits: IPv4 addresses are not collected (procfs has no
//! per-interface IPv4 list; netlink would be needed); disks, GPUs, boot and host devices are
//! not collected; fields that cannot be read (DMI serial needs root) are left out.

use std::path::Path;

use flotta_api::edge::{Cpu, HardwareInfo, Interface, Memory, SystemVendor};

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

/// The full inventory.
pub fn full() -> HardwareInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let cpu_flags: Vec<String> = cpu_field(&cpuinfo, "flags")
        .map(|flags| flags.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let is_virtual = cpu_flags.iter().any(|flag| flag == "hypervisor");
    let dmi = Path::new("/sys/class/dmi/id");
    HardwareInfo {
        cpu: Some(Cpu {
            count: i64::try_from(
                cpuinfo
                    .lines()
                    .filter(|line| line.starts_with("processor"))
                    .count(),
            )
            .ok(),
            model_name: cpu_field(&cpuinfo, "model name").map(str::to_owned),
            flags: cpu_flags,
            architecture: Some(std::env::consts::ARCH.to_owned()),
            frequency: cpu_field(&cpuinfo, "cpu MHz").and_then(|mhz| mhz.parse().ok()),
        }),
        memory: mem_total_bytes(&meminfo).map(|bytes| Memory {
            physical_bytes: Some(bytes),
            usable_bytes: Some(bytes),
        }),
        system_vendor: Some(SystemVendor {
            manufacturer: read_trimmed(dmi.join("sys_vendor")),
            product_name: read_trimmed(dmi.join("product_name")),
            serial_number: read_trimmed(dmi.join("product_serial")),
            is_virtual: Some(is_virtual),
        }),
        ..mutable()
    }
}

/// The mutable part: hostname and interfaces.
pub fn mutable() -> HardwareInfo {
    HardwareInfo {
        hostname: read_trimmed("/proc/sys/kernel/hostname"),
        interfaces: interfaces(),
        ..HardwareInfo::default()
    }
}

/// The parts of `current` that differ from `previous` (hostname and interfaces).
pub fn delta(previous: &HardwareInfo, current: &HardwareInfo) -> Option<HardwareInfo> {
    let hostname = (previous.hostname != current.hostname).then(|| current.hostname.clone());
    let interfaces =
        (previous.interfaces != current.interfaces).then(|| current.interfaces.clone());
    if hostname.is_none() && interfaces.is_none() {
        return None;
    }
    Some(HardwareInfo {
        hostname: hostname.flatten(),
        interfaces: interfaces.unwrap_or_default(),
        ..HardwareInfo::default()
    })
}

fn cpu_field<'a>(cpuinfo: &'a str, name: &str) -> Option<&'a str> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim())
    })
}

fn mem_total_bytes(meminfo: &str) -> Option<i64> {
    let kib: i64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

fn interfaces() -> Vec<Interface> {
    let inet6 = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "lo")
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let dir = Path::new("/sys/class/net").join(&name);
            Interface {
                mac_address: read_trimmed(dir.join("address")),
                mtu: read_trimmed(dir.join("mtu")).and_then(|mtu| mtu.parse().ok()),
                has_carrier: read_trimmed(dir.join("carrier")).map(|carrier| carrier == "1"),
                ipv6_addresses: ipv6_of(&inet6, &name),
                name: Some(name),
                ..Interface::default()
            }
        })
        .collect()
}

/// IPv6 addresses of `interface` from `/proc/net/if_inet6` (32 hex digits, …, name).
fn ipv6_of(inet6: &str, interface: &str) -> Vec<String> {
    inet6
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 6 || fields[5] != interface || fields[0].len() != 32 {
                return None;
            }
            let groups: Vec<&str> = (0..8)
                .filter_map(|i| fields[0].get(i * 4..i * 4 + 4))
                .collect();
            let prefix = u8::from_str_radix(fields[2], 16).ok()?;
            let address: std::net::Ipv6Addr = groups.join(":").parse().ok()?;
            Some(format!("{address}/{prefix}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_inventory_reads_this_machine() {
        let info = full();
        let cpu = info.cpu.unwrap();
        assert!(cpu.count.unwrap_or(0) >= 1, "{cpu:?}");
        assert_eq!(cpu.architecture.as_deref(), Some(std::env::consts::ARCH));
        assert!(info.memory.unwrap().physical_bytes.unwrap_or(0) > 0);
        assert!(info.hostname.is_some());
    }

    #[test]
    fn ipv6_lines_are_parsed() {
        let line = "fe800000000000000000000000000001 02 40 20 80 eth0\n";
        assert_eq!(ipv6_of(line, "eth0"), ["fe80::1/64"]);
        assert!(ipv6_of(line, "eth1").is_empty());
    }

    #[test]
    fn delta_holds_only_changes() {
        let before = HardwareInfo {
            hostname: Some("a".into()),
            ..HardwareInfo::default()
        };
        assert_eq!(delta(&before, &before), None);
        let after = HardwareInfo {
            hostname: Some("b".into()),
            ..HardwareInfo::default()
        };
        assert_eq!(
            delta(&before, &after).unwrap().hostname.as_deref(),
            Some("b")
        );
    }
}
