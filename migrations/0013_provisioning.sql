-- Provisioning: what the deployment view shows of placement and the chain,
-- and the provisioning process manager's to-do list.

ALTER TABLE deployment_views
    ADD COLUMN placement_reason text,
    ADD COLUMN rent_contract_id bigint,
    -- Nodes an attempt failed on, in order.
    ADD COLUMN tried_nodes bigint[] NOT NULL DEFAULT '{}',
    -- The spec's revision (one more per resize) and the one last running.
    ADD COLUMN revision integer NOT NULL DEFAULT 0,
    ADD COLUMN running_revision integer,
    -- A VM's standby ({node_id, farm_id, reason, contract_id, ready}) and
    -- the last takeover ({from_node, to_node, reason, at}).
    ADD COLUMN standby jsonb,
    ADD COLUMN failover jsonb,
    -- QSFS disks' zdb backends by "<disk>/<index>":
    -- {node_id, farm_id, contract_id, endpoint}.
    ADD COLUMN qsfs_backends jsonb NOT NULL DEFAULT '{}',
    -- A spread cluster's workers by index: {node_id, farm_id, contract_id,
    -- running_revision, workload}.
    ADD COLUMN spread_workers jsonb NOT NULL DEFAULT '{}';

-- One row per deployment the provisioning manager still has to look at,
-- written by its intake (a projection of deployment events, so in commit
-- order and checkpointed with the row) and worked by its executors. A job
-- is due when `due_at` has passed and no live lease holds it; an executor
-- leases it (`leased_until`), drives the deployment one step or more, and
-- either deletes the row (nothing left to do at `version`) or sets when to
-- look again. A lease outlives a crashed executor by at most its length.
CREATE TABLE provisioning_jobs (
    job_id        text PRIMARY KEY,
    -- The aggregate's version when an event last woke the job.
    version       bigint NOT NULL,
    due_at        timestamptz NOT NULL,
    leased_until  timestamptz,
    leased_by     text,
    -- Failed steps in a row (reset when a step goes through), and why.
    failures      integer NOT NULL DEFAULT 0,
    last_error    text,
    -- What the deployment is waiting for (e.g. the node to bring contract
    -- 12's revision 0 up) and since when on the chain's clock (unix
    -- seconds): the stall timeout survives a restart.
    waiting_for   text,
    waiting_since bigint,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX provisioning_jobs_due ON provisioning_jobs (due_at);

-- The treasury's transfers to users' custodial accounts: one row per
-- credited card top-up, written by the treasury worker's intake (a
-- projection of wallet events), worked like provisioning jobs. The
-- transfer itself is recorded on the wallet; this is only the to-do list.
CREATE TABLE chain_transfer_jobs (
    -- `<wallet id>/<top-up id>`.
    job_id        text PRIMARY KEY,
    version       bigint NOT NULL,
    due_at        timestamptz NOT NULL,
    leased_until  timestamptz,
    leased_by     text,
    failures      integer NOT NULL DEFAULT 0,
    last_error    text,
    waiting_for   text,
    waiting_since bigint,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX chain_transfer_jobs_due ON chain_transfer_jobs (due_at);
