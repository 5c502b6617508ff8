-- Capacity held for deployments being placed (issue 10), so that two
-- placements at once cannot both count the same free vCPU or public IP.
--
-- The node catalog's free capacity falls only when the node reports the
-- deployment, minutes after it was placed. Until then a reservation counts
-- against its node's free capacity, and its IPv4 count against its farm's
-- free IPs: while `running_at` is unset, or the node's last report
-- (node_catalog.last_report) is not after it. After that the catalog's
-- used capacity includes the deployment, the reservation no longer counts,
-- and it may be deleted. Written and read by app::placement under one
-- advisory lock.
CREATE TABLE capacity_reservations (
    deployment_id uuid    PRIMARY KEY,
    node_id       bigint  NOT NULL,
    farm_id       bigint  NOT NULL,
    -- In catalog units: vCPUs, and bytes of memory, SSD and HDD. A
    -- dedicated deployment holds the whole node's free capacity.
    cru           bigint  NOT NULL CHECK (cru >= 0),
    mru           bigint  NOT NULL CHECK (mru >= 0),
    sru           bigint  NOT NULL CHECK (sru >= 0),
    hru           bigint  NOT NULL CHECK (hru >= 0),
    ipv4          integer NOT NULL CHECK (ipv4 >= 0),
    -- The choice as it was made, so a retry after a crash gets it again.
    hourly_usd    bigint  NOT NULL,
    reason        text    NOT NULL,
    reserved_at   timestamptz NOT NULL,
    -- When the node reported the deployment's workloads ok.
    running_at    timestamptz
);
-- What each node and each farm has reserved.
CREATE INDEX capacity_reservations_node ON capacity_reservations (node_id);
CREATE INDEX capacity_reservations_farm ON capacity_reservations (farm_id) WHERE ipv4 > 0;
