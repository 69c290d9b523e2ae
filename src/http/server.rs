//! The plain and HTTPS listeners: the accept loop (and its connection
//! caps), the TLS handshake, one task per connection (HTTP/1.1 or HTTP/2,
//! h2c on the plain listener, through hyper-util's auto builder),
//! connection timeouts, and draining on shutdown. Connection-level errors
//! are logged within `log_budget::CONNECTIONS`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::config::{ClientIp, Limits};
use crate::http::admission::{Admitted, Connections, Refusal};
use crate::http::body::ResponseBody;
use crate::http::conn::{self, ClockedIo, ConnClock, ConnInfo};
use crate::http::proxy_protocol;
use crate::telemetry::log_budget;
use crate::telemetry::metrics::Metrics;

/// Request heads (request line and headers) larger than this get 431.
pub const MAX_HEAD: usize = 64 * 1024;

/// What one HTTP/2 stream may hold of response bytes its client's window
/// lets out too slowly (hyper's default is 400 KB); a connection holds up
/// to `h2_max_streams` of them until the write stall ends it.
const H2_SEND_BUF: usize = 64 * 1024;

/// Shutdown signal shared by every listener and connection; connections hold
/// a `Sender` clone each, so the receiver closes once the last one ends.
#[derive(Clone)]
pub struct Lifecycle {
    pub shutdown: watch::Receiver<bool>,
    pub alive: mpsc::Sender<()>,
    /// Open connections, counted for the caps across all listeners.
    pub connections: Arc<Connections>,
}

/// What the listeners serve: the limits in force, and an answer to each request.
pub trait Handler: Send + Sync + 'static {
    fn limits(&self) -> Limits;

    /// With `client_ip.proxy_protocol`: who may send PROXY headers.
    fn proxy_protocol(&self) -> Option<Arc<ClientIp>>;

    /// Where connections refused at accept are counted.
    fn metrics(&self) -> &Metrics;

    /// Never fails: every failure is a response. (The `Result` is hyper's
    /// service shape; returning the future as it is, unwrapped, keeps hyper
    /// from moving a second copy of it.)
    fn handle(
        self: Arc<Self>,
        conn: Arc<ConnInfo>,
        req: Request<Incoming>,
    ) -> impl Future<Output = Result<Response<ResponseBody>, Infallible>> + Send + 'static;
}

/// What a listener speaks below HTTP.
#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls(TlsAcceptor),
}

pub async fn accept_loop<H: Handler>(
    listener: TcpListener,
    transport: Transport,
    gw: Arc<H>,
    life: Lifecycle,
) {
    let mut shutdown = life.shutdown.clone();
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let (gw, life, transport) = (gw.clone(), life.clone(), transport.clone());
        let Some(proxy) = gw.proxy_protocol() else {
            // Refused: dropping the stream closes it before a byte is read.
            if let Some(admitted) = admit(&*gw, &life.connections, client) {
                tokio::spawn(start(stream, client, admitted, transport, gw, life));
            }
            continue;
        };
        if !proxy.trusts(client.ip()) {
            if log_budget::CONNECTIONS.allow() {
                tracing::info!(client = %client, "connection closed: PROXY header from a peer not in client_ip.trusted_proxies");
            }
            continue;
        }
        tokio::spawn(async move {
            let mut stream = stream;
            let limit = gw.limits().header_timeout;
            let read = tokio::time::timeout(limit, proxy_protocol::read(&mut stream)).await;
            let client = match read {
                Ok(Ok(carried)) => carried.unwrap_or(client),
                Ok(Err(e)) if log_budget::CONNECTIONS.allow() => {
                    return tracing::info!(peer = %client, error = %e, "connection closed");
                }
                Err(_) if log_budget::CONNECTIONS.allow() => {
                    return tracing::info!(peer = %client, "connection closed: no PROXY header in time");
                }
                Ok(Err(_)) | Err(_) => return,
            };
            if let Some(admitted) = admit(&*gw, &life.connections, client) {
                start(stream, client, admitted, transport, gw, life).await;
            }
        });
    }
}

