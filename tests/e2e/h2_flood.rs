//! Denial of service from outside, HTTP/2 first: clients that never accept
//! their responses. Each attack is bounded in count and time, on loopback.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::harness::h2::{self, Block, Read, H2};
use crate::harness::{Binary, Gateway, Upstream};

/// Echo and upstream routes, with `limits` lines added.
fn yaml(up: &Upstream, limits: &str) -> String {
    format!(
        "log: {{ access: false }}\nlimits:\n  max_body: 1MiB\n{limits}routes:\n  - {{ name: echo, path: /echo, echo: true, auth: none }}\n  - {{ name: up, path: /up/*, upstream: {}, auth: none }}\n",
        up.url()
    )
}

/// A MiB, in the KiB that /proc reports.
const MIB: u64 = 1024;

/// How long the upstream's slow paths take: `/slow-head` before its head,
/// `/slow-body` between its first and last chunk.
const SLOW: Duration = Duration::from_millis(1500);

/// `first` at once, then `rest` after `SLOW`.
struct SlowBody {
    first_sent: bool,
    pause: Pin<Box<tokio::time::Sleep>>,
    done: bool,
}

impl Body for SlowBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if !self.first_sent {
            self.first_sent = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first")))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        std::task::ready!(self.pause.as_mut().poll(cx));
        self.done = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"rest")))))
    }
}

/// `left` bytes, produced as fast as they are read.
struct Filler {
    left: usize,
}

impl Body for Filler {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let n = self.left.min(64 * 1024);
        if n == 0 {
            return Poll::Ready(None);
        }
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'f'; n])))))
    }
}

/// Bytes of `.../big`: more than loopback socket buffers hold.
const BIG: usize = 32 << 20;

/// An upstream with a slow head (`.../slow-head`), a slow body
/// (`.../slow-body`) and a big one (`.../big`); anything else is answered
/// at once.
async fn slow_upstream() -> Upstream {
    Upstream::with(|req, _log| {
        Box::pin(async move {
            let path = req.uri().path().to_string();
            if path.ends_with("/slow-head") {
                tokio::time::sleep(SLOW).await;
            }
            if path.ends_with("/slow-body") {
                let body = SlowBody {
                    first_sent: false,
                    pause: Box::pin(tokio::time::sleep(SLOW)),
                    done: false,
                };
                return Response::new(body.boxed());
            }
            if path.ends_with("/big") {
                return Response::new(Filler { left: BIG }.boxed());
            }
            Response::new(crate::harness::full("upstream ok"))
        })
    })
    .await
}

