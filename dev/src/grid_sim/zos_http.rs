//! The ZOS SIMULATOR's HTTP routes: RMB's envelope over `POST /rmb` (the
//! shape `marketplace_app`'s `HttpRmb` speaks) and the node controls.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::{debug, info};

use marketplace_app::zos::rmb::wire::{Envelope, Reply, ReplyError};
use marketplace_app::zos::{Capacity, Deployment};

use super::zos::{Behaviour, Clocks, NodeFacts, Refused};
use super::{Shared, Sim, SimError};

impl Sim {
    pub(super) fn clocks(&self) -> Clocks {
        Clocks {
            now: self.catalog.now,
            instant: Instant::now(),
            delay: self.options.workload_delay,
        }
    }

    /// Lets every workload whose delay has passed reach its outcome.
    pub(super) fn settle(&mut self) {
        let clocks = self.clocks();
        self.zos.settle(clocks);
        self.report_used_resources();
    }

    fn facts(&self, node_id: u32) -> Option<NodeFacts> {
        let node = &self.catalog.node(node_id)?.node;
        let farm_ips = self
            .catalog
            .farms
            .get(&node.farm_id)
            .map_or(0, |f| f.public_ips.len() as u64);
        let (total, used) = (node.total_resources, node.used_resources);
        Some(NodeFacts {
            node_id,
            total: Capacity {
                cru: total.cru,
                sru: total.sru,
                hru: total.hru,
                mru: total.mru,
                ipv4u: farm_ips,
            },
            used_elsewhere: Capacity {
                cru: used.cru,
                sru: used.sru,
                hru: used.hru,
                mru: used.mru,
                ipv4u: 0,
            },
        })
    }
}

fn plain(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Refused> {
    serde_json::from_slice(bytes).map_err(|e| Refused {
        code: 400,
        message: format!("invalid {what}: {e}"),
    })
}

#[derive(Deserialize)]
struct ContractArg {
    contract_id: u64,
}

/// `POST /rmb`: one RMB command to the node whose twin is `dst`. 504 when
/// the node does not answer (it stopped reporting, is powered down, or the
/// `unreachable` control is on), 404 when no node has that twin.
pub(super) async fn rmb(State(shared): State<Shared>, body: Bytes) -> Response {
    let envelope: Envelope = match serde_json::from_slice(&body) {
        Ok(envelope) => envelope,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("not an RMB envelope: {e}")),
    };
    let source = envelope.src.split(':').next().unwrap_or_default();
    let Ok(source_twin) = source.parse::<u32>() else {
        return plain(
            StatusCode::BAD_REQUEST,
            format!("src {:?} is not a twin id", envelope.src),
        );
    };
    let [destination] = envelope.dst.as_slice() else {
        return plain(
            StatusCode::BAD_REQUEST,
            "the ZOS SIMULATOR takes exactly one destination twin".to_owned(),
        );
    };
    let expires = envelope
        .now
        .saturating_add(i64::try_from(envelope.exp).unwrap_or(i64::MAX));
    if expires < unix_now() {
        return plain(
            StatusCode::GATEWAY_TIMEOUT,
            "the envelope expired".to_owned(),
        );
    }
    let dat = match BASE64.decode(envelope.dat.as_bytes()) {
        Ok(dat) => dat,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("dat is not base64: {e}")),
    };

    let mut sim = shared.lock();
    sim.settle();
    let Some(sim_node) = sim.catalog.node_by_twin(*destination) else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("no node has twin {destination}"),
        );
    };
    let node_id = sim_node.node.node_id;
    let unreachable = sim.zos.node(node_id).is_some_and(|n| n.unreachable);
    if !sim_node.answers() || unreachable {
        return plain(
            StatusCode::GATEWAY_TIMEOUT,
            format!("node {node_id} (twin {destination}) does not answer"),
        );
    }
    let Some(facts) = sim.facts(node_id) else {
        return plain(StatusCode::NOT_FOUND, format!("no node {node_id}"));
    };
    let outcome = command(&mut sim, &facts, source_twin, &envelope.cmd, &dat);
    match &outcome {
        Ok(_) => debug!(node_id, cmd = %envelope.cmd, source_twin, "ZOS SIMULATOR: command served"),
        Err(e) => info!(node_id, cmd = %envelope.cmd, source_twin, code = e.code,
            "ZOS SIMULATOR: command refused: {}", e.message),
    }
    let (dat, err) = match outcome {
        Ok(Some(value)) => (Some(BASE64.encode(value.to_string())), None),
        Ok(None) => (None, None),
        Err(Refused { code, message }) => (None, Some(ReplyError { code, message })),
    };
    Json(Reply {
        ver: 1,
        reference: envelope.reference,
        src: destination.to_string(),
        dst: vec![envelope.src],
        dat,
        err,
    })
    .into_response()
}

