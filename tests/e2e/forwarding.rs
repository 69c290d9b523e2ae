//! What crosses the gateway: headers added, replaced or stripped both ways,
//! request ids, pooling, echo routes, several targets, and the gateway's
//! own HTTP version whatever the upstream's.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{raw, read_response, read_until_close, Gateway, Upstream};

fn route_to(up: &Upstream) -> String {
    format!(
        "routes:\n  - {{ name: open, path: /*, upstream: {}, auth: none }}\n",
        up.url()
    )
}

#[tokio::test]
async fn forwarding_headers_are_set_and_client_values_replaced() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&route_to(&up)).await;
    let res = gw
        .client()
        .get("/x")
        .header("host", "public.example")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("authorization", "Bearer opaque-value")
        .send()
        .await;
    assert_eq!(res.status, 200);
    let got = up.last();
    assert_eq!(got.headers["host"], up.addr.to_string());
    assert_eq!(got.headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(got.headers["x-forwarded-proto"], "http");
    assert_eq!(got.headers["x-forwarded-host"], "public.example");
    assert_eq!(got.headers["authorization"], "Bearer opaque-value");
}

#[tokio::test]
async fn client_sent_principal_headers_never_reach_the_upstream() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&route_to(&up)).await;
    // Raw bytes, so the exact spellings (and duplicates) reach the gateway.
    let req = "GET /x HTTP/1.1\r\nHost: a\r\nX-Principal-Id: admin\r\nx-principal-email: root@x\r\nX-PRINCIPAL-SCOPES: all\r\nX-Principal-Id: again\r\nX-Principal-Anything: 1\r\nConnection: close\r\n\r\n";
    let reply = raw(gw.addr, req.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let got = up.last();
    let leaked: Vec<_> = got
        .headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-principal-"))
        .collect();
    assert!(leaked.is_empty(), "leaked identity headers: {leaked:?}");
}

// Symfony and IIS route by these instead of the request line, so passed
// on they would bypass the path the gateway authorised.
#[tokio::test]
async fn client_sent_rewrite_url_headers_never_reach_the_upstream() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&route_to(&up)).await;
    let req = "GET /x HTTP/1.1\r\nHost: a\r\nX-Original-URL: /admin\r\nx-rewrite-url: /admin\r\nX_Original_URL: /admin\r\nX-REWRITE_URL: /admin\r\nX-Original-URLs: kept\r\nConnection: close\r\n\r\n";
    let reply = raw(gw.addr, req.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let got = up.last();
    let mut names: Vec<&str> = got
        .headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| k.contains("url"))
        .collect();
    names.sort();
    assert_eq!(names, ["x-original-urls"], "{:?}", got.headers);
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&route_to(&up)).await;
    let res = gw
        .client()
        .get("/x")
        .header("connection", "x-client-hop, x-forwarded-for, x-request-id")
        .header("x-client-hop", "1")
        .header("keep-alive", "timeout=1")
        .header("te", "trailers, deflate")
        .header("proxy-connection", "keep-alive")
        .header("x-request-id", "client-chosen-id")
        .send()
        .await;
    assert_eq!(res.status, 200);
    let got = up.last();
    for name in [
        "x-client-hop",
        "keep-alive",
        "te",
        "proxy-connection",
        "connection",
    ] {
        assert!(!got.headers.contains_key(name), "{name} was forwarded");
    }
    // Naming them in Connection does not remove what the gateway sets.
    assert_eq!(got.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(got.headers["x-request-id"], "client-chosen-id");
    // And back: the upstream's hop-by-hop headers stop at the gateway.
    assert!(res.header("x-upstream-hop").is_none());
    assert!(res.header("keep-alive").is_none());
    assert_eq!(res.header("x-upstream"), Some("yes"));
}

#[tokio::test]
async fn request_id_is_kept_when_sane_else_generated_and_always_returned() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&route_to(&up)).await;
    let res = gw
        .client()
        .get("/x")
        .header("x-request-id", "abc-123")
        .send()
        .await;
    assert_eq!(res.header("x-request-id"), Some("abc-123"));
    assert_eq!(up.last().headers["x-request-id"], "abc-123");

    let long = "x".repeat(129);
    let res = gw
        .client()
        .get("/x")
        .header("x-request-id", &long)
        .send()
        .await;
    let id = res.header("x-request-id").unwrap().to_string();
    assert_ne!(id, long);
    assert_eq!(up.last().headers["x-request-id"], id.as_str());

    let a = gw
        .client()
        .get("/x")
        .send()
        .await
        .header("x-request-id")
        .unwrap()
        .to_string();
    let b = gw
        .client()
        .get("/x")
        .send()
        .await
        .header("x-request-id")
        .unwrap()
        .to_string();
    assert_ne!(a, b);
}

