//! The [`Indexer`] port: what the marketplace reads from TFChain's indexer
//! (threefoldtech/tfchain_graphql, a Subsquid processor with a GraphQL
//! API) instead of scanning the chain: bill reports, uptime reports,
//! contracts by twin, used resources and the TFT price, each entity
//! carrying the id of the chain event it came from.
//!
//! The indexer is a projection of the chain's events, so it lags the chain
//! and its contract states are its own ([`IndexedContractState`]: a chain
//! grace period reads `OutOfFunds`). It keeps no grace-period-elapsed,
//! overdrawn or reward events; those come from the chain itself.
//!
//! - Ids: an entity's `id` is its event's, in Subsquid's format
//!   `<block height, 10 digits>-<event index, 6 digits>-<5 hex digits of
//!   the block hash>` ([`EventId::to_indexer_id`],
//!   [`EventId::from_indexer_id`]); the zero padding makes text order chain
//!   order, so `id_gt` pages.
//! - Timestamps are unix seconds and several events share one: lists page
//!   by (timestamp, id) ([`PageAfter`]).
//! - Amounts are `BigInt` (decimal strings), prices `BigDecimal` USD
//!   ([`usd_to_musd`], [`musd_to_usd`]).
//!
//! [`graphql::GraphqlIndexer`] is the real adapter (typed queries from
//! `app/graphql/`); the dev-only grid SIMULATOR serves the same API at
//! `POST /graphql`.

pub mod graphql;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::EventId;

pub use graphql::GraphqlIndexer;

/// How many hex digits of the block hash an indexer id carries.
const HASH_DIGITS: usize = 5;

impl EventId {
    /// The indexer's id for the entity this event made:
    /// `0000001234-000002-abcde`, with the first five hex digits of
    /// `block_hash`.
    pub fn to_indexer_id(&self, block_hash: &[u8]) -> String {
        let hash = hex::encode(block_hash);
        let hash = hash.get(..HASH_DIGITS).unwrap_or(&hash);
        format!("{:010}-{:06}-{hash}", self.block_number, self.event_index)
    }

    /// The least id-like text above every indexer id of this event and
    /// below every later event's: `0000001234-000008` for event 7 of block
    /// 1234. `id_gte` it resumes strictly after this event without knowing
    /// its block hash (ids sort as text: a prefix sorts first).
    pub fn indexer_ids_after(&self) -> String {
        match self.event_index.checked_add(1) {
            Some(next) => format!("{:010}-{next:06}", self.block_number),
            None => format!("{:010}", u64::from(self.block_number) + 1),
        }
    }

    /// The event an indexer id names, if it is one (`<block>-<index>-<hash>`,
    /// digits then hex; the hash is checked for shape and dropped).
    pub fn from_indexer_id(id: &str) -> Option<EventId> {
        let mut parts = id.split('-');
        let (block, index, hash) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some()
            || hash.is_empty()
            || !hash.bytes().all(|b| b.is_ascii_hexdigit())
            || [block, index]
                .iter()
                .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        Some(EventId {
            block_number: block.parse().ok()?,
            event_index: index.parse().ok()?,
        })
    }
}

