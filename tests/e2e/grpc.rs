//! gRPC through the gateway (SPEC 12), with a real tonic client and a real
//! tonic-codec server at both ends: every kind of call on `auth: none` and
//! `auth: required` routes, metadata and trailers both ways, the gateway's
//! own refusals read as gRPC statuses, a route's `max_body` on a stream,
//! `grpc-timeout`, and an early HTTP/2 answer followed by
//! `RST_STREAM(NO_ERROR)`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::HeaderMap;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_stream::{Stream, StreamExt};
use tonic::codegen::BoxFuture;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use crate::harness::auth::{auth_config, signup};
use crate::harness::h2::{self, Block, Read, H2};
use crate::harness::{Gateway, Yaml};

/// The one message every method takes and returns.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Msg {
    #[prost(string, tag = "1")]
    pub text: String,
    #[prost(uint32, tag = "2")]
    pub n: u32,
    #[prost(bytes = "vec", tag = "3")]
    pub pad: Vec<u8>,
}

fn msg(text: &str, n: u32) -> Msg {
    Msg {
        text: text.into(),
        n,
        pad: Vec::new(),
    }
}

type MsgStream = Pin<Box<dyn Stream<Item = Result<Msg, Status>> + Send>>;

/// Unary: echoes the text with what the server saw; `fail` answers
/// NOT_FOUND with a custom trailer; `slow` waits 3 s first.
#[derive(Clone)]
struct Unary;

impl tonic::server::UnaryService<Msg> for Unary {
    type Response = Msg;
    type Future = BoxFuture<Response<Msg>, Status>;

    fn call(&mut self, req: Request<Msg>) -> Self::Future {
        Box::pin(async move {
            let seen = |name: &str| {
                req.metadata()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_string()
            };
            let text = format!(
                "{} meta={} principal={}",
                req.get_ref().text,
                seen("x-client-meta"),
                seen("x-principal-id")
            );
            match req.get_ref().text.as_str() {
                "fail" => {
                    let mut s = Status::not_found("no such thing: é 100%");
                    s.metadata_mut()
                        .insert("x-why", MetadataValue::from_static("because"));
                    Err(s)
                }
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    Ok(Response::new(msg("late", 0)))
                }
                _ => {
                    let mut res = Response::new(msg(&text, req.get_ref().n));
                    res.metadata_mut()
                        .insert("x-server-meta", MetadataValue::from_static("world"));
                    Ok(res)
                }
            }
        })
    }
}

/// Server streaming: `n` messages numbered 0..n.
#[derive(Clone)]
struct Count;

impl tonic::server::ServerStreamingService<Msg> for Count {
    type Response = Msg;
    type ResponseStream = MsgStream;
    type Future = BoxFuture<Response<MsgStream>, Status>;

    fn call(&mut self, req: Request<Msg>) -> Self::Future {
        let n = req.get_ref().n;
        Box::pin(async move {
            let s = tokio_stream::iter((0..n).map(|i| Ok(msg("item", i))));
            Ok(Response::new(Box::pin(s) as MsgStream))
        })
    }
}

/// Client streaming: how many messages and bytes of padding arrived.
#[derive(Clone)]
struct Sum;

impl tonic::server::ClientStreamingService<Msg> for Sum {
    type Response = Msg;
    type Future = BoxFuture<Response<Msg>, Status>;

    fn call(&mut self, req: Request<Streaming<Msg>>) -> Self::Future {
        Box::pin(async move {
            let mut stream = req.into_inner();
            let (mut count, mut bytes) = (0u32, 0usize);
            while let Some(m) = stream.message().await? {
                count += 1;
                bytes += m.pad.len();
            }
            Ok(Response::new(msg(&format!("bytes={bytes}"), count)))
        })
    }
}

/// Bidirectional: each message back, its number doubled.
#[derive(Clone)]
struct Echo;

impl tonic::server::StreamingService<Msg> for Echo {
    type Response = Msg;
    type ResponseStream = MsgStream;
    type Future = BoxFuture<Response<MsgStream>, Status>;

