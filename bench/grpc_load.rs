//! The gRPC load generator and server of bench/grpc.sh (a `harness = false`
//! bench target, so it builds only for benchmarks; tonic and prost are
//! dev-dependencies, the message is declared with prost's derive).
//!
//!   grpc_load serve PORT
//!       a unary echo server (`/bench.Echo/Unary`) on 127.0.0.1:PORT, HTTP/2
//!   grpc_load load ADDR CONNECTIONS IN_FLIGHT SECONDS
//!       unary calls to ADDR over CONNECTIONS HTTP/2 connections with
//!       IN_FLIGHT calls outstanding at all times, for SECONDS; prints one
//!       JSON line: calls, errors, seconds, calls/s, p50 and p99 in µs.
//!
//! Both run on one thread (the bench pins them to a core).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::uri::PathAndQuery;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::codegen::BoxFuture;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
struct Msg {
    #[prost(bytes = "vec", tag = "1")]
    data: Vec<u8>,
}

#[derive(Clone)]
struct Echo;

impl tonic::server::UnaryService<Msg> for Echo {
    type Response = Msg;
    type Future = BoxFuture<Response<Msg>, Status>;

    fn call(&mut self, req: Request<Msg>) -> Self::Future {
        Box::pin(async move { Ok(Response::new(req.into_inner())) })
    }
}

async fn serve(port: u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(
                |req: http::Request<hyper::body::Incoming>| async move {
                    let mut grpc = tonic::server::Grpc::new(ProstCodec::<Msg, Msg>::default());
                    Ok::<_, Infallible>(grpc.unary(Echo, req).await)
                },
            );
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .max_concurrent_streams(1000)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn load(addr: String, conns: usize, in_flight: usize, secs: u64) {
    let mut channels = Vec::with_capacity(conns);
    for _ in 0..conns {
        let ch = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .tcp_nodelay(true)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        channels.push(ch);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(in_flight);
    for i in 0..in_flight {
        let mut client = tonic::client::Grpc::new(channels[i % conns].clone());
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::with_capacity(1 << 16), 0u64);
            let path = PathAndQuery::from_static("/bench.Echo/Unary");
            let payload = Msg {
                data: vec![b'x'; 64],
            };
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = match client.ready().await {
                    Ok(()) => client
                        .unary::<Msg, Msg, _>(
                            Request::new(payload.clone()),
                            path.clone(),
                            ProstCodec::default(),
                        )
                        .await
                        .is_ok(),
                    Err(_) => false,
                };
                match ok {
                    true => lat.push(t.elapsed().as_micros() as u32),
                    false => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let took = started.elapsed().as_secs_f64();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    all.sort_unstable();
    let at = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{{\"calls\":{},\"errors\":{},\"seconds\":{:.3},\"rps\":{:.0},\"p50_us\":{},\"p99_us\":{}}}",
        all.len(),
        errors,
        took,
        all.len() as f64 / took,
        at(0.50),
        at(0.99)
    );
}

fn main() {
    // `cargo bench` adds `--bench`; the script runs the binary itself.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", port] => rt.block_on(serve(port.parse().unwrap())),
        ["load", addr, conns, in_flight, secs] => rt.block_on(load(
            addr.to_string(),
            conns.parse().unwrap(),
            in_flight.parse().unwrap(),
            secs.parse().unwrap(),
        )),
        _ => {
            eprintln!(
                "usage: grpc_load serve PORT | grpc_load load ADDR CONNECTIONS IN_FLIGHT SECONDS"
            );
            std::process::exit(2);
        }
    }
}
