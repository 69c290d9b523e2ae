//! `echo: true` routes: answer with the request exactly as it would have been
//! forwarded, so operators can see what an upstream would receive.

use bytes::Bytes;
use http::{request, HeaderValue, Response};
use serde_json::{Map, Value};

use crate::http::body::ResponseBody;
use crate::http::headers;

pub fn respond(parts: &request::Parts, path_and_query: &str) -> Response<ResponseBody> {
    let mut headers_json = Map::new();
    for name in parts.headers.keys() {
        let joined = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        headers_json.insert(name.as_str().to_string(), Value::String(joined));
    }
    let body = serde_json::json!({
        "method": parts.method.as_str(),
        "path": path_and_query,
        "headers": headers_json,
    });
    let mut res = Response::new(ResponseBody::full(Bytes::from(body.to_string())));
    res.headers_mut().insert(
        &headers::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