/// A TFT price in mUSD as the indexer's `BigDecimal` USD: `10` → `"0.01"`,
/// `1500` → `"1.5"`, `2000` → `"2"`.
pub fn musd_to_usd(musd: u32) -> String {
    let (whole, thousandths) = (musd / 1_000, musd % 1_000);
    if thousandths == 0 {
        return whole.to_string();
    }
    let fraction = format!("{thousandths:03}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

/// A `BigDecimal` USD price back in mUSD, exactly: `None` when it has a
/// non-zero digit past the thousandths, a sign, or does not fit a `u32`.
pub fn usd_to_musd(usd: &str) -> Option<u32> {
    let (whole, fraction) = usd.split_once('.').unwrap_or((usd, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    let (kept, rest) = fraction.split_at(fraction.len().min(3));
    if rest.bytes().any(|b| b != b'0') {
        return None;
    }
    let thousandths: u32 = format!("{kept:0<3}").parse().ok()?;
    whole
        .parse::<u32>()
        .ok()?
        .checked_mul(1_000)?
        .checked_add(thousandths)
}

/// Where a list resumes: strictly after this (timestamp, event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PageAfter {
    /// The last seen entity's timestamp, unix seconds.
    pub timestamp: i64,
    /// The last seen entity's event.
    pub event: EventId,
}

/// `DiscountLevel`: the discount a bill received, by the payer's reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DiscountLevel {
    /// No discount.
    None,
    /// 20 % (1.5 months of reserve).
    Default,
    /// 30 % (3 months).
    Bronze,
    /// 40 % (6 months).
    Silver,
    /// 60 % (18 months).
    Gold,
}

/// A `ContractBillReport`: one contract billed once
/// (`smartContractModule.ContractBilled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillReport {
    /// The `ContractBilled` event.
    pub event: EventId,
    /// The contract billed.
    pub contract_id: u64,
    /// The discount applied.
    pub discount_received: DiscountLevel,
    /// TFT base units billed.
    pub amount_billed: u128,
    /// When, unix seconds (the chain's billing timestamp).
    pub timestamp: i64,
}

/// An `UptimeEvent`: a node's uptime report (`tfgridModule.NodeUptimeReported`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UptimeReport {
    /// The report's event.
    pub event: EventId,
    /// The reporting node.
    pub node_id: u32,
    /// Seconds since the node booted.
    pub uptime: u64,
    /// When it reported, unix seconds (the report's `now`).
    pub timestamp: i64,
}

/// `ContractState` as the indexer keeps it: a chain grace period is
/// `OutOfFunds` there (the indexer's own mapping), and back to `Created`
/// when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IndexedContractState {
    /// Live.
    Created,
    /// Cancelled or removed.
    Deleted,
    /// In its grace period (unpaid).
    OutOfFunds,
    /// In the schema; the indexer writes `OutOfFunds` instead.
    GracePeriod,
}

/// Which kind of contract an [`IndexedContract`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IndexedContractKind {
    /// A `NodeContract`: a deployment on a node.
    Node,
    /// A `RentContract`: a whole node.
    Rent,
}

/// A `NodeContract` or `RentContract` entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedContract {
    /// The `ContractCreated` event.
    pub event: EventId,
    /// Which kind.
    pub kind: IndexedContractKind,
    /// The contract.
    pub contract_id: u64,
    /// Its twin.
    pub twin_id: u32,
    /// Its node.
    pub node_id: u32,
    /// Its state, the indexer's way.
    pub state: IndexedContractState,
    /// When it was created, unix seconds (its block's timestamp).
    pub created_at: i64,
    /// Public IPs it reserves (`numberOfPublicIPs`; 0 for a rent contract).
    pub public_ips: u32,
}

/// A `ContractResources` entity: what a node reports a contract uses
/// (`smartContractModule.UpdatedUsedResources`), bytes and cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedResources {
    /// The event that first reported it.
    pub event: EventId,
    /// The node contract.
    pub contract_id: u64,
    /// HDD bytes.
    pub hru: u64,
    /// SSD bytes.
    pub sru: u64,
    /// Cores.
    pub cru: u64,
    /// Memory bytes.
    pub mru: u64,
}

/// An `AveragePriceStored` (or `PriceStored`) entity: the TFT price the
/// chain stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceReport {
    /// The event.
    pub event: EventId,
    /// mUSD per TFT.
    pub price_musd: u32,
    /// Its block's timestamp, unix seconds.
    pub timestamp: i64,
}

/// Why an indexer read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexerError {
    /// No answer, another HTTP status, or an answer that is not the
    /// expected data (a body or a field that does not parse): try later.
    #[error("indexer unavailable: {0}")]
    Unavailable(String),
    /// The indexer refused the query (GraphQL `errors`): it does not have
    /// what we asked for in that shape; repeating will not help.
    #[error("indexer refused the query: {0}")]
    Query(String),
}

