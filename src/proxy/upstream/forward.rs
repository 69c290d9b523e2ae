//! Sending a request upstream: target choice (round robin, a target that
//! refused a connection skipped for 10 s, one retry on another target when
//! no connection could be made), the route timeout up to the response head,
//! and one retry on a fresh connection when a pooled one turned out closed
//! before the request was written.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::{PathAndQuery, Uri};
use http::{request, Method, Request, Response};
use hyper::body::Body;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::error::UpstreamError;
use super::pool::{Key, Lease, Pool};
use crate::config::{UpstreamProtocol, UpstreamTarget};
use crate::http::body::{RequestBody, RequestStats};

/// How long a target that refused a connection is skipped.
const DOWN_FOR: Duration = Duration::from_secs(10);

pub struct Upstreams {
    pool: Pool,
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
    pub protocol: UpstreamProtocol,
}

/// A response head from the upstream, the connection it came on (to be
/// released once its body is done) and the target that answered.
pub struct Answer<'t> {
    pub response: Response<Incoming>,
    pub lease: Lease,
    pub target: &'t UpstreamTarget,
}

impl Upstreams {
    pub fn new(idle_timeout: Duration) -> std::io::Result<Upstreams> {
        Ok(Upstreams {
            pool: Pool::new(idle_timeout)?,
            next: AtomicUsize::new(0),
            down: Mutex::new(Vec::new()),
        })
    }

    /// How long pooled connections may idle (`limits.idle_timeout`).
    pub fn set_idle_timeout(&self, limit: Duration) {
        self.pool.set_idle_timeout(limit);
    }

    pub async fn forward<'t>(
        &self,
        fwd: Forward<'t>,
        parts: request::Parts,
        body: hyper::body::Incoming,
        limit: BodyLimit,
    ) -> Result<Answer<'t>, UpstreamError> {
        let deadline = Instant::now() + fwd.timeout;
        let (max, stats) = (limit.max, limit.stats.clone());
        let req = Request::from_parts(parts, RequestBody::new(body, limit.max, limit.stats));
        match tokio::time::timeout_at(deadline, self.exchange(&fwd, req)).await {
            // An HTTP/2 upstream connection reports the body's failure as
            // its stream's reset: the count tells what happened.
            Ok(Err(_)) if stats.bytes_in.load(Ordering::Relaxed) > max => {
                Err(UpstreamError::BodyTooLarge(max))
            }
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Timeout),
        }
    }

    async fn exchange<'t>(
        &self,
        fwd: &Forward<'t>,
        mut req: Request<RequestBody>,
    ) -> Result<Answer<'t>, UpstreamError> {
        // Connect before anything is sent, so a target that refuses can be
        // swapped for another with the request still in hand.
        let first = self.pick(fwd.targets, None);
        let (target, mut lease) = match self.pool.checkout(first, fwd.protocol).await {
            Ok(lease) => (first, lease),
            Err(e) if fwd.targets.len() == 1 => return Err(UpstreamError::Connect(e)),
            Err(_) => {
                self.mark_down(first);
                let second = self.pick(fwd.targets, Some(first));
                match self.pool.checkout(second, fwd.protocol).await {
                    Ok(lease) => (second, lease),
                    Err(e) => {
                        self.mark_down(second);
                        return Err(UpstreamError::Connect(e));
                    }
                }
            }
        };
        prepare(&mut req, target, fwd.path_and_query, fwd.protocol);
        // A pooled connection may have been closed by the upstream while idle:
        // if the request was not written, it goes once more on a new connection.
        if let Err(e) = lease.tx.ready().await {
            if !lease.reused {
                return Err(UpstreamError::Connect(Box::new(e)));
            }
            lease = self.fresh(lease.key(), fwd.protocol).await?;
        }
        let replay = (lease.reused && is_idempotent(req.method()) && req.body().is_end_stream())
            .then(|| replay_of(&req));
        let response = match lease.tx.try_send(req).await {
            Ok(response) => response,
            Err(mut e) => {
                // Not written, or written on a reused connection the upstream
                // closed or reset before any answer, and safe to repeat (RFC
                // 9110 section 9.2.2): once more on a new connection.
                let closed = !e.error().is_parse() && !e.error().is_parse_status();
                let again = match (e.take_message(), replay) {
                    (Some(req), _) if lease.reused => req,
                    (None, Some(req)) if closed => req,
                    _ => return Err(UpstreamError::from_send(e.into_error())),
                };
                lease = self.fresh(lease.key(), fwd.protocol).await?;
                lease
                    .tx
                    .try_send(again)
                    .await
                    .map_err(|e| UpstreamError::from_send(e.into_error()))?
            }
        };
        Ok(Answer {
            response,
            lease,
            target,
        })
    }

    /// A new connection, ready to take a request.
    async fn fresh(&self, key: Key, protocol: UpstreamProtocol) -> Result<Lease, UpstreamError> {
        let mut lease = self
            .pool
            .connect(key, protocol)
            .await
            .map_err(UpstreamError::Connect)?;
        lease
            .tx
            .ready()
            .await
            .map_err(|e| UpstreamError::Connect(Box::new(e)))?;
        Ok(lease)
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
        let down: Vec<UpstreamTarget> = self
            .down
            .lock()
            .map(|d| {
                d.iter()
                    .filter(|(_, until)| *until > now)
                    .map(|(t, _)| t.clone())
                    .collect()
            })
            .unwrap_or_default();
        let in_order = || (0..targets.len()).map(|i| &targets[(start + i) % targets.len()]);
        in_order()
            .find(|t| Some(*t) != not && !down.contains(t))
            .or_else(|| in_order().find(|t| Some(*t) != not))
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

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A copy of a request without a body, to send again.
fn replay_of(req: &Request<RequestBody>) -> Request<RequestBody> {
    let mut copy = Request::new(req.body().empty_like());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy
}

/// The request as the chosen target receives it, whatever the client spoke:
/// `Host` set, and HTTP/1.1 with an origin-form target, or HTTP/2 with the
/// target's scheme and authority as `:scheme` and `:authority`.
fn prepare(
    req: &mut Request<RequestBody>,
    target: &UpstreamTarget,
    path_and_query: &str,
    protocol: UpstreamProtocol,
) {
    let pq = match target.base_path.is_empty() {
        true => PathAndQuery::from_str(path_and_query),
        false => PathAndQuery::from_str(&format!("{}{}", target.base_path, path_and_query)),
    };
    // The path was normalised and the query came in a valid URI, so this parses.
    if let Ok(pq) = pq {
        let uri = match protocol {
            UpstreamProtocol::Http1 => Ok(Uri::from(pq)),
            UpstreamProtocol::H2 => Uri::builder()
                .scheme(target.scheme.clone())
                .authority(target.authority.clone())
                .path_and_query(pq)
                .build(),
        };
        if let Ok(uri) = uri {
            *req.uri_mut() = uri;
        }
    }
    req.headers_mut()
        .insert(&crate::http::headers::HOST, target.host.clone());
    *req.version_mut() = match protocol {
        UpstreamProtocol::Http1 => http::Version::HTTP_11,
        UpstreamProtocol::H2 => http::Version::HTTP_2,
    };
}
