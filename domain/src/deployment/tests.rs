//! Given / when / then: every rule of the Deployment aggregate.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::actor::{Actor, Role};
use crate::testing::Scenario;

impl Scenario for Deployment {}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn key() -> SshPublicKey {
    SshPublicKey::new("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq alice@laptop").expect("valid key")
}

fn image() -> FlistImage {
    FlistImage::new("https://hub.grid.tf/tf-official-apps/base:latest.flist").expect("valid image")
}

fn vm_spec() -> WorkloadSpec {
    let size = MachineSize::new(2, 4096, 20).expect("valid size");
    WorkloadSpec::Vm(VmSpec::new(size, vec![50], true, image(), key()).expect("valid vm"))
}

fn k8s_spec() -> WorkloadSpec {
    let size = MachineSize::new(2, 4096, 20).expect("valid size");
    WorkloadSpec::Kubernetes(
        KubernetesSpec::new(1, 2, size, size, false, image(), key()).expect("valid cluster"),
    )
}

fn alice() -> Actor {
    Actor::new("alice", Role::CloudUser)
}
fn bob() -> Actor {
    Actor::new("bob", Role::CloudUser)
}
fn operator() -> Actor {
    Actor::new("ops", Role::CloudOperator)
}

fn requested(spec: WorkloadSpec) -> DeploymentEvent {
    DeploymentEvent::DeploymentRequested {
        owner: "alice".into(),
        name: DeploymentName::new("web1").expect("valid name"),
        kind: spec.kind(),
        spec,
        placement: Placement::default(),
        at: t0(),
    }
}

fn assigned() -> DeploymentEvent {
    DeploymentEvent::NodeAssigned {
        node: NodeAssignment {
            node_id: 11,
            farm_id: 1,
        },
        reason: None,
        at: t0(),
    }
}

fn contract() -> DeploymentEvent {
    DeploymentEvent::ContractCreated {
        contract_id: 42,
        rent_contract_id: None,
        at: t0(),
    }
}

fn ok(name: &str) -> WorkloadStatus {
    WorkloadStatus::new(name, WorkloadState::Ok, None)
}

fn running() -> DeploymentEvent {
    DeploymentEvent::DeploymentRunning {
        workloads: vec![ok("web1")],
        at: t0(),
    }
}

fn running_vm() -> Vec<DeploymentEvent> {
    vec![requested(vm_spec()), assigned(), contract(), running()]
}

fn grace_started(at: DateTime<Utc>) -> DeploymentEvent {
    DeploymentEvent::GracePeriodStarted {
        at,
        contract_id: None,
    }
}

// ---- request ----

#[test]
fn a_request_on_a_new_id_is_accepted() {
    let cmd = DeploymentCommand::Request {
        owner: "alice".into(),
        name: DeploymentName::new("web1").expect("valid"),
        spec: vm_spec(),
        placement: Placement::default(),
        at: t0(),
    };
    Deployment::given(vec![])
        .when(cmd)
        .then_expect_events(vec![requested(vm_spec())]);
}

#[test]
fn a_second_request_on_the_same_id_is_refused() {
    let cmd = DeploymentCommand::Request {
        owner: "alice".into(),
        name: DeploymentName::new("web1").expect("valid"),
        spec: vm_spec(),
        placement: Placement::default(),
        at: t0(),
    };
    Deployment::given(vec![requested(vm_spec())])
        .when(cmd)
        .then_expect_error(DeploymentError::AlreadyExists);
}

#[test]
fn any_other_command_on_a_new_id_is_not_found() {
    let cmd = DeploymentCommand::Cancel {
        by: alice(),
        reason: None,
        at: t0(),
    };
    Deployment::given(vec![])
        .when(cmd)
        .then_expect_error(DeploymentError::NotFound);
}

// ---- placement, contract, running ----

#[test]
fn a_requested_deployment_is_placed_on_a_node() {
    let node = NodeAssignment {
        node_id: 11,
        farm_id: 1,
    };
    Deployment::given(vec![requested(vm_spec())])
        .when(DeploymentCommand::AssignNode {
            node,
            reason: None,
            at: t0(),
        })
        .then_expect_events(vec![assigned()]);
}

