//! Users: everyone's own profile and settings (`/v1/me`), the contact
//! email's verification by a code sent there, and the operators' list and
//! detail of users. A user is opened by its first authenticated request
//! ([`registration`]); nobody but an operator reads another's profile.

pub mod registration;

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use marketplace_app::idempotency::Recovery;
use marketplace_app::mail::{Mail, Mailer};
use marketplace_app::CommandError;
use marketplace_domain::user::{
    code_hash, Channel, CountryCode, EmailAddress, NotificationKind, NotificationPrefs, PrefsPatch,
    ProfileText, SpecError, TimeZoneName, User, UserCommand, UserEvent, UserPatch,
};
use marketplace_domain::Actor;
use marketplace_projections::users::{self as views, Cursor, UserListQuery, UserRow};
use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AsOperator, AuthUser, Principal};
use crate::command::{accept, exec, fingerprint, keyed, Target};
use crate::dto::{CommandAccepted, PlacementBody};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, RequestContext};
use crate::views_watch::read_visible;
use crate::AppState;

pub use registration::KnownUsers;

/// The user routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, patch_me))
        .routes(routes!(send_verification_code))
        .routes(routes!(verify_contact_email))
        .routes(routes!(list_users))
        .routes(routes!(get_user))
}

/// One kind's channels, as they are in effect.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelsBody {
    /// The in-app feed and its live stream.
    pub feed: bool,
    /// Email.
    pub email: bool,
    /// Registered webhooks.
    pub webhook: bool,
}

/// A user's profile and settings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserBody {
    /// The token subject.
    pub user_id: String,
    /// The token's email claim.
    pub email: Option<String>,
    /// The token's name claim.
    pub name: Option<String>,
    /// The name shown for the user.
    pub display_name: Option<String>,
    /// The user's company.
    pub company: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// Where the user wants mail, once verified.
    pub contact_email: Option<String>,
    /// Whether a code sent to the contact email came back.
    pub contact_email_verified: bool,
    /// Where notifications are emailed: the contact email once verified, else the token's email.
    pub notification_email: Option<String>,
    /// IANA time zone that dates in messages are written in.
    pub time_zone: String,
    /// Every kind of notification with the channels it goes to (a kind or
    /// channel the user never set is on). Kinds: balance_low,
    /// auto_top_up_failed, grace_period_started, grace_period_ended,
    /// deleted_out_of_funds, deployment_running, deployment_failed,
    /// maintenance_announced, maintenance_soon, provider_request_answered,
    /// alliance_settlement_paid, subscription_payment_failed.
    pub notification_prefs: BTreeMap<String, ChannelsBody>,
    /// The placement a new deployment gets when its request names none.
    pub default_placement: Option<PlacementBody>,
    /// The version (also the `ETag`); send it as `If-Match` with a change.
    pub version: i64,
    /// When the user was first seen.
    pub created_at: DateTime<Utc>,
    /// When the profile or settings last changed.
    pub updated_at: DateTime<Utc>,
}

