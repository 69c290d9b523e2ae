//! Request limits and malformed input: 413, 431, slow heads, conflicting
//! framing. None of it may crash or wedge the gateway.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Response;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{eventually, full, raw, raw_keepalive, read_until_close, Gateway, Upstream};

fn limited(up: &Upstream, extra: &str) -> String {
    format!("limits:\n  max_body: 1KiB\n{extra}routes:\n  - {{ name: open, path: /*, upstream: {}, auth: none }}\n", up.url())
}

/// One request as a watching upstream saw it arrive.
#[derive(Debug, Clone, Default)]
struct Arrival {
    target: String,
    /// The body bytes received so far.
    body: Vec<u8>,
    /// How the body ended: `Some(true)` complete, `Some(false)` broken off
    /// (the stream was aborted), `None` still arriving.
    complete: Option<bool>,
}

/// An upstream that notes each request as soon as its head arrives, then
/// each body frame as it comes, then how the body ended (so a test can see
/// a request that started and never finished). Answers 200.
async fn watching_upstream() -> (Upstream, Arc<Mutex<Vec<Arrival>>>) {
    let seen = Arc::new(Mutex::new(Vec::<Arrival>::new()));
    let log = seen.clone();
    let up = Upstream::with(move |req, _| {
        let log = log.clone();
        Box::pin(async move {
            let (parts, mut body) = req.into_parts();
            let i = {
                let mut log = log.lock().unwrap();
                log.push(Arrival {
                    target: parts.uri.to_string(),
                    ..Arrival::default()
                });
                log.len() - 1
            };
            let complete = loop {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            log.lock().unwrap()[i].body.extend_from_slice(data);
                        }
                    }
                    Some(Err(_)) => break false,
                    None => break true,
                }
            };
            log.lock().unwrap()[i].complete = Some(complete);
            Response::new(full("upstream ok"))
        })
    })
    .await;
    (up, seen)
}

/// Waits until the upstream has the head of one request for /x and at
/// least `bytes` of its body: the request has started there.
async fn started(seen: &Mutex<Vec<Arrival>>, bytes: usize) {
    eventually(
        &format!("the upstream to receive the head of POST /x and {bytes} body bytes"),
        Duration::from_secs(5),
        || {
            let seen = seen.lock().unwrap();
            seen.len() == 1 && seen[0].target == "/x" && seen[0].body.len() >= bytes
        },
    )
    .await;
}

/// Waits until the one request's body ended at the upstream, and returns it.
async fn ended(seen: &Mutex<Vec<Arrival>>) -> Arrival {
    eventually(
        "the upstream's request body to end",
        Duration::from_secs(5),
        || seen.lock().unwrap().iter().all(|a| a.complete.is_some()),
    )
    .await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    seen[0].clone()
}

#[tokio::test]
async fn declared_body_over_max_body_is_413_and_never_forwarded() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&limited(&up, "")).await;
    gw.client()
        .post("/x")
        .body(vec![b'a'; 1025])
        .send()
        .await
        .assert_error(413);
    assert_eq!(
        gw.client()
            .post("/x")
            .body(vec![b'a'; 1024])
            .send()
            .await
            .status,
        200
    );
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn chunked_body_crossing_the_limit_is_413_and_the_upstream_sees_an_abort() {
    let (up, seen) = watching_upstream().await;
    let gw = Gateway::start(&limited(&up, "")).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    // 600 bytes, then 600 more: the second chunk crosses 1 KiB.
    let chunk = format!("258\r\n{}\r\n", "b".repeat(600));
    s.write_all(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    s.write_all(chunk.as_bytes()).await.unwrap();
    // The request is under way at the upstream before the limit is crossed.
    started(&seen, 600).await;
    s.write_all(chunk.as_bytes()).await.unwrap();
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let reply = String::from_utf8_lossy(&out);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    // It started there and was broken off: never a body presented as
    // complete, never a byte past the limit.
    let arrival = ended(&seen).await;
    assert_eq!(arrival.complete, Some(false), "{arrival:?}");
    assert!(
        (600..=1024).contains(&arrival.body.len()),
        "{} body bytes reached the upstream",
        arrival.body.len()
    );
}

#[tokio::test]
async fn oversized_head_is_431() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&limited(&up, "")).await;
    let req = format!(
        "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "h".repeat(70 * 1024)
    );
    let reply = raw(gw.addr, req.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply:.200}");
    // Just under the limit still works.
    let req = format!(
        "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "h".repeat(60 * 1024)
    );
    assert!(raw(gw.addr, req.as_bytes())
        .await
        .starts_with("HTTP/1.1 200"));
    assert!(up
        .requests()
        .iter()
        .all(|r| r.headers.get("x-big").is_none_or(|v| v.len() < 64 * 1024)));
}

