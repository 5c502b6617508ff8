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

/// A parsed `where`.
#[derive(Debug, Default)]
struct Filter {
    conditions: Vec<Condition>,
    and: Vec<Filter>,
    or: Vec<Filter>,
}

#[derive(Debug)]
enum Condition {
    Compare {
        field: &'static str,
        op: Op,
        value: Cell,
    },
    In {
        field: &'static str,
        values: Vec<Cell>,
    },
    IsNull {
        field: &'static str,
        null: bool,
    },
    Nested {
        field: &'static str,
        filter: Filter,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    NotEq,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// The comparison suffixes, longest first where one ends another.
const OPS: &[(&str, Op)] = &[
    ("_not_eq", Op::NotEq),
    ("_eq", Op::Eq),
    ("_gte", Op::Gte),
    ("_gt", Op::Gt),
    ("_lte", Op::Lte),
    ("_lt", Op::Lt),
];

impl Filter {
    fn matches(&self, row: &Row) -> bool {
        let own = !self.conditions.is_empty() || !self.and.is_empty();
        let all = self.conditions.iter().all(|c| c.matches(row))
            && self.and.iter().all(|f| f.matches(row));
        if self.or.is_empty() {
            return all;
        }
        let any = self.or.iter().any(|f| f.matches(row));
        if own {
            all || any
        } else {
            any
        }
    }
}

impl Condition {
    fn matches(&self, row: &Row) -> bool {
        let cell = |field: &str| row.get(field).unwrap_or(&Cell::Null);
        match self {
            Condition::Compare { field, op, value } => {
                let cell = cell(field);
                if *cell == Cell::Null {
                    return false;
                }
                let order = cell.compare(value);
                match op {
                    Op::Eq => order == Ordering::Equal,
                    Op::NotEq => order != Ordering::Equal,
                    Op::Gt => order == Ordering::Greater,
                    Op::Gte => order != Ordering::Less,
                    Op::Lt => order == Ordering::Less,
                    Op::Lte => order != Ordering::Greater,
                }
            }
            Condition::In { field, values } => values.contains(cell(field)),
            Condition::IsNull { field, null } => (*cell(field) == Cell::Null) == *null,
            Condition::Nested { field, filter } => match cell(field) {
                Cell::Object(inner) => filter.matches(inner),
                _ => false,
            },
        }
    }
}

fn bad(message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message)
}

/// A filter or argument value as a cell of `kind`.
fn cell_of(kind: Kind, value: &ValueAccessor<'_>) -> async_graphql::Result<Cell> {
    let raw = value.as_value();
    let cell = match (kind, raw) {
        (Kind::Int | Kind::BigInt, Value::Number(n)) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .map(Cell::Num),
        (Kind::BigInt, Value::String(s)) => s.parse().ok().map(Cell::Num),
        (Kind::Usd, Value::String(s)) => usd_to_musd(s).map(|m| Cell::Num(i128::from(m))),
        (Kind::Id | Kind::Text, Value::String(s)) => Some(Cell::Text(s.clone())),
        (Kind::Enum(name), _) => {
            let allowed = ENUMS
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(&[][..], |(_, v)| *v);
            value
                .enum_name()
                .ok()
                .and_then(|v| enum_value(allowed, v))
                .map(Cell::Enum)
        }
        _ => None,
    };
    cell.ok_or_else(|| bad(format!("{raw} is not a valid {}", kind.type_name())))
}

fn parse_filter(def: &EntityDef, input: &ObjectAccessor<'_>) -> async_graphql::Result<Filter> {
    let mut filter = Filter::default();
    for (key, value) in input.iter() {
        if value.is_null() {
            continue;
        }
        let key = key.as_str();
        if key == "AND" || key == "OR" {
            let list = value.list()?;
            let parsed = list
                .iter()
                .map(|item| parse_filter(def, &item.object()?))
                .collect::<async_graphql::Result<Vec<_>>>()?;
            if key == "AND" {
                filter.and.extend(parsed);
            } else {
                filter.or.extend(parsed);
            }
            continue;
        }
        let known = |name: &str| {
            def.fields
                .iter()
                .find(|f| f.name == name)
                .ok_or_else(|| bad(format!("{} has no field {name}", def.name)))
        };
        let condition = if let Some(name) = key.strip_suffix("_in") {
            let field = known(name)?;
            let values = value
                .list()?
                .iter()
                .map(|v| cell_of(field.kind, &v))
                .collect::<async_graphql::Result<Vec<_>>>()?;
            Condition::In {
                field: field.name,
                values,
            }
        } else if let Some(name) = key.strip_suffix("_isNull") {
            Condition::IsNull {
                field: known(name)?.name,
                null: value.boolean()?,
            }
        } else if let Some((name, op)) = OPS
            .iter()
            .find_map(|(suffix, op)| key.strip_suffix(suffix).map(|name| (name, *op)))
        {
            let field = known(name)?;
            Condition::Compare {
                field: field.name,
                op,
                value: cell_of(field.kind, &value)?,
            }
        } else {
            let field = known(key)?;
            let Kind::Object(inner) = field.kind else {
                return Err(bad(format!("{key} is not a filter")));
            };
            let inner = entity(inner).ok_or_else(|| bad(format!("no entity {inner}")))?;
            Condition::Nested {
                field: field.name,
                filter: parse_filter(inner, &value.object()?)?,
            }
        };
        filter.conditions.push(condition);
    }
    Ok(filter)
}

/// One list: filtered, ordered, paged.
fn list(ctx: &ResolverContext<'_>, def: &'static EntityDef) -> async_graphql::Result<Vec<Row>> {
    let filter = match ctx.args.get("where") {
        Some(w) if !w.is_null() => parse_filter(def, &w.object()?)?,
        _ => Filter::default(),
    };
    let mut order = Vec::new();
    if let Some(list) = ctx.args.get("orderBy").filter(|v| !v.is_null()) {
        for item in list.list()?.iter() {
            let name = item.enum_name()?;
            let (field, desc) = if let Some(field) = name.strip_suffix("_ASC") {
                (field, false)
            } else if let Some(field) = name.strip_suffix("_DESC") {
                (field, true)
            } else {
                return Err(bad(format!("{name} is not an order")));
            };
            order.push((field.to_owned(), desc));
        }
    }
    let count = |name: &str| -> async_graphql::Result<Option<usize>> {
        match ctx.args.get(name).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(v) => usize::try_from(v.i64()?)
                .map(Some)
                .map_err(|_| bad(format!("{name} must not be negative"))),
        }
    };
    let offset = count("offset")?.unwrap_or(0);
    let limit = count("limit")?.unwrap_or(MAX_LIMIT);
    if limit > MAX_LIMIT {
        return Err(bad(format!("limit must be at most {MAX_LIMIT}")));
    }
    let shared = ctx.data::<Shared>()?;
    let mut rows: Vec<Row> = {
        let sim = shared.lock();
        sim.chain
            .indexer
            .rows(def.name)
            .into_iter()
            .filter(|r| filter.matches(r))
            .collect()
    };
    // Stable: ties keep chain order.
    rows.sort_by(|a, b| {
        order
            .iter()
            .map(|(field, desc)| {
                let null = Cell::Null;
                let o = a
                    .get(field.as_str())
                    .unwrap_or(&null)
                    .compare(b.get(field.as_str()).unwrap_or(&null));
                if *desc {
                    o.reverse()
                } else {
                    o
                }
            })
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    });
    Ok(rows.into_iter().skip(offset).take(limit).collect())
}

