//! The grid proxy's JSON items for `GET /nodes` and `GET /farms`, with the
//! field names the proxy sends (threefoldtech/tfgrid-sdk-go,
//! `grid-proxy/pkg/types/{nodes,farms,publicips,indexer}.go`).
//!
//! Parsing is forward compatible: fields we do not model (`dmi`, `speed`,
//! `cpu_benchmark`, `price_usd`, ...) are ignored, and enum values the proxy
//! may add later parse as `Unknown` instead of failing a whole page. The
//! fields the marketplace filters on are required, so a proxy that stops
//! sending one fails loudly rather than reading as zero.

use serde::{Deserialize, Deserializer, Serialize};

/// A node is **up** when it reported within this many seconds (80 minutes:
/// nodes report about every 40 minutes, so one missed report is tolerated).
pub const UP_WINDOW_SECS: i64 = 80 * 60;

/// A node powered down by its farm's automation stays **standby** (not
/// down) while its last report is at most this old.
pub const STANDBY_WINDOW_SECS: i64 = 24 * 60 * 60;

/// Capacity of a node in resource units: `cru` is a count of virtual cores,
/// `mru`, `sru` and `hru` are bytes (memory, SSD, HDD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Virtual CPU cores.
    pub cru: u64,
    /// SSD storage, bytes.
    pub sru: u64,
    /// HDD storage, bytes.
    pub hru: u64,
    /// Memory, bytes.
    pub mru: u64,
}

impl Capacity {
    /// What is left of `self` (a total) once `used` is taken, never below zero.
    pub fn saturating_sub(&self, used: &Capacity) -> Capacity {
        Capacity {
            cru: self.cru.saturating_sub(used.cru),
            sru: self.sru.saturating_sub(used.sru),
            hru: self.hru.saturating_sub(used.hru),
            mru: self.mru.saturating_sub(used.mru),
        }
    }
}

/// Where a node is. The proxy repeats `country` and `city` at the top level
/// of the node; this nested form adds the coordinates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Country name as the grid spells it (`"Belgium"`).
    #[serde(default)]
    pub country: String,
    /// City name.
    #[serde(default)]
    pub city: String,
    /// Degrees, when known.
    #[serde(default)]
    pub longitude: Option<f64>,
    /// Degrees, when known.
    #[serde(default)]
    pub latitude: Option<f64>,
}

/// A node's public network configuration. The proxy sends every field, as
/// an empty string when not configured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicConfig {
    /// Gateway domain served by the node, if any.
    #[serde(default)]
    pub domain: String,
    /// IPv4 gateway.
    #[serde(default)]
    pub gw4: String,
    /// IPv6 gateway.
    #[serde(default)]
    pub gw6: String,
    /// The node's own public IPv4 in CIDR form (`"185.206.122.33/24"`).
    #[serde(default)]
    pub ipv4: String,
    /// The node's own public IPv6 in CIDR form.
    #[serde(default)]
    pub ipv6: String,
}

impl PublicConfig {
    /// Whether the node has a public IPv4 of its own.
    pub fn has_ipv4(&self) -> bool {
        !self.ipv4.is_empty()
    }

    /// Whether the node has a public IPv6 of its own.
    pub fn has_ipv6(&self) -> bool {
        !self.ipv6.is_empty()
    }
}

/// A power state as the farm's automation (farmerbot) sets it on chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PowerState {
    /// Powered on.
    Up,
    /// Powered off by the farm's automation.
    Down,
    /// Never set (the proxy sends `""`), or a value newer than this code.
    #[default]
    #[serde(rename = "", other)]
    Unknown,
}

/// A node's actual and wanted power state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePower {
    /// What the node last reported.
    #[serde(default)]
    pub state: PowerState,
    /// What the farm's automation asked for.
    #[serde(default)]
    pub target: PowerState,
}

/// A node's status as the proxy derives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Reported within [`UP_WINDOW_SECS`] and powered up.
    Up,
    /// Powered down by the farm and reported within [`STANDBY_WINDOW_SECS`].
    Standby,
    /// Otherwise.
    Down,
    /// A value newer than this code.
    #[serde(other)]
    Unknown,
}

