//! A grid proxy **SIMULATOR** for development and tests. It is not the grid
//! proxy: it serves a made-up catalog, in the proxy's JSON shape, from
//! memory.
//!
//! It answers `GET /nodes` and `GET /farms` like the proxy: `page` (from 1),
//! `size` (default 50) and `ret_count=true` (headers `count`, `size`,
//! `pages`), items in id order. `/nodes` honours three of the proxy's
//! filters, `farm_ids` (comma separated), `status` (`up`, `standby`, `down`,
//! comma separated or repeated) and `country` (case-insensitive); any other
//! parameter is ignored. Node `status` is derived on every read from
//! `updatedAt`, the power state and the simulated clock, with the proxy's
//! rule (see [`NodeStatus::derive`]).
//!
//! Time is simulated: it stands still until `POST /sim/clock/advance`. A
//! node that is *reporting* gets `updatedAt` = the simulated now at start and
//! on every advance, as if it had sent its uptime report.
//!
//! Control endpoints:
//! - `GET  /sim/clock` → `{"now": <unix secs>}`
//! - `POST /sim/clock/advance?minutes=N` → advances the clock; answers the clock
//! - `POST /sim/nodes/{id}/down` → the node stops reporting (its `updatedAt`
//!   freezes; it reads `down` once that is over 80 minutes old)
//! - `POST /sim/nodes/{id}/up` → the node is powered up and reports now
//! - `POST /sim/nodes/{id}/fill` → used resources = total resources
//! - `POST /sim/nodes` with a node item → adds the node (201)
//!
//! A [`Seed`] is the starting catalog: `{"now": <optional unix secs>,
//! "farms": [<proxy farm items>], "nodes": [<proxy node items>]}`. A seed
//! node whose `status` is `down` starts silent; any other starts reporting
//! (`standby` ones powered down). Without `now` the clock starts at the wall
//! clock.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use marketplace_app::grid::types::{
    Capacity, FarmCertification, FarmPublicIp, GridFarm, GridNode, Location, NodeCertification,
    NodeGpu, NodePower, NodeStatus, PowerState, PublicConfig, UP_WINDOW_SECS,
};

/// Page size when the request gives none (the proxy's default).
const DEFAULT_PAGE_SIZE: u64 = 50;

/// How old a seed node marked `down` is made, when its own `updatedAt` is
/// too recent to read as down: two days, past the standby window too.
const DOWN_SEED_AGE_SECS: i64 = 2 * 24 * 60 * 60;

/// The instant generated catalogs are dated from (2025-01-01T00:00:00Z).
const GENERATED_EPOCH: i64 = 1_735_689_600;

const GIB: u64 = 1 << 30;
const GB: u64 = 1_000_000_000;
const TB: u64 = 1_000_000_000_000;
const HOUR: i64 = 60 * 60;
const DAY: i64 = 24 * HOUR;

// ---------------------------------------------------------------------------
// Seed
// ---------------------------------------------------------------------------

/// The catalog a simulator starts from, in the proxy's item shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seed {
    /// Where the simulated clock starts (unix seconds); the wall clock when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<i64>,
    /// Farms, as `GET /farms` items.
    pub farms: Vec<GridFarm>,
    /// Nodes, as `GET /nodes` items. `status: "down"` starts silent.
    pub nodes: Vec<GridNode>,
}

/// Why a seed cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The file cannot be read.
    #[error("reading grid seed {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a seed.
    #[error("parsing grid seed {origin}: {source}")]
    Parse {
        /// The file, or `<inline>`.
        origin: String,
        /// Where and why.
        #[source]
        source: serde_json::Error,
    },
    /// The seed contradicts itself.
    #[error("invalid grid seed: {0}")]
    Invalid(String),
}

impl Seed {
    /// Reads a seed file (JSON, see the module docs) and checks it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Seed, SeedError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses a seed from JSON text and checks it.
    pub fn from_json(text: &str) -> Result<Seed, SeedError> {
        Self::parse(text, "<inline>")
    }

    fn parse(text: &str, origin: &str) -> Result<Seed, SeedError> {
        let seed: Seed = serde_json::from_str(text).map_err(|source| SeedError::Parse {
            origin: origin.to_owned(),
            source,
        })?;
        seed.validate()?;
        Ok(seed)
    }

    /// Checks that ids are unique and every node's farm exists.
    pub fn validate(&self) -> Result<(), SeedError> {
        let mut farms = HashSet::new();
        for farm in &self.farms {
            if !farms.insert(farm.farm_id) {
                return Err(SeedError::Invalid(format!(
                    "farm {} appears twice",
                    farm.farm_id
                )));
            }
        }
        let mut nodes = HashSet::new();
        for node in &self.nodes {
            if !nodes.insert(node.node_id) {
                return Err(SeedError::Invalid(format!(
                    "node {} appears twice",
                    node.node_id
                )));
            }
            if !farms.contains(&node.farm_id) {
                return Err(SeedError::Invalid(format!(
                    "node {} belongs to farm {}, which is not in the seed",
                    node.node_id, node.farm_id
                )));
            }
        }
        Ok(())
    }

