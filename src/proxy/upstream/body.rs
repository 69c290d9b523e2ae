//! An upstream's response body on its way to the client: the route's
//! timeout bounds every silence (docs/routing.md), and an HTTP/1.1
//! connection goes back to the pool only when the body was read to its end.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::h1::decode::Decoder;
use super::pool::Lease;
use crate::http::body::BoxError;

/// The upstream went silent for longer than the route's timeout mid-body.
#[derive(Debug, thiserror::Error)]
#[error("upstream body stalled for longer than {0:?}")]
pub struct BodyStalled(pub Duration);

pub struct UpstreamBody {
    source: Source,
    silence: Duration,
    /// Created only when the upstream actually pauses.
    timer: Option<Pin<Box<Sleep>>>,
}

enum Source {
    /// Read off the connection by this body; the lease goes back to the
    /// pool once the decoder reached the end (if `keep_alive`).
    H1 {
        lease: Option<Lease>,
        decoder: Decoder,
        keep_alive: bool,
    },
    /// A stream of a shared HTTP/2 connection, driven by hyper.
    H2(Incoming),
}

impl UpstreamBody {
    /// `silence` is the longest pause allowed between frames.
    pub fn h1(lease: Option<Lease>, decoder: Decoder, keep_alive: bool, silence: Duration) -> Self {
        let mut body = UpstreamBody {
            source: Source::H1 {
                lease,
                decoder,
                keep_alive,
            },
            silence,
            timer: None,
        };
        body.release_if_done();
        body
    }

    pub fn h2(body: Incoming, silence: Duration) -> Self {
        UpstreamBody {
            source: Source::H2(body),
            silence,
            timer: None,
        }
    }

    /// Gives the connection back as soon as its body has been read whole,
    /// before the client has taken the last bytes.
    fn release_if_done(&mut self) {
        if let Source::H1 {
            lease,
            decoder,
            keep_alive,
        } = &mut self.source
        {
            if decoder.is_done() {
                if let Some(lease) = lease.take().filter(|_| *keep_alive) {
                    lease.release();
                }
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = match &mut this.source {
            Source::H2(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(BoxError::from))),
            Source::H1 {
                lease: Some(lease),
                decoder,
                ..
            } => lease.conn.poll_body(decoder, cx),
            Source::H1 { lease: None, .. } => Poll::Ready(None),
        };
        match polled {
            Poll::Ready(frame) => {
                this.timer = None;
                match frame {
                    // An error or an early end closes the connection.
                    Some(Err(_)) | None => this.end(),
                    Some(Ok(_)) => this.release_if_done(),
                }
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let silence = this.silence;
                let t = this.timer.get_or_insert_with(|| {
                    Box::pin(tokio::time::sleep_until(Instant::now() + silence))
                });
                match t.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled(silence))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::H2(body) => body.is_end_stream(),
            Source::H1 { lease, decoder, .. } => lease.is_none() || decoder.is_done(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::H2(body) => body.size_hint(),
            Source::H1 { decoder, .. } => decoder
                .remaining()
                .map_or_else(SizeHint::new, SizeHint::with_exact),
        }
    }
}

impl UpstreamBody {
    /// The body is over: its connection is reusable only if it was read whole.
    fn end(&mut self) {
        self.release_if_done();
        if let Source::H1 { lease, .. } = &mut self.source {
            lease.take();
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A body dropped after its last byte was read still frees its
        // connection for reuse; any other closes it.
        self.release_if_done();
    }
}
