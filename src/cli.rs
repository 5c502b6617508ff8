//! Command-line and environment configuration. Every flag has an
//! environment variable; a wrong value stops start-up with a message that
//! names it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

/// The ThreeFold Grid cloud marketplace backend.
#[derive(Debug, Parser)]
#[command(name = "marketplace", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one process on a private PostgreSQL (or DATABASE_URL), with dev tokens.
    Dev(DevArgs),
    /// The HTTP API (production mode: tokens from the configured JWKS only).
    Serve(ServeArgs),
    /// The projection runners: tailing the event store, or as Kafka consumer groups.
    Project(ProjectArgs),
    /// Publish every committed event to Kafka, in commit order (one relay publishes at a time).
    Relay(RelayArgs),
    /// List or retry the events projections could not apply.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
    /// Operators' audit of the event store.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Rebuild a projection from the whole store, aside, and swap it in (reads keep working).
    Replay(ReplayArgs),
    /// Apply database migrations and exit.
    Migrate(DbArgs),
    /// Print a token the dev server accepts.
    Token(TokenArgs),
    /// The grid sync worker: keeps the node catalog in step with a grid proxy.
    Sync(SyncArgs),
    /// A grid SIMULATOR: a grid proxy with a made-up catalog, a simulated TFChain and simulated ZOS nodes on one URL (development and tests only).
    GridSim(GridSimArgs),
    /// The payment workers alone: Stripe inbox, auto top-up, runway alerts.
    Payments(PaymentsWorkerArgs),
    /// The provisioning manager and the treasury's transfers alone.
    Provision(ProvisionArgs),
    /// The chain-event follower alone: bills, grace periods, uptime and the TFT price from TFChain.
    FollowChain(FollowChainArgs),
    /// Print the API's OpenAPI document as JSON (for the console's typed client).
    #[command(hide = true)]
    Openapi,
}

/// `marketplace follow-chain`.
#[derive(Debug, Clone, Args)]
pub struct FollowChainArgs {
    /// Database.
    #[command(flatten)]
    pub db: DbArgs,
    /// TFChain's endpoint (today: a TFChain SIMULATOR's HTTP API).
    #[arg(long, env = "TFCHAIN_URL", value_name = "TFCHAIN_URL")]
    pub chain_url: String,
    /// The follower's settings.
    #[command(flatten)]
    pub follower: FollowerArgs,
}

/// The chain-event follower's settings.
#[derive(Debug, Clone, Args)]
pub struct FollowerArgs {
    /// Chain events read and applied at a time.
    #[arg(long, env = "CHAIN_FOLLOWER_BATCH", value_name = "CHAIN_FOLLOWER_BATCH", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub follower_batch: u32,
    /// Milliseconds between looks for new chain events once caught up.
    #[arg(long, env = "CHAIN_FOLLOWER_POLL_MS", value_name = "CHAIN_FOLLOWER_POLL_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub follower_poll_ms: u64,
    /// TFChain's GraphQL indexer (tfchain_graphql), to backfill from after downtime longer than the chain keeps events (`dev`: its simulator's).
    #[arg(long, env = "TFCHAIN_INDEXER_URL", value_name = "TFCHAIN_INDEXER_URL")]
    pub indexer_url: Option<String>,
    /// Seconds between reconciliations of custodial ledgers with their chain accounts.
    #[arg(long, env = "CHAIN_RECONCILE_SECS", value_name = "CHAIN_RECONCILE_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub reconcile_secs: u64,
}

impl FollowerArgs {
    /// The follower's options.
    pub fn options(&self) -> marketplace_workers::chain::FollowerOptions {
        marketplace_workers::chain::FollowerOptions {
            batch: self.follower_batch,
            poll: std::time::Duration::from_millis(self.follower_poll_ms),
            ..Default::default()
        }
    }
}

/// The auditor's settings.
#[derive(Debug, Clone, Args)]
pub struct AuditorArgs {
    /// Seconds between global audit checkpoints over the events committed since the last.
    #[arg(long, env = "AUDIT_CHECKPOINT_SECS", value_name = "AUDIT_CHECKPOINT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub audit_checkpoint_secs: u64,
    /// Seconds between verifications of the whole event store (hash chains, audit index, checkpoints).
    #[arg(long, env = "AUDIT_VERIFY_SECS", value_name = "AUDIT_VERIFY_SECS", default_value_t = 3_600, value_parser = clap::value_parser!(u64).range(10..=604_800))]
    pub audit_verify_secs: u64,
}

