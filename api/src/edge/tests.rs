//! Golden JSON for every wire message type: documents shaped as Flotta's models
//! (`flotta-inventory.md` §3.3–§3.4) must read into the types and write back unchanged,
//! and the fields Flotta declares without `omitempty` must always be written.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;

/// Reads `golden` into `T`, writes it back, and checks nothing was lost or added.
fn round_trip<T: DeserializeOwned + Serialize + std::fmt::Debug>(golden: Value) -> T {
    let typed: T = serde_json::from_value(golden.clone()).expect("golden document reads");
    let written = serde_json::to_value(&typed).expect("writes");
    assert_eq!(written, golden, "round trip of {typed:?}");
    typed
}

fn written<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("writes")
}

fn hardware_golden() -> Value {
    json!({
        "hostname": "edge-1",
        "interfaces": [{
            "ipv6_addresses": ["fe80::1/64"],
            "vendor": "0x8086",
            "name": "eth0",
            "has_carrier": true,
            "product": "0x100e",
            "mtu": 1500,
            "ipv4_addresses": ["192.168.1.10/24"],
            "biosdevname": "em1",
            "client_id": "cid",
            "mac_address": "52:54:00:12:34:56",
            "flags": ["up", "broadcast"],
            "speed_mbps": 1000
        }],
        "disks": [{
            "id": "/dev/disk/by-id/wwn-0x5000",
            "drive_type": "SSD",
            "vendor": "ATA",
            "name": "sda",
            "path": "/dev/sda",
            "hctl": "0:0:0:0",
            "by_path": "/dev/disk/by-path/pci-0000:00:1f.2-ata-1",
            "by_id": "/dev/disk/by-id/ata-X",
            "model": "Samsung",
            "wwn": "0x5000",
            "serial": "S3Z",
            "size_bytes": 256060514304_i64,
            "bootable": true,
            "is_installation_media": false,
            "smart": "{}",
            "io_perf": {"sync_duration": 12}
        }],
        "boot": {"current_boot_mode": "uefi", "pxe_interface": "eth0"},
        "system_vendor": {
            "serial_number": "SN1",
            "product_name": "NUC",
            "manufacturer": "Intel",
            "virtual": false
        },
        "memory": {"physical_bytes": 8589934592_i64, "usable_bytes": 8000000000_i64},
        "cpu": {
            "count": 4,
            "frequency": 2400.5,
            "flags": ["sse", "avx"],
            "model_name": "Intel(R) Core(TM)",
            "architecture": "x86_64"
        },
        "gpus": [{
            "vendor": "Intel",
            "vendor_id": "8086",
            "device_id": "3e92",
            "name": "UHD 630",
            "address": "0000:00:02.0"
        }],
        "host_devices": [{
            "path": "/dev/ttyUSB0",
            "device_type": "c",
            "uid": 0,
            "gid": 20,
            "major": 188,
            "minor": 0
        }],
        "mounts": [{"device": "/dev/sdb1", "directory": "/mnt/data", "type": "ext4", "options": "rw"}]
    })
}

#[test]
fn message_envelope() {
    let message: Message = round_trip(json!({
        "type": "data",
        "message_id": "9a1b",
        "response_to": "77",
        "version": 1,
        "sent": "2024-05-01T10:00:00.000Z",
        "directive": "heartbeat",
        "metadata": {"k": "v"},
        "content": {"status": "up"}
    }));
    assert_eq!(message.message_type, Some(MessageType::Data));
    assert_eq!(message.directive(), "heartbeat");
    for (text, kind) in [
        ("connection-status", MessageType::ConnectionStatus),
        ("command", MessageType::Command),
        ("event", MessageType::Event),
        ("data", MessageType::Data),
    ] {
        let read: Message = serde_json::from_value(json!({ "type": text })).expect("type reads");
        assert_eq!(read.message_type, Some(kind));
    }
    assert!(serde_json::from_value::<Message>(json!({"type": "telegram"})).is_err());
    // Everything is optional; an empty message writes as `{}`.
    assert_eq!(written(&Message::default()), json!({}));
    assert_eq!(Message::default().directive(), "");
}

