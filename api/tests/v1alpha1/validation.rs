//! Every validation rule: the realistic fixtures are valid, and each broken rule yields exactly
//! the expected errors, all of them, each on its own path.

use std::collections::BTreeMap;

use flotta_api::v1alpha1::*;
use flotta_api::validation::{FieldError, FieldErrorKind};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, Lifecycle, ObjectFieldSelector, Probe,
    ResourceFieldSelector, ResourceRequirements, Volume, VolumeDevice,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::load;

/// `(kind, field)` of each error, in order.
fn summary(errors: &[FieldError]) -> Vec<(FieldErrorKind, String)> {
    errors.iter().map(|e| (e.kind, e.field.clone())).collect()
}

fn workload() -> EdgeWorkload {
    load("edge_workload")
}

fn pod(workload: &mut EdgeWorkload) -> &mut k8s_openapi::api::core::v1::PodSpec {
    &mut workload.spec.pod.as_mut().expect("fixture has a pod").spec
}

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: Some("quay.io/example/app:1".into()),
        ..Container::default()
    }
}

#[test]
fn the_realistic_fixtures_are_valid() {
    assert_eq!(validate_edge_device(&load("edge_device")), vec![]);
    assert_eq!(validate_edge_device_set(&load("edge_device_set")), vec![]);
    assert_eq!(validate_edge_workload(&workload()), vec![]);
    assert_eq!(
        validate_edge_device_signed_request(&load("edge_device_signed_request")),
        vec![]
    );
    assert_eq!(validate_edge_config(&load("edge_config")), vec![]);
    assert_eq!(
        validate_playbook_execution(&load("playbook_execution")),
        vec![]
    );
}

// ---- EdgeDevice ----

#[test]
fn create_obc_conflicts_with_an_external_bucket() {
    for (secret, config_map) in [
        (Some("s"), None),
        (None, Some("cm")),
        (Some("s"), Some("cm")),
    ] {
        let mut device: EdgeDevice = load("edge_device");
        device.spec.storage = Some(Storage {
            s3: Some(S3Storage {
                secret_name: secret.map(Into::into),
                config_map_name: config_map.map(Into::into),
                create_obc: Some(true),
            }),
        });
        let errors = validate_edge_device(&device);
        assert_eq!(
            summary(&errors),
            vec![(FieldErrorKind::Invalid, "spec.storage.s3.createOBC".into())]
        );
        assert!(
            errors[0].message.contains("secretName"),
            "{}",
            errors[0].message
        );
    }

    let mut device: EdgeDevice = load("edge_device");
    device.spec.storage = Some(Storage {
        s3: Some(S3Storage {
            create_obc: Some(true),
            secret_name: Some(String::new()),
            ..S3Storage::default()
        }),
    });
    assert_eq!(
        validate_edge_device(&device),
        vec![],
        "createOBC alone is fine"
    );

    let mut device: EdgeDevice = load("edge_device");
    if let Some(s3) = device.spec.storage.as_mut().and_then(|s| s.s3.as_mut()) {
        s3.create_obc = Some(false);
    }
    assert_eq!(
        validate_edge_device(&device),
        vec![],
        "createOBC=false with a bucket is fine"
    );
}

