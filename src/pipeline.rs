//! The one path a request takes. `handle` wraps: snapshot, request id, the
//! error mapping, decoration and the access record. `run` is the linear
//! sequence of stages: framing -> head checks -> normalise -> (built-in endpoint) -> route ->
//! authorize -> limit -> rewrite -> forward (or echo).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use tokio::sync::mpsc;

use crate::authorizer::Principal;
use crate::body::{RequestStats, ResponseBody};
use crate::config::{AuthMode, CorsPolicy, Route, Target, UpstreamProtocol};
use crate::conn::ConnClock;
use crate::error::GatewayError;
use crate::identity::{self, Endpoint};
use crate::record::RequestRecord;
use crate::route::{self, Match};
use crate::state::{Gateway, GatewayState};
use crate::upstream::{BodyLimit, Forward, UpstreamError};
use crate::{cors, decorate, echo, head, headers, request_id, rewrite, websocket};

/// The client's connection, as requests on it see it.
pub struct ConnInfo {
    pub client: SocketAddr,
    /// The client's IP as a header value, made once per connection for `X-Forwarded-For`.
    pub client_ip: HeaderValue,
    /// `http` or `https`.
    pub proto: &'static str,
    pub clock: Arc<ConnClock>,
    /// Held by anything that outlives its request (a WebSocket tunnel), so
    /// shutdown waits for it, at most `shutdown_timeout`.
    pub alive: mpsc::Sender<()>,
}

/// What the stages learn about a request, for the access record.
struct RequestCtx {
    request_id: HeaderValue,
    path: String,
    route: Option<Arc<str>>,
    upstream: Option<Arc<str>>,
    /// The verified token's `sub`, on protected routes.
    principal: Option<Arc<str>>,
    origin: Option<HeaderValue>,
    /// The CORS policy the response gets (`None`: no CORS handling).
    cors: Option<Arc<CorsPolicy>>,
    stats: Arc<RequestStats>,
}

pub async fn handle(
    gw: Arc<Gateway>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let in_flight = conn.clock.request_started();
    let state = gw.state.load_full();
    let start = Instant::now();
    let method = req.method().clone();
    let mut ctx = RequestCtx {
        request_id: request_id::keep_or_generate(req.headers()),
        path: String::new(),
        route: None,
        upstream: None,
        principal: None,
        origin: None,
        cors: None,
        stats: Arc::default(),
    };
    let (mut res, from_upstream) = match run(&gw, &state, &conn, &mut ctx, req).await {
        Ok(answer) => answer,
        Err(e) => {
            let id = ctx.request_id.to_str().unwrap_or_default();
            match e.is_client_fault() {
                true => tracing::debug!(request_id = id, error = %e, "request refused"),
                false => {
                    tracing::warn!(request_id = id, error = %e, source = ?std::error::Error::source(&e), "request failed")
                }
            }
            (e.into_response(), false)
        }
    };
    decorate::response(&mut res, &ctx.request_id, from_upstream);
    if let Some(policy) = &ctx.cors {
        cors::decorate(&mut res, policy, ctx.origin.as_ref());
    }
    let status = res.status().as_u16();
    res.body_mut().on_complete(Box::new(RequestRecord {
        metrics: gw.metrics.clone(),
        // The wall clock is read only for the access log.
        log: state
            .log
            .access
            .then(|| (state.log.format, SystemTime::now() - start.elapsed())),
        start,
        request_id: ctx.request_id,
        client: conn.client,
        method,
        path: ctx.path,
        route: ctx.route,
        status,
        upstream: ctx.upstream,
        principal: ctx.principal,
        stats: ctx.stats,
    }));
    res.body_mut().hold(in_flight);
    Ok(res)
}