#[test]
fn a_placed_deployment_cannot_be_placed_again() {
    let node = NodeAssignment {
        node_id: 12,
        farm_id: 1,
    };
    Deployment::given(vec![requested(vm_spec()), assigned()])
        .when(DeploymentCommand::AssignNode {
            node,
            reason: None,
            at: t0(),
        })
        .then_expect_error(DeploymentError::InvalidTransition {
            command: "assign_node",
            status: Status::Placed,
        });
}

#[test]
fn a_contract_needs_a_node_first() {
    Deployment::given(vec![requested(vm_spec())])
        .when(DeploymentCommand::RecordContractCreated {
            contract_id: 42,
            rent_contract_id: None,
            at: t0(),
        })
        .then_expect_error(DeploymentError::InvalidTransition {
            command: "record_contract_created",
            status: Status::Requested,
        });
}

#[test]
fn contract_id_zero_is_refused() {
    Deployment::given(vec![requested(vm_spec()), assigned()])
        .when(DeploymentCommand::RecordContractCreated {
            contract_id: 0,
            rent_contract_id: None,
            at: t0(),
        })
        .then_expect_error(DeploymentError::InvalidContractId);
}

#[test]
fn a_contract_on_a_placed_deployment_starts_provisioning() {
    let d = Deployment::given(vec![requested(vm_spec()), assigned()]);
    d.when(DeploymentCommand::RecordContractCreated {
        contract_id: 42,
        rent_contract_id: None,
        at: t0(),
    })
    .then_expect_events(vec![contract()]);
    let d = Deployment::given(vec![requested(vm_spec()), assigned(), contract()]);
    assert_eq!(d.state().map(|s| s.status), Some(Status::Provisioning));
    assert_eq!(d.state().and_then(|s| s.contract_id), Some(42));
}

#[test]
fn running_needs_every_workload_ok() {
    let d = Deployment::given(vec![requested(vm_spec()), assigned(), contract()]);
    let init = WorkloadStatus::new("web1", WorkloadState::Init, None);
    d.when(DeploymentCommand::MarkRunning {
        workloads: vec![init],
        at: t0(),
    })
    .then_expect_error(DeploymentError::WorkloadNotReady {
        workload: "web1".into(),
        state: WorkloadState::Init,
    });
    d.when(DeploymentCommand::MarkRunning {
        workloads: vec![ok("web1")],
        at: t0(),
    })
    .then_expect_events(vec![running()]);
}

#[test]
fn running_reports_must_name_the_deployments_workloads() {
    let d = Deployment::given(vec![requested(k8s_spec()), assigned(), contract()]);
    d.when(DeploymentCommand::MarkRunning {
        workloads: vec![ok("web1master0")],
        at: t0(),
    })
    .then_expect_error(DeploymentError::WorkloadsMismatch {
        expected: vec![
            "web1master0".into(),
            "web1worker0".into(),
            "web1worker1".into(),
        ],
    });
    let all = vec![ok("web1master0"), ok("web1worker0"), ok("web1worker1")];
    assert!(d
        .decide(DeploymentCommand::MarkRunning {
            workloads: all,
            at: t0()
        })
        .is_ok());
}

#[test]
fn running_cannot_be_marked_before_the_contract() {
    Deployment::given(vec![requested(vm_spec()), assigned()])
        .when(DeploymentCommand::MarkRunning {
            workloads: vec![ok("web1")],
            at: t0(),
        })
        .then_expect_error(DeploymentError::InvalidTransition {
            command: "mark_running",
            status: Status::Placed,
        });
}

#[test]
fn a_failure_records_the_workload_states_and_reason() {
    let d = Deployment::given(vec![requested(vm_spec()), assigned(), contract()]);
    let err = WorkloadStatus::new("web1", WorkloadState::Error, Some("no space".into()));
    let cmd = DeploymentCommand::MarkFailed {
        workloads: vec![err.clone()],
        reason: "workload error".into(),
        at: t0(),
    };
    d.when(cmd)
        .then_expect_events(vec![DeploymentEvent::DeploymentFailed {
            workloads: vec![err],
            reason: "workload error".into(),
            at: t0(),
        }]);
}

#[test]
fn a_failure_needs_a_reason() {
    let d = Deployment::given(vec![requested(vm_spec()), assigned(), contract()]);
    d.when(DeploymentCommand::MarkFailed {
        workloads: vec![],
        reason: "  ".into(),
        at: t0(),
    })
    .then_expect_error(DeploymentError::MissingReason);
}

