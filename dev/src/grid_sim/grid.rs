//! `tfgridModule`'s farms and nodes in the TFChain SIMULATOR: the
//! `createFarm` extrinsic (`pallet-tfgrid`'s `farm.rs`, `_create_farm`) and
//! a node moving to another farm (`node.rs`, `_update_node` with a new
//! `farm_id`), both over the grid proxy's catalog, which is where the
//! simulator keeps farms and nodes. A farm's `twin_id` is what billing
//! reads to pay the farmer (`billing.rs`, rewards), so a farm created here
//! by an account with a twin is paid into that account.
//!
//! The node move is a control (`POST /sim/nodes/{id}/farm`), not an
//! extrinsic: on chain the node's own twin signs `update_node`, and the
//! catalog's node twins are not chain accounts.

use std::net::Ipv4Addr;

use serde::Deserialize;
use serde_json::{json, Value};

use marketplace_app::grid::types::{FarmCertification, FarmPublicIp, GridFarm, GridNode};
use marketplace_app::tfchain::http::wire::Call;
use marketplace_app::tfchain::ChainEvent;

use super::chain::{event, Pending, Refusal};
use super::{Sim, SimError};

/// `pallet-tfgrid`'s `TFGRID_FARM_VERSION`.
const FARM_VERSION: u32 = 4;

/// `pallet-tfgrid`'s `TFGRID_NODE_VERSION`.
const NODE_VERSION: u32 = 5;

/// `MIN_FARM_NAME_LENGTH`.
const MIN_FARM_NAME: usize = 3;

/// The runtime's `MaxFarmNameLength`.
const MAX_FARM_NAME: usize = 40;

/// The runtime's `MaxFarmPublicIps`.
const MAX_FARM_PUBLIC_IPS: usize = 512;

fn grid_error(error: &'static str) -> Refusal {
    Refusal::Module {
        pallet: "tfgridModule",
        error,
    }
}

/// `IP4` as a call takes it: an address with its prefix and a gateway.
#[derive(Deserialize)]
struct Ip4Input {
    ip: String,
    gw: String,
}

/// `FarmName::try_from`: 3 to 40 characters of `a-z A-Z 0-9 - _`.
fn check_farm_name(name: &str) -> Result<(), Refusal> {
    if name.len() < MIN_FARM_NAME {
        return Err(grid_error("FarmNameTooShort"));
    }
    if name.len() > MAX_FARM_NAME {
        return Err(grid_error("FarmNameTooLong"));
    }
    let valid = name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if !valid {
        return Err(grid_error("InvalidFarmName"));
    }
    Ok(())
}

/// `IP4::is_valid`, without its `is_public` checks (the seeds use the
/// 198.18.0.0/15 benchmarking range): the address is a CIDR, the gateway
/// an address in its network and not the network itself.
fn check_ip4(input: &Ip4Input) -> Result<(), Refusal> {
    let invalid = || grid_error("InvalidPublicIP");
    let (address, prefix) = input.ip.split_once('/').ok_or_else(invalid)?;
    let address: Ipv4Addr = address.parse().map_err(|_| invalid())?;
    let prefix: u32 = prefix.parse().map_err(|_| invalid())?;
    if prefix > 32 {
        return Err(invalid());
    }
    let gateway: Ipv4Addr = input.gw.parse().map_err(|_| invalid())?;
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    let network = u32::from(address) & mask;
    let gw = u32::from(gateway);
    if gw & mask != network || gw == network || gateway.is_unspecified() {
        return Err(invalid());
    }
    Ok(())
}

/// `Farm` as `FarmStored(Farm)` and `tfgridModule.Farms` carry it.
pub(super) fn farm_json(farm: &GridFarm) -> Value {
    let certification = match farm.certification_type {
        FarmCertification::Gold => "Gold",
        FarmCertification::NotCertified | FarmCertification::Unknown => "NotCertified",
    };
    json!({
        "version": FARM_VERSION,
        "id": farm.farm_id,
        "name": farm.name,
        "twin_id": farm.twin_id,
        "pricing_policy_id": farm.pricing_policy_id,
        "certification": certification,
        "public_ips": farm.public_ips.iter().map(|ip| json!({
            "ip": ip.ip,
            "gateway": ip.gateway,
            "contract_id": ip.contract_id,
        })).collect::<Vec<_>>(),
        "dedicated_farm": farm.dedicated,
        "farming_policy_limits": null,
    })
}

