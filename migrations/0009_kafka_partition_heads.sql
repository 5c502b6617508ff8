-- Where each partition's end is, as the relay last saw it acknowledged.
-- With the workers' stored offsets it gives consumer lag that keeps growing
-- while a group's workers are down (a worker's own view of the end stops
-- with it).
CREATE TABLE kafka_partition_heads (
    topic       text   NOT NULL,
    partition   int    NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
