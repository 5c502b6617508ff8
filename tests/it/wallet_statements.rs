//! Monthly statements of a wallet: JSON totals and the PDF download.

use super::*;

#[tokio::test]
async fn a_months_statement_adds_up_as_json_and_downloads_as_a_pdf() {
    use crate::openapi::{assert_fits, response_schema};
    let app = stripe_app().await;
    // No wallet yet: 404, like the other wallet reads of a missing wallet.
    expect_problem(
        app.get("/v1/wallet/statements/2026-11", &alice()).await,
        404,
    )
    .await;
    paid_top_up(&app, &alice()).await;
    let w = wallet(&app, &alice()).await;
    // The month the credit fell in (UTC), as the view dates it.
    let month = w["ledger"][0]["at"].as_str().expect("at")[..7].to_string();
    let r = debit(&app, "alice", "support-1", 100 * 10_000_000).await;
    assert_eq!(r.status(), 202);
    let version = r.json::<Value>().await.expect("json")["version"]
        .as_i64()
        .expect("version");
    let path = format!("/v1/wallet/statements/{month}?min_version={version}");

    let r = app.get(&path, &alice()).await;
    assert_eq!(r.status(), 200);
    let s: Value = r.json().await.expect("json");
    assert_eq!(s["wallet_id"], "alice");
    assert_eq!(s["month"], month.as_str());
    assert_eq!(s["opening_balance_tft_units"], 0);
    assert_eq!(s["total_credits_tft_units"], TFT_FOR_2500_CENTS);
    assert_eq!(s["credits"][0]["kind"], "top_up");
    assert_eq!(s["total_other_debits_tft_units"], 100 * 10_000_000);
    assert_eq!(s["other_debits"][0]["kind"], "debit");
    assert_eq!(s["other_debits"][0]["reference"], "support-1");
    assert_eq!(s["total_bills_tft_units"], 0);
    assert_eq!(
        s["closing_balance_tft_units"],
        TFT_FOR_2500_CENTS - 100 * 10_000_000
    );
    let doc: Value = app
        .client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    assert_fits(
        &doc,
        response_schema(&doc, "/v1/wallet/statements/{month}", "get", 200),
        &s,
    );

    // The same path as a PDF download.
    let r = app
        .client
        .get(app.url(&path))
        .bearer_auth(alice())
        .header("accept", "application/pdf")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    assert_eq!(
        r.headers()["content-disposition"],
        format!("attachment; filename=\"statement-{month}.pdf\"").as_str()
    );
    let pdf = r.bytes().await.expect("bytes");
    assert!(pdf.starts_with(b"%PDF-"));
    assert!(pdf.trim_ascii_end().ends_with(b"%%EOF"));

    // A month long before the wallet opened, and one to come.
    let before: Value = app
        .get("/v1/wallet/statements/2001-01", &alice())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(before["opening_balance_tft_units"], 0);
    assert_eq!(before["closing_balance_tft_units"], 0);
    let after: Value = app
        .get("/v1/wallet/statements/2999-12", &alice())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        after["opening_balance_tft_units"],
        s["closing_balance_tft_units"]
    );
    assert!(after["credits"].as_array().is_some_and(Vec::is_empty));

    // A malformed month: 400.
    for bad in ["2026-13", "2026-1", "november"] {
        let body = expect_problem(
            app.get(&format!("/v1/wallet/statements/{bad}"), &alice())
                .await,
            400,
        )
        .await;
        assert_eq!(body["type"], "/problems/malformed-request");
    }

    // Operators read any wallet's; another user reads none but their own.
    let any = format!("/v1/wallets/alice/statements/{month}");
    let r = app.get(&any, &operator()).await;
    assert_eq!(r.status(), 200);
    let by_operator: Value = r.json().await.expect("json");
    assert_eq!(
        by_operator["closing_balance_tft_units"],
        s["closing_balance_tft_units"]
    );
    assert_eq!(app.get(&any, &alice()).await.status(), 200);
    expect_problem(app.get(&any, &bob()).await, 404).await;
    expect_problem(
        app.get(
            &format!("/v1/wallets/nobody/statements/{month}"),
            &operator(),
        )
        .await,
        404,
    )
    .await;
}
