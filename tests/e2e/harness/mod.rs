//! Shared test harness: a real recording upstream, the real gateway (in
//! process or as the built binary), and clients that speak HTTP/1.1 (and
//! hand-made HTTP/2 frames) on loopback ephemeral ports. No fixed ports,
//! no readiness sleeps.

pub mod auth;
mod client;
pub mod conn;
pub mod gateway;
pub mod h2;
pub mod postgres;
pub mod tls;
pub mod tools;
pub mod upstream;
pub mod yaml;

pub use client::{
    raw, raw_keepalive, read_response, read_until_close, Client, Reply, RequestBuilder,
};
pub use gateway::{Binary, Gateway};
pub use postgres::Backend;
pub use upstream::{full, Repeat, Upstream};
pub use yaml::Yaml;

/// Polls `f` every 10 ms until it returns true; panics saying what it was
/// waiting for once `timeout` has passed.
pub async fn eventually(what: &str, timeout: std::time::Duration, mut f: impl FnMut() -> bool) {
    eventually_async(what, timeout, || std::future::ready(f())).await
}

/// `eventually` for a check that awaits (a request, a connect).
pub async fn eventually_async<F, Fut>(what: &str, timeout: std::time::Duration, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    assert!(within(timeout, f).await, "timed out waiting for {what}");
}

/// Polls `f` every 10 ms until it returns true: whether it did before
/// `timeout` passed. For a caller whose failure message shows the state
/// it waited on.
pub async fn within<F, Fut>(timeout: std::time::Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
