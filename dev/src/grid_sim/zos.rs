//! The ZOS SIMULATOR: what every catalog node holds and how it answers its
//! RMB commands. It is not ZOS: nothing runs; a node checks a deployment
//! against the simulated chain and its free capacity as ZOS does, and then
//! reports each workload `init`, and `ok` (or `error`) once the configured
//! wall-clock delay has passed. States are worked out lazily when read
//! ([`Zos::settle`]), so no background task is needed.
//!
//! Real ZOS checks the contract after it has accepted a deployment, and
//! marks the deployment's workloads `error` when the check fails; the
//! simulator refuses at once, with ZOS's wording, which a deployer handles
//! the same way (it cancels the contract it created).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use marketplace_app::tfchain::{Contract, NodeContract};
use marketplace_app::zos::types::UsersStatistics;
use marketplace_app::zos::{Capacity, Deployment, ResultState, Statistics, Workload};

/// What a node does with workloads it accepts (the test controls).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Behaviour {
    /// They turn `ok` after the delay.
    #[default]
    Normal,
    /// They turn `error` with this message after the delay.
    Fail(String),
    /// They stay `init`.
    Stall,
}

/// A node's refusal: RMB's `err{code, message}`. The codes are the
/// simulator's (HTTP-like), the messages ZOS's where ZOS has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refused {
    pub(super) code: u32,
    pub(super) message: String,
}

fn refused(code: u32, message: impl Into<String>) -> Refused {
    Refused {
        code,
        message: message.into(),
    }
}

/// What a node knows of itself from the catalog.
pub(super) struct NodeFacts {
    pub(super) node_id: u32,
    pub(super) total: Capacity,
    /// Used outside the simulator (the catalog's `used_resources`).
    pub(super) used_elsewhere: Capacity,
}

/// The clocks a command runs at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clocks {
    /// Simulated now, unix seconds (result timestamps).
    pub(super) now: i64,
    /// Wall-clock now (when workloads settle).
    pub(super) instant: Instant,
    /// How long accepted workloads stay `init`.
    pub(super) delay: Duration,
}

/// Where a workload is headed, and when it gets there.
struct Pending {
    due: Instant,
    outcome: Outcome,
}

enum Outcome {
    Ok(Value),
    Error(String),
    Never,
}

/// A deployment a node holds.
struct Hosted {
    deployment: Deployment,
    /// Every result change, oldest first (`zos.deployment.changes`).
    changes: Vec<Workload>,
    /// Workloads still `init`, by name.
    pending: BTreeMap<String, Pending>,
}

/// One node's ZOS.
#[derive(Default)]
pub(super) struct ZosNode {
    pub(super) behaviour: Behaviour,
    /// Set by the `unreachable` control: the node does not answer RMB.
    pub(super) unreachable: bool,
    deployments: BTreeMap<u64, Hosted>,
    last_deployment_timestamp: i64,
}

/// Every node's ZOS, by node id (created on first use).
#[derive(Default)]
pub(super) struct Zos {
    nodes: BTreeMap<u32, ZosNode>,
}

impl Zos {
    pub(super) fn node(&self, node_id: u32) -> Option<&ZosNode> {
        self.nodes.get(&node_id)
    }

    pub(super) fn node_mut(&mut self, node_id: u32) -> &mut ZosNode {
        self.nodes.entry(node_id).or_default()
    }

    /// Moves every workload whose delay has passed to its outcome.
    pub(super) fn settle(&mut self, clocks: Clocks) {
        for node in self.nodes.values_mut() {
            for hosted in node.deployments.values_mut() {
                hosted.settle(clocks);
            }
        }
    }

    /// What the node's live deployments take (workloads in `error` or
    /// `deleted` take nothing).
    pub(super) fn usage(&self, node_id: u32) -> Capacity {
        self.nodes
            .get(&node_id)
            .map(ZosNode::usage)
            .unwrap_or_default()
    }

    /// What each deployment with no workload still `init` uses, by
    /// contract: what the node reports to the chain.
    pub(super) fn settled_usage(&self) -> Vec<(u64, Capacity)> {
        self.nodes
            .values()
            .flat_map(|node| &node.deployments)
            .filter(|(_, hosted)| hosted.pending.is_empty())
            .map(|(id, hosted)| (*id, hosted.usage()))
            .collect()
    }

