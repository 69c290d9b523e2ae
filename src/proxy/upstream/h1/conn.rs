//! One HTTP/1.1 connection to an upstream, driven from the request's own
//! task: write the head and stream the body while watching for an early
//! answer, read the response head, then read the body frame by frame as
//! the client takes it. No task of its own and no channels between the
//! request and its connection (docs/routing.md, "Upstream connections").

use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::Request;
use http_body::{Body, Frame};
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::decode::{Decoded, Decoder};
use super::head::{encode_request, parse_response, Head, RequestFraming};
use crate::http::body::{BodyTooLarge, BoxError, RequestBody};
use crate::proxy::upstream::error::UpstreamError;

/// A plain or TLS stream, as the connector made it.
pub type Io = TokioIo<MaybeHttpsStream<TokioIo<TcpStream>>>;

/// A connection's first reads are this large: a typical head and a small
/// body fit, and thousands of connections stay small.
const READ_MIN: usize = 4 * 1024;
/// Each read that fills what was free doubles the next one, up to this
/// (a large download), for the connection's life.
const READ_MAX: usize = 64 * 1024;

pub struct Conn {
    /// Boxed: a TLS stream is large, and a connection moves in and out of the pool.
    io: Box<Io>,
    /// Bytes read and not yet used; empty between exchanges.
    buf: BytesMut,
    /// How much room the next read gets.
    read_size: usize,
}

/// A failed exchange, and how far the request got.
#[derive(Debug)]
pub struct Failed {
    pub error: UpstreamError,
    pub replay: Replay,
}

/// Whether a request whose exchange failed could go again elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// The head could not be written: nothing of the request was taken.
    Unsent,
    /// A request without a body was sent, and the connection closed or
    /// reset before a byte of answer came back.
    Unanswered,
    Never,
}

/// The response head, and whether the request body was sent to its end
/// (an upstream may answer before it has read it all).
pub struct Answered {
    pub head: Head,
    pub request_sent: bool,
}

impl Conn {
    pub fn new(io: Io) -> Conn {
        Conn {
            io: Box::new(io),
            buf: BytesMut::new(),
            read_size: READ_MIN,
        }
    }

    /// Whether an idle connection can no longer carry a request: the
    /// upstream closed it, reset it, or sent bytes nobody asked for.
    pub fn is_stale(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        !self.buf.is_empty() || matches!(self.poll_fill(&mut cx), Poll::Ready(_))
    }

    /// Whether nothing is buffered past the last response.
    pub fn is_clean(&self) -> bool {
        self.buf.is_empty()
    }

    /// The stream and the bytes already read from it, for a tunnel after 101.
    pub fn into_parts(self) -> (Box<Io>, Bytes) {
        (self.io, self.buf.freeze())
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < self.read_size / 2 {
            self.buf.reserve(self.read_size);
        }
        let room = self.buf.capacity() - self.buf.len();
        let read = ready!(pin!(self.io.read_buf(&mut self.buf)).poll(cx));
        if matches!(read, Ok(n) if n == room) {
            self.read_size = (self.read_size * 2).min(READ_MAX);
        }
        Poll::Ready(read)
    }

    /// Sends `req` and reads the response head.
    pub async fn exchange(&mut self, req: &mut Request<RequestBody>) -> Result<Answered, Failed> {
        let body_ended = req.body().is_end_stream();
        let mut out = Vec::with_capacity(512);
        let framing = encode_request(req.method(), req.uri(), req.headers(), body_ended, &mut out);
        // Nothing of the body is taken before the head is written, so a
        // connection that fails here leaves the request whole.
        if let Err(e) = self.io.write_all(&out).await {
            return Err(Failed {
                error: UpstreamError::Reset(Box::new(e)),
                replay: Replay::Unsent,
            });
        }
        let request_sent = match framing {
            RequestFraming::Empty => true,
            _ => match self.send_body(req.body_mut(), framing).await {
                Ok(sent) => sent,
                Err(error) => {
                    return Err(Failed {
                        error,
                        replay: Replay::Never,
                    })
                }
            },
        };
        let method = req.method().clone();
        let head = self.read_head(&method, body_ended).await?;
        Ok(Answered { head, request_sent })
    }

