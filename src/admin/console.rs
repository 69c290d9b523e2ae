//! `GET /admin/`: the console, one self-contained page (`console.html`) that
//! drives the admin API from the operator's browser. It holds no data; its
//! Content-Security-Policy allows only its own inline script and style, by
//! hash, and requests to this origin.

use std::sync::LazyLock;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Response};

use crate::http::body::ResponseBody;
use crate::http::headers;

const PAGE: &str = include_str!("console.html");

static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let policy = format!(
        "default-src 'self'; script-src '{}'; style-src '{}'; img-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hash_of("script"),
        hash_of("style"),
    );
    HeaderValue::from_str(&policy).expect("a CSP is a valid header value")
});

/// `sha256-...` of the page's one inline `<tag>` element's text.
fn hash_of(tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = PAGE.find(&open).expect("the page has the element") + open.len();
    let end = start + PAGE[start..].find(&format!("</{tag}>")).expect("closed");
    let digest = ring::digest::digest(&ring::digest::SHA256, &PAGE.as_bytes()[start..end]);
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

pub fn page() -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::full(Bytes::from_static(PAGE.as_bytes())));
    let h = res.headers_mut();
    h.insert(
        &headers::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(http::header::CONTENT_SECURITY_POLICY, CSP.clone());
    h.insert(
        &headers::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    h.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        http::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_inline_script_and_style() {
        let csp = CSP.to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'; script-src 'sha256-"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe"));
        // One of each, so the hashes cover everything the page runs.
        assert_eq!(PAGE.matches("<script").count(), 1);
        assert_eq!(PAGE.matches("<style").count(), 1);
        assert!(!PAGE.contains("innerHTML"), "data goes in as text only");
        assert!(!PAGE.contains("localStorage") && !PAGE.contains("sessionStorage"));
    }
}