#[test]
fn a_requested_deployment_fails_when_no_node_can_take_it() {
    let cmd = DeploymentCommand::MarkFailed {
        workloads: vec![],
        reason: "no node in Belgium with 8 free vCPUs".into(),
        at: t0(),
    };
    Deployment::given(vec![requested(vm_spec())])
        .when(cmd)
        .then_expect_events(vec![DeploymentEvent::DeploymentFailed {
            workloads: vec![],
            reason: "no node in Belgium with 8 free vCPUs".into(),
            at: t0(),
        }]);
}

#[test]
fn a_cancelled_deployment_cannot_fail() {
    let cancelled = DeploymentEvent::DeploymentCancelled {
        by: alice(),
        reason: None,
        at: t0(),
    };
    Deployment::given(vec![requested(vm_spec()), cancelled])
        .when(DeploymentCommand::MarkFailed {
            workloads: vec![],
            reason: "x".into(),
            at: t0(),
        })
        .then_expect_error(DeploymentError::InvalidTransition {
            command: "mark_failed",
            status: Status::Cancelled,
        });
}

// ---- attempts ----

fn abandoned(reason: &str) -> DeploymentEvent {
    DeploymentEvent::ProvisioningAttemptFailed {
        node_id: 11,
        contract_id: Some(42),
        reason: reason.into(),
        at: t0(),
    }
}

#[test]
fn a_failed_attempt_releases_the_node_and_its_contract() {
    Deployment::given(vec![requested(vm_spec()), assigned(), contract()])
        .when(DeploymentCommand::AbandonAttempt {
            reason: "workload web1: image not found".into(),
            at: t0(),
        })
        .then_expect_events(vec![abandoned("workload web1: image not found")]);
}

#[test]
fn after_a_failed_attempt_the_deployment_is_placed_again_and_remembers_the_node() {
    let d = Deployment::given(vec![
        requested(vm_spec()),
        assigned(),
        contract(),
        abandoned("stalled"),
    ]);
    let s = d.state().expect("requested");
    assert_eq!(s.status, Status::Requested);
    assert_eq!(s.tried_nodes, vec![11]);
    assert_eq!((s.node, s.contract_id), (None, None));
    d.when(DeploymentCommand::AssignNode {
        node: NodeAssignment {
            node_id: 12,
            farm_id: 1,
        },
        reason: Some("next cheapest".into()),
        at: t0(),
    })
    .then_accepted();
}

#[test]
fn only_a_placed_or_provisioning_attempt_can_be_abandoned() {
    for (given, status) in [
        (vec![requested(vm_spec())], Status::Requested),
        (
            vec![requested(vm_spec()), assigned(), contract(), running()],
            Status::Running,
        ),
    ] {
        Deployment::given(given)
            .when(DeploymentCommand::AbandonAttempt {
                reason: "x".into(),
                at: t0(),
            })
            .then_expect_error(DeploymentError::InvalidTransition {
                command: "abandon_attempt",
                status,
            });
    }
    Deployment::given(vec![requested(vm_spec()), assigned()])
        .when(DeploymentCommand::AbandonAttempt {
            reason: " ".into(),
            at: t0(),
        })
        .then_expect_error(DeploymentError::MissingReason);
}

// ---- resize ----

#[test]
fn the_owner_resizes_a_running_vm() {
    let bigger = MachineSize::new(4, 8192, 40).expect("valid");
    let cmd = DeploymentCommand::Resize {
        by: alice(),
        resize: ResizeSpec::new(bigger, None).expect("valid"),
        at: t0(),
    };
    let WorkloadSpec::Vm(vm) = vm_spec() else {
        unreachable!("a vm")
    };
    let spec = WorkloadSpec::Vm(VmSpec { size: bigger, ..vm });
    Deployment::given(running_vm())
        .when(cmd)
        .then_expect_events(vec![DeploymentEvent::DeploymentResized {
            spec,
            by: alice(),
            at: t0(),
        }]);
}

#[test]
fn an_operator_may_resize_but_another_user_may_not() {
    let bigger = MachineSize::new(4, 8192, 40).expect("valid");
    let resize = ResizeSpec::new(bigger, None).expect("valid");
    let d = Deployment::given(running_vm());
    assert!(d
        .decide(DeploymentCommand::Resize {
            by: operator(),
            resize,
            at: t0()
        })
        .is_ok());
    d.when(DeploymentCommand::Resize {
        by: bob(),
        resize,
        at: t0(),
    })
    .then_expect_error(DeploymentError::NotPermitted);
}

