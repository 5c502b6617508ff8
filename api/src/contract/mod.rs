//! The facts every operation shares, added to the OpenAPI document once
//! instead of in each `#[utoipa::path]`: errors are problem documents
//! (`application/problem+json`, the `Problem` schema), authenticated
//! operations answer 401 and 403, a JSON body can be malformed (400), too
//! large (413), of another media type (415) or invalid (422), a path that
//! names nothing answers 404, query parameters that do not parse 400, the
//! `If-Match` and `Idempotency-Key` headers have their shape and their
//! refusals, and anything backed by the database can answer 503. Links tie
//! the commands that create a resource to the operations that read it, so
//! a client (and a stateful fuzzer) can follow them.
//!
//! Per-operation facts (which statuses a handler decides, enums, patterns,
//! bounds) stay on the operations and types themselves.

use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{Object, Schema, Type};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response, ResponseBuilder};

mod requests;
mod text;

pub use text::*;

/// The media type every error is answered with.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// `If-Match`: a version as `version` or `ETag` give it, quoted or not.
pub const IF_MATCH_PATTERN: &str = r#"^("[0-9]{1,18}"|[0-9]{1,18})$"#;

/// Operations outside the database-backed API: the liveness probe and the
/// metrics text answer without it.
const NO_DATABASE: [&str; 2] = ["/healthz", "/metrics"];

fn default_description(status: &str) -> &'static str {
    match status {
        "400" => "Malformed: the body is not JSON, or a parameter or header does not parse",
        "401" => "Missing or invalid bearer token",
        "403" => "Your role does not allow this",
        "404" => "Not found, or not yours",
        "409" => "Conflict: the resource changed (If-Match) or a request with this Idempotency-Key is in progress",
        "413" => "The body is larger than the configured limit",
        "415" => "The body is not declared as application/json",
        "422" => "Invalid: the body does not fit the schema, a field is out of range, or a rule refused the command",
        "503" => "A dependency is unavailable, or a read's view has not reached `min_version` in time; retry after Retry-After",
        _ => "A problem document",
    }
}

fn problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            Content::new(Some(Ref::from_schema_name("Problem"))),
        )
        .build()
}

/// Adds `status` unless the operation already documents it.
fn ensure(op: &mut Operation, status: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| RefOr::T(problem_response(default_description(status))));
}

/// Every 4xx and 5xx body is a problem document, whatever the operation
/// declared it as.
fn errors_as_problems(op: &mut Operation) {
    for (status, response) in op.responses.responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        let RefOr::T(response) = response else {
            continue;
        };
        if !is_error {
            continue;
        }
        response.content.clear();
        response.content.insert(
            PROBLEM_JSON.to_string(),
            RefOr::T(Content::new(Some(Ref::from_schema_name("Problem")))),
        );
    }
}

/// A `text/event-stream` answer documents one event, as OpenAPI 3.1 reads
/// the schema of a stream: `id`, `event` and `data`, whose text is the JSON
/// the operation declared (`contentMediaType`, `contentSchema`).
fn events_as_events(op: &mut Operation) {
    use utoipa::openapi::extensions::ExtensionsBuilder;
    use utoipa::openapi::schema::ObjectBuilder;
    for response in op.responses.responses.values_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        let Some(RefOr::T(content)) = response.content.get_mut("text/event-stream") else {
            continue;
        };
        let Some(payload) = content.schema.take() else {
            continue;
        };
        let payload = serde_json::to_value(&payload).unwrap_or_default();
        let mut data = Object::with_type(Type::String);
        data.content_media_type = "application/json".into();
        data.extensions = Some(
            ExtensionsBuilder::new()
                .add("contentSchema", payload)
                .build(),
        );
        let event = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("id", Object::with_type(Type::String))
            .property("event", Object::with_type(Type::String))
            .property("data", data)
            .required("data")
            .description(Some("One server-sent event; `data` is JSON"))
            .build();
        content.schema = Some(RefOr::T(Schema::Object(event)));
    }
}

/// A parameter is absent or has a value: an optional one is not
/// required, never `null` (which a header or query string would send as
/// the text `null`).
fn not_null(param: &mut utoipa::openapi::path::Parameter) {
    use utoipa::openapi::schema::SchemaType;
    let Some(RefOr::T(Schema::Object(object))) = param.schema.as_mut() else {
        return;
    };
    if let SchemaType::Array(types) = &object.schema_type {
        let kept: Vec<Type> = types
            .iter()
            .filter(|t| **t != Type::Null)
            .cloned()
            .collect();
        object.schema_type = match kept.as_slice() {
            [one] => SchemaType::Type(one.clone()),
            _ => SchemaType::Array(kept),
        };
    }
}

fn string_schema(pattern: Option<&str>, max_length: Option<usize>) -> RefOr<Schema> {
    let mut object = Object::with_type(Type::String);
    object.pattern = pattern.map(str::to_string);
    object.max_length = max_length;
    RefOr::T(Schema::Object(object))
}