fn user_body(row: &UserRow) -> UserBody {
    let prefs: NotificationPrefs =
        serde_json::from_value(row.notification_prefs.clone()).unwrap_or_default();
    let notification_prefs = NotificationKind::ALL
        .iter()
        .map(|&kind| {
            (
                kind.as_str().to_string(),
                ChannelsBody {
                    feed: prefs.enabled(kind, Channel::Feed),
                    email: prefs.enabled(kind, Channel::Email),
                    webhook: prefs.enabled(kind, Channel::Webhook),
                },
            )
        })
        .collect();
    UserBody {
        user_id: row.user_id.clone(),
        email: row.email.clone(),
        name: row.name.clone(),
        display_name: row.display_name.clone(),
        company: row.company.clone(),
        country: row.country.clone(),
        contact_email: row.contact_email.clone(),
        contact_email_verified: row.contact_email_verified,
        notification_email: row.recipient().map(str::to_string),
        time_zone: row.time_zone.clone(),
        notification_prefs,
        default_placement: row
            .default_placement
            .clone()
            .and_then(|p| serde_json::from_value(p).ok()),
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn with_etag(body: UserBody) -> Response {
    let etag = format!("\"{}\"", body.version);
    let mut response = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

/// The caller's own user, opened now if the auth path could not.
async fn own_user(
    state: &AppState,
    principal: &Principal,
    ctx: &RequestContext,
) -> Result<(Actor, i64), ApiError> {
    let actor = principal.as_self()?;
    let version = state
        .users
        .ensure(&state.stores, principal, &ctx.request_id, &ctx.request_id)
        .await?;
    Ok((actor, version.map_or(1, |v| v as i64)))
}

/// ISO 3166-1 alpha-2 codes, `null` clearing the country.
fn country_schema() -> utoipa::openapi::schema::Object {
    let mut codes = crate::contract::string_enum(marketplace_domain::user::ISO_3166_ALPHA_2);
    codes.schema_type = utoipa::openapi::schema::SchemaType::from_iter([
        utoipa::openapi::schema::Type::String,
        utoipa::openapi::schema::Type::Null,
    ]);
    codes.examples = vec![serde_json::json!("BE")];
    codes
}

/// A display name or company: 1 to 100 characters once trimmed, no
/// control characters; `null` clears it.
fn profile_text_schema() -> utoipa::openapi::schema::Object {
    crate::contract::nullable_trimmed_text(1, 100)
}

/// `{"<kind>": {"<channel>": true | false | null}}`, kinds and channels
/// exactly the server's.
fn prefs_patch_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    let setting = || {
        ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Boolean,
            Type::Null,
        ]))
    };
    let channels = Channel::ALL
        .iter()
        .fold(ObjectBuilder::new().schema_type(Type::Object), |o, c| {
            o.property(c.as_str(), setting())
        })
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .build();
    let kinds = NotificationKind::ALL
        .iter()
        .fold(
            ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                Type::Object,
                Type::Null,
            ])),
            |o, k| o.property(k.as_str(), channels.clone()),
        )
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .examples([serde_json::json!({"balance_low": {"email": false}})]);
    kinds.build()
}

/// The tz database's names, exactly those the server takes.
fn time_zone_schema() -> utoipa::openapi::schema::Object {
    crate::contract::string_enum(marketplace_domain::user::TimeZoneName::all())
}

/// Read-your-writes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MeParams {
    /// Wait (bounded) until the view has reached this version, as returned by a change.
    pub min_version: Option<i64>,
}

/// Your own profile and settings; the `ETag` is the version to send as `If-Match`.
#[utoipa::path(
    get, path = "/v1/me", tag = "users",
    params(MeParams),
    responses(
        (status = 200, body = UserBody, headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 503, body = Problem, description = "The view did not reach min_version in time")
    ),
    security(("bearer" = []))
)]
pub async fn get_me(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ctx: RequestContext,
    ApiQuery(params): ApiQuery<MeParams>,
) -> Result<Response, ApiError> {
    let (actor, version) = own_user(&state, &principal, &ctx).await?;
    let min_version = params.min_version.unwrap_or(0).max(version);
    let pool = &state.pool;
    let row = read_visible(
        &state.views,
        state.settings.read_wait,
        min_version,
        || views::find(pool, &actor.subject),
        |_| true,
        |r| r.version,
    )
    .await?;
    Ok(with_etag(user_body(&row)))
}

/// Reads an optional field whose `null` means "clear it": absent is
/// `None`, `null` is `Some(None)`.
fn clearable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A change to your profile and settings: only the fields sent change;
/// `null` clears a clearable one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchBody {
    /// 1 to 100 characters; `null` clears it.
    #[serde(
        default,
        deserialize_with = "clearable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = profile_text_schema)]
    pub display_name: Option<Option<String>>,
    /// 1 to 100 characters; `null` clears it.
    #[serde(
        default,
        deserialize_with = "clearable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = profile_text_schema)]
    pub company: Option<Option<String>>,
    /// ISO 3166-1 alpha-2 code (`BE`); `null` clears it.
    #[serde(
        default,
        deserialize_with = "clearable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = country_schema)]
    pub country: Option<Option<String>>,
    /// Where you want mail; a new address is unverified until a code sent
    /// there comes back. `null` removes it.
    #[serde(
        default,
        deserialize_with = "clearable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = crate::contract::nullable_email)]
    pub contact_email: Option<Option<String>>,
    /// Channels per kind: `{"<kind>": {"feed" | "email" | "webhook": true | false | null}}`;
    /// `null` puts a channel back to its default (on); kinds and channels not named stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = prefs_patch_schema)]
    pub notification_prefs: Option<Value>,
    /// IANA time zone name (`Europe/Brussels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = time_zone_schema)]
    pub time_zone: Option<String>,
    /// Placement criteria for deployments whose request names none, as
    /// `POST /v1/deployments` takes them; `null` removes them.
    #[serde(
        default,
        deserialize_with = "clearable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<PlacementBody>)]
    pub default_placement: Option<Option<PlacementBody>>,
}

