//! `client_ip.proxy_protocol` (docs/rate-limits.md): the PROXY header a
//! balancer sends first, by hand (v1 and v2) and from a real HAProxy in TCP
//! mode with `send-proxy-v2`, on the plain and TLS listeners; anything else
//! on such a listener is closed without a byte written.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::harness::conn::send_on;
use crate::harness::tls::{self, make_certs};
use crate::harness::tools::installed;
use crate::harness::{read_until_close, Binary, Yaml};

/// Plain and TLS listeners speaking PROXY, 127.0.0.1 trusted to send it,
/// an echo route limited per client, the access log on.
fn proxied(dir: &Path) -> Yaml {
    let certs = make_certs(dir, "gw");
    Yaml::new()
        .set("log.access", "true")
        .set("tls.listen", "127.0.0.1:0")
        .set("tls.cert", &format!("{:?}", certs.cert))
        .set("tls.key", &format!("{:?}", certs.key))
        .set(
            "client_ip",
            "{ trusted_proxies: [127.0.0.1/32], proxy_protocol: true }",
        )
        .set("rate_limits.per_client", "{ rate: 1/m, burst: 1 }")
        .route("echo", "path: /echo, echo: true, auth: none")
        .route(
            "limited",
            "path: /limited, echo: true, auth: none, rate_limit: per_client",
        )
}

const GET: &[u8] =
    b"GET /echo HTTP/1.1\r\nHost: gw\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n";

async fn send(addr: SocketAddr, bytes: &[&[u8]]) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    for b in bytes {
        if s.write_all(b).await.is_err() {
            break;
        }
    }
    read_until_close(&mut s, Duration::from_secs(5)).await
}

fn v2(client: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(c) = client else {
        panic!("v4 only")
    };
    let mut b = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    b.extend_from_slice(&[0x21, 0x11, 0, 12]);
    b.extend_from_slice(&c.ip().octets());
    b.extend_from_slice(&[127, 0, 0, 1]);
    b.extend_from_slice(&c.port().to_be_bytes());
    b.extend_from_slice(&443u16.to_be_bytes());
    b
}