    /// A plausible catalog of `farms` farms and `nodes` nodes, the same for
    /// the same arguments: several countries and cities, mixed certification,
    /// dedicated and rentable nodes, some GPUs, some public IPv4; about 84%
    /// up, 6% standby, 10% down. Ids start at 1. Addresses come from ranges
    /// reserved for documentation and benchmarks (198.18.0.0/15,
    /// 2001:db8::/32), unique up to 512 farms and 64,000 nodes. With nodes
    /// but no farms, one farm is made.
    pub fn generate(farms: u32, nodes: u32, seed: u64) -> Seed {
        let farm_count = if nodes > 0 { farms.max(1) } else { farms };
        let mut rng = SplitMix64::new(seed);
        let farms: Vec<(GridFarm, usize)> = (1..=farm_count)
            .map(|id| generate_farm(&mut rng, id))
            .collect();
        let nodes = (1..=nodes)
            .map(|id| {
                let pick = rng.below(u64::from(farm_count)) as usize;
                let (farm, home) = &farms[pick];
                generate_node(&mut rng, id, farm, *home)
            })
            .collect();
        Seed {
            now: None,
            farms: farms.into_iter().map(|(farm, _)| farm).collect(),
            nodes,
        }
    }

    /// The small catalog `marketplace dev` starts with: 3 farms, 8 nodes,
    /// each kind of node once or twice (certified, dedicated with a fee and a
    /// GPU, rented, full, standby, down, public IPv4).
    pub fn dev() -> Seed {
        let farm = |id: u32, name: &str, cert, dedicated, ips: &[(u8, u64)]| GridFarm {
            name: name.to_owned(),
            farm_id: id,
            twin_id: 100 + id,
            pricing_policy_id: 1,
            certification_type: cert,
            stellar_address: stellar_address(&mut SplitMix64::new(u64::from(id))),
            dedicated,
            public_ips: ips
                .iter()
                .map(|&(host, contract_id)| FarmPublicIp {
                    id: format!("sim-ip-{id}-{host}"),
                    ip: format!("198.18.{id}.{host}/24"),
                    gateway: format!("198.18.{id}.1"),
                    contract_id,
                })
                .collect(),
        };
        let farms = vec![
            farm(
                1,
                "dev-ghent-farm",
                FarmCertification::Gold,
                false,
                &[(10, 0), (11, 0), (12, 7001)],
            ),
            farm(
                2,
                "dev-cairo-farm",
                FarmCertification::NotCertified,
                false,
                &[(10, 0)],
            ),
            farm(
                3,
                "dev-dallas-gpu-farm",
                FarmCertification::NotCertified,
                true,
                &[],
            ),
        ];

        let mut nodes = Vec::new();
        let spec = |id: u32, farm: &GridFarm, city: usize, cru: u64, mru_gib: u64| {
            let (country, city, latitude, longitude) = CITIES[city];
            GridNode {
                id: format!("sim-node-{id}"),
                node_id: id,
                farm_id: farm.farm_id,
                farm_name: farm.name.clone(),
                twin_id: 1_000 + id,
                country: country.to_owned(),
                city: city.to_owned(),
                grid_version: 3,
                uptime: 3 * DAY,
                created: GENERATED_EPOCH - 200 * DAY,
                farming_policy_id: 1,
                updated_at: GENERATED_EPOCH,
                total_resources: Capacity {
                    cru,
                    mru: mru_gib * GIB,
                    sru: 1_000 * GB,
                    hru: 4 * TB,
                },
                used_resources: Capacity {
                    cru: cru / 4,
                    mru: mru_gib * GIB / 4,
                    sru: 100 * GB,
                    hru: 0,
                },
                location: Location {
                    country: country.to_owned(),
                    city: city.to_owned(),
                    longitude: Some(longitude),
                    latitude: Some(latitude),
                },
                public_config: PublicConfig::default(),
                status: NodeStatus::Up,
                certification_type: NodeCertification::Diy,
                dedicated: farm.dedicated,
                in_dedicated_farm: farm.dedicated,
                rent_contract_id: 0,
                rented: false,
                rentable: false,
                rented_by_twin_id: 0,
                serial_number: format!("SIM-DEV-{id:04}"),
                power: NodePower {
                    state: PowerState::Up,
                    target: PowerState::Up,
                },
                num_gpu: 0,
                extra_fee: 0,
                healthy: true,
                gpus: Vec::new(),
                farm_free_ips: 0,
                features: default_features(),
            }
        };
        let (f1, f2, f3) = (&farms[0], &farms[1], &farms[2]);

        // 1: certified, public IPv4 and a gateway domain.
        let mut n = spec(1, f1, 0, 32, 128);
        n.certification_type = NodeCertification::Certified;
        n.public_config = public_config(1, 1, true);
        nodes.push(n);
        // 2: certified, empty, so rentable.
        let mut n = spec(2, f1, 0, 16, 64);
        n.certification_type = NodeCertification::Certified;
        n.used_resources = Capacity::default();
        n.rentable = true;
        nodes.push(n);
        // 3: full.
        let mut n = spec(3, f1, 1, 8, 32);
        n.used_resources = n.total_resources;
        nodes.push(n);
        // 4: standby (powered down by the farm's automation).
        let mut n = spec(4, f1, 1, 8, 16);
        n.status = NodeStatus::Standby;
        n.power = NodePower {
            state: PowerState::Down,
            target: PowerState::Down,
        };
        n.used_resources = Capacity::default();
        n.rentable = true;
        nodes.push(n);
        // 5: small DIY node with public IPv4.
        let mut n = spec(5, f2, 8, 4, 8);
        n.public_config = public_config(2, 5, false);
        nodes.push(n);
        // 6: down for a while.
        let mut n = spec(6, f2, 8, 8, 16);
        n.status = NodeStatus::Down;
        n.updated_at = GENERATED_EPOCH - 3 * DAY;
        n.uptime = 0;
        nodes.push(n);
        // 7: dedicated with a GPU and an extra fee, free to rent.
        let mut n = spec(7, f3, 10, 64, 512);
        n.used_resources = Capacity::default();
        n.rentable = true;
        n.extra_fee = 20_000;
        n.gpus = vec![gpu(0x0e, 0)];
        n.num_gpu = 1;
        n.public_config = public_config(3, 7, false);
        nodes.push(n);
        // 8: dedicated with a GPU, rented.
        let mut n = spec(8, f3, 10, 48, 256);
        n.rented = true;
        n.rent_contract_id = 7_100;
        n.rented_by_twin_id = 5_001;
        n.gpus = vec![gpu(0x0e, 7_100)];
        n.num_gpu = 1;
        nodes.push(n);

        Seed {
            now: None,
            farms,
            nodes,
        }
    }
}