/// `marketplace provision`.
#[derive(Debug, Clone, Args)]
pub struct ProvisionArgs {
    /// Database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Provisioning.
    #[command(flatten)]
    pub provisioning: ProvisioningArgs,
    /// The chain-event follower.
    #[command(flatten)]
    pub follower: FollowerArgs,
}

/// The chain, the nodes and the custodial keys: provisioning's settings.
#[derive(Debug, Clone, Args)]
pub struct ProvisioningArgs {
    /// TFChain's endpoint (today: a TFChain SIMULATOR's HTTP API; `dev` uses its own simulator when unset).
    #[arg(long, env = "TFCHAIN_URL", value_name = "TFCHAIN_URL")]
    pub chain_url: Option<String>,
    /// The nodes' RMB endpoint (default: TFCHAIN_URL, where the simulator serves both).
    #[arg(long, env = "RMB_URL", value_name = "RMB_URL")]
    pub rmb_url: Option<String>,
    /// The master secret custodial accounts derive from: 0x and 64 hex digits (dev mode keeps one in its data dir when unset).
    #[arg(long, env = "MARKETPLACE_CHAIN_SEED", value_name = "MARKETPLACE_CHAIN_SEED", hide_env_values = true, value_parser = parse_secret)]
    pub chain_seed: Option<SecretString>,
    /// Deployments provisioned at once.
    #[arg(long, env = "PROVISIONING_CONCURRENCY", value_name = "PROVISIONING_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1_024))]
    pub concurrency: u32,
    /// Nodes tried before a deployment fails.
    #[arg(long, env = "PROVISIONING_MAX_NODES", value_name = "PROVISIONING_MAX_NODES", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub max_nodes: u32,
    /// Seconds workloads may stay short of ok (on the chain's clock) before the node is given up.
    #[arg(long, env = "PROVISIONING_STALL_SECS", value_name = "PROVISIONING_STALL_SECS", default_value_t = 240, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub stall_secs: u64,
    /// Seconds a job's lease lasts (another process takes a crashed one's jobs over after it).
    #[arg(long, env = "PROVISIONING_LEASE_SECS", value_name = "PROVISIONING_LEASE_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub lease_secs: u64,
    /// Seconds between rounds of the alliance workers (farm creation, monthly settlement and payouts).
    #[arg(long, env = "ALLIANCE_SETTLEMENT_INTERVAL_SECS", value_name = "ALLIANCE_SETTLEMENT_INTERVAL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub alliance_interval_secs: u64,
    /// Seconds of chain time after a month's end before it is settled (at least 4,800: the 80-minute rule needs the reports after it).
    #[arg(long, env = "ALLIANCE_SETTLE_AFTER_SECS", value_name = "ALLIANCE_SETTLE_AFTER_SECS", default_value_t = 7_200, value_parser = clap::value_parser!(u64).range(4_800..=2_592_000))]
    pub alliance_settle_after_secs: u64,
}

/// `marketplace payments`.
#[derive(Debug, Clone, Args)]
pub struct PaymentsWorkerArgs {
    /// Database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Stripe and the workers' settings.
    #[command(flatten)]
    pub payments: PaymentsArgs,
    /// TFT price in USD that automatic top-ups are quoted at (up to 7 decimals).
    #[arg(long, env = "MARKETPLACE_TFT_PRICE_USD", value_name = "MARKETPLACE_TFT_PRICE_USD", default_value = "0.01", value_parser = parse_price)]
    pub tft_price_usd: u64,
}

/// Database connection.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL connection URL (a password in it is never printed).
    #[arg(long, env = "DATABASE_URL", value_name = "DATABASE_URL", hide_env_values = true, value_parser = parse_secret)]
    pub database_url: SecretString,
    /// Connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", value_name = "DATABASE_MAX_CONNECTIONS", default_value_t = 32, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub database_max_connections: u32,
}

