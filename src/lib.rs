//! A self-hosted API gateway.
//!
//! A request's life: `server` accepts the connection and hands each request
//! to `pipeline::handle`, which takes one `state` snapshot and runs the
//! stages in order: `route` normalises the path and picks the route,
//! authorization (issue #4) checks the token, the declared body length is
//! checked against `limits.max_body`, `rewrite` prepares the headers, then
//! `upstream` forwards (or `echo` answers). On the way back `decorate` fixes
//! the response headers, failures become JSON bodies in `error`, and
//! `access_log` writes one record when the response body is done.
//! `config` is the only module that reads gateway.yaml.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod authorizer;
pub mod body;
pub mod config;
pub mod conn;
pub mod cors;
pub mod decorate;
pub mod echo;
pub mod error;
pub mod framing;
pub mod headers;
pub mod identity;
pub mod logging;
pub mod pipeline;
pub mod request_id;
pub mod rewrite;
pub mod route;
pub mod server;
pub mod state;
pub mod tls;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use config::Config;
use identity::Identity;
use server::Lifecycle;
use state::Gateway;

/// Sockets bound before serving, so callers (and tests) know the ports.
pub struct Listeners {
    pub plain: Option<std::net::TcpListener>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load the operating system's root certificates for https upstreams: {0}")]
    Roots(#[source] std::io::Error),
    #[error("the `tls` listener is not implemented yet (issue #5); remove `tls` or use `listen`")]
    TlsNotYet,
    #[error("auth: {0}")]
    Identity(#[from] identity::IdentityError),
}

impl Listeners {
    pub fn bind(config: &Config) -> Result<Listeners, StartError> {
        if config.tls.is_some() {
            return Err(StartError::TlsNotYet);
        }
        let plain = config.listen.map(bind_one).transpose()?;
        Ok(Listeners { plain })
    }

    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.plain.as_ref().and_then(|l| l.local_addr().ok())
    }
}

fn bind_one(addr: SocketAddr) -> Result<std::net::TcpListener, StartError> {
    let fail = |source| StartError::Bind { addr, source };
    let l = std::net::TcpListener::bind(addr).map_err(fail)?;
    l.set_nonblocking(true).map_err(fail)?;
    Ok(l)
}

/// Serves until `shutdown` completes, then drains connections (at most
/// `limits.shutdown_timeout`).
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let identity = match config.auth.clone() {
        Some(auth) => {
            let opened = tokio::task::spawn_blocking(move || Identity::open(&auth)).await;
            let id =
                Arc::new(opened.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?);
            id.spawn_purge();
            Some(id)
        }
        None => None,
    };
    let gw = Arc::new(Gateway::new(&config, identity).map_err(StartError::Roots)?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let life = Lifecycle {
        shutdown: stop_rx,
        alive: alive_tx,
    };
    let mut addrs = Vec::new();
    if let Some(l) = listeners.plain {
        let l = tokio::net::TcpListener::from_std(l).map_err(|source| StartError::Bind {
            addr: config.listen.unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
            source,
        })?;
        addrs.push(format!(
            "http://{}",
            l.local_addr().map_err(|source| StartError::Bind {
                addr: config.listen.unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
                source
            })?
        ));
        tokio::spawn(server::accept_loop(l, gw.clone(), life.clone()));
    }
    tracing::info!(listeners = %addrs.join(" "), routes = config.routes.len(), "gateway ready");
    shutdown.await;
    tracing::info!("shutting down: draining connections");
    let _ = stop_tx.send(true);
    drop(life);
    let drain = config.limits.shutdown_timeout + std::time::Duration::from_secs(1);
    let _ = tokio::time::timeout(drain, alive_rx.recv()).await;
    Ok(())
}
