//! The grid proxy part of the SIMULATOR: the catalog of farms and nodes,
//! `GET /nodes` and `GET /farms` in the proxy's JSON shape, the simulated
//! clock, and the node controls.

use std::collections::{BTreeMap, HashSet};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tracing::info;

use marketplace_app::grid::types::{
    GridFarm, GridNode, NodePower, NodeStatus, PowerState, UP_WINDOW_SECS,
};

use super::{Seed, Shared, Sim, SimError};

/// Page size when the request gives none (the proxy's default).
const DEFAULT_PAGE_SIZE: u64 = 50;

/// How old a seed node marked `down` is made, when its own `updatedAt` is
/// too recent to read as down: two days, past the standby window too.
const DOWN_SEED_AGE_SECS: i64 = 2 * 24 * 60 * 60;

// ---------------------------------------------------------------------------
// Simulated state
// ---------------------------------------------------------------------------

/// A catalog node and whether it reports.
pub(super) struct SimNode {
    /// The node as seeded (or posted), with the clock's `updatedAt` and the
    /// chain's rent fields. Its `used_resources` is what is used outside
    /// the simulator (the seed's, or `fill`); [`Sim::render`] adds the
    /// deployments the ZOS SIMULATOR holds.
    pub(super) node: GridNode,
    /// Whether the node sends uptime reports (its `updatedAt` follows the clock).
    pub(super) reporting: bool,
}

impl SimNode {
    /// Whether it answers RMB: it reports and is powered up.
    pub(super) fn answers(&self) -> bool {
        self.reporting && self.node.power.state != PowerState::Down
    }
}

/// The grid's farms and nodes, and the simulated clock.
pub(super) struct Catalog {
    /// Simulated now, unix seconds.
    pub(super) now: i64,
    pub(super) farms: BTreeMap<u32, GridFarm>,
    pub(super) nodes: BTreeMap<u32, SimNode>,
    /// Node ids by the node's twin: RMB addresses a node by its twin.
    node_by_twin: BTreeMap<u32, u32>,
}

impl Catalog {
    pub(super) fn new(seed: Seed, wall_now: i64) -> Catalog {
        let now = seed.now.unwrap_or(wall_now);
        let mut catalog = Catalog {
            now,
            farms: seed.farms.into_iter().map(|f| (f.farm_id, f)).collect(),
            nodes: BTreeMap::new(),
            node_by_twin: BTreeMap::new(),
        };
        for node in seed.nodes {
            let admitted = catalog.admit(node);
            catalog.insert(admitted);
        }
        catalog
    }

    fn insert(&mut self, sim_node: SimNode) {
        let (id, twin) = (sim_node.node.node_id, sim_node.node.twin_id);
        self.node_by_twin.insert(twin, id);
        self.nodes.insert(id, sim_node);
    }

    /// Applies a seed or posted node's `status` to the simulation: `down`
    /// starts silent and old enough to read down; anything else reports now.
    fn admit(&self, mut node: GridNode) -> SimNode {
        let reporting = match node.status {
            NodeStatus::Down => {
                if NodeStatus::derive(node.updated_at, node.power.state, self.now)
                    != NodeStatus::Down
                {
                    node.updated_at = self.now - DOWN_SEED_AGE_SECS;
                }
                false
            }
            NodeStatus::Standby => {
                node.power = NodePower {
                    state: PowerState::Down,
                    target: PowerState::Down,
                };
                node.updated_at = self.now;
                true
            }
            NodeStatus::Up | NodeStatus::Unknown => {
                node.power = NodePower {
                    state: PowerState::Up,
                    target: PowerState::Up,
                };
                node.updated_at = self.now;
                true
            }
        };
        SimNode { node, reporting }
    }

    pub(super) fn node(&self, id: u32) -> Option<&SimNode> {
        self.nodes.get(&id)
    }

