//! Development helper: localstripe behind the same wrapper the tests use
//! (`tests/it/common/stripe.rs`), so `marketplace dev` can take card payments
//! without a Stripe account. localstripe alone omits fields the real API
//! always returns, which the marketplace's strict Stripe client refuses.
//!
//! ```sh
//! STRIPE_WEBHOOK_SECRET=whsec_dev cargo run --example localstripe
//! # prints STRIPE_API_BASE=http://127.0.0.1:PORT; then, in another shell:
//! STRIPE_SECRET_KEY=sk_test_dev STRIPE_API_BASE=http://127.0.0.1:PORT \
//!   STRIPE_WEBHOOK_SECRET=whsec_dev cargo run -- dev
//! ```
//!
//! `MARKETPLACE_WEBHOOK_URL` (default `http://127.0.0.1:8080/v1/webhooks/stripe`)
//! is where the signed webhooks go. localstripe is installed into
//! `$HOME/.cache/marketplace-localstripe` on first use.

#[allow(dead_code)]
#[path = "../tests/it/common/stripe.rs"]
mod stripe;

#[tokio::main]
async fn main() {
    let webhook = std::env::var("MARKETPLACE_WEBHOOK_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8080/v1/webhooks/stripe".into());
    let secret = std::env::var("STRIPE_WEBHOOK_SECRET").unwrap_or_else(|_| "whsec_dev".into());
    let ls = stripe::LocalStripe::start(webhook.clone(), &secret).await;
    println!("STRIPE_API_BASE={}", ls.base);
    println!("webhooks go to {webhook}, signed with STRIPE_WEBHOOK_SECRET; Ctrl-C stops");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    // Dropping it stops localstripe.
    drop(ls);
}