fn echoed(response: &str) -> serde_json::Value {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

#[tokio::test]
async fn the_carried_address_is_the_client_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Binary::serve(proxied(dir.path())).await;
    let addr = gw.addr;
    let (out, _) = send(
        addr,
        &[b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 3000\r\n", GET],
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // The client's own X-Forwarded-For is never trusted with PROXY on.
    assert_eq!(
        echoed(&out)["headers"]["x-forwarded-for"],
        "6.6.6.6, 203.0.113.7"
    );
    let (out, _) = send(addr, &[&v2("198.51.100.9:40000".parse().unwrap()), GET]).await;
    assert_eq!(
        echoed(&out)["headers"]["x-forwarded-for"],
        "6.6.6.6, 198.51.100.9"
    );
    // A balancer's health check (v2 LOCAL, v1 UNKNOWN) is served as the TCP peer.
    let local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";
    let (out, _) = send(addr, &[local, GET]).await;
    assert_eq!(
        echoed(&out)["headers"]["x-forwarded-for"],
        "6.6.6.6, 127.0.0.1"
    );
    let (out, _) = send(addr, &[b"PROXY UNKNOWN\r\n", GET]).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // Rate limits key on the carried address.
    let limited = b"GET /limited HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n";
    for (client, status) in [
        ("203.0.113.7", "200"),
        ("203.0.113.7", "429"),
        ("203.0.113.8", "200"),
    ] {
        let header = format!("PROXY TCP4 {client} 127.0.0.1 50000 3000\r\n");
        let (out, _) = send(addr, &[header.as_bytes(), limited]).await;
        assert!(
            out.starts_with(&format!("HTTP/1.1 {status}")),
            "{client}: {out}"
        );
    }
    // And the access log names it.
    let line = gw.wait_log_stdout("\"path\":\"/echo\"").await;
    assert!(line.contains("\"client\":\"203.0.113.7:51000\""), "{line}");
}

#[tokio::test]
async fn a_connection_without_a_valid_header_is_closed_without_a_byte() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Binary::serve(proxied(dir.path())).await;
    for bytes in [
        GET,
        b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\nGET / HTTP/1.1\r\n\r\n",
        b"PROXY TCP9 203.0.113.7 127.0.0.1 1 2\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x00\x00\x00\x00\x00",
    ] {
        let (out, closed) = send(gw.addr, &[bytes]).await;
        assert!(
            closed && out.is_empty(),
            "{:?} got {out:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    // A header that never completes: closed after header_timeout, silently.
    let yaml = proxied(dir.path()).set("limits.header_timeout", "300ms");
    let slow = Binary::serve(yaml).await;
    let (out, closed) = send(slow.addr, &[b"PROXY TCP4 203.0.113.7"]).await;
    assert!(closed && out.is_empty(), "{out:?}");
}

#[tokio::test]
async fn only_trusted_peers_may_send_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = proxied(dir.path()).set(
        "client_ip",
        "{ trusted_proxies: [10.0.0.0/8], proxy_protocol: true }",
    );
    let gw = Binary::serve(yaml).await;
    let (out, closed) = send(
        gw.addr,
        &[b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 3000\r\n", GET],
    )
    .await;
    assert!(closed && out.is_empty(), "{out:?}");
    // The admin listener never takes PROXY headers (none configured here);
    // the TLS listener closes the same way.
    let (out, closed) = send(
        gw.tls_addr.unwrap(),
        &[b"PROXY TCP4 203.0.113.7 127.0.0.1 1 2\r\n"],
    )
    .await;
    assert!(closed && out.is_empty(), "{out:?}");
}

/// HAProxy in TCP mode, `send-proxy-v2`, killed by PID on drop.
struct Haproxy {
    child: Child,
    plain: SocketAddr,
    tls: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn haproxy(plain: SocketAddr, tls: SocketAddr) -> Haproxy {
    let dir = tempfile::tempdir().unwrap();
    let (front_plain, front_tls) = (free_addr(), free_addr());
    let cfg = format!(
        "global
  maxconn 200
defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend plain
  bind {front_plain}
  default_backend plain
frontend tls
  bind {front_tls}
  default_backend tls
backend plain
  server gw {plain} send-proxy-v2
backend tls
  server gw {tls} send-proxy-v2
"
    );
    let file = dir.path().join("haproxy.cfg");
    std::fs::write(&file, cfg).unwrap();
    let child = Command::new(installed("haproxy", "haproxy"))
        .args(["-db", "-f"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let h = Haproxy {
        child,
        plain: front_plain,
        tls: front_tls,
        _dir: dir,
    };
    let up = crate::harness::within(Duration::from_secs(10), || async {
        TcpStream::connect(front_plain).await.is_ok() && TcpStream::connect(front_tls).await.is_ok()
    })
    .await;
    assert!(up, "haproxy did not start");
    h
}

#[tokio::test]
async fn behind_haproxy_send_proxy_v2_on_plain_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path(), "ca-for-client");
    let yaml = proxied(dir.path())
        .set("tls.cert", &format!("{:?}", certs.cert))
        .set("tls.key", &format!("{:?}", certs.key));
    let gw = Binary::serve(yaml).await;
    let lb = haproxy(gw.addr, gw.tls_addr.unwrap()).await;

    // Plain: the client's own address and port reach the access log.
    let mut s = TcpStream::connect(lb.plain).await.unwrap();
    let port = s.local_addr().unwrap().port();
    s.write_all(GET).await.unwrap();
    let (out, _) = read_until_close(&mut s, Duration::from_secs(5)).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert_eq!(
        echoed(&out)["headers"]["x-forwarded-for"],
        "6.6.6.6, 127.0.0.1"
    );
    let line = gw
        .wait_log_stdout(&format!("\"client\":\"127.0.0.1:{port}\""))
        .await;
    assert!(line.contains("\"route\":\"echo\""), "{line}");

    // TLS through the balancer: the PROXY header comes before the ClientHello.
    let conn = tls::connect(lb.tls, &certs.ca, &["h2"], None)
        .await
        .unwrap();
    let port = conn.get_ref().0.local_addr().unwrap().port();
    let req = Request::get("https://localhost/echo")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = send_on(conn, true, req).await;
    assert_eq!(res.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(body["headers"]["x-forwarded-proto"], "https");
    gw.wait_log_stdout(&format!("\"client\":\"127.0.0.1:{port}\""))
        .await;

    // Directly, bypassing the balancer: closed without a byte.
    let (out, closed) = send(gw.addr, &[GET]).await;
    assert!(closed && out.is_empty(), "{out:?}");
    drop(lb);
}
