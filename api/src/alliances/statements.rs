//! A member's statement of one settled month: the alliance's income, the
//! member's nodes with their uptime, income and credits, the member's share
//! and penalty, and the payout on chain. JSON, or a PDF when `Accept` asks
//! for `application/pdf` (one resource, two representations).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use marketplace_domain::alliance::{NodeFigures, Period, Settlement};
use marketplace_projections::alliances as views;
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::reads::visible_row;
use crate::auth::AsProviderOrOperator;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::AppState;

/// One of the member's nodes in the month.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatementNode {
    /// The node.
    pub node_id: u32,
    /// Measured uptime (basis points).
    pub uptime_bps: u16,
    /// What the chain paid the alliance for it (base units, decimal).
    pub income: String,
    /// Its SLA credit (base units, decimal), 0 when it met the SLA.
    pub credit: String,
    /// `users` or `members`, when it credited.
    pub credited_to: Option<String>,
}

/// A member's statement of a settled month.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberStatement {
    /// The alliance.
    pub alliance_id: String,
    /// Its name.
    pub alliance_name: String,
    /// The member.
    pub member: String,
    /// The month.
    pub period: String,
    /// The alliance's income in the month (base units, decimal).
    pub alliance_income: String,
    /// Carried into the month.
    pub carried_in: String,
    /// Carried to the next month.
    pub carried: String,
    /// The member's nodes.
    pub nodes: Vec<StatementNode>,
    /// The member's share.
    pub share: String,
    /// The penalty taken from it.
    pub penalty: String,
    /// What was paid, once.
    pub paid: Option<String>,
    /// Where.
    pub paid_to: Option<String>,
    /// The chain transfer.
    pub transfer: Option<String>,
    /// When the month was settled.
    pub settled_at: DateTime<Utc>,
}

/// Whose statement.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatementParams {
    /// The member (operators; a provider sees only its own).
    pub member: Option<String>,
}

