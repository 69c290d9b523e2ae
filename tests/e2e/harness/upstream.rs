//! A real hyper upstream on 127.0.0.1:0 that records what it receives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;
type Handler = Arc<
    dyn Fn(Request<Incoming>, Arc<Mutex<Vec<Recorded>>>) -> futures_like::BoxFuture<Response<Body>>
        + Send
        + Sync,
>;

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, exactly as received.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Did the body arrive complete (false: the stream was aborted)?
    pub complete: bool,
    pub version: http::Version,
}

pub struct Upstream {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

pub mod futures_like {
    pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;
}

pub fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

impl Upstream {
    /// Records each request (reading its whole body) and answers 200 `upstream ok`,
    /// with some hop-by-hop headers the gateway must strip.
    pub async fn start() -> Upstream {
        Upstream::with(|req, log| {
            Box::pin(async move {
                record(req, &log).await;
                Response::builder()
                    .header("content-type", "text/plain")
                    .header("connection", "x-upstream-hop")
                    .header("x-upstream-hop", "secret")
                    .header("keep-alive", "timeout=5")
                    .header("x-upstream", "yes")
                    .body(full("upstream ok"))
                    .unwrap()
            })
        })
        .await
    }

    /// An upstream with a custom handler (which may call `record`).
    pub async fn with<F>(handler: F) -> Upstream
    where
        F: Fn(
                Request<Incoming>,
                Arc<Mutex<Vec<Recorded>>>,
            ) -> futures_like::BoxFuture<Response<Body>>
            + Send
            + Sync
            + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler: Handler = Arc::new(handler);
        let (reqs, conns) = (requests.clone(), connections.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                conns.fetch_add(1, Ordering::SeqCst);
                let (handler, reqs) = (handler.clone(), reqs.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (handler, reqs) = (handler.clone(), reqs.clone());
                        async move { Ok::<_, Infallible>(handler(req, reqs).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            requests,
            connections,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.requests()
            .pop()
            .expect("the upstream received no request")
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the whole request and appends it to the log.
pub async fn record(req: Request<Incoming>, log: &Mutex<Vec<Recorded>>) -> Recorded {
    let (parts, body) = req.into_parts();
    let version = parts.version;
    let (body, complete) = match body.collect().await {
        Ok(b) => (b.to_bytes(), true),
        Err(_) => (Bytes::new(), false),
    };
    let rec = Recorded {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers,
        body,
        complete,
        version,
    };
    log.lock().unwrap().push(rec.clone());
    rec
}

/// `left` bytes of one repeated byte, produced as fast as they are read, in
/// 64 KiB chunks: a large body that takes no memory to hold.
pub struct Repeat {
    left: u64,
    chunk: Bytes,
}

impl Repeat {
    pub fn new(len: u64, byte: u8) -> Repeat {
        Repeat {
            left: len,
            chunk: Bytes::from(vec![byte; 64 * 1024]),
        }
    }
}

impl http_body::Body for Repeat {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len() as u64) as usize;
        self.left -= n as u64;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(self.chunk.slice(..n)))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}