async fn run(
    gw: &Gateway,
    state: &GatewayState,
    conn: &ConnInfo,
    ctx: &mut RequestCtx,
    req: Request<Incoming>,
) -> Result<(Response<ResponseBody>, bool), GatewayError> {
    ctx.origin = cors::origin(req.headers());
    ctx.cors = state.cors.clone();
    if conn.clock.take_framing_conflict() {
        return Err(GatewayError::ConflictingFraming);
    }
    head::check(&req)?;
    ctx.path = route::normalize(req.uri().path()).map_err(|e| {
        ctx.path = req.uri().path().to_string();
        GatewayError::BadPath(e)
    })?;
    if let Some(identity) = state.identity.as_deref() {
        if let Some(endpoint) = Endpoint::at(&ctx.path) {
            ctx.route = Some(Arc::from(endpoint.route_name()));
            let requested = cors::preflight_method(req.method(), req.headers());
            if let (Some(m), Some(policy)) = (requested, ctx.cors.clone()) {
                let allowed = endpoint.method();
                let res = answer_preflight(ctx, policy, req.headers(), &m, |m| *m == allowed)?;
                return Ok((res, false));
            }
            let read_timeout = state.limits.header_timeout;
            let res = identity::endpoints::serve(identity, endpoint, req, read_timeout, &ctx.stats)
                .await?;
            return Ok((res, false));
        }
    }
    if let Some(requested) = cors::preflight_method(req.method(), req.headers()) {
        if let Some(res) = preflight(state, ctx, &requested, req.headers())? {
            return Ok((res, false));
        }
    }
    let route = match state.routes.lookup(&ctx.path, req.method()) {
        Match::Found(route) => route,
        Match::MethodNotAllowed(allow) => return Err(GatewayError::MethodNotAllowed(allow)),
        Match::NotFound => return Err(GatewayError::NotFound),
    };
    ctx.route = Some(route.name.clone());
    ctx.cors = cors::route_policy(route, state.cors.as_ref());
    let principal = authorize(state, route, req.headers())?;
    ctx.principal = principal.as_ref().map(|p| p.sub.clone());
    check_declared_length(req.headers(), state.limits.max_body)?;
    let path_and_query = upstream_path(&ctx.path, route, req.uri().query());
    let host = client_host(&req);
    let upgrade = websocket::upgrade_of(&req);
    let (mut parts, body) = req.into_parts();
    rewrite::request(
        &mut parts.headers,
        &rewrite::Origin {
            client_ip: &conn.client_ip,
            proto: conn.proto,
            host,
            request_id: &ctx.request_id,
        },
    );
    if let Some(p) = &principal {
        p.add_headers(&mut parts.headers);
    }
    let client_upgrade = match upgrade {
        Some(value) => {
            websocket::keep_upgrade(&mut parts.headers, value);
            parts.extensions.remove::<OnUpgrade>()
        }
        None => None,
    };
    match &route.target {
        Target::Echo => Ok((echo::respond(&parts, &path_and_query), false)),
        Target::Upstream(targets) => {
            let fwd = Forward {
                targets,
                path_and_query: &path_and_query,
                timeout: route.timeout,
                // hyper upgrades HTTP/1.1 connections only.
                protocol: match client_upgrade {
                    Some(_) => UpstreamProtocol::Http1,
                    None => route.upstream_protocol,
                },
            };
            let limit = BodyLimit {
                max: state.limits.max_body,
                stats: ctx.stats.clone(),
            };
            let answer = gw
                .upstreams
                .forward(fwd, parts, body, limit)
                .await
                .inspect_err(|e| {
                    if let Some(kind) = e.metric_kind() {
                        gw.metrics.upstream_error(kind);
                    }
                })?;
            ctx.upstream = Some(answer.target.display.clone());
            let (mut response, lease) = (answer.response, answer.lease);
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                let Some(client) = client_upgrade else {
                    let e = "a 101 the request did not ask for";
                    return Err(UpstreamError::Protocol(e.into()).into());
                };
                // The connection now belongs to the tunnel, never to the pool.
                drop(lease);
                websocket::tunnel(client, &mut response, conn.alive.clone());
                return Ok((response.map(|_| ResponseBody::full(Bytes::new())), true));
            }
            let res = response.map(|b| ResponseBody::upstream(b, route.timeout, lease));
            Ok((res, true))
        }
    }
}

