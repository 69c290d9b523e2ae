//! The response as the client receives it: upstream hop-by-hop headers
//! removed (but a 101's `Upgrade`, which the switch needs), `X-Request-Id`
//! on every response (the gateway's errors included).

use http::{HeaderValue, Response, StatusCode};

use crate::http::body::ResponseBody;
use crate::http::headers;
use crate::proxy::rewrite;
use crate::proxy::websocket;

pub fn response(res: &mut Response<ResponseBody>, request_id: &HeaderValue, from_upstream: bool) {
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
