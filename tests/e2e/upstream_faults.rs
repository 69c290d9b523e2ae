//! Upstream failures: refused, timed out, stalled mid-body, malformed.

use std::net::SocketAddr;
use std::time::Duration;

use http::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::harness::{full, raw, Gateway, Upstream};

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
    // Answers each request completely, then closes the connection without
    // saying so (as a server with a short keep-alive timeout does).
    let addr = scripted_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        Duration::ZERO,
        b"",
    )
    .await;
    let gw = Gateway::start(&route(addr, "5s")).await;
    for i in 0..5 {
        let res = gw.client().get("/x").send().await;
        assert_eq!(res.status, 200, "request {i}: {:?}", res.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
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
