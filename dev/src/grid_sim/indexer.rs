//! The INDEXER SIMULATOR: TFChain's indexer (threefoldtech/tfchain_graphql,
//! a Subsquid processor) as a projection of the simulated chain's events,
//! served as GraphQL at `POST /graphql` in Subsquid's generated-API shape.
//! It is not Subsquid: no database, no subscriptions, only the entities
//! and filters the marketplace reads.
//!
//! [`Indexer::ingest`] is fed every event the chain records (one hook in
//! `Ledger::record`) and keeps its own copy of what it indexes, so it
//! holds the whole history even when the chain's event log is pruned.
//! Entities (each `id` the event's, [`EventId::to_indexer_id`] with the
//! first hex digits of BLAKE2b-256 of the block number as the block hash):
//!
//! | entity | from |
//! |---|---|
//! | `NodeContract`, `RentContract` | `ContractCreated` / `ContractUpdated`; `NodeContractCanceled` / `RentContractCanceled` → `Deleted`; `ContractGracePeriodStarted` → `OutOfFunds` (the indexer's mapping), `ContractGracePeriodEnded` → `Created` |
//! | `ContractBillReport` | `ContractBilled` |
//! | `ContractResources` | `UpdatedUsedResources` (one per contract, updated in place) |
//! | `NruConsumption` | `NruConsumptionReportReceived` |
//! | `UptimeEvent` | `tfgridModule.NodeUptimeReported` |
//! | `PriceStored`, `AveragePriceStored` | `tftPriceModule`'s events (mUSD → USD `BigDecimal`) |
//!
//! The schema is built at start from [`ENTITIES`], so every list gets the
//! same arguments: `where: <Entity>WhereInput` (for each scalar field
//! `f_eq`, `f_not_eq`, `f_in`, `f_isNull`, and `f_gt`/`f_gte`/`f_lt`/`f_lte`
//! on ids and numbers; a nested object's filter; `AND`/`OR` lists),
//! `orderBy: [<Entity>OrderByInput!]` (`f_ASC`, `f_DESC`), `offset` and
//! `limit` (none: everything, at most [`MAX_LIMIT`]). A `where` object's
//! own conditions are all required; with `OR` it also matches any of
//! those; an object with only `OR` matches any of them. Unknown fields and
//! bad arguments are GraphQL errors (HTTP 200 with `errors`), as Subsquid
//! answers.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use async_graphql::dynamic::{
    Enum, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ObjectAccessor,
    ResolverContext, Scalar, Schema, SchemaError, TypeRef, ValueAccessor,
};
use async_graphql::{Name, Number, Value};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use serde_json::json;
use tracing::warn;

use marketplace_app::tfchain::indexer::{musd_to_usd, usd_to_musd};
use marketplace_app::tfchain::{ChainEvent, Contract, ContractData, ContractState, EventId};

use super::Shared;

/// The most entities one list answers.
pub(super) const MAX_LIMIT: usize = 10_000;

/// How a field is typed in the schema (and so compared and printed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `ID`, compared as text.
    Id,
    /// `Int`.
    Int,
    /// `BigInt`, a decimal string on the wire.
    BigInt,
    /// `BigDecimal` USD, kept in thousandths (mUSD).
    Usd,
    /// `String`.
    Text,
    /// One of [`ENUMS`], by its name.
    Enum(&'static str),
    /// Another entity, by its name.
    Object(&'static str),
}

impl Kind {
    fn ordered(self) -> bool {
        matches!(self, Kind::Id | Kind::Int | Kind::BigInt | Kind::Usd)
    }

    fn type_name(self) -> &'static str {
        match self {
            Kind::Id => TypeRef::STRING,
            Kind::Int => TypeRef::INT,
            Kind::BigInt => "BigInt",
            Kind::Usd => "BigDecimal",
            Kind::Text => TypeRef::STRING,
            Kind::Enum(name) | Kind::Object(name) => name,
        }
    }
}

/// One field of an entity.
struct FieldDef {
    name: &'static str,
    kind: Kind,
    required: bool,
}

