-- Audit (issue 13): every audit read is itself recorded: who looked at which
-- aggregate, what they asked, when. Operators list it.
CREATE TABLE audit_access_log (
    position        bigserial PRIMARY KEY,
    actor_subject   text NOT NULL,
    aggregate_type  text NOT NULL,
    aggregate_id    text NOT NULL,
    -- `events`, `state` or `diff`, with the question's parameters.
    request         text NOT NULL,
    request_id      text,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_access_log_actor ON audit_access_log (actor_subject, position);
