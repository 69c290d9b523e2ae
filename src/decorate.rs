//! The response as the client receives it: upstream hop-by-hop headers
//! removed, `X-Request-Id` on every response (the gateway's errors included).

use http::{HeaderValue, Response};

use crate::body::ResponseBody;
use crate::{headers, rewrite};

pub fn response(res: &mut Response<ResponseBody>, request_id: &HeaderValue, from_upstream: bool) {
    let h = res.headers_mut();
    if from_upstream {
        rewrite::strip_hop_by_hop(h);
    }
    h.insert(&headers::X_REQUEST_ID, request_id.clone());
}
