-- The supply side: provider requests, the node catalog, maintenance
-- windows and the pricing policy's history. Every column comes from events.

-- One row per farm's request (the aggregate is per farm). An approved row
-- makes its provider the farm's owner.
CREATE TABLE provider_requests (
    farm_id        bigint PRIMARY KEY,
    provider       text   NOT NULL,
    company        text   NOT NULL,
    contact        text   NOT NULL,
    node_ids       bigint[] NOT NULL,
    country        text   NOT NULL,
    message        text,
    status         text   NOT NULL,
    round          integer NOT NULL,
    last_reason    text,
    last_question  text,
    last_answer    text,
    submitted_at   timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint NOT NULL
);
-- The operator's queue, oldest first; a provider's own requests.
CREATE INDEX provider_requests_queue ON provider_requests (status, submitted_at, farm_id);
CREATE INDEX provider_requests_provider ON provider_requests (provider, submitted_at, farm_id);

-- The node catalog users browse. Free capacity is stored, not computed per
-- query, so the filters users combine can use indexes.
CREATE TABLE node_catalog (
    node_id        bigint PRIMARY KEY,
    farm_id        bigint NOT NULL,
    twin_id        bigint NOT NULL,
    country        text   NOT NULL,
    city           text   NOT NULL,
    -- Capacity as the grid reports it: cru in vCPUs, mru, sru and hru in
    -- bytes. Free is total minus used, never below 0.
    total_cru      bigint NOT NULL,
    total_mru      bigint NOT NULL,
    total_sru      bigint NOT NULL,
    total_hru      bigint NOT NULL,
    free_cru       bigint NOT NULL,
    free_mru       bigint NOT NULL,
    free_sru       bigint NOT NULL,
    free_hru       bigint NOT NULL,
    public_ipv4    boolean NOT NULL,
    public_ipv6    boolean NOT NULL,
    certified      boolean NOT NULL,
    dedicated      boolean NOT NULL,
    rentable       boolean NOT NULL,
    rented         boolean NOT NULL,
    gpus           integer NOT NULL,
    extra_fee      bigint NOT NULL,
    -- up, standby or down, as derived when the event was decided.
    status         text   NOT NULL,
    uptime_seconds bigint NOT NULL,
    last_report    timestamptz NOT NULL,
    -- Whole-node capacity in thousandths of CU and SU (the pricing module's
    -- formulas, memory in MiB and disks in the grid's GB, which are GiB):
    -- prices are computed from these with the current policy at query time.
    cu_milli       bigint NOT NULL,
    su_milli       bigint NOT NULL,
    -- The grid's snapshot as last synced: what the sync worker compares.
    snapshot       jsonb  NOT NULL,
    -- The last sync that changed the snapshot or status (maintenance
    -- events move only `version`).
    updated_at     timestamptz NOT NULL,
    version        bigint NOT NULL
);
-- The catalog's sort orders (most free first, ties by node id) and its
-- most common filters. Country and city match case-insensitively.
CREATE INDEX node_catalog_free_cru ON node_catalog (free_cru DESC, node_id);
CREATE INDEX node_catalog_free_mru ON node_catalog (free_mru DESC, node_id);
CREATE INDEX node_catalog_uptime ON node_catalog (uptime_seconds DESC, node_id);
CREATE INDEX node_catalog_country ON node_catalog (lower(country), node_id);
CREATE INDEX node_catalog_farm ON node_catalog (farm_id, node_id);
CREATE INDEX node_catalog_status ON node_catalog (status, node_id);

-- Maintenance windows, scheduled by the farm's provider. Window ids are
-- chosen by callers and unique per node (the Node aggregate checks), not
-- across nodes, so the key includes the node. Cancelled windows stay, with
-- status `cancelled`.
CREATE TABLE maintenance_windows (
    node_id      bigint NOT NULL,
    window_id    uuid   NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    reason       text   NOT NULL,
    -- scheduled, rescheduled or cancelled: the last thing that happened to it.
    status       text   NOT NULL,
    scheduled_by text   NOT NULL,
    scheduled_at timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    -- The node aggregate's sequence that last touched this window; the
    -- node's row in node_catalog carries the aggregate's version line.
    version      bigint NOT NULL,
    PRIMARY KEY (node_id, window_id)
);
CREATE INDEX maintenance_windows_node ON maintenance_windows (node_id, starts_at);

-- Every pricing policy the operators set, newest last. History keyed by
-- the aggregate's sequence, so it needs no separate version column.
CREATE TABLE pricing_policy_history (
    version     bigint PRIMARY KEY,
    policy      jsonb  NOT NULL,
    changed_by  text   NOT NULL,
    changed_at  timestamptz NOT NULL
);
