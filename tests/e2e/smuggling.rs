//! Request smuggling and parsing (RFC 9112): every ambiguous head gets the
//! status the RFC asks and a closed connection, and the bytes hidden behind
//! it never reach the upstream as a second request.

use std::time::Duration;

use crate::harness::{raw_keepalive, Gateway, Upstream};

fn open_route(up: &Upstream) -> String {
    format!(
        "routes:\n  - {{ name: all, path: \"/*\", upstream: {}, auth: none }}\n",
        up.url()
    )
}

/// Each payload ends with a request for `/smuggled` that only a parser
/// disagreeing with the gateway's would see as a request of its own.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

/// (name, head and body before the smuggled request, expected status).
const AMBIGUOUS: &[(&str, &str, u16)] = &[
    (
        "CL.TE",
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE.CL",
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n1\r\nZ\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE.TE: a second, unknown coding last",
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE.TE: unknown coding with Content-Length",
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello",
        400,
    ),
    (
        "TE.TE: chunked applied twice",
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE.TE: space before the colon",
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello",
        400,
    ),
    (
        "TE.TE: chunked hidden in a folded line",
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-Pad: a\r\n Transfer-Encoding: chunked\r\n\r\nhello",
        400,
    ),
    (
        "TE.TE: vertical tab",
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\nContent-Length: 5\r\n\r\nhello",
        400,
    ),
    (
        "TE in HTTP/1.0",
        "POST /x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "two different Content-Lengths",
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\nhello",
        400,
    ),
    (
        "a Content-Length list of different values",
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0, 5\r\n\r\nhello",
        400,
    ),
    (
        "a signed Content-Length",
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
        400,
    ),
    (
        "obsolete line folding",
        "GET /x HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n two\r\n\r\n",
        400,
    ),
    (
        "a bare CR inside a value",
        "GET /x HTTP/1.1\r\nHost: a\r\nX-A: one\rTwo: 2\r\n\r\n",
        400,
    ),
    (
        "a NUL inside a value",
        "GET /x HTTP/1.1\r\nHost: a\r\nX-A: one\x00two\r\n\r\n",
        400,
    ),
    (
        "a bare LF ending a value, then a line with no colon",
        "GET /x HTTP/1.1\r\nHost: a\r\nX-A: one\ntwo\r\n\r\n",
        400,
    ),
    (
        "a space inside the target",
        "GET /x /y HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    ),
    ("no Host (HTTP/1.1)", "GET /x HTTP/1.1\r\n\r\n", 400),
    (
        "two Host headers",
        "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
    ),
    (
        "an absolute-form target naming another host",
        "GET http://internal.example/x HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    ),
    (
        "an absolute-form target with another scheme",
        "GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    ),
    (
        "an authority-form target on GET",
        "GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    ),
];

async fn send(gw: &Gateway, bytes: &[u8]) -> (String, bool) {
    raw_keepalive(gw.addr, bytes, Duration::from_secs(3)).await
}

#[tokio::test]
async fn ambiguous_heads_get_the_rfc_status_and_never_two_requests_upstream() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&open_route(&up)).await;
    let mut failures = Vec::new();
    for (name, head, status) in AMBIGUOUS {
        let before = up.requests().len();
        let payload = format!("{head}{SMUGGLED}");
        let (reply, closed) = send(&gw, payload.as_bytes()).await;
        let status_line = format!("HTTP/1.1 {status}");
        let seen: Vec<String> = up.requests()[before..]
            .iter()
            .map(|r| r.target.clone())
            .collect();
        if !reply.starts_with(&status_line) || !closed || !seen.is_empty() {
            failures.push(format!(
                "{name}: closed={closed}, upstream saw {seen:?}, reply {:?}",
                reply.lines().next().unwrap_or("")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // The same connection handling still serves a well-formed pipeline.
    let (reply, _) = send(
        &gw,
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(reply.matches("HTTP/1.1 200").count(), 2, "{reply}");
    let targets: Vec<String> = up.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(targets, ["/one", "/two"]);
}

#[tokio::test]
async fn an_absolute_form_target_naming_the_host_itself_is_served() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&open_route(&up)).await;
    let (reply, _) = send(
        &gw,
        b"GET http://Gw.Example/x?q=1 HTTP/1.1\r\nHost: gw.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let got = up.last();
    assert_eq!(got.target, "/x?q=1");
    assert_eq!(got.headers["x-forwarded-host"], "gw.example");
}

#[tokio::test]
async fn over_long_methods_get_501_and_over_long_targets_414() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&open_route(&up)).await;
    let method = "A".repeat(100);
    let (reply, _) = send(
        &gw,
        format!("{method} /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 501"), "{reply}");
    let target = format!("/{}", "a".repeat(9000));
    let (reply, _) = send(
        &gw,
        format!("GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 414"), "{reply}");
    // Past the 64 KiB head limit, the parser itself refuses.
    let target = format!("/{}", "a".repeat(70_000));
    let (reply, closed) = send(
        &gw,
        format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    assert!(closed);
    assert!(
        up.requests().is_empty(),
        "an over-long request reached the upstream"
    );
    // A short unknown method is routed like any other (405 here would need
    // a method list; `/*` routes take every method).
    let (reply, _) = send(
        &gw,
        b"PROPFIND /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}
