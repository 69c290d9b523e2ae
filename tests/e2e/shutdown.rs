//! SIGTERM: listeners close at once, idle keep-alive connections close,
//! requests in flight finish (with `Connection: close`) within
//! `shutdown_timeout`, then the process exits 0.

use std::time::{Duration, Instant};

use http::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{eventually, eventually_async, full, read_until_close, Binary, Upstream};

async fn slow_upstream(delay: Duration) -> Upstream {
    Upstream::with(move |req, log| {
        Box::pin(async move {
            crate::harness::upstream::record(req, &log).await;
            tokio::time::sleep(delay).await;
            Response::new(full("finally"))
        })
    })
    .await
}

fn yaml(up: &Upstream, shutdown_timeout: &str) -> String {
    format!(
        "limits: {{ shutdown_timeout: {shutdown_timeout} }}\nroutes:\n  - {{ name: slow, path: /slow, upstream: {}, auth: none }}\n  - {{ name: quick, path: /quick, echo: true, auth: none }}\n",
        up.url()
    )
}

/// A connection whose request is waiting at the slow upstream.
async fn in_flight(gw: &Binary, up: &Upstream) -> TcpStream {
    let mut busy = TcpStream::connect(gw.addr).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    eventually(
        "the upstream to get the request",
        Duration::from_secs(5),
        || up.requests().len() == 1,
    )
    .await;
    busy
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish_with_connection_close_then_exits_0() {
    let up = slow_upstream(Duration::from_millis(1500)).await;
    let mut gw = Binary::serve(&yaml(&up, "30s")).await;
    // A keep-alive connection, idle after one answered request.
    let mut idle = TcpStream::connect(gw.addr).await.unwrap();
    idle.write_all(b"GET /quick HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    assert!(idle.read(&mut buf).await.unwrap() > 0);
    let mut busy = in_flight(&gw, &up).await;
    let sent = Instant::now();
    gw.signal("TERM");
    // The idle connection is closed at once, the listener too.
    let (_, closed) = read_until_close(&mut idle, Duration::from_secs(1)).await;
    assert!(closed, "idle keep-alive connection left open");
    let addr = gw.addr;
    eventually_async(
        "the listener to stop accepting",
        Duration::from_secs(1),
        || async move { TcpStream::connect(addr).await.is_err() },
    )
    .await;
    // The request in flight gets its whole answer, marked as the last.
    let (answer, closed) = read_until_close(&mut busy, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(answer.ends_with("finally"), "{answer}");
    assert!(closed);
    assert!(sent.elapsed() >= Duration::from_millis(1000));
    let status = gw.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert!(gw.stderr().contains("shutting down"));
}

#[tokio::test]
async fn shutdown_timeout_bounds_the_drain() {
    let up = slow_upstream(Duration::from_secs(30)).await;
    let mut gw = Binary::serve(&yaml(&up, "1s")).await;
    let mut busy = in_flight(&gw, &up).await;
    let sent = Instant::now();
    gw.signal("TERM");
    let (_, closed) = read_until_close(&mut busy, Duration::from_secs(10)).await;
    assert!(closed, "the request outlived shutdown_timeout");
    assert_eq!(gw.wait_exit().code(), Some(0));
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "drain took {took:?}"
    );
}
