-- Idempotency-Key records: a retried command replays the first answer.
-- A record is `pending` while its command runs; the command's events carry
-- the key in their metadata, so a record left pending by a crash can be
-- settled from the event store instead of running the command twice.
CREATE TABLE idempotency_keys (
    subject       text   NOT NULL,
    key           text   NOT NULL,
    request_hash  bytea  NOT NULL,
    aggregate_id  text   NOT NULL,
    state         text   NOT NULL CHECK (state IN ('pending', 'done')),
    status_code   smallint,
    response_body jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, key)
);

-- Finding the events a key produced, when settling a stale pending record.
CREATE INDEX events_idempotency_key ON events ((metadata->>'idempotency_key'))
    WHERE metadata ? 'idempotency_key';
