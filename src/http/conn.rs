//! Per-connection clock for the connection timeouts hyper does not give us
//! in the form docs/operations.md describes:
//! - `header_timeout`, counted from accept, then from the first byte of each
//!   later request head (hyper's own timer would also count keep-alive idle time);
//! - `idle_timeout`: no request in flight and no bytes either way;
//! - the write stall, also `idle_timeout`: a response has bytes ready that
//!   the client has not accepted (a full socket, an HTTP/2 window held at
//!   0), requests in flight or not, so a silent client cannot pin memory.
//!
//! The stall needs the response's side of the story: with a zero window
//! hyper stops polling a body, and socket writes alone cannot tell a
//! response waiting on its client from one waiting on its upstream (which
//! the route's timeout bounds, not this). So each response body reports
//! through its `InFlight` when its bytes wait on the client ("owed") and
//! when they wait on their source, and the socket wrapper reports when the
//! client accepted response bytes: any write on HTTP/1.1, a DATA frame on
//! HTTP/2 (PING and SETTINGS acknowledgements, which a silent client can
//! cause, do not count).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::http::admission::Admitted;
use crate::http::framing::{FrameScan, HeadScan, Written};

const NO_HEAD: u64 = u64::MAX;
/// An unused slot in `Owed::since_ms`.
const FREE: u64 = u64::MAX;

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
    /// Set once the HTTP/2 preface was read.
    h2: AtomicBool,
    /// When the client last accepted response bytes.
    accepted_ms: AtomicU64,
    owed: Mutex<Owed>,
}

/// What the connection owes its client: responses whose bytes wait on it.
#[derive(Default)]
struct Owed {
    /// One slot per response whose bytes wait on the client: when it last
    /// produced bytes (`FREE`: the slot is unused).
    since_ms: Vec<u64>,
    free: Vec<usize>,
    /// HTTP/2: responses that handed hyper their end, whose END_STREAM
    /// frame is not written yet (the window may hold it back)...
    unsent_ends: usize,
    /// ...and since when there has been at least one.
    unsent_ends_since_ms: u64,
}

