//! Upstream connections, kept alive and reused, per target (scheme +
//! authority, as the target's `pool_key`). HTTP/1.1: a list of idle connections; one goes back to its
//! list only after its response body ended cleanly. HTTP/2 (`h2` routes):
//! one shared connection per target that every request multiplexes on.
//! Either kind idle for longer than `idle_timeout` is closed. Each
//! connection is driven by hyper in a task of its own; requests use it
//! through its `SendRequest` handle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::uri::Uri;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2, TrySendError};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;
use tower_service::Service;

use crate::config::{UpstreamProtocol, UpstreamTarget};
use crate::http::body::{BoxError, RequestBody};

/// `scheme://authority` (`UpstreamTarget::pool_key`).
pub type Key = Arc<str>;

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
    shared: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<Option<Idle>>>>>,
    /// Milliseconds; a reload may change it.
    idle_timeout_ms: AtomicU64,
}

struct Idle {
    tx: Sender,
    since: Instant,
}

/// A handle for sending requests on one connection.
pub enum Sender {
    Http1(http1::SendRequest<RequestBody>),
    Http2(http2::SendRequest<RequestBody>),
}

impl Sender {
    pub async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Sender::Http1(tx) => tx.ready().await,
            Sender::Http2(tx) => tx.ready().await,
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Sender::Http1(tx) => tx.is_closed(),
            Sender::Http2(tx) => tx.is_closed(),
        }
    }

    /// Sends `req`; when it was not written, the error gives it back.
    pub async fn try_send(
        &mut self,
        req: Request<RequestBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<RequestBody>>> {
        match self {
            Sender::Http1(tx) => tx.try_send_request(req).await,
            Sender::Http2(tx) => tx.try_send_request(req).await,
        }
    }
}

/// A connection lent to one request; `release` gives an HTTP/1.1 one back
/// for reuse (an HTTP/2 one stays shared throughout).
pub struct Lease {
    inner: Arc<Inner>,
    key: Key,
    pub(super) tx: Sender,
    /// Came from the pool (so it may have been closed meanwhile).
    pub(super) reused: bool,
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

    /// A pooled connection to the target if there is one, else a new one.
    pub async fn checkout(
        &self,
        target: &UpstreamTarget,
        protocol: UpstreamProtocol,
    ) -> Result<Lease, BoxError> {
        let key = target.pool_key.clone();
        match protocol {
            UpstreamProtocol::H2 => self.shared(key, false).await,
            UpstreamProtocol::Http1 => match self.take_idle(&key) {
                Some(tx) => Ok(self.lease(key, tx, true)),
                None => self.connect(key, protocol).await,
            },
        }
    }

    /// A new connection, never a pooled one (an HTTP/2 one becomes the shared one).
    pub async fn connect(&self, key: Key, protocol: UpstreamProtocol) -> Result<Lease, BoxError> {
        match protocol {
            UpstreamProtocol::H2 => self.shared(key, true).await,
            UpstreamProtocol::Http1 => {
                let io = self.inner.http1.clone().call(uri(&key)?).await?;
                let (tx, conn) = http1::Builder::new().handshake(io).await?;
                // Upgrades (WebSocket) take the connection over after a 101.
                drive(conn.with_upgrades());
                Ok(self.lease(key, Sender::Http1(tx), false))
            }
        }
    }

    /// The target's shared HTTP/2 connection, made first if there is none
    /// open (or if `replace`: the current one failed).
    async fn shared(&self, key: Key, replace: bool) -> Result<Lease, BoxError> {
        let slot = match self.inner.shared.lock() {
            Ok(mut shared) => shared.entry(key.clone()).or_default().clone(),
            Err(_) => return Err("the HTTP/2 pool lock is poisoned".into()),
        };
        let mut current = slot.lock().await;
        if let Some(conn) = current.as_mut().filter(|c| !replace && !c.tx.is_closed()) {
            conn.since = Instant::now();
            if let Sender::Http2(tx) = &conn.tx {
                return Ok(self.lease(key, Sender::Http2(tx.clone()), true));
            }
        }
        let io = self.inner.http2.clone().call(uri(&key)?).await?;
        let (tx, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await?;
        drive(conn);
        *current = Some(Idle {
            tx: Sender::Http2(tx.clone()),
            since: Instant::now(),
        });
        Ok(self.lease(key, Sender::Http2(tx), false))
    }

    fn lease(&self, key: Key, tx: Sender, reused: bool) -> Lease {
        Lease {
            inner: self.inner.clone(),
            key,
            tx,
            reused,
        }
    }

    fn take_idle(&self, key: &Key) -> Option<Sender> {
        let limit = self.inner.idle_timeout();
        let mut idle = self.inner.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        while let Some(conn) = list.pop() {
            if !conn.tx.is_closed() && conn.since.elapsed() < limit {
                return Some(conn.tx);
            }
        }
        None
    }
}

fn uri(key: &Key) -> Result<Uri, http::uri::InvalidUri> {
    Uri::try_from(format!("{key}/"))
}

fn drive<F>(conn: F)
where
    F: std::future::Future<Output = hyper::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
}

impl Lease {
    pub fn key(&self) -> Key {
        self.key.clone()
    }

    /// Back to the idle list (most recently used last, taken first).
    pub fn release(self) {
        if self.tx.is_closed() || matches!(self.tx, Sender::Http2(_)) {
            return;
        }
        if let Ok(mut idle) = self.inner.idle.lock() {
            idle.entry(self.key).or_default().push(Idle {
                tx: self.tx,
                since: Instant::now(),
            });
        }
    }
}

/// Closes connections idle for longer than `idle_timeout`, until the pool is gone.
async fn sweep(pool: Weak<Inner>) {
    loop {
        let every = match pool.upgrade() {
            Some(inner) => inner.idle_timeout().max(Duration::from_millis(100)) / 2,
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
        let fresh = |c: &Idle| !c.tx.is_closed() && c.since.elapsed() < limit;
        if let Ok(mut idle) = self.idle.lock() {
            for list in idle.values_mut() {
                list.retain(fresh);
            }
        }
        // Dropping the pool's handle lets the connection close once the
        // requests still using it finish. A slot busy connecting is left be.
        if let Ok(mut shared) = self.shared.lock() {
            shared.retain(|_, slot| match slot.try_lock() {
                Ok(mut current) => {
                    if current.as_ref().is_some_and(|c| !fresh(c)) {
                        *current = None;
                    }
                    current.is_some()
                }
                Err(_) => true,
            });
        }
    }
}
