//! The standby: another farm, ready, then taking over.

use super::*;

fn standby_spec() -> WorkloadSpec {
    let size = MachineSize::new(2, 4096, 20).expect("valid size");
    WorkloadSpec::Vm(
        VmSpec::new(size, vec![], false, image(), key())
            .expect("valid vm")
            .with_standby(true),
    )
}

fn standby_node(farm_id: u32) -> NodeAssignment {
    NodeAssignment {
        node_id: 21,
        farm_id,
    }
}

fn running_with_standby() -> Vec<DeploymentEvent> {
    let standby = standby_node(2);
    vec![
        requested(standby_spec()),
        assigned(),
        contract(),
        running(),
        DeploymentEvent::StandbyAssigned {
            node: standby,
            reason: None,
            at: t0(),
        },
        DeploymentEvent::StandbyContractCreated {
            contract_id: 43,
            at: t0(),
        },
        DeploymentEvent::StandbyReady { at: t0() },
    ]
}

#[test]
fn a_standby_is_on_another_farm_and_only_for_a_vm_that_asks() {
    let assign = |farm| DeploymentCommand::AssignStandby {
        node: standby_node(farm),
        reason: None,
        at: t0(),
    };
    let running = vec![requested(standby_spec()), assigned(), contract(), running()];
    Deployment::given(running.clone())
        .when(assign(1))
        .then_expect_error(DeploymentError::StandbySameFarm { farm_id: 1 });
    Deployment::given(running).when(assign(2)).then_accepted();
    Deployment::given(running_vm())
        .when(assign(2))
        .then_expect_error(DeploymentError::NoStandby);
}

#[test]
fn a_ready_standby_takes_over_with_its_node_and_contract() {
    let reason = "node 11 unreachable for 31 minutes";
    let d = Deployment::given(running_with_standby())
        .when(DeploymentCommand::FailOver {
            reason: reason.into(),
            at: t0(),
        })
        .then_accepted();
    let s = d.state().expect("state");
    assert_eq!(s.node, Some(standby_node(2)));
    assert_eq!(s.contract_id, Some(43));
    assert_eq!(s.standby, None, "a new standby is to be found");
    assert_eq!(
        s.failover.as_ref().map(|f| (f.from_node, f.to_node)),
        Some((11, 21))
    );
    assert!(
        s.update_pending(),
        "the VM is to be started on the standby's node"
    );
    assert!(s.tried_nodes.contains(&11));
}

#[test]
fn a_standby_that_is_not_ready_cannot_take_over() {
    let mut events = running_with_standby();
    events.pop();
    Deployment::given(events)
        .when(DeploymentCommand::FailOver {
            reason: "down".into(),
            at: t0(),
        })
        .then_expect_error(DeploymentError::InvalidTransition {
            command: "fail_over",
            status: Status::Running,
        });
}

// ---- QSFS backends ----

fn qsfs_spec() -> WorkloadSpec {
    let size = MachineSize::new(2, 4096, 20).expect("valid size");
    WorkloadSpec::Vm(
        VmSpec::new(size, vec![], false, image(), key())
            .expect("valid vm")
            .with_qsfs(vec![100])
            .expect("valid qsfs"),
    )
}

fn zdb_on(node_id: u32, index: u8) -> DeploymentCommand {
    DeploymentCommand::AssignZdb {
        disk: 0,
        index,
        node: NodeAssignment {
            node_id,
            farm_id: 1,
        },
        at: t0(),
    }
}

#[test]
fn a_qsfs_backend_never_shares_a_node_with_the_vm_or_its_siblings() {
    let placed = Deployment::given(vec![requested(qsfs_spec()), assigned()]);
    placed
        .when(zdb_on(11, 0))
        .then_expect_error(DeploymentError::NodeTaken { node_id: 11 });
    let one = placed.when(zdb_on(12, 0)).then_accepted();
    one.when(zdb_on(12, 1))
        .then_expect_error(DeploymentError::NodeTaken { node_id: 12 });
    one.when(zdb_on(13, 1)).then_accepted();
    assert!(matches!(
        one.decide(zdb_on(14, QSFS_BACKENDS)),
        Err(DeploymentError::InvalidTransition { .. })
    ));
}

#[test]
fn qsfs_disks_are_bounded() {
    let size = MachineSize::new(2, 4096, 20).expect("valid size");
    let vm = || VmSpec::new(size, vec![], false, image(), key()).expect("valid vm");
    assert!(vm().with_qsfs(vec![5]).is_err(), "10 GB at least");
    assert!(
        vm().with_qsfs(vec![10, 10, 10]).is_err(),
        "two disks at most"
    );
    assert!(vm().with_qsfs(vec![10, 10_000]).is_ok());
}

// ---- spread clusters ----

fn spread_running() -> Vec<DeploymentEvent> {
    let size = MachineSize::new(2, 4096, 20).expect("valid size");
    let spec = WorkloadSpec::Kubernetes(
        KubernetesSpec::new(1, 2, size, size, false, image(), key())
            .expect("valid cluster")
            .with_spread(true),
    );
    vec![requested(spec), assigned(), contract()]
}

fn worker_on(index: u8, node_id: u32) -> DeploymentCommand {
    DeploymentCommand::AssignWorker {
        index,
        node: NodeAssignment {
            node_id,
            farm_id: 1,
        },
        at: t0(),
    }
}

#[test]
fn a_spread_worker_has_a_node_of_its_own() {
    let d = Deployment::given(spread_running());
    d.when(worker_on(0, 11))
        .then_expect_error(DeploymentError::NodeTaken { node_id: 11 });
    let one = d.when(worker_on(0, 12)).then_accepted();
    one.when(worker_on(1, 12))
        .then_expect_error(DeploymentError::NodeTaken { node_id: 12 });
    assert!(
        matches!(
            one.decide(worker_on(2, 13)),
            Err(DeploymentError::InvalidTransition { .. })
        ),
        "only as many workers as the spec has"
    );
    Deployment::given(vec![requested(k8s_spec()), assigned(), contract()])
        .when(worker_on(0, 12))
        .then_expect_error(DeploymentError::NotACluster);
}

#[test]
fn a_failed_spread_worker_is_released_and_its_node_not_tried_again() {
    let one = Deployment::given(spread_running())
        .when(worker_on(0, 12))
        .then_accepted();
    let released = one
        .when(DeploymentCommand::ReleaseWorker {
            index: 0,
            failure: Some("flist not found".into()),
            at: t0(),
        })
        .then_accepted();
    let s = released.state().expect("state");
    assert!(s.spread_workers.is_empty());
    assert!(s.tried_nodes.contains(&12));
}