fn invalid(e: SpecError) -> ApiError {
    ApiError::Invalid {
        detail: e.reason,
        field: Some(e.field),
    }
}

impl UserPatchBody {
    /// Validates every field sent.
    pub fn into_domain(self) -> Result<UserPatch, ApiError> {
        fn text(
            field: &str,
            v: Option<Option<String>>,
        ) -> Result<Option<Option<ProfileText>>, ApiError> {
            v.map(|o| o.map(|t| ProfileText::new(field, &t)).transpose())
                .transpose()
                .map_err(invalid)
        }
        Ok(UserPatch {
            display_name: text("display_name", self.display_name)?,
            company: text("company", self.company)?,
            country: self
                .country
                .map(|o| o.map(|c| CountryCode::new(&c)).transpose())
                .transpose()
                .map_err(invalid)?,
            contact_email: self
                .contact_email
                .map(|o| {
                    o.map(|e| EmailAddress::new("contact_email", &e))
                        .transpose()
                })
                .transpose()
                .map_err(invalid)?,
            notification_prefs: self
                .notification_prefs
                .as_ref()
                .map(PrefsPatch::parse)
                .transpose()
                .map_err(invalid)?,
            time_zone: self
                .time_zone
                .as_deref()
                .map(TimeZoneName::new)
                .transpose()
                .map_err(invalid)?,
            default_placement: self
                .default_placement
                .map(|o| {
                    o.map(|p| {
                        p.into_domain().map_err(|e| {
                            SpecError::new(
                                &e.field.replacen("placement", "default_placement", 1),
                                e.reason,
                            )
                        })
                    })
                    .transpose()
                })
                .transpose()
                .map_err(invalid)?,
        })
    }
}

/// Change your profile and settings. `If-Match` (the `ETag` of `GET
/// /v1/me`) refuses the change with 409 if something else changed them
/// since; without it the change applies to the current version. A change
/// that changes nothing keeps the version.
#[utoipa::path(
    patch, path = "/v1/me", tag = "users",
    request_body = UserPatchBody,
    params(
        ("If-Match" = Option<String>, Header, description = "The version you read; 409 if it moved"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key replay the first answer"),
    ),
    responses(
        (status = 202, body = CommandAccepted, description = "Accepted; read it back with min_version"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "If-Match is stale"),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem, description = "A field is invalid; nothing changed")
    ),
    security(("bearer" = []))
)]
pub async fn patch_me(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ctx: RequestContext,
    ApiJson(body): ApiJson<UserPatchBody>,
) -> Response {
    let run = async {
        let (actor, _) = own_user(&state, &principal, &ctx).await?;
        let fingerprint = fingerprint(("PATCH /v1/me", &body));
        let patch = body.clone().into_domain()?;
        let target = Target {
            store: &state.stores.users,
            id: actor.subject.clone(),
            location: "/v1/me".to_string(),
            fresh: false,
        };
        Ok::<_, ApiError>(
            accept(&state, &ctx, &actor, target, fingerprint, move |_| {
                Ok(UserCommand::Update {
                    patch: patch.clone(),
                    at: Utc::now(),
                })
            })
            .await,
        )
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// A code is on its way.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerificationSent {
    /// Your user id.
    pub id: String,
    /// The user's version now.
    pub version: u64,
    /// Where the code went.
    pub sent_to: String,
    /// Until when it is accepted.
    pub expires_at: DateTime<Utc>,
    /// Wrong codes it survives.
    pub attempts: u8,
}

/// A code's `Message-ID`: the same for every attempt to send that code.
fn verification_message_id(user_id: &str, version: u64) -> String {
    let id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("marketplace:contact-verification:{user_id}:{version}").as_bytes(),
    );
    format!("contact-verification-{id}")
}