/// Every operation of a path.
pub(crate) fn operations(item: &mut utoipa::openapi::PathItem) -> Vec<&mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The cross-cutting facts; see the module documentation.
pub struct Contract;

impl utoipa::Modify for Contract {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for op in operations(item) {
                let authenticated = op.security.as_ref().is_some_and(|s| !s.is_empty());
                if authenticated {
                    ensure(op, "401");
                    ensure(op, "403");
                }
                if op.request_body.is_some() {
                    for status in ["400", "413", "415", "422"] {
                        ensure(op, status);
                    }
                }
                if path.contains('{') {
                    ensure(op, "404");
                }
                let mut statuses = Vec::new();
                for param in op.parameters.iter_mut().flatten() {
                    let RefOr::T(param) = param else { continue };
                    not_null(param);
                    match (
                        &param.parameter_in,
                        param.name.to_ascii_lowercase().as_str(),
                    ) {
                        (ParameterIn::Query, _) => statuses.push("400"),
                        (ParameterIn::Header, "if-match") => {
                            param.schema = Some(string_schema(Some(IF_MATCH_PATTERN), None));
                            statuses.extend(["400", "409"]);
                        }
                        (ParameterIn::Header, "idempotency-key") => {
                            param.schema = Some(string_schema(None, Some(255)));
                            statuses.extend(["409", "422"]);
                        }
                        _ => {}
                    }
                }
                for status in statuses {
                    ensure(op, status);
                }
                if !NO_DATABASE.contains(&path.as_str()) {
                    ensure(op, "503");
                }
                errors_as_problems(op);
                events_as_events(op);
            }
        }
        add_links(openapi);
        close_variants(openapi);
        requests::requests(openapi);
    }
}

/// Request enums tagged by a field whose variants take no other fields
/// than their own (serde's `deny_unknown_fields`), which utoipa does not
/// write for an enum's variants.
const CLOSED_ONE_OFS: [&str; 1] = ["RuleBody"];