impl NodeStatus {
    /// The status rule: **up** = reported within the last 80 minutes and
    /// powered up; **standby** = powered down by the farm's automation and
    /// reported within 24 h; **down** = otherwise. Times are unix seconds.
    pub fn derive(updated_at: i64, power: PowerState, now: i64) -> NodeStatus {
        let age = now.saturating_sub(updated_at);
        match power {
            PowerState::Down if age <= STANDBY_WINDOW_SECS => NodeStatus::Standby,
            PowerState::Down => NodeStatus::Down,
            PowerState::Up | PowerState::Unknown if age <= UP_WINDOW_SECS => NodeStatus::Up,
            PowerState::Up | PowerState::Unknown => NodeStatus::Down,
        }
    }

    /// The query-string spelling (`up`, `standby`, `down`).
    pub fn as_str(&self) -> &'static str {
        match self {
            NodeStatus::Up => "up",
            NodeStatus::Standby => "standby",
            NodeStatus::Down => "down",
            NodeStatus::Unknown => "unknown",
        }
    }
}

/// A node's certification (chain `NodeCertification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeCertification {
    /// Self-built hardware; the proxy spells it `"Diy"`.
    #[serde(alias = "DIY")]
    Diy,
    /// Certified hardware: capacity costs 25% more.
    Certified,
    /// A value newer than this code.
    #[serde(other)]
    Unknown,
}

/// A farm's certification (chain `FarmCertification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FarmCertification {
    /// The default.
    NotCertified,
    /// A gold-certified farm.
    Gold,
    /// A value newer than this code.
    #[serde(other)]
    Unknown,
}

/// A GPU card in a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeGpu {
    /// PCI slot and ids as ZOS reports them (`"0000:0e:00.0/10de/2204"`).
    pub id: String,
    /// Vendor name (`"NVIDIA Corporation"`).
    #[serde(default)]
    pub vendor: String,
    /// Device name.
    #[serde(default)]
    pub device: String,
    /// The contract using the card; 0 when free.
    #[serde(default)]
    pub contract: u64,
}

/// One item of the proxy's `GET /nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GridNode {
    /// The indexer's opaque id for the node (not the node id).
    #[serde(default)]
    pub id: String,
    /// Node id on chain.
    pub node_id: u32,
    /// The farm the node belongs to.
    pub farm_id: u32,
    /// The farm's name, repeated for convenience.
    #[serde(default)]
    pub farm_name: String,
    /// The node's twin (its identity on the message bus).
    pub twin_id: u32,
    /// Country name.
    pub country: String,
    /// City name.
    pub city: String,
    /// Grid version the node registered with.
    #[serde(default)]
    pub grid_version: u32,
    /// Seconds since the node booted, as last reported.
    #[serde(default)]
    pub uptime: i64,
    /// When the node registered, unix seconds.
    #[serde(default)]
    pub created: i64,
    /// Farming policy id on chain.
    #[serde(default)]
    pub farming_policy_id: u32,
    /// When the node last reported, unix seconds.
    pub updated_at: i64,
    /// Total capacity.
    #[serde(rename = "total_resources")]
    pub total_resources: Capacity,
    /// Capacity reserved by contracts (and the system).
    #[serde(rename = "used_resources")]
    pub used_resources: Capacity,
    /// Location with coordinates.
    #[serde(default)]
    pub location: Location,
    /// Public network configuration.
    pub public_config: PublicConfig,
    /// Up, standby or down, as derived by the proxy.
    pub status: NodeStatus,
    /// Diy or Certified.
    pub certification_type: NodeCertification,
    /// Whether the node can only be rented whole (its farm is dedicated, or
    /// the farmer set an extra fee on it).
    pub dedicated: bool,
    /// Whether the node's farm is dedicated.
    #[serde(default)]
    pub in_dedicated_farm: bool,
    /// The active rent contract, 0 when none.
    #[serde(default)]
    pub rent_contract_id: u64,
    /// Whether a rent contract holds the node.
    pub rented: bool,
    /// Whether a rent contract could be created on the node now.
    pub rentable: bool,
    /// The twin holding the rent contract, 0 when none.
    #[serde(default)]
    pub rented_by_twin_id: u32,
    /// Hardware serial number.
    #[serde(default)]
    pub serial_number: String,
    /// Power state set by the farm's automation.
    #[serde(default)]
    pub power: NodePower,
    /// Number of GPUs, equal to `gpus.len()`.
    #[serde(rename = "num_gpu", default)]
    pub num_gpu: u32,
    /// The farmer's extra fee on a dedicated node, in mUSD (1/1000 USD) per
    /// month as stored on chain; 0 when none.
    pub extra_fee: u64,
    /// The node's last health report.
    #[serde(default)]
    pub healthy: bool,
    /// GPU cards; the proxy may send `null` for none.
    #[serde(deserialize_with = "null_as_default")]
    pub gpus: Vec<NodeGpu>,
    /// Free public IPs in the node's farm.
    #[serde(rename = "farm_free_ips", default)]
    pub farm_free_ips: u32,
    /// ZOS features the node supports (`"zmachine"`, `"wireguard"`, ...).
    #[serde(default, deserialize_with = "null_as_default")]
    pub features: Vec<String>,
}

