//! The two heads of an HTTP/1.1 exchange with an upstream: the request's,
//! written from an already validated `http::request::Parts`, and the
//! response's, parsed with httparse and checked before anything of it
//! reaches the client. No I/O here, so the parser can be fuzzed on its own.

use std::mem::MaybeUninit;

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode, Uri, Version};

use crate::http::headers::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};

/// A response head larger than this (interim responses included) is refused.
pub const MAX_HEAD: usize = 64 * 1024;
/// More header fields than this in one head are refused.
pub const MAX_HEADERS: usize = 100;

/// How the request body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body bytes follow the head.
    Empty,
    /// The head carries `Content-Length` (the client's, or 0 added here).
    Length,
    /// `Transfer-Encoding: chunked`, added here.
    Chunked,
}

/// Writes the request line (the target in origin form) and header fields, adding the framing header the body needs. Header
/// names and values come from `http` types, which cannot hold CR or LF.
pub fn encode_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body_ended: bool,
    dst: &mut Vec<u8>,
) -> RequestFraming {
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    dst.extend_from_slice(method.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(target.as_bytes());
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    let framing = match (headers.contains_key(&CONTENT_LENGTH), body_ended) {
        (true, _) => RequestFraming::Length,
        // A method whose requests usually carry a body says it has none.
        (false, true) if matches!(*method, Method::POST | Method::PUT | Method::PATCH) => {
            dst.extend_from_slice(b"content-length: 0\r\n");
            RequestFraming::Length
        }
        (false, true) => RequestFraming::Empty,
        (false, false) => {
            dst.extend_from_slice(b"transfer-encoding: chunked\r\n");
            RequestFraming::Chunked
        }
    };
    dst.extend_from_slice(b"\r\n");
    framing
}

/// How the response body is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// None: a response to `HEAD`, a 1xx, 204 or 304.
    Empty,
    Length(u64),
    Chunked,
    /// Everything until the upstream closes the connection.
    Close,
}

/// A final response head, ready to be forwarded.
#[derive(Debug)]
pub struct Head {
    pub parts: http::response::Parts,
    pub framing: Framing,
    /// The connection may carry another request once this body has ended.
    pub keep_alive: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("malformed response head: {0}")]
    Syntax(#[from] httparse::Error),
    #[error("response head larger than {MAX_HEAD} bytes")]
    TooLarge,
    #[error("unsupported response version HTTP/1.{0}")]
    Version(u8),
    #[error("invalid header field {0:?}")]
    Field(String),
    #[error("invalid or conflicting Content-Length")]
    ContentLength,
}

/// Parses the response head at the start of `buf`, skipping interim (1xx
/// other than 101) responses before it. `Ok(None)`: more bytes are needed.
/// On success, also returns how many bytes of `buf` the head took.
pub fn parse_response(buf: &[u8], method: &Method) -> Result<Option<(Head, usize)>, HeadError> {
    let mut start = 0;
    loop {
        // Left uninitialised: httparse writes the fields it parses.
        let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut res,
            &buf[start..],
            &mut fields,
        );
        let used = match parsed {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(HeadError::TooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(e) => return Err(e.into()),
        };
        if start + used > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        let status = res.code.and_then(|c| StatusCode::from_u16(c).ok());
        let status = status.ok_or(HeadError::Syntax(httparse::Error::Status))?;
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            start += used;
            continue;
        }
        let version = match res.version {
            Some(1) => Version::HTTP_11,
            Some(0) => Version::HTTP_10,
            Some(v) => return Err(HeadError::Version(v)),
            None => return Err(HeadError::Syntax(httparse::Error::Version)),
        };
        let mut headers = header_map(res.headers).map_err(HeadError::Field)?;
        let (framing, keep_alive) = framing(method, status, version, &headers)?;
        if framing != Framing::Empty && headers.contains_key(&TRANSFER_ENCODING) {
            // The length the coding overrides must not reach the client,
            // which would frame the body by it.
            headers.remove(&CONTENT_LENGTH);
        }
        let mut head = Response::new(());
        *head.status_mut() = status;
        *head.version_mut() = version;
        *head.headers_mut() = headers;
        let head = Head {
            parts: head.into_parts().0,
            framing,
            keep_alive,
        };
        return Ok(Some((head, start + used)));
    }
}

/// Parsed fields as a `HeaderMap`; `Err` names the first invalid field.
pub(super) fn header_map(fields: &[httparse::Header<'_>]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::with_capacity(fields.len());
    for f in fields {
        let name = HeaderName::from_bytes(f.name.as_bytes());
        let value = HeaderValue::from_bytes(f.value);
        match (name, value) {
            (Ok(name), Ok(value)) => map.append(name, value),
            _ => return Err(f.name.to_string()),
        };
    }
    Ok(map)
}

/// The body's framing, and whether the connection stays usable after it.
fn framing(
    method: &Method,
    status: StatusCode,
    version: Version,
    h: &HeaderMap,
) -> Result<(Framing, bool), HeadError> {
    let keep_alive = match version {
        Version::HTTP_11 => !has_token(h, &CONNECTION, "close"),
        _ => has_token(h, &CONNECTION, "keep-alive"),
    };
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((
            Framing::Empty,
            keep_alive && status != StatusCode::SWITCHING_PROTOCOLS,
        ));
    }
    if h.contains_key(&TRANSFER_ENCODING) {
        // Chunked must be the last coding, else the body runs to the close.
        // Alongside a Content-Length, the length is ignored and the
        // connection is not reused (RFC 9112 section 6.3, items 3 and 4).
        let last = h.get_all(&TRANSFER_ENCODING).iter().next_back();
        let chunked = last
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        let alone = !h.contains_key(&CONTENT_LENGTH);
        return Ok(match chunked {
            true => (Framing::Chunked, keep_alive && alone),
            false => (Framing::Close, false),
        });
    }
    match content_length(h)? {
        Some(n) => Ok((Framing::Length(n), keep_alive)),
        None => Ok((Framing::Close, false)),
    }
}