/// TFChain's indexer, as the marketplace reads it.
#[async_trait]
pub trait Indexer: Send + Sync {
    /// Bill reports of `contract_ids` in (timestamp, id) order, strictly
    /// after `since` (from the start when `None`), at most `limit`.
    async fn bill_reports(
        &self,
        contract_ids: &[u64],
        since: Option<PageAfter>,
        limit: u32,
    ) -> Result<Vec<BillReport>, IndexerError>;

    /// Every uptime report of `node_id` with `from <= timestamp <= to`, in
    /// (timestamp, id) order (all pages).
    async fn uptime_events(
        &self,
        node_id: u32,
        from: i64,
        to: i64,
    ) -> Result<Vec<UptimeReport>, IndexerError>;

    /// Every node contract of `twin_id`, in id order (all pages).
    async fn node_contracts(&self, twin_id: u32) -> Result<Vec<IndexedContract>, IndexerError>;

    /// Every rent contract of `twin_id`, in id order (all pages).
    async fn rent_contracts(&self, twin_id: u32) -> Result<Vec<IndexedContract>, IndexerError>;

    /// The used resources of those of `contract_ids` that have a report.
    async fn contract_resources(
        &self,
        contract_ids: &[u64],
    ) -> Result<Vec<UsedResources>, IndexerError>;

    /// Stored average TFT prices in (timestamp, id) order, strictly after
    /// `after` (from the start when `None`), at most `limit`.
    async fn average_prices(
        &self,
        after: Option<PageAfter>,
        limit: u32,
    ) -> Result<Vec<PriceReport>, IndexerError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexer_ids_round_trip_and_sort_in_chain_order() {
        let event = EventId {
            block_number: 1_234,
            event_index: 7,
        };
        let id = event.to_indexer_id(&[0xab, 0xcd, 0xef, 0x01]);
        assert_eq!(id, "0000001234-000007-abcde");
        assert_eq!(EventId::from_indexer_id(&id), Some(event));
        let later = EventId {
            block_number: 10_000,
            event_index: 0,
        }
        .to_indexer_id(&[0; 32]);
        assert!(id < later);
        // The resume point sorts after every id of this event, before the next's.
        let after = event.indexer_ids_after();
        assert!(after.as_str() > id.as_str());
        assert!(after.as_str() < "0000001234-000008-00000");
        assert!(after.as_str() < later.as_str());
        // Subsquid's ids from a real chain parse too.
        assert_eq!(
            EventId::from_indexer_id("0012345678-000123-5ac3f"),
            Some(EventId {
                block_number: 12_345_678,
                event_index: 123
            })
        );
    }

    #[test]
    fn malformed_indexer_ids_are_refused() {
        for bad in [
            "",
            "12",
            "0000001234-000007",
            "0000001234-000007-",
            "0000001234-000007-xyz12",
            "00000a1234-000007-abcde",
            "0000001234--abcde",
            "0000001234-000007-abcde-1",
            "99999999999-000007-abcde",
        ] {
            assert_eq!(EventId::from_indexer_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn usd_prices_convert_to_musd_exactly() {
        for (musd, usd) in [
            (10, "0.01"),
            (1, "0.001"),
            (1_500, "1.5"),
            (2_000, "2"),
            (0, "0"),
        ] {
            assert_eq!(musd_to_usd(musd), usd);
            assert_eq!(usd_to_musd(usd), Some(musd));
        }
        assert_eq!(usd_to_musd("0.0100"), Some(10));
        assert_eq!(usd_to_musd("0.0105"), None);
        assert_eq!(usd_to_musd("-1"), None);
        assert_eq!(usd_to_musd(".5"), None);
        assert_eq!(usd_to_musd("1e3"), None);
        assert_eq!(usd_to_musd("99999999"), None);
    }
}