/// Cities nodes are placed in: (country, city, latitude, longitude).
const CITIES: &[(&str, &str, f64, f64)] = &[
    ("Belgium", "Ghent", 51.05, 3.72),
    ("Belgium", "Brussels", 50.85, 4.35),
    ("Netherlands", "Amsterdam", 52.37, 4.90),
    ("Germany", "Frankfurt", 50.11, 8.68),
    ("Germany", "Berlin", 52.52, 13.40),
    ("Austria", "Vienna", 48.21, 16.37),
    ("Switzerland", "Zurich", 47.38, 8.54),
    ("Tanzania", "Dar es Salaam", -6.79, 39.21),
    ("Egypt", "Cairo", 30.04, 31.24),
    ("United States", "New York", 40.71, -74.01),
    ("United States", "Dallas", 32.78, -96.80),
    ("Canada", "Toronto", 43.65, -79.38),
    ("Brazil", "Sao Paulo", -23.55, -46.63),
    ("India", "Bangalore", 12.97, 77.59),
    ("Singapore", "Singapore", 1.35, 103.82),
    ("Japan", "Tokyo", 35.68, 139.69),
];

/// GPU models: (vendor id, vendor, device id, device).
const GPUS: &[(&str, &str, &str, &str)] = &[
    (
        "10de",
        "NVIDIA Corporation",
        "2204",
        "GA102 [GeForce RTX 3090]",
    ),
    ("10de", "NVIDIA Corporation", "26b5", "AD102GL [L40]"),
    (
        "10de",
        "NVIDIA Corporation",
        "20b5",
        "GA100 [A100 PCIe 80GB]",
    ),
    (
        "1002",
        "Advanced Micro Devices, Inc. [AMD/ATI]",
        "73bf",
        "Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]",
    ),
];

const FARM_ADJECTIVES: &[&str] = &[
    "green", "solid", "quiet", "bright", "north", "river", "stone", "cedar", "delta", "iron",
];
const FARM_NOUNS: &[&str] = &["farm", "grid", "cloud", "hub", "works", "labs", "valley"];

fn default_features() -> Vec<String> {
    [
        "zmount",
        "zmachine",
        "volume",
        "network",
        "ipv4",
        "wireguard",
        "mycelium",
    ]
    .map(String::from)
    .to_vec()
}

fn gpu(slot: u8, contract: u64) -> NodeGpu {
    let (vendor_id, vendor, device_id, device) = GPUS[0];
    NodeGpu {
        id: format!("0000:{slot:02x}:00.0/{vendor_id}/{device_id}"),
        vendor: vendor.to_owned(),
        device: device.to_owned(),
        contract,
    }
}

/// A node's own public addresses, from the benchmarking range 198.19.0.0/16.
fn public_config(farm_id: u32, node_id: u32, domain: bool) -> PublicConfig {
    let (hi, lo) = (node_id / 250, node_id % 250 + 2);
    PublicConfig {
        domain: if domain {
            format!("node{node_id}.sim-grid.example")
        } else {
            String::new()
        },
        gw4: format!("198.19.{hi}.1"),
        gw6: format!("2001:db8:{farm_id:x}::1"),
        ipv4: format!("198.19.{hi}.{lo}/24"),
        ipv6: format!("2001:db8:{farm_id:x}::{node_id:x}/64"),
    }
}

fn stellar_address(rng: &mut SplitMix64) -> String {
    const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    std::iter::once('G')
        .chain((0..55).map(|_| char::from(*rng.pick(BASE32))))
        .collect()
}

/// A farm and the index of its home city in [`CITIES`].
fn generate_farm(rng: &mut SplitMix64, id: u32) -> (GridFarm, usize) {
    let home = rng.below(CITIES.len() as u64) as usize;
    let name = format!(
        "{}-{}-{id}",
        rng.pick(FARM_ADJECTIVES),
        rng.pick(FARM_NOUNS)
    );
    let certification_type = if rng.percent(15) {
        FarmCertification::Gold
    } else {
        FarmCertification::NotCertified
    };
    let dedicated = rng.percent(8);
    let ip_count = if rng.percent(40) { 0 } else { 1 + rng.below(8) };
    let (hi, lo) = (18 + (id / 256) % 2, id % 256);
    let public_ips = (0..ip_count)
        .map(|k| FarmPublicIp {
            id: format!("sim-ip-{id}-{k}"),
            ip: format!("198.{hi}.{lo}.{}/24", 10 + k),
            gateway: format!("198.{hi}.{lo}.1"),
            contract_id: if rng.percent(30) {
                5_000_000 + u64::from(id) * 100 + k
            } else {
                0
            },
        })
        .collect();
    let farm = GridFarm {
        name,
        farm_id: id,
        twin_id: 100 + id,
        pricing_policy_id: 1,
        certification_type,
        stellar_address: stellar_address(rng),
        dedicated,
        public_ips,
    };
    (farm, home)
}

