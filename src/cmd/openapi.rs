//! `marketplace openapi`: prints the OpenAPI document the API serves at
//! `/v1/openapi.json`, without a server or a database, so the console's
//! typed client can be generated from it (web/scripts/gen-client).

pub fn run() -> anyhow::Result<()> {
    let doc = marketplace_api::openapi();
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
