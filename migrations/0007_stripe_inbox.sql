-- Stripe webhook events, verified and stored as received, keyed by Stripe's
-- event id so a redelivery is stored once. A worker applies them to wallets
-- and marks them processed; the HTTP answer never waits for that.
CREATE TABLE stripe_inbox (
    event_id     text PRIMARY KEY,
    event_type   text   NOT NULL,
    -- Stripe's `created` (unix seconds): the order events happened in.
    created      bigint NOT NULL,
    livemode     boolean NOT NULL,
    payload      jsonb  NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text
);

-- The worker's queue: unprocessed events, oldest first.
CREATE INDEX stripe_inbox_pending ON stripe_inbox (created, event_id) WHERE processed_at IS NULL;