#[test]
fn device_config_bounds_are_enforced_and_all_reported() {
    let mut device: EdgeDevice = load("edge_device");
    device.spec.heartbeat = Some(HeartbeatConfiguration {
        period_seconds: Some(0),
        hardware_profile: None,
    });
    device.spec.metrics = Some(MetricsConfiguration {
        retention: Some(Retention {
            max_mib: Some(-1),
            max_hours: Some(-5),
        }),
        system_metrics: Some(ComponentMetricsConfiguration {
            interval: Some(-1),
            allow_list: Some(NameRef::new("")),
            disabled: None,
        }),
        data_transfer_metrics: Some(ComponentMetricsConfiguration {
            interval: Some(-60),
            ..ComponentMetricsConfiguration::default()
        }),
        receiver_configuration: None,
    });
    device.spec.log_collection = Some(BTreeMap::from([(
        "remote".to_string(),
        LogCollectionConfig {
            kind: Some("journald".into()),
            buffer_size: Some(0),
            syslog_config: Some(NameRef::default()),
        },
    )]));
    let errors = validate_edge_device(&device);
    assert_eq!(
        summary(&errors),
        vec![
            (
                FieldErrorKind::Invalid,
                "spec.heartbeat.periodSeconds".into()
            ),
            (
                FieldErrorKind::Invalid,
                "spec.metrics.retention.maxMiB".into()
            ),
            (
                FieldErrorKind::Invalid,
                "spec.metrics.retention.maxHours".into()
            ),
            (
                FieldErrorKind::Invalid,
                "spec.metrics.system.interval".into()
            ),
            (
                FieldErrorKind::Required,
                "spec.metrics.system.allowList.name".into()
            ),
            (
                FieldErrorKind::Invalid,
                "spec.metrics.dataTransfer.interval".into()
            ),
            (
                FieldErrorKind::NotSupported,
                "spec.logCollection[remote].kind".into()
            ),
            (
                FieldErrorKind::Invalid,
                "spec.logCollection[remote].bufferSize".into()
            ),
            (
                FieldErrorKind::Required,
                "spec.logCollection[remote].syslogConfig.name".into()
            ),
        ]
    );
    assert!(
        errors[6].message.contains("\"syslog\""),
        "{}",
        errors[6].message
    );

    // The boundaries themselves are valid.
    let mut device: EdgeDevice = load("edge_device");
    device.spec.heartbeat = Some(HeartbeatConfiguration {
        period_seconds: Some(1),
        hardware_profile: None,
    });
    device.spec.metrics = Some(MetricsConfiguration {
        retention: Some(Retention {
            max_mib: Some(0),
            max_hours: Some(0),
        }),
        ..MetricsConfiguration::default()
    });
    assert_eq!(validate_edge_device(&device), vec![]);
}

#[test]
fn device_status_requires_names() {
    let mut device: EdgeDevice = load("edge_device");
    let status = device.status.as_mut().expect("status");
    status.workloads.as_mut().expect("workloads")[1]
        .name
        .clear();
    let exec = &mut status.playbook_executions.as_mut().expect("execs")[0];
    exec.name.clear();
    if let Some(conditions) = exec
        .playbook_execution_status
        .as_mut()
        .and_then(|s| s.conditions.as_mut())
    {
        conditions[0].status.clear();
    }
    assert_eq!(
        summary(&validate_edge_device(&device)),
        vec![
            (FieldErrorKind::Required, "status.workloads[1].name".into()),
            (
                FieldErrorKind::Required,
                "status.PlaybookExec[0].name".into()
            ),
            (
                FieldErrorKind::Required,
                "status.PlaybookExec[0].PlaybookExecutionStatus.conditions[0].status".into()
            ),
        ]
    );
}

// ---- EdgeDeviceSet ----

#[test]
fn device_set_sections_follow_the_same_rules() {
    let mut set: EdgeDeviceSet = load("edge_device_set");
    set.spec.heartbeat = Some(HeartbeatConfiguration {
        period_seconds: Some(-10),
        hardware_profile: None,
    });
    if let Some(targets) = set.spec.log_collection.as_mut() {
        targets.insert(
            "bad".into(),
            LogCollectionConfig {
                buffer_size: Some(0),
                ..LogCollectionConfig::default()
            },
        );
    }
    assert_eq!(
        summary(&validate_edge_device_set(&set)),
        vec![
            (
                FieldErrorKind::Invalid,
                "spec.heartbeat.periodSeconds".into()
            ),
            (
                FieldErrorKind::Invalid,
                "spec.logCollection[bad].bufferSize".into()
            ),
        ]
    );
}

// ---- EdgeWorkload ----

#[test]
fn workload_type_must_be_pod() {
    let mut w = workload();
    w.spec.type_ = "vm".into();
    let errors = validate_edge_workload(&w);
    assert_eq!(
        summary(&errors),
        vec![(FieldErrorKind::NotSupported, "spec.type".into())]
    );
    assert!(errors[0].message.contains("\"pod\""));

    w.spec.type_.clear();
    assert_eq!(
        summary(&validate_edge_workload(&w)),
        vec![(FieldErrorKind::Required, "spec.type".into())]
    );
}