    /// The contract entered (`paused`) or left its grace period: the node
    /// pauses its running workloads, or runs its paused ones again.
    pub(super) fn set_paused(&mut self, node_id: u32, contract_id: u64, paused: bool, now: i64) {
        let Some(hosted) = self
            .nodes
            .get_mut(&node_id)
            .and_then(|node| node.deployments.get_mut(&contract_id))
        else {
            return;
        };
        let (from, to) = if paused {
            (ResultState::Ok, ResultState::Paused)
        } else {
            (ResultState::Paused, ResultState::Ok)
        };
        for workload in hosted.deployment.workloads.iter_mut() {
            if workload.result.state == from {
                workload.result.state = to;
                workload.result.created = now;
                hosted.changes.push(workload.clone());
            }
        }
    }

    /// The contract is gone: the node drops its deployment.
    pub(super) fn drop_deployment(&mut self, node_id: u32, contract_id: u64) {
        if let Some(node) = self.nodes.get_mut(&node_id) {
            node.deployments.remove(&contract_id);
        }
    }
}

impl Hosted {
    fn settle(&mut self, clocks: Clocks) {
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due <= clocks.instant && !matches!(p.outcome, Outcome::Never))
            .map(|(name, _)| name.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        // In the deployment's workload order, so `changes` reads naturally.
        for workload in self.deployment.workloads.iter_mut() {
            if !due.contains(&workload.name) {
                continue;
            }
            let Some(pending) = self.pending.remove(&workload.name) else {
                continue;
            };
            let result = &mut workload.result;
            result.created = clocks.now;
            match pending.outcome {
                Outcome::Ok(data) => {
                    result.state = ResultState::Ok;
                    result.message = String::new();
                    result.data = data;
                }
                Outcome::Error(message) => {
                    result.state = ResultState::Error;
                    result.message = message;
                    result.data = Value::Null;
                }
                Outcome::Never => {}
            }
            self.changes.push(workload.clone());
        }
    }

    fn usage(&self) -> Capacity {
        self.deployment
            .workloads
            .iter()
            .filter(|w| !matches!(w.result.state, ResultState::Error | ResultState::Deleted))
            .filter_map(|w| workload_capacity(w).ok())
            .fold(Capacity::default(), add)
    }
}

impl ZosNode {
    fn usage(&self) -> Capacity {
        self.deployments
            .values()
            .map(Hosted::usage)
            .fold(Capacity::default(), add)
    }

    /// `zos.deployment.deploy` from `source_twin`, whose contract (if any) is
    /// `contract`.
    pub(super) fn deploy(
        &mut self,
        facts: &NodeFacts,
        contract: Option<&Contract>,
        source_twin: u32,
        mut deployment: Deployment,
        clocks: Clocks,
    ) -> Result<(), Refused> {
        check_twin(&deployment, source_twin)?;
        if deployment.version != 0 {
            return Err(refused(
                400,
                "expected version to be 0 on deployment creation: invalid version",
            ));
        }
        if self.deployments.contains_key(&deployment.contract_id) {
            return Err(refused(409, "exists"));
        }
        let needs = deployment_capacity(&deployment)?;
        let node_contract = check_contract(facts, contract, &deployment)?;
        check_public_ips(node_contract, needs)?;
        self.check_fits(facts, needs, Capacity::default())?;

        let original = deployment.clone();
        let mut pending = BTreeMap::new();
        let mut changes = Vec::new();
        for (index, workload) in deployment.workloads.iter_mut().enumerate() {
            pending.insert(
                workload.name.clone(),
                self.accept(workload, index, &original, facts, node_contract, clocks),
            );
            changes.push(workload.clone());
        }
        self.last_deployment_timestamp = clocks.now;
        self.deployments.insert(
            deployment.contract_id,
            Hosted {
                deployment,
                changes,
                pending,
            },
        );
        Ok(())
    }

