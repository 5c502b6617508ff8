//! The browser's side of the localstripe wrapper, for the console's tests
//! (web/tests/): what a page's Stripe.js does against the real API.
//!
//! - `GET /js.stripe.com/v3/` is localstripe's test Stripe.js, passed
//!   through as JavaScript, with `confirmCardPayment` completed: localstripe's
//!   only authenticates a payment intent that already has its card, where
//!   Stripe.js pays one with the card of an Elements form or a saved card;
//! - that confirm (`POST /v1/payment_intents/{id}/confirm` with the
//!   publishable key and the client secret, as Stripe.js sends it) is done
//!   here as Stripe does it: the card becomes a PaymentMethod, set on the
//!   intent, which is confirmed (localstripe's own `payment_intent.succeeded`
//!   then reaches the app through the wrapper);
//! - cross-origin answers carry the CORS headers a page needs.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{fill, Inner, SECRET_KEY};

/// Appended to localstripe's Stripe.js (which defines `Stripe` and
/// `LOCALSTRIPE_BASE_API` at its top level).
const CONFIRM_CARD_PAYMENT: &str = r#"
;(() => {
  const localStripe = Stripe;
  Stripe = (apiKey) => {
    const stripe = localStripe(apiKey);
    const authenticate = stripe.confirmCardPayment;
    stripe.confirmCardPayment = async (clientSecret, data) => {
      const pm = data && data.payment_method;
      if (!pm) return authenticate(clientSecret, data);
      const pi = clientSecret.match(/^(pi_\w+)_secret_/)[1];
      const body = { key: apiKey, client_secret: clientSecret };
      if (typeof pm === 'string') body.payment_method = pm;
      else body.payment_method_data = { type: 'card', card: pm.card.value.card };
      const r = await fetch(`${LOCALSTRIPE_BASE_API}/v1/payment_intents/${pi}/confirm`, {
        method: 'POST', body: JSON.stringify(body),
      });
      const answer = await r.json().catch(() => ({}));
      if (r.status !== 200 || answer.error) return { error: answer.error || { message: `HTTP ${r.status}` } };
      if (answer.status === 'requires_action') return authenticate(clientSecret, data);
      if (answer.status === 'succeeded' || answer.status === 'processing') return { paymentIntent: answer };
      const failure = answer.last_payment_error;
      return { error: { message: (failure && failure.message) || `payment_intent has status ${answer.status}` } };
    };
    return stripe;
  };
})();
"#;

/// Answers what a browser asks that the wrapper does itself.
pub(super) async fn intercept(
    inner: &Inner,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Response> {
    if *method == Method::OPTIONS {
        return Some(allow_origin(
            headers,
            StatusCode::NO_CONTENT.into_response(),
        ));
    }
    if *method == Method::GET && path.starts_with("/js.stripe.com/") {
        let script = match inner
            .http
            .get(format!("{}{path}", inner.upstream))
            .send()
            .await
        {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => return Some((StatusCode::BAD_GATEWAY, e.to_string()).into_response()),
        };
        return Some(
            (
                [("content-type", "application/javascript")],
                format!("{script}{CONFIRM_CARD_PAYMENT}"),
            )
                .into_response(),
        );
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let (&Method::POST, ["v1", "payment_intents", id, "confirm"]) = (method, parts.as_slice()) {
        let sent: Value = serde_json::from_slice(body).ok()?;
        if !sent["key"].as_str().is_some_and(|k| k.starts_with("pk_")) {
            return None;
        }
        let answer = confirm(inner, id, &sent).await;
        return Some(allow_origin(headers, answer));
    }
    None
}

async fn call(inner: &Inner, method: Method, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    match inner
        .http
        .request(method, format!("{}{path}", inner.upstream))
        .basic_auth(SECRET_KEY, Some(""))
        .form(form)
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (502, json!({ "error": { "message": e.to_string() } })),
    }
}

fn json_answer(status: u16, value: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        [("content-type", "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// A browser's confirm: the client secret must be the intent's, as Stripe checks.
async fn confirm(inner: &Inner, id: &str, sent: &Value) -> Response {
    let (status, intent) = call(
        inner,
        Method::GET,
        &format!("/v1/payment_intents/{id}"),
        &[],
    )
    .await;
    if status != 200 || intent["client_secret"] != sent["client_secret"] {
        return json_answer(
            401,
            json!({ "error": { "type": "invalid_request_error", "message": "No such payment_intent or client secret." } }),
        );
    }
    let payment_method = match sent["payment_method"].as_str() {
        Some(pm) => pm.to_string(),
        None => {
            let card = &sent["payment_method_data"]["card"];
            let text = |k: &str| card[k].as_str().unwrap_or_default().to_string();
            let (number, month, year, cvc) = (
                text("number"),
                text("exp_month"),
                text("exp_year"),
                text("cvc"),
            );
            let (status, pm) = call(
                inner,
                Method::POST,
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", &number),
                    ("card[exp_month]", &month),
                    ("card[exp_year]", &year),
                    ("card[cvc]", &cvc),
                ],
            )
            .await;
            match pm["id"].as_str() {
                Some(id) if status < 300 => id.to_string(),
                _ => return json_answer(status.max(400), pm),
            }
        }
    };
    let (status, set) = call(
        inner,
        Method::POST,
        &format!("/v1/payment_intents/{id}"),
        &[("payment_method", &payment_method)],
    )
    .await;
    if status >= 300 {
        return json_answer(status, set);
    }
    let (status, mut confirmed) = call(
        inner,
        Method::POST,
        &format!("/v1/payment_intents/{id}/confirm"),
        &[],
    )
    .await;
    if status < 300 {
        fill(&mut confirmed);
    }
    json_answer(status, confirmed)
}

/// The CORS headers for a page on another origin (the console's).
pub(super) fn allow_origin(request: &HeaderMap, mut response: Response) -> Response {
    if let Some(origin) = request.get("origin") {
        let h = response.headers_mut();
        h.insert("access-control-allow-origin", origin.clone());
        h.insert(
            "access-control-allow-headers",
            HeaderValue::from_static("Content-Type, Accept, Authorization"),
        );
        h.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("GET, POST, OPTIONS, DELETE"),
        );
    }
    response
}
