-- Read models and the bookkeeping of the runners that build them.

-- Where each projection has read the store up to, committed in the same
-- transaction as the view changes it made (ARCHITECTURE.md, 3).
CREATE TABLE projection_checkpoints (
    projection    text PRIMARY KEY,
    last_txid     bigint NOT NULL DEFAULT 0,
    last_position bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Events a projection could not apply, with the error; the projection went on
-- (ARCHITECTURE.md, 7). `retried_at` is set when an operator's retry succeeds.
CREATE TABLE projection_dead_letters (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection     text   NOT NULL,
    event_position bigint NOT NULL,
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    sequence       bigint NOT NULL,
    event_type     text   NOT NULL,
    error          text   NOT NULL,
    failed_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz,
    UNIQUE (projection, event_position)
);

-- One row per deployment. `version` is the last aggregate sequence applied:
-- a duplicate delivery finds version >= sequence and changes nothing.
CREATE TABLE deployment_views (
    id             uuid PRIMARY KEY,
    owner          text   NOT NULL,
    name           text   NOT NULL,
    kind           text   NOT NULL,
    status         text   NOT NULL,
    spec           jsonb  NOT NULL,
    placement      jsonb  NOT NULL,
    node_id        bigint,
    farm_id        bigint,
    contract_id    bigint,
    workloads      jsonb  NOT NULL DEFAULT '[]',
    failure_reason text,
    cancel_reason  text,
    deletion_cause text,
    grace_since    timestamptz,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint NOT NULL
);

-- The owner's list, newest first, keyset-paginated; and the operator's list.
CREATE INDEX deployment_views_owner_newest ON deployment_views (owner, created_at DESC, id DESC);
CREATE INDEX deployment_views_newest ON deployment_views (created_at DESC, id DESC);

-- The history of states shown on a deployment's detail view.
CREATE TABLE deployment_history (
    deployment_id uuid   NOT NULL,
    sequence      bigint NOT NULL,
    event_type    text   NOT NULL,
    status        text   NOT NULL,
    at            timestamptz NOT NULL,
    actor_subject text,
    actor_role    text,
    detail        jsonb  NOT NULL DEFAULT '{}',
    PRIMARY KEY (deployment_id, sequence)
);