    /// `zos.deployment.update`: a higher version of a deployment the node
    /// holds, whose contract already carries its hash.
    pub(super) fn update(
        &mut self,
        facts: &NodeFacts,
        contract: Option<&Contract>,
        source_twin: u32,
        mut update: Deployment,
        clocks: Clocks,
    ) -> Result<(), Refused> {
        check_twin(&update, source_twin)?;
        let current = self
            .deployments
            .get(&update.contract_id)
            .filter(|h| h.deployment.twin_id == source_twin)
            .ok_or_else(|| refused(404, "deployment does not exist"))?;
        if update.version <= current.deployment.version {
            return Err(refused(
                400,
                format!(
                    "invalid version: the update's version {} is not above the current {}",
                    update.version, current.deployment.version
                ),
            ));
        }
        let needs = deployment_capacity(&update)?;
        let node_contract = check_contract(facts, contract, &update)?;
        check_public_ips(node_contract, needs)?;
        self.check_fits(facts, needs, current.usage())?;

        let Some(mut hosted) = self.deployments.remove(&update.contract_id) else {
            return Err(refused(404, "deployment does not exist"));
        };
        let original = update.clone();
        for (index, workload) in update.workloads.iter_mut().enumerate() {
            let old = hosted
                .deployment
                .workloads
                .iter()
                .find(|w| w.name == workload.name);
            match old {
                Some(old) if workload.version < update.version => {
                    // Unchanged by this version: it keeps its result.
                    workload.result = old.result.clone();
                }
                _ => {
                    let next =
                        self.accept(workload, index, &original, facts, node_contract, clocks);
                    hosted.pending.insert(workload.name.clone(), next);
                    hosted.changes.push(workload.clone());
                }
            }
        }
        for old in &hosted.deployment.workloads {
            if update.workload(&old.name).is_none() {
                hosted.pending.remove(&old.name);
                let mut gone = old.clone();
                gone.result.state = ResultState::Deleted;
                gone.result.message = "deleted by an update".to_owned();
                gone.result.created = clocks.now;
                hosted.changes.push(gone);
            }
        }
        hosted.deployment = update;
        self.deployments
            .insert(hosted.deployment.contract_id, hosted);
        Ok(())
    }

    /// `zos.deployment.get`.
    pub(super) fn get(&self, source_twin: u32, contract_id: u64) -> Result<&Deployment, Refused> {
        self.hosted(source_twin, contract_id).map(|h| &h.deployment)
    }

    /// `zos.deployment.changes`.
    pub(super) fn changes(
        &self,
        source_twin: u32,
        contract_id: u64,
    ) -> Result<&[Workload], Refused> {
        self.hosted(source_twin, contract_id)
            .map(|h| h.changes.as_slice())
    }

    /// Every deployment the node holds (the test control).
    pub(super) fn deployments(&self) -> Vec<&Deployment> {
        self.deployments.values().map(|h| &h.deployment).collect()
    }

    /// `zos.statistics.get`.
    pub(super) fn statistics(&self, facts: &NodeFacts) -> Statistics {
        let workloads = self
            .deployments
            .values()
            .flat_map(|h| &h.deployment.workloads)
            .filter(|w| !matches!(w.result.state, ResultState::Error | ResultState::Deleted))
            .count();
        Statistics {
            total: facts.total,
            used: add(facts.used_elsewhere, self.usage()),
            system: Capacity::default(),
            users: UsersStatistics {
                deployments: self.deployments.len() as u64,
                workloads: workloads as u64,
                last_deployment_timestamp: self.last_deployment_timestamp,
            },
        }
    }

    fn hosted(&self, source_twin: u32, contract_id: u64) -> Result<&Hosted, Refused> {
        self.deployments
            .get(&contract_id)
            .filter(|h| h.deployment.twin_id == source_twin)
            .ok_or_else(|| refused(404, "deployment not found"))
    }

