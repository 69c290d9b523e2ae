//! HTTPS (TLS 1.2 and 1.3, ALPN h2 and http/1.1), h2c prior knowledge on
//! the plain listener, HTTP/2 to upstreams, and certificate reload.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::Full;
use tokio::net::TcpStream;

use crate::harness::conn::send_on;
use crate::harness::gateway::write_atomically;
use crate::harness::tls::{self, make_certs, Certs};
use crate::harness::{eventually, eventually_async, Binary, Gateway, Upstream};

fn tls_yaml(up: &Upstream, certs: &Certs) -> String {
    format!(
        r#"listen: 127.0.0.1:0
tls:
  listen: 127.0.0.1:0
  cert: {}
  key: {}
routes:
  - {{ name: open, path: /*, upstream: {}, auth: none }}
"#,
        certs.cert.display(),
        certs.key.display(),
        up.url()
    )
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("https://localhost{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn https_speaks_http1_and_h2_as_alpn_decides_over_tls12_and_tls13() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path(), "gw");
    let gw = Gateway::start_in(dir, &tls_yaml(&up, &certs)).await;
    let addr = gw.tls_addr.unwrap();
    for (alpn, version, want) in [
        (vec!["h2", "http/1.1"], None, Version::HTTP_2),
        (vec!["http/1.1"], None, Version::HTTP_11),
        (vec![], Some(&rustls::version::TLS12), Version::HTTP_11),
        (vec!["h2"], Some(&rustls::version::TLS12), Version::HTTP_2),
        (vec!["h2"], Some(&rustls::version::TLS13), Version::HTTP_2),
    ] {
        let conn = tls::connect(addr, &certs.ca, &alpn, version).await.unwrap();
        let negotiated = tls::alpn(&conn);
        let expect_alpn = alpn.first().map(|p| p.to_string());
        assert_eq!(negotiated, expect_alpn, "offered {alpn:?}");
        let res = send_on(conn, want == Version::HTTP_2, get("/tls?q=1")).await;
        assert_eq!(res.status, 200, "{alpn:?} {version:?}");
        assert_eq!(res.version, want);
        let seen = up.last();
        assert_eq!(seen.target, "/tls?q=1");
        assert_eq!(seen.headers["x-forwarded-proto"], "https");
        // Whatever the client spoke, the upstream gets HTTP/1.1 by default.
        assert_eq!(seen.version, Version::HTTP_11);
    }
}

#[tokio::test]
async fn a_client_trusting_another_ca_fails_the_handshake() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path(), "gw");
    let other = make_certs(dir.path(), "other");
    let gw = Gateway::start_in(dir, &tls_yaml(&up, &certs)).await;
    let refused = tls::connect(gw.tls_addr.unwrap(), &other.ca, &["h2"], None).await;
    assert!(
        refused.is_err(),
        "handshake with an untrusted cert succeeded"
    );
    // The plain listener keeps working next to it.
    assert_eq!(gw.client().get("/plain").send().await.status, 200);
    assert!(up.requests().iter().all(|r| r.target == "/plain"));
}

#[tokio::test]
async fn h2c_prior_knowledge_works_on_the_plain_listener() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&format!(
        "routes:\n  - {{ name: open, path: /*, upstream: {}, auth: none }}\n",
        up.url()
    ))
    .await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let req = Request::get(format!("http://{}/h2c", gw.addr))
        .header("x-principal-id", "spoofed")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = send_on(tcp, true, req).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.version, Version::HTTP_2);
    assert!(res.header("x-request-id").is_some());
    let seen = up.last();
    assert_eq!(seen.target, "/h2c");
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert!(seen.headers.get("x-principal-id").is_none());
}

#[tokio::test]
async fn upstream_protocol_h2_multiplexes_one_connection() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&format!(
        "routes:\n  - {{ name: grpcish, path: /*, upstream: {}, auth: none, upstream_protocol: h2 }}\n",
        up.url()
    ))
    .await;
    let c = gw.client();
    let sends = (0..20).map(|i| {
        let c = c.clone();
        async move { c.post(&format!("/h2/{i}?x=1")).body("ping").send().await }
    });
    for res in futures_util::future::join_all(sends).await {
        assert_eq!(res.status, 200);
        assert_eq!(res.body, "upstream ok");
        // Upstream hop-by-hop headers are still stripped.
        assert!(res.header("x-upstream-hop").is_none());
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 20);
    for r in &seen {
        assert_eq!(r.version, Version::HTTP_2);
        assert_eq!(r.body, "ping");
        assert!(r.target.starts_with("/h2/") && r.target.ends_with("?x=1"));
    }
    assert_eq!(up.connections(), 1, "HTTP/2 requests share one connection");
}

#[tokio::test]
async fn a_replaced_certificate_serves_new_handshakes_without_a_restart() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let first = make_certs(dir.path(), "gw");
    let second = make_certs(dir.path(), "next");
    let gw = Gateway::start_in(dir, &tls_yaml(&up, &first)).await;
    let addr = gw.tls_addr.unwrap();
    // A connection made before the swap keeps working after it.
    let before = tls::connect(addr, &first.ca, &["http/1.1"], None)
        .await
        .unwrap();
    // Replace the pair in place, as a renewal tool would.
    write_atomically(&first.cert, &std::fs::read_to_string(&second.cert).unwrap());
    write_atomically(&first.key, &std::fs::read_to_string(&second.key).unwrap());
    eventually_async(
        "the new certificate to be served",
        Duration::from_secs(10),
        || async { tls::connect(addr, &second.ca, &["h2"], None).await.is_ok() },
    )
    .await;
    assert!(tls::connect(addr, &first.ca, &["h2"], None).await.is_err());
    assert_eq!(send_on(before, false, get("/old")).await.status, 200);
}

#[tokio::test]
async fn a_bad_certificate_or_key_on_reload_is_logged_at_its_line_and_the_old_one_serves() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path(), "gw");
    let other = make_certs(dir.path(), "other");
    let (good_key, other_key) = (
        std::fs::read_to_string(&certs.key).unwrap(),
        std::fs::read_to_string(&other.key).unwrap(),
    );
    let file = dir.path().join("gateway.yaml");
    let yaml = tls_yaml(&up, &certs);
    // tls_yaml names the certificate on line 4 and the key on line 5.
    assert!(
        yaml.lines().nth(3).unwrap().starts_with("  cert: "),
        "{yaml}"
    );
    std::fs::write(&file, &yaml).unwrap();
    let gw = Binary::serve_file(&file, dir).await;
    let f = file.display().to_string();
    let logged = |at: String, says: &'static str| {
        let gw = &gw;
        move || {
            gw.stderr()
                .lines()
                .any(|l| l.contains(&at) && l.contains(says))
        }
    };
    // A key that is not the certificate's: the pair is refused at `tls.cert`.
    write_atomically(&certs.key, &other_key);
    let mismatch = logged(format!("{f}:4:9: tls.cert: "), "do not match");
    eventually(
        "the mismatch, positioned",
        Duration::from_secs(10),
        mismatch,
    )
    .await;
    // No key at all: refused at `tls.key`.
    write_atomically(&certs.key, "not a key\n");
    let unreadable = logged(format!("{f}:5:8: tls.key: "), "cannot read private key");
    eventually(
        "the bad key, positioned",
        Duration::from_secs(10),
        unreadable,
    )
    .await;
    // The certificate loaded at start still serves new handshakes.
    let conn = tls::connect(gw.tls_addr.unwrap(), &certs.ca, &["h2"], None)
        .await
        .unwrap();
    assert_eq!(send_on(conn, true, get("/kept")).await.status, 200);
    assert!(!gw.stderr().contains("config reloaded"), "{}", gw.stderr());
    // Put back, it reloads.
    write_atomically(&certs.key, &good_key);
    gw.wait_log("config reloaded").await;
}

#[tokio::test]
async fn serve_refuses_a_missing_or_mismatched_certificate_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_certs(dir.path(), "a");
    let b = make_certs(dir.path(), "b");
    for (cert, key, says) in [
        (a.cert.clone(), b.key.clone(), "do not match"),
        (dir.path().join("absent.crt"), a.key.clone(), "absent.crt"),
    ] {
        let file = dir.path().join("bad.yaml");
        std::fs::write(
            &file,
            format!(
                "tls: {{ listen: 127.0.0.1:0, cert: {}, key: {} }}\nroutes:\n  - {{ name: e, path: /e, echo: true, auth: none }}\n",
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        let out = std::process::Command::new(crate::harness::gateway::bin())
            .args(["serve", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.yaml:1:") && err.contains(says), "{err}");
    }
}

#[tokio::test]
async fn the_binary_names_its_https_listener_when_ready() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path(), "gw");
    let file = dir.path().join("gateway.yaml");
    std::fs::write(&file, tls_yaml(&up, &certs)).unwrap();
    let gw = Binary::serve_file(&file, dir).await;
    let conn = tls::connect(gw.tls_addr.unwrap(), &certs.ca, &["h2"], None)
        .await
        .unwrap();
    assert_eq!(send_on(conn, true, get("/bin")).await.status, 200);
}