/// HTTP settings shared by `dev` and `serve`.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "MARKETPLACE_LISTEN",
        value_name = "MARKETPLACE_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MARKETPLACE_BODY_LIMIT", value_name = "MARKETPLACE_BODY_LIMIT", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u64).range(1024..=16 * 1024 * 1024))]
    pub body_limit: u64,
    /// How long a read with `min_version` waits for its view, in milliseconds.
    #[arg(long, env = "MARKETPLACE_READ_WAIT_MS", value_name = "MARKETPLACE_READ_WAIT_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(0..=30_000))]
    pub read_wait_ms: u64,
    /// TFT price in USD that quotes convert at (up to 7 decimals), until the chain price feed lands.
    #[arg(long, env = "MARKETPLACE_TFT_PRICE_USD", value_name = "MARKETPLACE_TFT_PRICE_USD", default_value = "0.01", value_parser = parse_price)]
    pub tft_price_usd: u64,
    /// The signing secret of the Stripe webhook endpoint (whsec_…); unset: payments are not configured.
    #[arg(
        long,
        env = "STRIPE_WEBHOOK_SECRET",
        value_name = "STRIPE_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    #[arg(value_parser = parse_secret)]
    pub stripe_webhook_secret: Option<SecretString>,
    /// Rate limits.
    #[command(flatten)]
    pub rate_limit: RateLimitArgs,
}

/// Rate limits (docs/rate_limits.md), shared by `dev` and `serve`: each
/// budget is a sustained rate a minute and a burst above it.
#[derive(Debug, Clone, Args)]
pub struct RateLimitArgs {
    /// Limit requests at all (`false`: nothing is limited or counted).
    #[arg(long, env = "RATE_LIMIT_ENABLED", value_name = "RATE_LIMIT_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub rate_limit_enabled: bool,
    /// Commands (POST, PATCH, PUT, DELETE) a minute per token subject.
    #[arg(long, env = "RATE_LIMIT_COMMANDS_PER_MINUTE", value_name = "RATE_LIMIT_COMMANDS_PER_MINUTE", default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub commands_per_minute: u32,
    /// Commands a subject may send at once.
    #[arg(long, env = "RATE_LIMIT_COMMANDS_BURST", value_name = "RATE_LIMIT_COMMANDS_BURST", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub commands_burst: u32,
    /// Reads (every other method) a minute per token subject.
    #[arg(long, env = "RATE_LIMIT_READS_PER_MINUTE", value_name = "RATE_LIMIT_READS_PER_MINUTE", default_value_t = 1_200, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub reads_per_minute: u32,
    /// Reads a subject may send at once.
    #[arg(long, env = "RATE_LIMIT_READS_BURST", value_name = "RATE_LIMIT_READS_BURST", default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub reads_burst: u32,
    /// Requests without a valid token a minute per client address.
    #[arg(long, env = "RATE_LIMIT_ANONYMOUS_PER_MINUTE", value_name = "RATE_LIMIT_ANONYMOUS_PER_MINUTE", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub anonymous_per_minute: u32,
    /// Requests without a valid token an address may send at once.
    #[arg(long, env = "RATE_LIMIT_ANONYMOUS_BURST", value_name = "RATE_LIMIT_ANONYMOUS_BURST", default_value_t = 150, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub anonymous_burst: u32,
    /// Stripe webhook deliveries a minute per client address.
    #[arg(long, env = "RATE_LIMIT_WEBHOOK_PER_MINUTE", value_name = "RATE_LIMIT_WEBHOOK_PER_MINUTE", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub webhook_per_minute: u32,
    /// Stripe webhook deliveries an address may send at once.
    #[arg(long, env = "RATE_LIMIT_WEBHOOK_BURST", value_name = "RATE_LIMIT_WEBHOOK_BURST", default_value_t = 150, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub webhook_burst: u32,
    /// Most tokens a replica leases from the shared bucket at once for one key (1: every request asks PostgreSQL).
    #[arg(long, env = "RATE_LIMIT_LEASE_MAX", value_name = "RATE_LIMIT_LEASE_MAX", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub lease_max: u32,
    /// Milliseconds leased tokens stay spendable (the bound on overshoot across replicas: rate × this).
    #[arg(long, env = "RATE_LIMIT_LEASE_MS", value_name = "RATE_LIMIT_LEASE_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub lease_ms: u64,
    /// Proxies (addresses or networks, comma-separated) whose X-Forwarded-For names the client: its first address is used instead of the peer's.
    #[arg(
        long,
        env = "MARKETPLACE_TRUSTED_PROXIES",
        value_name = "MARKETPLACE_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<marketplace_api::rate_limit::TrustedProxy>,
}