    fn call(&mut self, req: Request<Streaming<Msg>>) -> Self::Future {
        Box::pin(async move {
            let out = req.into_inner().map(|m| m.map(|m| msg(&m.text, m.n * 2)));
            Ok(Response::new(Box::pin(out) as MsgStream))
        })
    }
}

/// A gRPC server on 127.0.0.1:0 (HTTP/2 only) answering `/<any>.Echo/<method>`,
/// recording each request's headers.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_grpc() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    log.lock().unwrap().push(req.headers().clone());
                    async move { Ok::<_, Infallible>(dispatch(req).await) }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Server { addr, seen, task }
}

async fn dispatch(req: http::Request<Incoming>) -> http::Response<tonic::body::Body> {
    let method = req
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut grpc = tonic::server::Grpc::new(ProstCodec::<Msg, Msg>::default());
    match method.as_str() {
        "Unary" => grpc.unary(Unary, req).await,
        "Count" => grpc.server_streaming(Count, req).await,
        "Sum" => grpc.client_streaming(Sum, req).await,
        "Echo" => grpc.streaming(Echo, req).await,
        _ => Status::unimplemented(method).into_http(),
    }
}

/// A tonic client to the gateway.
async fn client(gw: &Gateway) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", gw.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

fn path(service: &str, method: &str) -> PathAndQuery {
    PathAndQuery::try_from(format!("/{service}.Echo/{method}")).unwrap()
}

async fn unary(
    c: &mut tonic::client::Grpc<tonic::transport::Channel>,
    service: &str,
    req: Request<Msg>,
) -> Result<Response<Msg>, Status> {
    c.ready().await.unwrap();
    c.unary(req, path(service, "Unary"), ProstCodec::default())
        .await
}

/// A client stream of `n` messages of 1 KiB to `service`'s `Sum`.
async fn upload(
    c: &mut tonic::client::Grpc<tonic::transport::Channel>,
    service: &str,
    n: u32,
) -> Result<Response<Msg>, Status> {
    let messages = (0..n).map(|i| Msg {
        text: "up".into(),
        n: i,
        pad: vec![7; 1024],
    });
    c.ready().await.unwrap();
    c.client_streaming(
        Request::new(tokio_stream::iter(messages)),
        path(service, "Sum"),
        ProstCodec::<Msg, Msg>::default(),
    )
    .await
}