/// A member's statement of a settled month, as JSON or (`Accept:
/// application/pdf`) a PDF.
#[utoipa::path(
    get, path = "/v1/alliances/{id}/statements/{period}", tag = "alliances",
    params(("id" = String, Path, description = "The alliance"), ("period" = String, Path, description = "The month, YYYY-MM (1970-01 to 9999-12)", pattern = r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$"), StatementParams),
    responses(
        (status = 200, body = MemberStatement, description = "JSON, or application/pdf when asked"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "Unknown alliance, member or unsettled month")
    ),
    security(("bearer" = []))
)]
pub async fn statement(
    State(state): State<AppState>,
    AsProviderOrOperator(actor): AsProviderOrOperator,
    ApiPath((id, period)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<StatementParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let period = Period::parse(&period).map_err(|e| ApiError::BadRequest(e.reason))?;
    let member = match (&params.member, actor.is_operator()) {
        (Some(m), true) => m.clone(),
        (Some(m), false) if *m == actor.subject => m.clone(),
        (Some(_), false) => return Err(ApiError::NotFound),
        (None, _) => actor.subject.clone(),
    };
    let row = visible_row(&state, &actor, &id, 0).await?;
    let settled = views::settlements(&state.pool, &id)
        .await?
        .into_iter()
        .find(|s| s.period == period.to_string())
        .ok_or(ApiError::NotFound)?;
    let share = views::shares(&state.pool, &id, Some(&member))
        .await?
        .into_iter()
        .find(|s| s.period == period.to_string())
        .ok_or(ApiError::NotFound)?;
    let settlement: Settlement = serde_json::from_value(settled.settlement.clone())
        .map_err(|e| ApiError::Internal(format!("settlement: {e}")))?;
    let figures: Vec<NodeFigures> = serde_json::from_value(settled.nodes.clone())
        .map_err(|e| ApiError::Internal(format!("figures: {e}")))?;
    let nodes = figures
        .iter()
        .filter(|n| n.member == member)
        .map(|n| {
            let credit = settlement.node_credits.get(&n.node_id);
            StatementNode {
                node_id: n.node_id,
                uptime_bps: n.uptime_bps,
                income: n.income.to_string(),
                credit: credit.map_or(0, |c| c.amount).to_string(),
                credited_to: credit.map(|c| {
                    match c.to {
                        marketplace_domain::alliance::CreditsTo::Users => "users",
                        marketplace_domain::alliance::CreditsTo::Members => "members",
                    }
                    .to_string()
                }),
            }
        })
        .collect();
    let body = MemberStatement {
        alliance_id: id,
        alliance_name: row.name,
        member,
        period: period.to_string(),
        alliance_income: settled.income,
        carried_in: settled.carried_in,
        carried: settled.carried,
        nodes,
        share: share.share,
        penalty: share.penalty,
        paid: share.paid,
        paid_to: share.paid_to,
        transfer: share.transfer,
        settled_at: settled.settled_at,
    };
    let wants_pdf = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/pdf"));
    if wants_pdf {
        let mut response = render(&body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/pdf"),
        );
        return Ok(response);
    }
    Ok(Json(body).into_response())
}

/// TFT with seven decimals, from decimal base units.
fn tft(units: &str) -> String {
    let v: u128 = units.parse().unwrap_or(0);
    format!("{}.{:07} TFT", v / 10_000_000, v % 10_000_000)
}

/// Printable ASCII only (the standard fonts' encoding), cut to `max`.
fn plain(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .take(max)
        .collect()
}

/// The statement's lines, in order.
pub fn lines(s: &MemberStatement) -> Vec<String> {
    let mut out = vec![
        format!(
            "Alliance statement {} - {}",
            s.period,
            plain(&s.alliance_name, 60)
        ),
        format!("Member: {}", plain(&s.member, 70)),
        format!("Alliance: {}", s.alliance_id),
        String::new(),
        format!("Alliance income: {}", tft(&s.alliance_income)),
        format!("Carried in: {}", tft(&s.carried_in)),
        format!("Carried to next month: {}", tft(&s.carried)),
        String::new(),
        "Your nodes (uptime, income, SLA credit):".to_string(),
    ];
    for n in &s.nodes {
        out.push(format!(
            "  node {}: {}.{:02}%  {}  credit {}{}",
            n.node_id,
            n.uptime_bps / 100,
            n.uptime_bps % 100,
            tft(&n.income),
            tft(&n.credit),
            n.credited_to
                .as_deref()
                .map(|t| format!(" to {t}"))
                .unwrap_or_default()
        ));
    }
    out.push(String::new());
    out.push(format!("Penalty: {}", tft(&s.penalty)));
    out.push(format!("Your share: {}", tft(&s.share)));
    match (&s.paid, &s.paid_to, &s.transfer) {
        (Some(p), Some(to), Some(t)) => {
            out.push(format!("Paid: {} to {} (chain event {})", tft(p), to, t))
        }
        _ => out.push("Paid: not yet (link a payout account)".to_string()),
    }
    out.push(format!(
        "Settled: {}",
        s.settled_at.format("%Y-%m-%d %H:%M UTC")
    ));
    out
}

/// The statement as a PDF (A4 pages of 60 lines, Helvetica).
pub fn render(s: &MemberStatement) -> Vec<u8> {
    let lines = lines(s);
    let pages: Vec<&[String]> = lines.chunks(60).collect();
    let mut pdf = Pdf::new();
    let (catalog, tree, font, info) = (Ref::new(1), Ref::new(2), Ref::new(3), Ref::new(4));
    let page_ref = |i: usize| Ref::new(5 + 2 * i as i32);
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids((0..pages.len()).map(page_ref))
        .count(pages.len() as i32);
    pdf.type1_font(font).base_font(Name(b"Helvetica"));
    let title = format!("Alliance statement {}", s.period);
    pdf.document_info(info)
        .title(TextStr(&title))
        .producer(TextStr("ThreeFold marketplace"));
    for (i, chunk) in pages.iter().enumerate() {
        let content_ref = Ref::new(page_ref(i).get() + 1);
        let mut page = pdf.page(page_ref(i));
        page.media_box(Rect::new(0.0, 0.0, 595.0, 842.0));
        page.parent(tree);
        page.contents(content_ref);
        page.resources().fonts().pair(Name(b"F1"), font);
        page.finish();
        let mut content = Content::new();
        let mut y = 800.0;
        for line in chunk.iter() {
            content.begin_text();
            content.set_font(Name(b"F1"), 10.0);
            content.next_line(50.0, y);
            content.show(Str(line.as_bytes()));
            content.end_text();
            y -= 13.0;
        }
        pdf.stream(content_ref, &content.finish().into_vec());
    }
    pdf.finish()
}
