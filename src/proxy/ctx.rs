//! `RequestCtx`: what the stages learn about a request (its route, principal,
//! upstream, CORS decision, byte counts). It becomes the request's one
//! record when its response body is done, so `bytes_out` and the duration
//! are final: the request metrics, and the access-log line unless
//! `log.access` is off. A request whose client went away before its
//! response was complete is recorded as 499 (docs/operations.md), also when
//! that happened before there was a response at all.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::ratelimit::Limited;
use std::time::{Instant, SystemTime};

use http::{HeaderValue, Method, Request};

use crate::config::LogFormat;
use crate::http::body::{Delivery, OnComplete, RequestStats};
use crate::proxy::cors::Decoration;
use crate::proxy::request_id;
use crate::telemetry::access_log::{self, Line};
use crate::telemetry::metrics::Metrics;

/// The status recorded for a request whose client went away before its
/// response was complete (nginx's "client closed request").
pub const CLIENT_CLOSED: u16 = 499;

pub struct RequestCtx {
    pub request_id: HeaderValue,
    /// Normalised once routing has run; the raw path before (or when it was refused).
    pub path: String,
    pub route: Option<Arc<str>>,
    pub upstream: Option<Arc<str>>,
    /// The verified token's `sub`, on protected routes.
    pub principal: Option<Arc<str>>,
    /// How the response gets its CORS headers: the global policy until a
    /// route is chosen, then the route's (or a preflight's outcome).
    pub cors: Decoration,
    pub stats: Arc<RequestStats>,
    /// The rate-limit checks of a limited route, for its headers.
    pub limited: Option<Limited>,
    /// A gRPC call: the gateway's own refusals are trailers-only gRPC responses.
    pub grpc: bool,
    method: Method,
    client: SocketAddr,
    start: Instant,
    /// `None` when the access log is off.
    log: Option<LogFormat>,
    metrics: Arc<Metrics>,
    status: u16,
    /// Recorded already: dropping it writes nothing more.
    recorded: bool,
}

impl RequestCtx {
    pub fn new<B>(
        req: &Request<B>,
        client: SocketAddr,
        cors: Decoration,
        log: Option<LogFormat>,
        metrics: Arc<Metrics>,
    ) -> RequestCtx {
        RequestCtx {
            request_id: request_id::keep_or_generate(req.headers()),
            path: req.uri().path().to_string(),
            route: None,
            upstream: None,
            principal: None,
            cors,
            stats: Arc::default(),
            limited: None,
            grpc: crate::proxy::grpc::is_grpc(req.headers()),
            method: req.method().clone(),
            client,
            start: Instant::now(),
            log,
            metrics,
            status: 0,
            recorded: false,
        }
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The record to take once the response with `status` is done.
    pub fn finish(mut self, status: u16) -> Box<RequestCtx> {
        self.status = status;
        self.cors = Decoration::None;
        Box::new(self)
    }
}

impl OnComplete for RequestCtx {
    fn complete(mut self: Box<Self>, bytes_out: u64, delivery: Delivery) {
        if delivery == Delivery::ClientGone {
            self.status = CLIENT_CLOSED;
        }
        self.record(bytes_out);
    }
}

/// Dropped unrecorded: the request's future was dropped before it had a
/// response, because its client went away (a reset stream, a closed
/// connection).
impl Drop for RequestCtx {
    fn drop(&mut self) {
        if !self.recorded {
            self.status = CLIENT_CLOSED;
            self.record(0);
        }
    }
}

impl RequestCtx {
    fn record(&mut self, bytes_out: u64) {
        self.recorded = true;
        let took = self.start.elapsed();
        let route = self.route.as_deref();
        self.metrics
            .request(route.unwrap_or(""), &self.method, self.status, took);
        let Some(format) = self.log else { return };
        let line = Line {
            // The wall clock is read only for the access log.
            time: SystemTime::now() - took,
            request_id: self.request_id.to_str().unwrap_or_default(),
            client: self.client,
            method: self.method.as_str(),
            path: &self.path,
            route,
            status: self.status,
            duration_ms: took.as_secs_f64() * 1000.0,
            upstream: self.upstream.as_deref(),
            principal: self.principal.as_deref(),
            bytes_in: self.stats.bytes_in.load(Ordering::Relaxed),
            bytes_out,
        };
        access_log::write(&line, format);
    }
}
