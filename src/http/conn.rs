//! Per-connection clock for the two connection timeouts hyper does not give
//! us in the form SPEC section 8 asks:
//! - `header_timeout`, counted from accept, then from the first byte of each
//!   later request head (hyper's own timer would also count keep-alive idle time);
//! - `idle_timeout`: no request in flight and no bytes either way.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::http::framing::HeadScan;

const NO_HEAD: u64 = u64::MAX;

/// The client's connection, as requests on it see it.
pub struct ConnInfo {
    pub client: std::net::SocketAddr,
    /// The client's IP as a header value, made once per connection for `X-Forwarded-For`.
    pub client_ip: http::HeaderValue,
    /// `http` or `https`.
    pub proto: &'static str,
    pub clock: Arc<ConnClock>,
    /// Held by anything that outlives its request (a WebSocket tunnel), so
    /// shutdown waits for it, at most `shutdown_timeout`.
    pub alive: tokio::sync::mpsc::Sender<()>,
}

pub struct ConnClock {
    epoch: Instant,
    last_active_ms: AtomicU64,
    /// When the head now being read started (`NO_HEAD`: none is being read).
    head_started_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Set by the head pre-scan, taken by the request it belongs to.
    framing_conflict: AtomicBool,
}

/// The verdict of a look at the clock.
pub enum Verdict {
    Expired,
    CheckAgainIn(Duration),
}

impl ConnClock {
    /// A new connection: its first head is due within `header_timeout` of now.
    pub fn new() -> Arc<ConnClock> {
        Arc::new(ConnClock {
            epoch: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            framing_conflict: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Returns true when these bytes start a new request head.
    fn on_read(&self) -> bool {
        let now = self.now_ms();
        self.last_active_ms.store(now, Ordering::Relaxed);
        let head_starts = self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started_ms.load(Ordering::Relaxed) == NO_HEAD;
        if head_starts {
            self.head_started_ms.store(now, Ordering::Relaxed);
        }
        head_starts
    }

    /// Did the head just parsed carry both Content-Length and Transfer-Encoding?
    pub fn take_framing_conflict(&self) -> bool {
        self.framing_conflict.swap(false, Ordering::Relaxed)
    }

    fn on_write(&self) {
        self.last_active_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A request head was parsed; the guard marks it in flight until its
    /// response body is dropped.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started_ms.store(NO_HEAD, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Any new deadline is at least `min(header, idle)` after the event that
    /// sets it, so sleeping at most that long between looks never misses
    /// one, and the request path never has to wake the watcher.
    pub fn verdict(&self, header_timeout: Duration, idle_timeout: Duration) -> Verdict {
        let longest_sleep = header_timeout.min(idle_timeout);
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Verdict::CheckAgainIn(longest_sleep);
        }
        let now = self.now_ms();
        let (since, limit) = match self.head_started_ms.load(Ordering::Relaxed) {
            NO_HEAD => (self.last_active_ms.load(Ordering::Relaxed), idle_timeout),
            started => (started, header_timeout),
        };
        let elapsed = Duration::from_millis(now.saturating_sub(since));
        match limit.checked_sub(elapsed) {
            Some(left) if !left.is_zero() => Verdict::CheckAgainIn(left.min(longest_sleep)),
            _ => Verdict::Expired,
        }
    }
}

/// Completes when the connection has timed out (then the caller drops it).
pub async fn expired(clock: Arc<ConnClock>, header_timeout: Duration, idle_timeout: Duration) {
    while let Verdict::CheckAgainIn(wait) = clock.verdict(header_timeout, idle_timeout) {
        tokio::time::sleep(wait).await;
    }
}

pub struct InFlight(Arc<ConnClock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.on_write();
    }
}

/// The client socket, reporting reads and writes to the clock and passing
/// each request head through the framing pre-scan.
pub struct ClockedIo<T> {
    inner: T,
    clock: Arc<ConnClock>,
    scan: HeadScan,
}

impl<T> ClockedIo<T> {
    pub fn new(inner: T, clock: Arc<ConnClock>) -> Self {
        let mut scan = HeadScan::default();
        // The first head starts with the first byte.
        scan.start();
        ClockedIo { inner, clock, scan }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ClockedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let this = &mut *self;
            if this.clock.on_read() {
                this.scan.start();
            }
            if let Some(true) = this.scan.feed(&buf.filled()[before..]) {
                this.clock.framing_conflict.store(true, Ordering::Relaxed);
            }
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ClockedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.on_write();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.on_write();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
