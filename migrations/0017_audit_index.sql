-- Audit (issue 13): the audit index, a projection like any other (rebuilt
-- aside and swapped in, checkpointed, in the registry): one row per event
-- with the metadata operators search on, and a copy of the event's hash as
-- it was committed. Payloads stay in `events`; a search joins back by key.
CREATE TABLE audit_events (
    position        bigint PRIMARY KEY,
    txid            bigint NOT NULL,
    aggregate_type  text   NOT NULL,
    aggregate_id    text   NOT NULL,
    sequence        bigint NOT NULL,
    event_type      text   NOT NULL,
    actor_subject   text,
    actor_role      text,
    correlation_id  text,
    causation_id    text,
    request_id      text,
    recorded_at     timestamptz NOT NULL,
    -- The event's chained hash as the index first saw it: a row whose hash
    -- was later recomputed in `events` no longer matches.
    hash            bytea
);
-- A correlation's tree, followed by causation: each lookup is one of these.
CREATE INDEX audit_events_correlation ON audit_events (correlation_id, recorded_at, position);
CREATE INDEX audit_events_causation ON audit_events (causation_id);
-- An actor's day, a type's or an aggregate type's time range, a time range.
CREATE INDEX audit_events_actor ON audit_events (actor_subject, recorded_at, position);
CREATE INDEX audit_events_event_type ON audit_events (event_type, recorded_at, position);
CREATE INDEX audit_events_aggregate_type ON audit_events (aggregate_type, recorded_at, position);
CREATE INDEX audit_events_recorded_at ON audit_events (recorded_at, position);
-- Verification joins the index to the store by key.
CREATE INDEX audit_events_key ON audit_events (aggregate_type, aggregate_id, sequence);

-- Global checkpoints over commit order (ARCHITECTURE.md invariant 11): each
-- is SHA-256 over the previous checkpoint's hash and the hashes of every
-- event committed after it, in commit order, through (last_txid,
-- last_position). A checkpoint catches what the per-aggregate chains cannot:
-- an aggregate's last event removed, or a chain recomputed after an edit.
-- Each is also logged when recorded, so a copy lives outside the database.
CREATE TABLE audit_checkpoints (
    id              bigserial PRIMARY KEY,
    last_txid       bigint NOT NULL,
    last_position   bigint NOT NULL,
    -- Events it covers (since the previous checkpoint) and in all.
    events          bigint NOT NULL,
    total           bigint NOT NULL,
    hash            bytea  NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);

-- What each verification found: the metric and the operators' page read
-- the latest.
CREATE TABLE audit_verifications (
    id              bigserial PRIMARY KEY,
    checked         bigint NOT NULL,
    broken          jsonb,
    seconds         double precision NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
