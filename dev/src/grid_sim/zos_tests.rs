//! The ZOS SIMULATOR's node logic, without HTTP.

use super::*;
use marketplace_app::tfchain::{ContractData, ContractState, PublicIp};
use marketplace_app::zos::{SignatureRequirement, WorkloadResult};

const GIB: u64 = 1 << 30;

fn facts() -> NodeFacts {
    NodeFacts {
        node_id: 2,
        total: Capacity {
            cru: 8,
            mru: 16 * GIB,
            sru: 100 * GIB,
            hru: 0,
            ipv4u: 3,
        },
        used_elsewhere: Capacity {
            cru: 2,
            ..Capacity::default()
        },
    }
}

fn workload(name: &str, kind: &str, data: Value) -> Workload {
    Workload {
        version: 0,
        name: name.to_owned(),
        kind: kind.to_owned(),
        data,
        metadata: String::new(),
        description: String::new(),
        result: WorkloadResult::default(),
    }
}

fn vm(cpu: u64) -> Workload {
    workload(
        "vm",
        "zmachine",
        json!({
            "flist": "https://hub.grid.tf/x.flist",
            "size": 10 * GIB,
            "compute_capacity": {"cpu": cpu, "memory": 2 * GIB},
            "network": {"public_ip": "ip", "interfaces": [{"network": "net", "ip": "10.20.2.5"}], "mycelium": {"hex_seed": "00"}},
        }),
    )
}

fn deployment(workloads: Vec<Workload>) -> Deployment {
    Deployment {
        version: 0,
        twin_id: 10_000,
        contract_id: 1,
        metadata: String::new(),
        description: String::new(),
        expiration: 0,
        signature_requirement: SignatureRequirement::default(),
        workloads,
    }
}

fn contract_for(d: &Deployment, node_id: u32, ips: usize) -> Contract {
    Contract {
        version: 4,
        state: ContractState::Created,
        contract_id: d.contract_id,
        twin_id: d.twin_id,
        contract_type: ContractData::NodeContract(NodeContract {
            node_id,
            deployment_hash: d.deployment_hash(),
            deployment_data: String::new(),
            public_ips: ips as u32,
            public_ips_list: (0..ips)
                .map(|k| PublicIp {
                    ip: format!("198.18.1.{}/24", 10 + k),
                    gateway: "198.18.1.1".to_owned(),
                })
                .collect(),
        }),
        solution_provider_id: None,
    }
}

fn clocks(delay_ms: u64) -> Clocks {
    Clocks {
        now: 1_000,
        instant: Instant::now(),
        delay: Duration::from_millis(delay_ms),
    }
}

fn later(c: Clocks) -> Clocks {
    Clocks {
        now: c.now + 6,
        instant: c.instant + c.delay,
        ..c
    }
}

fn state(node: &ZosNode, name: &str) -> ResultState {
    let d = node.get(10_000, 1).expect("held");
    d.workload(name).expect("workload").result.state
}

#[test]
fn capacity_is_counted_as_zos_counts_it() {
    let d = deployment(vec![
        vm(2),
        workload("disk", "zmount", json!({"size": 5 * GIB})),
        workload("db", "zdb", json!({"size": 7 * GIB, "mode": "user"})),
        workload("ip", "ip", json!({"v4": true, "v6": false})),
        workload("net", "network-light", json!({"subnet": "10.20.2.0/24"})),
    ]);
    let needs = deployment_capacity(&d).expect("known types");
    assert_eq!(
        needs,
        Capacity {
            cru: 2,
            mru: 2 * GIB,
            sru: 15 * GIB,
            hru: 7 * GIB,
            ipv4u: 1
        }
    );
    let odd = deployment(vec![workload("gw", "gateway-name-proxy", json!({}))]);
    assert_eq!(deployment_capacity(&odd).map_err(|e| e.code), Err(400));
    let twice = deployment(vec![vm(1), vm(1)]);
    assert!(deployment_capacity(&twice).is_err());
}

