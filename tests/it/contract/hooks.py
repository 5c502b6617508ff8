"""The contract test's one check of its own (tests/it/contract/mod.rs).

schemathesis's `positive_data_acceptance` fails a 422 to a request the
document allows. This API answers 422 for two different things: a request
that does not fit (`/problems/invalid-command`: a field out of range, a
body that does not deserialise) and a business rule that refuses what the
current state does not allow (`/problems/insufficient-balance`,
`/problems/no-contact-email`, `/problems/idempotency-key-reused`, ...).
The second depends on state no schema can carry, so schemathesis.toml lets
422 through that check, and this check fails the first: a request the
document allows is never refused as malformed or invalid.
"""

import schemathesis

# Fields whose validity no JSON Schema states: an SS58 address carries a
# checksum of its key, which a pattern can shape but not check.
BEYOND_A_SCHEMA = {"account"}

# Problem types that say the request itself is wrong.
REFUSED_AS_WRONG = {
    "/problems/invalid-command",
    "/problems/malformed-request",
    "/problems/unsupported-media-type",
    "/problems/payload-too-large",
}


@schemathesis.check
def allowed_requests_are_not_refused_as_invalid(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code not in (400, 413, 415, 422):
        return None
    try:
        problem = response.json()
    except Exception:
        problem = {}
    kind = problem.get("type") if isinstance(problem, dict) else None
    if response.status_code == 422 and kind not in REFUSED_AS_WRONG:
        return None
    detail = problem.get("detail", "") if isinstance(problem, dict) else ""
    field = problem.get("field") if isinstance(problem, dict) else None
    # An invalid command that names no field and is not a body that failed
    # to deserialise is the aggregate refusing it in its current state (an
    # illegal transition: cancelling a deleted deployment).
    if (
        response.status_code == 422
        and field is None
        and not detail.startswith("Failed to deserialize")
    ):
        return None
    if response.status_code == 422 and field in BEYOND_A_SCHEMA:
        return None
    # A cursor is opaque: only a page's own `next_cursor` is one, which a
    # schema can shape but not enumerate.
    query = case.query or {}
    if response.status_code == 400 and query.get("cursor") and "cursor" in detail:
        return None
    # The message names the problem type and field only (the response,
    # printed beside it, has the detail): it is what a baseline entry keys.
    raise AssertionError(
        f"A request the document allows was refused as {kind} ({response.status_code})"
        + (f", field {field}" if field else "")
    )