    pub(super) fn node_mut(&mut self, id: u32) -> Result<&mut SimNode, SimError> {
        self.nodes.get_mut(&id).ok_or(SimError::NodeNotFound(id))
    }

    /// The node whose twin is `twin_id`.
    pub(super) fn node_by_twin(&self, twin_id: u32) -> Option<&SimNode> {
        self.node_by_twin
            .get(&twin_id)
            .and_then(|id| self.nodes.get(id))
    }

    /// Whether the node can only be rented whole (an extra fee, or its farm).
    pub(super) fn is_dedicated(&self, node: &GridNode) -> bool {
        node.dedicated
            || self
                .farms
                .get(&node.farm_id)
                .is_some_and(|farm| farm.dedicated)
    }

    pub(super) fn advance(&mut self, secs: i64) {
        self.now += secs;
        let now = self.now;
        for sim_node in self.nodes.values_mut().filter(|n| n.reporting) {
            let node = &mut sim_node.node;
            if node.power.state != PowerState::Down {
                node.uptime += secs;
            }
            node.updated_at = now;
        }
    }
}

impl Sim {
    /// The node as the proxy would show it now: the catalog's, with the
    /// capacity the ZOS SIMULATOR's deployments take and the chain's
    /// contracts on it.
    pub(super) fn render(&self, sim_node: &SimNode) -> GridNode {
        let mut node = sim_node.node.clone();
        let now = self.catalog.now;
        node.status = NodeStatus::derive(node.updated_at, node.power.state, now);
        node.healthy = node.status == NodeStatus::Up;
        node.num_gpu = node.gpus.len() as u32;
        if let Some(farm) = self.catalog.farms.get(&node.farm_id) {
            node.farm_name = farm.name.clone();
            node.farm_free_ips = farm.free_ips() as u32;
            node.in_dedicated_farm = farm.dedicated;
            node.dedicated = node.dedicated || farm.dedicated;
        }
        let deployed = self.zos.usage(node.node_id);
        let used = &mut node.used_resources;
        used.cru += deployed.cru;
        used.mru += deployed.mru;
        used.sru += deployed.sru;
        used.hru += deployed.hru;
        node.rentable = node.rentable
            && !node.rented
            && self.chain.active_node_contracts(node.node_id).is_empty();
        node
    }

    fn render_id(&self, id: u32) -> Result<GridNode, SimError> {
        let sim_node = self.catalog.node(id).ok_or(SimError::NodeNotFound(id))?;
        Ok(self.render(sim_node))
    }
}

type Params = Query<Vec<(String, String)>>;

/// The last non-empty value of `name` (the proxy ignores empty values).
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// Every comma-separated value of every `name`.
fn param_list<'a>(params: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    params
        .iter()
        .filter(|(k, _)| k == name)
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

fn parse_number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, SimError> {
    value
        .parse()
        .map_err(|_| SimError::BadQuery(format!("couldn't parse {name} {value:?}")))
}

struct Paging {
    page: u64,
    size: u64,
    ret_count: bool,
}

impl Paging {
    fn parse(params: &[(String, String)]) -> Result<Paging, SimError> {
        let page = param(params, "page")
            .map(|v| parse_number::<u64>("page", v))
            .transpose()?
            .unwrap_or(1);
        let size = param(params, "size")
            .map(|v| parse_number::<u64>("size", v))
            .transpose()?
            .unwrap_or(DEFAULT_PAGE_SIZE);
        if page == 0 || size == 0 {
            return Err(SimError::BadQuery("page and size start at 1".to_owned()));
        }
        Ok(Paging {
            page,
            size,
            ret_count: param(params, "ret_count") == Some("true"),
        })
    }

