//! Monthly statements of a wallet: one UTC calendar month of its ledger,
//! as JSON or, when the caller's `Accept` asks for `application/pdf`, as a
//! PDF to download. Computed on read from the wallet view (the domain's
//! `Statement`); nothing is stored, so a statement of a past month never
//! changes unless the ledger it sums does (a bill recorded late, dated in
//! that month by the chain).
//!
//! One path serves both formats, negotiated on `Accept`: a statement is one
//! resource, and a `.pdf` path would need its own route and document entry.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use marketplace_domain::wallet::{
    EntryKind, Statement, StatementLine, StatementMonth, StripeId, WalletState,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::reads::{entry_kind, read_wallet_row, ReadParams};
use super::statement_pdf;
use crate::auth::{AsUser, AsUserOrOperator};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::AppState;

/// A credit or non-bill debit of the month.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementLineBody {
    /// `top_up`, `debit`, `refund` or `dispute`.
    pub kind: String,
    /// The payment intent, debit, refund or dispute id.
    pub reference: String,
    /// When.
    pub at: DateTime<Utc>,
    /// TFT base units credited (credits) or taken (debits): positive.
    pub amount_tft_units: i64,
    /// Stripe's receipt, for top-ups.
    pub receipt_url: Option<String>,
}

/// A contract's bills in the month.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContractBillsBody {
    /// The chain contract.
    pub contract_id: u64,
    /// How many bills.
    pub bills: u64,
    /// TFT base units they took.
    pub total_tft_units: i64,
}

/// A deployment's bills in the month.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentBillsBody {
    /// The deployment, or `contract-<id>` for a contract billed without one.
    pub reference: String,
    /// Its contracts, by contract id.
    pub contracts: Vec<ContractBillsBody>,
    /// TFT base units its contracts took.
    pub total_tft_units: i64,
}

/// A wallet's statement of one calendar month (UTC). All amounts are TFT
/// base units (1 TFT = 10^7); `opening + credits - bills - other debits =
/// closing`, exactly.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementBody {
    /// The wallet's id (the owner's subject).
    pub wallet_id: String,
    /// The month, `YYYY-MM`.
    #[schema(example = "2026-11")]
    pub month: String,
    /// Its first instant (the 1st, 00:00 UTC).
    pub period_start: DateTime<Utc>,
    /// The first instant after it (next month's 1st, 00:00 UTC).
    pub period_end: DateTime<Utc>,
    /// When this statement was computed.
    pub generated_at: DateTime<Utc>,
    /// The balance when the month began: the ledger's sum before it.
    pub opening_balance_tft_units: i64,
    /// Top-ups credited in the month, oldest first.
    pub credits: Vec<StatementLineBody>,
    /// The chain's bills in the month, by deployment, then contract.
    pub bills: Vec<DeploymentBillsBody>,
    /// Debits, refunds and disputes in the month, oldest first.
    pub other_debits: Vec<StatementLineBody>,
    /// Sum of the credits.
    pub total_credits_tft_units: i64,
    /// Sum of the bills.
    pub total_bills_tft_units: i64,
    /// Sum of the other debits.
    pub total_other_debits_tft_units: i64,
    /// The balance when the month ended: the ledger's sum up to its end.
    pub closing_balance_tft_units: i64,
}

/// A statement as a PDF document.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct StatementPdf(Vec<u8>);

impl IntoResponse for StatementPdf {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pdf"),
            )],
            self.0,
        )
            .into_response()
    }
}

/// An amount for the API. Every real balance fits (the TFT supply is about
/// 4 * 10^16 base units); one that does not is a bug to report, not a
/// figure to clip.
fn units(amount: i128) -> Result<i64, ApiError> {
    i64::try_from(amount)
        .map_err(|_| ApiError::Internal(format!("statement amount {amount} out of range")))
}