fn command(
    sim: &mut Sim,
    facts: &NodeFacts,
    source_twin: u32,
    cmd: &str,
    dat: &[u8],
) -> Result<Option<Value>, Refused> {
    let clocks = sim.clocks();
    match cmd {
        "zos.deployment.deploy" | "zos.deployment.update" => {
            let deployment: Deployment = decode(dat, "deployment")?;
            let contract = sim.chain.live_contract(deployment.contract_id).cloned();
            let contract_id = deployment.contract_id;
            let node = sim.zos.node_mut(facts.node_id);
            if cmd == "zos.deployment.deploy" {
                node.deploy(facts, contract.as_ref(), source_twin, deployment, clocks)?;
            } else {
                node.update(facts, contract.as_ref(), source_twin, deployment, clocks)?;
            }
            info!(
                node_id = facts.node_id,
                contract_id, cmd, "ZOS SIMULATOR: deployment accepted"
            );
            Ok(None)
        }
        "zos.deployment.get" => {
            let ContractArg { contract_id } = decode(dat, "arguments")?;
            let node = sim.zos.node_mut(facts.node_id);
            Ok(to_json(node.get(source_twin, contract_id)?))
        }
        "zos.deployment.changes" => {
            let ContractArg { contract_id } = decode(dat, "arguments")?;
            let node = sim.zos.node_mut(facts.node_id);
            Ok(to_json(node.changes(source_twin, contract_id)?))
        }
        "zos.deployment.delete" => Err(Refused {
            code: 400,
            message: "deletion over the api is disabled, please cancel your contract instead"
                .to_owned(),
        }),
        "zos.statistics.get" => {
            let node = sim.zos.node_mut(facts.node_id);
            Ok(to_json(&node.statistics(facts)))
        }
        other => Err(Refused {
            code: 404,
            message: format!("the ZOS SIMULATOR has no command {other}"),
        }),
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Option<Value> {
    Some(serde_json::to_value(value).unwrap_or(Value::Null))
}

fn known_node(sim: &Sim, id: u32) -> Result<(), SimError> {
    sim.catalog
        .node(id)
        .map(drop)
        .ok_or(SimError::NodeNotFound(id))
}

#[derive(Deserialize)]
pub(super) struct FailWith {
    message: String,
}

/// `POST /sim/zos/nodes/{id}/fail {"message"}`: new workloads end in `error`.
pub(super) async fn node_fail(
    State(shared): State<Shared>,
    UrlPath(id): UrlPath<u32>,
    Json(FailWith { message }): Json<FailWith>,
) -> Result<StatusCode, SimError> {
    let mut sim = shared.lock();
    known_node(&sim, id)?;
    info!(node_id = id, %message, "ZOS SIMULATOR: new workloads on this node will fail");
    sim.zos.node_mut(id).behaviour = Behaviour::Fail(message);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /sim/zos/nodes/{id}/stall`: new workloads stay `init`.
pub(super) async fn node_stall(
    State(shared): State<Shared>,
    UrlPath(id): UrlPath<u32>,
) -> Result<StatusCode, SimError> {
    let mut sim = shared.lock();
    known_node(&sim, id)?;
    info!(
        node_id = id,
        "ZOS SIMULATOR: new workloads on this node will stall"
    );
    sim.zos.node_mut(id).behaviour = Behaviour::Stall;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /sim/zos/nodes/{id}/unreachable`: the node stops answering RMB.
pub(super) async fn node_unreachable(
    State(shared): State<Shared>,
    UrlPath(id): UrlPath<u32>,
) -> Result<StatusCode, SimError> {
    let mut sim = shared.lock();
    known_node(&sim, id)?;
    info!(node_id = id, "ZOS SIMULATOR: node stops answering RMB");
    sim.zos.node_mut(id).unreachable = true;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /sim/zos/nodes/{id}/heal`: back to normal (answers, workloads
/// turn `ok`).
pub(super) async fn node_heal(
    State(shared): State<Shared>,
    UrlPath(id): UrlPath<u32>,
) -> Result<StatusCode, SimError> {
    let mut sim = shared.lock();
    known_node(&sim, id)?;
    info!(node_id = id, "ZOS SIMULATOR: node healed");
    let node = sim.zos.node_mut(id);
    node.behaviour = Behaviour::Normal;
    node.unreachable = false;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /sim/zos/nodes/{id}/deployments`: what the node holds.
pub(super) async fn node_deployments(
    State(shared): State<Shared>,
    UrlPath(id): UrlPath<u32>,
) -> Result<Json<Vec<Deployment>>, SimError> {
    let mut sim = shared.lock();
    known_node(&sim, id)?;
    sim.settle();
    let held = sim
        .zos
        .node(id)
        .map(|n| n.deployments().into_iter().cloned().collect())
        .unwrap_or_default();
    Ok(Json(held))
}