    fn check_fits(
        &self,
        facts: &NodeFacts,
        needs: Capacity,
        freed: Capacity,
    ) -> Result<(), Refused> {
        let used = add(facts.used_elsewhere, sub(self.usage(), freed));
        let free = sub(facts.total, used);
        let short = needs.cru > free.cru
            || needs.mru > free.mru
            || needs.sru > free.sru
            || needs.hru > free.hru;
        if short {
            return Err(refused(
                422,
                format!(
                    "not enough capacity on node {}: needs cru {} mru {} sru {} hru {}, \
                     free cru {} mru {} sru {} hru {}",
                    facts.node_id,
                    needs.cru,
                    needs.mru,
                    needs.sru,
                    needs.hru,
                    free.cru,
                    free.mru,
                    free.sru,
                    free.hru
                ),
            ));
        }
        Ok(())
    }

    /// Sets the workload `init` and says where it is headed.
    fn accept(
        &self,
        workload: &mut Workload,
        index: usize,
        deployment: &Deployment,
        facts: &NodeFacts,
        contract: &NodeContract,
        clocks: Clocks,
    ) -> Pending {
        workload.result.created = clocks.now;
        workload.result.state = ResultState::Init;
        workload.result.message = String::new();
        workload.result.data = Value::Null;
        let outcome = match &self.behaviour {
            Behaviour::Normal => Outcome::Ok(ok_data(workload, index, deployment, facts, contract)),
            Behaviour::Fail(message) => Outcome::Error(message.clone()),
            Behaviour::Stall => Outcome::Never,
        };
        Pending {
            due: clocks.instant + clocks.delay,
            outcome,
        }
    }
}

fn check_twin(deployment: &Deployment, source_twin: u32) -> Result<(), Refused> {
    if deployment.twin_id != source_twin {
        return Err(refused(
            403,
            format!(
                "twin id mismatch (deployment: {}, message: {})",
                deployment.twin_id, source_twin
            ),
        ));
    }
    Ok(())
}

/// ZOS's contract validation: a live node contract on this node, of the
/// deployment's twin, carrying the deployment's hash.
fn check_contract<'a>(
    facts: &NodeFacts,
    contract: Option<&'a Contract>,
    deployment: &Deployment,
) -> Result<&'a NodeContract, Refused> {
    let contract = contract
        .filter(|c| !c.is_deleted())
        .ok_or_else(|| refused(422, "failed to get deployment contract: contract not found"))?;
    let node_contract = contract
        .node_contract()
        .ok_or_else(|| refused(422, "invalid contract type, expecting node contract"))?;
    if node_contract.node_id != facts.node_id {
        return Err(refused(422, "invalid node address in contract"));
    }
    if contract.twin_id != deployment.twin_id {
        return Err(refused(
            422,
            format!(
                "contract {} belongs to twin {}, not to the deployment's twin {}",
                contract.contract_id, contract.twin_id, deployment.twin_id
            ),
        ));
    }
    if node_contract.deployment_hash != deployment.deployment_hash() {
        return Err(refused(422, "contract hash does not match deployment hash"));
    }
    Ok(node_contract)
}

fn check_public_ips(contract: &NodeContract, needs: Capacity) -> Result<(), Refused> {
    if needs.ipv4u > contract.public_ips_list.len() as u64 {
        return Err(refused(
            422,
            format!(
                "the deployment asks for {} public IPv4 but its contract reserves {}",
                needs.ipv4u,
                contract.public_ips_list.len()
            ),
        ));
    }
    Ok(())
}

fn deployment_capacity(deployment: &Deployment) -> Result<Capacity, Refused> {
    let mut names = std::collections::BTreeSet::new();
    let mut total = Capacity::default();
    for workload in &deployment.workloads {
        if !names.insert(workload.name.as_str()) {
            return Err(refused(
                400,
                format!("multiple workloads with the same name '{}'", workload.name),
            ));
        }
        total = add(total, workload_capacity(workload)?);
    }
    Ok(total)
}