/// `Node` as `NodeStored(Node)` and `NodeUpdated(Node)` carry it, from
/// what the catalog knows of the node (no interfaces, not virtualized).
fn node_json(node: &GridNode) -> Value {
    let config = &node.public_config;
    let public_config = if config.ipv4.is_empty() {
        Value::Null
    } else {
        json!({
            "ip4": {"ip": config.ipv4, "gw": config.gw4},
            "ip6": if config.ipv6.is_empty() {
                Value::Null
            } else {
                json!({"ip": config.ipv6, "gw": config.gw6})
            },
            "domain": if config.domain.is_empty() {
                Value::Null
            } else {
                json!(config.domain)
            },
        })
    };
    let certification = match node.certification_type {
        marketplace_app::grid::types::NodeCertification::Certified => "Certified",
        _ => "Diy",
    };
    let total = node.total_resources;
    let degrees = |value: Option<f64>| value.map(|v| v.to_string()).unwrap_or_default();
    json!({
        "version": NODE_VERSION,
        "id": node.node_id,
        "farm_id": node.farm_id,
        "twin_id": node.twin_id,
        "resources": {"hru": total.hru, "sru": total.sru, "cru": total.cru, "mru": total.mru},
        "location": {
            "city": node.city,
            "country": node.country,
            "latitude": degrees(node.location.latitude),
            "longitude": degrees(node.location.longitude),
        },
        "public_config": public_config,
        "created": node.created,
        "farming_policy_id": node.farming_policy_id,
        "interfaces": [],
        "certification": certification,
        "secure_boot": false,
        "virtualized": false,
        "serial_number": if node.serial_number.is_empty() {
            Value::Null
        } else {
            json!(node.serial_number)
        },
        "connection_price": 0,
    })
}

impl Sim {
    /// `tfgridModule.FarmIdByName`.
    pub(super) fn farm_id_by_name(&self, name: &str) -> Option<u32> {
        self.catalog
            .farms
            .values()
            .find(|f| f.name == name)
            .map(|f| f.farm_id)
    }

    /// `tfgridModule.createFarm(name, public_ips)`: the signer's twin's
    /// farm, the next id after the catalog's, `NotCertified`, pricing
    /// policy 1, not dedicated; `FarmStored(Farm)`. Its IPs are free.
    pub(super) fn create_farm(
        &mut self,
        signer: &str,
        call: &Call,
    ) -> Result<Vec<Pending>, Refusal> {
        #[derive(Deserialize)]
        struct Args {
            name: String,
            #[serde(default)]
            public_ips: Vec<Ip4Input>,
        }
        let Args { name, public_ips } = super::chain::args(call)?;
        let twin_id = self
            .chain
            .twin_id_by_account(signer)
            .ok_or(grid_error("TwinNotExists"))?;
        if self.farm_id_by_name(&name).is_some() {
            return Err(grid_error("FarmExists"));
        }
        check_farm_name(&name)?;
        if public_ips.len() > MAX_FARM_PUBLIC_IPS {
            return Err(grid_error("InvalidPublicIP"));
        }
        let mut ips: Vec<FarmPublicIp> = Vec::with_capacity(public_ips.len());
        for input in &public_ips {
            check_ip4(input)?;
            if ips
                .iter()
                .any(|ip| ip.ip == input.ip && ip.gateway == input.gw)
            {
                return Err(grid_error("IpExists"));
            }
            ips.push(FarmPublicIp {
                id: String::new(),
                ip: input.ip.clone(),
                gateway: input.gw.clone(),
                contract_id: 0,
            });
        }
        let id = self
            .catalog
            .farms
            .keys()
            .next_back()
            .map_or(1, |last| last + 1);
        let farm = GridFarm {
            name,
            farm_id: id,
            twin_id,
            pricing_policy_id: 1,
            certification_type: FarmCertification::NotCertified,
            stellar_address: String::new(),
            dedicated: false,
            public_ips: ips,
        };
        let stored = event("tfgridModule", "FarmStored", farm_json(&farm));
        self.catalog.farms.insert(id, farm);
        Ok(vec![stored])
    }

    /// The node's owner re-registers it under `farm_id` (`update_node`
    /// with another farm): `NodeUpdated(Node)` in the current block. From
    /// then on its bills' farmer share goes to the new farm's twin. The
    /// public IPs its contracts hold stay with the farm they came from.
    /// The events recorded: the `NodeUpdated`.
    pub(super) fn move_node(
        &mut self,
        node_id: u32,
        farm_id: u32,
    ) -> Result<Vec<ChainEvent>, SimError> {
        if !self.catalog.farms.contains_key(&farm_id) {
            return Err(SimError::UnknownFarm { node_id, farm_id });
        }
        let sim_node = self.catalog.node_mut(node_id)?;
        sim_node.node.farm_id = farm_id;
        let data = node_json(&sim_node.node);
        let block = self.chain.block_at(self.catalog.now);
        Ok(self
            .chain
            .record(block, vec![event("tfgridModule", "NodeUpdated", data)]))
    }
}

#[cfg(test)]
#[path = "grid_tests.rs"]
mod tests;