#[test]
fn message_response() {
    round_trip::<MessageResponse>(json!({
        "message_id": "1",
        "directive": "registration",
        "content": {"certificate": "-----BEGIN CERTIFICATE-----\n"},
        "metadata": {"message-id": "2"}
    }));
    assert_eq!(written(&MessageResponse::default()), json!({}));
}

#[test]
fn disconnect_command_always_has_arguments() {
    let command = Command {
        command: COMMAND_DISCONNECT.into(),
        arguments: Value::Null,
    };
    assert_eq!(
        written(&command),
        json!({"command": "disconnect", "arguments": null})
    );
    round_trip::<Command>(json!({"command": "disconnect", "arguments": null}));
}

#[test]
fn enrolment_and_registration() {
    let enrolment: EnrolmentInfo = round_trip(json!({
        "features": {"modelName": "rpi4", "hardware": hardware_golden()},
        "target_namespace": "fleet-a"
    }));
    assert_eq!(enrolment.target_namespace.as_deref(), Some("fleet-a"));
    assert_eq!(written(&EnrolmentInfo::default()), json!({}));

    let registration: RegistrationInfo = round_trip(json!({
        "hardware": hardware_golden(),
        "certificate_request": "-----BEGIN CERTIFICATE REQUEST-----\n"
    }));
    assert!(registration.hardware.is_some());
    round_trip::<RegistrationResponse>(json!({"certificate": "PEM"}));
}

#[test]
fn hardware_full_and_minimal() {
    let hardware: HardwareInfo = round_trip(hardware_golden());
    assert_eq!(
        hardware.system_vendor.and_then(|v| v.is_virtual),
        Some(false)
    );
    // The five lists without omitempty are always written; a Go nil slice (`null`) reads
    // as empty.
    let minimal: HardwareInfo = serde_json::from_value(json!({
        "hostname": "h",
        "disks": null,
        "gpus": null,
        "interfaces": null
    }))
    .expect("reads");
    assert_eq!(
        written(&minimal),
        json!({
            "hostname": "h",
            "interfaces": [],
            "disks": [],
            "gpus": [],
            "host_devices": [],
            "mounts": []
        })
    );
    // Nested lists are omitempty.
    assert_eq!(written(&Interface::default()), json!({}));
    assert_eq!(written(&Cpu::default()), json!({}));
}

#[test]
fn heartbeat() {
    let heartbeat: Heartbeat = round_trip(json!({
        "status": "up",
        "version": "1234",
        "workloads": [{"name": "nginx", "last_data_upload": "2024-05-01T10:00:00Z", "status": "Running"}],
        "playbook-executions": [{"name": "dev-cfg", "last_data_upload": "2024-05-01T10:00:00Z", "status": "Running"}],
        "upgrade": {
            "current_commit_ID": "abc",
            "last_upgrade_status": "succeeded",
            "last_upgrade_time": "2024-05-01T09:00:00Z"
        },
        "hardware": hardware_golden(),
        "events": [{"reason": "Started", "message": "workload started", "type": "info"}]
    }));
    assert_eq!(heartbeat.workloads.len(), 1);
    assert_eq!(
        heartbeat.events[0].event_type.as_deref(),
        Some(EVENT_TYPE_INFO)
    );
    // A Go device sends nil slices as null.
    let from_go: Heartbeat = serde_json::from_value(json!({
        "status": "up",
        "version": "7",
        "workloads": null,
        "playbook-executions": null,
        "events": null
    }))
    .expect("reads");
    assert!(from_go.workloads.is_empty() && from_go.events.is_empty());
    assert_eq!(
        written(&Heartbeat::default()),
        json!({"workloads": [], "playbook-executions": [], "events": []})
    );
    // Podman states are accepted as sent.
    let podman: Heartbeat =
        serde_json::from_value(json!({"workloads": [{"name": "w", "status": "Created"}]}))
            .expect("reads");
    assert_eq!(podman.workloads[0].status.as_deref(), Some("Created"));
}

