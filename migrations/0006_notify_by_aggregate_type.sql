-- Tell listeners which aggregate types a transaction wrote, so a projection
-- runner wakes only for events it handles (one notification per type and
-- transaction; identical notifications are collapsed at commit).
CREATE OR REPLACE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    written text;
BEGIN
    FOR written IN SELECT DISTINCT aggregate_type FROM new_events LOOP
        PERFORM pg_notify('events', written);
    END LOOP;
    RETURN NULL;
END;
$$;

DROP TRIGGER events_notify ON events;
CREATE TRIGGER events_notify AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();