fn generate_node(rng: &mut SplitMix64, id: u32, farm: &GridFarm, home: usize) -> GridNode {
    let city = if rng.percent(80) {
        home
    } else {
        rng.below(CITIES.len() as u64) as usize
    };
    let (country, city, latitude, longitude) = CITIES[city];

    let cru = *rng.pick(&[4u64, 8, 8, 12, 16, 16, 24, 32, 48, 64]);
    let mru_gib = (cru * rng.pick(&[2u64, 4, 4, 8])).clamp(8, 512);
    let total = Capacity {
        cru,
        mru: mru_gib * GIB,
        sru: rng.pick(&[256u64, 512, 512, 1_000, 1_000, 2_000, 4_000]) * GB,
        hru: if rng.percent(40) {
            0
        } else {
            rng.pick(&[2u64, 4, 8, 12, 16]) * TB
        },
    };
    let empty = rng.percent(25);
    let used = if empty {
        Capacity::default()
    } else {
        let used_cru = (cru * rng.below(71)).div_ceil(100);
        let mut share = |of: u64| of / 100 * rng.below(71);
        Capacity {
            cru: used_cru,
            mru: share(total.mru) / GIB * GIB,
            sru: share(total.sru),
            hru: share(total.hru),
        }
    };

    let roll = rng.below(100);
    let status = match roll {
        0..=83 => NodeStatus::Up,
        84..=89 => NodeStatus::Standby,
        _ => NodeStatus::Down,
    };
    let power = match status {
        NodeStatus::Standby => NodePower {
            state: PowerState::Down,
            target: PowerState::Down,
        },
        _ => NodePower {
            state: PowerState::Up,
            target: PowerState::Up,
        },
    };
    let updated_at = match status {
        NodeStatus::Down => GENERATED_EPOCH - 2 * HOUR - rng.below(30 * DAY as u64) as i64,
        _ => GENERATED_EPOCH,
    };
    let uptime = match status {
        NodeStatus::Up => HOUR + rng.below(90 * DAY as u64) as i64,
        _ => 0,
    };

    let certified_share = match farm.certification_type {
        FarmCertification::Gold => 45,
        _ => 20,
    };
    let certification_type = if rng.percent(certified_share) {
        NodeCertification::Certified
    } else {
        NodeCertification::Diy
    };

    let gpu_count = if cru >= 16 && rng.percent(10) {
        1 + rng.below(2)
    } else {
        0
    };
    let extra_fee = if (gpu_count > 0 && rng.percent(70)) || rng.percent(3) {
        *rng.pick(&[5_000u64, 10_000, 20_000, 50_000, 100_000])
    } else {
        0
    };
    // Setting an extra fee makes a node dedicated (rented whole only).
    let dedicated = farm.dedicated || extra_fee > 0;
    let rented = rng.percent(if dedicated { 35 } else { 5 });
    let rent_contract_id = if rented { 2_000_000 + u64::from(id) } else { 0 };
    let rentable = !rented && (dedicated || empty) && status != NodeStatus::Down;
    let model = *rng.pick(GPUS);
    let gpus = (0..gpu_count)
        .map(|slot| {
            let (vendor_id, vendor, device_id, device) = model;
            NodeGpu {
                id: format!("0000:{:02x}:00.0/{vendor_id}/{device_id}", 0x0e + slot),
                vendor: vendor.to_owned(),
                device: device.to_owned(),
                contract: rent_contract_id,
            }
        })
        .collect::<Vec<_>>();

    let public = if rng.percent(20) {
        public_config(farm.farm_id, id, rng.percent(50))
    } else {
        PublicConfig::default()
    };

    GridNode {
        id: format!("sim-node-{id}"),
        node_id: id,
        farm_id: farm.farm_id,
        farm_name: farm.name.clone(),
        twin_id: 1_000_000 + id,
        country: country.to_owned(),
        city: city.to_owned(),
        grid_version: 3,
        uptime,
        created: GENERATED_EPOCH - 30 * DAY - rng.below(900 * DAY as u64) as i64,
        farming_policy_id: 1,
        updated_at,
        total_resources: total,
        used_resources: used,
        location: Location {
            country: country.to_owned(),
            city: city.to_owned(),
            longitude: Some(longitude),
            latitude: Some(latitude),
        },
        public_config: public,
        status,
        certification_type,
        dedicated,
        in_dedicated_farm: farm.dedicated,
        rent_contract_id,
        rented,
        rentable,
        rented_by_twin_id: if rented {
            5_000 + rng.below(500) as u32
        } else {
            0
        },
        serial_number: format!("SIM{:010}", rng.below(10_000_000_000)),
        power,
        num_gpu: gpus.len() as u32,
        extra_fee,
        healthy: status == NodeStatus::Up,
        gpus,
        farm_free_ips: farm.free_ips() as u32,
        features: default_features(),
    }
}

