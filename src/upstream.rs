//! Upstream side: the pooled client, target choice (round robin, refusing
//! targets skipped for 10 s, one retry on another target when a connection
//! could not be made) and the route timeout up to the response head.

use std::error::Error as _;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::{PathAndQuery, Uri};
use http::{request, Request, Response};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::body::{BodyTooLarge, BoxError, RequestBody, RequestStats, RetrySlot};
use crate::config::UpstreamTarget;

/// How long a target that refused a connection is skipped.
const DOWN_FOR: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to the upstream")]
    Connect(#[source] BoxError),
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("the upstream closed or reset the connection")]
    Reset(#[source] BoxError),
    #[error("the upstream sent a malformed response")]
    Protocol(#[source] BoxError),
    #[error("the request body is larger than the {0}-byte limit")]
    BodyTooLarge(u64),
}

impl UpstreamError {
    /// The `kind` label of `gateway_upstream_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "connect",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Reset(_) => "reset",
            UpstreamError::Protocol(_) | UpstreamError::BodyTooLarge(_) => "protocol",
        }
    }
}

pub struct Upstreams {
    client: Client<HttpsConnector<HttpConnector>, RequestBody>,
    next: AtomicUsize,
    /// Targets that refused a connection, and until when they are skipped.
    down: Mutex<Vec<(UpstreamTarget, Instant)>>,
}

/// The `max_body` limit and the counter the request body reports to.
pub struct BodyLimit {
    pub max: u64,
    pub stats: Arc<RequestStats>,
}

/// What `forward` needs besides the request.
pub struct Forward<'a> {
    pub targets: &'a [UpstreamTarget],
    pub path_and_query: &'a str,
    pub timeout: Duration,
}

impl Upstreams {
    pub fn new(idle_timeout: Duration) -> Result<Upstreams, std::io::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(Arc::new(rustls::crypto::ring::default_provider()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(idle_timeout)
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(Upstreams {
            client,
            next: AtomicUsize::new(0),
            down: Mutex::new(Vec::new()),
        })
    }

    /// Sends the request to a target and returns the response head (the body
    /// streams) with the target that answered. The body is wrapped here, with
    /// the `max_body` limit, so a connect failure can hand it back unsent.
    pub async fn forward<'t>(
        &self,
        fwd: Forward<'t>,
        parts: request::Parts,
        body: Incoming,
        limit: BodyLimit,
    ) -> Result<(Response<Incoming>, &'t UpstreamTarget), UpstreamError> {
        let deadline = Instant::now() + fwd.timeout;
        let first = self.pick(fwd.targets, None);
        if fwd.targets.len() == 1 {
            let req = build(
                parts,
                RequestBody::new(body, limit.max, limit.stats, None),
                first,
                fwd.path_and_query,
            );
            return self.send(req, deadline).await.map(|r| (r, first));
        }
        let slot: RetrySlot = Arc::new(Mutex::new(None));
        let body = RequestBody::new(body, limit.max, limit.stats.clone(), Some(slot.clone()));
        let req = build(parts.clone(), body, first, fwd.path_and_query);
        match self.send(req, deadline).await {
            Err(UpstreamError::Connect(e)) => {
                self.mark_down(first);
                // Nothing was sent, so any method may go to another target, once.
                let unsent = slot.lock().ok().and_then(|mut s| s.take());
                let Some(body) = unsent else {
                    return Err(UpstreamError::Connect(e));
                };
                let second = self.pick(fwd.targets, Some(first));
                let req = build(
                    parts,
                    RequestBody::new(body, limit.max, limit.stats, None),
                    second,
                    fwd.path_and_query,
                );
                let result = self.send(req, deadline).await;
                if matches!(result, Err(UpstreamError::Connect(_))) {
                    self.mark_down(second);
                }
                result.map(|r| (r, second))
            }
            other => other.map(|r| (r, first)),
        }
    }

    async fn send(
        &self,
        req: Request<RequestBody>,
        deadline: Instant,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout_at(deadline, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Ok(res)) => Ok(res),
            Ok(Err(e)) => Err(classify(e)),
        }
    }

    /// Round robin over the targets, skipping those marked down (unless all are).
    fn pick<'a>(
        &self,
        targets: &'a [UpstreamTarget],
        not: Option<&UpstreamTarget>,
    ) -> &'a UpstreamTarget {
        if targets.len() == 1 {
            return &targets[0];
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let down = self
            .down
            .lock()
            .map(|d| {
                d.iter()
                    .filter(|(_, until)| *until > now)
                    .map(|(t, _)| t.clone())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        (0..targets.len())
            .map(|i| &targets[(start + i) % targets.len()])
            .find(|t| Some(*t) != not && !down.contains(t))
            .or_else(|| {
                (0..targets.len())
                    .map(|i| &targets[(start + i) % targets.len()])
                    .find(|t| Some(*t) != not)
            })
            .unwrap_or(&targets[0])
    }

    fn mark_down(&self, target: &UpstreamTarget) {
        if let Ok(mut down) = self.down.lock() {
            let now = Instant::now();
            down.retain(|(t, until)| *until > now && t != target);
            down.push((target.clone(), now + DOWN_FOR));
        }
    }
}

/// The request as the chosen target receives it: absolute URI and `Host`.
fn build(
    mut parts: request::Parts,
    body: RequestBody,
    target: &UpstreamTarget,
    path_and_query: &str,
) -> Request<RequestBody> {
    let pq = match target.base_path.is_empty() {
        true => PathAndQuery::from_str(path_and_query),
        false => PathAndQuery::from_str(&format!("{}{}", target.base_path, path_and_query)),
    };
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(target.scheme.clone());
    uri.authority = Some(target.authority.clone());
    // The path was normalised and the query came in a valid URI, so this parses.
    uri.path_and_query = pq.ok();
    if let Ok(u) = Uri::from_parts(uri) {
        parts.uri = u;
    }
    crate::rewrite::set_host(&mut parts.headers, &target.authority);
    // Upstreams speak HTTP/1.1 whatever the client spoke (h2 downstream included).
    parts.version = http::Version::HTTP_11;
    Request::from_parts(parts, body)
}

/// Sorts a client failure into the side and kind that picks its status.
fn classify(e: hyper_util::client::legacy::Error) -> UpstreamError {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(too_large) = s.downcast_ref::<BodyTooLarge>() {
            return UpstreamError::BodyTooLarge(too_large.0);
        }
        source = s.source();
    }
    if e.is_connect() {
        return UpstreamError::Connect(Box::new(e));
    }
    let mut parse = false;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            parse |= h.is_parse() || h.is_parse_status() || h.is_parse_too_large();
        }
        source = s.source();
    }
    match parse {
        true => UpstreamError::Protocol(Box::new(e)),
        false => UpstreamError::Reset(Box::new(e)),
    }
}