impl RateLimitArgs {
    /// The limiter's configuration.
    pub fn config(&self) -> marketplace_api::rate_limit::RateLimitConfig {
        use marketplace_api::rate_limit::{Budget, RateLimitConfig};
        RateLimitConfig {
            enabled: self.rate_limit_enabled,
            commands: Budget::new(self.commands_per_minute, self.commands_burst),
            reads: Budget::new(self.reads_per_minute, self.reads_burst),
            anonymous: Budget::new(self.anonymous_per_minute, self.anonymous_burst),
            webhook: Budget::new(self.webhook_per_minute, self.webhook_burst),
            lease_max: self.lease_max,
            lease_ttl: std::time::Duration::from_millis(self.lease_ms),
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }
}

/// Where `serve` exposes `/metrics`: on its own address, behind a token,
/// or both; with neither, not at all.
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Serve `/metrics` on this address only (not on MARKETPLACE_LISTEN).
    #[arg(long, env = "METRICS_ADDR", value_name = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Answer `/metrics` only to `Authorization: Bearer <this>`; on MARKETPLACE_LISTEN unless METRICS_ADDR is set.
    #[arg(long, env = "METRICS_TOKEN", value_name = "METRICS_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub metrics_token: Option<SecretString>,
}

/// Outgoing mail, shared by `dev` and `serve`.
#[derive(Debug, Clone, Args)]
pub struct MailArgs {
    /// The SMTP server: smtp://host:port (plain), smtp://user:pass@host:587?tls=required (STARTTLS)
    /// or smtps://user:pass@host:465 (TLS); its password is never printed. Unset: `serve` sends no
    /// mail (codes answer 503), `dev` writes each message to its log.
    #[arg(long, env = "SMTP_URL", value_name = "SMTP_URL", hide_env_values = true, value_parser = parse_secret)]
    pub smtp_url: Option<SecretString>,
    /// The sender of outgoing mail (`address` or `Name <address>`); required with SMTP_URL in `serve`.
    #[arg(long, env = "MAIL_FROM", value_name = "MAIL_FROM")]
    pub mail_from: Option<String>,
    /// Minutes a contact-email verification code is valid.
    #[arg(long, env = "CONTACT_CODE_TTL_MINUTES", value_name = "CONTACT_CODE_TTL_MINUTES", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=1_440))]
    pub contact_code_ttl_minutes: u64,
}

/// Card payments (Stripe) and the payment workers, shared by `dev` and `serve`.
#[derive(Debug, Clone, Args)]
pub struct PaymentsArgs {
    /// Stripe secret API key (sk_…); unset: top-ups and cards answer 503 not-configured.
    #[arg(
        long,
        env = "STRIPE_SECRET_KEY",
        value_name = "STRIPE_SECRET_KEY",
        hide_env_values = true
    )]
    #[arg(value_parser = parse_secret)]
    pub stripe_secret_key: Option<SecretString>,
    /// Stripe API base URL; unset: the real Stripe API. Tests and dev point it at localstripe.
    #[arg(long, env = "STRIPE_API_BASE", value_name = "STRIPE_API_BASE")]
    pub stripe_api_base: Option<String>,
    /// Stripe publishable key (pk_…) the console's card form loads Stripe.js with; unset in dev with STRIPE_API_BASE: a test key.
    #[arg(
        long,
        env = "STRIPE_PUBLISHABLE_KEY",
        value_name = "STRIPE_PUBLISHABLE_KEY"
    )]
    pub stripe_publishable_key: Option<String>,
    /// How often the auto top-up worker looks for wallets below their threshold, in seconds.
    #[arg(long, env = "MARKETPLACE_AUTO_TOP_UP_INTERVAL_SECS", value_name = "MARKETPLACE_AUTO_TOP_UP_INTERVAL_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub auto_top_up_interval_secs: u64,
    /// After a refused automatic charge, hours before the card is charged again.
    #[arg(long, env = "MARKETPLACE_AUTO_TOP_UP_RETRY_HOURS", value_name = "MARKETPLACE_AUTO_TOP_UP_RETRY_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=720))]
    pub auto_top_up_retry_hours: u64,
    /// Runway thresholds in hours (comma-separated): crossing one below alerts the user once.
    #[arg(
        long,
        env = "MARKETPLACE_RUNWAY_ALERT_HOURS",
        value_name = "MARKETPLACE_RUNWAY_ALERT_HOURS",
        value_delimiter = ',',
        default_value = "72,24"
    )]
    pub runway_alert_hours: Vec<u64>,
    /// How often runways are measured, in seconds.
    #[arg(long, env = "MARKETPLACE_RUNWAY_INTERVAL_SECS", value_name = "MARKETPLACE_RUNWAY_INTERVAL_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub runway_interval_secs: u64,
}

