//! Opening a user on its first authenticated request, once.
//!
//! Every authenticated request passes here ([`crate::auth::AuthUser`]). A
//! subject whose claims this process has seen costs one hash and a set
//! lookup; the first request of a subject (or the first with changed
//! claims) issues `Register` on the bus, which records nothing when the
//! user already exists with those claims. Concurrent first requests race
//! on the user's first event: one wins, and the bus decides the others
//! again against the user it opened, which then changes nothing; so any
//! number of them open the user once.

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::Utc;
use marketplace_app::{CommandError, EventMetadata, Exec, Stores};
use marketplace_domain::user::UserCommand;
use sha2::{Digest, Sha256};

use crate::auth::Principal;

/// Subjects remembered at most; past it the cache starts over (a miss
/// only costs a command that changes nothing).
const MAX_KNOWN: usize = 100_000;

/// The subjects (with their claims) this process knows to be recorded.
#[derive(Debug, Default)]
pub struct KnownUsers {
    seen: Mutex<HashSet<[u8; 32]>>,
}

fn key(p: &Principal) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        Some(p.subject.as_str()),
        p.email.as_deref(),
        p.name.as_deref(),
    ] {
        match part {
            Some(s) => {
                h.update([1u8]);
                h.update((s.len() as u64).to_be_bytes());
                h.update(s.as_bytes());
            }
            None => h.update([0u8]),
        }
    }
    h.finalize().into()
}

impl KnownUsers {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether this principal's user is recorded with these claims.
    pub fn is_known(&self, principal: &Principal) -> bool {
        self.seen
            .lock()
            .map(|s| s.contains(&key(principal)))
            .unwrap_or(false)
    }

    fn remember(&self, principal: &Principal) {
        if let Ok(mut seen) = self.seen.lock() {
            if seen.len() >= MAX_KNOWN {
                seen.clear();
            }
            seen.insert(key(principal));
        }
    }

    /// Makes sure the principal's user exists with the token's claims
    /// (recorded as caused by `request_id`, in conversation `correlation_id`);
    /// the user's version when a command ran, `None` when the cache
    /// already knew it (or the token carries no marketplace role, which
    /// opens nothing).
    #[tracing::instrument(name = "users.ensure", skip_all, fields(subject = %principal.subject))]
    pub async fn ensure(
        &self,
        stores: &Stores,
        principal: &Principal,
        request_id: &str,
        correlation_id: &str,
    ) -> Result<Option<u64>, CommandError> {
        if self.is_known(principal) {
            return Ok(None);
        }
        let Ok(actor) = principal.as_self() else {
            return Ok(None);
        };
        // Caused by the request, but in a conversation of its own: an
        // audit of what the request did (its correlation tree, which
        // follows request ids) does not list the opening of its user.
        let mut metadata = EventMetadata::for_request(&actor, request_id, correlation_id, None);
        metadata.causation_id = format!("user-opened:{request_id}");
        if metadata.correlation_id == request_id {
            metadata.correlation_id = metadata.causation_id.clone();
        }
        let done = Exec::new(&stores.users, principal.subject.clone(), metadata)
            .run(|_| {
                Ok(UserCommand::Register {
                    user_id: principal.subject.clone(),
                    email: principal.email.clone(),
                    name: principal.name.clone(),
                    at: Utc::now(),
                })
            })
            .await?;
        if done.version == 1 && !done.events.is_empty() {
            tracing::info!(subject = %principal.subject, "user opened on its first request");
        }
        self.remember(principal);
        Ok(Some(done.version))
    }
}