/// Serves one admitted connection from `client`: the TLS handshake if
/// any, then HTTP.
async fn start<H: Handler>(
    stream: tokio::net::TcpStream,
    client: SocketAddr,
    admitted: Admitted,
    transport: Transport,
    gw: Arc<H>,
    life: Lifecycle,
) {
    let conn = Arc::new(ConnInfo {
        client,
        client_ip: HeaderValue::from_str(&client.ip().to_string())
            .expect("an IP address is a valid header value"),
        proto: match transport {
            Transport::Plain => "http",
            Transport::Tls(_) => "https",
        },
        clock: ConnClock::new(),
        alive: life.alive.clone(),
    });
    match transport {
        Transport::Plain => connection(stream, admitted, conn, gw, life).await,
        // Boxed: with the TLS state inline every plain connection's task
        // was that size too (9.4 KB, against 2.8 KB without it).
        Transport::Tls(acceptor) => Box::pin(tls(acceptor, stream, admitted, conn, gw, life)).await,
    }
}

/// The TLS handshake, then HTTP over it.
async fn tls<H: Handler>(
    acceptor: TlsAcceptor,
    stream: tokio::net::TcpStream,
    admitted: Admitted,
    conn: Arc<ConnInfo>,
    gw: Arc<H>,
    life: Lifecycle,
) {
    // The handshake counts against the first head's deadline.
    let limit = gw.limits().header_timeout;
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => connection(tls, admitted, conn, gw, life).await,
        Ok(Err(e)) if log_budget::CONNECTIONS.allow() => {
            tracing::info!(client = %conn.client, error = %e, "TLS handshake failed")
        }
        Err(_) if log_budget::CONNECTIONS.allow() => {
            tracing::info!(client = %conn.client, "TLS handshake timed out")
        }
        Ok(Err(_)) | Err(_) => {}
    }
}

/// A place under the connection caps in force now, or `None` (counted and
/// logged) when a cap is reached.
fn admit<H: Handler>(
    gw: &H,
    connections: &Arc<Connections>,
    client: SocketAddr,
) -> Option<Admitted> {
    let refusal = match connections.admit(client.ip(), &gw.limits()) {
        Ok(admitted) => return Some(admitted),
        Err(refusal) => refusal,
    };
    gw.metrics().connection_rejected(refusal);
    if log_budget::CONNECTIONS.allow() {
        let cap = match refusal {
            Refusal::Total => "limits.max_connections",
            Refusal::PerIp => "limits.max_connections_per_ip",
        };
        tracing::warn!(client = %client, cap, "connection refused at accept: cap reached");
    }
    None
}

/// hyper's settings for one connection, from the limits in force at its accept.
fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1().max_buf_size(MAX_HEAD);
    b.http2()
        .max_header_list_size(MAX_HEAD as u32)
        .max_concurrent_streams(limits.h2_max_streams)
        .max_send_buf_size(H2_SEND_BUF)
        // GOAWAY past 20 streams reset before they were served (rapid
        // reset, CVE-2023-44487) and past 1024 streams reset for the
        // client's errors (RUSTSEC-2024-0003): h2's and hyper's defaults,
        // written down so they stay.
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(1024)
        .timer(TokioTimer::new());
    b
}

async fn connection<T: AsyncRead + AsyncWrite + Unpin + Send + 'static, H: Handler>(
    stream: T,
    admitted: Admitted,
    conn: Arc<ConnInfo>,
    gw: Arc<H>,
    life: Lifecycle,
) {
    let limits = gw.limits();
    let builder = http_builder(&limits);
    let io = TokioIo::new(ClockedIo::new(stream, conn.clock.clone(), admitted));
    let expired = conn::expired(
        conn.clock.clone(),
        limits.header_timeout,
        limits.idle_timeout,
    );
    let service = {
        let conn = conn.clone();
        service_fn(move |req| gw.clone().handle(conn.clone(), req))
    };
    let serving = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(serving, expired);
    let mut shutdown = life.shutdown;
    tokio::select! {
        served = serving.as_mut() => {
            if let Err(e) = served {
                if log_budget::CONNECTIONS.allow() {
                    tracing::info!(client = %conn.client, error = %e, "connection error");
                }
            }
            return;
        }
        // Dropping the connection closes the socket.
        _ = &mut expired => return,
        _ = shutdown.changed() => {}
    }
    // Shutdown: finish requests in flight (their responses say `Connection:
    // close`), close idle keep-alive connections now.
    serving.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(limits.shutdown_timeout, serving).await;
}