#[tokio::test]
async fn upstream_connections_are_pooled() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&route_to(&up)).await;
    let client = gw.client();
    for _ in 0..20 {
        assert_eq!(client.get("/x").send().await.status, 200);
    }
    assert_eq!(up.requests().len(), 20);
    assert_eq!(
        up.connections(),
        1,
        "sequential requests should reuse one upstream connection"
    );
}

#[tokio::test]
async fn request_and_response_bodies_pass_unchanged() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&route_to(&up)).await;
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let res = gw.client().post("/upload").body(body.clone()).send().await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body, "upstream ok");
    let got = up.last();
    assert_eq!(got.method, "POST");
    assert!(got.complete);
    assert_eq!(got.body.as_ref(), body.as_slice());
}

#[tokio::test]
async fn echo_route_shows_the_request_as_it_would_be_forwarded() {
    let yaml =
        "routes:\n  - { name: echo, path: /api/*, strip_prefix: /api, echo: true, auth: none }\n";
    let gw = Gateway::start(yaml).await;
    let res = gw
        .client()
        .get("/api/a/../b?x=1")
        .header("x-principal-id", "forged")
        .header("accept", "text/plain")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(res.status, 200);
    let j = res.json();
    assert_eq!(j["method"], "GET");
    assert_eq!(j["path"], "/b?x=1");
    assert_eq!(j["headers"]["accept"], "text/plain, application/json");
    assert_eq!(j["headers"]["x-forwarded-for"], "127.0.0.1");
    assert!(j["headers"].get("x-principal-id").is_none());
    assert_eq!(
        j["headers"]["x-request-id"],
        res.header("x-request-id").unwrap()
    );
}

#[tokio::test]
async fn several_targets_round_robin() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    let yaml = format!(
        "routes:\n  - name: rr\n    path: /*\n    upstream: [{}, {}]\n    auth: none\n",
        a.url(),
        b.url()
    );
    let gw = Gateway::start(&yaml).await;
    for _ in 0..10 {
        assert_eq!(gw.client().get("/x").send().await.status, 200);
    }
    assert_eq!((a.requests().len(), b.requests().len()), (5, 5));
}

#[tokio::test]
async fn a_refusing_target_is_skipped_and_the_request_retried_with_its_body() {
    let live = Upstream::start().await;
    let dead = {
        // Bind then drop: nothing listens there now, so connects are refused.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let yaml = format!(
        "routes:\n  - name: rr\n    path: /*\n    upstream: [http://{dead}, {}]\n    auth: none\n",
        live.url()
    );
    let gw = Gateway::start(&yaml).await;
    for i in 0..6 {
        let res = gw
            .client()
            .post("/submit")
            .body(format!("payload {i}"))
            .send()
            .await;
        assert_eq!(res.status, 200, "request {i}: {:?}", res.body);
    }
    let bodies: Vec<_> = live
        .requests()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(
        bodies,
        (0..6).map(|i| format!("payload {i}")).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_single_refusing_target_is_502() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let yaml = format!("routes:\n  - {{ name: gone, path: /*, upstream: http://{dead}, auth: none, timeout: 5s }}\n");
    let gw = Gateway::start(&yaml).await;
    let started = std::time::Instant::now();
    gw.client().get("/x").send().await.assert_error(502);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served_on_the_plain_listener() {
    use http_body_util::{BodyExt, Full};
    let up = Upstream::start().await;
    let gw = Gateway::start(&route_to(&up)).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<bytes::Bytes>>();
    let uri = format!("http://{}/h2/path?q=1", gw.addr);
    let res = client.get(uri.parse().unwrap()).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "upstream ok"
    );
    let got = up.last();
    assert_eq!(got.target, "/h2/path?q=1");
    assert_eq!(got.headers["x-forwarded-host"], gw.addr.to_string());
}

#[tokio::test]
async fn bodiless_responses_keep_the_upstream_connection_reusable() {
    let up = Upstream::with(|req, log| {
        Box::pin(async move {
            let rec = crate::harness::upstream::record(req, &log).await;
            let status = match rec.target.as_str() {
                "/no-content" => 204,
                "/not-modified" => 304,
                _ => 200,
            };
            http::Response::builder()
                .status(status)
                .header("content-length", if status == 200 { "5" } else { "0" })
                .body(crate::harness::full(if status == 200 {
                    "hello"
                } else {
                    ""
                }))
                .unwrap()
        })
    })
    .await;
    let gw = Gateway::start(&route_to(&up)).await;
    let head = gw.client().request(http::Method::HEAD, "/x").send().await;
    assert_eq!((head.status.as_u16(), head.body.len()), (200, 0));
    assert_eq!(gw.client().get("/no-content").send().await.status, 204);
    assert_eq!(gw.client().get("/not-modified").send().await.status, 304);
    let res = gw.client().get("/x").send().await;
    assert_eq!(
        (res.status.as_u16(), res.body.as_ref()),
        (200, &b"hello"[..])
    );
    assert_eq!(
        up.connections(),
        1,
        "every answer left the connection reusable"
    );
}

/// A hand-written HTTP/1.0 upstream: reads a request head, writes
/// `answer`, then closes, on every connection.
async fn http10_upstream(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(answer).await;
            });
        }
    });
    addr
}

