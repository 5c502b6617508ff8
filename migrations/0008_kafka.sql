-- The Kafka path: the relay's checkpoint and the projection workers' offsets.

-- Where the relay has published the store up to, in commit order. It moves
-- only after Kafka acknowledged every event before it (ARCHITECTURE.md, 1);
-- a crash in between republishes, and consumers drop the duplicates.
-- `holder` names the relay process that wrote it last (for operators).
CREATE TABLE relay_checkpoints (
    relay         text PRIMARY KEY,
    last_txid     bigint NOT NULL DEFAULT 0,
    last_position bigint NOT NULL DEFAULT 0,
    holder        text,
    published     bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A projection worker's position in each partition it consumed, committed
-- in the same transaction as the view change (ARCHITECTURE.md, 3). On
-- assignment a worker seeks to `next_offset`; Kafka's own committed offsets
-- are only a hint for tools. `high_watermark` is the partition's end as the
-- worker last saw it, for the lag metric.
CREATE TABLE kafka_offsets (
    consumer_group text   NOT NULL,
    topic          text   NOT NULL,
    partition      int    NOT NULL,
    next_offset    bigint NOT NULL,
    high_watermark bigint NOT NULL DEFAULT 0,
    worker         text,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
