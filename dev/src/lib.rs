//! Dev-only pieces, for `marketplace dev`, the tests and the benches; no
//! production path (`serve`, `relay`, `project`, the workers) depends on
//! this crate.
//!
//! - [`embedded_pg`]: a private PostgreSQL started from the machine's own
//!   binaries.
//! - [`keys`]: dev mode's signing key, its tokens and JWKS.
//! - [`mail`]: a mailer that writes each message to the log.
//! - [`grid_sim`]: the grid SIMULATOR: a grid proxy, a TFChain and ZOS
//!   nodes, speaking their names and JSON shapes over HTTP.
//! - [`mode`]: what `marketplace dev` adds around them (its chain seed,
//!   the funded treasury, the simulator with its clock moving).

pub mod embedded_pg;
pub mod grid_sim;
pub mod keys;
pub mod mail;
pub mod mode;