#[test]
fn a_deploy_is_checked_against_its_contract_like_zos_does() {
    let d = deployment(vec![vm(1)]);
    let mut node = ZosNode::default();
    let c = clocks(0);
    let refuse = |node: &mut ZosNode, contract: Option<&Contract>, src: u32, d: Deployment| {
        node.deploy(&facts(), contract, src, d, c)
            .expect_err("refused")
            .message
    };
    let good = contract_for(&d, 2, 0);
    assert!(refuse(&mut node, Some(&good), 10_001, d.clone()).starts_with("twin id mismatch"));
    assert!(refuse(&mut node, None, 10_000, d.clone()).contains("contract not found"));
    let elsewhere = contract_for(&d, 3, 0);
    assert_eq!(
        refuse(&mut node, Some(&elsewhere), 10_000, d.clone()),
        "invalid node address in contract"
    );
    let mut stale = good.clone();
    if let ContractData::NodeContract(nc) = &mut stale.contract_type {
        nc.deployment_hash = "00".repeat(16);
    }
    assert_eq!(
        refuse(&mut node, Some(&stale), 10_000, d.clone()),
        "contract hash does not match deployment hash"
    );
    let mut foreign = good.clone();
    foreign.twin_id = 10_007;
    assert!(refuse(&mut node, Some(&foreign), 10_000, d.clone()).contains("twin 10007"));
    let big = deployment(vec![vm(7)]);
    assert!(
        refuse(&mut node, Some(&contract_for(&big, 2, 0)), 10_000, big)
            .starts_with("not enough capacity")
    );
    let with_ip = deployment(vec![vm(1), workload("ip", "ip", json!({"v4": true}))]);
    assert!(refuse(
        &mut node,
        Some(&contract_for(&with_ip, 2, 0)),
        10_000,
        with_ip
    )
    .contains("public IPv4"));

    node.deploy(&facts(), Some(&good), 10_000, d.clone(), c)
        .expect("accepted");
    assert_eq!(refuse(&mut node, Some(&good), 10_000, d), "exists");
    assert_eq!(
        node.get(10_001, 1).map_err(|e| e.message),
        Err("deployment not found".to_owned())
    );
}

#[test]
fn workloads_settle_after_the_delay_into_their_outcome() {
    let d = deployment(vec![vm(1), workload("ip", "ip", json!({"v4": true}))]);
    let contract = contract_for(&d, 2, 1);
    let c = clocks(500);
    let mut zos = Zos::default();
    zos.node_mut(2)
        .deploy(&facts(), Some(&contract), 10_000, d.clone(), c)
        .expect("accepted");
    zos.settle(c);
    assert_eq!(state(zos.node_mut(2), "vm"), ResultState::Init);
    assert_eq!(zos.usage(2).cru, 1);
    zos.settle(later(c));
    let node = zos.node_mut(2);
    assert_eq!(state(node, "vm"), ResultState::Ok);
    let held = node.get(10_000, 1).expect("held");
    let vm_data = &held.workload("vm").expect("vm").result.data;
    assert_eq!(vm_data["ip"], "10.20.2.5");
    assert_eq!(vm_data["console_url"], "10.20.2.1:20005");
    assert!(vm_data["mycelium_ip"]
        .as_str()
        .is_some_and(|ip| ip.starts_with('4')));
    assert_eq!(
        held.workload("ip").expect("ip").result.data["ip"],
        "198.18.1.10/24"
    );
    let changes: Vec<(String, ResultState)> = node
        .changes(10_000, 1)
        .expect("changes")
        .iter()
        .map(|w| (w.name.clone(), w.result.state))
        .collect();
    assert_eq!(
        changes,
        [
            ("vm".to_owned(), ResultState::Init),
            ("ip".to_owned(), ResultState::Init),
            ("vm".to_owned(), ResultState::Ok),
            ("ip".to_owned(), ResultState::Ok),
        ]
    );
    let stats = node.statistics(&facts());
    assert_eq!(stats.used.cru, 3);
    assert_eq!(stats.used.ipv4u, 1);
    assert_eq!(stats.users.deployments, 1);
    assert_eq!(stats.users.workloads, 2);

    zos.drop_deployment(2, 1);
    assert_eq!(zos.usage(2), Capacity::default());
}

