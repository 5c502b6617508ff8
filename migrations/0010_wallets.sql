-- Wallet read models (issue 5). The wallet aggregate id is the user's subject.

-- One row per wallet: the aggregate as of `version`, folded by the wallet
-- projection from events only, so a rebuild reproduces it exactly. The
-- balance is copied out for the auto top-up and runway scans.
CREATE TABLE wallet_views (
    wallet_id   text PRIMARY KEY,
    version     bigint NOT NULL,
    -- TFT base units (1 TFT = 10^7); may be negative after a clawback.
    balance     bigint NOT NULL,
    -- Whether an auto top-up rule is on, and its threshold, for the scan.
    auto_threshold bigint,
    state       jsonb  NOT NULL,
    opened_at   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX wallet_views_auto ON wallet_views (wallet_id) WHERE auto_threshold IS NOT NULL;

-- Every wallet event, for the user's activity feed and notifications
-- (failed payments, runway alerts).
CREATE TABLE wallet_activity (
    wallet_id  text   NOT NULL,
    sequence   bigint NOT NULL,
    event_type text   NOT NULL,
    payload    jsonb  NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (wallet_id, sequence)
);

-- Which wallet a Stripe object (customer, payment intent, charge, card)
-- belongs to: how the Stripe worker routes events whose object carries no
-- wallet metadata (charges, disputes, detached cards).
CREATE TABLE wallet_stripe_refs (
    stripe_id  text PRIMARY KEY,
    wallet_id  text NOT NULL
);

-- The Stripe worker retries an event it cannot apply yet (a refund before
-- the payment it refunds) later, with backoff, instead of blocking the queue.
ALTER TABLE stripe_inbox ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX stripe_inbox_due ON stripe_inbox (next_attempt_at, created, event_id)
    WHERE processed_at IS NULL;

-- Wake the Stripe worker when an event arrives, instead of polling.
CREATE FUNCTION stripe_inbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stripe_inbox', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER stripe_inbox_notify AFTER INSERT ON stripe_inbox
    FOR EACH STATEMENT EXECUTE FUNCTION stripe_inbox_notify();