fn config(upstream: SocketAddr) -> Yaml {
    let up = format!("\"http://{upstream}\"");
    auth_config()
        .set("admin.listen", "127.0.0.1:0")
        .route("open", &format!(r#"path: "/open.Echo/*", upstream: {up}, upstream_protocol: h2, auth: none"#))
        .route("secure", &format!(r#"path: "/secure.Echo/*", upstream: {up}, upstream_protocol: h2"#))
        .route(
            "gone",
            r#"path: "/gone.Echo/*", upstream: "http://127.0.0.1:1", upstream_protocol: h2, auth: none"#,
        )
        .route(
            "small",
            &format!(r#"path: "/small.Echo/*", upstream: {up}, upstream_protocol: h2, auth: none, max_body: 64KiB"#),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_call_passes_with_metadata_and_trailers() {
    let server = serve_grpc().await;
    let gw = Gateway::start(config(server.addr)).await;
    let mut c = client(&gw).await;

    // Unary, metadata both ways; the server got `TE: trailers`.
    let mut req = Request::new(msg("hi", 7));
    req.metadata_mut()
        .insert("x-client-meta", MetadataValue::from_static("hello"));
    let res = unary(&mut c, "open", req).await.unwrap();
    assert_eq!(res.get_ref().text, "hi meta=hello principal=-");
    assert_eq!(res.get_ref().n, 7);
    assert_eq!(res.metadata().get("x-server-meta").unwrap(), "world");
    let headers = server.seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(headers["te"], "trailers");
    assert_eq!(headers["content-type"], "application/grpc");

    // An upstream error status and its trailers arrive untouched.
    let err = unary(&mut c, "open", Request::new(msg("fail", 0)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "no such thing: é 100%");
    assert_eq!(err.metadata().get("x-why").unwrap(), "because");

    // Server streaming: 1000 messages, in order.
    c.ready().await.unwrap();
    let mut stream = c
        .server_streaming(
            Request::new(msg("", 1000)),
            path("open", "Count"),
            ProstCodec::<Msg, Msg>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    let mut got = 0;
    while let Some(m) = stream.message().await.unwrap() {
        assert_eq!(m.n, got);
        got += 1;
    }
    assert_eq!(got, 1000);
    assert!(
        stream.trailers().await.unwrap().is_some(),
        "grpc-status trailer"
    );

    // Client streaming: 200 messages of 1 KiB.
    let res = upload(&mut c, "open", 200).await.unwrap();
    assert_eq!(res.get_ref().n, 200);
    assert_eq!(res.get_ref().text, "bytes=204800");

    // Bidirectional: each answer follows its message.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    c.ready().await.unwrap();
    let mut answers = c
        .streaming(
            Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
            path("open", "Echo"),
            ProstCodec::<Msg, Msg>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    for i in 0..50 {
        tx.send(msg("ping", i)).await.unwrap();
        let m = answers.message().await.unwrap().unwrap();
        assert_eq!((m.text.as_str(), m.n), ("ping", i * 2));
    }
    drop(tx);
    assert!(answers.message().await.unwrap().is_none());

    // 200 concurrent unary calls over the one connection.
    let calls = (0..200).map(|i| {
        let mut c = c.clone();
        async move {
            unary(&mut c, "open", Request::new(msg("many", i)))
                .await
                .unwrap()
                .get_ref()
                .n
        }
    });
    let ns = futures_util::future::join_all(calls).await;
    assert_eq!(ns, (0..200).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_own_refusals_are_grpc_statuses() {
    let server = serve_grpc().await;
    let gw = Gateway::start(config(server.addr)).await;
    let mut c = client(&gw).await;
    // No token: UNAUTHENTICATED, the JSON message as grpc-message, the
    // challenge kept; the upstream never sees the call.
    let before = server.seen.lock().unwrap().len();
    let err = unary(&mut c, "secure", Request::new(msg("x", 0)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_eq!(err.message(), "this route requires a bearer token");
    assert_eq!(
        err.metadata().get("www-authenticate").unwrap(),
        "Bearer realm=\"gateway\""
    );
    assert!(err.metadata().get("x-request-id").is_some());
    let mut bad = Request::new(msg("x", 0));
    bad.metadata_mut().insert(
        "authorization",
        MetadataValue::from_static("Bearer not.a.token"),
    );
    assert_eq!(
        unary(&mut c, "secure", bad).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert_eq!(server.seen.lock().unwrap().len(), before);
    // Metrics and the access log keep the HTTP status a refusal stands for.
    let metrics = gw.admin().get("/metrics").send().await;
    let metrics = String::from_utf8_lossy(&metrics.body);
    assert!(
        metrics.contains(r#"gateway_requests_total{method="POST",route="secure",status="401"} 2"#),
        "{metrics}"
    );
    // With a token: through, as the principal.
    let (access, _) = signup(&gw.client(), "grpc@example.com").await;
    let mut ok = Request::new(msg("x", 0));
    ok.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {access}")).unwrap(),
    );
    let res = unary(&mut c, "secure", ok).await.unwrap();
    assert!(
        res.get_ref().text.contains("principal="),
        "{:?}",
        res.get_ref()
    );
    assert!(
        !res.get_ref().text.ends_with("principal=-"),
        "{:?}",
        res.get_ref()
    );
    // No route: UNIMPLEMENTED.
    c.ready().await.unwrap();
    let err = c
        .unary::<Msg, Msg, _>(
            Request::new(msg("x", 0)),
            PathAndQuery::from_static("/nowhere.Svc/Call"),
            ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    // Past a route's `max_body`, mid-stream: RESOURCE_EXHAUSTED.
    let err = upload(&mut c, "small", 200).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("65536"), "{}", err.message());
    // Under it, the same route takes the call.
    let res = upload(&mut c, "small", 10).await.unwrap();
    assert_eq!(res.get_ref().n, 10);
    // An upstream that refuses connections: UNAVAILABLE.
    let err = unary(&mut c, "gone", Request::new(msg("x", 0)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}

/// `grpc-timeout` shorter than the route's `timeout` (30 s) bounds the wait
/// for the response head: DEADLINE_EXCEEDED from the gateway after ~300 ms,
/// read by a client that enforces no deadline itself (raw HTTP/2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_timeout_bounds_the_wait_for_the_head() {
    let server = serve_grpc().await;
    let gw = Gateway::start(config(server.addr)).await;
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(format!("http://{}/open.Echo/Unary", gw.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "300m")
        .body(http_body_util::Full::new(Bytes::from(grpc_frame(&msg(
            "slow", 0,
        )))))
        .unwrap();
    let started = Instant::now();
    let res = send.send_request(req).await.unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "answered after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(250),
        "answered after {took:?}"
    );
    // Trailers-only: 200, grpc-status 4, no body.
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["grpc-status"], "4");
    assert_eq!(res.headers()["content-type"], "application/grpc");
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap();
    assert!(body.to_bytes().is_empty());
}

/// On HTTP/2 an answer made before the request body has ended (a 413 past
/// `max_body`) is followed by RST_STREAM(NO_ERROR), never CANCEL, so the
/// client reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_on_h2_is_followed_by_rst_stream_no_error() {
    let blobs = crate::harness::Upstream::start().await;
    let yaml = auth_config().route(
        "blob",
        &format!(
            r#"path: "/blob/*", upstream: "{}", auth: none, max_body: 64KiB"#,
            blobs.url()
        ),
    );
    let gw = Gateway::start(yaml).await;
    let mut conn = H2::connect(gw.addr, &[]).await;
    let window = conn
        .server_settings
        .iter()
        .find(|(id, _)| *id == h2::INITIAL_WINDOW_SIZE)
        .map_or(65_535, |(_, v)| *v);
    assert!(window >= 80 * 1024, "the gateway's stream window: {window}");
    let block =
        Block::request("POST", "/blob/upload").header("content-type", "application/octet-stream");
    conn.send(&h2::headers(1, &block, h2::END_HEADERS))
        .await
        .unwrap();
    // 80 KiB, more than the route's 64 KiB, and never the end of the body.
    for _ in 0..5 {
        conn.send(&h2::frame(h2::DATA, 0, 1, &[1u8; 16 * 1024]))
            .await
            .unwrap();
    }
    let (mut head, mut body, mut reset) = (false, Vec::new(), None);
    while reset.is_none() {
        match conn.read_frame(Duration::from_secs(5)).await {
            Read::Frame(f) if f.kind == h2::HEADERS && f.stream == 1 => head = true,
            Read::Frame(f) if f.kind == h2::DATA && f.stream == 1 => body.extend(f.payload),
            Read::Frame(f) if f.kind == h2::RST_STREAM && f.stream == 1 => reset = f.error_code(),
            Read::Frame(_) => {}
            other => panic!("stream ended without a reset: {other:?} (head {head})"),
        }
    }
    assert!(head, "a response head before the reset");
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "{e}: {:?} (reset {reset:?})",
            String::from_utf8_lossy(&body)
        )
    });
    assert_eq!(j["statusCode"], 413, "{j}");
    assert_eq!(reset, Some(0), "RST_STREAM NO_ERROR after the answer");
}

/// A gRPC length-prefixed message (uncompressed).
fn grpc_frame(m: &Msg) -> Vec<u8> {
    let bytes = prost::Message::encode_to_vec(m);
    let mut out = vec![0u8];
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(&bytes);
    out
}