#[test]
fn workload_needs_a_pod_with_containers() {
    let mut w = workload();
    w.spec.pod = None;
    assert_eq!(
        summary(&validate_edge_workload(&w)),
        vec![(FieldErrorKind::Required, "spec.pod".into())]
    );

    let mut w = workload();
    pod(&mut w).containers.clear();
    assert_eq!(
        summary(&validate_edge_workload(&w)),
        vec![(FieldErrorKind::Required, "spec.pod.spec.containers".into())]
    );

    let mut w = workload();
    pod(&mut w).containers[1].name.clear();
    assert_eq!(
        summary(&validate_edge_workload(&w)),
        vec![(
            FieldErrorKind::Required,
            "spec.pod.spec.containers[1].name".into()
        )]
    );
}

#[test]
fn probes_and_lifecycle_are_forbidden_in_every_container() {
    for field in [
        "lifecycle",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
    ] {
        for list in ["initContainers", "containers"] {
            let mut w = workload();
            let spec = pod(&mut w);
            let target = match list {
                "initContainers" => &mut spec.init_containers.as_mut().expect("init")[0],
                _ => &mut spec.containers[1],
            };
            match field {
                "lifecycle" => target.lifecycle = Some(Lifecycle::default()),
                "livenessProbe" => target.liveness_probe = Some(Probe::default()),
                "readinessProbe" => target.readiness_probe = Some(Probe::default()),
                _ => target.startup_probe = Some(Probe::default()),
            }
            let index = if list == "initContainers" { 0 } else { 1 };
            let errors = validate_edge_workload(&w);
            assert_eq!(
                summary(&errors),
                vec![(
                    FieldErrorKind::Forbidden,
                    format!("spec.pod.spec.{list}[{index}].{field}")
                )]
            );
            assert!(
                errors[0]
                    .message
                    .contains("not supported by Flotta devices")
            );
        }
    }
}

#[test]
fn volume_devices_and_resources_are_forbidden_only_when_non_empty() {
    let mut w = workload();
    let c = &mut pod(&mut w).containers[0];
    c.volume_devices = Some(vec![]);
    c.resources = Some(ResourceRequirements {
        limits: Some(BTreeMap::new()),
        requests: Some(BTreeMap::new()),
        claims: None,
    });
    assert_eq!(
        validate_edge_workload(&w),
        vec![],
        "empty lists are allowed, as in Flotta"
    );

    let c = &mut pod(&mut w).containers[0];
    c.volume_devices = Some(vec![VolumeDevice {
        name: "disk".into(),
        device_path: "/dev/xvda".into(),
    }]);
    c.resources = Some(ResourceRequirements {
        limits: Some(BTreeMap::from([(
            "cpu".to_string(),
            Quantity("500m".into()),
        )])),
        requests: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity("64Mi".into()),
        )])),
        claims: None,
    });
    assert_eq!(
        summary(&validate_edge_workload(&w)),
        vec![
            (
                FieldErrorKind::Forbidden,
                "spec.pod.spec.containers[0].volumeDevices".into()
            ),
            (
                FieldErrorKind::Forbidden,
                "spec.pod.spec.containers[0].resources.limits".into()
            ),
            (
                FieldErrorKind::Forbidden,
                "spec.pod.spec.containers[0].resources.requests".into()
            ),
        ]
    );
}

