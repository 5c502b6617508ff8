//! The one command path, for every aggregate and every caller (HTTP
//! handlers and workers alike): load the aggregate, let the caller build
//! its command from the current state (authorising on it), check the
//! caller's expected version, decide, commit with metadata.
//!
//! Optimistic concurrency is the store's: a commit that lost a race to a
//! concurrent writer fails on the event table's primary key. Without an
//! expected version, the command is decided again against the newer state
//! (a bounded number of times): it may still be valid. With one (`If-Match`),
//! the conflict is the caller's to see.

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, EventStore};
use marketplace_domain::alliance::Alliance;
use marketplace_domain::deployment::Deployment;
use marketplace_domain::node::Node;
use marketplace_domain::pricing::PricingPolicyAggregate;
use marketplace_domain::provider::ProviderRequest;
use marketplace_domain::tft_price::TftPriceFeed;
use marketplace_domain::user::User;
use marketplace_domain::wallet::Wallet;
use marketplace_domain::EventSourced;
use postgres_es::PostgresEventRepository;

use crate::error::CommandError;
use crate::metadata::EventMetadata;

pub mod group;

pub use group::GroupCommit;

/// An aggregate's event store: cqrs-es's for loads (snapshot, then the
/// events after it, upcast), and the group committer for the bus's
/// appends. Derefs to the cqrs-es store.
pub struct Store<A: Aggregate> {
    events: PersistedEventStore<PostgresEventRepository, A>,
    committer: GroupCommit,
}

impl<A: Aggregate> std::ops::Deref for Store<A> {
    type Target = PersistedEventStore<PostgresEventRepository, A>;

    fn deref(&self) -> &Self::Target {
        &self.events
    }
}

impl<A: Aggregate> Store<A> {
    /// The group committer its appends go through.
    pub fn committer(&self) -> &GroupCommit {
        &self.committer
    }
}

/// Keeps a snapshot every this many events, so loading stays short.
pub const SNAPSHOT_EVERY: usize = 20;

/// How many times a command without an expected version is decided again
/// after losing a race. Every round of a race has a winner, so a command
/// loses at most once per other writer racing it; this covers far more
/// concurrent writers on one aggregate (a user's requests, webhooks and the
/// payment workers on one wallet) than occur.
pub const CONFLICT_RETRIES: usize = 16;

/// Builds an aggregate's store over a pool, with a committer of its own;
/// loads read older event versions as the current one.
pub fn store<A: Aggregate>(pool: sqlx::PgPool) -> Store<A> {
    let committer = GroupCommit::new(pool.clone());
    store_with(pool, committer)
}

/// Builds an aggregate's store whose appends go through `committer`
/// (shared by every store of a [`Stores`]).
pub fn store_with<A: Aggregate>(pool: sqlx::PgPool, committer: GroupCommit) -> Store<A> {
    Store {
        events: PersistedEventStore::new_snapshot_store(
            PostgresEventRepository::new(pool),
            SNAPSHOT_EVERY,
        )
        .with_upcasters(vec![Box::new(Upcaster(A::TYPE))]),
        committer,
    }
}

