//! gRPC (SPEC section 12): recognising a gRPC request, the trailers-only
//! answer a gRPC client reads when the gateway refuses a call itself, and
//! the deadline a call carries in `grpc-timeout`.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::http::body::ResponseBody;
use crate::http::headers;

pub static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
pub static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// What `grpc-message` escapes: controls, non-ASCII (always) and `%`.
const MESSAGE: &AsciiSet = &CONTROLS.add(b'%');

/// `content-type: application/grpc`, or `application/grpc+proto` and the
/// like (not gRPC-Web, `application/grpc-web`).
pub fn is_grpc(h: &HeaderMap) -> bool {
    let Some(ct) = h.get(&headers::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let ct = ct.trim_start();
    ct.len() >= 16
        && ct[..16].eq_ignore_ascii_case("application/grpc")
        && matches!(ct.as_bytes().get(16), None | Some(b'+' | b';'))
}

/// The gRPC status code of a gateway-made HTTP status.
pub fn code(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => 3,        // INVALID_ARGUMENT
        401 => 16,       // UNAUTHENTICATED
        403 => 7,        // PERMISSION_DENIED
        404 | 405 => 12, // UNIMPLEMENTED
        413 | 429 => 8,  // RESOURCE_EXHAUSTED
        502 | 503 => 14, // UNAVAILABLE
        504 => 4,        // DEADLINE_EXCEEDED
        _ => 2,          // UNKNOWN
    }
}

/// The gateway's JSON failure `res` as a trailers-only gRPC response:
/// HTTP 200, `grpc-status` and the percent-encoded `message`, no body; its
/// other headers (`WWW-Authenticate`, `Retry-After`, `Allow`) kept.
pub fn trailers_only(mut res: Response<ResponseBody>, message: &str) -> Response<ResponseBody> {
    let status = res.status();
    *res.status_mut() = StatusCode::OK;
    *res.body_mut() = ResponseBody::full(Bytes::new());
    let h = res.headers_mut();
    h.remove(&headers::CONNECTION);
    h.remove(&headers::CONTENT_LENGTH);
    h.insert(
        &headers::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(&GRPC_STATUS, HeaderValue::from(u16::from(code(status))));
    let encoded = utf8_percent_encode(message, MESSAGE).to_string();
    if let Ok(v) = HeaderValue::from_str(&encoded) {
        h.insert(&GRPC_MESSAGE, v);
    }
    res
}

/// The call's deadline: `grpc-timeout` is 1 to 8 digits and a unit (`H`,
/// `M`, `S`, `m`, `u`, `n`); anything else is no deadline.
pub fn timeout(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(&GRPC_TIMEOUT)?.to_str().ok()?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn grpc_is_told_by_its_content_type() {
        for yes in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC;x=1",
        ] {
            assert!(is_grpc(&with("content-type", yes)), "{yes}");
        }
        for no in [
            "application/grpc-web",
            "application/json",
            "application/grp",
            "",
        ] {
            assert!(!is_grpc(&with("content-type", no)), "{no}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn statuses_map_as_spec_12_says() {
        let cases = [
            (400, 3),
            (401, 16),
            (403, 7),
            (404, 12),
            (405, 12),
            (408, 2),
            (413, 8),
            (429, 8),
            (500, 2),
            (502, 14),
            (503, 14),
            (504, 4),
        ];
        for (http, grpc) in cases {
            assert_eq!(code(StatusCode::from_u16(http).unwrap()), grpc, "{http}");
        }
    }

    #[test]
    fn timeouts_parse_every_unit_and_refuse_junk() {
        let t = |v: &str| timeout(&with("grpc-timeout", v));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("2M"), Some(Duration::from_secs(120)));
        assert_eq!(t("3S"), Some(Duration::from_secs(3)));
        assert_eq!(t("250m"), Some(Duration::from_millis(250)));
        assert_eq!(t("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(t("5n"), Some(Duration::from_nanos(5)));
        for junk in ["", "S", "123456789S", "1s", "-1S", "1.5S", " 1S"] {
            assert_eq!(t(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn a_refusal_becomes_trailers_only() {
        let mut res = Response::new(ResponseBody::full(Bytes::from_static(b"{}")));
        *res.status_mut() = StatusCode::UNAUTHORIZED;
        res.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Bearer realm=\"gateway\""),
        );
        res.headers_mut()
            .insert("connection", HeaderValue::from_static("close"));
        let res = trailers_only(res, "a bearer token is required: 100% é");
        assert_eq!(res.status(), 200);
        let h = res.headers();
        assert_eq!(h["content-type"], "application/grpc");
        assert_eq!(h["grpc-status"], "16");
        assert_eq!(
            h["grpc-message"],
            "a bearer token is required: 100%25 %C3%A9"
        );
        assert_eq!(h["www-authenticate"], "Bearer realm=\"gateway\"");
        assert!(!h.contains_key("connection"));
    }
}