/// Notification delivery (the notification process manager and its
/// webhook and email workers), shared by `dev` and `serve`.
#[derive(Debug, Clone, Args)]
pub struct NotifyArgs {
    /// The wait after a delivery's first failure, in milliseconds; doubled after each further one.
    #[arg(long, env = "MARKETPLACE_NOTIFY_RETRY_BASE_MS", value_name = "MARKETPLACE_NOTIFY_RETRY_BASE_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub notify_retry_base_ms: u64,
    /// The longest wait between two attempts at a delivery, in seconds.
    #[arg(long, env = "MARKETPLACE_NOTIFY_RETRY_MAX_SECS", value_name = "MARKETPLACE_NOTIFY_RETRY_MAX_SECS", default_value_t = 3_600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub notify_retry_max_secs: u64,
    /// How long a delivery is retried before it is marked failed, in seconds.
    #[arg(long, env = "MARKETPLACE_NOTIFY_RETRY_FOR_SECS", value_name = "MARKETPLACE_NOTIFY_RETRY_FOR_SECS", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub notify_retry_for_secs: u64,
    /// How long a delivery worker holds a leased delivery before another may take it over, in seconds.
    #[arg(long, env = "MARKETPLACE_NOTIFY_LEASE_SECS", value_name = "MARKETPLACE_NOTIFY_LEASE_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub notify_lease_secs: u64,
    /// A webhook request's timeout, in seconds.
    #[arg(long, env = "MARKETPLACE_WEBHOOK_TIMEOUT_SECS", value_name = "MARKETPLACE_WEBHOOK_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub webhook_timeout_secs: u64,
}

impl NotifyArgs {
    /// The delivery workers' options.
    pub fn options(&self) -> marketplace_workers::notify::DeliveryOptions {
        use std::time::Duration;
        marketplace_workers::notify::DeliveryOptions {
            lease: Duration::from_secs(self.notify_lease_secs),
            retry: marketplace_workers::notify::RetryPolicy {
                base: Duration::from_millis(self.notify_retry_base_ms),
                max: Duration::from_secs(self.notify_retry_max_secs),
                give_up_after: Duration::from_secs(self.notify_retry_for_secs),
            },
            webhook_timeout: Duration::from_secs(self.webhook_timeout_secs),
            ..Default::default()
        }
    }
}

/// A setting that is a secret (a key, or a URL that may hold a password):
/// kept wrapped so that `Debug` and logs print it redacted.
fn parse_secret(text: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(text.to_string()))
}

fn parse_price(text: &str) -> Result<u64, String> {
    match marketplace_domain::money::parse_decimal_units(text) {
        Some(units) if units > 0 => Ok(units),
        _ => Err(
            "expected a positive decimal number of USD with at most 7 decimals, like 0.0125".into(),
        ),
    }
}

/// `marketplace dev`.
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// Use this PostgreSQL instead of starting a private one.
    #[arg(long, env = "DATABASE_URL", value_name = "DATABASE_URL", hide_env_values = true, value_parser = parse_secret)]
    pub database_url: Option<SecretString>,
    /// Where dev mode keeps its PostgreSQL data and signing key.
    #[arg(
        long,
        env = "MARKETPLACE_DATA_DIR",
        value_name = "MARKETPLACE_DATA_DIR",
        default_value = ".marketplace"
    )]
    pub data_dir: PathBuf,
    /// HTTP settings.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Card payments.
    #[command(flatten)]
    pub payments: PaymentsArgs,
    /// Outgoing mail.
    #[command(flatten)]
    pub mail: MailArgs,
    /// Sync the node catalog from this grid proxy instead of the built-in simulator.
    #[arg(long, env = "GRID_PROXY_URL", value_name = "GRID_PROXY_URL")]
    pub grid_url: Option<String>,
    /// Seconds from one grid sync to the next (the first runs at start).
    #[arg(long, env = "GRID_SYNC_INTERVAL_SECS", value_name = "GRID_SYNC_INTERVAL_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub grid_sync_interval_secs: u64,
    /// Provisioning.
    #[command(flatten)]
    pub provisioning: ProvisioningArgs,
    /// The chain-event follower.
    #[command(flatten)]
    pub follower: FollowerArgs,
    /// Notification delivery.
    #[command(flatten)]
    pub notify: NotifyArgs,
    /// Audit checkpoints and verification.
    #[command(flatten)]
    pub auditor: AuditorArgs,
}

