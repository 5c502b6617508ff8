//! The INDEXER SIMULATOR over real HTTP, and the `GraphqlIndexer` adapter
//! against it.

use super::*;
use crate::grid_sim::{Seed, Shared, Sim, SimOptions};

/// The head of `app/graphql/indexer.graphql`.
const SCHEMA_HEADER: &str = "\
# TFChain's indexer (threefoldtech/tfchain_graphql, Subsquid's generated
# API): the subset the marketplace reads, as `GraphqlIndexer`'s typed
# queries (app/graphql/*.graphql) are checked against it.
#
# Generated from the INDEXER SIMULATOR (dev/src/grid_sim/indexer.rs); its
# test `the_client_schema_is_the_simulators` fails when they differ, and
# UPDATE_INDEXER_SCHEMA=1 cargo test -p marketplace-dev --lib client_schema
# rewrites it.

";

fn shared() -> Shared {
    Shared(std::sync::Arc::new(std::sync::Mutex::new(Sim::new(
        Seed::dev(),
        1_750_000_000,
        SimOptions::default(),
    ))))
}

#[test]
fn the_client_schema_is_the_simulators() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../app/graphql/indexer.graphql");
    let sdl = format!("{SCHEMA_HEADER}{}", schema(shared()).expect("schema").sdl());
    if std::env::var_os("UPDATE_INDEXER_SCHEMA").is_some() {
        std::fs::write(path, &sdl).expect("write the schema");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == sdl,
        "app/graphql/indexer.graphql is not the simulator's schema; rerun with UPDATE_INDEXER_SCHEMA=1"
    );
}
