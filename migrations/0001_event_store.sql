-- The event store. Column names and types follow what postgres-es reads and
-- writes; `position`, `txid` and `recorded_at` are ours, filled by defaults so
-- postgres-es needs no change.

CREATE TABLE events (
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    sequence       bigint NOT NULL CHECK (sequence >= 1),
    event_type     text   NOT NULL,
    event_version  text   NOT NULL,
    payload        jsonb  NOT NULL,
    -- actor, correlation, causation and request ids, recorded-at: see api::metadata
    metadata       jsonb  NOT NULL,
    -- Insertion order. Never tail by this alone: a transaction can take a lower
    -- position and commit after a higher one, and a reader would skip it.
    position       bigint GENERATED ALWAYS AS IDENTITY,
    -- The writing transaction's 64-bit id. Readers take only rows whose txid is
    -- below their snapshot's xmin: every such transaction has finished, so no
    -- row can later appear behind the reader's checkpoint (ARCHITECTURE.md, 2).
    txid           bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    -- One event per aggregate and sequence: the optimistic-concurrency check.
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

-- The tailing readers' order.
CREATE UNIQUE INDEX events_commit_order ON events (txid, position);

-- Wake tailing readers when events commit (delivered at commit, collapsed per
-- transaction); they also poll, so a lost notification only costs latency.
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

-- Aggregate snapshots, as postgres-es keeps them.
CREATE TABLE snapshots (
    aggregate_type   text   NOT NULL,
    aggregate_id     text   NOT NULL,
    last_sequence    bigint NOT NULL CHECK (last_sequence >= 0),
    current_snapshot bigint NOT NULL CHECK (current_snapshot >= 0),
    payload          jsonb  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);
