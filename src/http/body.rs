//! The two body types on the request path. `RequestBody` streams the
//! client's body on, enforcing `max_body` where it is read. `ResponseBody`
//! is what every response carries back: a whole body or a stream, its
//! bytes counted, the connection clock told when its bytes wait on the
//! client (`conn.rs`), the request's record finished when hyper drops it,
//! with whether it got to its end.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::http::conn::InFlight;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Body bytes seen on the way in, shared with the access record.
#[derive(Debug, Default)]
pub struct RequestStats {
    pub bytes_in: AtomicU64,
}

/// The request body grew past `max_body` while streaming.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds {0} bytes")]
pub struct BodyTooLarge(pub u64);

/// The client's request body failed mid-stream (bad chunked framing, a
/// reset): the client's fault, never the upstream's.
#[derive(Debug, thiserror::Error)]
#[error("the request body broke off: {0}")]
pub struct ClientBodyError(#[source] pub hyper::Error);

/// A declared `Content-Length` over `max` is refused before any byte is
/// read or forwarded; chunked bodies are cut where they are read.
pub fn check_declared_length(h: &http::HeaderMap, max: u64) -> Result<(), BodyTooLarge> {
    let declared = h
        .get(&crate::http::headers::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match declared {
        Some(n) if n > max => Err(BodyTooLarge(max)),
        _ => Ok(()),
    }
}

pub struct RequestBody {
    inner: Option<Incoming>,
    limit: u64,
    seen: u64,
    stats: Arc<RequestStats>,
}

impl RequestBody {
    pub fn new(inner: Incoming, limit: u64, stats: Arc<RequestStats>) -> Self {
        RequestBody {
            inner: Some(inner),
            limit,
            seen: 0,
            stats,
        }
    }

    /// An empty body counted in the same request's stats, for a replay.
    pub fn empty_like(&self) -> Self {
        RequestBody {
            inner: None,
            limit: self.limit,
            seen: 0,
            stats: self.stats.clone(),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match std::task::ready!(Pin::new(inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    self.seen += data.len() as u64;
                    self.stats
                        .bytes_in
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                    if self.seen > self.limit {
                        // An error, not an end: the upstream must see an aborted
                        // request, never a truncated body presented as complete.
                        self.inner = None;
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge(self.limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(Box::new(ClientBodyError(e))))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

/// How a response body's life ended, for the request's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Its end was handed to hyper, or it had no body to send.
    Complete,
    /// Its source failed mid-body: the upstream's doing, not the client's.
    BrokeOff,
    /// Dropped before its end: the client went away (a closed connection,
    /// a reset stream, or a write stall the gateway cut).
    ClientGone,
}

/// Runs once when a response body is dropped: fully sent, or the client gone.
pub trait OnComplete: Send + Sync + 'static {
    fn complete(self: Box<Self>, bytes_out: u64, delivery: Delivery);
}

/// A response to `method` with `status` goes out as its head alone,
/// whatever its body holds (RFC 9110 sections 9.3.2, 15.3.5 and 15.4.5):
/// hyper drops the body unread.
pub fn is_headers_only(method: &Method, status: StatusCode) -> bool {
    method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// A response body from elsewhere (an upstream), streamed as it arrives.
pub type BoxBody = Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>;

enum Kind {
    Full(Option<Bytes>),
    Stream(BoxBody),
}

pub struct ResponseBody {
    kind: Kind,
    bytes_out: u64,
    on_complete: Option<Box<dyn OnComplete>>,
    /// Keeps the connection's request counted as in flight until dropped,
    /// and tells the clock when the body's bytes wait on the client.
    in_flight: Option<InFlight>,
    /// How it ended, once it did (`None`: not yet).
    ended: Option<Delivery>,
    /// Sent as a head alone (`is_headers_only`): complete even unread.
    headers_only: bool,
}

impl ResponseBody {
    pub fn full(bytes: Bytes) -> Self {
        ResponseBody::of(Kind::Full(Some(bytes).filter(|b| !b.is_empty())))
    }

    pub fn stream(body: impl Body<Data = Bytes, Error = BoxError> + Send + 'static) -> Self {
        ResponseBody::of(Kind::Stream(Box::pin(body)))
    }

    fn of(kind: Kind) -> Self {
        ResponseBody {
            kind,
            bytes_out: 0,
            on_complete: None,
            in_flight: None,
            ended: None,
            headers_only: false,
        }
    }

    pub fn on_complete(&mut self, f: Box<dyn OnComplete>) {
        self.on_complete = Some(f);
    }

    /// The response goes out as its head alone (see `is_headers_only`).
    pub fn headers_only(&mut self) {
        self.headers_only = true;
    }

    /// Called as the response is handed to hyper: from now on a body with
    /// bytes to send waits on the client until it is polled.
    pub fn hold(&mut self, mut in_flight: InFlight) {
        if !self.headers_only && !self.is_end_stream() {
            in_flight.owe();
        }
        self.in_flight = Some(in_flight);
    }

    fn end(&mut self, how: Delivery) {
        if self.ended.is_some() {
            return;
        }
        self.ended = Some(how);
        if let Some(f) = self.in_flight.as_mut() {
            match how {
                Delivery::Complete => f.ending(),
                Delivery::BrokeOff | Delivery::ClientGone => f.settle(),
            }
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = match &mut this.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(body) => body.as_mut().poll_frame(cx),
        };
        match &polled {
            // Waiting on the upstream, which the route's timeout bounds.
            Poll::Pending => {
                if let Some(f) = this.in_flight.as_mut() {
                    f.settle();
                }
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.bytes_out += d.len() as u64;
                }
                // Handed to hyper: now these bytes wait on the client.
                if let Some(f) = this.in_flight.as_mut() {
                    f.owe();
                }
                // hyper asks `is_end_stream` after each frame; trailers are last.
                if frame.is_trailers() || this.is_end_stream() {
                    this.end(Delivery::Complete);
                }
            }
            Poll::Ready(None) => this.end(Delivery::Complete),
            Poll::Ready(Some(Err(_))) => this.end(Delivery::BrokeOff),
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(body) => body.size_hint(),
        }
    }
}

/// hyper drops a response body once it is fully written or the client is
/// gone, so completion is recorded here, exactly once.
impl Drop for ResponseBody {
    fn drop(&mut self) {
        let delivery = match self.ended {
            Some(how) => how,
            None if self.headers_only || self.is_end_stream() => Delivery::Complete,
            None => Delivery::ClientGone,
        };
        if let Some(f) = self.on_complete.take() {
            f.complete(self.bytes_out, delivery);
        }
    }
}