impl Owed {
    fn take_slot(&mut self, now: u64) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.since_ms[i] = now;
                i
            }
            None => {
                self.since_ms.push(now);
                self.since_ms.len() - 1
            }
        }
    }

    fn free_slot(&mut self, i: usize) {
        self.since_ms[i] = FREE;
        self.free.push(i);
    }

    /// Since when the longest-waiting response has waited on the client.
    fn oldest(&self) -> Option<u64> {
        let bodies = self.since_ms.iter().copied().filter(|&t| t != FREE).min();
        let ends = (self.unsent_ends > 0).then_some(self.unsent_ends_since_ms);
        bodies.into_iter().chain(ends).min()
    }
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
            h2: AtomicBool::new(false),
            accepted_ms: AtomicU64::new(0),
            owed: Mutex::default(),
        })
    }

    fn owed(&self) -> MutexGuard<'_, Owed> {
        // Every critical section leaves `Owed` consistent, so a panic
        // elsewhere while holding the lock cannot have broken it.
        self.owed.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Bytes went out; on HTTP/2, `written` says which of them were
    /// response bytes and how many responses' last frames.
    fn on_written(&self, written: Option<Written>) {
        let now = self.now_ms();
        self.last_active_ms.store(now, Ordering::Relaxed);
        let Some(w) = written else {
            // HTTP/1.1: every byte written is a response's.
            self.accepted_ms.store(now, Ordering::Relaxed);
            return;
        };
        if w.data {
            self.accepted_ms.store(now, Ordering::Relaxed);
        }
        if w.ends > 0 {
            let mut owed = self.owed();
            owed.unsent_ends = owed.unsent_ends.saturating_sub(w.ends);
        }
    }

    /// A request head was parsed; the guard marks it in flight until its
    /// response body is dropped.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started_ms.store(NO_HEAD, Ordering::Relaxed);
        InFlight {
            clock: self.clone(),
            slot: None,
        }
    }

    /// Any new deadline is at least `min(header, idle)` after the event that
    /// sets it, so sleeping at most that long between looks never misses
    /// one, and the request path never has to wake the watcher.
    pub fn verdict(&self, header_timeout: Duration, idle_timeout: Duration) -> Verdict {
        let longest_sleep = header_timeout.min(idle_timeout);
        let now = self.now_ms();
        let (since, limit) = if self.in_flight.load(Ordering::Relaxed) > 0 {
            // Requests in flight: only a write stall ends the connection.
            let Some(owed) = self.owed().oldest() else {
                return Verdict::CheckAgainIn(longest_sleep);
            };
            let accepted = self.accepted_ms.load(Ordering::Relaxed);
            (owed.max(accepted), idle_timeout)
        } else {
            match self.head_started_ms.load(Ordering::Relaxed) {
                NO_HEAD => (self.last_active_ms.load(Ordering::Relaxed), idle_timeout),
                started => (started, header_timeout),
            }
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

/// A request from its head until its response body is dropped; through it
/// the response tells the clock when its bytes wait on the client.
pub struct InFlight {
    clock: Arc<ConnClock>,
    /// The response's slot in `Owed` while its bytes wait on the client.
    slot: Option<usize>,
}

impl InFlight {
    /// The response has bytes ready (just made, or handed to hyper) that
    /// wait on the client, from now.
    pub fn owe(&mut self) {
        let now = self.clock.now_ms();
        let mut owed = self.clock.owed();
        match self.slot {
            Some(i) => owed.since_ms[i] = now,
            None => self.slot = Some(owed.take_slot(now)),
        }
    }

    /// The response waits on its source (an upstream), not on the client.
    pub fn settle(&mut self) {
        if let Some(i) = self.slot.take() {
            self.clock.owed().free_slot(i);
        }
    }

    /// The response hands hyper its last frame now. On HTTP/2 its bytes
    /// can outlive the body in hyper's and h2's buffers, held by the
    /// window, until the END_STREAM frame is written.
    pub fn ending(&mut self) {
        if !self.clock.h2.load(Ordering::Relaxed) {
            return;
        }
        let now = self.clock.now_ms();
        let mut owed = self.clock.owed();
        if owed.unsent_ends == 0 {
            owed.unsent_ends_since_ms = now;
        }
        owed.unsent_ends += 1;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.settle();
        let last = self.clock.in_flight.fetch_sub(1, Ordering::Relaxed) == 1;
        if last && self.clock.h2.load(Ordering::Relaxed) {
            // Nothing in flight: the idle and header clocks take over, and
            // an end whose frame a reset discarded must not count later.
            self.clock.owed().unsent_ends = 0;
        }
        self.clock.on_write();
    }
}

/// The client socket, reporting reads and writes to the clock and passing
/// each request head through the framing pre-scan.
pub struct ClockedIo<T> {
    inner: T,
    clock: Arc<ConnClock>,
    scan: HeadScan,
    /// HTTP/2: the frames going out, once the preface came in.
    frames: Option<FrameScan>,
    /// The connection's place under the connection caps, given back when
    /// the socket closes (after a WebSocket tunnel on it, too).
    _admitted: Admitted,
}

impl<T> ClockedIo<T> {
    pub fn new(inner: T, clock: Arc<ConnClock>, admitted: Admitted) -> Self {
        let mut scan = HeadScan::default();
        // The first head starts with the first byte.
        scan.start();
        ClockedIo {
            inner,
            clock,
            scan,
            frames: None,
            _admitted: admitted,
        }
    }

    fn written<'a>(&mut self, bufs: impl Iterator<Item = &'a [u8]>, mut n: usize) {
        let written = self.frames.as_mut().map(|frames| {
            let mut w = Written::default();
            for b in bufs {
                let take = n.min(b.len());
                frames.feed(&b[..take], &mut w);
                n -= take;
                if n == 0 {
                    break;
                }
            }
            w
        });
        self.clock.on_written(written);
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
            if this.frames.is_none() && this.scan.is_http2() {
                this.frames = Some(FrameScan::default());
                this.clock.h2.store(true, Ordering::Relaxed);
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
        if let Poll::Ready(Ok(n)) = res {
            if n > 0 {
                self.written(std::iter::once(data), n);
            }
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            if n > 0 {
                self.written(bufs.iter().map(|b| &**b), n);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_millis(100);

    fn expired(c: &ConnClock) -> bool {
        matches!(c.verdict(HEADER, IDLE), Verdict::Expired)
    }

    fn wait_past_idle() {
        std::thread::sleep(IDLE + Duration::from_millis(20));
    }

    #[test]
    fn bytes_owed_to_a_silent_client_expire_bytes_awaited_from_upstream_do_not() {
        let clock = ConnClock::new();
        let mut r = clock.request_started();
        r.owe();
        assert!(!expired(&clock));
        wait_past_idle();
        assert!(expired(&clock));
        // The client accepted bytes: not a stall (yet).
        clock.on_written(None);
        assert!(!expired(&clock));
        // Waiting on its upstream: the route's timeout bounds that.
        r.settle();
        wait_past_idle();
        assert!(!expired(&clock));
        // Producing again starts a new wait on the client.
        r.owe();
        assert!(!expired(&clock));
    }

    #[test]
    fn on_http2_only_data_frames_count_as_accepted() {
        let clock = ConnClock::new();
        clock.h2.store(true, Ordering::Relaxed);
        let mut r = clock.request_started();
        r.owe();
        wait_past_idle();
        // A PING or SETTINGS acknowledgement went out.
        clock.on_written(Some(Written::default()));
        assert!(expired(&clock));
        clock.on_written(Some(Written {
            data: true,
            ends: 0,
        }));
        assert!(!expired(&clock));
    }

    #[test]
    fn an_http2_end_is_owed_until_its_frame_is_written() {
        let clock = ConnClock::new();
        clock.h2.store(true, Ordering::Relaxed);
        // Another request keeps the connection in flight.
        let _other = clock.request_started();
        let mut r = clock.request_started();
        r.owe();
        r.ending();
        // hyper dropped the body; its last bytes sit behind the window.
        drop(r);
        wait_past_idle();
        assert!(expired(&clock));
        clock.on_written(Some(Written {
            data: false,
            ends: 1,
        }));
        assert!(!expired(&clock));
    }

    #[test]
    fn an_end_lost_to_a_reset_is_forgotten_once_nothing_is_in_flight() {
        let clock = ConnClock::new();
        clock.h2.store(true, Ordering::Relaxed);
        let mut r = clock.request_started();
        r.ending();
        drop(r);
        assert_eq!(clock.owed().unsent_ends, 0);
        // A later request is not blamed for it.
        let mut next = clock.request_started();
        next.settle();
        wait_past_idle();
        assert!(!expired(&clock));
    }
}