fn verification_mail(
    to: &str,
    code: &str,
    expires_at: DateTime<Utc>,
    tz: &TimeZoneName,
    message_id: String,
) -> Mail {
    let until = expires_at
        .with_timezone(&tz.tz())
        .format("%Y-%m-%d %H:%M %Z")
        .to_string();
    Mail {
        to: to.to_string(),
        subject: format!("Your marketplace verification code: {code}"),
        text: format!(
            "Your verification code is {code}.\n\n\
             Enter it in the marketplace to confirm that {to} is your contact address. \
             It is valid until {until}.\n\n\
             If you did not ask for it, ignore this message.\n"
        ),
        html: Some(format!(
            "<p>Your verification code is <strong style=\"font-size:1.4em;letter-spacing:.2em\">{code}</strong>.</p>\
             <p>Enter it in the marketplace to confirm that {to} is your contact address. \
             It is valid until {until}.</p>\
             <p>If you did not ask for it, ignore this message.</p>",
            to = html_escape(to),
        )),
        message_id,
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn mailer(state: &AppState) -> Result<&dyn Mailer, ApiError> {
    state.mailer.as_deref().ok_or(ApiError::NotConfigured(
        "mail is not configured: SMTP_URL is unset",
    ))
}

fn user_recovery() -> Recovery {
    Recovery::Accepted {
        aggregate_type: <User as cqrs_es::Aggregate>::TYPE,
        location: "/v1/me".to_string(),
    }
}

/// Send a 6-digit code to your contact email. It is valid for a while
/// (`expires_at`) and survives a few wrong guesses; a new code replaces
/// the previous one, and only a few are sent per hour.
#[utoipa::path(
    post, path = "/v1/me/contact-email/verification", tag = "users",
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer and sends nothing")),
    responses(
        (status = 202, body = VerificationSent, description = "The code was handed to the mail server"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem, description = "No contact email, already verified, or too many codes this hour"),
        (status = 503, body = Problem, description = "Mail is not configured, or the mail server could not take the message (ask again)")
    ),
    security(("bearer" = []))
)]
pub async fn send_verification_code(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ctx: RequestContext,
) -> Response {
    let Ok(actor) = principal.as_self() else {
        return ApiError::Forbidden.into_response();
    };
    let run = async {
        let mailer = mailer(&state)?;
        own_user(&state, &principal, &ctx).await?;
        let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000u32));
        let salt = hex::encode(rand::thread_rng().gen::<[u8; 16]>());
        let hash = code_hash(&salt, &code);
        let now = Utc::now();
        let expires_at = now
            + Duration::from_std(state.verification_ttl).unwrap_or_else(|_| Duration::minutes(15));
        let done = exec(&state.stores.users, actor.subject.clone(), &ctx, &actor)
            .run(|_| {
                Ok(UserCommand::StartContactEmailVerification {
                    salt: salt.clone(),
                    code_hash: hash.clone(),
                    expires_at,
                    at: now,
                })
            })
            .await?;
        let s = done
            .aggregate
            .state()
            .ok_or_else(|| ApiError::Internal("a user without state after a command".into()))?;
        let to = s
            .pending
            .as_ref()
            .map(|p| p.email.as_str().to_string())
            .ok_or_else(|| ApiError::Internal("no pending code after sending one".into()))?;
        let mail = verification_mail(
            &to,
            &code,
            expires_at,
            &s.time_zone,
            verification_message_id(&actor.subject, done.version),
        );
        mailer.send(&mail).await.map_err(|e| {
            tracing::warn!(subject = %actor.subject, error = %e, "verification code not sent");
            ApiError::Unavailable(format!("the code could not be sent: {e}"))
        })?;
        tracing::info!(subject = %actor.subject, version = done.version, "verification code sent");
        Ok((
            StatusCode::ACCEPTED,
            Json(VerificationSent {
                id: actor.subject.clone(),
                version: done.version,
                sent_to: to,
                expires_at,
                attempts: marketplace_domain::user::CODE_ATTEMPTS,
            }),
        )
            .into_response())
    };
    let fingerprint = fingerprint(("POST /v1/me/contact-email/verification", &actor.subject));
    keyed(
        &state,
        &ctx,
        &actor,
        &actor.subject,
        fingerprint,
        user_recovery(),
        run,
    )
    .await
}

