-- Rate limiting (issue 15): one GCRA bucket per budget and key (a token's
-- subject, or a client address), shared by every API replica so that a
-- limit holds across all of them. A replica leases a few tokens at a time
-- (one statement, `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`) and
-- spends them locally; see docs/rate_limits.md for the bound that gives.
--
-- UNLOGGED: the buckets are counters, not records. They write no WAL (the
-- hot path stays cheap) and a crash of PostgreSQL empties them, which only
-- gives every caller a fresh budget. Nothing else reads them.
CREATE UNLOGGED TABLE rate_limit_buckets (
    -- `commands`, `reads`, `anonymous`, `webhook`.
    budget      text   NOT NULL,
    -- `sub:<subject>` or `ip:<address>`.
    key         text   NOT NULL,
    -- The bucket's theoretical arrival time, in microseconds since the
    -- epoch on the database's clock (so replicas' clocks do not matter):
    -- the bucket is full when it is in the past, empty when it is a whole
    -- burst ahead of now.
    tat_us      bigint NOT NULL,
    -- When it was last leased from (the database's clock), and how many
    -- tokens that lease granted (0: refused).
    updated_us  bigint NOT NULL,
    granted     integer NOT NULL,
    PRIMARY KEY (budget, key)
);
-- The sweep deletes buckets that have refilled (tat in the past): such a
-- row and no row mean the same thing.
CREATE INDEX rate_limit_buckets_tat ON rate_limit_buckets (tat_us);