fn line_body(s: &WalletState, l: &StatementLine) -> Result<StatementLineBody, ApiError> {
    Ok(StatementLineBody {
        kind: entry_kind(l.kind).to_string(),
        reference: l.reference.clone(),
        at: l.at,
        amount_tft_units: units(l.amount)?,
        receipt_url: match l.kind {
            EntryKind::TopUp => StripeId::new("reference", &l.reference)
                .ok()
                .and_then(|pi| s.top_up(&pi))
                .and_then(|t| t.receipt_url.as_ref())
                .map(|r| r.as_str().to_string()),
            _ => None,
        },
    })
}

fn statement_body(
    wallet_id: &str,
    s: &WalletState,
    st: &Statement,
    generated_at: DateTime<Utc>,
) -> Result<StatementBody, ApiError> {
    let lines = |lines: &[StatementLine]| {
        lines
            .iter()
            .map(|l| line_body(s, l))
            .collect::<Result<Vec<_>, _>>()
    };
    let bills = st
        .bills
        .iter()
        .map(|d| {
            Ok(DeploymentBillsBody {
                reference: d.reference.clone(),
                contracts: d
                    .contracts
                    .iter()
                    .map(|c| {
                        Ok(ContractBillsBody {
                            contract_id: c.contract_id,
                            bills: c.count,
                            total_tft_units: units(c.total)?,
                        })
                    })
                    .collect::<Result<_, ApiError>>()?,
                total_tft_units: units(d.total)?,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(StatementBody {
        wallet_id: wallet_id.to_string(),
        month: st.month.to_string(),
        period_start: st.month.start(),
        period_end: st.month.end(),
        generated_at,
        opening_balance_tft_units: units(st.opening_balance)?,
        credits: lines(&st.credits)?,
        bills,
        other_debits: lines(&st.other_debits)?,
        total_credits_tft_units: units(st.total_credits)?,
        total_bills_tft_units: units(st.total_bills)?,
        total_other_debits_tft_units: units(st.total_other_debits)?,
        closing_balance_tft_units: units(st.closing_balance)?,
    })
}

/// Whether the caller asked for the PDF: `application/pdf` in `Accept`
/// with a quality above that of JSON (`application/json`,
/// `application/*` or `*/*`), or equal to it when JSON is only matched by
/// a wildcard. Without an `Accept`, JSON.
fn wants_pdf(headers: &HeaderMap) -> bool {
    let (mut pdf, mut json, mut json_exact) = (0.0_f32, 0.0_f32, false);
    let mut any = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            if media.is_empty() {
                continue;
            }
            any = true;
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/pdf" => pdf = pdf.max(q),
                "application/json" => {
                    json = json.max(q);
                    json_exact = true;
                }
                "application/*" | "*/*" => json = json.max(q),
                _ => {}
            }
        }
    }
    any && pdf > 0.0 && (pdf > json || (pdf == json && !json_exact))
}

/// The month in the path; a malformed one is 400, as a read's malformed
/// parameter is (`/v1/wallet/activity`'s cursor), checked before the read.
fn parse_month(text: &str) -> Result<StatementMonth, ApiError> {
    StatementMonth::parse(text)
        .map_err(|e| ApiError::BadRequest(format!("{}: {}", e.field, e.reason)))
}

/// The statement in the format asked for.
fn answer(
    wallet_id: &str,
    month: StatementMonth,
    row: Option<marketplace_projections::wallets::WalletRow>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let row = row.ok_or(ApiError::NotFound)?;
    let s = row.wallet.state().ok_or(ApiError::NotFound)?;
    let statement = Statement::of(s.ledger(), month);
    let generated_at = Utc::now();
    let mut response = if wants_pdf(headers) {
        let pdf = StatementPdf(statement_pdf::render(&statement, wallet_id, generated_at));
        let disposition = format!("attachment; filename=\"statement-{month}.pdf\"");
        let mut response = pdf.into_response();
        response.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&disposition).map_err(|e| ApiError::Internal(e.to_string()))?,
        );
        response
    } else {
        Json(statement_body(wallet_id, s, &statement, generated_at)?).into_response()
    };
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    Ok(response)
}

