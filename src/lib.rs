//! A self-hosted API gateway.
//!
//! A request's life: `http::server` accepts the connection (`http::conn`
//! keeps its timeouts, `http::head` refuses ambiguous heads) and hands each
//! request to `proxy::pipeline::handle`. That takes one `proxy::state`
//! snapshot and runs the stages in order: `proxy::route` normalises the
//! path and picks the route; `proxy::cors` answers preflights; `auth`
//! verifies the bearer token; `proxy::rewrite` prepares the headers; then
//! `proxy::upstream` forwards (or `proxy::echo` answers, or an `identity`
//! endpoint serves sign-up, sign-in and the rest). On the way back
//! `proxy::decorate` and `proxy::cors` fix the response headers, a failure
//! becomes its JSON body in `proxy::error`, and `telemetry` records the
//! request once its body is done. `config` alone parses gateway.yaml, and
//! `load` is the one step that reads it and the files it names (for
//! `check`, start-up and reload alike); `ops::reload` rebuilds the state
//! from it; `ops::admin` serves health and metrics, and hands `/admin/` to
//! `admin` (the admin API, its console, and `gateway users`); `run` starts it all.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod config;
pub mod http;
pub mod identity;
pub mod load;
pub mod ops;
pub mod proxy;
pub mod ratelimit;
pub mod run;
pub mod telemetry;

pub use run::{run, start, Listeners, Running, StartError};
