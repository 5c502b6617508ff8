//! `marketplace token`: mints a dev token signed by dev mode's key.

use anyhow::Context;
use marketplace_dev::keys::SigningKey;

use crate::cli::TokenArgs;

pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    let key = SigningKey::load_or_create(&args.data_dir.join("dev-signing-key.pem"))
        .context("cannot read or create the dev signing key under MARKETPLACE_DATA_DIR")?;
    let roles: Vec<&str> = args.roles.iter().map(String::as_str).collect();
    println!("{}", key.mint_dev_token(&args.sub, &roles, args.ttl_secs)?);
    Ok(())
}
