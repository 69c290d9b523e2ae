//! CORS (docs/cors.md): which policy applies to a request, preflights
//! answered by the gateway, and the headers every response of a request with
//! a policy gets on the way out, the gateway's own errors included.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::config::{CorsPolicy, Route, RouteCors};
use crate::http::body::ResponseBody;

/// Why a preflight was refused (403, `Vary: Origin`, no `Access-Control-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CorsRefusal {
    #[error("CORS preflight refused: the origin is not allowed")]
    Origin,
    #[error("CORS preflight refused: the method is not allowed")]
    Method,
    #[error("CORS preflight refused: a request header is not allowed")]
    Header,
}

/// The policy of a route: its own, none (`cors: off`), or the global one.
pub fn route_policy(route: &Route, global: Option<&Arc<CorsPolicy>>) -> Option<Arc<CorsPolicy>> {
    match &route.cors {
        RouteCors::Inherit => global.cloned(),
        RouteCors::Off => None,
        RouteCors::Policy(p) => Some(p.clone()),
    }
}

/// How a response gets its CORS headers.
pub enum Decoration {
    /// No policy applies, or the response is a preflight answer with its own headers.
    None,
    /// A policy applies; the request's `Origin` gets its headers if allowed.
    Policy(Arc<CorsPolicy>, Option<HeaderValue>),
    /// A refused preflight: `Vary: Origin`, no `Access-Control-*`.
    Refused(Arc<CorsPolicy>),
}

impl Decoration {
    /// `policy` for a request with these headers.
    pub fn of(policy: Option<Arc<CorsPolicy>>, h: &HeaderMap) -> Decoration {
        match policy {
            Some(p) => Decoration::Policy(p, h.get(ORIGIN).cloned()),
            None => Decoration::None,
        }
    }
}

/// `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub fn preflight_method(method: &Method, h: &HeaderMap) -> Option<Method> {
    if method != Method::OPTIONS || !h.contains_key(ORIGIN) {
        return None;
    }
    let m = h.get(ACCESS_CONTROL_REQUEST_METHOD)?.to_str().ok()?;
    Method::from_bytes(m.trim().as_bytes()).ok()
}

fn allows_origin(p: &CorsPolicy, origin: &HeaderValue) -> bool {
    p.any_origin
        || origin
            .to_str()
            .is_ok_and(|o| p.allow_origins.iter().any(|a| a.eq_ignore_ascii_case(o)))
}

/// A header the policy lets a page send. `*` covers any name but
/// `Authorization`, which must be listed (Fetch standard).
fn allows_header(p: &CorsPolicy, name: &str) -> bool {
    p.allow_headers.iter().any(|a| a.eq_ignore_ascii_case(name))
        || (!name.eq_ignore_ascii_case("authorization")
            && !p.allow_credentials
            && p.allow_headers.iter().any(|a| a == "*"))
}

/// Answers a preflight for a resource whose route allows `route_allows`:
/// 204 with the allowed methods and headers, or 403 (no `Access-Control-Allow-*`).
pub fn preflight(
    p: &CorsPolicy,
    h: &HeaderMap,
    requested: &Method,
    route_allows: impl Fn(&Method) -> bool,
) -> Result<Response<ResponseBody>, CorsRefusal> {
    let origin = h
        .get(ORIGIN)
        .cloned()
        .unwrap_or(HeaderValue::from_static(""));
    if !allows_origin(p, &origin) {
        return Err(CorsRefusal::Origin);
    }
    if !p.allow_methods.contains(requested) || !route_allows(requested) {
        return Err(CorsRefusal::Method);
    }
    let asked: Vec<&str> = h
        .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if !asked.iter().all(|n| allows_header(p, n)) {
        return Err(CorsRefusal::Header);
    }
    let methods: Vec<&str> = p
        .allow_methods
        .iter()
        .filter(|m| route_allows(m))
        .map(Method::as_str)
        .collect();
    let headers = match asked.is_empty() {
        true => p.allow_headers.join(", "),
        false => asked.join(", "),
    };
    let mut res = Response::new(ResponseBody::full(Bytes::new()));
    *res.status_mut() = StatusCode::NO_CONTENT;
    let out = res.headers_mut();
    set_origin(out, p, &origin);
    insert(out, ACCESS_CONTROL_ALLOW_METHODS, &methods.join(", "));
    if !headers.is_empty() {
        insert(out, ACCESS_CONTROL_ALLOW_HEADERS, &headers);
    }
    insert(
        out,
        ACCESS_CONTROL_MAX_AGE,
        &p.max_age.as_secs().to_string(),
    );
    out.append(
        VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    Ok(res)
}

/// On the way out of a request with a policy: upstream `Access-Control-*`
/// removed, `Vary: Origin`, and the gateway's set when the origin is allowed.
pub fn decorate(res: &mut Response<ResponseBody>, d: &Decoration) {
    match d {
        Decoration::None => {}
        Decoration::Policy(p, origin) => apply(res.headers_mut(), p, origin.as_ref()),
        Decoration::Refused(p) => apply(res.headers_mut(), p, None),
    }
}

fn apply(h: &mut HeaderMap, p: &CorsPolicy, origin: Option<&HeaderValue>) {
    let foreign: Vec<_> = h
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for k in foreign {
        h.remove(k);
    }
    if !p.any_origin {
        h.append(VARY, HeaderValue::from_static("Origin"));
    }
    let Some(origin) = origin.filter(|o| allows_origin(p, o)) else {
        return;
    };
    set_origin(h, p, origin);
    if !p.expose_headers.is_empty() {
        insert(
            h,
            ACCESS_CONTROL_EXPOSE_HEADERS,
            &p.expose_headers.join(", "),
        );
    }
}

fn set_origin(h: &mut HeaderMap, p: &CorsPolicy, origin: &HeaderValue) {
    let value = match p.any_origin && !p.allow_credentials {
        true => HeaderValue::from_static("*"),
        false => origin.clone(),
    };
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
    if p.allow_credentials {
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

fn insert(h: &mut HeaderMap, name: http::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}
