//! Upstream connections, kept alive and reused, per target (scheme +
//! authority, as the target's `pool_key`). HTTP/1.1: a list of idle
//! connections, each driven by the request that holds it (`h1::Conn`); one
//! goes back to its list only after its response body ended cleanly.
//! HTTP/2 (`h2` routes): one shared connection per target that every
//! request multiplexes on, driven by hyper in a task of its own. Either
//! kind idle for longer than `idle_timeout` is closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::uri::Uri;
use hyper::client::conn::http2;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::time::Instant;
use tower_service::Service;

use super::h1;
use crate::config::UpstreamTarget;
use crate::http::body::{BoxError, RequestBody};

/// The longest an idle connection the upstream closed stays open here.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// `scheme://authority` (`UpstreamTarget::pool_key`).
pub type Key = Arc<str>;

/// A request handle on a target's shared HTTP/2 connection.
pub type H2Sender = http2::SendRequest<RequestBody>;

pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    /// ALPN `http/1.1` on TLS.
    http1: HttpsConnector<HttpConnector>,
    /// ALPN `h2` on TLS, prior knowledge (h2c) on plain TCP.
    http2: HttpsConnector<HttpConnector>,
    idle: Mutex<HashMap<Key, Vec<Idle>>>,
    /// Per target, the shared HTTP/2 connection; its async lock makes
    /// requests arriving together wait for one handshake, not start many.
    shared: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<Option<Shared>>>>>,
    /// Milliseconds; a reload may change it.
    idle_timeout_ms: AtomicU64,
}

struct Idle {
    conn: h1::Conn,
    since: Instant,
}

struct Shared {
    tx: H2Sender,
    since: Instant,
}

/// An HTTP/1.1 connection lent to one request; `release` gives it back
/// for reuse.
pub struct Lease {
    inner: Arc<Inner>,
    key: Key,
    pub conn: h1::Conn,
    /// Came from the pool (so it may have been closed meanwhile).
    pub reused: bool,
}

impl Pool {
    pub fn new(idle_timeout: Duration) -> std::io::Result<Pool> {
        let connector = |h2: bool| {
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_nodelay(true);
            let roots = hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(Arc::new(rustls::crypto::ring::default_provider()))?
                .https_or_http();
            Ok::<_, std::io::Error>(match h2 {
                true => roots.enable_http2().wrap_connector(http),
                false => roots.enable_http1().wrap_connector(http),
            })
        };
        let inner = Arc::new(Inner {
            http1: connector(false)?,
            http2: connector(true)?,
            idle: Mutex::new(HashMap::new()),
            shared: Mutex::new(HashMap::new()),
            idle_timeout_ms: AtomicU64::new(idle_timeout.as_millis() as u64),
        });
        tokio::spawn(sweep(Arc::downgrade(&inner)));
        Ok(Pool { inner })
    }

    pub fn set_idle_timeout(&self, limit: Duration) {
        self.inner
            .idle_timeout_ms
            .store(limit.as_millis() as u64, Ordering::Relaxed);
    }

    /// A pooled HTTP/1.1 connection to the target if there is one, else a new one.
    pub async fn checkout(&self, target: &UpstreamTarget) -> Result<Lease, BoxError> {
        let key = target.pool_key.clone();
        match self.take_idle(&key) {
            Some(conn) => Ok(self.lease(key, conn, true)),
            None => self.connect(key).await,
        }
    }

    /// A new HTTP/1.1 connection, never a pooled one.
    pub async fn connect(&self, key: Key) -> Result<Lease, BoxError> {
        let io = self.inner.http1.clone().call(uri(&key)?).await?;
        Ok(self.lease(key, h1::Conn::new(TokioIo::new(io)), false))
    }

    /// The target's shared HTTP/2 connection, made first if there is none
    /// open (or if `replace`: the current one failed), and whether it was
    /// already open.
    pub async fn h2(&self, key: &Key, replace: bool) -> Result<(H2Sender, bool), BoxError> {
        let slot = match self.inner.shared.lock() {
            Ok(mut shared) => shared.entry(key.clone()).or_default().clone(),
            Err(_) => return Err("the HTTP/2 pool lock is poisoned".into()),
        };
        let mut current = slot.lock().await;
        if let Some(conn) = current.as_mut().filter(|c| !replace && !c.tx.is_closed()) {
            conn.since = Instant::now();
            return Ok((conn.tx.clone(), true));
        }
        let io = self.inner.http2.clone().call(uri(key)?).await?;
        let (tx, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        *current = Some(Shared {
            tx: tx.clone(),
            since: Instant::now(),
        });
        Ok((tx, false))
    }

    fn lease(&self, key: Key, conn: h1::Conn, reused: bool) -> Lease {
        Lease {
            inner: self.inner.clone(),
            key,
            conn,
            reused,
        }
    }

    fn take_idle(&self, key: &Key) -> Option<h1::Conn> {
        let limit = self.inner.idle_timeout();
        let mut idle = self.inner.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        while let Some(mut idle) = list.pop() {
            if idle.since.elapsed() < limit && !idle.conn.is_stale() {
                return Some(idle.conn);
            }
        }
        None
    }
}

fn uri(key: &Key) -> Result<Uri, http::uri::InvalidUri> {
    Uri::try_from(format!("{key}/"))
}

impl Lease {
    pub fn key(&self) -> Key {
        self.key.clone()
    }

    /// Back to the idle list (most recently used last, taken first), if
    /// nothing was left unread on it.
    pub fn release(self) {
        if !self.conn.is_clean() {
            return;
        }
        if let Ok(mut idle) = self.inner.idle.lock() {
            idle.entry(self.key).or_default().push(Idle {
                conn: self.conn,
                since: Instant::now(),
            });
        }
    }
}

/// Closes connections idle for longer than `idle_timeout`, and idle
/// HTTP/1.1 ones the upstream closed (nothing watches an idle connection,
/// so this is what frees them, within a second), until the pool is gone.
async fn sweep(pool: Weak<Inner>) {
    loop {
        let every = match pool.upgrade() {
            Some(inner) => (inner.idle_timeout() / 2).clamp(Duration::from_millis(50), SWEEP_EVERY),
            None => return,
        };
        tokio::time::sleep(every).await;
        let Some(inner) = pool.upgrade() else { return };
        inner.expire_idle();
    }
}

impl Inner {
    fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.load(Ordering::Relaxed))
    }

    fn expire_idle(&self) {
        let limit = self.idle_timeout();
        if let Ok(mut idle) = self.idle.lock() {
            for list in idle.values_mut() {
                list.retain_mut(|c| c.since.elapsed() < limit && !c.conn.is_stale());
            }
        }
        // Dropping the pool's handle lets the connection close once the
        // requests still using it finish. A slot busy connecting is left be.
        if let Ok(mut shared) = self.shared.lock() {
            shared.retain(|_, slot| match slot.try_lock() {
                Ok(mut current) => {
                    if current
                        .as_ref()
                        .is_some_and(|c| c.tx.is_closed() || c.since.elapsed() >= limit)
                    {
                        *current = None;
                    }
                    current.is_some()
                }
                Err(_) => true,
            });
        }
    }
}