/// A cell as the schema prints `kind`.
fn output(kind: Kind, cell: &Cell) -> Option<FieldValue<'static>> {
    let value = match (kind, cell) {
        (_, Cell::Null) => return None,
        (Kind::Object(_), Cell::Object(row)) => {
            return Some(FieldValue::owned_any((**row).clone()))
        }
        (Kind::Int, Cell::Num(n)) => Value::Number(Number::from(i64::try_from(*n).ok()?)),
        (Kind::BigInt, Cell::Num(n)) => Value::String(n.to_string()),
        (Kind::Usd, Cell::Num(n)) => Value::String(musd_to_usd(u32::try_from(*n).ok()?)),
        (Kind::Enum(_), Cell::Enum(v)) => Value::Enum(Name::new(v)),
        (_, Cell::Text(s)) => Value::String(s.clone()),
        _ => return None,
    };
    Some(FieldValue::value(value))
}

fn type_ref(field: &FieldDef) -> TypeRef {
    if field.required {
        TypeRef::named_nn(field.kind.type_name())
    } else {
        TypeRef::named(field.kind.type_name())
    }
}

/// The schema, over the simulator's state.
pub(super) fn schema(shared: Shared) -> Result<Schema, SchemaError> {
    let mut query = Object::new("Query");
    let mut builder = Schema::build("Query", None, None)
        .register(
            Scalar::new("BigInt")
                .description("Big number integer, a decimal string")
                .validator(|v| match v {
                    Value::String(s) => s.parse::<i128>().is_ok(),
                    Value::Number(n) => n.is_i64() || n.is_u64(),
                    _ => false,
                }),
        )
        .register(
            Scalar::new("BigDecimal")
                .description("Big number decimal, a decimal string")
                .validator(|v| matches!(v, Value::String(s) if usd_to_musd(s).is_some())),
        );
    for (name, values) in ENUMS {
        builder = builder.register(Enum::new(*name).items(values.iter().copied()));
    }
    for def in ENTITIES {
        let mut object = Object::new(def.name);
        let mut filter = InputObject::new(format!("{}WhereInput", def.name));
        let mut order = Enum::new(format!("{}OrderByInput", def.name));
        for field in def.fields {
            let (name, kind) = (field.name, field.kind);
            object = object.field(Field::new(name, type_ref(field), move |ctx| {
                FieldFuture::new(async move {
                    let row = ctx.parent_value.try_downcast_ref::<Row>()?;
                    Ok(row.get(name).and_then(|cell| output(kind, cell)))
                })
            }));
            if let Kind::Object(inner) = kind {
                filter = filter.field(InputValue::new(
                    name,
                    TypeRef::named(format!("{inner}WhereInput")),
                ));
                continue;
            }
            let scalar = kind.type_name();
            let mut ops = vec!["eq", "not_eq"];
            if kind.ordered() {
                ops.extend(["gt", "gte", "lt", "lte"]);
            }
            for op in ops {
                filter = filter.field(InputValue::new(
                    format!("{name}_{op}"),
                    TypeRef::named(scalar),
                ));
            }
            filter = filter
                .field(InputValue::new(
                    format!("{name}_in"),
                    TypeRef::named_nn_list(scalar),
                ))
                .field(InputValue::new(
                    format!("{name}_isNull"),
                    TypeRef::named(TypeRef::BOOLEAN),
                ));
            order = order
                .item(format!("{name}_ASC"))
                .item(format!("{name}_DESC"));
        }
        let where_name = format!("{}WhereInput", def.name);
        filter = filter
            .field(InputValue::new("AND", TypeRef::named_nn_list(&where_name)))
            .field(InputValue::new("OR", TypeRef::named_nn_list(&where_name)));
        let order_name = format!("{}OrderByInput", def.name);
        query = query.field(
            Field::new(def.list, TypeRef::named_nn_list_nn(def.name), move |ctx| {
                FieldFuture::new(async move {
                    let rows = list(&ctx, def)?;
                    Ok(Some(FieldValue::list(
                        rows.into_iter().map(FieldValue::owned_any),
                    )))
                })
            })
            .argument(InputValue::new("where", TypeRef::named(&where_name)))
            .argument(InputValue::new(
                "orderBy",
                TypeRef::named_nn_list(&order_name),
            ))
            .argument(InputValue::new("offset", TypeRef::named(TypeRef::INT)))
            .argument(InputValue::new("limit", TypeRef::named(TypeRef::INT))),
        );
        builder = builder.register(object).register(filter).register(order);
    }
    builder.register(query).data(shared).finish()
}

/// `POST /graphql` over the simulation, for any router state.
pub(super) fn router<S: Clone + Send + Sync + 'static>(shared: Shared) -> Router<S> {
    // Built from constants; the tests build the same schema.
    let schema = schema(shared).expect("the INDEXER SIMULATOR's schema is built from constants");
    Router::new().route("/graphql", post(graphql).with_state(schema))
}

/// `POST /graphql`: a GraphQL request as JSON; the answer is 200 with
/// `data` and/or `errors`, or 400 when the body is not a request.
pub(super) async fn graphql(State(schema): State<Schema>, body: Bytes) -> Response {
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "errors": [{ "message": format!("not a GraphQL request: {e}") }] })),
            )
                .into_response()
        }
    };
    Json(schema.execute(request).await).into_response()
}

#[cfg(test)]
#[path = "indexer_tests.rs"]
mod tests;