    /// Streams the body; `Ok(false)` when the upstream answered before the
    /// body was all sent (the head is then in `buf`, and the rest unsent).
    async fn send_body(
        &mut self,
        body: &mut RequestBody,
        framing: RequestFraming,
    ) -> Result<bool, UpstreamError> {
        let chunked = framing == RequestFraming::Chunked;
        let mut queue: Vec<Bytes> = Vec::with_capacity(3);
        let mut at = 0;
        let mut ended = false;
        poll_fn(|cx| loop {
            // An answer (or a close) while the body is still going up.
            match self.poll_fill(cx) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(false)),
                Poll::Ready(Ok(_)) => {
                    if self.head_complete() {
                        return Poll::Ready(Ok(false));
                    }
                    continue;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(UpstreamError::Reset(Box::new(e)))),
                Poll::Pending => {}
            }
            if let Some(front) = queue.get_mut(at) {
                match ready!(Pin::new(&mut self.io).poll_write(cx, front)) {
                    Ok(0) => {
                        return Poll::Ready(Err(UpstreamError::Reset(
                            "the upstream stopped taking bytes".into(),
                        )))
                    }
                    Ok(n) => front.advance(n),
                    Err(e) => return Poll::Ready(Err(UpstreamError::Reset(Box::new(e)))),
                }
                if front.is_empty() {
                    at += 1;
                }
                continue;
            }
            if ended {
                return Pin::new(&mut self.io).poll_flush(cx).map(|r| {
                    r.map(|()| true)
                        .map_err(|e| UpstreamError::Reset(Box::new(e)))
                });
            }
            queue.clear();
            at = 0;
            match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if data.is_empty() => {}
                    Ok(data) if chunked => {
                        queue.push(Bytes::from(format!("{:x}\r\n", data.len())));
                        queue.push(data);
                        queue.push(Bytes::from_static(b"\r\n"));
                    }
                    Ok(data) => queue.push(data),
                    // Request trailers are not forwarded on HTTP/1.1.
                    Err(_) => {}
                },
                Some(Err(e)) => return Poll::Ready(Err(body_error(e))),
                None => {
                    ended = true;
                    if chunked {
                        queue.push(Bytes::from_static(b"0\r\n\r\n"));
                    }
                }
            }
        })
        .await
    }

    /// Whether `buf` holds a whole response head (or one that cannot parse).
    fn head_complete(&self) -> bool {
        !matches!(parse_response(&self.buf, &http::Method::GET), Ok(None))
    }

    async fn read_head(&mut self, method: &http::Method, body_ended: bool) -> Result<Head, Failed> {
        loop {
            match parse_response(&self.buf, method) {
                Ok(Some((head, used))) => {
                    self.buf.advance(used);
                    return Ok(head);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(Failed {
                        error: UpstreamError::Protocol(Box::new(e)),
                        replay: Replay::Never,
                    })
                }
            }
            // Closed or reset before any byte of an answer: a bodiless
            // request may go again (the caller decides if it is safe).
            let replay = match self.buf.is_empty() && body_ended {
                true => Replay::Unanswered,
                false => Replay::Never,
            };
            match poll_fn(|cx| self.poll_fill(cx)).await {
                Ok(0) => {
                    return Err(Failed {
                        error: UpstreamError::Reset("closed before the response head".into()),
                        replay,
                    })
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(Failed {
                        error: UpstreamError::Reset(Box::new(e)),
                        replay,
                    })
                }
            }
        }
    }

    /// The next frame of the response body, reading as needed.
    pub fn poll_body(
        &mut self,
        decoder: &mut Decoder,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            match decoder.decode(&mut self.buf) {
                Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Decoded::Trailers(t)) => return Poll::Ready(Some(Ok(Frame::trailers(t)))),
                Ok(Decoded::End) => return Poll::Ready(None),
                Ok(Decoded::More) => {}
                Err(e) => return Poll::Ready(Some(Err(Box::new(e)))),
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) => match decoder.eof() {
                    Ok(_) => return Poll::Ready(None),
                    Err(e) => return Poll::Ready(Some(Err(Box::new(e)))),
                },
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(Box::new(e)))),
            }
        }
    }
}

/// The request body's own failure: too large, or the client's fault.
fn body_error(e: BoxError) -> UpstreamError {
    match e.downcast::<BodyTooLarge>() {
        Ok(too_large) => UpstreamError::BodyTooLarge(too_large.0),
        Err(e) => UpstreamError::ClientBody(e),
    }
}
