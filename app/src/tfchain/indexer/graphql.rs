//! [`GraphqlIndexer`]: the [`Indexer`] port over the indexer's GraphQL API
//! (tfchain_graphql's Subsquid server, or the dev-only INDEXER SIMULATOR
//! at the grid simulator's `/graphql`).
//!
//! Queries are typed: `graphql_client` derives each request and response
//! from a document in `app/graphql/` checked at compile time against
//! `app/graphql/indexer.graphql` (the subset of the indexer's schema the
//! marketplace reads). It posts `{"query", "variables", "operationName"}`
//! with our own reqwest client.
//!
//! Lists are read in pages of [`PAGE`]; the next page's `where` starts
//! strictly after the last entity seen: after its (timestamp, id) for
//! time-ordered lists, after its id otherwise.
//!
//! Errors: GraphQL `errors` are [`IndexerError::Query`]; no answer, another
//! HTTP status, or data that does not parse (an id, a number, an enum
//! value) is [`IndexerError::Unavailable`].

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use graphql_client::GraphQLQuery;
use reqwest::{StatusCode, Url};

use super::{
    usd_to_musd, BillReport, DiscountLevel, IndexedContract, IndexedContractKind,
    IndexedContractState, Indexer, IndexerError, PageAfter, PriceReport, UptimeReport,
    UsedResources,
};
use crate::http_client::{self, snippet, HttpSetupError};
use crate::tfchain::EventId;

/// How long one request may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Entities asked for per page when a method reads every page.
pub const PAGE: u32 = 1_000;

/// The schema's `BigInt`: a decimal string.
type BigInt = String;
/// The schema's `BigDecimal`: a decimal string.
type BigDecimal = String;

/// The typed queries (`graphql_client`'s generated modules live here).
mod queries {
    #![allow(clippy::all, missing_docs)]
    use super::{BigDecimal, BigInt};
    use graphql_client::GraphQLQuery;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "graphql/indexer.graphql",
        query_path = "graphql/bill_reports.graphql",
        normalization = "rust",
        skip_serializing_none,
        variables_derives = "Debug, Default",
        response_derives = "Debug"
    )]
    pub struct BillReports;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "graphql/indexer.graphql",
        query_path = "graphql/uptime_events.graphql",
        normalization = "rust",
        skip_serializing_none,
        variables_derives = "Debug, Default",
        response_derives = "Debug"
    )]
    pub struct UptimeEvents;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "graphql/indexer.graphql",
        query_path = "graphql/node_contracts.graphql",
        normalization = "rust",
        skip_serializing_none,
        variables_derives = "Debug, Default",
        response_derives = "Debug"
    )]
    pub struct NodeContracts;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "graphql/indexer.graphql",
        query_path = "graphql/rent_contracts.graphql",
        normalization = "rust",
        skip_serializing_none,
        variables_derives = "Debug, Default",
        response_derives = "Debug"
    )]
    pub struct RentContracts;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "graphql/indexer.graphql",
        query_path = "graphql/contract_resources.graphql",
        normalization = "rust",
        skip_serializing_none,
        variables_derives = "Debug, Default",
        response_derives = "Debug"
    )]
    pub struct ContractResources;

    #[derive(GraphQLQuery)]
    #[graphql(
        schema_path = "graphql/indexer.graphql",
        query_path = "graphql/average_prices.graphql",
        normalization = "rust",
        skip_serializing_none,
        variables_derives = "Debug, Default",
        response_derives = "Debug"
    )]
    pub struct AveragePrices;
}

use queries::{
    average_prices, bill_reports, contract_resources, node_contracts, rent_contracts,
    uptime_events, AveragePrices, BillReports, ContractResources, NodeContracts, RentContracts,
    UptimeEvents,
};

