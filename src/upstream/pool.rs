//! Upstream connections, kept alive and reused: one list of idle HTTP/1.1
//! connections per target (scheme + authority). A connection goes back to
//! its list only after its response body ended cleanly; one idle longer
//! than `idle_timeout` is closed. Each connection is driven by hyper in a
//! task of its own; requests use it through its `SendRequest` handle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::uri::{Authority, Scheme, Uri};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::time::Instant;
use tower_service::Service;

use crate::body::{BoxError, RequestBody};
use crate::config::UpstreamTarget;

pub type Key = (Scheme, Authority);

pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    connector: HttpsConnector<HttpConnector>,
    idle: Mutex<HashMap<Key, Vec<Idle>>>,
    /// Milliseconds; a reload may change it.
    idle_timeout_ms: AtomicU64,
}

struct Idle {
    tx: SendRequest<RequestBody>,
    since: Instant,
}

/// A connection lent to one request; `release` gives it back for reuse.
pub struct Lease {
    inner: Arc<Inner>,
    key: Key,
    pub(super) tx: SendRequest<RequestBody>,
    /// Came from the idle list (so it may have been closed meanwhile).
    pub(super) reused: bool,
}

impl Pool {
    pub fn new(idle_timeout: Duration) -> std::io::Result<Pool> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(Arc::new(rustls::crypto::ring::default_provider()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Arc::new(Inner {
            connector,
            idle: Mutex::new(HashMap::new()),
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

    /// An idle connection to the target if there is one, else a new one.
    pub async fn checkout(&self, target: &UpstreamTarget) -> Result<Lease, BoxError> {
        let key = (target.scheme.clone(), target.authority.clone());
        if let Some(tx) = self.take_idle(&key) {
            return Ok(Lease {
                inner: self.inner.clone(),
                key,
                tx,
                reused: true,
            });
        }
        self.connect(key).await
    }

    /// A new connection, never a pooled one.
    pub async fn connect(&self, key: Key) -> Result<Lease, BoxError> {
        let uri = Uri::builder()
            .scheme(key.0.clone())
            .authority(key.1.clone())
            .path_and_query("/")
            .build()?;
        let io = self.inner.connector.clone().call(uri).await?;
        let (tx, conn) = http1::Builder::new().handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(Lease {
            inner: self.inner.clone(),
            key,
            tx,
            reused: false,
        })
    }

    fn take_idle(&self, key: &Key) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.inner.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        while let Some(conn) = list.pop() {
            if !conn.tx.is_closed() && conn.since.elapsed() < self.inner.idle_timeout() {
                return Some(conn.tx);
            }
        }
        None
    }
}

impl Lease {
    pub fn key(&self) -> Key {
        self.key.clone()
    }

    /// Back to the idle list (most recently used last, taken first).
    pub fn release(self) {
        if self.tx.is_closed() {
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
        if let Ok(mut idle) = self.idle.lock() {
            for list in idle.values_mut() {
                list.retain(|c| !c.tx.is_closed() && c.since.elapsed() < limit);
            }
        }
    }
}
