//! What every event records about its cause: who (subject and role), in
//! which conversation (correlation id), because of what (causation id),
//! through which request, when, and under which Idempotency-Key.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use marketplace_domain::Actor;

/// The role recorded for events that workers write on their own account.
pub const SYSTEM_ROLE: &str = "system";

/// An event's metadata, typed. Stored as a flat string map (the store's
/// `metadata` column) by [`EventMetadata::to_map`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMetadata {
    /// Who caused the event: a token's subject, or a worker's name.
    pub actor_subject: String,
    /// Their role (`cloud-user`, `provider`, `operator`, `system`).
    pub actor_role: String,
    /// The conversation the event belongs to.
    pub correlation_id: String,
    /// What caused it directly: a request id, a Stripe event id, a sync run.
    pub causation_id: String,
    /// The request (or run) that wrote it.
    pub request_id: String,
    /// When it was written (wall clock).
    pub recorded_at: DateTime<Utc>,
    /// The command's Idempotency-Key, if it had one.
    pub idempotency_key: Option<String>,
}

impl EventMetadata {
    /// An HTTP command's metadata: it is caused by its request.
    pub fn for_request(
        actor: &Actor,
        request_id: &str,
        correlation_id: &str,
        idempotency_key: Option<&str>,
    ) -> Self {
        Self {
            actor_subject: actor.subject.clone(),
            actor_role: actor.role.as_str().to_string(),
            correlation_id: correlation_id.to_string(),
            causation_id: request_id.to_string(),
            request_id: request_id.to_string(),
            recorded_at: Utc::now(),
            idempotency_key: idempotency_key.map(str::to_string),
        }
    }

    /// A worker's metadata: `worker` acts with the system role because of
    /// `cause` (a Stripe event id, a run id), which is also its
    /// conversation and request.
    pub fn for_worker(worker: &str, cause: &str) -> Self {
        Self::for_worker_run(worker, cause, cause, cause)
    }

    /// A worker's metadata when its run (`run_id`, also the correlation)
    /// and the event's direct cause differ.
    pub fn for_worker_run(
        worker: &str,
        correlation_id: &str,
        causation_id: &str,
        run_id: &str,
    ) -> Self {
        Self {
            actor_subject: worker.to_string(),
            actor_role: SYSTEM_ROLE.to_string(),
            correlation_id: correlation_id.to_string(),
            causation_id: causation_id.to_string(),
            request_id: run_id.to_string(),
            recorded_at: Utc::now(),
            idempotency_key: None,
        }
    }

    /// The same cause, stamped now (a retried commit records when it was
    /// written, not when it was first tried).
    pub fn restamped(&self) -> Self {
        Self {
            recorded_at: Utc::now(),
            ..self.clone()
        }
    }

    /// The store's representation.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::from([
            ("actor_subject".to_string(), self.actor_subject.clone()),
            ("actor_role".to_string(), self.actor_role.clone()),
            ("correlation_id".to_string(), self.correlation_id.clone()),
            ("causation_id".to_string(), self.causation_id.clone()),
            ("request_id".to_string(), self.request_id.clone()),
            ("recorded_at".to_string(), self.recorded_at.to_rfc3339()),
        ]);
        if let Some(key) = &self.idempotency_key {
            map.insert("idempotency_key".to_string(), key.clone());
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketplace_domain::Role;

    #[test]
    fn a_request_is_the_cause_of_its_events_and_the_key_is_kept() {
        let actor = Actor {
            subject: "alice".into(),
            role: Role::CloudUser,
        };
        let map = EventMetadata::for_request(&actor, "req-1", "corr-1", Some("k1")).to_map();
        assert_eq!(map["actor_subject"], "alice");
        assert_eq!(map["actor_role"], "cloud-user");
        assert_eq!(map["correlation_id"], "corr-1");
        assert_eq!(map["causation_id"], "req-1");
        assert_eq!(map["request_id"], "req-1");
        assert_eq!(map["idempotency_key"], "k1");
        assert!(DateTime::parse_from_rfc3339(&map["recorded_at"]).is_ok());
    }

    #[test]
    fn a_worker_acts_as_system_without_a_key() {
        let map = EventMetadata::for_worker_run("grid-sync", "run-7", "sync-3", "run-7").to_map();
        assert_eq!(map["actor_role"], SYSTEM_ROLE);
        assert_eq!(map["causation_id"], "sync-3");
        assert_eq!(map["correlation_id"], "run-7");
        assert!(!map.contains_key("idempotency_key"));
    }
}