impl GridNode {
    /// Capacity not yet used.
    pub fn free_resources(&self) -> Capacity {
        self.total_resources.saturating_sub(&self.used_resources)
    }
}

/// A public IP owned by a farm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FarmPublicIp {
    /// The indexer's opaque id.
    #[serde(default)]
    pub id: String,
    /// Address in CIDR form.
    pub ip: String,
    /// Gateway for the address.
    #[serde(default)]
    pub gateway: String,
    /// The contract holding the address, 0 when free. Current proxies send
    /// `contract_id`; older ones sent `contractId`.
    #[serde(alias = "contractId", default)]
    pub contract_id: u64,
}

impl FarmPublicIp {
    /// Whether no contract holds the address.
    pub fn is_free(&self) -> bool {
        self.contract_id == 0
    }
}

/// One item of the proxy's `GET /farms`. Current proxies send camelCase
/// keys; one past release sent snake_case ones, accepted as aliases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GridFarm {
    /// Farm name, unique on chain.
    pub name: String,
    /// Farm id on chain.
    #[serde(alias = "farm_id")]
    pub farm_id: u32,
    /// The farmer's twin.
    #[serde(alias = "twin_id")]
    pub twin_id: u32,
    /// Pricing policy id on chain.
    #[serde(default)]
    pub pricing_policy_id: u32,
    /// NotCertified or Gold.
    #[serde(alias = "certification_type")]
    pub certification_type: FarmCertification,
    /// Where the farmer's rewards go.
    #[serde(default, alias = "stellar_address")]
    pub stellar_address: String,
    /// Whether every node of the farm is rented whole only.
    pub dedicated: bool,
    /// Public IPs the farm offers; the proxy may send `null` for none.
    #[serde(alias = "public_ips", deserialize_with = "null_as_default")]
    pub public_ips: Vec<FarmPublicIp>,
}

impl GridFarm {
    /// How many of the farm's public IPs no contract holds.
    pub fn free_ips(&self) -> usize {
        self.public_ips.iter().filter(|ip| ip.is_free()).count()
    }
}

