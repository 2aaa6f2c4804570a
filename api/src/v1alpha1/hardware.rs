//! The hardware inventory a device reports (`EdgeDevice.status.hardware`,
//! `EdgeDeviceSignedRequest.spec.features.hardware`), in Flotta's camelCase JSON.
//!
//! `disks`, `gpus`, `interfaces` and the `flags` lists are required by the original CRD; they
//! deserialise to empty lists when absent and are always serialised.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::device_config::Mount;

/// A device's hardware inventory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["disks", "gpus", "interfaces"]))]
pub struct Hardware {
    /// Boot mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<Boot>,
    /// The CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// Disks.
    #[serde(default)]
    #[schemars(transform = super::schema::drop_default)]
    pub disks: Vec<Disk>,
    /// GPUs.
    #[serde(default)]
    #[schemars(transform = super::schema::drop_default)]
    pub gpus: Vec<Gpu>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Network interfaces.
    #[serde(default)]
    #[schemars(transform = super::schema::drop_default)]
    pub interfaces: Vec<Interface>,
    /// Memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// System vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_vendor: Option<SystemVendor>,
    /// Devices present on the host (`/dev/...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_devices: Option<Vec<HostDevice>>,
    /// Mounts found on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<Mount>>,
}

/// Boot information.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Boot {
    /// Current boot mode, e.g. `uefi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_boot_mode: Option<String>,
    /// PXE interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pxe_interface: Option<String>,
}

/// CPU information.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["flags"]))]
pub struct Cpu {
    /// Architecture, e.g. `x86_64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Number of CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// CPU flags.
    #[serde(default)]
    #[schemars(transform = super::schema::drop_default)]
    pub flags: Vec<String>,
    /// Frequency in MHz, formatted with two decimals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<String>,
    /// Model name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
}

/// A disk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Disk {
    /// Bootable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootable: Option<bool>,
    /// `/dev/disk/by-id` name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_id: Option<String>,
    /// `/dev/disk/by-path` name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_path: Option<String>,
    /// Drive type, e.g. `HDD`, `SSD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive_type: Option<String>,
    /// SCSI host:channel:target:lun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hctl: Option<String>,
    /// Unique identifier: `byId`, else `byPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// I/O performance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_perf: Option<IoPerf>,
    /// Whether the disk looks like installation media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_installation_media: Option<bool>,
    /// Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Name, e.g. `sda`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Path, e.g. `/dev/sda`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// SMART data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smart: Option<String>,
    /// Vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// World Wide Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wwn: Option<String>,
}

/// Disk I/O performance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IoPerf {
    /// 99th percentile of fsync duration, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_duration: Option<i64>,
}

/// A GPU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Gpu {
    /// Device address, e.g. `0000:00:02.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Device ID, e.g. `3ea0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Product name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Vendor name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Vendor ID, e.g. `8086`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_id: Option<String>,
}

/// A network interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["flags"]))]
pub struct Interface {
    /// BIOS device name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biosdevname: Option<String>,
    /// DHCP client ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Interface flags, e.g. `up`, `broadcast`.
    #[serde(default)]
    #[schemars(transform = super::schema::drop_default)]
    pub flags: Vec<String>,
    /// Whether a carrier is detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_carrier: Option<bool>,
    /// IPv4 addresses in CIDR notation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_addresses: Option<Vec<String>>,
    /// IPv6 addresses in CIDR notation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_addresses: Option<Vec<String>>,
    /// MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    /// Name, e.g. `eth0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Link speed in Mbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mbps: Option<i64>,
    /// Vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
}

/// Memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    /// Physical memory in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_bytes: Option<i64>,
    /// Usable memory in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usable_bytes: Option<i64>,
}

/// System vendor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemVendor {
    /// Manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Product name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// Serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Whether the machine looks virtual.
    #[serde(rename = "virtual", default, skip_serializing_if = "Option::is_none")]
    pub virtual_: Option<bool>,
}

/// A device node on the host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostDevice {
    /// Path, e.g. `/dev/loop0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `block` or `character`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    /// Owner user ID.
    #[serde(rename = "owner", default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Owner group ID.
    #[serde(rename = "group", default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Major number (device class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<u32>,
    /// Minor number (device instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<u32>,
}