// Reproduces the zero-window report: an h2c client that advertises
// SETTINGS_INITIAL_WINDOW_SIZE=0 (or 1), opens streams and goes silent made
// the gateway hold every response it could never send, for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_held_at_a_zero_window_are_closed_and_their_memory_freed() {
    const CONNS: usize = 20;
    const STREAMS: u32 = 100;
    // Each echo request names one 4000-byte header 12 times (a byte each),
    // so each echo response is ~48 KB the gateway builds and cannot send.
    const PAD_REFS: usize = 12;
    let up = Upstream::start().await;
    let gw = Binary::serve(&yaml(&up, "  idle_timeout: 1s\n")).await;
    let c = gw.client();
    assert_eq!(c.get("/echo").send().await.status, 200);
    assert_eq!(c.get("/up/warm").send().await.status, 200);
    let baseline = h2::rss_kib(gw.pid());

    let pad = "p".repeat(4000);
    let mut attack = Vec::new();
    for n in 0..CONNS {
        // Half hold the window at 0; half let one byte a stream out.
        let window = (n % 2) as u32;
        let mut conn = H2::connect(gw.addr, &[(h2::INITIAL_WINDOW_SIZE, window)]).await;
        let mut frames = Vec::new();
        for i in 0..STREAMS {
            let stream = 2 * i + 1;
            let block = match i {
                0 => Block::request("GET", "/echo").indexed_header("x-pad", &pad),
                _ if i % 5 == 4 => Block::request("GET", &format!("/up/{i}")),
                _ => Block::request("GET", "/echo").references(62, PAD_REFS),
            };
            frames.extend(h2::get(stream, &block));
        }
        conn.send(&frames).await.unwrap();
        attack.push(conn);
    }
    // Then silence. The gateway stays responsive meanwhile.
    let silent_since = Instant::now();
    assert_eq!(c.get("/echo").send().await.status, 200);
    let held = h2::rss_kib(gw.pid());

    // Each attacker socket stays open until memory has been measured: only
    // the gateway may end these connections.
    let waits: Vec<_> = attack
        .into_iter()
        .map(|mut conn| {
            tokio::spawn(async move {
                let closed = conn.closed_within(Duration::from_secs(8)).await;
                (closed.map(|_| silent_since.elapsed()), conn)
            })
        })
        .collect();
    let mut closed = Vec::new();
    let mut sockets = Vec::new();
    for w in waits {
        let (took, conn) = w.await.unwrap();
        closed.extend(took);
        sockets.push(conn);
    }
    // Give the allocator a moment to hand freed pages back.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = h2::rss_kib(gw.pid());
    let report = format!(
        "{} of {CONNS} connections closed by the gateway (the last {:?} into the silence); RSS {} MiB before, {} MiB while held, {} MiB after, peak {} MiB",
        closed.len(),
        closed.iter().max(),
        baseline / MIB,
        held / MIB,
        after / MIB,
        gw.peak_rss_kib() / MIB,
    );
    eprintln!("{report}");
    drop(sockets);
    assert_eq!(closed.len(), CONNS, "{report}");
    // idle_timeout (1s), plus at most one look of the connection's watcher.
    assert!(
        closed.iter().all(|t| *t < Duration::from_secs(5)),
        "{report}"
    );
    // Held, the responses take ~130 MiB; what stays after is the
    // allocator's (20-35 MiB seen).
    assert!(after < baseline + 64 * MIB, "{report}");
    assert_eq!(c.get("/echo").send().await.status, 200);
    assert_eq!(c.get("/up/after").send().await.status, 200);
}

#[tokio::test]
async fn an_http1_client_that_stops_reading_is_cut_after_idle_timeout() {
    let up = slow_upstream().await;
    let gw = Gateway::start(&yaml(&up, "  idle_timeout: 1s\n")).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /up/big HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // Read nothing while the socket buffers fill and the response stalls...
    tokio::time::sleep(Duration::from_secs(4)).await;
    // ...then everything there is: the gateway gave up on the rest.
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 16];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got += n,
            Err(_) => break false,
        }
    };
    assert!(closed, "still open after {got} bytes");
    assert!(got < BIG, "the whole body was sent ({got} bytes)");
    assert_eq!(gw.client().get("/echo").send().await.status, 200);
}

#[tokio::test]
async fn a_slow_upstream_body_is_not_a_write_stall() {
    let up = slow_upstream().await;
    let gw = Gateway::start(&yaml(&up, "  idle_timeout: 1s\n")).await;
    // The upstream pauses longer than idle_timeout mid-body: the route's
    // timeout bounds that, not the stall.
    let res = gw.client().get("/up/slow-body").send().await;
    assert_eq!(
        (res.status.as_u16(), &res.body[..]),
        (200, &b"firstrest"[..])
    );
    let mut conn = H2::connect(gw.addr, &[]).await;
    conn.send(&h2::get(1, &Block::request("GET", "/up/slow-body")))
        .await
        .unwrap();
    let mut body = Vec::new();
    loop {
        match conn.read_frame(SLOW * 3).await {
            Read::Frame(f) if f.kind == h2::DATA => {
                body.extend_from_slice(&f.payload);
                if f.flags & h2::END_STREAM != 0 {
                    break;
                }
            }
            Read::Frame(f) => assert_ne!(f.kind, h2::RST_STREAM, "{f:?}"),
            other => panic!("{other:?} after {body:?}"),
        }
    }
    assert_eq!(body, b"firstrest");
}