/// Go encodes an empty slice as `null`; read that as the empty value.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A node item shaped like the proxy's, with fields we do not model.
    fn proxy_node_item() -> serde_json::Value {
        json!({
            "id": "0000123456-000001-a1b2c",
            "nodeId": 42,
            "farmId": 7,
            "farmName": "example-farm",
            "twinId": 4242,
            "country": "Belgium",
            "gridVersion": 3,
            "city": "Ghent",
            "uptime": 86400,
            "created": 1650000000,
            "farmingPolicyId": 1,
            "updatedAt": 1700000000,
            "total_resources": {"cru": 16, "sru": 1000204886016u64, "hru": 0, "mru": 68719476736u64},
            "used_resources": {"cru": 2, "sru": 107374182400u64, "hru": 0, "mru": 4294967296u64},
            "location": {"country": "Belgium", "city": "Ghent", "longitude": 3.72, "latitude": 51.05},
            "publicConfig": {"domain": "", "gw4": "203.0.113.1", "gw6": "", "ipv4": "203.0.113.9/24", "ipv6": ""},
            "status": "up",
            "certificationType": "Diy",
            "dedicated": false,
            "inDedicatedFarm": false,
            "rentContractId": 0,
            "rented": false,
            "rentable": true,
            "rentedByTwinId": 0,
            "serialNumber": "Default string",
            "power": {"state": "Up", "target": "Up"},
            "num_gpu": 0,
            "extraFee": 0,
            "healthy": true,
            "dmi": {"bios": {"vendor": "x", "version": "1"}, "baseboard": {}, "processor": [], "memory": []},
            "speed": {"upload": 1.0, "download": 2.0},
            "cpu_benchmark": {"single": 1.0, "multi": 2.0, "threads": 8, "workloads": 3},
            "gpus": null,
            "price_usd": 12.5,
            "farm_free_ips": 3,
            "features": ["zmachine", "wireguard"],
            "someFieldAddedNextYear": {"nested": true}
        })
    }

    #[test]
    fn parses_a_proxy_node_ignoring_unknown_fields() {
        let node: GridNode = serde_json::from_value(proxy_node_item()).expect("parses");
        assert_eq!(node.node_id, 42);
        assert_eq!(node.farm_id, 7);
        assert_eq!(node.status, NodeStatus::Up);
        assert_eq!(node.certification_type, NodeCertification::Diy);
        assert_eq!(node.power.state, PowerState::Up);
        assert!(node.gpus.is_empty(), "null gpus read as none");
        assert_eq!(node.farm_free_ips, 3);
        assert!(node.public_config.has_ipv4());
        assert_eq!(node.free_resources().cru, 14);
    }

    #[test]
    fn a_missing_required_field_fails() {
        for field in ["nodeId", "updatedAt", "total_resources", "status", "gpus"] {
            let mut item = proxy_node_item();
            item.as_object_mut().expect("object").remove(field);
            let err = serde_json::from_value::<GridNode>(item).expect_err(field);
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn unknown_enum_values_do_not_fail_the_item() {
        let mut item = proxy_node_item();
        item["status"] = json!("hibernating");
        item["certificationType"] = json!("Platinum");
        item["power"] = json!({"state": "", "target": "Sideways"});
        let node: GridNode = serde_json::from_value(item).expect("parses");
        assert_eq!(node.status, NodeStatus::Unknown);
        assert_eq!(node.certification_type, NodeCertification::Unknown);
        assert_eq!(node.power.state, PowerState::Unknown);
        assert_eq!(node.power.target, PowerState::Unknown);
    }

    #[test]
    fn node_round_trips_through_json() {
        let node: GridNode = serde_json::from_value(proxy_node_item()).expect("parses");
        let text = serde_json::to_string(&node).expect("serializes");
        assert!(text.contains("\"nodeId\":42"));
        assert!(text.contains("\"total_resources\""));
        assert!(text.contains("\"extraFee\":0"));
        let back: GridNode = serde_json::from_str(&text).expect("parses back");
        assert_eq!(back, node);
    }

    #[test]
    fn parses_a_proxy_farm() {
        let farm: GridFarm = serde_json::from_value(json!({
            "name": "example-farm",
            "farmId": 7,
            "twinId": 70,
            "pricingPolicyId": 1,
            "certificationType": "Gold",
            "stellarAddress": "GABC",
            "dedicated": false,
            "publicIps": [
                {"id": "a", "ip": "203.0.113.10/24", "gateway": "203.0.113.1", "contract_id": 0},
                {"id": "b", "ip": "203.0.113.11/24", "gateway": "203.0.113.1", "contractId": 99, "farmId": "7"}
            ],
            "farm_free_ips": 1
        }))
        .expect("parses");
        assert_eq!(farm.certification_type, FarmCertification::Gold);
        assert_eq!(farm.public_ips[1].contract_id, 99);
        assert_eq!(farm.free_ips(), 1);

        let empty: GridFarm = serde_json::from_value(json!({
            "name": "f", "farmId": 1, "twinId": 1, "certificationType": "NotCertified",
            "dedicated": true, "publicIps": null
        }))
        .expect("null public IPs parse");
        assert!(empty.public_ips.is_empty());

        let snake: GridFarm = serde_json::from_value(json!({
            "name": "f", "farm_id": 2, "twin_id": 3, "certification_type": "Gold",
            "dedicated": false, "public_ips": []
        }))
        .expect("snake_case keys parse");
        assert_eq!((snake.farm_id, snake.twin_id), (2, 3));
    }

    #[test]
    fn status_follows_the_80_minute_and_24_hour_rules() {
        let now = 1_700_000_000;
        let minutes = |m: i64| now - m * 60;
        assert_eq!(
            NodeStatus::derive(minutes(80), PowerState::Up, now),
            NodeStatus::Up
        );
        assert_eq!(
            NodeStatus::derive(minutes(81), PowerState::Up, now),
            NodeStatus::Down
        );
        assert_eq!(
            NodeStatus::derive(minutes(10), PowerState::Unknown, now),
            NodeStatus::Up
        );
        assert_eq!(
            NodeStatus::derive(minutes(23 * 60), PowerState::Down, now),
            NodeStatus::Standby
        );
        assert_eq!(
            NodeStatus::derive(minutes(24 * 60 + 1), PowerState::Down, now),
            NodeStatus::Down
        );
    }

    #[test]
    fn unknown_power_serializes_as_the_empty_string() {
        let text = serde_json::to_string(&NodePower::default()).expect("serializes");
        assert_eq!(text, r#"{"state":"","target":""}"#);
    }
}
