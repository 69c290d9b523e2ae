//! Off the request path: the `admin` listener (health, readiness, metrics)
//! and `reload` (SIGHUP and file changes rebuild the state).

pub mod admin;
pub mod reload;