/// The code you received.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The 6 digits sent to your contact email.
    #[schema(example = "042917", pattern = "^[0-9]{6}$")]
    pub code: String,
}

/// Send back the code: the right one verifies your contact email; a wrong
/// one costs an attempt (422, with the attempts left).
#[utoipa::path(
    post, path = "/v1/me/contact-email/verify", tag = "users",
    request_body = VerifyBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer")),
    responses(
        (status = 202, body = CommandAccepted, description = "Verified"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem, description = "Wrong, expired or used-up code, none pending, already verified, or not 6 digits")
    ),
    security(("bearer" = []))
)]
pub async fn verify_contact_email(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ctx: RequestContext,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Response {
    let Ok(actor) = principal.as_self() else {
        return ApiError::Forbidden.into_response();
    };
    let fingerprint = fingerprint(("POST /v1/me/contact-email/verify", &body));
    let run = async {
        own_user(&state, &principal, &ctx).await?;
        let code = body.code.trim().to_string();
        let done = exec(&state.stores.users, actor.subject.clone(), &ctx, &actor)
            .run(|_| {
                Ok(UserCommand::VerifyContactEmail {
                    code: code.clone(),
                    at: Utc::now(),
                })
            })
            .await?;
        // A wrong code is recorded (it costs an attempt), then refused.
        if let Some(UserEvent::ContactEmailVerificationFailed { attempts_left, .. }) =
            done.events.last()
        {
            return Err(ApiError::Rule {
                slug: "wrong-verification-code",
                detail: format!("that is not the code sent; {attempts_left} attempts left"),
            });
        }
        Ok(crate::command::accepted(
            &CommandAccepted {
                id: done.id,
                version: done.version,
            },
            "/v1/me",
        ))
    };
    keyed(
        &state,
        &ctx,
        &actor,
        &actor.subject,
        fingerprint,
        user_recovery(),
        run,
    )
    .await
}

/// List filters and page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserListParams {
    /// Only users whose token email or contact email is this (any case).
    pub email: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// A page of users.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserPage {
    /// Oldest first.
    pub items: Vec<UserBody>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Every user, oldest first (operator).
#[utoipa::path(
    get, path = "/v1/users", tag = "users",
    params(UserListParams),
    responses(
        (status = 200, body = UserPage),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn list_users(
    State(state): State<AppState>,
    _operator: AsOperator,
    ApiQuery(params): ApiQuery<UserListParams>,
) -> Result<Json<UserPage>, ApiError> {
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest("limit is 1 to 100".into()));
    }
    let after = match params.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            Cursor::decode(c)
                .ok_or_else(|| ApiError::BadRequest("not a cursor of this list".into()))?,
        ),
    };
    let email = params
        .email
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
    let (rows, next) = views::list(
        &state.pool,
        &UserListQuery {
            email,
            after,
            limit,
        },
    )
    .await?;
    Ok(Json(UserPage {
        items: rows.iter().map(user_body).collect(),
        next_cursor: next.map(|c| c.encode()),
    }))
}

/// One user's profile and settings (operator).
#[utoipa::path(
    get, path = "/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path, description = "The user's token subject")),
    responses(
        (status = 200, body = UserBody),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn get_user(
    State(state): State<AppState>,
    _operator: AsOperator,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let row = views::find(&state.pool, &user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(with_etag(user_body(&row)))
}

/// The placement a deployment request that names none gets: the user's
/// default, from the user itself (not its view, so a default just set
/// applies at once), or no criteria.
pub async fn default_placement(
    state: &AppState,
    subject: &str,
) -> Result<marketplace_domain::deployment::Placement, CommandError> {
    let (user, _) = marketplace_app::bus::load(&state.stores.users, subject).await?;
    Ok(user
        .state()
        .and_then(|s| s.default_placement.clone())
        .unwrap_or_default())
}