/// The caller's statement of a calendar month (UTC): opening balance,
/// credits, bills per deployment and contract, other debits, totals and
/// closing balance, in TFT base units. JSON by default; send
/// `Accept: application/pdf` for a PDF (`Content-Disposition: attachment;
/// filename="statement-YYYY-MM.pdf"`). A month before the wallet opened or
/// still to come is stated too (no lines; the balance carried through).
#[utoipa::path(
    get, path = "/v1/wallet/statements/{month}", tag = "wallet",
    params(
        ("month" = String, Path, description = "The calendar month (UTC), YYYY-MM", example = "2026-11", pattern = r"^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-(0[1-9]|1[0-2])$"),
        ReadParams
    ),
    responses(
        (status = 200, description = "The statement: JSON, or a PDF when `Accept` asks for application/pdf",
            content((StatementBody = "application/json"), (StatementPdf = "application/pdf")),
            headers(("Content-Disposition" = String, description = "With the PDF: attachment; filename=\"statement-YYYY-MM.pdf\""))),
        (status = 400, body = Problem, description = "The month is not YYYY-MM, or min_version is malformed"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "The caller has no wallet yet"),
        (status = 503, body = Problem, description = "The view did not reach min_version in time")
    ),
    security(("bearer" = []))
)]
pub async fn get_statement(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ApiPath(month): ApiPath<String>,
    ApiQuery(params): ApiQuery<ReadParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let month = parse_month(&month)?;
    let row = read_wallet_row(&state, &actor.subject, params.min_version.unwrap_or(0)).await?;
    answer(&actor.subject, month, row, &headers)
}

/// Any wallet's statement of a calendar month (UTC), as
/// `GET /v1/wallet/statements/{month}` answers it: an operator reads every
/// wallet's, a user only their own (another user's answers 404). JSON by
/// default; `Accept: application/pdf` for the PDF.
#[utoipa::path(
    get, path = "/v1/wallets/{wallet_id}/statements/{month}", tag = "wallet",
    params(
        ("wallet_id" = String, Path, description = "The owner's subject"),
        ("month" = String, Path, description = "The calendar month (UTC), YYYY-MM", example = "2026-11", pattern = r"^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-(0[1-9]|1[0-2])$"),
        ReadParams
    ),
    responses(
        (status = 200, description = "The statement: JSON, or a PDF when `Accept` asks for application/pdf",
            content((StatementBody = "application/json"), (StatementPdf = "application/pdf")),
            headers(("Content-Disposition" = String, description = "With the PDF: attachment; filename=\"statement-YYYY-MM.pdf\""))),
        (status = 400, body = Problem, description = "The month is not YYYY-MM, or min_version is malformed"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "No such wallet, or another user's"),
        (status = 503, body = Problem, description = "The view did not reach min_version in time")
    ),
    security(("bearer" = []))
)]
pub async fn get_any_statement(
    State(state): State<AppState>,
    AsUserOrOperator(actor): AsUserOrOperator,
    ApiPath((wallet_id, month)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<ReadParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !actor.is_operator() && actor.subject != wallet_id {
        return Err(ApiError::NotFound);
    }
    let month = parse_month(&month)?;
    let row = read_wallet_row(&state, &wallet_id, params.min_version.unwrap_or(0)).await?;
    answer(&wallet_id, month, row, &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn the_pdf_is_answered_only_when_accept_prefers_it() {
        assert!(!wants_pdf(&HeaderMap::new()));
        assert!(wants_pdf(&accept(&["application/pdf"])));
        assert!(wants_pdf(&accept(&["application/pdf, */*;q=0.1"])));
        assert!(wants_pdf(&accept(&["application/pdf, */*"])));
        assert!(wants_pdf(&accept(&[
            "application/json;q=0.5, application/pdf"
        ])));
        assert!(!wants_pdf(&accept(&["application/json"])));
        assert!(!wants_pdf(&accept(&["*/*"])));
        assert!(!wants_pdf(&accept(&["application/json, application/pdf"])));
        assert!(!wants_pdf(&accept(&["application/pdf;q=0"])));
        assert!(!wants_pdf(&accept(&[
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ])));
    }
}
