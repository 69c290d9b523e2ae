//! Checks on the request head that hyper's parser leaves to the server
//! (RFC 9112 sections 3 and 6.1): what a gateway must refuse so that it and
//! the upstream can never read one request two ways.

use http::{HeaderMap, Method, Request, Version};

use crate::http::headers;

/// Longer than any registered method (the longest has 17 characters).
const MAX_METHOD: usize = 32;
/// The longest request target we parse; RFC 9112 section 3 asks for 414
/// beyond it. 8 KiB, as nginx and most servers.
const MAX_TARGET: usize = 8192;

/// Why a head was refused; every one closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("the request method is longer than any this gateway knows")]
    MethodTooLong,
    #[error("the request target is longer than 8192 bytes")]
    TargetTooLong,
    /// `Transfer-Encoding` other than a single `chunked`.
    #[error("only the chunked transfer coding is accepted")]
    UnsupportedCoding,
    #[error("the chunked transfer coding is applied more than once")]
    ChunkedTwice,
    /// Both `Content-Length` and `Transfer-Encoding` (RFC 9112 section 6.1).
    #[error("the request has both Content-Length and Transfer-Encoding")]
    ConflictingFraming,
    #[error("an HTTP/1.1 request needs a Host header")]
    MissingHost,
    #[error("the request has more than one Host header")]
    DuplicateHost,
    #[error("the Host header is not a valid host")]
    InvalidHost,
    /// An absolute-form target (or HTTP/2 `:authority`) naming another host than `Host`.
    #[error("the request target names another host than Host")]
    HostMismatch,
    /// A scheme other than http or https, or an authority-form target outside CONNECT.
    #[error("the request target must be a path or an http(s) URL")]
    UnsupportedTarget,
}

/// Refuses a head that proxies and upstreams could read differently;
/// `conflicting_framing` is the connection's pre-scan of the raw head.
pub fn check<B>(req: &Request<B>, conflicting_framing: bool) -> Result<(), HeadError> {
    let err = Err;
    if conflicting_framing {
        return err(HeadError::ConflictingFraming);
    }
    if req.method().as_str().len() > MAX_METHOD {
        return err(HeadError::MethodTooLong);
    }
    let uri = req.uri();
    let target_len = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if target_len > MAX_TARGET {
        return err(HeadError::TargetTooLong);
    }
    transfer_coding(req.headers()).or_else(err)?;
    if let Some(scheme) = uri.scheme_str() {
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return err(HeadError::UnsupportedTarget);
        }
    } else if uri.authority().is_some() && req.method() != Method::CONNECT {
        return err(HeadError::UnsupportedTarget);
    }
    host(req).or_else(err)
}

fn transfer_coding(h: &HeaderMap) -> Result<(), HeadError> {
    let mut chunked = 0;
    for coding in h
        .get_all(&headers::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|c| c.trim_ascii())
        .filter(|c| !c.is_empty())
    {
        if !coding.eq_ignore_ascii_case(b"chunked") {
            // The body would reach the upstream still encoded but unlabelled.
            return Err(HeadError::UnsupportedCoding);
        }
        chunked += 1;
    }
    match chunked {
        0 | 1 => Ok(()),
        _ => Err(HeadError::ChunkedTwice),
    }
}

/// One valid `Host` on HTTP/1.1 (RFC 9112 section 3.2); when the target
/// carries an authority too (absolute form, HTTP/2), both name the same host.
fn host<B>(req: &Request<B>) -> Result<(), HeadError> {
    let mut hosts = req.headers().get_all(&headers::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(HeadError::DuplicateHost);
    }
    let Some(host) = host else {
        return match req.version() {
            Version::HTTP_11 if req.uri().authority().is_none() => Err(HeadError::MissingHost),
            _ => Ok(()),
        };
    };
    let host = host
        .to_str()
        .ok()
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .filter(|a| !a.host().is_empty() && !a.as_str().contains('@'))
        .ok_or(HeadError::InvalidHost)?;
    match req.uri().authority() {
        Some(target) if !target.as_str().eq_ignore_ascii_case(host.as_str()) => {
            Err(HeadError::HostMismatch)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, target: &str, version: Version, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder()
            .method(method)
            .uri(target)
            .version(version);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn verdict(r: &Request<()>) -> Result<(), HeadError> {
        check(r, false)
    }

    #[test]
    fn ordinary_heads_pass() {
        let v11 = Version::HTTP_11;
        assert_eq!(verdict(&req("GET", "/x", v11, &[("host", "a")])), Ok(()));
        assert_eq!(verdict(&req("GET", "/x", Version::HTTP_10, &[])), Ok(()));
        assert_eq!(
            verdict(&req("GET", "http://a:8080/x", v11, &[("host", "A:8080")])),
            Ok(())
        );
        assert_eq!(
            verdict(&req("GET", "https://a/x", Version::HTTP_2, &[])),
            Ok(())
        );
        assert_eq!(
            verdict(&req(
                "POST",
                "/x",
                v11,
                &[("host", "a"), ("transfer-encoding", "Chunked")]
            )),
            Ok(())
        );
    }

    #[test]
    fn ambiguous_heads_are_refused() {
        let v11 = Version::HTTP_11;
        let cases: &[(Request<()>, HeadError)] = &[
            (
                req(&"M".repeat(33), "/", v11, &[("host", "a")]),
                HeadError::MethodTooLong,
            ),
            (
                req(
                    "GET",
                    &format!("/{}", "a".repeat(8192)),
                    v11,
                    &[("host", "a")],
                ),
                HeadError::TargetTooLong,
            ),
            (req("GET", "/", v11, &[]), HeadError::MissingHost),
            (
                req("GET", "/", v11, &[("host", "a"), ("host", "a")]),
                HeadError::DuplicateHost,
            ),
            (
                req("GET", "/", v11, &[("host", "a b")]),
                HeadError::InvalidHost,
            ),
            (
                req("GET", "/", v11, &[("host", "u@a")]),
                HeadError::InvalidHost,
            ),
            (
                req("GET", "/", v11, &[("host", "")]),
                HeadError::InvalidHost,
            ),
            (
                req("GET", "http://b/", v11, &[("host", "a")]),
                HeadError::HostMismatch,
            ),
            (
                req("GET", "https://b/", Version::HTTP_2, &[("host", "a")]),
                HeadError::HostMismatch,
            ),
            (
                req("GET", "ftp://a/", v11, &[("host", "a")]),
                HeadError::UnsupportedTarget,
            ),
            (
                req("GET", "a:80", v11, &[("host", "a")]),
                HeadError::UnsupportedTarget,
            ),
            (
                req(
                    "POST",
                    "/",
                    v11,
                    &[("host", "a"), ("transfer-encoding", "chunked, chunked")],
                ),
                HeadError::ChunkedTwice,
            ),
            (
                req(
                    "POST",
                    "/",
                    v11,
                    &[
                        ("host", "a"),
                        ("transfer-encoding", "chunked"),
                        ("transfer-encoding", "chunked"),
                    ],
                ),
                HeadError::ChunkedTwice,
            ),
            (
                req(
                    "POST",
                    "/",
                    v11,
                    &[("host", "a"), ("transfer-encoding", "gzip, chunked")],
                ),
                HeadError::UnsupportedCoding,
            ),
        ];
        for (r, want) in cases {
            assert_eq!(
                verdict(r),
                Err(*want),
                "{} {} {:?}",
                r.method(),
                r.uri(),
                r.headers()
            );
        }
    }
}
