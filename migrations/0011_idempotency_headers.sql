-- A keyed command's first answer is replayed whole: its status, its body and
-- the headers that carry meaning (Content-Type, Location, ETag). A 201 with
-- a client secret replays as that 201, a problem as that problem.
ALTER TABLE idempotency_keys ADD COLUMN response_headers jsonb;
