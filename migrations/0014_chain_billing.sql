-- Billing from the chain (issue 11): what the chain billed and graced, the
-- chain follower's cursor and its copy of chain facts, the TFT price feed
-- and users' notifications.

-- A deployment's contracts in grace, and what the chain billed it.
ALTER TABLE deployment_views
    ADD COLUMN grace_contracts     bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN billed_to_date      bigint NOT NULL DEFAULT 0,
    ADD COLUMN bills               bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_billed_at      timestamptz,
    ADD COLUMN last_discount_level text;

-- Every bill a wallet paid (`BillPaid`), for the runway (the last hour's
-- burn) and statements. Amounts in TFT base units.
CREATE TABLE wallet_bills (
    wallet_id      text   NOT NULL,
    block_number   bigint NOT NULL,
    event_index    bigint NOT NULL,
    contract_id    bigint NOT NULL,
    deployment_id  text,
    amount         bigint NOT NULL,
    discount_level text   NOT NULL,
    billed_at      timestamptz NOT NULL,
    PRIMARY KEY (wallet_id, block_number, event_index)
);
CREATE INDEX wallet_bills_time ON wallet_bills (wallet_id, billed_at);

-- The chain follower's durable cursor: the last chain event it finished;
-- with the chain's best block at its last look and the last reconciliation
-- of ledgers with chain accounts, for the metrics.
CREATE TABLE chain_cursors (
    name          text   PRIMARY KEY,
    block_number  bigint NOT NULL,
    event_index   bigint NOT NULL,
    updated_at    timestamptz NOT NULL,
    -- The cursor's block's timestamp (unix seconds): where a backfill from
    -- the indexer starts.
    block_timestamp bigint,
    head_block    bigint,
    mismatched_wallets integer,
    reconciled_at timestamptz
);

-- The chain's contracts as the follower saw them created (`ContractCreated`):
-- whose twin, which node, and the marketplace deployment its
-- `deployment_data` names. Chain facts, kept so that a bill finds its
-- deployment without waiting for any view.
CREATE TABLE chain_contracts (
    contract_id    bigint PRIMARY KEY,
    twin_id        bigint NOT NULL,
    node_id        bigint,
    kind           text   NOT NULL,
    deployment_id  uuid,
    block_number   bigint NOT NULL,
    event_index    bigint NOT NULL
);
CREATE INDEX chain_contracts_deployment ON chain_contracts (deployment_id);

-- Node uptime reports (`NodeUptimeReported`), a copy of chain facts for the
-- SLA measurement: one row per report.
CREATE TABLE node_uptime_reports (
    node_id       bigint NOT NULL,
    reported_at   timestamptz NOT NULL,
    uptime_secs   bigint NOT NULL,
    block_number  bigint NOT NULL,
    event_index   bigint NOT NULL,
    PRIMARY KEY (node_id, block_number, event_index)
);
CREATE INDEX node_uptime_reports_time ON node_uptime_reports (node_id, reported_at);

-- The TFT price the chain stored (`AveragePriceStored`), newest last: the
-- tft_price projection.
CREATE TABLE tft_price_observations (
    sequence      bigint  PRIMARY KEY,
    price_musd    integer NOT NULL,
    block_number  bigint  NOT NULL,
    event_index   bigint  NOT NULL,
    observed_at   timestamptz NOT NULL
);

-- Users' notifications, one per cause (the aggregate event that caused it):
-- balance low, grace period started / ended, deleted out of funds.
CREATE TABLE notifications (
    id            text   PRIMARY KEY,
    position      bigserial UNIQUE,
    owner         text   NOT NULL,
    kind          text   NOT NULL,
    deployment_id uuid,
    payload       jsonb  NOT NULL,
    at            timestamptz NOT NULL
);
CREATE INDEX notifications_owner ON notifications (owner, position);

-- Whose deployment is whose, for the notifications projection alone (so a
-- rebuild of it reads nothing but events).
CREATE TABLE notification_owners (
    deployment_id uuid PRIMARY KEY,
    owner         text NOT NULL
);

-- The wallet's custodial twin, for the chain follower: whose wallet a
-- contract's twin pays from.
ALTER TABLE wallet_views ADD COLUMN twin_id bigint;
CREATE UNIQUE INDEX wallet_views_twin ON wallet_views (twin_id) WHERE twin_id IS NOT NULL;

-- The chain follower finds a contract's wallet and deployment in the event
-- store itself, never in a view that may lag (or be rebuilding): whose twin
-- a wallet recorded, and which deployment took a rent contract.
CREATE INDEX events_wallet_twin ON events (((payload->'ChainTwinRecorded'->>'twin_id')::bigint))
    WHERE aggregate_type = 'wallet' AND event_type = 'ChainTwinRecorded';
CREATE INDEX events_deployment_contract ON events (((payload->'ContractCreated'->>'contract_id')::bigint))
    WHERE aggregate_type = 'deployment' AND event_type = 'ContractCreated';
CREATE INDEX events_rent_contract ON events (((payload->'ContractCreated'->>'rent_contract_id')::bigint))
    WHERE aggregate_type = 'deployment' AND event_type = 'ContractCreated';