/// The one length all `Content-Length` fields agree on; a list of the
/// same value is accepted (RFC 9110 section 8.6), anything else refused.
fn content_length(h: &HeaderMap) -> Result<Option<u64>, HeadError> {
    let mut length = None;
    for value in h.get_all(&CONTENT_LENGTH) {
        let value = value.to_str().map_err(|_| HeadError::ContentLength)?;
        for item in value.split(',') {
            let item = item.trim();
            if item.is_empty() || item.len() > 19 || !item.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HeadError::ContentLength);
            }
            let n: u64 = item.parse().map_err(|_| HeadError::ContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::ContentLength);
            }
            length = Some(n);
        }
    }
    Ok(length)
}

fn has_token(h: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<(Head, usize)>, HeadError> {
        parse_response(raw.as_bytes(), &Method::GET)
    }

    fn head(raw: &str) -> Head {
        parse(raw).expect("valid").expect("complete").0
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let cases = [
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                Framing::Length(5),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n",
                Framing::Length(5),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                Framing::Chunked,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
                Framing::Chunked,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
                Framing::Close,
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n",
                Framing::Chunked,
                false,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", Framing::Close, false),
            (
                "HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n",
                Framing::Empty,
                true,
            ),
            ("HTTP/1.1 304 Not Modified\r\n\r\n", Framing::Empty, true),
            (
                "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n",
                Framing::Length(1),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n",
                Framing::Length(1),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n",
                Framing::Length(1),
                true,
            ),
            (
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
                Framing::Empty,
                false,
            ),
        ];
        for (raw, framing, keep_alive) in cases {
            let h = head(raw);
            assert_eq!((h.framing, h.keep_alive), (framing, keep_alive), "{raw:?}");
        }
        let both =
            head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n");
        assert!(
            !both.parts.headers.contains_key("content-length"),
            "the overridden length is dropped"
        );
        let h = parse_response(
            b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n",
            &Method::HEAD,
        );
        assert_eq!(
            h.unwrap().unwrap().0.framing,
            Framing::Empty,
            "a response to HEAD"
        );
    }

    #[test]
    fn interim_responses_are_skipped_and_counted_in_the_length() {
        let raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
                   HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\nrest";
        let (h, used) = parse(raw).unwrap().unwrap();
        assert_eq!(h.parts.status, StatusCode::CREATED);
        assert_eq!(&raw[used..], "rest");
        assert!(!h.parts.headers.contains_key("link"));
        assert!(parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2")
            .unwrap()
            .is_none());
    }

    #[test]
    fn malformed_heads_are_refused() {
        let bad = [
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length:\r\n\r\n",
            "HTTP/1.1 200 OK\r\nbad header: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nx: a\r\n b\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/2.0 200 OK\r\n\r\n",
            "ICY 200 OK\r\n\r\n",
            "HTTP/1.1 099 Low\r\n\r\n",
        ];
        for raw in bad {
            assert!(parse(raw).is_err(), "{raw:?} was accepted");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        assert!(matches!(
            parse(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")),
            Err(HeadError::TooLarge)
        ));
        let long = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD));
        assert!(matches!(parse(&long), Err(HeadError::TooLarge)));
    }

    #[test]
    fn request_heads_get_the_framing_their_body_needs() {
        let encode = |method: Method, headers: &[(&'static str, &str)], ended: bool| {
            let mut req = http::Request::new(());
            *req.method_mut() = method;
            *req.uri_mut() = "/a/b?c=d".parse().unwrap();
            for (n, v) in headers {
                req.headers_mut().append(*n, v.parse().unwrap());
            }
            let mut out = Vec::new();
            let framing = encode_request(req.method(), req.uri(), req.headers(), ended, &mut out);
            (String::from_utf8(out).unwrap(), framing)
        };
        let (raw, f) = encode(Method::GET, &[("host", "up"), ("x", "1")], true);
        assert_eq!(raw, "GET /a/b?c=d HTTP/1.1\r\nhost: up\r\nx: 1\r\n\r\n");
        assert_eq!(f, RequestFraming::Empty);
        let (raw, f) = encode(Method::POST, &[], true);
        assert!(raw.ends_with("content-length: 0\r\n\r\n"), "{raw}");
        assert_eq!(f, RequestFraming::Length);
        let (raw, f) = encode(Method::PUT, &[("content-length", "3")], false);
        assert!(!raw.contains("chunked"), "{raw}");
        assert_eq!(f, RequestFraming::Length);
        let (raw, f) = encode(Method::POST, &[], false);
        assert!(raw.ends_with("transfer-encoding: chunked\r\n\r\n"), "{raw}");
        assert_eq!(f, RequestFraming::Chunked);
    }
}