#[test]
fn a_resize_is_pending_until_its_revision_runs() {
    let bigger = MachineSize::new(4, 8192, 40).expect("valid");
    let resized = Deployment::given(running_vm())
        .when(DeploymentCommand::Resize {
            by: alice(),
            resize: ResizeSpec::new(bigger, None).expect("valid"),
            at: t0(),
        })
        .then_accepted();
    let s = resized.state().expect("running");
    assert_eq!(
        (s.status, s.revision, s.running_revision),
        (Status::Running, 1, Some(0))
    );
    assert!(s.update_pending());
    let after = resized
        .when(DeploymentCommand::MarkRunning {
            workloads: vec![ok("web1")],
            at: t0(),
        })
        .then_accepted();
    assert!(!after.state().expect("running").update_pending());
}

#[test]
fn resize_only_while_running() {
    let bigger = MachineSize::new(4, 8192, 40).expect("valid");
    let resize = ResizeSpec::new(bigger, None).expect("valid");
    Deployment::given(vec![requested(vm_spec())])
        .when(DeploymentCommand::Resize {
            by: alice(),
            resize,
            at: t0(),
        })
        .then_expect_error(DeploymentError::InvalidTransition {
            command: "resize",
            status: Status::Requested,
        });
}

#[test]
fn a_resize_to_the_same_size_is_refused() {
    let same = MachineSize::new(2, 4096, 20).expect("valid");
    Deployment::given(running_vm())
        .when(DeploymentCommand::Resize {
            by: alice(),
            resize: ResizeSpec::new(same, None).expect("valid"),
            at: t0(),
        })
        .then_expect_error(DeploymentError::ResizeUnchanged);
}

#[test]
fn a_root_disk_never_shrinks() {
    let smaller = MachineSize::new(4, 8192, 10).expect("valid");
    Deployment::given(running_vm())
        .when(DeploymentCommand::Resize {
            by: alice(),
            resize: ResizeSpec::new(smaller, None).expect("valid"),
            at: t0(),
        })
        .then_expect_error(DeploymentError::DiskShrink {
            from_gb: 20,
            to_gb: 10,
        });
}

#[test]
fn a_vm_has_no_workers_to_resize() {
    let size = MachineSize::new(4, 8192, 40).expect("valid");
    Deployment::given(running_vm())
        .when(DeploymentCommand::Resize {
            by: alice(),
            resize: ResizeSpec::new(size, Some(3)).expect("valid"),
            at: t0(),
        })
        .then_expect_error(DeploymentError::NotACluster);
}

#[test]
fn a_cluster_resize_changes_its_workers() {
    let all = vec![ok("web1master0"), ok("web1worker0"), ok("web1worker1")];
    let d = Deployment::given(vec![
        requested(k8s_spec()),
        assigned(),
        contract(),
        DeploymentEvent::DeploymentRunning {
            workloads: all,
            at: t0(),
        },
    ]);
    let size = MachineSize::new(2, 4096, 20).expect("valid");
    let events = d
        .decide(DeploymentCommand::Resize {
            by: alice(),
            resize: ResizeSpec::new(size, Some(5)).expect("valid"),
            at: t0(),
        })
        .expect("accepted");
    let [DeploymentEvent::DeploymentResized {
        spec: WorkloadSpec::Kubernetes(k),
        ..
    }] = events.as_slice()
    else {
        panic!("expected one resize, got {events:?}");
    };
    assert_eq!((k.workers, k.masters), (5, 1));
}

// ---- cancel and delete ----

#[test]
fn the_owner_cancels_at_any_live_stage() {
    for events in [
        vec![requested(vm_spec())],
        vec![requested(vm_spec()), assigned()],
        vec![requested(vm_spec()), assigned(), contract()],
        running_vm(),
    ] {
        let cmd = DeploymentCommand::Cancel {
            by: alice(),
            reason: Some("done".into()),
            at: t0(),
        };
        Deployment::given(events).when(cmd).then_expect_events(vec![
            DeploymentEvent::DeploymentCancelled {
                by: alice(),
                reason: Some("done".into()),
                at: t0(),
            },
        ]);
    }
}

