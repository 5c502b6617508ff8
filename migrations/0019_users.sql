-- Users (issue 15): the user aggregate's view, one row per token subject,
-- built by the `users` projection from the user's events. `version` is the
-- last aggregate sequence applied (the per-row guard, and the ETag of
-- GET /v1/me); every column comes from events, never from the clock, so a
-- rebuild reproduces the table exactly.
--
-- The notifications process manager reads it: a notification's recipient
-- address is `contact_email` when verified, else `email`; `time_zone` is
-- the zone dates in messages are written in; `notification_prefs` says
-- which channels a kind goes to.
CREATE TABLE users (
    -- The token's `sub`: the aggregate id.
    user_id                text PRIMARY KEY,
    -- The token's `email` claim at the first request (or when it changed).
    email                  text,
    -- The token's `name` claim, when present.
    name                   text,
    -- Profile, as the user set it.
    display_name           text,
    company                text,
    -- ISO 3166-1 alpha-2, upper case (`BE`).
    country                text,
    -- Where the user wants mail; used once verified by a code sent there.
    contact_email          text,
    contact_email_verified boolean NOT NULL DEFAULT false,
    -- IANA time zone name (`Europe/Brussels`).
    time_zone              text NOT NULL DEFAULT 'UTC',
    -- {"<kind>": {"feed": bool, "email": bool, "webhook": bool}}; a missing
    -- kind or channel means on.
    notification_prefs     jsonb NOT NULL DEFAULT '{}',
    -- The placement criteria a new deployment gets when its request names
    -- none (the shape POST /v1/deployments accepts), or NULL.
    default_placement      jsonb,
    version                bigint NOT NULL,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL
);

-- The operators' list: oldest first, paged by (created_at, user_id).
CREATE INDEX users_created ON users (created_at, user_id);
-- The operators' filter by email (token or contact address), case-insensitive.
CREATE INDEX users_email ON users (lower(email));
CREATE INDEX users_contact_email ON users (lower(contact_email));
