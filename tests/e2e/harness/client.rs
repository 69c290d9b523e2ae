//! Test clients: a hyper HTTP/1.1 client (pooled, no redirects) and raw
//! TCP for bytes no well-behaved client would send.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    inner: HyperClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the gateway's JSON error shape for this status.
    pub fn assert_error(&self, status: u16) {
        assert_eq!(self.status.as_u16(), status, "body: {:?}", self.body);
        let j = self.json();
        assert_eq!(j["success"], false, "{j}");
        assert_eq!(j["statusCode"], status, "{j}");
        assert_eq!(j["error"], self.status.canonical_reason().unwrap(), "{j}");
        assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
        assert!(
            self.header("x-request-id").is_some(),
            "error without x-request-id"
        );
    }
}

pub struct RequestBuilder {
    client: Client,
    req: http::request::Builder,
    body: Bytes,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            inner: HyperClient::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            req: Request::builder()
                .method(method)
                .uri(format!("http://{}{}", self.addr, path)),
            body: Bytes::new(),
        }
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }
}

impl RequestBuilder {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.req = self.req.header(name, value);
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub async fn send(self) -> Reply {
        tokio::time::timeout(Duration::from_secs(30), self.try_send())
            .await
            .expect("request timed out")
            .expect("request failed")
    }

    /// Like `send`, for tests where the connection may legitimately fail.
    pub async fn try_send(self) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
        let req = self.req.body(Full::new(self.body))?;
        let (parts, body) = self.client.inner.request(req).await?.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
            version: parts.version,
        })
    }
}

/// Writes raw bytes on a new connection and returns everything read until
/// the server closes (or 5 s pass).
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_until_close(&mut s, Duration::from_secs(5)).await.0
}

/// Like `raw`, but also says whether the server closed the connection.
pub async fn raw_keepalive(addr: SocketAddr, bytes: &[u8], wait: Duration) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_until_close(&mut s, wait).await
}

/// Reads until the peer closes or `wait` passes: (bytes, closed).
pub async fn read_until_close(s: &mut TcpStream, wait: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// One response read off a raw connection, its framing undone.
#[derive(Debug)]
pub struct RawResponse {
    /// The status line and header lines, as sent.
    pub head: String,
    pub body: Vec<u8>,
    /// The body was delimited by the peer closing the connection.
    pub close_delimited: bool,
}

impl RawResponse {
    pub fn status_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads one HTTP/1.x response to a request that was not `HEAD`: the body
/// by `Transfer-Encoding: chunked`, else `Content-Length`, else until the
/// peer closes. Panics if it is not complete within `wait`.
pub async fn read_response(s: &mut TcpStream, wait: Duration) -> RawResponse {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let got = String::from_utf8_lossy(&buf).into_owned();
        assert!(
            read_more(s, &mut buf, deadline).await,
            "closed before a head: {got:?}"
        );
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut rest = buf.split_off(end + 4);
    let mut res = RawResponse {
        head,
        body: Vec::new(),
        close_delimited: false,
    };
    let chunked = res
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
    let length = res.header("content-length").and_then(|l| l.parse().ok());
    if chunked {
        loop {
            let Some(line) = rest.windows(2).position(|w| w == b"\r\n") else {
                assert!(
                    read_more(s, &mut rest, deadline).await,
                    "closed inside a chunk size"
                );
                continue;
            };
            let size = String::from_utf8_lossy(&rest[..line]).into_owned();
            let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {size:?}"));
            // The data and its CRLF; the last chunk's CRLF ends the trailers
            // (none expected).
            while rest.len() < line + 2 + size + 2 {
                assert!(
                    read_more(s, &mut rest, deadline).await,
                    "closed inside a chunk"
                );
            }
            res.body.extend_from_slice(&rest[line + 2..line + 2 + size]);
            rest.drain(..line + 2 + size + 2);
            if size == 0 {
                return res;
            }
        }
    }
    if let Some(length) = length {
        while rest.len() < length {
            assert!(
                read_more(s, &mut rest, deadline).await,
                "closed inside the body"
            );
        }
        res.body = rest;
        return res;
    }
    while read_more(s, &mut rest, deadline).await {}
    res.body = rest;
    res.close_delimited = true;
    res
}

/// Appends what the peer sends next to `buf`: false once it closed.
async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>, deadline: tokio::time::Instant) -> bool {
    let mut chunk = [0u8; 16384];
    match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
        Err(_) => panic!(
            "no complete response in time; got {:?}",
            String::from_utf8_lossy(buf)
        ),
        Ok(Ok(0)) | Ok(Err(_)) => false,
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}