#[test]
fn an_operator_cancels_but_another_user_cannot() {
    let d = Deployment::given(running_vm());
    assert!(d
        .decide(DeploymentCommand::Cancel {
            by: operator(),
            reason: None,
            at: t0()
        })
        .is_ok());
    d.when(DeploymentCommand::Cancel {
        by: bob(),
        reason: None,
        at: t0(),
    })
    .then_expect_error(DeploymentError::NotPermitted);
}

#[test]
fn a_cancelled_deployment_cannot_be_cancelled_again() {
    let mut events = running_vm();
    events.push(DeploymentEvent::DeploymentCancelled {
        by: alice(),
        reason: None,
        at: t0(),
    });
    Deployment::given(events)
        .when(DeploymentCommand::Cancel {
            by: alice(),
            reason: None,
            at: t0(),
        })
        .then_expect_error(DeploymentError::InvalidTransition {
            command: "cancel",
            status: Status::Cancelled,
        });
}

#[test]
fn a_cancelled_deployment_is_deleted_as_cancelled_by_user() {
    let mut events = running_vm();
    events.push(DeploymentEvent::DeploymentCancelled {
        by: alice(),
        reason: None,
        at: t0(),
    });
    let d = Deployment::given(events);
    d.when(DeploymentCommand::Delete {
        cause: DeletionCause::CanceledByUser,
        at: t0(),
    })
    .then_expect_events(vec![DeploymentEvent::DeploymentDeleted {
        cause: DeletionCause::CanceledByUser,
        at: t0(),
    }]);
}

#[test]
fn a_running_deployment_is_not_deleted_as_cancelled_by_user() {
    Deployment::given(running_vm())
        .when(DeploymentCommand::Delete {
            cause: DeletionCause::CanceledByUser,
            at: t0(),
        })
        .then_expect_error(DeploymentError::CauseNotAllowed {
            cause: DeletionCause::CanceledByUser,
            status: Status::Running,
        });
}

#[test]
fn the_collective_may_delete_at_any_live_stage() {
    let d = Deployment::given(running_vm());
    assert!(d
        .decide(DeploymentCommand::Delete {
            cause: DeletionCause::CanceledByCollective,
            at: t0()
        })
        .is_ok());
}

#[test]
fn a_deleted_deployment_refuses_everything() {
    let mut events = running_vm();
    events.push(DeploymentEvent::DeploymentDeleted {
        cause: DeletionCause::CanceledByCollective,
        at: t0(),
    });
    let d = Deployment::given(events);
    d.when(DeploymentCommand::Delete {
        cause: DeletionCause::CanceledByCollective,
        at: t0(),
    })
    .then_expect_error(DeploymentError::InvalidTransition {
        command: "delete",
        status: Status::Deleted,
    });
    d.when(DeploymentCommand::Cancel {
        by: alice(),
        reason: None,
        at: t0(),
    })
    .then_expect_error(DeploymentError::InvalidTransition {
        command: "cancel",
        status: Status::Deleted,
    });
    d.when(DeploymentCommand::StartGracePeriod {
        contract_id: None,
        at: t0(),
    })
    .then_expect_error(DeploymentError::InvalidTransition {
        command: "start_grace_period",
        status: Status::Deleted,
    });
}

#[test]
fn a_failed_deployment_is_deleted_when_its_contract_is_cancelled() {
    let mut events = vec![requested(vm_spec()), assigned(), contract()];
    events.push(DeploymentEvent::DeploymentFailed {
        workloads: vec![],
        reason: "stall".into(),
        at: t0(),
    });
    Deployment::given(events)
        .when(DeploymentCommand::Delete {
            cause: DeletionCause::CanceledByUser,
            at: t0(),
        })
        .then_expect_events(vec![DeploymentEvent::DeploymentDeleted {
            cause: DeletionCause::CanceledByUser,
            at: t0(),
        }]);
}

#[test]
fn overlong_free_text_is_refused() {
    let long = "x".repeat(1_001);
    Deployment::given(running_vm())
        .when(DeploymentCommand::Cancel {
            by: alice(),
            reason: Some(long),
            at: t0(),
        })
        .then_expect_error(DeploymentError::TextTooLong { max: 1_000 });
}

// ---- value objects ----

