//! SIGTERM: listeners close at once, idle keep-alive connections close,
//! requests in flight finish (with `Connection: close`) within
//! `shutdown_timeout`, then the process exits 0.

use std::time::{Duration, Instant};

use http::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::gateway::bin;
use crate::harness::{eventually, eventually_async, full, read_until_close, Binary, Upstream};

async fn slow_upstream(delay: Duration) -> Upstream {
    Upstream::with(move |req, log| {
        Box::pin(async move {
            crate::harness::upstream::record(req, &log).await;
            tokio::time::sleep(delay).await;
            Response::new(full("finally"))
        })
    })
    .await
}

fn yaml(up: &Upstream, shutdown_timeout: &str) -> String {
    format!(
        "limits: {{ shutdown_timeout: {shutdown_timeout} }}\nroutes:\n  - {{ name: slow, path: /slow, upstream: {}, auth: none }}\n  - {{ name: quick, path: /quick, echo: true, auth: none }}\n",
        up.url()
    )
}

/// A connection whose request is waiting at the slow upstream.
async fn in_flight(gw: &Binary, up: &Upstream) -> TcpStream {
    let mut busy = TcpStream::connect(gw.addr).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    eventually(
        "the upstream to get the request",
        Duration::from_secs(5),
        || up.requests().len() == 1,
    )
    .await;
    busy
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish_with_connection_close_then_exits_0() {
    let up = slow_upstream(Duration::from_millis(1500)).await;
    let mut gw = Binary::serve(&yaml(&up, "30s")).await;
    // A keep-alive connection, idle after one answered request.
    let mut idle = TcpStream::connect(gw.addr).await.unwrap();
    idle.write_all(b"GET /quick HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    assert!(idle.read(&mut buf).await.unwrap() > 0);
    let mut busy = in_flight(&gw, &up).await;
    let sent = Instant::now();
    gw.signal("TERM");
    // The idle connection is closed at once, the listener too.
    let (_, closed) = read_until_close(&mut idle, Duration::from_secs(1)).await;
    assert!(closed, "idle keep-alive connection left open");
    let addr = gw.addr;
    eventually_async(
        "the listener to stop accepting",
        Duration::from_secs(1),
        || async move { TcpStream::connect(addr).await.is_err() },
    )
    .await;
    // The request in flight gets its whole answer, marked as the last.
    let (answer, closed) = read_until_close(&mut busy, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(answer.ends_with("finally"), "{answer}");
    assert!(closed);
    assert!(sent.elapsed() >= Duration::from_millis(1000));
    let status = gw.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert!(gw.stderr().contains("shutting down"));
}

#[tokio::test]
async fn shutdown_timeout_bounds_the_drain() {
    let up = slow_upstream(Duration::from_secs(30)).await;
    let mut gw = Binary::serve(&yaml(&up, "1s")).await;
    let mut busy = in_flight(&gw, &up).await;
    let sent = Instant::now();
    gw.signal("TERM");
    let (_, closed) = read_until_close(&mut busy, Duration::from_secs(10)).await;
    assert!(closed, "the request outlived shutdown_timeout");
    assert_eq!(gw.wait_exit().code(), Some(0));
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "drain took {took:?}"
    );
}

// The signal handlers used to be installed when the shutdown future was
// first polled, after start-up: a SIGINT between the bind and then killed
// the process (the default action) instead of draining it.
#[test]
fn a_signal_as_soon_as_the_port_accepts_drains_and_exits_0() {
    let mut runs = 0;
    while runs < 5 {
        let dir = tempfile::tempdir().unwrap();
        // A port free a moment ago (the test must know it before the ready
        // line); if someone took it meanwhile, the run is repeated.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let file = dir.path().join("gateway.yaml");
        // With `auth`, opening the store and making the dummy hash sit
        // between the bind and the serving, as in production.
        let yaml = format!(
            "listen: {addr}\nauth: {{ store: data/users.redb, bcrypt_cost: 10 }}\nroutes:\n  - {{ name: pub, path: /pub, echo: true, auth: none }}\n"
        );
        std::fs::write(&file, yaml).unwrap();
        let log = dir.path().join("stderr.log");
        let mut child = std::process::Command::new(bin())
            .args(["serve", "--config"])
            .arg(&file)
            .env("GATEWAY_WORKERS", "2")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "the port never accepted");
            std::thread::yield_now();
        }
        let sent = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the gateway did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        let stderr = std::fs::read_to_string(&log).unwrap();
        if stderr.contains("cannot listen") {
            continue;
        }
        assert!(sent.success(), "kill -INT failed");
        assert_eq!(status.code(), Some(0), "run {runs}: {status}\n{stderr}");
        runs += 1;
    }
}
