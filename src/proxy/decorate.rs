//! The response as the client receives it: the gateway's HTTP version, not
//! the upstream's; upstream hop-by-hop headers removed (but a 101's
//! `Upgrade`, which the switch needs), `X-Request-Id` on every response (the
//! gateway's errors included).

use http::{HeaderValue, Response, StatusCode, Version};

use crate::http::body::ResponseBody;
use crate::http::headers;
use crate::proxy::rewrite;
use crate::proxy::websocket;

pub fn response(res: &mut Response<ResponseBody>, request_id: &HeaderValue, from_upstream: bool) {
    if from_upstream {
        // Intermediaries send their own HTTP version (RFC 9110 section 6.2),
        // as the gateway's own responses do: an HTTP/1.0 upstream's answer
        // passed on as HTTP/1.0 would cost the client its keep-alive
        // connection and, without a length, end its body with a close.
        // hyper frames the body for the client (chunked when the length is
        // unknown), still answers an HTTP/1.0 client in HTTP/1.0, and
        // ignores the field on HTTP/2.
        *res.version_mut() = Version::HTTP_11;
    }
    let switching = res.status() == StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    if from_upstream {
        let upgrade = h.get(&headers::UPGRADE).cloned().filter(|_| switching);
        rewrite::strip(h, rewrite::Strip::HopByHop);
        if let Some(upgrade) = upgrade {
            websocket::keep_upgrade(h, upgrade);
        }
    }
    h.insert(&headers::X_REQUEST_ID, request_id.clone());
}