#[test]
fn machine_sizes_are_bounded() {
    assert!(MachineSize::new(1, 256, 1).is_ok());
    assert!(MachineSize::new(32, 262_144, 10_000).is_ok());
    assert_eq!(
        MachineSize::new(0, 1024, 10).map_err(|e| e.field),
        Err("cpu".to_string())
    );
    assert_eq!(
        MachineSize::new(33, 1024, 10).map_err(|e| e.field),
        Err("cpu".to_string())
    );
    assert_eq!(
        MachineSize::new(1, 255, 10).map_err(|e| e.field),
        Err("memory_mib".to_string())
    );
    assert_eq!(
        MachineSize::new(1, 1024, 0).map_err(|e| e.field),
        Err("rootfs_gb".to_string())
    );
}

#[test]
fn names_are_lowercase_alphanumerics_starting_with_a_letter() {
    assert!(DeploymentName::new("web1").is_ok());
    for bad in ["", "a", "1web", "Web", "web-1", "web 1", &"a".repeat(51)] {
        assert!(
            DeploymentName::new(bad).is_err(),
            "{bad:?} should be refused"
        );
    }
}

#[test]
fn images_must_be_https_flists() {
    assert!(FlistImage::new("https://hub.grid.tf/x/ubuntu-22.04.flist").is_ok());
    for bad in [
        "http://hub.grid.tf/x.flist",
        "https://hub.grid.tf/x.tar",
        "https://.flist",
        "https://a b.flist",
    ] {
        assert!(FlistImage::new(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn ssh_keys_must_look_like_openssh_keys() {
    assert!(SshPublicKey::new("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== me").is_ok());
    for bad in [
        "",
        "hello",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP==",
        "ssh-ed25519 short",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\nAAAA",
    ] {
        assert!(SshPublicKey::new(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn disks_and_cluster_counts_are_bounded() {
    let size = MachineSize::new(1, 1024, 10).expect("valid");
    assert_eq!(
        VmSpec::new(size, vec![0], false, image(), key()).map_err(|e| e.field),
        Err("disks_gb".into())
    );
    assert_eq!(
        VmSpec::new(size, vec![1; 9], false, image(), key()).map_err(|e| e.field),
        Err("disks_gb".into())
    );
    assert_eq!(
        KubernetesSpec::new(2, 1, size, size, false, image(), key()).map_err(|e| e.field),
        Err("masters".into())
    );
    assert_eq!(
        KubernetesSpec::new(3, 51, size, size, false, image(), key()).map_err(|e| e.field),
        Err("workers".into())
    );
}

#[test]
fn placement_is_validated() {
    assert!(Placement::new(
        Some(Country::new("Belgium").expect("valid")),
        Some(1),
        true,
        false,
        9_500
    )
    .is_ok());
    assert_eq!(
        Placement::new(None, Some(0), false, false, 0).map_err(|e| e.field),
        Err("farm_id".into())
    );
    assert_eq!(
        Placement::new(None, None, false, false, 10_001).map_err(|e| e.field),
        Err("min_uptime_bps".into())
    );
    assert!(Country::new("B").is_err());
    assert!(Country::new("1234").is_err());
}

#[test]
fn spec_errors_name_their_nested_field() {
    let err = MachineSize::new(0, 1024, 10)
        .expect_err("cpu 0")
        .under("worker_size");
    assert_eq!(err.field, "worker_size.cpu");
}

#[test]
fn a_cluster_prices_every_machine() {
    let machines = k8s_spec().machines();
    assert_eq!(machines.len(), 3);
    assert!(machines
        .iter()
        .all(|m| m.cru == 2 && m.mru_mib == 4096 && m.sru_gb == 20));
    let vm = vm_spec().machines();
    assert_eq!(vm.len(), 1);
    assert_eq!(
        (vm[0].sru_gb, vm[0].ipv4),
        (70, 1),
        "root and extra disks are SSD; one IPv4"
    );
}

#[test]
fn events_survive_a_snapshot_round_trip() {
    let d = Deployment::given(running_vm());
    let json = serde_json::to_value(&d).expect("serialise");
    let back: Deployment = serde_json::from_value(json).expect("deserialise");
    assert_eq!(back, d);
}

#[path = "standby_tests.rs"]
mod standby;

#[path = "billing_tests.rs"]
mod billing;