fn close_variants(openapi: &mut OpenApi) {
    use utoipa::openapi::schema::AdditionalProperties;
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    for name in CLOSED_ONE_OFS {
        let Some(RefOr::T(Schema::OneOf(one_of))) = components.schemas.get_mut(name) else {
            continue;
        };
        for item in one_of.items.iter_mut() {
            if let RefOr::T(Schema::Object(object)) = item {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
}

/// A link from `from`'s `status` answer to the operation `to` (path,
/// method), whose parameters are runtime expressions on that answer
/// (`$response.body#/id`) or its request (`$request.path.node_id`).
struct LinkSpec {
    from: (&'static str, &'static str),
    status: &'static str,
    name: &'static str,
    to: (&'static str, &'static str),
    parameters: &'static [(&'static str, &'static str)],
}

const fn link(
    from: (&'static str, &'static str),
    status: &'static str,
    name: &'static str,
    to: (&'static str, &'static str),
    parameters: &'static [(&'static str, &'static str)],
) -> LinkSpec {
    LinkSpec {
        from,
        status,
        name,
        to,
        parameters,
    }
}

const BODY_ID: &[(&str, &str)] = &[("id", "$response.body#/id")];

/// Create -> read, and create -> the commands on what was created.
const LINKS: &[LinkSpec] = &[
    link(
        ("/v1/deployments", "post"),
        "202",
        "GetDeployment",
        ("/v1/deployments/{id}", "get"),
        BODY_ID,
    ),
    link(
        ("/v1/deployments", "post"),
        "202",
        "ResizeDeployment",
        ("/v1/deployments/{id}/resize", "post"),
        BODY_ID,
    ),
    link(
        ("/v1/deployments", "post"),
        "202",
        "CancelDeployment",
        ("/v1/deployments/{id}/cancel", "post"),
        BODY_ID,
    ),
    link(
        ("/v1/provider-requests", "post"),
        "202",
        "GetProviderRequest",
        ("/v1/provider-requests/{farm_id}", "get"),
        &[("farm_id", "$request.body#/farm_id")],
    ),
    link(
        ("/v1/provider-requests", "post"),
        "202",
        "WithdrawProviderRequest",
        ("/v1/provider-requests/{farm_id}/withdraw", "post"),
        &[("farm_id", "$request.body#/farm_id")],
    ),
    link(
        ("/v1/alliances", "post"),
        "202",
        "GetAlliance",
        ("/v1/alliances/{id}", "get"),
        BODY_ID,
    ),
    link(
        ("/v1/alliances", "post"),
        "202",
        "GetSettlements",
        ("/v1/alliances/{id}/settlements", "get"),
        BODY_ID,
    ),
    link(
        ("/v1/webhook-endpoints", "post"),
        "201",
        "ListDeliveries",
        ("/v1/webhook-endpoints/{id}/deliveries", "get"),
        BODY_ID,
    ),
    link(
        ("/v1/webhook-endpoints", "post"),
        "201",
        "DeleteEndpoint",
        ("/v1/webhook-endpoints/{id}", "delete"),
        BODY_ID,
    ),
    link(
        ("/v1/nodes/{node_id}/maintenance", "post"),
        "202",
        "RescheduleMaintenance",
        ("/v1/nodes/{node_id}/maintenance/{window_id}", "put"),
        &[
            ("node_id", "$request.path.node_id"),
            ("window_id", "$response.body#/id"),
        ],
    ),
    link(
        ("/v1/nodes/{node_id}/maintenance", "post"),
        "202",
        "CancelMaintenance",
        ("/v1/nodes/{node_id}/maintenance/{window_id}/cancel", "post"),
        &[
            ("node_id", "$request.path.node_id"),
            ("window_id", "$response.body#/id"),
        ],
    ),
    link(
        ("/v1/wallet/link-challenges", "post"),
        "201",
        "SignLinkChallenge",
        (
            "/v1/wallet/link-challenges/{challenge_id}/signature",
            "post",
        ),
        &[("challenge_id", "$response.body#/challenge_id")],
    ),
    link(
        ("/v1/alliances/{id}/payout-account/challenges", "post"),
        "201",
        "SignPayoutChallenge",
        (
            "/v1/alliances/{id}/payout-account/challenges/{challenge_id}/signature",
            "post",
        ),
        &[
            ("id", "$request.path.id"),
            ("challenge_id", "$response.body#/challenge_id"),
        ],
    ),
    link(
        ("/v1/wallet/top-ups", "post"),
        "201",
        "GetTopUp",
        ("/v1/wallet/top-ups/{top_up_id}", "get"),
        &[("top_up_id", "$response.body#/top_up_id")],
    ),
    link(
        ("/v1/wallet/subscriptions", "post"),
        "201",
        "GetSubscription",
        ("/v1/wallet/subscriptions/{subscription_id}", "get"),
        &[("subscription_id", "$response.body#/subscription_id")],
    ),
    link(
        ("/v1/wallet/subscriptions", "post"),
        "201",
        "CancelSubscription",
        ("/v1/wallet/subscriptions/{subscription_id}/cancel", "post"),
        &[("subscription_id", "$response.body#/subscription_id")],
    ),
];

fn operation_mut<'a>(
    openapi: &'a mut OpenApi,
    (path, method): (&str, &str),
) -> Option<&'a mut Operation> {
    let item = openapi.paths.paths.get_mut(path)?;
    match method {
        "get" => item.get.as_mut(),
        "post" => item.post.as_mut(),
        "put" => item.put.as_mut(),
        "patch" => item.patch.as_mut(),
        "delete" => item.delete.as_mut(),
        _ => None,
    }
}

fn add_links(openapi: &mut OpenApi) {
    for spec in LINKS {
        // A link to an operation the document does not have would be a
        // broken promise: the document's own test requires every target.
        if operation_mut(openapi, spec.to).is_none() {
            panic!(
                "link {} targets {} {}, which is not documented",
                spec.name, spec.to.1, spec.to.0
            );
        }
        let Some(RefOr::T(response)) = operation_mut(openapi, spec.from)
            .and_then(|op| op.responses.responses.get_mut(spec.status))
        else {
            panic!(
                "link {} starts from {} {} {}, which is not documented",
                spec.name, spec.from.1, spec.from.0, spec.status
            );
        };
        // A JSON pointer into `paths`: `/` in the path is escaped as `~1`.
        let pointer = format!(
            "#/paths/{}/{}",
            spec.to.0.replace('~', "~0").replace('/', "~1"),
            spec.to.1
        );
        let mut link = LinkBuilder::new().operation_ref(pointer);
        for (name, expression) in spec.parameters {
            link = link.parameter(*name, serde_json::Value::from(*expression));
        }
        response
            .links
            .insert(spec.name.to_string(), RefOr::T(link.build()));
    }
}

/// A string schema that allows exactly `values`.
pub fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>) -> Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.into_iter().map(str::to_string)))
        .build()
}

/// `?status=` of `GET /v1/deployments`: the domain's statuses.
pub fn deployment_status() -> Object {
    use marketplace_domain::deployment::Status;
    string_enum(Status::ALL.iter().map(|s| s.as_str()))
}

/// `?kind=` of `GET /v1/deployments`.
pub fn deployment_kind() -> Object {
    string_enum(["vm", "kubernetes"])
}

/// `?status=` of `GET /v1/provider-requests`: the domain's statuses.
pub fn provider_request_status() -> Object {
    use marketplace_domain::provider::Status;
    string_enum(Status::ALL.iter().map(|s| s.as_str()))
}

/// `?sort=` of the node catalog.
pub fn node_sort() -> Object {
    use marketplace_projections::nodes::Sort;
    string_enum(Sort::ALL.iter().map(|s| s.as_str()))
}
