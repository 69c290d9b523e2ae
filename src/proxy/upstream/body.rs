//! An upstream's response body on its way to the client: the route's
//! timeout bounds every silence (docs/routing.md), and the connection goes
//! back to the pool only when the body was read to its end.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::pool::Lease;
use crate::http::body::BoxError;

/// The upstream went silent for longer than the route's timeout mid-body.
#[derive(Debug, thiserror::Error)]
#[error("upstream body stalled for longer than {0:?}")]
pub struct BodyStalled(pub Duration);

pub struct UpstreamBody {
    body: Incoming,
    silence: Duration,
    /// Created only when the upstream actually pauses.
    timer: Option<Pin<Box<Sleep>>>,
    /// The connection it arrives on, reusable once the body ended cleanly.
    lease: Option<Lease>,
    ended: bool,
}

impl UpstreamBody {
    /// `silence` is the longest pause allowed between frames.
    pub fn new(body: Incoming, silence: Duration, lease: Lease) -> Self {
        UpstreamBody {
            body,
            silence,
            timer: None,
            lease: Some(lease),
            ended: false,
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
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer = None;
                this.ended = frame.is_none();
                Poll::Ready(frame.map(|f| f.map_err(BoxError::from)))
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
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // Only a connection whose response was read to its end can carry
        // another request; any other is closed by dropping its lease.
        if let Some(lease) = self
            .lease
            .take()
            .filter(|_| self.ended || self.body.is_end_stream())
        {
            lease.release();
        }
    }
}
