//! Hardware reported by devices: the wire form (`hardware-info`, snake_case) mapped to the
//! API form (`status.hardware`, camelCase), partial reports merged into what is stored, and
//! the hardware-derived device labels (`flotta-inventory.md` §2.7, §3.7).
//!
//! Unlike Flotta, a partial report (heartbeats after the first carry only hostname,
//! interfaces and mounts) updates only what it carries instead of replacing the stored
//! inventory (§8.3 item 10).

use std::collections::BTreeMap;

use flotta_api::edge;
use flotta_api::v1alpha1 as v1;

/// The longest label value Kubernetes accepts.
const MAX_LABEL_VALUE: usize = 63;

/// `hardware-info` as `status.hardware` (CPU frequency as `"%.2f"`, lists always present).
pub(crate) fn map_hardware(hw: &edge::HardwareInfo) -> v1::Hardware {
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    v1::Hardware {
        boot: hw.boot.as_ref().map(|b| v1::Boot {
            current_boot_mode: b.current_boot_mode.clone(),
            pxe_interface: b.pxe_interface.clone(),
        }),
        cpu: hw.cpu.as_ref().map(|c| v1::Cpu {
            architecture: c.architecture.clone(),
            count: c.count,
            flags: c.flags.clone(),
            frequency: c.frequency.map(|f| format!("{f:.2}")),
            model_name: c.model_name.clone(),
        }),
        disks: hw
            .disks
            .iter()
            .map(|d| v1::Disk {
                bootable: d.bootable,
                by_id: d.by_id.clone(),
                by_path: d.by_path.clone(),
                drive_type: d.drive_type.clone(),
                hctl: d.hctl.clone(),
                id: d.id.clone(),
                io_perf: d.io_perf.as_ref().map(|p| v1::IoPerf {
                    sync_duration: p.sync_duration,
                }),
                is_installation_media: d.is_installation_media,
                model: d.model.clone(),
                name: d.name.clone(),
                path: d.path.clone(),
                serial: d.serial.clone(),
                size_bytes: d.size_bytes,
                smart: d.smart.clone(),
                vendor: d.vendor.clone(),
                wwn: d.wwn.clone(),
            })
            .collect(),
        gpus: hw
            .gpus
            .iter()
            .map(|g| v1::Gpu {
                address: g.address.clone(),
                device_id: g.device_id.clone(),
                name: g.name.clone(),
                vendor: g.vendor.clone(),
                vendor_id: g.vendor_id.clone(),
            })
            .collect(),
        hostname: hw.hostname.clone(),
        interfaces: hw
            .interfaces
            .iter()
            .map(|i| v1::Interface {
                biosdevname: i.biosdevname.clone(),
                client_id: i.client_id.clone(),
                flags: i.flags.clone(),
                has_carrier: i.has_carrier,
                ipv4_addresses: non_empty(&i.ipv4_addresses),
                ipv6_addresses: non_empty(&i.ipv6_addresses),
                mac_address: i.mac_address.clone(),
                mtu: i.mtu,
                name: i.name.clone(),
                product: i.product.clone(),
                speed_mbps: i.speed_mbps,
                vendor: i.vendor.clone(),
            })
            .collect(),
        memory: hw.memory.as_ref().map(|m| v1::Memory {
            physical_bytes: m.physical_bytes,
            usable_bytes: m.usable_bytes,
        }),
        system_vendor: hw.system_vendor.as_ref().map(|s| v1::SystemVendor {
            manufacturer: s.manufacturer.clone(),
            product_name: s.product_name.clone(),
            serial_number: s.serial_number.clone(),
            virtual_: s.is_virtual,
        }),
        host_devices: Some(
            hw.host_devices
                .iter()
                .map(|d| v1::HostDevice {
                    path: d.path.clone(),
                    device_type: d.device_type.clone(),
                    uid: d.uid.and_then(|v| u32::try_from(v).ok()),
                    gid: d.gid.and_then(|v| u32::try_from(v).ok()),
                    major: d.major.and_then(|v| u32::try_from(v).ok()),
                    minor: d.minor.and_then(|v| u32::try_from(v).ok()),
                })
                .collect(),
        ),
        mounts: (!hw.mounts.is_empty()).then(|| {
            hw.mounts
                .iter()
                .map(|m| v1::Mount {
                    device: m.device.clone(),
                    directory: m.directory.clone(),
                    type_: m.fs_type.clone(),
                    options: m.options.clone(),
                })
                .collect()
        }),
    }
}