const fn f(name: &'static str, kind: Kind) -> FieldDef {
    FieldDef {
        name,
        kind,
        required: true,
    }
}

const fn opt(name: &'static str, kind: Kind) -> FieldDef {
    FieldDef {
        name,
        kind,
        required: false,
    }
}

/// An entity and the list that serves it.
struct EntityDef {
    name: &'static str,
    list: &'static str,
    fields: &'static [FieldDef],
}

const NODE_CONTRACT: &str = "NodeContract";
const RENT_CONTRACT: &str = "RentContract";
const BILL_REPORT: &str = "ContractBillReport";
const RESOURCES: &str = "ContractResources";
const NRU: &str = "NruConsumption";
const UPTIME: &str = "UptimeEvent";
const PRICE: &str = "PriceStored";
const AVERAGE_PRICE: &str = "AveragePriceStored";

const CONTRACT_STATES: &[&str] = &["Created", "Deleted", "OutOfFunds", "GracePeriod"];
const DISCOUNT_LEVELS: &[&str] = &["None", "Default", "Bronze", "Silver", "Gold"];

/// The enums, with their values.
const ENUMS: &[(&str, &[&str])] = &[
    ("ContractState", CONTRACT_STATES),
    ("DiscountLevel", DISCOUNT_LEVELS),
];

/// The entities served, by tfchain_graphql's names.
const ENTITIES: &[EntityDef] = &[
    EntityDef {
        name: NODE_CONTRACT,
        list: "nodeContracts",
        fields: &[
            f("id", Kind::Id),
            f("gridVersion", Kind::Int),
            f("contractID", Kind::BigInt),
            f("twinID", Kind::Int),
            f("nodeID", Kind::Int),
            f("deploymentData", Kind::Text),
            f("deploymentHash", Kind::Text),
            f("numberOfPublicIPs", Kind::Int),
            f("state", Kind::Enum("ContractState")),
            opt("resourcesUsed", Kind::Object(RESOURCES)),
            f("createdAt", Kind::BigInt),
            opt("solutionProviderID", Kind::Int),
        ],
    },
    EntityDef {
        name: RENT_CONTRACT,
        list: "rentContracts",
        fields: &[
            f("id", Kind::Id),
            f("gridVersion", Kind::Int),
            f("contractID", Kind::BigInt),
            f("twinID", Kind::Int),
            f("nodeID", Kind::Int),
            f("state", Kind::Enum("ContractState")),
            f("createdAt", Kind::BigInt),
            opt("solutionProviderID", Kind::Int),
        ],
    },
    EntityDef {
        name: BILL_REPORT,
        list: "contractBillReports",
        fields: &[
            f("id", Kind::Id),
            f("contractID", Kind::BigInt),
            f("discountReceived", Kind::Enum("DiscountLevel")),
            f("amountBilled", Kind::BigInt),
            f("timestamp", Kind::BigInt),
        ],
    },
    EntityDef {
        name: RESOURCES,
        list: "contractResources",
        fields: &[
            f("id", Kind::Id),
            f("contract", Kind::Object(NODE_CONTRACT)),
            f("hru", Kind::BigInt),
            f("sru", Kind::BigInt),
            f("cru", Kind::BigInt),
            f("mru", Kind::BigInt),
        ],
    },
    EntityDef {
        name: NRU,
        list: "nruConsumptions",
        fields: &[
            f("id", Kind::Id),
            f("contractID", Kind::BigInt),
            f("timestamp", Kind::BigInt),
            opt("window", Kind::BigInt),
            opt("nru", Kind::BigInt),
        ],
    },
    EntityDef {
        name: UPTIME,
        list: "uptimeEvents",
        fields: &[
            f("id", Kind::Id),
            f("nodeID", Kind::Int),
            f("uptime", Kind::BigInt),
            f("timestamp", Kind::BigInt),
        ],
    },
    EntityDef {
        name: PRICE,
        list: "priceStoreds",
        fields: &[
            f("id", Kind::Id),
            f("block", Kind::Int),
            f("timestamp", Kind::BigInt),
            f("newPrice", Kind::Usd),
        ],
    },
    EntityDef {
        name: AVERAGE_PRICE,
        list: "averagePriceStoreds",
        fields: &[
            f("id", Kind::Id),
            f("block", Kind::Int),
            f("timestamp", Kind::BigInt),
            f("newAveragePrice", Kind::Usd),
        ],
    },
];