/// `marketplace sync`.
#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    /// Database.
    #[command(flatten)]
    pub db: DbArgs,
    /// The grid proxy to read (e.g. https://gridproxy.grid.tf).
    #[arg(long, env = "GRID_PROXY_URL", value_name = "GRID_PROXY_URL")]
    pub grid_url: String,
    /// Seconds from the start of one sync to the start of the next.
    #[arg(long, env = "GRID_SYNC_INTERVAL_SECS", value_name = "GRID_SYNC_INTERVAL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub interval_secs: u64,
    /// Nodes asked for per page of the grid proxy's /nodes.
    #[arg(long, env = "GRID_PAGE_SIZE", value_name = "GRID_PAGE_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub page_size: u32,
    /// Node commands in flight at once.
    #[arg(long, env = "GRID_SYNC_CONCURRENCY", value_name = "GRID_SYNC_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// Sync once and exit (non-zero if the proxy or the view cannot be read).
    #[arg(long)]
    pub once: bool,
}

/// `marketplace grid-sim`: the grid SIMULATOR (proxy, TFChain, ZOS nodes).
#[derive(Debug, Clone, Args)]
pub struct GridSimArgs {
    /// Address to serve the simulator on.
    #[arg(
        long,
        env = "GRID_SIM_LISTEN",
        value_name = "GRID_SIM_LISTEN",
        default_value = "127.0.0.1:8090"
    )]
    pub listen: SocketAddr,
    /// Start from this seed file (JSON: {"now", "farms", "nodes"} in the proxy's shapes); the built-in dev catalog when neither this nor --generate-nodes is given.
    #[arg(long, env = "GRID_SIM_SEED", value_name = "GRID_SIM_SEED", conflicts_with_all = ["generate_nodes", "generate_farms"])]
    pub seed: Option<PathBuf>,
    /// Generate a catalog of this many nodes instead.
    #[arg(long, env = "GRID_SIM_NODES", value_name = "GRID_SIM_NODES", value_parser = clap::value_parser!(u32).range(1..=64_000))]
    pub generate_nodes: Option<u32>,
    /// Farms of a generated catalog (default: one per 20 nodes).
    #[arg(long, env = "GRID_SIM_FARMS", value_name = "GRID_SIM_FARMS", requires = "generate_nodes", value_parser = clap::value_parser!(u32).range(1..=512))]
    pub generate_farms: Option<u32>,
    /// How long (wall-clock milliseconds) a simulated node keeps an accepted workload `init` before it turns `ok`; 0 for at once.
    #[arg(long, env = "GRID_SIM_WORKLOAD_DELAY_MS", value_name = "GRID_SIM_WORKLOAD_DELAY_MS", default_value_t = 1_500, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub workload_delay_ms: u64,
}

/// `marketplace serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Database.
    #[command(flatten)]
    pub db: DbArgs,
    /// HTTP settings.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Card payments.
    #[command(flatten)]
    pub payments: PaymentsArgs,
    /// Outgoing mail.
    #[command(flatten)]
    pub mail: MailArgs,
    /// Token verification.
    #[command(flatten)]
    pub jwt: JwtArgs,
    /// Provisioning (runs when TFCHAIN_URL and MARKETPLACE_CHAIN_SEED are set).
    #[command(flatten)]
    pub provisioning: ProvisioningArgs,
    /// The chain-event follower (runs when TFCHAIN_URL is set).
    #[command(flatten)]
    pub follower: FollowerArgs,
    /// Notification delivery.
    #[command(flatten)]
    pub notify: NotifyArgs,
    /// Audit checkpoints and verification.
    #[command(flatten)]
    pub auditor: AuditorArgs,
    /// Where `/metrics` is served.
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// Token verification (Auth0-compatible).
#[derive(Debug, Clone, Args)]
pub struct JwtArgs {
    /// The issuer's JWKS URL (for Auth0: https://TENANT/.well-known/jwks.json).
    #[arg(long, env = "JWT_JWKS_URL", value_name = "JWT_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// Expected `iss` claim (for Auth0: https://TENANT/).
    #[arg(long, env = "JWT_ISSUER", value_name = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Expected `aud` claim (the API identifier).
    #[arg(long, env = "JWT_AUDIENCE", value_name = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Without JWT_JWKS_URL, JWT_ISSUER and JWT_AUDIENCE: run a DEVELOPMENT issuer with the key at this path (created if missing; shared by replicas), which mints tokens for anyone at POST /dev/token. For trying the stack, never for production.
    #[arg(
        long,
        env = "MARKETPLACE_DEV_ISSUER_KEY",
        value_name = "MARKETPLACE_DEV_ISSUER_KEY"
    )]
    pub dev_issuer_key: Option<PathBuf>,
    /// The claim that lists roles (Auth0 needs a namespaced claim, e.g. https://example.com/roles).
    #[arg(
        long,
        env = "JWT_ROLES_CLAIM",
        value_name = "JWT_ROLES_CLAIM",
        default_value = "roles"
    )]
    pub jwt_roles_claim: String,
    /// The console's client id at the issuer (Authorization Code with PKCE); unset: the console cannot sign in.
    #[arg(long, env = "OIDC_CLIENT_ID", value_name = "OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// Clock skew allowed on exp/nbf, seconds.
    #[arg(long, env = "JWT_LEEWAY_SECS", value_name = "JWT_LEEWAY_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub jwt_leeway_secs: u64,
}