#[test]
fn downward_api_env_is_forbidden_but_config_and_secret_refs_are_fine() {
    let mut w = workload();
    let init = &mut pod(&mut w).init_containers.as_mut().expect("init")[0];
    init.env = Some(vec![
        EnvVar {
            name: "NODE".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "spec.nodeName".into(),
                    api_version: None,
                }),
                ..EnvVarSource::default()
            }),
            value: None,
        },
        EnvVar {
            name: "PLAIN".into(),
            value: Some("x".into()),
            value_from: None,
        },
        EnvVar {
            name: "CPU".into(),
            value_from: Some(EnvVarSource {
                resource_field_ref: Some(ResourceFieldSelector {
                    resource: "limits.cpu".into(),
                    ..ResourceFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            value: None,
        },
    ]);
    assert_eq!(
        summary(&validate_edge_workload(&w)),
        vec![
            (
                FieldErrorKind::Forbidden,
                "spec.pod.spec.initContainers[0].env[0].valueFrom.fieldRef".into()
            ),
            (
                FieldErrorKind::Forbidden,
                "spec.pod.spec.initContainers[0].env[2].valueFrom.resourceFieldRef".into()
            ),
        ]
    );
}

#[test]
fn only_host_path_and_config_map_volumes_are_allowed() {
    let mut w = workload();
    let volumes = pod(&mut w).volumes.as_mut().expect("volumes");
    volumes.insert(
        1,
        Volume {
            name: "scratch".into(),
            empty_dir: Some(Default::default()),
            ..Volume::default()
        },
    );
    volumes.push(Volume {
        name: "creds".into(),
        secret: Some(Default::default()),
        ..Volume::default()
    });
    volumes.push(Volume {
        name: String::new(),
        host_path: Some(Default::default()),
        ..Volume::default()
    });
    let errors = validate_edge_workload(&w);
    assert_eq!(
        summary(&errors),
        vec![
            (FieldErrorKind::Forbidden, "spec.pod.spec.volumes[1]".into()),
            (FieldErrorKind::Forbidden, "spec.pod.spec.volumes[4]".into()),
            (
                FieldErrorKind::Required,
                "spec.pod.spec.volumes[5].name".into()
            ),
        ]
    );
    assert!(errors[0].message.contains("hostPath"));
}

#[test]
fn container_names_must_be_unique_across_init_and_regular_containers() {
    let mut w = workload();
    let spec = pod(&mut w);
    spec.containers.push(container("fetch-config"));
    spec.containers.push(container("nginx"));
    let errors = validate_edge_workload(&w);
    assert_eq!(
        summary(&errors),
        vec![
            (
                FieldErrorKind::Duplicate,
                "spec.pod.spec.containers[2].name".into()
            ),
            (
                FieldErrorKind::Duplicate,
                "spec.pod.spec.containers[3].name".into()
            ),
        ]
    );
    assert!(
        errors[0]
            .message
            .contains("spec.pod.spec.initContainers[0]"),
        "{}",
        errors[0].message
    );
    assert!(
        errors[1].message.contains("spec.pod.spec.containers[0]"),
        "{}",
        errors[1].message
    );

    let mut w = workload();
    let spec = pod(&mut w);
    spec.init_containers
        .as_mut()
        .expect("init")
        .push(container("fetch-config"));
    assert_eq!(
        summary(&validate_edge_workload(&w)),
        vec![(
            FieldErrorKind::Duplicate,
            "spec.pod.spec.initContainers[1].name".into()
        )]
    );
}

#[test]
fn host_port_9100_is_reserved() {
    let mut w = workload();
    let spec = pod(&mut w);
    spec.containers[1].ports = Some(vec![
        ContainerPort {
            container_port: 9113,
            host_port: Some(9113),
            ..ContainerPort::default()
        },
        ContainerPort {
            container_port: 9100,
            host_port: Some(9100),
            ..ContainerPort::default()
        },
    ]);
    spec.init_containers.as_mut().expect("init")[0].ports = Some(vec![ContainerPort {
        container_port: 80,
        host_port: Some(9100),
        ..ContainerPort::default()
    }]);
    let errors = validate_edge_workload(&w);
    assert_eq!(
        summary(&errors),
        vec![
            (
                FieldErrorKind::Invalid,
                "spec.pod.spec.initContainers[0].ports[0].hostPort".into()
            ),
            (
                FieldErrorKind::Invalid,
                "spec.pod.spec.containers[1].ports[1].hostPort".into()
            ),
        ]
    );
    assert!(
        errors[0]
            .message
            .contains("port 9100 is reserved for node_exporter")
    );

    // A container port of 9100 behind another host port is fine.
    let mut w = workload();
    pod(&mut w).containers[1].ports = Some(vec![ContainerPort {
        container_port: 9100,
        host_port: Some(19100),
        ..ContainerPort::default()
    }]);
    assert_eq!(validate_edge_workload(&w), vec![]);
}

#[test]
fn workload_settings_follow_the_crd() {
    let mut w = workload();
    w.spec.data = Some(DataConfiguration {
        ingress: Some(vec![DataPath {
            source: String::new(),
            target: "in".into(),
        }]),
        egress: Some(vec![DataPath {
            source: "out".into(),
            target: String::new(),
        }]),
    });
    w.spec.image_registries = Some(ImageRegistriesConfiguration {
        auth_file_secret: Some(NameRef::default()),
    });
    w.spec.metrics = Some(ContainerMetricsConfiguration {
        port: Some(65536),
        interval: Some(-1),
        allow_list: Some(NameRef::default()),
        containers: Some(BTreeMap::from([
            (
                "nginx".to_string(),
                MetricsConfigEntity {
                    port: Some(-1),
                    ..MetricsConfigEntity::default()
                },
            ),
            (
                "exporter".to_string(),
                MetricsConfigEntity {
                    port: Some(65535),
                    ..MetricsConfigEntity::default()
                },
            ),
        ])),
        path: None,
    });
    assert_eq!(
        summary(&validate_edge_workload(&w)),
        vec![
            (
                FieldErrorKind::Required,
                "spec.data.ingress[0].source".into()
            ),
            (
                FieldErrorKind::Required,
                "spec.data.egress[0].target".into()
            ),
            (
                FieldErrorKind::Required,
                "spec.imageRegistries.secretRef.name".into()
            ),
            (FieldErrorKind::Invalid, "spec.metrics.port".into()),
            (FieldErrorKind::Invalid, "spec.metrics.interval".into()),
            (
                FieldErrorKind::Required,
                "spec.metrics.allowList.name".into()
            ),
            (
                FieldErrorKind::Invalid,
                "spec.metrics.containers[nginx].port".into()
            ),
        ]
    );
}

#[test]
fn every_workload_problem_is_reported_not_just_the_first() {
    let mut w = workload();
    w.spec.type_ = "vm".into();
    let spec = pod(&mut w);
    spec.containers[0].liveness_probe = Some(Probe::default());
    spec.containers[0].readiness_probe = Some(Probe::default());
    spec.containers[1].name = "nginx".into();
    spec.containers[1].ports = Some(vec![ContainerPort {
        container_port: 9100,
        host_port: Some(9100),
        ..ContainerPort::default()
    }]);
    spec.volumes.as_mut().expect("volumes")[0].host_path = None;
    assert_eq!(
        summary(&validate_edge_workload(&w)),
        vec![
            (FieldErrorKind::NotSupported, "spec.type".into()),
            (
                FieldErrorKind::Forbidden,
                "spec.pod.spec.containers[0].livenessProbe".into()
            ),
            (
                FieldErrorKind::Forbidden,
                "spec.pod.spec.containers[0].readinessProbe".into()
            ),
            (
                FieldErrorKind::Invalid,
                "spec.pod.spec.containers[1].ports[0].hostPort".into()
            ),
            (
                FieldErrorKind::Duplicate,
                "spec.pod.spec.containers[1].name".into()
            ),
            (FieldErrorKind::Forbidden, "spec.pod.spec.volumes[0]".into()),
        ]
    );
}

// ---- EdgeDeviceSignedRequest ----

#[test]
fn signed_request_needs_a_target_namespace_and_known_conditions() {
    let mut request: EdgeDeviceSignedRequest = load("edge_device_signed_request");
    request.spec.target_namespace.clear();
    let conditions = &mut request.status.as_mut().expect("status").conditions;
    conditions[0].type_ = "rejected".into();
    conditions[1].status.clear();
    let errors = validate_edge_device_signed_request(&request);
    assert_eq!(
        summary(&errors),
        vec![
            (FieldErrorKind::Required, "spec.targetNamespace".into()),
            (
                FieldErrorKind::NotSupported,
                "status.conditions[0].type".into()
            ),
            (
                FieldErrorKind::Required,
                "status.conditions[1].status".into()
            ),
        ]
    );
    assert!(
        errors[1]
            .message
            .contains("\"declined\", \"approved\", \"pending\"")
    );

    // A manifest without targetNamespace decodes, and is then reported.
    let request: EdgeDeviceSignedRequest = serde_json::from_value(serde_json::json!({
        "apiVersion": API_VERSION, "kind": "EdgeDeviceSignedRequest",
        "metadata": {"name": "d"}, "spec": {}
    }))
    .expect("decodes");
    assert_eq!(
        summary(&validate_edge_device_signed_request(&request)),
        vec![(FieldErrorKind::Required, "spec.targetNamespace".into())]
    );
}

// ---- EdgeConfig and PlaybookExecution ----

#[test]
fn edge_config_needs_at_least_one_playbook_with_content() {
    let mut config: EdgeConfig = load("edge_config");
    if let Some(p) = config.spec.edge_playbook.as_mut() {
        p.playbooks = Some(vec![]);
    }
    assert_eq!(
        summary(&validate_edge_config(&config)),
        vec![(
            FieldErrorKind::Invalid,
            "spec.edgePlaybook.playbooks".into()
        )]
    );

    let mut config: EdgeConfig = load("edge_config");
    if let Some(p) = config.spec.edge_playbook.as_mut() {
        p.playbooks = None;
    }
    assert_eq!(
        validate_edge_config(&config),
        vec![],
        "absent playbooks are allowed"
    );

    let mut config: EdgeConfig = load("edge_config");
    let playbooks = config
        .spec
        .edge_playbook
        .as_mut()
        .and_then(|p| p.playbooks.as_mut())
        .expect("playbooks");
    playbooks.push(Playbook::default());
    if let Some(options) = playbooks[0].privilege_escalation_options.as_mut() {
        options.become_method = Some("doas".into());
    }
    if let Some(conditions) = config
        .status
        .as_mut()
        .and_then(|s| s.edge_playbook_status.as_mut())
        .and_then(|s| s.conditions.as_mut())
    {
        conditions[0].type_.clear();
    }
    assert_eq!(
        summary(&validate_edge_config(&config)),
        vec![
            (
                FieldErrorKind::NotSupported,
                "spec.edgePlaybook.playbooks[0].privilegeEscalationOptions.becomeMethod".into()
            ),
            (
                FieldErrorKind::Required,
                "spec.edgePlaybook.playbooks[1].content".into()
            ),
            (
                FieldErrorKind::Required,
                "status.edgePlaybookStatus.conditions[0].type".into()
            ),
        ]
    );

    let mut config: EdgeConfig = load("edge_config");
    if let Some(options) = config
        .spec
        .edge_playbook
        .as_mut()
        .and_then(|p| p.playbooks.as_mut())
        .and_then(|p| p[0].privilege_escalation_options.as_mut())
    {
        options.become_method = Some("su".into());
    }
    assert_eq!(validate_edge_config(&config), vec![]);
}

#[test]
fn playbook_execution_checks_its_playbook_and_conditions() {
    let mut execution: PlaybookExecution = load("playbook_execution");
    if let Some(playbook) = execution.spec.playbook.as_mut() {
        playbook.content.0.clear();
        playbook.privilege_escalation_options = Some(PrivilegeEscalationOptions {
            become_method: Some("pbrun".into()),
            ..PrivilegeEscalationOptions::default()
        });
    }
    if let Some(conditions) = execution
        .status
        .as_mut()
        .and_then(|s| s.conditions.as_mut())
    {
        conditions[2].status.clear();
    }
    assert_eq!(
        summary(&validate_playbook_execution(&execution)),
        vec![
            (FieldErrorKind::Required, "spec.playbook.content".into()),
            (
                FieldErrorKind::NotSupported,
                "spec.playbook.privilegeEscalationOptions.becomeMethod".into()
            ),
            (
                FieldErrorKind::Required,
                "status.conditions[2].status".into()
            ),
        ]
    );
}