/// What one workload takes, as ZOS counts it: a zmachine its cores, memory
/// and rootfs (SSD); a zmount or volume its size (SSD); a zdb its size
/// (HDD); a qsfs its cache (SSD); an `ip` with `v4` one public IPv4;
/// networks nothing.
pub(super) fn workload_capacity(workload: &Workload) -> Result<Capacity, Refused> {
    let data = &workload.data;
    let number = |value: &Value| value.as_u64().unwrap_or(0);
    let capacity = match workload.kind.as_str() {
        "zmachine" => Capacity {
            cru: number(&data["compute_capacity"]["cpu"]),
            mru: number(&data["compute_capacity"]["memory"]),
            sru: number(&data["size"]),
            ..Capacity::default()
        },
        "zmount" | "volume" => Capacity {
            sru: number(&data["size"]),
            ..Capacity::default()
        },
        "zdb" => Capacity {
            hru: number(&data["size"]),
            ..Capacity::default()
        },
        "qsfs" => Capacity {
            sru: number(&data["cache"]),
            ..Capacity::default()
        },
        "ip" | "ipv4" => Capacity {
            ipv4u: u64::from(workload.kind == "ipv4" || data["v4"].as_bool() == Some(true)),
            ..Capacity::default()
        },
        "network" | "network-light" => Capacity::default(),
        other => return Err(refused(400, format!("unknown workload type '{other}'"))),
    };
    Ok(capacity)
}

/// The `ok` result data a workload reports.
fn ok_data(
    workload: &Workload,
    index: usize,
    deployment: &Deployment,
    facts: &NodeFacts,
    contract: &NodeContract,
) -> Value {
    let all = &deployment.workloads;
    let id = format!(
        "{}-{}-{}",
        deployment.twin_id, deployment.contract_id, workload.name
    );
    match workload.kind.as_str() {
        "zmachine" => {
            let network = &workload.data["network"];
            let private = network["interfaces"][0]["ip"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("10.20.{}.{}", facts.node_id % 250, 2 + index % 250));
            let prefix = private.rsplit_once('.').map_or("10.20.0", |(p, _)| p);
            let host: u32 = private
                .rsplit_once('.')
                .and_then(|(_, h)| h.parse().ok())
                .unwrap_or(2);
            let mycelium = if network["mycelium"].is_null() {
                String::new()
            } else {
                format!(
                    "4{:02x}:{:x}:{:x}::{:x}",
                    facts.node_id % 256,
                    deployment.twin_id & 0xffff,
                    deployment.contract_id & 0xffff,
                    index + 2
                )
            };
            json!({
                "id": id,
                "ip": private,
                "planetary_ip": "",
                "mycelium_ip": mycelium,
                "console_url": format!("{prefix}.1:{}", 20_000 + host),
            })
        }
        "ip" | "ipv4" => {
            // The n-th ip workload holds the contract's n-th reserved IP.
            let nth = all[..index]
                .iter()
                .filter(|w| workload_capacity(w).is_ok_and(|c| c.ipv4u > 0))
                .count();
            match contract.public_ips_list.get(nth) {
                Some(ip) => json!({ "ip": ip.ip, "ip6": "", "gateway": ip.gateway }),
                None => json!({ "ip": "", "ip6": "", "gateway": "" }),
            }
        }
        "zmount" | "volume" => json!({ "volume_id": id }),
        "zdb" => json!({
            "Namespace": id,
            "IPs": [format!("10.20.{}.254", facts.node_id % 250)],
            "Port": 9900,
        }),
        "qsfs" => json!({
            "path": format!("/mnt/{id}"),
            "metrics_endpoint": format!("http://10.20.{}.253:9100/metrics", facts.node_id % 250),
        }),
        _ => json!({}),
    }
}

fn add(a: Capacity, b: Capacity) -> Capacity {
    Capacity {
        cru: a.cru.saturating_add(b.cru),
        sru: a.sru.saturating_add(b.sru),
        hru: a.hru.saturating_add(b.hru),
        mru: a.mru.saturating_add(b.mru),
        ipv4u: a.ipv4u.saturating_add(b.ipv4u),
    }
}

fn sub(a: Capacity, b: Capacity) -> Capacity {
    Capacity {
        cru: a.cru.saturating_sub(b.cru),
        sru: a.sru.saturating_sub(b.sru),
        hru: a.hru.saturating_sub(b.hru),
        mru: a.mru.saturating_sub(b.mru),
        ipv4u: a.ipv4u.saturating_sub(b.ipv4u),
    }
}

#[cfg(test)]
#[path = "zos_tests.rs"]
mod tests;
