//! Start-up: bind the listeners, open the store, build the first state,
//! start the reload watcher and the listeners, log the ready line; then
//! serve until told to stop and drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::http::admission::Connections;
use crate::http::server::{self, Lifecycle, Transport};
use crate::http::tls::{self, CertResolver};
use crate::identity::UserStore;
use crate::load::Loaded;
use crate::proxy::state::{Boot, Gateway, GatewayState, StateError};
use crate::proxy::upstream::Upstreams;
use crate::telemetry::metrics::Metrics;

/// How often expired sessions are purged from the store.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Sockets bound before serving, so callers (and tests) know the ports.
pub struct Listeners {
    pub plain: Option<std::net::TcpListener>,
    pub tls: Option<std::net::TcpListener>,
    pub admin: Option<std::net::TcpListener>,
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
    #[error("tls: {0}")]
    Tls(String),
    #[error("auth: {0}")]
    Store(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl Listeners {
    pub fn bind(config: &Config) -> Result<Listeners, StartError> {
        Ok(Listeners {
            plain: config.listen.map(bind_one).transpose()?,
            tls: config
                .tls
                .as_ref()
                .map(|t| bind_one(t.listen))
                .transpose()?,
            admin: config
                .admin
                .as_ref()
                .map(|a| bind_one(a.listen))
                .transpose()?,
        })
    }

    pub fn plain_addr(&self) -> Option<SocketAddr> {
        local_addr(&self.plain)
    }

    pub fn tls_addr(&self) -> Option<SocketAddr> {
        local_addr(&self.tls)
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        local_addr(&self.admin)
    }
}

fn local_addr(l: &Option<std::net::TcpListener>) -> Option<SocketAddr> {
    l.as_ref().and_then(|l| l.local_addr().ok())
}

fn bind_one(addr: SocketAddr) -> Result<std::net::TcpListener, StartError> {
    let fail = |source| StartError::Bind { addr, source };
    let l = std::net::TcpListener::bind(addr).map_err(fail)?;
    l.set_nonblocking(true).map_err(fail)?;
    Ok(l)
}

fn into_tokio(
    l: std::net::TcpListener,
) -> Result<(tokio::net::TcpListener, SocketAddr), StartError> {
    let addr = l.local_addr().map_err(|source| StartError::Bind {
        addr: ([0, 0, 0, 0], 0).into(),
        source,
    })?;
    let l =
        tokio::net::TcpListener::from_std(l).map_err(|source| StartError::Bind { addr, source })?;
    Ok((l, addr))
}

/// Runs `f` on a blocking thread (start-up work that reads files or hashes).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Serves what `load::load` loaded until `shutdown` completes, then drains
/// connections (at most `limits.shutdown_timeout`).
pub async fn run(
    loaded: Loaded,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    start(loaded, listeners).await?.serve_until(shutdown).await;
    Ok(())
}

/// A gateway that is ready: listeners serving, reload watching.
pub struct Running {
    gw: Arc<Gateway>,
    stop: watch::Sender<bool>,
    life: Lifecycle,
    alive: mpsc::Receiver<()>,
}

/// Opens the store, builds the first state from what `load::load` loaded
/// (the certificate and keys are not read again), starts watching for
/// reloads, then serves on every listener and logs the ready line.
pub async fn start(loaded: Loaded, listeners: Listeners) -> Result<Running, StartError> {
    let files = crate::ops::reload::watched_files(&loaded.config);
    warn_if_admin_api_is_exposed(&loaded.config);
    let (stop, stop_rx) = watch::channel(false);
    let gw = Arc::new(open(loaded, stop_rx.clone()).await?);
    let (alive_tx, alive) = mpsc::channel::<()>(1);
    let life = Lifecycle {
        shutdown: stop_rx,
        alive: alive_tx,
        connections: Connections::new(),
    };
    // Watching starts before serving: a change made once the gateway
    // answers is never missed.
    tokio::spawn(crate::ops::reload::watch(
        gw.clone(),
        &files,
        life.shutdown.clone(),
    ));
    let mut addrs = Vec::new();
    let serve = |l: std::net::TcpListener, transport: Transport, scheme: &str| {
        let (l, addr) = into_tokio(l)?;
        tokio::spawn(server::accept_loop(l, transport, gw.clone(), life.clone()));
        Ok::<_, StartError>(format!("{scheme}://{addr}"))
    };
    if let Some(l) = listeners.plain {
        addrs.push(serve(l, Transport::Plain, "http")?);
    }
    if let (Some(l), Some(cert)) = (listeners.tls, gw.cert.clone()) {
        let config = tls::server_config(cert).map_err(StartError::Tls)?;
        addrs.push(serve(l, Transport::Tls(config.into()), "https")?);
    }
    if let Some(l) = listeners.admin {
        let (l, addr) = into_tokio(l)?;
        addrs.push(format!("admin=http://{addr}"));
        tokio::spawn(crate::ops::admin::serve(
            l,
            gw.clone(),
            life.shutdown.clone(),
        ));
    }
    spawn_purge(Arc::downgrade(&gw));
    rebuild_once_reached(&gw);
    gw.ready.store(true, Ordering::Relaxed);
    let routes = gw.state.load().routes.configured();
    tracing::info!(listeners = %addrs.join(" "), routes, "gateway ready");
    Ok(Running {
        gw,
        stop,
        life,
        alive,
    })
}

impl Running {
    /// Serves until `shutdown` completes, then closes the listeners and
    /// drains connections (at most `limits.shutdown_timeout`).
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>) {
        let Running {
            gw,
            stop,
            life,
            mut alive,
        } = self;
        shutdown.await;
        gw.ready.store(false, Ordering::Relaxed);
        tracing::info!("shutting down: draining connections");
        let _ = stop.send(true);
        drop(life);
        let drain = gw.state.load().limits.shutdown_timeout + Duration::from_secs(1);
        let _ = tokio::time::timeout(drain, alive.recv()).await;
    }
}

/// The admin token travels in clear: off loopback, anyone on the path reads it.
fn warn_if_admin_api_is_exposed(config: &Config) {
    if let Some(admin) = config.admin.as_ref().filter(|a| a.token.is_some()) {
        if !admin.listen.ip().is_loopback() {
            tracing::warn!(
                admin = %admin.listen,
                "admin.token is set on an admin listener that is not on a loopback address: the token and user data travel in clear; keep it on loopback or a private network"
            );
        }
    }
}

/// Opens the store (a database that cannot be reached yet is retried in the
/// background) and builds the first state.
async fn open(loaded: Loaded, stop: watch::Receiver<bool>) -> Result<Gateway, StartError> {
    let users = match loaded.config.auth.clone() {
        Some(auth) => {
            let users = Arc::new(blocking(move || UserStore::open(&auth)).await?);
            users.start(stop).await?;
            Some(users)
        }
        None => None,
    };
    let cert = loaded.cert.clone().map(CertResolver::new);
    let (boot, idle_timeout) = (Boot::of(&loaded.config), loaded.config.limits.idle_timeout);
    let metrics = Arc::new(Metrics::new());
    let (users2, metrics2) = (users.clone(), metrics.clone());
    let state =
        blocking(move || GatewayState::build(&loaded, users2.as_ref(), &metrics2, None)).await?;
    Ok(Gateway {
        state: ArcSwap::from_pointee(state),
        upstreams: Upstreams::new(idle_timeout).map_err(StartError::Roots)?,
        metrics,
        users,
        cert,
        boot,
        ready: Default::default(),
    })
}

/// A gateway that started before its database answered built its state
/// without what lives there (generated keys); once the store is reached, the
/// state is built again, as a reload would.
fn rebuild_once_reached(gw: &Arc<Gateway>) {
    let Some(mut reached) = gw.users.as_ref().map(|u| u.reached()) else {
        return;
    };
    if *reached.borrow_and_update() {
        return;
    }
    let gw = Arc::downgrade(gw);
    tokio::spawn(async move {
        if reached.wait_for(|r| *r).await.is_err() {
            return;
        }
        if let Some(gw) = gw.upgrade() {
            crate::ops::reload::reload(&gw).await;
        }
    });
}

/// Purges expired sessions now and then every `PURGE_EVERY`, with the
/// settings of the state current at the time, for as long as the gateway lives.
fn spawn_purge(gw: Weak<Gateway>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PURGE_EVERY);
        loop {
            every.tick().await;
            let Some(gw) = gw.upgrade() else { return };
            let identity = gw.state.load().identity.clone();
            if let Some(id) = identity {
                id.purge().await;
            }
        }
    });
}