/// The domain's upcasting steps ([`marketplace_domain::upcast`]) as the
/// event store applies them on load, for one aggregate type.
struct Upcaster(&'static str);

impl cqrs_es::persist::EventUpcaster for Upcaster {
    fn can_upcast(&self, _event_type: &str, event_version: &str) -> bool {
        marketplace_domain::upcast::current_version(self.0).is_some_and(|v| v != event_version)
    }

    /// A payload no step can read is left as it is: parsing it then fails
    /// and the load reports it.
    fn upcast(
        &self,
        mut event: cqrs_es::persist::SerializedEvent,
    ) -> cqrs_es::persist::SerializedEvent {
        match marketplace_domain::upcast::upcast(
            self.0,
            &event.event_type,
            &event.event_version,
            event.payload.clone(),
        ) {
            Ok(payload) => {
                event.payload = payload;
                if let Some(current) = marketplace_domain::upcast::current_version(self.0) {
                    event.event_version = current.to_string();
                }
                event
            }
            Err(e) => {
                tracing::warn!(aggregate_type = self.0, event_type = %event.event_type, error = %e, "cannot upcast on load");
                event
            }
        }
    }
}

/// The event stores of every aggregate.
pub struct Stores {
    /// Deployments.
    pub deployments: Store<Deployment>,
    /// Provider requests (one per farm).
    pub providers: Store<ProviderRequest>,
    /// Grid nodes.
    pub nodes: Store<Node>,
    /// The pricing policy.
    pub pricing: Store<PricingPolicyAggregate>,
    /// Wallets (one per cloud user).
    pub wallets: Store<Wallet>,
    /// The TFT price feed (one).
    pub tft_price: Store<TftPriceFeed>,
    /// Provider alliances.
    pub alliances: Store<Alliance>,
    /// Users (one per token subject).
    pub users: Store<User>,
}

impl Stores {
    /// Every store over one pool, sharing one group committer.
    pub fn new(pool: &sqlx::PgPool) -> Self {
        let committer = GroupCommit::new(pool.clone());
        Self {
            deployments: store_with(pool.clone(), committer.clone()),
            providers: store_with(pool.clone(), committer.clone()),
            nodes: store_with(pool.clone(), committer.clone()),
            pricing: store_with(pool.clone(), committer.clone()),
            wallets: store_with(pool.clone(), committer.clone()),
            tft_price: store_with(pool.clone(), committer.clone()),
            alliances: store_with(pool.clone(), committer.clone()),
            users: store_with(pool.clone(), committer),
        }
    }
}

/// What a command left.
#[derive(Debug, Clone)]
pub struct Committed<A: Aggregate> {
    /// The aggregate's id.
    pub id: String,
    /// Its version after the command.
    pub version: u64,
    /// The events committed; none when the command found its work done.
    pub events: Vec<<A as Aggregate>::Event>,
    /// The aggregate after them.
    pub aggregate: A,
}

/// Loads the aggregate's current state and version.
pub async fn load<A>(store: &Store<A>, id: &str) -> Result<(A, u64), CommandError>
where
    A: EventSourced,
    CommandError: From<A::Error>,
{
    let context = store.load_aggregate(id).await?;
    Ok((context.aggregate, context.current_sequence as u64))
}

/// One command to run: which aggregate, on whose account, under which
/// conditions. Build it with [`Exec::new`], then [`Exec::run`] it.
pub struct Exec<'a, A: EventSourced> {
    store: &'a Store<A>,
    id: String,
    metadata: EventMetadata,
    expected: Option<u64>,
    open: Option<Box<dyn Fn() -> A::Command + Send + Sync + 'a>>,
    key: Option<KeyAnswer<'a>>,
    fresh: bool,
}

/// Builds a keyed request's answer from the aggregate's id and new version.
type KeyAnswer<'a> = Box<dyn Fn(&str, u64) -> group::KeyWrite + Send + Sync + 'a>;

