//! Bodies stream both ways: 1 GiB up and 1 GiB down through the built
//! binary, whose peak RSS must stay under 64 MiB.

use std::time::Duration;

use http::Response;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Binary, Repeat, Upstream};

const GIB: u64 = 1 << 30;
const CHUNK: usize = 64 * 1024;

fn yaml(up: &Upstream) -> String {
    format!("log: {{ access: false }}\nlimits:\n  max_body: 2GiB\nroutes:\n  - {{ name: big, path: \"/*\", upstream: {}, auth: none, timeout: 60s }}\n", up.url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_upload_and_download_stream_in_constant_memory() {
    let up = Upstream::with(|req, _log| {
        Box::pin(async move {
            if req.uri().path() == "/download" {
                let body = Repeat::new(GIB, b'd');
                return Response::new(body.boxed());
            }
            // Upload: count the bytes without keeping them.
            let mut body = req.into_body();
            let mut n = 0u64;
            while let Some(frame) = body.frame().await {
                if let Ok(d) = frame.map(|f| f.into_data()) {
                    n += d.map_or(0, |d| d.len() as u64);
                }
            }
            Response::new(crate::harness::full(n.to_string()))
        })
    })
    .await;
    let gw = Binary::serve(&yaml(&up)).await;

    // Upload 1 GiB with a declared length.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(
        format!("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {GIB}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let chunk = vec![b'u'; CHUNK];
    for _ in 0..(GIB / CHUNK as u64) {
        s.write_all(&chunk).await.unwrap();
    }
    let mut head = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(60), s.read(&mut head))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8_lossy(&head[..n]);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.ends_with(&GIB.to_string()),
        "upstream did not receive 1 GiB: {reply}"
    );

    // Download 1 GiB.
    s.write_all(b"GET /download HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut total = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    assert!(total > GIB, "downloaded only {total} bytes");

    let peak = gw.peak_rss_kib();
    assert!(
        peak < 64 * 1024,
        "gateway peak RSS {peak} KiB is over 64 MiB"
    );
}
