//! Shared test harness: a real recording upstream, the real gateway (in
//! process or as the built binary), and clients that speak HTTP/1.1 (and
//! hand-made HTTP/2 frames) on loopback ephemeral ports. No fixed ports,
//! no readiness sleeps.

pub mod auth;
mod client;
pub mod conn;
pub mod gateway;
pub mod h2;
pub mod tls;
pub mod upstream;

pub use client::{raw, raw_keepalive, read_until_close, Client, Reply, RequestBuilder};
pub use gateway::{Binary, Gateway};
pub use upstream::{full, Upstream};

/// Polls `f` until it returns true or the deadline passes.
pub async fn eventually(what: &str, timeout: std::time::Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
