//! The one path a request takes. `handle` wraps: one state snapshot, the
//! request's context, the error mapping, decoration and the record. `run`
//! is the linear sequence of stages, one call each; every stage returns a
//! value, and an early answer (a preflight) comes back as one.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use crate::auth::{AuthError, Principal};
use crate::config::{
    AuthMode, ClientIp, Endpoint, Limits, Route, Target, UpstreamProtocol, UpstreamTarget,
};
use crate::http::body::{self, check_declared_length, ResponseBody};
use crate::http::conn::ConnInfo;
use crate::http::head;
use crate::http::headers;
use crate::http::server::Handler;
use crate::identity::{endpoints, AccountError};
use crate::proxy::ctx::RequestCtx;
use crate::proxy::error::GatewayError;
use crate::proxy::route::{self, Match};
use crate::proxy::state::{Gateway, GatewayState};
use crate::proxy::upstream::{BodyLimit, Forward, UpstreamError};
use crate::proxy::{client_ip, cors, decorate, echo, grpc, rewrite, websocket};
use crate::ratelimit::{Limited, Phase, Subject};
use crate::telemetry::metrics::{Metrics, SigninOutcome};

impl Handler for Gateway {
    fn limits(&self) -> Limits {
        self.state.load().limits
    }

    fn proxy_protocol(&self) -> Option<Arc<ClientIp>> {
        let state = self.state.load();
        state
            .client_ip
            .proxy_protocol
            .then(|| state.client_ip.clone())
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn handle(
        self: Arc<Self>,
        conn: Arc<ConnInfo>,
        req: Request<Incoming>,
    ) -> impl std::future::Future<Output = Result<Response<ResponseBody>, Infallible>> + Send + 'static
    {
        // Boxed per request: hyper keeps a connection's request future in a
        // box of the future's size for the connection's whole life, so an
        // unboxed one (about 10 KiB) would stay on every idle connection.
        Box::pin(handle(self, conn, req))
    }
}

/// A response and where it came from (an upstream's needs its hop-by-hop
/// headers removed).
struct Answer {
    response: Response<ResponseBody>,
    from_upstream: bool,
}

impl Answer {
    fn gateway(response: Response<ResponseBody>) -> Answer {
        Answer {
            response,
            from_upstream: false,
        }
    }
}

/// Outcome of the preflight stage.
enum Preflight<'a> {
    /// Answered by the gateway: no authorization, no upstream.
    Answered(Response<ResponseBody>),
    /// Not a preflight the gateway answers; routed like any request.
    Route(Match<'a>),
}

/// What goes upstream (or to `echo`): the rewritten head, the body, the
/// path after `strip_prefix`, and the client's side of a WebSocket upgrade.
struct Outgoing {
    parts: Parts,
    body: Incoming,
    path_and_query: String,
    upgrade: Option<OnUpgrade>,
}

pub async fn handle(
    gw: Arc<Gateway>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let in_flight = conn.clock.request_started();
    let state = gw.state.load_full();
    let log = state.log.access.then_some(state.log.format);
    let global = cors::Decoration::of(state.cors.clone(), req.headers());
    let mut ctx = RequestCtx::new(&req, conn.client, global, log, gw.metrics.clone());
    // A refusal is recorded with its HTTP status, also when a gRPC client
    // gets it as a trailers-only 200.
    let mut refused = None;
    let answer = match run(&gw, &state, &conn, &mut ctx, req).await {
        Ok(answer) => answer,
        Err(e) => {
            refused = Some(e.status());
            Answer::gateway(refuse(&gw, &ctx, e))
        }
    };
    let mut res = answer.response;
    decorate::response(&mut res, &ctx.request_id, answer.from_upstream);
    if let Some(limited) = &ctx.limited {
        limited.decorate(res.headers_mut());
    }
    cors::decorate(&mut res, &ctx.cors);
    if body::is_headers_only(ctx.method(), res.status()) {
        res.body_mut().headers_only();
    }
    let status = refused.unwrap_or(res.status()).as_u16();
    res.body_mut().on_complete(ctx.finish(status));
    res.body_mut().hold(in_flight);
    Ok(res)
}

async fn run(
    gw: &Gateway,
    state: &GatewayState,
    conn: &ConnInfo,
    ctx: &mut RequestCtx,
    req: Request<Incoming>,
) -> Result<Answer, GatewayError> {
    head::check(&req, conn.clock.take_framing_conflict())?;
    ctx.path = route::normalize(req.uri().path())?;
    let found = match preflight(state, ctx, &req)? {
        Preflight::Answered(res) => return Ok(Answer::gateway(res)),
        Preflight::Route(found) => found,
    };
    let route = select(state, ctx, &req, found)?;
    // Policies keyed by the client go before the token is verified (a
    // flood costs no signature check), the principal's after it.
    // A built-in endpoint answers a wrong method itself (405): not limited.
    let limited = state
        .rate_limits
        .of(route)
        .filter(|_| route.allows(req.method()));
    let client = limited.map(|policies| {
        ctx.limited = Some(Limited::new(policies.clone()));
        client_ip::client_ip(&state.client_ip, conn.client.ip(), req.headers())
    });
    limit(gw, ctx, route, &req, client, Phase::BeforeAuth)?;
    // A built-in endpoint answers a wrong method (405) before any token.
    let principal = match route.allows(req.method()) {
        true => authorize(state, route, req.headers())?,
        false => None,
    };
    ctx.principal = principal.as_ref().map(|p| p.sub.clone());
    limit(gw, ctx, route, &req, client, Phase::AfterAuth)?;
    match &route.target {
        // Boxed: the identity endpoints' state is most of this future's
        // size, which every proxied request would otherwise move around.
        Target::Builtin(endpoint) => {
            Box::pin(builtin(state, ctx, *endpoint, principal.as_deref(), req)).await
        }
        Target::Echo => {
            let out = outgoing(state, conn, ctx, route, principal.as_deref(), req)?;
            Ok(Answer::gateway(echo::respond(
                &out.parts,
                &out.path_and_query,
            )))
        }
        Target::Upstream(targets) => {
            let out = outgoing(state, conn, ctx, route, principal.as_deref(), req)?;
            forward(gw, state, conn, ctx, route, targets, out).await
        }
    }
}

/// One phase of a limited route's rate limits (`client` is set exactly
/// when the route is limited).
fn limit(
    gw: &Gateway,
    ctx: &mut RequestCtx,
    route: &Route,
    req: &Request<Incoming>,
    client: Option<std::net::IpAddr>,
    phase: Phase,
) -> Result<(), GatewayError> {
    let (Some(limited), Some(client)) = (ctx.limited.as_mut(), client) else {
        return Ok(());
    };
    let subject = Subject {
        client,
        principal: ctx.principal.as_ref(),
        headers: req.headers(),
        route: &route.name,
        builtin: matches!(route.target, Target::Builtin(_)),
    };
    limited.check(phase, &subject).map_err(|denied| {
        for policy in &denied.policies {
            gw.metrics.rate_limited(&route.name, policy);
        }
        if matches!(route.target, Target::Builtin(Endpoint::Signin)) {
            gw.metrics.signin(SigninOutcome::Throttled);
        }
        GatewayError::RateLimited(denied)
    })
}

/// A failure's response; our own and the upstream's failures are logged
/// with their causes, the client's at debug, and upstream failures counted.
fn refuse(gw: &Gateway, ctx: &RequestCtx, e: GatewayError) -> Response<ResponseBody> {
    if let Some(kind) = e.upstream_kind() {
        gw.metrics.upstream_error(kind);
    }
    let id = ctx.request_id.to_str().unwrap_or_default();
    match e.is_client_fault() {
        true => tracing::debug!(request_id = id, error = %e.chain(), "request refused"),
        false => tracing::warn!(request_id = id, error = %e.chain(), "request failed"),
    }
    match ctx.grpc {
        true => {
            let message = e.message().into_owned();
            grpc::trailers_only(e.into_response(), &message)
        }
        false => e.into_response(),
    }
}

/// The preflight stage: an `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method` for a route with a CORS policy is
/// answered here. Any other request is matched for its own method.
fn preflight<'s>(
    state: &'s GatewayState,
    ctx: &mut RequestCtx,
    req: &Request<Incoming>,
) -> Result<Preflight<'s>, GatewayError> {
    let Some(requested) = cors::preflight_method(req.method(), req.headers()) else {
        return Ok(Preflight::Route(
            state.routes.lookup(&ctx.path, req.method()),
        ));
    };
    let route = match state.routes.lookup(&ctx.path, &requested) {
        Match::Found(route) => route,
        Match::MethodNotAllowed(_) if state.cors.is_some() => {
            ctx.cors = refused(state.cors.clone());
            return Err(cors::CorsRefusal::Method.into());
        }
        Match::MethodNotAllowed(_) => {
            return Ok(Preflight::Route(
                state.routes.lookup(&ctx.path, req.method()),
            ))
        }
        Match::NotFound => return Err(GatewayError::NotFound),
    };
    let Some(policy) = cors::route_policy(route, state.cors.as_ref()) else {
        // `cors: off`: the `OPTIONS` is the route's like any method.
        return Ok(Preflight::Route(
            state.routes.lookup(&ctx.path, req.method()),
        ));
    };
    ctx.route = Some(route.name.clone());
    match cors::preflight(&policy, req.headers(), &requested, |m| route.allows(m)) {
        Ok(res) => {
            ctx.cors = cors::Decoration::None;
            Ok(Preflight::Answered(res))
        }
        Err(refusal) => {
            ctx.cors = cors::Decoration::Refused(policy);
            Err(refusal.into())
        }
    }
}