/// Kafka connection and naming.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port, comma-separated).
    #[arg(long, env = "KAFKA_BROKERS", value_name = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// First part of every topic and consumer group name (marketplace.deployment.v1).
    #[arg(long, env = "KAFKA_TOPIC_PREFIX", value_name = "KAFKA_TOPIC_PREFIX", default_value = "marketplace", value_parser = parse_topic_prefix)]
    pub kafka_topic_prefix: String,
    /// Partitions of each topic the marketplace creates.
    #[arg(long, env = "KAFKA_PARTITIONS", value_name = "KAFKA_PARTITIONS", default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub kafka_partitions: i32,
    /// Replicas of each topic the marketplace creates.
    #[arg(long, env = "KAFKA_REPLICATION", value_name = "KAFKA_REPLICATION", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=16))]
    pub kafka_replication: i32,
    /// Consumer session timeout in milliseconds: how soon a dead worker's partitions move.
    #[arg(long, env = "KAFKA_SESSION_TIMEOUT_MS", value_name = "KAFKA_SESSION_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1_000..=300_000))]
    pub kafka_session_timeout_ms: u64,
}

impl KafkaArgs {
    /// The configuration, or an error naming KAFKA_BROKERS when it is unset.
    pub fn config(&self) -> Result<marketplace_workers::kafka::KafkaConfig, String> {
        let brokers = self
            .kafka_brokers
            .clone()
            .filter(|b| !b.trim().is_empty())
            .ok_or("KAFKA_BROKERS (--kafka-brokers) is required to use Kafka")?;
        Ok(marketplace_workers::kafka::KafkaConfig {
            brokers,
            topic_prefix: self.kafka_topic_prefix.clone(),
            partitions: self.kafka_partitions,
            replication: self.kafka_replication,
            session_timeout: std::time::Duration::from_millis(self.kafka_session_timeout_ms),
        })
    }
}

fn parse_topic_prefix(text: &str) -> Result<String, String> {
    if !text.is_empty()
        && text.len() <= 100
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Ok(text.to_string())
    } else {
        Err("expected 1 to 100 of the characters Kafka allows in names: letters, digits, '.', '_', '-'".into())
    }
}

/// Where projection runners read events from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// Tail the PostgreSQL event store (single node).
    Store,
    /// Consume the relay's topics as one Kafka consumer group per projection.
    Kafka,
}

/// `marketplace relay`.
#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// Database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Kafka.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The relay's name: relays of one name share a checkpoint, and one of them publishes.
    #[arg(
        long,
        env = "RELAY_NAME",
        value_name = "RELAY_NAME",
        default_value = "main"
    )]
    pub relay_name: String,
    /// Events read and published per batch.
    #[arg(long, env = "RELAY_BATCH_SIZE", value_name = "RELAY_BATCH_SIZE", default_value_t = 2000, value_parser = clap::value_parser!(i64).range(1..=50_000))]
    pub batch_size: i64,
}

