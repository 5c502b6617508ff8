-- Tamper evidence (issue 13, ARCHITECTURE.md invariant 11): each event
-- carries a SHA-256 chained over the previous event of its aggregate and its
-- own canonical bytes, computed as it is inserted, in the inserting
-- transaction. An event edited or deleted behind the store's back breaks the
-- chain of its aggregate; `marketplace audit verify` finds the first break.
--
-- The canonical bytes: aggregate type, id, sequence, event type, version,
-- payload and metadata (jsonb's text form, whose key order jsonb fixes),
-- separated by newlines. The previous event's hash comes first (none for
-- sequence 1).
ALTER TABLE events ADD COLUMN hash bytea;

CREATE FUNCTION event_hash(prev bytea, e events) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(coalesce(prev, ''::bytea) || convert_to(
        e.aggregate_type || E'\n' || e.aggregate_id || E'\n' || e.sequence::text || E'\n' ||
        e.event_type || E'\n' || e.event_version || E'\n' || e.payload::text || E'\n' ||
        e.metadata::text, 'UTF8'))
$$;

CREATE FUNCTION events_chain_hash() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    prev bytea;
BEGIN
    IF NEW.sequence > 1 THEN
        SELECT hash INTO prev FROM events
         WHERE aggregate_type = NEW.aggregate_type AND aggregate_id = NEW.aggregate_id
           AND sequence = NEW.sequence - 1;
    END IF;
    NEW.hash := event_hash(prev, NEW);
    RETURN NEW;
END;
$$;

-- Existing events are hashed once, in each aggregate's order.
DO $$
DECLARE
    r events;
    prev bytea;
    last_type text := NULL;
    last_id text := NULL;
BEGIN
    FOR r IN SELECT * FROM events ORDER BY aggregate_type, aggregate_id, sequence LOOP
        IF r.aggregate_type IS DISTINCT FROM last_type OR r.aggregate_id IS DISTINCT FROM last_id THEN
            prev := NULL;
        END IF;
        prev := event_hash(prev, r);
        UPDATE events SET hash = prev
         WHERE aggregate_type = r.aggregate_type AND aggregate_id = r.aggregate_id
           AND sequence = r.sequence;
        last_type := r.aggregate_type;
        last_id := r.aggregate_id;
    END LOOP;
END;
$$;

CREATE TRIGGER events_chain_hash BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_chain_hash();