    /// The page of `items`, with the count headers when asked for.
    fn respond<T: Serialize>(&self, total: usize, page: Vec<T>) -> Response {
        let mut headers = HeaderMap::new();
        if self.ret_count {
            let pages = (total as u64).div_ceil(self.size);
            for (name, value) in [
                ("count", total as u64),
                ("size", self.size),
                ("pages", pages),
            ] {
                headers.insert(name, HeaderValue::from(value));
            }
        }
        (headers, Json(page)).into_response()
    }

    fn window<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        let start = (self.page - 1).saturating_mul(self.size);
        let start = usize::try_from(start)
            .unwrap_or(usize::MAX)
            .min(items.len());
        let end = start.saturating_add(usize::try_from(self.size).unwrap_or(usize::MAX));
        &items[start..end.min(items.len())]
    }
}

/// The `/nodes` filters the simulator honours.
struct NodeFilter {
    farm_ids: Option<HashSet<u32>>,
    statuses: Option<HashSet<NodeStatus>>,
    country: Option<String>,
}

impl NodeFilter {
    fn parse(params: &[(String, String)]) -> Result<NodeFilter, SimError> {
        let farm_ids = param_list(params, "farm_ids");
        let farm_ids = if farm_ids.is_empty() {
            None
        } else {
            Some(
                farm_ids
                    .into_iter()
                    .map(|v| parse_number::<u32>("farm_ids", v))
                    .collect::<Result<_, _>>()?,
            )
        };
        let statuses = param_list(params, "status");
        let statuses = if statuses.is_empty() {
            None
        } else {
            Some(
                statuses
                    .into_iter()
                    .map(|v| match v {
                        "up" => Ok(NodeStatus::Up),
                        "standby" => Ok(NodeStatus::Standby),
                        "down" => Ok(NodeStatus::Down),
                        other => Err(SimError::BadQuery(format!(
                            "status {other:?} is not up, standby or down"
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
            )
        };
        Ok(NodeFilter {
            farm_ids,
            statuses,
            country: param(params, "country").map(str::to_owned),
        })
    }

    fn keeps(&self, node: &GridNode) -> bool {
        self.farm_ids
            .as_ref()
            .is_none_or(|ids| ids.contains(&node.farm_id))
            && self
                .statuses
                .as_ref()
                .is_none_or(|s| s.contains(&node.status))
            && self
                .country
                .as_ref()
                .is_none_or(|c| node.country.eq_ignore_ascii_case(c))
    }
}

pub(super) async fn list_nodes(
    State(shared): State<Shared>,
    Query(params): Params,
) -> Result<Response, SimError> {
    let paging = Paging::parse(&params)?;
    let filter = NodeFilter::parse(&params)?;
    let mut sim = shared.lock();
    sim.settle();
    let matching: Vec<GridNode> = sim
        .catalog
        .nodes
        .values()
        .map(|n| sim.render(n))
        .filter(|n| filter.keeps(n))
        .collect();
    let page = paging.window(&matching).to_vec();
    Ok(paging.respond(matching.len(), page))
}

pub(super) async fn list_farms(
    State(shared): State<Shared>,
    Query(params): Params,
) -> Result<Response, SimError> {
    let paging = Paging::parse(&params)?;
    let sim = shared.lock();
    let farms: Vec<&GridFarm> = sim.catalog.farms.values().collect();
    let page = paging.window(&farms).to_vec();
    Ok(paging.respond(farms.len(), page))
}

/// The simulated clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimClock {
    /// Simulated now, unix seconds.
    pub now: i64,
}

pub(super) async fn clock(State(shared): State<Shared>) -> Json<SimClock> {
    Json(SimClock {
        now: shared.lock().catalog.now,
    })
}

#[derive(Deserialize)]
pub(super) struct Advance {
    minutes: u32,
}

pub(super) async fn advance_clock(
    State(shared): State<Shared>,
    Query(advance): Query<Advance>,
) -> Json<SimClock> {
    let mut sim = shared.lock();
    let from = sim.catalog.now;
    sim.catalog.advance(i64::from(advance.minutes) * 60);
    sim.produce_blocks(from);
    let now = sim.catalog.now;
    info!(
        minutes = advance.minutes,
        now,
        block = sim.chain.block_at(now).number,
        "grid SIMULATOR: clock advanced"
    );
    Json(SimClock { now })
}

pub(super) async fn add_node(
    State(shared): State<Shared>,
    Json(node): Json<GridNode>,
) -> Result<(StatusCode, Json<GridNode>), SimError> {
    let mut sim = shared.lock();
    if sim.catalog.nodes.contains_key(&node.node_id) {
        return Err(SimError::NodeExists(node.node_id));
    }
    if !sim.catalog.farms.contains_key(&node.farm_id) {
        return Err(SimError::UnknownFarm {
            node_id: node.node_id,
            farm_id: node.farm_id,
        });
    }
    let id = node.node_id;
    let admitted = sim.catalog.admit(node);
    let rendered = sim.render(&admitted);
    sim.catalog.insert(admitted);
    info!(node_id = id, "grid proxy SIMULATOR: node added");
    Ok((StatusCode::CREATED, Json(rendered)))
}

pub(super) async fn node_down(
    State(shared): State<Shared>,
    UrlPath(id): UrlPath<u32>,
) -> Result<Json<GridNode>, SimError> {
    let mut sim = shared.lock();
    sim.catalog.node_mut(id)?.reporting = false;
    info!(
        node_id = id,
        "grid proxy SIMULATOR: node stops reporting (reads down after {} min)",
        UP_WINDOW_SECS / 60
    );
    sim.render_id(id).map(Json)
}

pub(super) async fn node_up(
    State(shared): State<Shared>,
    UrlPath(id): UrlPath<u32>,
) -> Result<Json<GridNode>, SimError> {
    let mut sim = shared.lock();
    let now = sim.catalog.now;
    let sim_node = sim.catalog.node_mut(id)?;
    let booted = !sim_node.reporting || sim_node.node.power.state == PowerState::Down;
    if booted {
        // It booted again.
        sim_node.node.uptime = 0;
    }
    sim_node.reporting = true;
    sim_node.node.updated_at = now;
    sim_node.node.power = NodePower {
        state: PowerState::Up,
        target: PowerState::Up,
    };
    if booted {
        sim.uptime.booted(id, now);
    }
    info!(node_id = id, "grid proxy SIMULATOR: node reports again");
    sim.render_id(id).map(Json)
}

pub(super) async fn node_fill(
    State(shared): State<Shared>,
    UrlPath(id): UrlPath<u32>,
) -> Result<Json<GridNode>, SimError> {
    let mut sim = shared.lock();
    let sim_node = sim.catalog.node_mut(id)?;
    sim_node.node.used_resources = sim_node.node.total_resources;
    sim_node.node.rentable = false;
    info!(node_id = id, "grid proxy SIMULATOR: node filled");
    sim.render_id(id).map(Json)
}

#[derive(Deserialize)]
pub(super) struct MoveNode {
    farm_id: u32,
}

/// `POST /sim/nodes/{id}/farm {"farm_id"}`: the node's owner re-registers
/// it under another farm (`tfgridModule.update_node`); emits `NodeUpdated`.
pub(super) async fn node_farm(
    State(shared): State<Shared>,
    UrlPath(id): UrlPath<u32>,
    Json(MoveNode { farm_id }): Json<MoveNode>,
) -> Result<Json<GridNode>, SimError> {
    let mut sim = shared.lock();
    let from = sim.catalog.node(id).map(|n| n.node.farm_id);
    let updated = sim.move_node(id, farm_id)?;
    info!(
        node_id = id,
        from_farm = ?from,
        farm_id,
        block = sim.chain.block_at(sim.catalog.now).number,
        events = updated.len(),
        "grid SIMULATOR: node moved to another farm (NodeUpdated)"
    );
    sim.render_id(id).map(Json)
}
