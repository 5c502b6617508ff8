-- Provider alliances (issue 12): the chain facts a settlement reads, the
-- alliance views, and the settlement worker's and payout-link bookkeeping.

-- Chain facts kept by the chain follower, one row per chain event (deduplicated
-- on its id). Amounts are TFT base units as exact numerics: the chain's are
-- u128 and a month of them may pass bigint.

-- Every bill (`ContractBilled`): what each user was billed on a node in a
-- period, for SLA credits pro rata.
CREATE TABLE chain_bills (
    block_number  bigint NOT NULL,
    event_index   bigint NOT NULL,
    contract_id   bigint NOT NULL,
    amount        numeric(39, 0) NOT NULL,
    billed_at     timestamptz NOT NULL,
    PRIMARY KEY (block_number, event_index)
);
CREATE INDEX chain_bills_contract ON chain_bills (contract_id, billed_at);

-- Every reward distribution (`RewardDistributed`): the farmer's part goes
-- to the farm the node is in at that moment, so an alliance's income for a
-- node is the farmer part of the distributions made while the node was in
-- the alliance's farm.
CREATE TABLE chain_rewards (
    block_number       bigint NOT NULL,
    event_index        bigint NOT NULL,
    contract_id        bigint NOT NULL,
    standard_rewards   numeric(39, 0) NOT NULL,
    additional_rewards numeric(39, 0) NOT NULL,
    distributed_at     timestamptz NOT NULL,
    PRIMARY KEY (block_number, event_index)
);
CREATE INDEX chain_rewards_contract ON chain_rewards (contract_id, distributed_at);

-- Nodes moved between farms (`tfgridModule.NodeUpdated`): which farm a
-- node was in at any chain event (the last move before it).
CREATE TABLE chain_node_farms (
    node_id       bigint NOT NULL,
    block_number  bigint NOT NULL,
    event_index   bigint NOT NULL,
    farm_id       bigint NOT NULL,
    moved_at      timestamptz NOT NULL,
    PRIMARY KEY (node_id, block_number, event_index)
);

-- The alliance projection. `aggregate` is the folded aggregate (the domain's
-- own serialisation), so every child table below is derived from it on each
-- event and a rebuild reproduces them exactly.
CREATE TABLE alliance_views (
    alliance_id    text PRIMARY KEY,
    name           text NOT NULL,
    description    text NOT NULL,
    founder        text NOT NULL,
    governance     text NOT NULL,
    founded_in     text NOT NULL,
    -- The rule and SLA of the founding period's successors, newest last:
    -- [[period, rule], ...] as the aggregate keeps them.
    rules          jsonb NOT NULL,
    slas           jsonb NOT NULL,
    farm_id        bigint,
    twin_id        bigint,
    account        text,
    dissolved_from text,
    aggregate      jsonb NOT NULL,
    founded_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint NOT NULL
);
CREATE UNIQUE INDEX alliance_views_farm ON alliance_views (farm_id) WHERE farm_id IS NOT NULL;

-- Members, past and present, and open invitations.
CREATE TABLE alliance_members (
    alliance_id    text NOT NULL,
    member         text NOT NULL,
    -- invited, member or left
    status         text NOT NULL,
    since          text,
    until          text,
    payout_account text,
    PRIMARY KEY (alliance_id, member)
);
CREATE INDEX alliance_members_member ON alliance_members (member);

-- Each node's latest contribution.
CREATE TABLE alliance_nodes (
    alliance_id    text   NOT NULL,
    node_id        bigint NOT NULL,
    member         text   NOT NULL,
    farm_id        bigint NOT NULL,
    cu             bigint NOT NULL,
    su             bigint NOT NULL,
    counted_from   text   NOT NULL,
    -- The first period it no longer counts in, once withdrawn.
    counted_until  text,
    PRIMARY KEY (alliance_id, node_id)
);
CREATE INDEX alliance_nodes_node ON alliance_nodes (node_id);

-- Settled periods, and each member's share and payout.
CREATE TABLE alliance_settlements (
    alliance_id  text NOT NULL,
    period       text NOT NULL,
    income       numeric(39, 0) NOT NULL,
    carried_in   numeric(39, 0) NOT NULL,
    carried      numeric(39, 0) NOT NULL,
    user_credits numeric(39, 0) NOT NULL,
    -- The settlement and its per-node figures as the event recorded them.
    settlement   jsonb NOT NULL,
    nodes        jsonb NOT NULL,
    settled_at   timestamptz NOT NULL,
    PRIMARY KEY (alliance_id, period)
);

CREATE TABLE alliance_shares (
    alliance_id  text NOT NULL,
    period       text NOT NULL,
    member       text NOT NULL,
    share        numeric(39, 0) NOT NULL,
    penalty      numeric(39, 0) NOT NULL,
    paid         numeric(39, 0),
    paid_to      text,
    transfer     text,
    PRIMARY KEY (alliance_id, period, member)
);
CREATE INDEX alliance_shares_member ON alliance_shares (member, period);

-- The settlement worker's transfers: the chain block before its first
-- attempt at each one, so that a retry after a crash looks for the
-- transfer's remark from there on before sending it again. One row per
-- transfer (a member's payout or a user's credit).
CREATE TABLE alliance_transfers (
    alliance_id  text   NOT NULL,
    period       text   NOT NULL,
    -- `member:<subject>` or `user:<subject>`
    recipient    text   NOT NULL,
    amount       numeric(39, 0) NOT NULL,
    dest         text   NOT NULL,
    from_block   bigint NOT NULL,
    -- The chain event of the remark once seen ("block-index").
    transfer     text,
    started_at   timestamptz NOT NULL,
    PRIMARY KEY (alliance_id, period, recipient)
);

-- Challenges to link a member's payout account (as wallets link theirs):
-- issued by the API, answered once with a signature.
CREATE TABLE alliance_link_challenges (
    challenge_id uuid PRIMARY KEY,
    alliance_id  text NOT NULL,
    member       text NOT NULL,
    account      text NOT NULL,
    key_type     text NOT NULL,
    nonce        text NOT NULL,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    created_at   timestamptz NOT NULL
);
