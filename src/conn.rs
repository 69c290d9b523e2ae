//! Per-connection clock for the two connection timeouts hyper does not give
//! us in the form SPEC section 8 asks:
//! - `header_timeout`, counted from accept, then from the first byte of each
//!   later request head (hyper's own timer would also count keep-alive idle time);
//! - `idle_timeout`: no request in flight and no bytes either way.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

const NO_HEAD: u64 = u64::MAX;

pub struct ConnClock {
    epoch: Instant,
    last_active_ms: AtomicU64,
    /// When the head now being read started (`NO_HEAD`: none is being read).
    head_started_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Wakes the watcher when a deadline may have moved earlier.
    changed: Notify,
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
            changed: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn on_read(&self) {
        let now = self.now_ms();
        self.last_active_ms.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started_ms.load(Ordering::Relaxed) == NO_HEAD
        {
            self.head_started_ms.store(now, Ordering::Relaxed);
            self.changed.notify_one();
        }
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

    pub fn verdict(&self, header_timeout: Duration, idle_timeout: Duration) -> Verdict {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Verdict::CheckAgainIn(header_timeout.min(idle_timeout));
        }
        let now = self.now_ms();
        let (since, limit) = match self.head_started_ms.load(Ordering::Relaxed) {
            NO_HEAD => (self.last_active_ms.load(Ordering::Relaxed), idle_timeout),
            started => (started, header_timeout),
        };
        let elapsed = Duration::from_millis(now.saturating_sub(since));
        match limit.checked_sub(elapsed) {
            Some(left) if !left.is_zero() => Verdict::CheckAgainIn(left),
            _ => Verdict::Expired,
        }
    }
}

/// Completes when the connection has timed out (then the caller drops it).
pub async fn expired(clock: Arc<ConnClock>, header_timeout: Duration, idle_timeout: Duration) {
    while let Verdict::CheckAgainIn(wait) = clock.verdict(header_timeout, idle_timeout) {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = clock.changed.notified() => {}
        }
    }
}

pub struct InFlight(Arc<ConnClock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.on_write();
        self.0.changed.notify_one();
    }
}

/// The client socket, reporting reads and writes to the clock.
pub struct ClockedIo<T> {
    inner: T,
    clock: Arc<ConnClock>,
}

impl<T> ClockedIo<T> {
    pub fn new(inner: T, clock: Arc<ConnClock>) -> Self {
        ClockedIo { inner, clock }
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
            self.clock.on_read();
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
