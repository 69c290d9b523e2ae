//! Upstream failures: refused, reset, timed out, stalled mid-body, slow to
//! read, malformed, closing pooled connections. The gateway answers 502 or
//! 504 or cuts the downstream, never hangs, and leaks no descriptor.

use std::net::SocketAddr;
use std::time::Duration;

use http::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::harness::{full, raw, within, Binary, Gateway, Upstream};

/// A hand-written upstream: reads a request, writes `head`, then (after
/// `pause`) `tail`, then closes.
async fn scripted_upstream(
    head: &'static [u8],
    pause: Duration,
    tail: &'static [u8],
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(head).await;
                tokio::time::sleep(pause).await;
                let _ = s.write_all(tail).await;
            });
        }
    });
    addr
}

/// Answers each request completely (`200 ok`), then closes the connection
/// without saying so, as a server with a short keep-alive timeout does.
/// Whatever else arrives on that connection goes unanswered. Once the
/// gateway has closed its end too (so the close reached its pool), one
/// `()` per connection arrives on the returned channel.
async fn answering_then_closing_upstream() -> (SocketAddr, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let closed_tx = closed_tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                let _ = s.shutdown().await;
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                let _ = closed_tx.send(());
            });
        }
    });
    (addr, closed)
}

fn route(addr: impl std::fmt::Display, timeout: &str) -> String {
    format!("routes:\n  - {{ name: r, path: /*, upstream: http://{addr}, auth: none, timeout: {timeout} }}\n")
}

#[tokio::test]
async fn slow_response_head_is_504() {
    let up = Upstream::with(|_req, _log| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Response::new(full("late"))
        })
    })
    .await;
    let gw = Gateway::start(&route(up.addr, "300ms")).await;
    let started = std::time::Instant::now();
    gw.client().get("/x").send().await.assert_error(504);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn body_stalled_longer_than_timeout_cuts_the_downstream() {
    let addr = scripted_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst",
        Duration::from_secs(5),
        b"never",
    )
    .await;
    let gw = Gateway::start(&route(addr, "300ms")).await;
    let started = std::time::Instant::now();
    let reply = raw(gw.addr, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("first"), "{reply}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the stalled body was not cut"
    );
}

#[tokio::test]
async fn malformed_upstream_response_is_502() {
    let addr = scripted_upstream(b"HTTP/1.1 abc nonsense\r\n\r\n", Duration::ZERO, b"").await;
    let gw = Gateway::start(&route(addr, "5s")).await;
    gw.client().get("/x").send().await.assert_error(502);
}

#[tokio::test]
async fn upstream_closing_before_the_head_is_502() {
    let addr = scripted_upstream(b"", Duration::ZERO, b"").await;
    let gw = Gateway::start(&route(addr, "5s")).await;
    gw.client().get("/x").send().await.assert_error(502);
}

#[tokio::test]
async fn upstream_closing_idle_keep_alive_connections_is_not_an_error() {
    let (addr, mut closed) = answering_then_closing_upstream().await;
    let gw = Gateway::start(&route(addr, "5s")).await;
    for i in 0..5 {
        let res = gw.client().get("/x").send().await;
        assert_eq!(res.status, 200, "request {i}: {:?}", res.body);
        // The next request goes only once the upstream has closed this
        // connection and the gateway has closed its end: the pooled
        // connection is dead, not merely about to be (no sleep to hope so).
        tokio::time::timeout(Duration::from_secs(5), closed.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("request {i}: the gateway kept open a connection the upstream closed")
            })
            .expect("the upstream is running");
    }
}

#[tokio::test]
async fn idle_upstream_connections_close_after_idle_timeout() {
    let up = Upstream::start().await;
    let yaml = format!(
        "limits:\n  idle_timeout: 200ms\nroutes:\n  - {{ name: r, path: \"/*\", upstream: {}, auth: none }}\n",
        up.url()
    );
    let gw = Gateway::start(&yaml).await;
    assert_eq!(gw.client().get("/x").send().await.status, 200);
    assert_eq!(gw.client().get("/x").send().await.status, 200);
    assert_eq!(
        up.connections(),
        1,
        "back-to-back requests reuse the connection"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(gw.client().get("/x").send().await.status, 200);
    assert_eq!(
        up.connections(),
        2,
        "an idle pooled connection should have been closed"
    );
}

/// Answers with a head and part of the body, then resets the connection.
async fn resetting_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                    .await;
                let _ = s.flush().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = s.set_zero_linger();
                drop(s); // RST, not FIN
            });
        }
    });
    addr
}