fn route_to_addr(addr: SocketAddr) -> String {
    format!("routes:\n  - {{ name: open, path: /*, upstream: http://{addr}, auth: none }}\n")
}

/// Two requests on one HTTP/1.1 connection: each answered `HTTP/1.1 200 OK`
/// with `hello` framed by the header `framing` (name, value), so that the
/// connection stays open for the next.
async fn assert_http11_keep_alive_answers(gw: &Gateway, framing: (&str, &str)) {
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    for path in ["/first", "/second"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let res = read_response(&mut s, Duration::from_secs(5)).await;
        assert_eq!(res.status_line(), "HTTP/1.1 200 OK", "{path}: {res:?}");
        assert_eq!(res.header(framing.0), Some(framing.1), "{path}: {res:?}");
        assert_eq!(res.body, b"hello", "{path}: {res:?}");
        assert!(!res.close_delimited, "{path}: ended by a close: {res:?}");
        assert_eq!(res.header("content-type"), Some("text/plain"), "{res:?}");
        assert_eq!(res.header("connection"), None, "{path}: {res:?}");
    }
}

// RFC 9110 section 6.2: a proxy sends its own HTTP version. An HTTP/1.0
// upstream passed on as `HTTP/1.0 200 OK` (close-delimited) cost HTTP/1.1
// clients their keep-alive connection.
#[tokio::test]
async fn an_http10_upstream_without_length_is_answered_as_http11_chunked_with_keep_alive() {
    let up = http10_upstream(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello").await;
    let gw = Gateway::start(&route_to_addr(up)).await;
    assert_http11_keep_alive_answers(&gw, ("transfer-encoding", "chunked")).await;
}

#[tokio::test]
async fn an_http10_upstream_with_content_length_is_answered_as_http11_with_keep_alive() {
    let up = http10_upstream(
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    let gw = Gateway::start(&route_to_addr(up)).await;
    assert_http11_keep_alive_answers(&gw, ("content-length", "5")).await;
}

#[tokio::test]
async fn an_http10_client_behind_an_http10_upstream_gets_the_whole_body() {
    let up = http10_upstream(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello").await;
    let gw = Gateway::start(&route_to_addr(up)).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /x HTTP/1.0\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (reply, closed) = read_until_close(&mut s, Duration::from_secs(5)).await;
    // No chunked coding to a client that cannot decode it (RFC 9112
    // section 7.1): the body ends with the connection.
    assert!(reply.starts_with("HTTP/1."), "{reply}");
    assert!(reply.contains(" 200 OK\r\n"), "{reply}");
    assert!(
        !reply.to_ascii_lowercase().contains("transfer-encoding"),
        "{reply}"
    );
    assert!(reply.ends_with("\r\n\r\nhello"), "{reply}");
    assert!(closed, "{reply}");
}

#[tokio::test]
async fn an_http2_client_behind_an_http10_upstream_gets_http2_and_the_whole_body() {
    use http_body_util::{BodyExt, Full};
    let up = http10_upstream(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello").await;
    let gw = Gateway::start(&route_to_addr(up)).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<bytes::Bytes>>();
    for path in ["/first", "/second"] {
        let uri = format!("http://{}{path}", gw.addr);
        let res = client.get(uri.parse().unwrap()).await.unwrap();
        assert_eq!(
            (res.version(), res.status().as_u16()),
            (http::Version::HTTP_2, 200)
        );
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "hello", "{path}");
    }
}