/// `marketplace audit`.
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Walk every aggregate's hash chain; print what was checked and the first break (JSON), exit 1 on a break.
    Verify {
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print an aggregate's history (JSON lines).
    History {
        /// The aggregate type (`deployment`, `wallet`, ...).
        aggregate_type: String,
        /// The aggregate's id.
        id: String,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print an aggregate's state (JSON) through a version and/or a time
    /// (the latest without either), folded by the domain's rules.
    State {
        /// The aggregate type.
        aggregate_type: String,
        /// The aggregate's id.
        id: String,
        /// Through the last event committed at or before this instant (RFC 3339).
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        /// Through this version.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        version: Option<i64>,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print what changed from one version to another, in either order
    /// (JSON: a JSON Patch and the events between).
    Diff {
        /// The aggregate type.
        aggregate_type: String,
        /// The aggregate's id.
        id: String,
        /// The version the patch starts from.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        from: i64,
        /// The version it leads to.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        to: i64,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print everything a correlation id caused, across aggregates (JSON lines, commit order).
    Correlate {
        /// The correlation id.
        correlation_id: String,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Write every event recorded in a time range as JSON lines to stdout, streaming, in constant memory.
    Export {
        /// Recorded at or after (RFC 3339).
        #[arg(long)]
        from: chrono::DateTime<chrono::Utc>,
        /// Recorded before (RFC 3339).
        #[arg(long)]
        to: chrono::DateTime<chrono::Utc>,
        /// Only this actor's events.
        #[arg(long)]
        actor: Option<String>,
        /// Only this aggregate type's events.
        #[arg(long)]
        aggregate_type: Option<String>,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
}

/// `marketplace dead-letters`.
#[derive(Debug, Clone, Subcommand)]
pub enum DeadLettersCommand {
    /// Print unresolved dead letters (JSON lines).
    List {
        /// Database.
        #[command(flatten)]
        db: DbArgs,
        /// Only this projection's.
        #[arg(long)]
        projection: Option<String>,
    },
    /// Retry a projection's unresolved dead letters, in store order.
    Retry {
        /// The projection (`deployments`).
        projection: String,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
}

/// `marketplace project`.
#[derive(Debug, Clone, Args)]
pub struct ProjectArgs {
    /// Database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Where events come from.
    #[arg(
        long,
        env = "PROJECTION_SOURCE",
        value_name = "PROJECTION_SOURCE",
        value_enum,
        default_value = "store"
    )]
    pub source: Source,
    /// Kafka (with --source kafka).
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Run only these projections (comma-separated); all by default.
    #[arg(
        long,
        env = "PROJECTIONS",
        value_name = "PROJECTIONS",
        value_delimiter = ','
    )]
    pub only: Vec<String>,
    /// Events per transaction.
    #[arg(long, env = "PROJECTION_BATCH_SIZE", value_name = "PROJECTION_BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub batch_size: i64,
    /// Rebuild every view from the whole store first, then go on tailing.
    #[arg(long)]
    pub rebuild: bool,
    /// Catch up once and exit instead of tailing.
    #[arg(long)]
    pub once: bool,
}

/// `marketplace replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The projection to rebuild (`deployments`).
    pub projection: String,
    /// Build the view as it stood at this instant (RFC 3339) into a scratch schema instead, leaving the live view alone.
    #[arg(long)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// The scratch schema for `--until` (default `audit_<projection>`); dropped and made anew.
    #[arg(long, requires = "until")]
    pub into: Option<String>,
    /// Database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Events per transaction.
    #[arg(long, env = "PROJECTION_BATCH_SIZE", value_name = "PROJECTION_BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub batch_size: i64,
}

/// `marketplace token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Role: cloud-user, cloud-provider or cloud-operator (repeat for several).
    #[arg(long = "role", required = true, value_parser = ["cloud-user", "cloud-provider", "cloud-operator"])]
    pub roles: Vec<String>,
    /// Subject (the user id).
    #[arg(long)]
    pub sub: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl_secs: i64,
    /// The dev data directory holding the signing key.
    #[arg(
        long,
        env = "MARKETPLACE_DATA_DIR",
        value_name = "MARKETPLACE_DATA_DIR",
        default_value = ".marketplace"
    )]
    pub data_dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let cli = Cli::try_parse_from([
            "marketplace",
            "serve",
            "--database-url",
            "postgres://app:hunter2@db/marketplace",
            "--stripe-secret-key",
            "sk_test_topsecret",
            "--stripe-webhook-secret",
            "whsec_alsosecret",
            "--jwks-url",
            "https://issuer.example/.well-known/jwks.json",
            "--jwt-issuer",
            "https://issuer.example/",
            "--jwt-audience",
            "marketplace",
        ])
        .expect("parses");
        let printed = format!("{cli:?}");
        for secret in ["hunter2", "sk_test_topsecret", "whsec_alsosecret"] {
            assert!(!printed.contains(secret), "{secret} printed: {printed}");
        }
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        // Still there for the code that needs them.
        use secrecy::ExposeSecret;
        assert!(args.db.database_url.expose_secret().contains("hunter2"));
    }
}