/// `where` = strictly after `after` in (timestamp, id) order:
/// `{OR: [{timestamp_gt: t}, {timestamp_eq: t, id_gte: <ids after>}]}`
/// ([`EventId::indexer_ids_after`]: the cursor has no block hash).
macro_rules! after_cursor {
    ($input:ident, $after:expr) => {{
        let after: PageAfter = $after;
        let timestamp = after.timestamp.to_string();
        $input {
            or: Some(vec![
                $input {
                    timestamp_gt: Some(timestamp.clone()),
                    ..Default::default()
                },
                $input {
                    timestamp_eq: Some(timestamp),
                    id_gte: Some(after.event.indexer_ids_after()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }
    }};
}

/// The [`Indexer`] port over GraphQL (see the module documentation).
#[derive(Debug, Clone)]
pub struct GraphqlIndexer {
    http: reqwest::Client,
    url: Url,
}

impl GraphqlIndexer {
    /// The indexer whose GraphQL endpoint is `url` (e.g.
    /// `https://graphql.grid.tf/graphql`, or the simulator's
    /// `http://127.0.0.1:8090/graphql`), each request limited to
    /// [`DEFAULT_TIMEOUT`].
    pub fn new(url: &str) -> Result<GraphqlIndexer, HttpSetupError> {
        GraphqlIndexer::with_timeout(url, DEFAULT_TIMEOUT)
    }

    /// The indexer at `url`, each request limited to `timeout`.
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<GraphqlIndexer, HttpSetupError> {
        Ok(GraphqlIndexer {
            http: http_client::client(timeout)?,
            url: http_client::parse_base(url)?,
        })
    }

    /// The GraphQL endpoint.
    pub fn url(&self) -> &Url {
        &self.url
    }

    async fn run<Q: GraphQLQuery>(
        &self,
        variables: Q::Variables,
    ) -> Result<Q::ResponseData, IndexerError> {
        let body = Q::build_query(variables);
        let url = &self.url;
        let response = self
            .http
            .post(url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| unavailable(url, e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| unavailable(url, e))?;
        // Some servers answer a refused query with 400 and `errors`.
        let parsed = serde_json::from_str::<graphql_client::Response<Q::ResponseData>>(&text);
        if let Ok(graphql_client::Response {
            errors: Some(errors),
            ..
        }) = &parsed
        {
            if !errors.is_empty() {
                let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
                return Err(IndexerError::Query(format!(
                    "{}: {}",
                    body.operation_name,
                    messages.join("; ")
                )));
            }
        }
        if status != StatusCode::OK {
            return Err(IndexerError::Unavailable(format!(
                "POST {url} answered {status}: {}",
                snippet(&text)
            )));
        }
        parsed
            .map_err(|e| IndexerError::Unavailable(format!("POST {url}: unexpected JSON: {e}")))?
            .data
            .ok_or_else(|| IndexerError::Unavailable(format!("POST {url}: no data")))
    }

    async fn bill_reports_page(
        &self,
        contract_ids: &[u64],
        since: Option<PageAfter>,
        limit: u32,
    ) -> Result<Vec<BillReport>, IndexerError> {
        use bill_reports::ContractBillReportWhereInput as Where;
        let filter = Where {
            contract_id_in: Some(contract_ids.iter().map(u64::to_string).collect()),
            and: since.map(|after| vec![after_cursor!(Where, after)]),
            ..Default::default()
        };
        let data = self
            .run::<BillReports>(bill_reports::Variables {
                where_: filter,
                limit: i64::from(limit),
            })
            .await?;
        data.contract_bill_reports
            .into_iter()
            .map(|r| {
                Ok(BillReport {
                    event: event_id(&r.id)?,
                    contract_id: number("contractID", &r.contract_id)?,
                    discount_received: discount(r.discount_received)?,
                    amount_billed: number("amountBilled", &r.amount_billed)?,
                    timestamp: number("timestamp", &r.timestamp)?,
                })
            })
            .collect()
    }

    async fn uptime_page(
        &self,
        node_id: u32,
        from: i64,
        to: i64,
        after: Option<PageAfter>,
    ) -> Result<Vec<UptimeReport>, IndexerError> {
        use uptime_events::UptimeEventWhereInput as Where;
        let filter = Where {
            node_id_eq: Some(i64::from(node_id)),
            timestamp_gte: Some(from.to_string()),
            timestamp_lte: Some(to.to_string()),
            and: after.map(|after| vec![after_cursor!(Where, after)]),
            ..Default::default()
        };
        let data = self
            .run::<UptimeEvents>(uptime_events::Variables {
                where_: filter,
                limit: i64::from(PAGE),
            })
            .await?;
        data.uptime_events
            .into_iter()
            .map(|u| {
                Ok(UptimeReport {
                    event: event_id(&u.id)?,
                    node_id: integer("nodeID", u.node_id)?,
                    uptime: number("uptime", &u.uptime)?,
                    timestamp: number("timestamp", &u.timestamp)?,
                })
            })
            .collect()
    }

    async fn node_contracts_page(
        &self,
        twin_id: u32,
        after: Option<&str>,
    ) -> Result<Vec<IndexedContract>, IndexerError> {
        let filter = node_contracts::NodeContractWhereInput {
            twin_id_eq: Some(i64::from(twin_id)),
            id_gte: after.map(str::to_owned),
            ..Default::default()
        };
        let data = self
            .run::<NodeContracts>(node_contracts::Variables {
                where_: filter,
                limit: i64::from(PAGE),
            })
            .await?;
        data.node_contracts
            .into_iter()
            .map(|c| {
                Ok(IndexedContract {
                    event: event_id(&c.id)?,
                    kind: IndexedContractKind::Node,
                    contract_id: number("contractID", &c.contract_id)?,
                    twin_id: integer("twinID", c.twin_id)?,
                    node_id: integer("nodeID", c.node_id)?,
                    state: node_state(c.state)?,
                    created_at: number("createdAt", &c.created_at)?,
                    public_ips: integer("numberOfPublicIPs", c.number_of_public_i_ps)?,
                })
            })
            .collect()
    }

    async fn rent_contracts_page(
        &self,
        twin_id: u32,
        after: Option<&str>,
    ) -> Result<Vec<IndexedContract>, IndexerError> {
        let filter = rent_contracts::RentContractWhereInput {
            twin_id_eq: Some(i64::from(twin_id)),
            id_gte: after.map(str::to_owned),
            ..Default::default()
        };
        let data = self
            .run::<RentContracts>(rent_contracts::Variables {
                where_: filter,
                limit: i64::from(PAGE),
            })
            .await?;
        data.rent_contracts
            .into_iter()
            .map(|c| {
                Ok(IndexedContract {
                    event: event_id(&c.id)?,
                    kind: IndexedContractKind::Rent,
                    contract_id: number("contractID", &c.contract_id)?,
                    twin_id: integer("twinID", c.twin_id)?,
                    node_id: integer("nodeID", c.node_id)?,
                    state: rent_state(c.state)?,
                    created_at: number("createdAt", &c.created_at)?,
                    public_ips: 0,
                })
            })
            .collect()
    }

    async fn resources_page(
        &self,
        contract_ids: &[u64],
        after: Option<&str>,
    ) -> Result<Vec<UsedResources>, IndexerError> {
        let filter = contract_resources::ContractResourcesWhereInput {
            contract: Box::new(Some(contract_resources::NodeContractWhereInput {
                contract_id_in: Some(contract_ids.iter().map(u64::to_string).collect()),
                ..Default::default()
            })),
            id_gte: after.map(str::to_owned),
            ..Default::default()
        };
        let data = self
            .run::<ContractResources>(contract_resources::Variables {
                where_: filter,
                limit: i64::from(PAGE),
            })
            .await?;
        data.contract_resources
            .into_iter()
            .map(|r| {
                Ok(UsedResources {
                    event: event_id(&r.id)?,
                    contract_id: number("contractID", &r.contract.contract_id)?,
                    hru: number("hru", &r.hru)?,
                    sru: number("sru", &r.sru)?,
                    cru: number("cru", &r.cru)?,
                    mru: number("mru", &r.mru)?,
                })
            })
            .collect()
    }
}

fn unavailable(url: &Url, e: reqwest::Error) -> IndexerError {
    let what = if e.is_timeout() {
        "timed out"
    } else {
        "failed"
    };
    IndexerError::Unavailable(format!("POST {url} {what}: {e}"))
}

fn garbage(what: &str, value: &str) -> IndexerError {
    IndexerError::Unavailable(format!("unexpected {what} {value:?}"))
}

fn event_id(id: &str) -> Result<EventId, IndexerError> {
    EventId::from_indexer_id(id).ok_or_else(|| garbage("entity id", id))
}

/// A `BigInt` (decimal string) as `T`.
fn number<T: FromStr>(what: &str, text: &str) -> Result<T, IndexerError> {
    text.parse().map_err(|_| garbage(what, text))
}

/// An `Int` as `T`.
fn integer<T: TryFrom<i64>>(what: &str, value: i64) -> Result<T, IndexerError> {
    T::try_from(value).map_err(|_| garbage(what, &value.to_string()))
}

fn discount(level: bill_reports::DiscountLevel) -> Result<DiscountLevel, IndexerError> {
    use bill_reports::DiscountLevel as Wire;
    Ok(match level {
        Wire::None => DiscountLevel::None,
        Wire::Default => DiscountLevel::Default,
        Wire::Bronze => DiscountLevel::Bronze,
        Wire::Silver => DiscountLevel::Silver,
        Wire::Gold => DiscountLevel::Gold,
        Wire::Other(other) => return Err(garbage("discountReceived", &other)),
    })
}

/// The generated `ContractState` enums are one per query; map each.
macro_rules! contract_state {
    ($name:ident, $wire:ty) => {
        fn $name(state: $wire) -> Result<IndexedContractState, IndexerError> {
            type Wire = $wire;
            Ok(match state {
                Wire::Created => IndexedContractState::Created,
                Wire::Deleted => IndexedContractState::Deleted,
                Wire::OutOfFunds => IndexedContractState::OutOfFunds,
                Wire::GracePeriod => IndexedContractState::GracePeriod,
                Wire::Other(other) => return Err(garbage("state", &other)),
            })
        }
    };
}

contract_state!(node_state, node_contracts::ContractState);
contract_state!(rent_state, rent_contracts::ContractState);

#[async_trait]
impl Indexer for GraphqlIndexer {
    async fn bill_reports(
        &self,
        contract_ids: &[u64],
        since: Option<PageAfter>,
        limit: u32,
    ) -> Result<Vec<BillReport>, IndexerError> {
        if contract_ids.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        self.bill_reports_page(contract_ids, since, limit).await
    }

    async fn uptime_events(
        &self,
        node_id: u32,
        from: i64,
        to: i64,
    ) -> Result<Vec<UptimeReport>, IndexerError> {
        let mut all: Vec<UptimeReport> = Vec::new();
        loop {
            let after = all.last().map(|u| PageAfter {
                timestamp: u.timestamp,
                event: u.event,
            });
            let page = self.uptime_page(node_id, from, to, after).await?;
            let full = page.len() >= PAGE as usize;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    async fn node_contracts(&self, twin_id: u32) -> Result<Vec<IndexedContract>, IndexerError> {
        let mut all: Vec<IndexedContract> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.node_contracts_page(twin_id, after.as_deref()).await?;
            let full = page.len() >= PAGE as usize;
            after = page.last().map(|c| c.event.indexer_ids_after());
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    async fn rent_contracts(&self, twin_id: u32) -> Result<Vec<IndexedContract>, IndexerError> {
        let mut all: Vec<IndexedContract> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.rent_contracts_page(twin_id, after.as_deref()).await?;
            let full = page.len() >= PAGE as usize;
            after = page.last().map(|c| c.event.indexer_ids_after());
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    async fn contract_resources(
        &self,
        contract_ids: &[u64],
    ) -> Result<Vec<UsedResources>, IndexerError> {
        let mut all: Vec<UsedResources> = Vec::new();
        if contract_ids.is_empty() {
            return Ok(all);
        }
        let mut after: Option<String> = None;
        loop {
            let page = self.resources_page(contract_ids, after.as_deref()).await?;
            let full = page.len() >= PAGE as usize;
            after = page.last().map(|r| r.event.indexer_ids_after());
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    async fn average_prices(
        &self,
        after: Option<PageAfter>,
        limit: u32,
    ) -> Result<Vec<PriceReport>, IndexerError> {
        use average_prices::AveragePriceStoredWhereInput as Where;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let filter = match after {
            Some(after) => after_cursor!(Where, after),
            None => Where::default(),
        };
        let data = self
            .run::<AveragePrices>(average_prices::Variables {
                where_: filter,
                limit: i64::from(limit),
            })
            .await?;
        data.average_price_storeds
            .into_iter()
            .map(|p| {
                Ok(PriceReport {
                    event: event_id(&p.id)?,
                    price_musd: usd_to_musd(&p.new_average_price)
                        .ok_or_else(|| garbage("newAveragePrice", &p.new_average_price))?,
                    timestamp: number("timestamp", &p.timestamp)?,
                })
            })
            .collect()
    }
}