impl<'a, A> Exec<'a, A>
where
    A: EventSourced + Clone,
    A::Event: Clone,
    CommandError: From<A::Error>,
{
    /// A command on aggregate `id` of `store`, recorded with `metadata`.
    pub fn new(store: &'a Store<A>, id: impl Into<String>, metadata: EventMetadata) -> Self {
        Self {
            store,
            id: id.into(),
            metadata,
            expected: None,
            open: None,
            key: None,
            fresh: false,
        }
    }

    /// The id was just made for this command (a random one), so the
    /// aggregate cannot exist yet: the first try decides against the empty
    /// aggregate without loading it. Were it to exist after all, the append
    /// would lose on the store's key and the next try loads it.
    pub fn fresh(mut self) -> Self {
        self.fresh = true;
        self
    }

    /// Claims the request's Idempotency-Key with its answer (built from the
    /// id and new version) in the transaction of the events: both commit or
    /// neither. A key already taken fails the command with
    /// [`CommandError::IdempotencyKeyTaken`], nothing written. A command
    /// that appends nothing writes no key.
    pub fn claiming_key(
        mut self,
        answer: impl Fn(&str, u64) -> group::KeyWrite + Send + Sync + 'a,
    ) -> Self {
        self.key = Some(Box::new(answer));
        self
    }

    /// Refuse (409) unless the aggregate is at `version` (the caller's
    /// `If-Match`); a lost race is then the caller's to see, not retried.
    pub fn expecting(mut self, version: Option<u64>) -> Self {
        self.expected = version;
        self
    }

    /// Opens the aggregate with `open`'s command first when it has no
    /// events yet; the opening and the command commit together.
    pub fn opening(mut self, open: impl Fn() -> A::Command + Send + Sync + 'a) -> Self {
        self.open = Some(Box::new(open));
        self
    }

    /// Decides `build`'s command against the current state and commits.
    /// `build` may refuse (a tenancy check answers [`CommandError::NotFound`]).
    pub async fn run(
        self,
        build: impl Fn(&A) -> Result<A::Command, CommandError>,
    ) -> Result<Committed<A>, CommandError> {
        self.run_unless_done(|a| build(a).map(Some)).await
    }

    /// Like [`Exec::run`], but `build` may answer `None`: the work is
    /// already done (a retry found its own effect), so nothing is decided
    /// or committed and the current state is returned, whatever the
    /// expected version.
    pub async fn run_unless_done(
        self,
        build: impl Fn(&A) -> Result<Option<A::Command>, CommandError>,
    ) -> Result<Committed<A>, CommandError> {
        let mut lost_races = 0;
        loop {
            let context = if self.fresh && lost_races == 0 {
                cqrs_es::persist::EventStoreAggregateContext {
                    aggregate_id: self.id.clone(),
                    aggregate: A::default(),
                    current_sequence: 0,
                    current_snapshot: None,
                }
            } else {
                self.store.load_aggregate(&self.id).await?
            };
            let mut aggregate = context.aggregate.clone();
            let mut events = Vec::new();
            if context.current_sequence == 0 {
                if let Some(open) = &self.open {
                    for e in aggregate.decide_command(open())? {
                        aggregate.apply_one(&e);
                        events.push(e);
                    }
                }
            }
            let Some(command) = build(&aggregate)? else {
                return Ok(Committed {
                    id: self.id,
                    version: context.current_sequence as u64,
                    events: Vec::new(),
                    aggregate: context.aggregate,
                });
            };
            // After `build`, so that a foreign id answers 404 whatever its version.
            if let Some(expected) = self.expected {
                if context.current_sequence as u64 != expected {
                    return Err(CommandError::VersionConflict(format!(
                        "expected version {expected}, the resource is at {}",
                        context.current_sequence
                    )));
                }
            }
            for e in aggregate.decide_command(command)? {
                aggregate.apply_one(&e);
                events.push(e);
            }
            let version = (context.current_sequence + events.len()) as u64;
            if events.is_empty() {
                return Ok(Committed {
                    id: self.id,
                    version,
                    events,
                    aggregate,
                });
            }
            let metadata = self.metadata.restamped().to_map();
            let mut append = appended::<A>(&self.id, &context, &events, &metadata)?;
            append.key = self.key.as_ref().map(|answer| answer(&self.id, version));
            match self.store.committer.append(append).await {
                Ok(()) => {
                    tracing::info!(aggregate = A::TYPE, id = %self.id, version, "command committed");
                    return Ok(Committed {
                        id: self.id,
                        version,
                        events,
                        aggregate,
                    });
                }
                Err(group::AppendError::Conflict)
                    if self.expected.is_none() && lost_races < CONFLICT_RETRIES =>
                {
                    lost_races += 1;
                    tracing::debug!(aggregate = A::TYPE, id = %self.id, lost_races, "lost a race; deciding again");
                }
                Err(group::AppendError::Conflict) => {
                    return Err(CommandError::VersionConflict(
                        "another command changed this resource first".into(),
                    ))
                }
                Err(group::AppendError::KeyTaken) => return Err(CommandError::IdempotencyKeyTaken),
                Err(e) => return Err(CommandError::Unavailable(e.to_string())),
            }
        }
    }
}

/// What a command appends: its events as rows following on from the
/// loaded version, and the snapshot due with them, as cqrs-es's snapshot
/// store would write it (one every [`SNAPSHOT_EVERY`] events).
fn appended<A>(
    id: &str,
    context: &cqrs_es::persist::EventStoreAggregateContext<A>,
    events: &[A::Event],
    metadata: &std::collections::HashMap<String, String>,
) -> Result<group::Append, CommandError>
where
    A: EventSourced + Clone,
    A::Event: Clone,
{
    use cqrs_es::DomainEvent;
    let internal = |e: serde_json::Error| CommandError::Internal(e.to_string());
    let metadata = serde_json::to_value(metadata).map_err(internal)?;
    let from = context.current_sequence;
    let rows = events
        .iter()
        .zip(from + 1..)
        .map(|(e, sequence)| {
            Ok(group::Row {
                sequence: sequence as i64,
                event_type: e.event_type(),
                event_version: e.event_version(),
                payload: serde_json::to_value(e).map_err(internal)?,
                metadata: metadata.clone(),
            })
        })
        .collect::<Result<Vec<_>, CommandError>>()?;
    // The snapshot lands on the last multiple of SNAPSHOT_EVERY these
    // events reach, if they reach one.
    let reached = (from + events.len()) / SNAPSHOT_EVERY * SNAPSHOT_EVERY;
    let snapshot = if reached > from {
        let mut state = context.aggregate.clone();
        for e in &events[..reached - from] {
            state.apply_one(e);
        }
        Some(group::Snapshot {
            payload: serde_json::to_value(&state).map_err(internal)?,
            last_sequence: reached as i64,
            number: context.current_snapshot.map_or(1, |n| n as i64 + 1),
        })
    } else {
        None
    };
    Ok(group::Append {
        aggregate_type: A::TYPE,
        aggregate_id: id.to_string(),
        rows,
        snapshot,
        key: None,
    })
}
