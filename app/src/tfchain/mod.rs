//! TFChain, as the marketplace uses it.
//!
//! - [`signatures`]: SS58 addresses and account signatures (proving that a
//!   user controls an account they link).
//! - [`custody`]: the accounts the marketplace holds for its users (and its
//!   treasury), their sr25519 keys derived from one master secret.
//! - [`port`]: the [`Chain`] port: the pallets' calls, storage and events
//!   the provisioning manager and the treasury worker need, with the
//!   chain's own names and fields. A real adapter (a `subxt` client) and
//!   the dev-only TFChain SIMULATOR's HTTP adapter ([`http`]) both fill it.
//! - [`indexer`]: the [`Indexer`] port: TFChain's indexer (tfchain_graphql's
//!   GraphQL API) for bill reports, uptime, contracts by twin, used
//!   resources and prices, with its real adapter [`GraphqlIndexer`]; the id
//!   format its entities carry is defined there, once.

pub mod custody;
pub mod http;
pub mod indexer;
pub mod port;
mod signatures;

pub use custody::{Custody, CustodyError, Signer};
pub use indexer::{
    BillReport, DiscountLevel, GraphqlIndexer, IndexedContract, IndexedContractKind,
    IndexedContractState, Indexer, IndexerError, PageAfter, PriceReport, UptimeReport,
    UsedResources,
};
pub use port::{
    Block, Chain, ChainError, ChainEvent, Contract, ContractData, ContractState, DeletionCause,
    EventId, NodeContract, PublicIp, Receipt,
};
pub use signatures::{parse_signature, ss58_address, ss58_public_key, verify, Ss58Error};

/// TFChain's SS58 address prefix.
pub const SS58_PREFIX: u8 = 42;
