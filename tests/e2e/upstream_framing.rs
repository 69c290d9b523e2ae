//! How the gateway reads an upstream's HTTP/1.1 responses (its own parser,
//! docs/routing.md): framing by the RFC 9112 rules, bytes past a response
//! never served to anyone, ambiguous or malformed heads refused with 502,
//! interim responses skipped, and an answer sent before the request body
//! was read passed on at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::harness::{raw, Gateway};

/// An upstream writing `answer` for each request head it reads (bodies are
/// not read), keeping the connection open; counts the connections.
async fn answering(answer: &'static [u8]) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, conns)
}

fn route(addr: SocketAddr) -> String {
    format!(
        "routes:\n  - {{ name: r, path: /*, upstream: http://{addr}, auth: none, timeout: 3s }}\n"
    )
}

#[tokio::test]
async fn bytes_after_a_response_are_never_served_to_the_next_request() {
    // A response followed by a second, unasked-for one: a desync attempt
    // (or a broken upstream). Its connection must never serve again.
    let (addr, conns) = answering(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\
          HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged",
    )
    .await;
    let gw = Gateway::start(&route(addr)).await;
    for i in 0..5 {
        let res = gw.client().get(&format!("/{i}")).send().await;
        assert_eq!(res.status, 200, "request {i}");
        assert_eq!(res.body, "ok", "request {i}");
    }
    assert_eq!(
        conns.load(Ordering::SeqCst),
        5,
        "a connection with stray bytes was reused"
    );
}

#[tokio::test]
async fn a_clean_response_keeps_its_connection_and_a_chunked_one_with_a_length_does_not() {
    let (addr, conns) = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let gw = Gateway::start(&route(addr)).await;
    for _ in 0..3 {
        assert_eq!(gw.client().get("/").send().await.body, "ok");
    }
    assert_eq!(
        conns.load(Ordering::SeqCst),
        1,
        "a clean keep-alive connection is reused"
    );

    // Both framings: chunked wins (RFC 9112 section 6.3), and the
    // connection is not trusted with another request.
    let (addr, conns) = answering(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let gw = Gateway::start(&route(addr)).await;
    for _ in 0..2 {
        assert_eq!(gw.client().get("/").send().await.body, "hello");
    }
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn ambiguous_or_malformed_response_heads_are_502() {
    let cases: [(&str, &'static [u8]); 7] = [
        (
            "two lengths",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        ),
        (
            "a length list that disagrees",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok",
        ),
        (
            "a signed length",
            b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
        ),
        (
            "a folded header",
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 2\r\n\r\nok",
        ),
        (
            "a space before the colon",
            b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
        ),
        (
            "a bare LF in a value",
            b"HTTP/1.1 200 OK\r\nX-A: 1\n2\r\nContent-Length: 2\r\n\r\nok",
        ),
        (
            "HTTP/2 on an HTTP/1.1 connection",
            b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ),
    ];
    for (what, answer) in cases {
        let (addr, _) = answering(answer).await;
        let gw = Gateway::start(&route(addr)).await;
        let res = gw.client().get("/").send().await;
        assert_eq!(res.status, 502, "{what}: {:?}", res.body);
        res.assert_error(502);
    }
    let huge: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n",
            "a".repeat(70 * 1024)
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let (addr, _) = answering(huge).await;
    let gw = Gateway::start(&route(addr)).await;
    gw.client().get("/").send().await.assert_error(502);
}

#[tokio::test]
async fn a_malformed_chunked_body_cuts_the_client_and_interim_responses_are_skipped() {
    let (addr, _) =
        answering(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n").await;
    let gw = Gateway::start(&route(addr)).await;
    let res = gw.client().get("/").try_send().await;
    assert!(
        res.is_err(),
        "a broken body must surface as an error: {res:?}"
    );

    let (addr, _) = answering(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n\
          HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    let gw = Gateway::start(&route(addr)).await;
    let reply = raw(
        gw.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
    assert!(reply.ends_with("\r\n\r\nok"), "{reply}");
    assert_eq!(reply.matches("HTTP/1.1").count(), 1, "{reply}");
}

#[tokio::test]
async fn an_answer_sent_before_the_body_was_read_reaches_the_client_at_once() {
    // The upstream refuses the upload from its head alone and never reads
    // the body: waiting to finish sending it would end at the route timeout.
    let (addr, _) =
        answering(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig!").await;
    let yaml = format!(
        "routes:\n  - {{ name: r, path: /*, upstream: http://{addr}, auth: none, timeout: 3s, max_body: 64MiB }}\n"
    );
    let gw = Gateway::start(&yaml).await;
    let started = std::time::Instant::now();
    let res = gw
        .client()
        .post("/upload")
        .body(vec![b'x'; 32 << 20])
        .try_send()
        .await;
    // The client may see the 413, or the gateway closing the connection
    // while it still sends; either way well before the 3 s timeout.
    if let Ok(res) = &res {
        assert_eq!(res.status, 413);
        assert_eq!(res.body, "big!");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