/// A CORS preflight, answered without authorization or upstream, when the
/// route for the requested method has a policy; `None` routes the `OPTIONS`
/// like any request (`cors: off`, or no policy at all).
fn preflight(
    state: &GatewayState,
    ctx: &mut RequestCtx,
    requested: &Method,
    h: &HeaderMap,
) -> Result<Option<Response<ResponseBody>>, GatewayError> {
    match state.routes.lookup(&ctx.path, requested) {
        Match::Found(route) => match cors::route_policy(route, state.cors.as_ref()) {
            Some(policy) => {
                ctx.route = Some(route.name.clone());
                answer_preflight(ctx, policy, h, requested, |m| route.allows(m)).map(Some)
            }
            None => Ok(None),
        },
        Match::MethodNotAllowed(_) if ctx.cors.is_some() => {
            ctx.origin = None; // refused: `Vary` only, no `Access-Control-*`
            Err(GatewayError::PreflightRefused("the method is not allowed"))
        }
        Match::MethodNotAllowed(_) => Ok(None),
        Match::NotFound => Err(GatewayError::NotFound),
    }
}

/// A preflight under `policy`. The 204 carries its own headers, so the
/// response stage adds none; a refusal gets `Vary: Origin` but, its origin
/// dropped, no `Access-Control-*` headers.
fn answer_preflight(
    ctx: &mut RequestCtx,
    policy: Arc<CorsPolicy>,
    h: &HeaderMap,
    requested: &Method,
    allows: impl Fn(&Method) -> bool,
) -> Result<Response<ResponseBody>, GatewayError> {
    let answer = cors::preflight(&policy, h, requested, allows);
    match answer {
        Ok(_) => ctx.cors = None,
        Err(_) => {
            ctx.cors = Some(policy);
            ctx.origin = None;
        }
    }
    answer
}

/// The principal a protected route runs as. A route requiring a token with
/// no identity service cannot exist (config validation), but fails closed.
fn authorize(
    state: &GatewayState,
    route: &Route,
    h: &HeaderMap,
) -> Result<Option<Arc<Principal>>, GatewayError> {
    match (route.auth, state.identity.as_deref()) {
        (AuthMode::None, _) => Ok(None),
        (AuthMode::Required, Some(id)) => id.authorizer.authorize(h, &route.scopes).map(Some),
        (AuthMode::Required, None) => Err(GatewayError::Unauthorized),
    }
}

/// A declared `Content-Length` over the limit is refused before any byte is
/// forwarded; chunked bodies are cut where they are read (`body.rs`).
pub fn check_declared_length(h: &HeaderMap, max: u64) -> Result<(), GatewayError> {
    let declared = h
        .get(&headers::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match declared {
        Some(n) if n > max => Err(GatewayError::PayloadTooLarge(max)),
        _ => Ok(()),
    }
}

/// The normalised path minus `strip_prefix`, then the original query.
fn upstream_path(path: &str, route: &Route, query: Option<&str>) -> String {
    let stripped = match &route.strip_prefix {
        Some(prefix) => match path.strip_prefix(prefix.as_str()) {
            Some("") => "/",
            Some(rest) if rest.starts_with('/') => rest,
            _ => path,
        },
        None => path,
    };
    match query {
        Some(q) => format!("{stripped}?{q}"),
        None => stripped.to_string(),
    }
}

/// The host the client asked for: `Host`, else the request target's authority (HTTP/2).
fn client_host(req: &Request<Incoming>) -> Option<HeaderValue> {
    match req.headers().get(&headers::HOST) {
        Some(h) => Some(h.clone()),
        None => req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    }
}
