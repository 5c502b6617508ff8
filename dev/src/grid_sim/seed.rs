//! The catalog a grid SIMULATOR starts from ([`Seed`]): read from a file,
//! generated ([`Seed::generate`]), or the small dev catalog ([`Seed::dev`]).

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use marketplace_app::grid::types::{
    Capacity, FarmCertification, FarmPublicIp, GridFarm, GridNode, Location, NodeCertification,
    NodeGpu, NodePower, NodeStatus, PowerState, PublicConfig,
};

/// The instant generated catalogs are dated from (2025-01-01T00:00:00Z).
const GENERATED_EPOCH: i64 = 1_735_689_600;

const GIB: u64 = 1 << 30;
const GB: u64 = 1_000_000_000;
const TB: u64 = 1_000_000_000_000;
const HOUR: i64 = 60 * 60;
const DAY: i64 = 24 * HOUR;

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
                uptime: 45 * DAY,
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

#[cfg(test)]
mod tests {
    use super::*;

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