/// `stored` updated with what `reported` carries: every part present in the report
/// replaces the stored part; absent parts (and empty lists) keep the stored ones.
pub(crate) fn merge_hardware(
    stored: Option<v1::Hardware>,
    reported: &edge::HardwareInfo,
) -> v1::Hardware {
    let new = map_hardware(reported);
    let Some(mut merged) = stored else {
        return new;
    };
    if new.boot.is_some() {
        merged.boot = new.boot;
    }
    if new.cpu.is_some() {
        merged.cpu = new.cpu;
    }
    if !new.disks.is_empty() {
        merged.disks = new.disks;
    }
    if !new.gpus.is_empty() {
        merged.gpus = new.gpus;
    }
    if new.hostname.is_some() {
        merged.hostname = new.hostname;
    }
    if !new.interfaces.is_empty() {
        merged.interfaces = new.interfaces;
    }
    if new.memory.is_some() {
        merged.memory = new.memory;
    }
    if new.system_vendor.is_some() {
        merged.system_vendor = new.system_vendor;
    }
    if new.host_devices.as_ref().is_some_and(|d| !d.is_empty()) || merged.host_devices.is_none() {
        merged.host_devices = new.host_devices;
    }
    if new.mounts.is_some() {
        merged.mounts = new.mounts;
    }
    merged
}

/// Flotta's `NormalizeLabel`: lowercase, trimmed to the first and last alphanumeric
/// character, characters outside `[a-z0-9-_.]` removed; also cut to 63 characters so the
/// value is a valid label value. `None` when nothing is left.
pub(crate) fn normalize_label(value: &str) -> Option<String> {
    let lower = value.to_lowercase();
    let trimmed = lower.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut out: String = trimmed
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        .take(MAX_LABEL_VALUE)
        .collect();
    while out.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        out.pop();
    }
    (!out.is_empty()).then_some(out)
}

/// The hardware-derived labels (`device.hostname`, `device.cpu-architecture`, ...) of
/// `hardware`, for the values it has.
pub(crate) fn hardware_labels(hardware: &v1::Hardware) -> BTreeMap<&'static str, String> {
    let cpu = hardware.cpu.as_ref();
    let vendor = hardware.system_vendor.as_ref();
    let sources: [(&'static str, Option<&String>); 6] = [
        ("device.hostname", hardware.hostname.as_ref()),
        (
            "device.cpu-architecture",
            cpu.and_then(|c| c.architecture.as_ref()),
        ),
        ("device.cpu-model", cpu.and_then(|c| c.model_name.as_ref())),
        (
            "device.system-manufacturer",
            vendor.and_then(|v| v.manufacturer.as_ref()),
        ),
        (
            "device.system-product",
            vendor.and_then(|v| v.product_name.as_ref()),
        ),
        (
            "device.system-serial",
            vendor.and_then(|v| v.serial_number.as_ref()),
        ),
    ];
    sources
        .into_iter()
        .filter_map(|(key, value)| Some((key, normalize_label(value?)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_normalized_like_flotta() {
        assert_eq!(
            normalize_label("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz").as_deref(),
            Some("intelrcoretmi7-8650ucpu1.90ghz")
        );
        assert_eq!(normalize_label("  --x86_64--  ").as_deref(), Some("x86_64"));
        assert_eq!(normalize_label("***"), None);
        let long = "a".repeat(62) + "-b";
        assert_eq!(normalize_label(&long).map(|l| l.len()), Some(62));
    }

    #[test]
    fn partial_reports_update_only_what_they_carry() {
        let full = edge::HardwareInfo {
            hostname: Some("h1".into()),
            cpu: Some(edge::Cpu {
                architecture: Some("x86_64".into()),
                frequency: Some(1900.0),
                ..Default::default()
            }),
            interfaces: vec![edge::Interface {
                name: Some("eth0".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let stored = map_hardware(&full);
        assert_eq!(
            stored.cpu.as_ref().and_then(|c| c.frequency.as_deref()),
            Some("1900.00")
        );
        let delta = edge::HardwareInfo {
            hostname: Some("h2".into()),
            ..Default::default()
        };
        let merged = merge_hardware(Some(stored), &delta);
        assert_eq!(merged.hostname.as_deref(), Some("h2"));
        assert_eq!(merged.interfaces.len(), 1);
        assert!(merged.cpu.is_some());
        let labels = hardware_labels(&merged);
        assert_eq!(labels["device.hostname"], "h2");
        assert_eq!(labels["device.cpu-architecture"], "x86_64");
    }
}