/// Accepts and reads the request body a few bytes at a time, never answering.
async fn slow_reading_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 16];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_reset_mid_response_cuts_the_downstream_without_a_hang() {
    let addr = resetting_upstream().await;
    let gw = Gateway::start(&route(addr, "5s")).await;
    let started = std::time::Instant::now();
    let reply = raw(gw.addr, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("partial"), "{reply}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the cut was not passed on"
    );
    // The next request gets a fresh connection and the same treatment.
    let res = gw.client().get("/x").try_send().await;
    assert!(
        res.is_err(),
        "a truncated body must surface as an error: {res:?}"
    );
}

#[tokio::test]
async fn an_upstream_reading_the_body_slowly_gets_504_at_the_route_timeout() {
    let addr = slow_reading_upstream().await;
    let gw = Gateway::start(&route(addr, "500ms")).await;
    let started = std::time::Instant::now();
    let res = gw
        .client()
        .post("/upload")
        .body(vec![b'x'; 4 << 20])
        .try_send()
        .await;
    // Either the 504 arrives, or the gateway stops reading our body and the
    // connection ends; both within the timeout plus slack, never a hang.
    if let Ok(r) = &res {
        r.assert_error(504);
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(gw.client().get("/again").send().await.status, 504);
}

#[tokio::test]
async fn an_upstream_closing_each_connection_after_answering_loses_no_request() {
    // The worst case for a pool: every connection dies right after its
    // response, so a reused one is always about to be (or already) closed.
    let (addr, _closed) = answering_then_closing_upstream().await;
    let gw = Gateway::start(&route(addr, "5s")).await;
    let c = gw.client();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            for i in 0..100 {
                let r = c.get("/x").send().await;
                if r.status != 200 {
                    failed.push((i, r.status, r.body));
                }
            }
            failed
        }));
    }
    for t in tasks {
        let failed = t.await.unwrap();
        assert!(failed.is_empty(), "{failed:?}");
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn ten_thousand_failing_requests_leak_no_descriptor() {
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap() // closed on drop: connections are refused
    };
    let reset = resetting_upstream().await;
    let malformed = scripted_upstream(b"HTTP/1.1 abc\r\n\r\n", Duration::ZERO, b"").await;
    let silent = scripted_upstream(b"", Duration::from_secs(30), b"").await;
    let yaml = format!(
        "log: {{ access: false }}\nroutes:\n\
         \x20 - {{ name: refused, path: /refused, upstream: http://{refused}, auth: none }}\n\
         \x20 - {{ name: reset, path: /reset, upstream: http://{reset}, auth: none }}\n\
         \x20 - {{ name: malformed, path: /malformed, upstream: http://{malformed}, auth: none }}\n\
         \x20 - {{ name: silent, path: /silent, upstream: http://{silent}, auth: none, timeout: 50ms }}\n"
    );
    let gw = Binary::serve(&yaml).await;
    let baseline = open_fds(gw.pid());
    let paths = ["/refused", "/reset", "/malformed", "/silent"];
    let mut tasks = Vec::new();
    for worker in 0..32 {
        let c = gw.client();
        tasks.push(tokio::spawn(async move {
            let mut statuses = std::collections::BTreeMap::new();
            for n in (worker..10_000).step_by(32) {
                let status = match c.get(paths[n % 4]).try_send().await {
                    Ok(r) => r.status.as_u16(),
                    Err(_) => 0, // a cut body
                };
                *statuses.entry(status).or_insert(0) += 1;
            }
            statuses
        }));
    }
    let mut statuses = std::collections::BTreeMap::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *statuses.entry(k).or_insert(0u32) += v;
        }
    }
    assert_eq!(statuses.values().sum::<u32>(), 10_000);
    assert!(
        statuses.keys().all(|s| [0, 200, 502, 504].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(statuses.get(&504), Some(&2500), "{statuses:?}");
    // The clients are gone; every descriptor they and the failures used
    // must be closed again.
    let closed = within(Duration::from_secs(10), || {
        std::future::ready(open_fds(gw.pid()) <= baseline)
    })
    .await;
    assert!(
        closed,
        "open descriptors: {baseline} before, {} after 10,000 failing requests ({statuses:?})",
        open_fds(gw.pid())
    );
}