fn refused(policy: Option<Arc<crate::config::CorsPolicy>>) -> cors::Decoration {
    policy.map_or(cors::Decoration::None, cors::Decoration::Refused)
}

/// The route stage: the matched route, its CORS policy for the response.
fn select<'s>(
    state: &GatewayState,
    ctx: &mut RequestCtx,
    req: &Request<Incoming>,
    found: Match<'s>,
) -> Result<&'s Route, GatewayError> {
    let route = match found {
        Match::Found(route) => route,
        Match::MethodNotAllowed(allow) => return Err(GatewayError::MethodNotAllowed(allow)),
        Match::NotFound => return Err(GatewayError::NotFound),
    };
    ctx.route = Some(route.name.clone());
    ctx.cors = cors::Decoration::of(
        cors::route_policy(route, state.cors.as_ref()),
        req.headers(),
    );
    Ok(route)
}

/// The principal a protected route runs as. A route requiring a token with
/// no identity service cannot exist (config validation), but fails closed.
fn authorize(
    state: &GatewayState,
    route: &Route,
    h: &HeaderMap,
) -> Result<Option<Arc<Principal>>, AuthError> {
    match (route.auth, state.identity.as_deref()) {
        (AuthMode::None, _) => Ok(None),
        (AuthMode::Required, Some(id)) => id.authorizer.authorize(h, &route.scopes).map(Some),
        (AuthMode::Required, None) if state.identity_pending => Err(AuthError::StoreUnavailable),
        (AuthMode::Required, None) => Err(AuthError::MissingToken),
    }
}

