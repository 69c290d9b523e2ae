//! WebSocket through the gateway: authorized on the upgrade, frames both
//! ways (close included), half-closes passed on, and the tunnel outlives a
//! reload.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::HeaderMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::harness::auth::{auth_config, signup};
use crate::harness::{eventually_async, Gateway, Yaml};

/// A WebSocket echo server; records each handshake's headers.
struct EchoServer {
    addr: SocketAddr,
    handshakes: Arc<Mutex<Vec<HeaderMap>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EchoServer {
    async fn start() -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
        let seen = handshakes.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    #[allow(clippy::result_large_err)] // tungstenite's callback type
                    let record = |req: &Request, res: Response| {
                        seen.lock().unwrap().push(req.headers().clone());
                        Ok(res)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, record).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.is_text() || msg.is_binary() {
                            ws.send(msg).await.unwrap();
                        }
                    }
                });
            }
        });
        EchoServer {
            addr,
            handshakes,
            task,
        }
    }

    fn handshakes(&self) -> Vec<HeaderMap> {
        self.handshakes.lock().unwrap().clone()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `auth_config` with the route `ws` (`/ws`, any token) to the echo server.
fn yaml(ws: SocketAddr) -> Yaml {
    auth_config().route("ws", &format!("path: /ws, upstream: http://{ws}"))
}

type Client = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connect(gw: SocketAddr, token: Option<&str>) -> Result<Client, WsError> {
    let mut req = format!("ws://{gw}/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("x-principal-id", "spoofed".parse().unwrap());
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let tcp = TcpStream::connect(gw).await.unwrap();
    tokio_tungstenite::client_async(req, tcp)
        .await
        .map(|(ws, _)| ws)
}

async fn echo(ws: &mut Client, msg: Message) {
    ws.send(msg.clone()).await.unwrap();
    let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("no echo")
        .unwrap()
        .unwrap();
    assert_eq!(back, msg);
}

#[tokio::test]
async fn an_authorized_upgrade_is_proxied_both_ways_and_closes_cleanly() {
    let server = EchoServer::start().await;
    let gw = Gateway::start(yaml(server.addr)).await;
    let (access, _) = signup(&gw.client(), "ws@example.com").await;

    // No token: refused at the upgrade, the upstream never sees it.
    match connect(gw.addr, None).await {
        Err(WsError::Http(res)) => assert_eq!(res.status(), 401),
        other => panic!("expected a 401, got {other:?}"),
    }
    match connect(gw.addr, Some("forged.token.value")).await {
        Err(WsError::Http(res)) => assert_eq!(res.status(), 401),
        other => panic!("expected a 401, got {other:?}"),
    }
    assert!(server.handshakes().is_empty());

    let mut ws = connect(gw.addr, Some(&access)).await.unwrap();
    echo(&mut ws, Message::text("hello through the gateway")).await;
    echo(&mut ws, Message::binary(vec![0u8, 1, 2, 255])).await;
    let big = "x".repeat(200_000);
    echo(&mut ws, Message::text(big)).await;
    // The close handshake crosses both ways, then the stream ends.
    ws.close(None).await.unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        let mut frames = Vec::new();
        while let Some(Ok(m)) = ws.next().await {
            frames.push(m);
        }
        frames
    })
    .await
    .expect("the close was not answered");
    assert!(rest.iter().all(|m| m.is_close()), "{rest:?}");

    let seen = server.handshakes();
    assert_eq!(seen.len(), 1);
    let sub = crate::harness::auth::claims(&access)["sub"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(seen[0]["x-principal-id"], sub.as_str());
    assert_eq!(
        seen[0]["authorization"],
        format!("Bearer {access}").as_str()
    );
    assert!(seen[0]["x-forwarded-for"]
        .to_str()
        .unwrap()
        .ends_with("127.0.0.1"));
}

#[tokio::test]
async fn a_tunnel_survives_a_reload() {
    let server = EchoServer::start().await;
    let gw = Gateway::start(yaml(server.addr)).await;
    let c = gw.client();
    let (access, _) = signup(&c, "reload@example.com").await;
    let mut ws = connect(gw.addr, Some(&access)).await.unwrap();
    echo(&mut ws, Message::text("before")).await;
    gw.write_config(yaml(server.addr).route("added", "path: /added, echo: true, auth: none"));
    eventually_async(
        "the reload adding /added",
        Duration::from_secs(10),
        || async { c.get("/added").send().await.status == 200 },
    )
    .await;
    echo(&mut ws, Message::text("after the reload")).await;
    // New upgrades work on the new config too.
    let mut second = connect(gw.addr, Some(&access)).await.unwrap();
    echo(&mut second, Message::text("second")).await;
}

#[tokio::test]
async fn a_half_close_is_passed_on_and_the_other_direction_keeps_flowing() {
    // A raw upstream: answers 101, reads until the client's side ends,
    // then writes what it got and closes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: test\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        s.write_all(format!("got:{}", String::from_utf8_lossy(&got)).as_bytes())
            .await
            .unwrap();
    });
    let gw = Gateway::start(&format!(
        "routes:\n  - {{ name: ws, path: /ws, upstream: http://{up}, auth: none }}\n"
    ))
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(head.contains("connection: upgrade"), "{head}");
    assert!(head.contains("sec-websocket-accept: test"), "{head}");
    s.write_all(b"abc").await.unwrap();
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("the upstream's answer after the half-close never came")
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&rest), "got:abc");
}