/// SplitMix64: a tiny, well-mixed deterministic generator, enough for
/// catalogs (not for anything secret).
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `0..n` (`n` > 0; the modulo bias is negligible for small `n`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True `p` times in 100.
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------------------
// Simulated state
// ---------------------------------------------------------------------------

struct SimNode {
    node: GridNode,
    /// Whether the node sends uptime reports (its `updatedAt` follows the clock).
    reporting: bool,
}

struct Sim {
    now: i64,
    farms: BTreeMap<u32, GridFarm>,
    nodes: BTreeMap<u32, SimNode>,
}

impl Sim {
    fn new(seed: Seed, wall_now: i64) -> Sim {
        let now = seed.now.unwrap_or(wall_now);
        let mut sim = Sim {
            now,
            farms: seed.farms.into_iter().map(|f| (f.farm_id, f)).collect(),
            nodes: BTreeMap::new(),
        };
        for node in seed.nodes {
            let admitted = sim.admit(node);
            sim.nodes.insert(admitted.node.node_id, admitted);
        }
        sim
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

    /// The node as the proxy would show it now.
    fn render(&self, sim_node: &SimNode) -> GridNode {
        let mut node = sim_node.node.clone();
        node.status = NodeStatus::derive(node.updated_at, node.power.state, self.now);
        node.healthy = node.status == NodeStatus::Up;
        node.num_gpu = node.gpus.len() as u32;
        if let Some(farm) = self.farms.get(&node.farm_id) {
            node.farm_name = farm.name.clone();
            node.farm_free_ips = farm.free_ips() as u32;
            node.in_dedicated_farm = farm.dedicated;
            node.dedicated = node.dedicated || farm.dedicated;
        }
        node
    }

    fn render_id(&self, id: u32) -> Result<GridNode, SimError> {
        let sim_node = self.nodes.get(&id).ok_or(SimError::NodeNotFound(id))?;
        Ok(self.render(sim_node))
    }

    fn node_mut(&mut self, id: u32) -> Result<&mut SimNode, SimError> {
        self.nodes.get_mut(&id).ok_or(SimError::NodeNotFound(id))
    }

    fn advance(&mut self, secs: i64) {
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

fn wall_clock_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[derive(Clone)]
struct Shared(Arc<Mutex<Sim>>);

impl Shared {
    /// A panic while holding the lock cannot leave the catalog half-written
    /// in a way that matters for a simulator, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, Sim> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// Why a simulator request failed.
#[derive(Debug, thiserror::Error)]
enum SimError {
    #[error("node {0} not found")]
    NodeNotFound(u32),
    #[error("node {0} already exists")]
    NodeExists(u32),
    #[error("node {node_id} belongs to farm {farm_id}, which does not exist")]
    UnknownFarm { node_id: u32, farm_id: u32 },
    #[error("{0}")]
    BadQuery(String),
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let status = match &self {
            SimError::NodeNotFound(_) => StatusCode::NOT_FOUND,
            SimError::NodeExists(_) => StatusCode::CONFLICT,
            SimError::UnknownFarm { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            SimError::BadQuery(_) => StatusCode::BAD_REQUEST,
        };
        // The proxy answers errors as `{"error": "..."}`.
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

/// The simulator's routes over a seed, for embedding in another server.
pub fn router(seed: Seed) -> Result<Router, SeedError> {
    seed.validate()?;
    let shared = Shared(Arc::new(Mutex::new(Sim::new(seed, wall_clock_now()))));
    Ok(Router::new()
        .route("/nodes", get(list_nodes))
        .route("/farms", get(list_farms))
        .route("/sim/clock", get(clock))
        .route("/sim/clock/advance", post(advance_clock))
        .route("/sim/nodes", post(add_node))
        .route("/sim/nodes/{id}/down", post(node_down))
        .route("/sim/nodes/{id}/up", post(node_up))
        .route("/sim/nodes/{id}/fill", post(node_fill))
        .with_state(shared))
}

/// Serves the grid proxy SIMULATOR on `listener` until `cancel`. Fails at
/// once (`InvalidInput`) if the seed contradicts itself.
pub async fn serve(
    listener: TcpListener,
    seed: Seed,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let (farms, nodes) = (seed.farms.len(), seed.nodes.len());
    let app = router(seed)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let addr = listener.local_addr()?;
    info!(%addr, farms, nodes, "grid proxy SIMULATOR listening (simulated catalog, not the real grid)");
    axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await?;
    info!(%addr, "grid proxy SIMULATOR stopped");
    Ok(())
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

async fn list_nodes(
    State(shared): State<Shared>,
    Query(params): Params,
) -> Result<Response, SimError> {
    let paging = Paging::parse(&params)?;
    let filter = NodeFilter::parse(&params)?;
    let sim = shared.lock();
    let matching: Vec<GridNode> = sim
        .nodes
        .values()
        .map(|n| sim.render(n))
        .filter(|n| filter.keeps(n))
        .collect();
    let page = paging.window(&matching).to_vec();
    Ok(paging.respond(matching.len(), page))
}

async fn list_farms(
    State(shared): State<Shared>,
    Query(params): Params,
) -> Result<Response, SimError> {
    let paging = Paging::parse(&params)?;
    let sim = shared.lock();
    let farms: Vec<&GridFarm> = sim.farms.values().collect();
    let page = paging.window(&farms).to_vec();
    Ok(paging.respond(farms.len(), page))
}

/// The simulated clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimClock {
    /// Simulated now, unix seconds.
    pub now: i64,
}

async fn clock(State(shared): State<Shared>) -> Json<SimClock> {
    Json(SimClock {
        now: shared.lock().now,
    })
}

#[derive(Deserialize)]
struct Advance {
    minutes: u32,
}

async fn advance_clock(
    State(shared): State<Shared>,
    Query(advance): Query<Advance>,
) -> Json<SimClock> {
    let mut sim = shared.lock();
    sim.advance(i64::from(advance.minutes) * 60);
    info!(
        minutes = advance.minutes,
        now = sim.now,
        "grid proxy SIMULATOR: clock advanced"
    );
    Json(SimClock { now: sim.now })
}

async fn add_node(
    State(shared): State<Shared>,
    Json(node): Json<GridNode>,
) -> Result<(StatusCode, Json<GridNode>), SimError> {
    let mut sim = shared.lock();
    if sim.nodes.contains_key(&node.node_id) {
        return Err(SimError::NodeExists(node.node_id));
    }
    if !sim.farms.contains_key(&node.farm_id) {
        return Err(SimError::UnknownFarm {
            node_id: node.node_id,
            farm_id: node.farm_id,
        });
    }
    let id = node.node_id;
    let admitted = sim.admit(node);
    let rendered = sim.render(&admitted);
    sim.nodes.insert(id, admitted);
    info!(node_id = id, "grid proxy SIMULATOR: node added");
    Ok((StatusCode::CREATED, Json(rendered)))
}

async fn node_down(
    State(shared): State<Shared>,
    UrlPath(id): UrlPath<u32>,
) -> Result<Json<GridNode>, SimError> {
    let mut sim = shared.lock();
    sim.node_mut(id)?.reporting = false;
    info!(
        node_id = id,
        "grid proxy SIMULATOR: node stops reporting (reads down after {} min)",
        UP_WINDOW_SECS / 60
    );
    sim.render_id(id).map(Json)
}

async fn node_up(
    State(shared): State<Shared>,
    UrlPath(id): UrlPath<u32>,
) -> Result<Json<GridNode>, SimError> {
    let mut sim = shared.lock();
    let now = sim.now;
    let sim_node = sim.node_mut(id)?;
    if !sim_node.reporting || sim_node.node.power.state == PowerState::Down {
        // It booted again.
        sim_node.node.uptime = 0;
    }
    sim_node.reporting = true;
    sim_node.node.updated_at = now;
    sim_node.node.power = NodePower {
        state: PowerState::Up,
        target: PowerState::Up,
    };
    info!(node_id = id, "grid proxy SIMULATOR: node reports again");
    sim.render_id(id).map(Json)
}

async fn node_fill(
    State(shared): State<Shared>,
    UrlPath(id): UrlPath<u32>,
) -> Result<Json<GridNode>, SimError> {
    let mut sim = shared.lock();
    let sim_node = sim.node_mut(id)?;
    sim_node.node.used_resources = sim_node.node.total_resources;
    sim_node.node.rentable = false;
    info!(node_id = id, "grid proxy SIMULATOR: node filled");
    sim.render_id(id).map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketplace_app::grid::client::{GridClient, GridError};
    use tokio::task::JoinHandle;

    /// A simulator on a free loopback port, stopped on drop.
    struct TestSim {
        base: String,
        cancel: CancellationToken,
        _task: JoinHandle<std::io::Result<()>>,
        http: reqwest::Client,
    }

    impl Drop for TestSim {
        fn drop(&mut self) {
            self.cancel.cancel();
        }
    }

    impl TestSim {
        async fn start(seed: Seed) -> TestSim {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let base = format!("http://{}", listener.local_addr().expect("addr"));
            let cancel = CancellationToken::new();
            let task = tokio::spawn(serve(listener, seed, cancel.clone()));
            TestSim {
                base,
                cancel,
                _task: task,
                http: reqwest::Client::new(),
            }
        }

        fn client(&self) -> GridClient {
            GridClient::new(&self.base).expect("client")
        }

        async fn post(&self, path: &str) -> reqwest::Response {
            self.http
                .post(format!("{}{path}", self.base))
                .send()
                .await
                .expect("post")
        }

        async fn now(&self) -> i64 {
            let clock: SimClock = self
                .http
                .get(format!("{}/sim/clock", self.base))
                .send()
                .await
                .expect("clock")
                .json()
                .await
                .expect("clock json");
            clock.now
        }

        async fn node(&self, id: u32) -> GridNode {
            self.client()
                .nodes()
                .await
                .expect("nodes")
                .into_iter()
                .find(|n| n.node_id == id)
                .expect("node listed")
        }
    }

    #[tokio::test]
    async fn every_page_of_1050_nodes_arrives_exactly_once() {
        let seed = Seed::generate(40, 1_050, 7);
        let sim = TestSim::start(seed.clone()).await;
        // 100 a page ends on a short page; 150 a page divides 1,050 evenly.
        for size in [100, 150, 1_000] {
            let nodes = sim
                .client()
                .with_page_size(size)
                .nodes()
                .await
                .expect("nodes");
            assert_eq!(nodes.len(), 1_050, "page size {size}");
            let ids: Vec<u32> = nodes.iter().map(|n| n.node_id).collect();
            assert_eq!(ids, (1..=1_050).collect::<Vec<_>>(), "page size {size}");
        }
        let by_id: BTreeMap<u32, &GridNode> = seed.nodes.iter().map(|n| (n.node_id, n)).collect();
        let nodes = sim.client().nodes().await.expect("nodes");
        for node in &nodes {
            let seeded = by_id[&node.node_id];
            assert_eq!(node.total_resources, seeded.total_resources);
            assert_eq!(node.country, seeded.country);
            assert_eq!(
                node.status == NodeStatus::Down,
                seeded.status == NodeStatus::Down
            );
        }
    }

    #[tokio::test]
    async fn a_node_that_stops_reporting_falls_81_minutes_behind() {
        let sim = TestSim::start(Seed::generate(5, 60, 11)).await;
        let before = sim.client().nodes().await.expect("nodes");
        let t0 = sim.now().await;
        let target = before
            .iter()
            .find(|n| n.status == NodeStatus::Up)
            .expect("an up node")
            .node_id;
        assert_eq!(sim.node(target).await.updated_at, t0);

        let res = sim.post(&format!("/sim/nodes/{target}/down")).await;
        assert_eq!(res.status(), StatusCode::OK);
        let res = sim.post("/sim/clock/advance?minutes=81").await;
        assert_eq!(res.status(), StatusCode::OK);
        let now = sim.now().await;
        assert_eq!(now, t0 + 81 * 60);

        let after = sim.client().nodes().await.expect("nodes");
        for node in &after {
            let was = before
                .iter()
                .find(|n| n.node_id == node.node_id)
                .expect("same nodes");
            if node.node_id == target {
                assert_eq!(node.updated_at, t0, "silent node keeps its last report");
                assert_eq!(now - node.updated_at, 81 * 60);
                assert_eq!(node.status, NodeStatus::Down);
            } else if was.status == NodeStatus::Up {
                assert_eq!(node.updated_at, now, "node {} reported", node.node_id);
                assert_eq!(node.status, NodeStatus::Up);
            } else if was.status == NodeStatus::Down {
                assert!(node.updated_at < t0, "down nodes stay silent");
                assert_eq!(node.status, NodeStatus::Down);
            } else {
                assert_eq!(node.status, NodeStatus::Standby);
            }
        }

        let res = sim.post(&format!("/sim/nodes/{target}/up")).await;
        assert_eq!(res.status(), StatusCode::OK);
        let back = sim.node(target).await;
        assert_eq!(back.updated_at, now);
        assert_eq!(back.status, NodeStatus::Up);
        assert_eq!(back.uptime, 0, "it rebooted");
    }

    #[tokio::test]
    async fn fill_makes_used_equal_total() {
        let sim = TestSim::start(Seed::dev()).await;
        let res = sim.post("/sim/nodes/2/fill").await;
        assert_eq!(res.status(), StatusCode::OK);
        let node = sim.node(2).await;
        assert_eq!(node.used_resources, node.total_resources);
        assert_eq!(node.free_resources(), Capacity::default());
        assert!(!node.rentable);

        let res = sim.post("/sim/nodes/999/fill").await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn farms_are_listed_in_full() {
        let seed = Seed::generate(130, 20, 3);
        let sim = TestSim::start(seed.clone()).await;
        let farms = sim.client().farms().await.expect("farms");
        assert_eq!(farms, seed.farms);
        assert_eq!(farms.len(), 130);
        assert!(farms.iter().any(|f| !f.public_ips.is_empty()));

        let dev = TestSim::start(Seed::dev()).await;
        let names: Vec<String> = dev
            .client()
            .farms()
            .await
            .expect("farms")
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(
            names,
            ["dev-ghent-farm", "dev-cairo-farm", "dev-dallas-gpu-farm"]
        );
    }

    #[tokio::test]
    async fn filters_and_count_headers_follow_the_proxy() {
        let sim = TestSim::start(Seed::generate(6, 300, 5)).await;
        let all = sim.client().nodes().await.expect("nodes");
        let country = all
            .iter()
            .find(|n| n.farm_id <= 2 && n.status == NodeStatus::Up)
            .expect("an up node in farm 1 or 2")
            .country
            .clone();
        let expected: Vec<u32> = all
            .iter()
            .filter(|n| {
                [1, 2].contains(&n.farm_id)
                    && matches!(n.status, NodeStatus::Up | NodeStatus::Standby)
                    && n.country == country
            })
            .map(|n| n.node_id)
            .collect();
        assert!(!expected.is_empty());

        let url = format!(
            "{}/nodes?farm_ids=1,2&status=up&status=standby&country={}&ret_count=true&size=2&gpu_vendor_name=ignored",
            sim.base,
            country.to_uppercase().replace(' ', "%20")
        );
        let res = sim.http.get(&url).send().await.expect("get");
        assert_eq!(res.status(), StatusCode::OK);
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(header("count"), Some(expected.len().to_string()));
        assert_eq!(header("size"), Some("2".to_owned()));
        assert_eq!(
            header("pages"),
            Some(expected.len().div_ceil(2).to_string())
        );
        let page: Vec<GridNode> = res.json().await.expect("json");
        let ids: Vec<u32> = page.iter().map(|n| n.node_id).collect();
        assert_eq!(ids, expected.iter().copied().take(2).collect::<Vec<_>>());

        let plain = sim
            .http
            .get(format!("{}/nodes", sim.base))
            .send()
            .await
            .expect("get");
        assert!(
            plain.headers().get("count").is_none(),
            "only with ret_count"
        );
        let page: Vec<GridNode> = plain.json().await.expect("json");
        assert_eq!(page.len(), 50, "the proxy's default page size");

        for bad in ["status=sideways", "farm_ids=one", "page=0", "size=x"] {
            let res = sim
                .http
                .get(format!("{}/nodes?{bad}", sim.base))
                .send()
                .await
                .expect("get");
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[tokio::test]
    async fn nodes_can_be_added() {
        let sim = TestSim::start(Seed::dev()).await;
        let mut node = sim.node(5).await;
        node.node_id = 50;
        node.serial_number = "SIM-NEW".to_owned();
        let url = format!("{}/sim/nodes", sim.base);
        let res = sim.http.post(&url).json(&node).send().await.expect("post");
        assert_eq!(res.status(), StatusCode::CREATED);
        let added = sim.node(50).await;
        assert_eq!(added.serial_number, "SIM-NEW");
        assert_eq!(added.updated_at, sim.now().await);
        assert_eq!(added.status, NodeStatus::Up);

        let res = sim.http.post(&url).json(&node).send().await.expect("post");
        assert_eq!(res.status(), StatusCode::CONFLICT);
        node.node_id = 51;
        node.farm_id = 99;
        let res = sim.http.post(&url).json(&node).send().await.expect("post");
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[tokio::test]
    async fn client_errors_name_the_url_and_the_status() {
        let sim = TestSim::start(Seed::dev()).await;
        let client = GridClient::new(&format!("{}/no-such-prefix", sim.base)).expect("client");
        let err = client.nodes().await.expect_err("404");
        assert!(
            matches!(err, GridError::Status { status, .. } if status == StatusCode::NOT_FOUND),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains("/no-such-prefix/nodes?page=1"), "{text}");
        assert!(text.contains("404"), "{text}");

        // Nothing listens on a port just released.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let err = GridClient::new(&format!("http://{addr}"))
            .expect("client")
            .farms()
            .await
            .expect_err("refused");
        assert!(
            err.to_string().contains(&format!("http://{addr}/farms")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_seed_that_contradicts_itself_is_refused() {
        let mut seed = Seed::dev();
        seed.nodes[0].farm_id = 77;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let err = serve(listener, seed, CancellationToken::new())
            .await
            .expect_err("invalid seed");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("farm 77"), "{err}");
    }

    #[test]
    fn generate_is_deterministic_and_plausible() {
        let seed = Seed::generate(30, 600, 42);
        assert_eq!(seed, Seed::generate(30, 600, 42));
        assert_ne!(seed, Seed::generate(30, 600, 43));
        seed.validate().expect("valid");
        assert_eq!(seed.farms.len(), 30);
        assert_eq!(seed.nodes.len(), 600);

        for n in &seed.nodes {
            let t = n.total_resources;
            assert!((4..=64).contains(&t.cru), "cru {}", t.cru);
            assert!((8 * GIB..=512 * GIB).contains(&t.mru), "mru {}", t.mru);
            assert!((256 * GB..=4 * TB).contains(&t.sru), "sru {}", t.sru);
            assert!(t.hru <= 16 * TB, "hru {}", t.hru);
            let u = n.used_resources;
            assert!(u.cru <= t.cru && u.mru <= t.mru && u.sru <= t.sru && u.hru <= t.hru);
            assert_eq!(n.num_gpu as usize, n.gpus.len());
            assert_eq!(n.rented, n.rent_contract_id != 0);
            assert!(!(n.rented && n.rentable));
        }
        let countries: HashSet<&str> = seed.nodes.iter().map(|n| n.country.as_str()).collect();
        let cities: HashSet<&str> = seed.nodes.iter().map(|n| n.city.as_str()).collect();
        assert!(countries.len() >= 5, "{countries:?}");
        assert!(cities.len() > countries.len());
        let count = |f: &dyn Fn(&GridNode) -> bool| seed.nodes.iter().filter(|n| f(n)).count();
        assert!(count(&|n| n.certification_type == NodeCertification::Certified) > 0);
        assert!(count(&|n| n.certification_type == NodeCertification::Diy) > 0);
        assert!(count(&|n| n.dedicated) > 0);
        assert!(count(&|n| n.rentable) > 0);
        assert!(count(&|n| n.rented) > 0);
        assert!(count(&|n| !n.gpus.is_empty()) > 0);
        assert!(count(&|n| n.extra_fee > 0) > 0);
        assert!(count(&|n| n.public_config.has_ipv4()) > 0);
        assert!(count(&|n| n.status == NodeStatus::Down) > 0);
        assert!(count(&|n| n.status == NodeStatus::Standby) > 0);
        assert!(seed
            .farms
            .iter()
            .any(|f| f.certification_type == FarmCertification::Gold));

        assert!(Seed::generate(0, 0, 1).nodes.is_empty());
        assert_eq!(Seed::generate(0, 3, 1).farms.len(), 1);
    }

    #[test]
    fn dev_seed_is_small_and_valid() {
        let seed = Seed::dev();
        seed.validate().expect("valid");
        assert_eq!(seed.farms.len(), 3);
        assert_eq!(seed.nodes.len(), 8);
    }

    #[test]
    fn seed_files_round_trip_and_are_checked() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("grid-seed-{}-ok.json", std::process::id()));
        let seed = Seed::generate(4, 25, 9);
        std::fs::write(&path, serde_json::to_string_pretty(&seed).expect("json")).expect("write");
        let read = Seed::from_file(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(read.expect("reads"), seed);

        let mut bad = serde_json::to_value(&seed).expect("json");
        bad["nodes"][0]["farmId"] = serde_json::json!(99);
        let err = Seed::from_json(&bad.to_string()).expect_err("unknown farm");
        assert!(matches!(err, SeedError::Invalid(_)), "{err}");

        let err = Seed::from_file(dir.join("no-such-grid-seed.json")).expect_err("missing");
        assert!(err.to_string().contains("no-such-grid-seed.json"), "{err}");
    }
}