/// A built-in endpoint; without `auth` there are none in the table.
async fn builtin(
    state: &GatewayState,
    ctx: &RequestCtx,
    endpoint: Endpoint,
    principal: Option<&Principal>,
    req: Request<Incoming>,
) -> Result<Answer, GatewayError> {
    let Some(identity) = state.identity.as_deref() else {
        return Err(match state.identity_pending {
            true => AccountError::store_not_reached().into(),
            false => GatewayError::NotFound,
        });
    };
    let call = endpoints::Call {
        endpoint,
        req,
        path: &ctx.path,
        principal,
        read_timeout: state.limits.header_timeout,
        stats: &ctx.stats,
    };
    let res = endpoints::serve(identity, call).await?;
    Ok(Answer::gateway(res))
}

/// The rewrite stage: the head as the upstream must see it.
fn outgoing(
    state: &GatewayState,
    conn: &ConnInfo,
    ctx: &RequestCtx,
    route: &Route,
    principal: Option<&Principal>,
    req: Request<Incoming>,
) -> Result<Outgoing, GatewayError> {
    check_declared_length(req.headers(), route.max_body(&state.limits))?;
    let path_and_query = upstream_path(&ctx.path, route, req.uri().query());
    let host = client_host(&req);
    let upgrade = websocket::upgrade_of(&req);
    let (mut parts, body) = req.into_parts();
    let origin = rewrite::Origin {
        client_ip: &conn.client_ip,
        proto: conn.proto,
        host,
        request_id: &ctx.request_id,
        trusted: client_ip::trusts_forwarded(&state.client_ip, conn.client.ip()),
    };
    rewrite::request(&mut parts.headers, &origin);
    if let Some(p) = principal {
        p.add_headers(&mut parts.headers);
    }
    let upgrade = upgrade.and_then(|value| websocket::take_upgrade(&mut parts, value));
    Ok(Outgoing {
        parts,
        body,
        path_and_query,
        upgrade,
    })
}

/// The forward stage: the upstream's answer, streamed back (or a WebSocket tunnel).
async fn forward(
    gw: &Gateway,
    state: &GatewayState,
    conn: &ConnInfo,
    ctx: &mut RequestCtx,
    route: &Route,
    targets: &[UpstreamTarget],
    out: Outgoing,
) -> Result<Answer, GatewayError> {
    // A gRPC call's own deadline, when shorter, bounds the wait for the head.
    let timeout = grpc::timeout(&out.parts.headers).map_or(route.timeout, |t| t.min(route.timeout));
    let fwd = Forward {
        targets,
        path_and_query: &out.path_and_query,
        timeout,
        silence: route.timeout,
        // Upgrades are HTTP/1.1 only.
        protocol: match out.upgrade {
            Some(_) => UpstreamProtocol::Http1,
            None => route.upstream_protocol,
        },
    };
    let limit = BodyLimit {
        max: route.max_body(&state.limits),
        stats: ctx.stats.clone(),
    };
    let answer = gw
        .upstreams
        .forward(fwd, out.parts, out.body, limit)
        .await?;
    ctx.upstream = Some(answer.target.display.clone());
    let response = match (answer.upgraded, out.upgrade) {
        (Some(upstream), Some(client)) => {
            websocket::tunnel(client, upstream, conn.alive.clone());
            answer.response.map(|_| ResponseBody::full(Bytes::new()))
        }
        (Some(_), None) => {
            let e = "a 101 the request did not ask for";
            return Err(UpstreamError::Protocol(e.into()).into());
        }
        (None, _) => answer.response.map(ResponseBody::stream),
    };
    Ok(Answer {
        response,
        from_upstream: true,
    })
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
