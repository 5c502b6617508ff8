-- Notifications delivered: the notification process manager writes each
-- notification (the feed's row, as before) and, in the same transaction as
-- its checkpoint, one outbox row per channel it goes to; delivery workers
-- drain the outbox. See docs/notifications.md.

-- Preferences, time zones and addresses come from `users` (migration 0019).

-- The feed: read state, and whether the user's preferences keep the item
-- out of the feed (the row stays: the other channels' outbox rows point at
-- it).
ALTER TABLE notifications ADD COLUMN read_at timestamptz;
ALTER TABLE notifications ADD COLUMN in_feed bool NOT NULL DEFAULT true;
CREATE INDEX notifications_unread ON notifications (owner) WHERE read_at IS NULL AND in_feed;

-- The node a deployment runs on, for maintenance notices (cleared when the
-- deployment is deleted).
ALTER TABLE notification_owners ADD COLUMN node_id bigint;
CREATE INDEX notification_owners_node ON notification_owners (node_id) WHERE node_id IS NOT NULL;

-- Whose provider request is whose, and which top-ups were automatic: what
-- the manager remembers from earlier events to address later ones.
CREATE TABLE notification_subjects (
    subject_key text PRIMARY KEY,   -- 'provider_request:<id>' or 'auto_top_up:<uuid>'
    owner       text NOT NULL
);

-- "Maintenance in 24 hours": one timer per window and user, fired once.
CREATE TABLE notification_timers (
    id         text PRIMARY KEY,    -- 'maintenance_soon:<window id>:<owner>'
    owner      text NOT NULL,
    node_id    bigint NOT NULL,
    window_id  uuid NOT NULL,
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL,
    reason     text NOT NULL,
    due_at     timestamptz NOT NULL,
    fired_at   timestamptz
);
CREATE INDEX notification_timers_due ON notification_timers (due_at) WHERE fired_at IS NULL;
CREATE INDEX notification_timers_window ON notification_timers (window_id);

-- Endpoints users register for outgoing webhooks. The secret signs every
-- delivery; it is shown once, on creation.
CREATE TABLE webhook_endpoints (
    id         uuid PRIMARY KEY,
    owner      text NOT NULL,
    url        text NOT NULL,
    secret     text NOT NULL,
    created_at timestamptz NOT NULL,
    deleted_at timestamptz
);
CREATE INDEX webhook_endpoints_owner ON webhook_endpoints (owner) WHERE deleted_at IS NULL;

-- The outbox: one row per notification and channel ('email', or
-- 'webhook:<endpoint id>'), so a failing channel holds up no other.
-- `attempting_since` is written (and committed) before a send and cleared
-- with its result, so a crash in between is seen: the send is repeated
-- under the same id (Message-ID, the webhook's event id), for the receiver
-- to recognise.
CREATE TABLE notification_outbox (
    notification_id  text NOT NULL REFERENCES notifications (id),
    channel          text NOT NULL,
    owner            text NOT NULL,
    status           text NOT NULL DEFAULT 'pending',  -- pending, sent, failed
    attempts         int  NOT NULL DEFAULT 0,
    due_at           timestamptz NOT NULL DEFAULT now(),
    leased_until     timestamptz,
    leased_by        text,
    attempting_since timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- Retries stop a day (configurable) after this; a redeliver resets it.
    retry_since      timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    PRIMARY KEY (notification_id, channel)
);
CREATE INDEX notification_outbox_due ON notification_outbox (due_at) WHERE status = 'pending';
CREATE INDEX notification_outbox_owner ON notification_outbox (owner, channel);

-- Each webhook delivery attempt, for the user's delivery log.
CREATE TABLE webhook_attempts (
    id              bigserial PRIMARY KEY,
    notification_id text NOT NULL,
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id),
    attempt         int  NOT NULL,
    at              timestamptz NOT NULL,
    status_code     int,
    error           text,
    duration_ms     int  NOT NULL
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);