#[test]
fn fail_and_stall_change_what_new_workloads_become() {
    let d = deployment(vec![vm(1)]);
    let contract = contract_for(&d, 2, 0);
    let c = clocks(0);
    let mut zos = Zos::default();
    zos.node_mut(2).behaviour = Behaviour::Fail("disk on fire".to_owned());
    zos.node_mut(2)
        .deploy(&facts(), Some(&contract), 10_000, d.clone(), c)
        .expect("accepted");
    zos.settle(later(c));
    let held = zos.node_mut(2).get(10_000, 1).expect("held").clone();
    let vm = held.workload("vm").expect("vm");
    assert_eq!(vm.result.state, ResultState::Error);
    assert_eq!(vm.result.message, "disk on fire");
    assert_eq!(zos.usage(2), Capacity::default(), "an error takes nothing");

    zos.drop_deployment(2, 1);
    zos.node_mut(2).behaviour = Behaviour::Stall;
    zos.node_mut(2)
        .deploy(&facts(), Some(&contract), 10_000, d, c)
        .expect("accepted");
    zos.settle(later(later(c)));
    assert_eq!(state(zos.node_mut(2), "vm"), ResultState::Init);
}

#[test]
fn an_update_restarts_what_changed_and_deletes_what_went() {
    let first = deployment(vec![
        vm(1),
        workload("disk", "zmount", json!({"size": GIB})),
    ]);
    let c = clocks(0);
    let mut zos = Zos::default();
    zos.node_mut(2)
        .deploy(
            &facts(),
            Some(&contract_for(&first, 2, 0)),
            10_000,
            first.clone(),
            c,
        )
        .expect("accepted");
    zos.settle(later(c));

    let mut second = first.clone();
    second.version = 1;
    second.workloads.truncate(1);
    second.workloads[0].version = 1;
    second.workloads[0].data["compute_capacity"]["cpu"] = json!(2);
    let node = zos.node_mut(2);
    let err = node
        .update(
            &facts(),
            Some(&contract_for(&first, 2, 0)),
            10_000,
            second.clone(),
            c,
        )
        .expect_err("the contract still has the old hash");
    assert_eq!(err.message, "contract hash does not match deployment hash");
    node.update(
        &facts(),
        Some(&contract_for(&second, 2, 0)),
        10_000,
        second.clone(),
        c,
    )
    .expect("updated");
    assert_eq!(state(node, "vm"), ResultState::Init);
    let err = node
        .update(
            &facts(),
            Some(&contract_for(&second, 2, 0)),
            10_000,
            second,
            c,
        )
        .expect_err("same version");
    assert!(
        err.message.starts_with("invalid version"),
        "{}",
        err.message
    );
    zos.settle(later(c));
    let node = zos.node_mut(2);
    assert_eq!(state(node, "vm"), ResultState::Ok);
    let last: Vec<(String, ResultState)> = node
        .changes(10_000, 1)
        .expect("changes")
        .iter()
        .skip(4)
        .map(|w| (w.name.clone(), w.result.state))
        .collect();
    assert_eq!(
        last,
        [
            ("vm".to_owned(), ResultState::Init),
            ("disk".to_owned(), ResultState::Deleted),
            ("vm".to_owned(), ResultState::Ok),
        ]
    );
    assert_eq!(zos.usage(2).cru, 2);
    assert_eq!(zos.usage(2).sru, 10 * GIB);
}
