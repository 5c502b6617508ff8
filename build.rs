// The schema is embedded by `sqlx::migrate!`; rebuild when a migration is
// added, changed or removed, not only when Rust sources change.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