#[test]
fn device_configuration_message() {
    let message: DeviceConfigurationMessage = round_trip(json!({
        "device_id": "edge-1",
        "version": "4711",
        "configuration": {
            "ansible-manager": {"period_seconds": 60},
            "heartbeat": {
                "period_seconds": 30,
                "hardware_profile": {"include": true, "scope": "delta"}
            },
            "storage": {"s3": {
                "bucket_host": "s3.example.com",
                "bucket_port": 443,
                "bucket_name": "edge",
                "bucket_region": "eu-1",
                "aws_access_key_id": "QUtJQQ==",
                "aws_secret_access_key": "c2VjcmV0",
                "aws_ca_bundle": "LS0tLS1CRUdJTg=="
            }},
            "metrics": {
                "retention": {"max_mib": 200, "max_hours": 24},
                "system": {"interval": 60, "allow_list": {"names": ["node_cpu_seconds_total"]}, "disabled": false},
                "data-transfer": {"interval": 60, "disabled": true},
                "receiver": {
                    "url": "https://metrics.example.com/api/v1/write",
                    "timeout_seconds": 10,
                    "request_num_samples": 30000,
                    "caCert": "-----BEGIN CERTIFICATE-----\n"
                }
            },
            "os": {"commit_id": "abc", "hosted_objects_url": "http://os.example.com", "automatically_upgrade": true},
            "log-collection": {
                "syslog": {"kind": "syslog", "buffer_size": 12, "syslog_config": {"address": "10.0.0.1:514", "protocol": "udp"}}
            },
            "mounts": [{"device": "/dev/sdb1", "directory": "/mnt/data", "type": "ext4", "options": "ro"}]
        },
        "workloads": [{
            "name": "nginx",
            "namespace": "default",
            "labels": {"app": "web"},
            "annotations": {"io.podman.annotations.seccomp": "unconfined"},
            "specification": "containers:\n- name: nginx\n  image: nginx\n",
            "data": {"ingress": [{"source": "a", "target": "b"}], "egress": []},
            "imageRegistries": {"authFile": "{\"auths\":{}}"},
            "metrics": {
                "path": "/metrics",
                "port": 9000,
                "interval": 30,
                "allow_list": {"names": ["up"]},
                "containers": {"nginx": {"disabled": false, "path": "/m", "port": 9001}}
            },
            "configmaps": ["apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  k: v\n"],
            "log_collection": "syslog"
        }],
        "workloads_monitoring_interval": 15,
        "secrets": [{"name": "creds", "data": "{\"password\":\"cGFzcw==\"}"}]
    }));
    let configuration = message.configuration.expect("configuration");
    assert_eq!(
        configuration.mounts[0].directory.as_deref(),
        Some("/mnt/data")
    );
    assert!(configuration.log_collection.contains_key("syslog"));

    // Lists Flotta always writes: workloads and secrets of the message, mounts of the
    // configuration, ingress and egress of a workload's data.
    assert_eq!(
        written(&DeviceConfigurationMessage::default()),
        json!({"workloads": [], "secrets": []})
    );
    assert_eq!(
        written(&DeviceConfiguration::default()),
        json!({"mounts": []})
    );
    assert_eq!(
        written(&DataConfiguration::default()),
        json!({"ingress": [], "egress": []})
    );
    assert_eq!(written(&Workload::default()), json!({}));
    let from_go: DeviceConfigurationMessage =
        serde_json::from_value(json!({"device_id": "d", "workloads": null, "secrets": null, "configuration": {"mounts": null, "log-collection": null}}))
            .expect("reads");
    assert!(from_go.workloads.is_empty());
}

#[test]
fn playbook_executions() {
    let listed: Vec<PlaybookExecution> = round_trip(json!([{
        "last_data_upload": "2024-05-01T10:00:00Z",
        "name": "edge-1-cfg",
        "ansible_playbook_string": "- hosts: all\n"
    }]));
    assert_eq!(listed.len(), 1);
    assert_eq!(written(&Vec::<PlaybookExecution>::new()), json!([]));
}

#[test]
fn secret_data_is_a_json_string() {
    let secret: Secret = round_trip(json!({"name": "s", "data": "{\"k\":\"dg==\"}"}));
    let data: Value = serde_json::from_str(secret.data.as_deref().expect("data")).expect("JSON");
    assert_eq!(data, json!({"k": "dg=="}));
}