#[tokio::test]
async fn slow_head_is_cut_at_header_timeout() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&limited(&up, "  header_timeout: 300ms\n")).await;
    // Slowloris: a head that never completes.
    let (_, closed) = raw_keepalive(
        gw.addr,
        b"GET /x HTTP/1.1\r\nHost: a\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(
        closed,
        "the connection should be closed after header_timeout"
    );
    // A silent connection that never sends a byte is cut too (counted from accept).
    let (_, closed) = raw_keepalive(gw.addr, b"", Duration::from_secs(3)).await;
    assert!(closed);
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn keep_alive_idle_time_is_not_counted_as_header_time() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&limited(
        &up,
        "  header_timeout: 300ms\n  idle_timeout: 5s\n",
    ))
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    for _ in 0..2 {
        s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        // Idle longer than header_timeout but well within idle_timeout.
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert_eq!(up.requests().len(), 2);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&limited(&up, "  idle_timeout: 300ms\n")).await;
    let (reply, closed) = raw_keepalive(
        gw.addr,
        b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        closed,
        "an idle keep-alive connection should be closed after idle_timeout"
    );
}

#[tokio::test]
async fn conflicting_content_length_and_transfer_encoding_is_400_and_closed() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&limited(&up, "")).await;
    let req = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let (reply, closed) = raw_keepalive(gw.addr, req, Duration::from_secs(3)).await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(closed);
    assert!(
        up.requests().iter().all(|r| r.target != "/smuggled"),
        "a smuggled request reached the upstream"
    );
}

#[tokio::test]
async fn malformed_requests_get_400_and_other_connections_carry_on() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&limited(&up, "")).await;
    let garbage: [&[u8]; 5] = [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost a\r\n\r\n",
        b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"GET /x HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    ];
    for g in garbage {
        let reply = raw(gw.addr, g).await;
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 4"),
            "{:?} -> {reply}",
            String::from_utf8_lossy(g)
        );
    }
    assert_eq!(gw.client().get("/x").send().await.status, 200);
}

#[tokio::test]
async fn a_malformed_chunked_body_is_the_clients_400_not_a_502() {
    let (up, seen) = watching_upstream().await;
    let gw = Gateway::start(&limited(&up, "")).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .await
        .unwrap();
    started(&seen, 5).await;
    s.write_all(b"ZZZ\r\n\r\n").await.unwrap();
    let (reply, closed) = read_until_close(&mut s, Duration::from_secs(3)).await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("connection: close"), "{reply}");
    assert!(closed);
    // The upstream saw the request start and then aborted, not completed.
    let arrival = ended(&seen).await;
    assert_eq!(arrival.complete, Some(false), "{arrival:?}");
    assert_eq!(arrival.body, b"hello", "{arrival:?}");
}

#[tokio::test]
async fn a_413_before_the_body_is_read_says_connection_close() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&limited(&up, "")).await;
    let req = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 999999\r\n\r\n";
    let (reply, closed) = raw_keepalive(gw.addr, req, Duration::from_secs(3)).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("connection: close"), "{reply}");
    assert!(closed);
}
