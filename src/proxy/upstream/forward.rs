//! Sending a request upstream: target choice (round robin, a target that
//! refused a connection skipped for 10 s, one retry on another target when
//! no connection could be made), the route timeout up to the response head,
//! and one retry on a fresh connection when a pooled one turned out closed
//! before the request was written.

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::{PathAndQuery, Uri};
use http::{request, Method, Request, Response, StatusCode};
use hyper::body::Body;
use tokio::time::Instant;

use super::body::UpstreamBody;
use super::error::UpstreamError;
use super::h1::{self, decode::Decoder, Replay};
use super::pool::Pool;
use crate::config::{UpstreamProtocol, UpstreamTarget};
use crate::http::body::{BoxError, RequestBody, RequestStats};

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
    /// The wait for the response head.
    pub timeout: Duration,
    /// The longest pause allowed within the response body.
    pub silence: Duration,
    pub protocol: UpstreamProtocol,
}

/// The upstream's response, with its body streaming from the connection
/// (which goes back to the pool when the body ends), and the target that
/// answered.
pub struct Answer<'t> {
    pub response: Response<UpstreamBody>,
    /// After a 101: the upstream's connection, now the tunnel's.
    pub upgraded: Option<h1::Conn>,
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
        req: Request<RequestBody>,
    ) -> Result<Answer<'t>, UpstreamError> {
        match fwd.protocol {
            UpstreamProtocol::Http1 => self.exchange_h1(fwd, req).await,
            UpstreamProtocol::H2 => self.exchange_h2(fwd, req).await,
        }
    }

    /// Connects before anything is sent, so a target that refuses can be
    /// swapped for another with the request still in hand.
    async fn reach<'t, T, F, Fut>(
        &self,
        targets: &'t [UpstreamTarget],
        connect: F,
    ) -> Result<(&'t UpstreamTarget, T), UpstreamError>
    where
        F: Fn(&'t UpstreamTarget) -> Fut,
        Fut: Future<Output = Result<T, BoxError>>,
    {
        let first = self.pick(targets, None);
        match connect(first).await {
            Ok(conn) => Ok((first, conn)),
            Err(e) if targets.len() == 1 => Err(UpstreamError::Connect(e)),
            Err(_) => {
                self.mark_down(first);
                let second = self.pick(targets, Some(first));
                match connect(second).await {
                    Ok(conn) => Ok((second, conn)),
                    Err(e) => {
                        self.mark_down(second);
                        Err(UpstreamError::Connect(e))
                    }
                }
            }
        }
    }

    /// HTTP/1.1, inline on a pooled connection (`h1`).
    async fn exchange_h1<'t>(
        &self,
        fwd: &Forward<'t>,
        mut req: Request<RequestBody>,
    ) -> Result<Answer<'t>, UpstreamError> {
        let (target, mut lease) = self
            .reach(fwd.targets, move |t| self.pool.checkout(t))
            .await?;
        prepare(
            &mut req,
            target,
            fwd.path_and_query,
            UpstreamProtocol::Http1,
        );
        let answered = match lease.conn.exchange(&mut req).await {
            Ok(answered) => answered,
            // A pooled connection the upstream closed while it idled: once
            // more on a new one, if nothing was sent, or if the upstream
            // answered nothing and the request is safe to repeat (RFC 9110
            // section 9.2.2).
            Err(f) if lease.reused && replayable(f.replay, req.method()) => {
                lease = self
                    .pool
                    .connect(lease.key())
                    .await
                    .map_err(UpstreamError::Connect)?;
                lease.conn.exchange(&mut req).await.map_err(|f| f.error)?
            }
            Err(f) => return Err(f.error),
        };
        let head = answered.head;
        if head.parts.status == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(Answer {
                response: Response::from_parts(
                    head.parts,
                    UpstreamBody::h1(None, Decoder::new(head.framing), false, fwd.silence),
                ),
                upgraded: Some(lease.conn),
                target,
            });
        }
        let keep_alive = head.keep_alive && answered.request_sent;
        let body = UpstreamBody::h1(
            Some(lease),
            Decoder::new(head.framing),
            keep_alive,
            fwd.silence,
        );
        Ok(Answer {
            response: Response::from_parts(head.parts, body),
            upgraded: None,
            target,
        })
    }

    /// HTTP/2, multiplexed on the target's shared connection by hyper.
    async fn exchange_h2<'t>(
        &self,
        fwd: &Forward<'t>,
        mut req: Request<RequestBody>,
    ) -> Result<Answer<'t>, UpstreamError> {
        let (target, (mut tx, reused)) = self
            .reach(fwd.targets, move |t| self.pool.h2(&t.pool_key, false))
            .await?;
        prepare(&mut req, target, fwd.path_and_query, UpstreamProtocol::H2);
        let key = &target.pool_key;
        // A shared connection may have closed meanwhile: a new one then.
        if let Err(e) = tx.ready().await {
            if !reused {
                return Err(UpstreamError::Connect(Box::new(e)));
            }
            tx = self.fresh_h2(key).await?;
        }
        let replay = (reused && is_idempotent(req.method()) && req.body().is_end_stream())
            .then(|| replay_of(&req));
        let response = match tx.try_send_request(req).await {
            Ok(response) => response,
            Err(mut e) => {
                // Not written, or written on a reused connection the upstream
                // closed or reset before any answer, and safe to repeat: once
                // more on a new connection.
                let closed = !e.error().is_parse() && !e.error().is_parse_status();
                let again = match (e.take_message(), replay) {
                    (Some(req), _) if reused => req,
                    (None, Some(req)) if closed => req,
                    _ => return Err(UpstreamError::from_send(e.into_error())),
                };
                self.fresh_h2(key)
                    .await?
                    .try_send_request(again)
                    .await
                    .map_err(|e| UpstreamError::from_send(e.into_error()))?
            }
        };
        Ok(Answer {
            response: response.map(|body| UpstreamBody::h2(body, fwd.silence)),
            upgraded: None,
            target,
        })
    }

    /// A new shared HTTP/2 connection in place of the failed one, ready.
    async fn fresh_h2(
        &self,
        key: &super::pool::Key,
    ) -> Result<super::pool::H2Sender, UpstreamError> {
        let (mut tx, _) = self
            .pool
            .h2(key, true)
            .await
            .map_err(UpstreamError::Connect)?;
        tx.ready()
            .await
            .map_err(|e| UpstreamError::Connect(Box::new(e)))?;
        Ok(tx)
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

/// Whether a failed HTTP/1.1 exchange on a pooled connection may go again.
fn replayable(replay: Replay, method: &Method) -> bool {
    match replay {
        Replay::Unsent => true,
        Replay::Unanswered => is_idempotent(method),
        Replay::Never => false,
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
