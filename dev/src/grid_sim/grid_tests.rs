//! `tfgridModule.createFarm` and a node moving to another farm, without
//! HTTP: given a chain, when the call is made, then these events and this
//! catalog.

use std::time::Duration;

use serde_json::json;

use super::super::{Seed, Sim, SimOptions};
use super::*;

const START: i64 = 1_800_000_000;

fn sim() -> Sim {
    Sim::new(
        Seed::dev(),
        START,
        SimOptions {
            workload_delay: Duration::ZERO,
            ..SimOptions::default()
        },
    )
}

fn twin(sim: &mut Sim, account: &str) -> u32 {
    sim.submit(
        account,
        &Call::new(
            "tfgridModule",
            "createTwin",
            json!({"relay": null, "pk": null}),
        ),
    )
    .expect("twin");
    sim.chain.twin_id_by_account(account).expect("twin id")
}

fn create_farm(sim: &mut Sim, account: &str, args: Value) -> Result<Vec<ChainEvent>, Refusal> {
    sim.submit(account, &Call::new("tfgridModule", "createFarm", args))
        .map(|receipt| receipt.events)
}

fn refused(error: &'static str) -> Result<Vec<ChainEvent>, Refusal> {
    Err(grid_error(error))
}

#[test]
fn a_twin_creates_a_farm_that_the_proxy_lists_with_its_twin() {
    let mut sim = sim();
    let twin_id = twin(&mut sim, "alliance");
    let events = create_farm(
        &mut sim,
        "alliance",
        json!({"name": "Alliance_1-a", "public_ips": [{"ip": "198.18.9.10/24", "gw": "198.18.9.1"}]}),
    )
    .expect("farm");
    // The seed has farms 1 to 3: the next id is 4.
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].pallet.as_str(), events[0].name.as_str()),
        ("tfgridModule", "FarmStored")
    );
    assert_eq!(
        events[0].data,
        json!({
            "version": 4,
            "id": 4,
            "name": "Alliance_1-a",
            "twin_id": twin_id,
            "pricing_policy_id": 1,
            "certification": "NotCertified",
            "public_ips": [{"ip": "198.18.9.10/24", "gateway": "198.18.9.1", "contract_id": 0}],
            "dedicated_farm": false,
            "farming_policy_limits": null,
        })
    );
    let farm = &sim.catalog.farms[&4];
    assert_eq!(farm.twin_id, twin_id);
    assert_eq!(farm.name, "Alliance_1-a");
    assert_eq!(farm.free_ips(), 1);
    assert_eq!(sim.farm_id_by_name("Alliance_1-a"), Some(4));
    assert_eq!(sim.farm_id_by_name("dev-cairo-farm"), Some(2));
    assert_eq!(sim.farm_id_by_name("nobody"), None);
}

#[test]
fn create_farm_refuses_as_the_pallet_does_and_changes_nothing() {
    let mut sim = sim();
    // No twin.
    assert_eq!(
        create_farm(
            &mut sim,
            "stranger",
            json!({"name": "farm-a", "public_ips": []})
        ),
        refused("TwinNotExists")
    );
    twin(&mut sim, "alliance");
    twin(&mut sim, "other");
    create_farm(&mut sim, "alliance", json!({"name": "farm-a"})).expect("first");
    // The name is taken, by this chain's farm or a seed's.
    for name in ["farm-a", "dev-ghent-farm"] {
        assert_eq!(
            create_farm(&mut sim, "other", json!({"name": name})),
            refused("FarmExists")
        );
    }
    for (name, error) in [
        ("ab", "FarmNameTooShort"),
        (&"x".repeat(41)[..], "FarmNameTooLong"),
        ("has space", "InvalidFarmName"),
        ("dots.no", "InvalidFarmName"),
    ] {
        assert_eq!(
            create_farm(&mut sim, "other", json!({"name": name})),
            refused(error),
            "{name:?}"
        );
    }
    let ip = |ip: &str, gw: &str| json!({"ip": ip, "gw": gw});
    for ips in [
        json!([ip("198.18.9.10", "198.18.9.1")]),
        json!([ip("198.18.9.10/24", "198.18.10.1")]),
        json!([ip("198.18.9.10/24", "198.18.9.0")]),
        json!([ip("not-an-ip/24", "198.18.9.1")]),
    ] {
        assert_eq!(
            create_farm(
                &mut sim,
                "other",
                json!({"name": "farm-b", "public_ips": ips})
            ),
            refused("InvalidPublicIP"),
            "{ips}"
        );
    }
    assert_eq!(
        create_farm(
            &mut sim,
            "other",
            json!({"name": "farm-b", "public_ips": [ip("198.18.9.10/24", "198.18.9.1"), ip("198.18.9.10/24", "198.18.9.1")]})
        ),
        refused("IpExists")
    );
    // Only farm-a was made; the failed calls only counted against nonces.
    assert_eq!(sim.catalog.farms.len(), 4);
    assert_eq!(sim.farm_id_by_name("farm-b"), None);
    assert!(sim.chain.account("other").nonce > 1);
    assert!(matches!(
        create_farm(&mut sim, "other", json!({"title": "farm-b"})),
        Err(Refusal::BadCall(_))
    ));
}

#[test]
fn a_node_moved_to_another_farm_is_updated_on_chain_and_in_the_catalog() {
    let mut sim = sim();
    twin(&mut sim, "alliance");
    create_farm(&mut sim, "alliance", json!({"name": "alliance-farm"})).expect("farm");
    assert_eq!(sim.catalog.node(5).expect("node 5").node.farm_id, 2);

    let recorded = sim.move_node(5, 4).expect("moved");
    assert_eq!(recorded.len(), 1);
    let updated = recorded[0].clone();
    assert_eq!(
        (updated.pallet.as_str(), updated.name.as_str()),
        ("tfgridModule", "NodeUpdated")
    );
    let node = &updated.data;
    assert_eq!(node["version"], 5);
    assert_eq!(node["id"], 5);
    assert_eq!(node["farm_id"], 4);
    assert_eq!(node["twin_id"], 1_005);
    assert_eq!(node["certification"], "Diy");
    assert!(node["resources"]["cru"].as_u64().expect("cru") > 0);
    for field in [
        "location",
        "public_config",
        "created",
        "farming_policy_id",
        "interfaces",
        "secure_boot",
        "virtualized",
        "serial_number",
        "connection_price",
    ] {
        assert!(node.get(field).is_some(), "{field}");
    }
    let rendered = sim.render(sim.catalog.node(5).expect("node 5"));
    assert_eq!(rendered.farm_id, 4);
    assert_eq!(rendered.farm_name, "alliance-farm");
    // It is in the chain's log.
    let logged = sim
        .chain
        .events(None, 0, Some("tfgridModule"), Some("NodeUpdated"), 10)
        .expect("kept");
    assert_eq!(logged, [updated]);

    assert!(matches!(
        sim.move_node(5, 99),
        Err(SimError::UnknownFarm {
            node_id: 5,
            farm_id: 99
        })
    ));
    assert!(matches!(
        sim.move_node(999, 1),
        Err(SimError::NodeNotFound(999))
    ));
    assert_eq!(sim.catalog.node(5).expect("node 5").node.farm_id, 4);
}