fn entity(name: &str) -> Option<&'static EntityDef> {
    ENTITIES.iter().find(|e| e.name == name)
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cell {
    /// `Int`, `BigInt` and `BigDecimal` (thousandths).
    Num(i128),
    /// `ID` and `String`.
    Text(String),
    /// An enum value.
    Enum(&'static str),
    /// A nested entity, filled in when read.
    Object(Box<Row>),
    /// Nothing.
    Null,
}

impl Cell {
    fn compare(&self, other: &Cell) -> Ordering {
        match (self, other) {
            (Cell::Num(a), Cell::Num(b)) => a.cmp(b),
            (Cell::Text(a), Cell::Text(b)) => a.cmp(b),
            (Cell::Enum(a), Cell::Enum(b)) => a.cmp(b),
            // PostgreSQL's order: nulls last.
            (Cell::Null, Cell::Null) => Ordering::Equal,
            (Cell::Null, _) => Ordering::Greater,
            (_, Cell::Null) => Ordering::Less,
            _ => Ordering::Equal,
        }
    }
}

/// An entity's fields by name.
type Row = BTreeMap<&'static str, Cell>;

/// The indexer's tables, by entity name, each in chain order.
#[derive(Debug, Default)]
pub(super) struct Indexer {
    tables: BTreeMap<&'static str, Vec<Row>>,
}

/// The simulated block hash: BLAKE2b-256 of the block number (little
/// endian), so ids are the same on every run.
pub(super) fn block_hash(block_number: u32) -> [u8; 32] {
    Blake2b::<U32>::digest(block_number.to_le_bytes()).into()
}

fn indexer_id(id: EventId) -> String {
    id.to_indexer_id(&block_hash(id.block_number))
}

/// An integer that may be a JSON number or a decimal string.
fn integer(value: &serde_json::Value) -> Option<i128> {
    match value {
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(i128::from)
            .or_else(|| n.as_i64().map(i128::from)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn enum_value(allowed: &'static [&'static str], name: &str) -> Option<&'static str> {
    allowed.iter().copied().find(|v| *v == name)
}

/// The indexer's state for a chain contract state.
fn indexed_state(state: &ContractState) -> &'static str {
    match state {
        ContractState::Created => "Created",
        ContractState::GracePeriod(_) => "OutOfFunds",
        ContractState::Deleted(_) => "Deleted",
    }
}

impl Indexer {
    /// Indexes `events`, just recorded by the chain, in order. An event it
    /// does not index, or whose data is not the pallet's shape, is skipped.
    pub(super) fn ingest(&mut self, events: &[ChainEvent]) {
        for event in events {
            if self.apply(event).is_none() {
                warn!(pallet = %event.pallet, name = %event.name, data = %event.data,
                    "INDEXER SIMULATOR: event data not understood; not indexed");
            }
        }
    }

    /// `None` when the data is not what the event carries.
    fn apply(&mut self, event: &ChainEvent) -> Option<()> {
        let data = &event.data;
        let field = |name: &str| data.get(name).and_then(integer);
        match (event.pallet.as_str(), event.name.as_str()) {
            ("smartContractModule", "ContractCreated") => {
                let contract: Contract = serde_json::from_value(data.clone()).ok()?;
                self.contract_created(event, &contract);
            }
            ("smartContractModule", "ContractUpdated") => {
                let contract: Contract = serde_json::from_value(data.clone()).ok()?;
                self.contract_updated(&contract);
            }
            ("smartContractModule", "NodeContractCanceled") => {
                self.set_state(&[NODE_CONTRACT], field("contract_id")?, "Deleted");
            }
            ("smartContractModule", "RentContractCanceled") => {
                self.set_state(&[RENT_CONTRACT], field("contract_id")?, "Deleted");
            }
            ("smartContractModule", "ContractGracePeriodStarted") => {
                let id = field("contract_id")?;
                self.set_state(&[NODE_CONTRACT, RENT_CONTRACT], id, "OutOfFunds");
            }
            ("smartContractModule", "ContractGracePeriodEnded") => {
                let id = field("contract_id")?;
                self.set_state(&[NODE_CONTRACT, RENT_CONTRACT], id, "Created");
            }
            ("smartContractModule", "ContractBilled") => {
                let discount = data.get("discount_level")?.as_str()?;
                let row = Row::from([
                    ("contractID", Cell::Num(field("contract_id")?)),
                    (
                        "discountReceived",
                        Cell::Enum(enum_value(DISCOUNT_LEVELS, discount)?),
                    ),
                    ("amountBilled", Cell::Num(field("amount_billed")?)),
                    ("timestamp", Cell::Num(field("timestamp")?)),
                ]);
                self.insert(BILL_REPORT, event.id, row);
            }
            ("smartContractModule", "UpdatedUsedResources") => {
                let contract_id = field("contract_id")?;
                let used = data.get("used")?;
                let unit = |name: &str| used.get(name).and_then(integer).map(Cell::Num);
                let mut row = Row::from([
                    ("contract", Cell::Num(contract_id)),
                    ("hru", unit("hru")?),
                    ("sru", unit("sru")?),
                    ("cru", unit("cru")?),
                    ("mru", unit("mru")?),
                ]);
                let table = self.tables.entry(RESOURCES).or_default();
                match table
                    .iter_mut()
                    .find(|r| r.get("contract") == Some(&Cell::Num(contract_id)))
                {
                    Some(existing) => {
                        row.insert("id", existing.get("id").cloned().unwrap_or(Cell::Null));
                        *existing = row;
                    }
                    None => self.insert(RESOURCES, event.id, row),
                }
            }
            ("smartContractModule", "NruConsumptionReportReceived") => {
                let row = Row::from([
                    ("contractID", Cell::Num(field("contract_id")?)),
                    ("timestamp", Cell::Num(field("timestamp")?)),
                    ("window", field("window").map_or(Cell::Null, Cell::Num)),
                    ("nru", field("nru").map_or(Cell::Null, Cell::Num)),
                ]);
                self.insert(NRU, event.id, row);
            }
            ("tfgridModule", "NodeUptimeReported") => {
                let at = |i: usize| data.get(i).and_then(integer).map(Cell::Num);
                let row = Row::from([
                    ("nodeID", at(0)?),
                    ("timestamp", at(1)?),
                    ("uptime", at(2)?),
                ]);
                self.insert(UPTIME, event.id, row);
            }
            ("tftPriceModule", name @ ("PriceStored" | "AveragePriceStored")) => {
                let price = data.get(0).and_then(integer)?;
                let (table, column) = if name == "PriceStored" {
                    (PRICE, "newPrice")
                } else {
                    (AVERAGE_PRICE, "newAveragePrice")
                };
                let row = Row::from([
                    ("block", Cell::Num(i128::from(event.id.block_number))),
                    ("timestamp", Cell::Num(i128::from(event.timestamp))),
                    (column, Cell::Num(price)),
                ]);
                self.insert(table, event.id, row);
            }
            _ => {}
        }
        Some(())
    }

    fn insert(&mut self, table: &'static str, id: EventId, mut row: Row) {
        row.insert("id", Cell::Text(indexer_id(id)));
        self.tables.entry(table).or_default().push(row);
    }

    fn contract_created(&mut self, event: &ChainEvent, contract: &Contract) {
        let mut row = Row::from([
            ("gridVersion", Cell::Num(i128::from(contract.version))),
            ("contractID", Cell::Num(i128::from(contract.contract_id))),
            ("twinID", Cell::Num(i128::from(contract.twin_id))),
            ("state", Cell::Enum(indexed_state(&contract.state))),
            ("createdAt", Cell::Num(i128::from(event.timestamp))),
            (
                "solutionProviderID",
                contract
                    .solution_provider_id
                    .map_or(Cell::Null, |id| Cell::Num(i128::from(id))),
            ),
        ]);
        let table = match &contract.contract_type {
            ContractData::NodeContract(node) => {
                row.insert("nodeID", Cell::Num(i128::from(node.node_id)));
                row.insert("deploymentData", Cell::Text(node.deployment_data.clone()));
                row.insert("deploymentHash", Cell::Text(node.deployment_hash.clone()));
                row.insert("numberOfPublicIPs", Cell::Num(i128::from(node.public_ips)));
                NODE_CONTRACT
            }
            ContractData::RentContract { node_id } => {
                row.insert("nodeID", Cell::Num(i128::from(*node_id)));
                RENT_CONTRACT
            }
            // Name contracts are not served.
            ContractData::NameContract { .. } => return,
        };
        self.insert(table, event.id, row);
    }

    fn contract_updated(&mut self, contract: &Contract) {
        let Some(node) = contract.node_contract() else {
            return;
        };
        if let Some(row) = self.contract_row(NODE_CONTRACT, i128::from(contract.contract_id)) {
            row.insert("deploymentData", Cell::Text(node.deployment_data.clone()));
            row.insert("deploymentHash", Cell::Text(node.deployment_hash.clone()));
            row.insert("numberOfPublicIPs", Cell::Num(i128::from(node.public_ips)));
            row.insert("state", Cell::Enum(indexed_state(&contract.state)));
        }
    }

    fn contract_row(&mut self, table: &'static str, contract_id: i128) -> Option<&mut Row> {
        self.tables
            .get_mut(table)?
            .iter_mut()
            .find(|r| r.get("contractID") == Some(&Cell::Num(contract_id)))
    }

    fn set_state(&mut self, tables: &[&'static str], contract_id: i128, state: &'static str) {
        for table in tables {
            if let Some(row) = self.contract_row(table, contract_id) {
                row.insert("state", Cell::Enum(state));
            }
        }
    }

    /// `entity`'s rows as read: nested entities filled in, one level deep
    /// (a contract's `resourcesUsed` with its `contract`, a resources
    /// row's `contract`).
    fn rows(&self, entity: &str) -> Vec<Row> {
        let table = |name: &str| self.tables.get(name).map(Vec::as_slice).unwrap_or_default();
        let resources_of = |contract_id: &Cell| {
            table(RESOURCES)
                .iter()
                .find(|r| r.get("contract") == Some(contract_id))
                .cloned()
        };
        let contract_of = |contract_id: &Cell| {
            table(NODE_CONTRACT)
                .iter()
                .find(|r| r.get("contractID") == Some(contract_id))
                .cloned()
        };
        let with_contract = |mut resources: Row, contract: Row| {
            resources.insert("contract", Cell::Object(Box::new(contract)));
            resources
        };
        match entity {
            NODE_CONTRACT => table(NODE_CONTRACT)
                .iter()
                .map(|contract| {
                    let mut row = contract.clone();
                    let id = contract.get("contractID").cloned().unwrap_or(Cell::Null);
                    let used = resources_of(&id).map_or(Cell::Null, |r| {
                        Cell::Object(Box::new(with_contract(r, contract.clone())))
                    });
                    row.insert("resourcesUsed", used);
                    row
                })
                .collect(),
            RESOURCES => table(RESOURCES)
                .iter()
                .filter_map(|resources| {
                    let id = resources.get("contract").cloned().unwrap_or(Cell::Null);
                    // Only node contracts report used resources.
                    let mut contract = contract_of(&id)?;
                    let inner = with_contract(resources.clone(), contract.clone());
                    contract.insert("resourcesUsed", Cell::Object(Box::new(inner)));
                    Some(with_contract(resources.clone(), contract))
                })
                .collect(),
            other => table(other).to_vec(),
        }
    }
}

#[path = "indexer_graphql.rs"]
mod graphql;
pub(super) use graphql::router;
#[cfg(test)]
use graphql::schema;

#[cfg(test)]
#[path = "indexer_tests.rs"]
mod tests;
