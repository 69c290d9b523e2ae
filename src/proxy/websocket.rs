//! WebSocket proxying (docs/routing.md): an HTTP/1.1 `Upgrade: websocket`
//! request on an allowed route goes through the whole pipeline like any
//! other (authorization included) with its `Upgrade` and `Connection:
//! upgrade` kept; when the upstream answers 101, both connections are
//! handed over to a tunnel that copies bytes both ways until each side has
//! closed. Frames, close frames included, pass through untouched, and a
//! half-close on one side is passed on to the other.

use http::{HeaderMap, HeaderValue, Method, Request, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::http::headers::{CONNECTION, UPGRADE};
use crate::proxy::upstream::h1;

/// The `Upgrade` value of a WebSocket handshake request, if `req` is one.
pub fn upgrade_of(req: &Request<Incoming>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 || req.method() != Method::GET {
        return None;
    }
    let upgrade = req.headers().get(&UPGRADE)?;
    let is_websocket = upgrade
        .to_str()
        .is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    (is_websocket && connection_lists_upgrade(req.headers())).then(|| upgrade.clone())
}

fn connection_lists_upgrade(h: &HeaderMap) -> bool {
    h.get_all(&CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Puts back the two headers the hop-by-hop strip removed.
pub fn keep_upgrade(h: &mut HeaderMap, upgrade: HeaderValue) {
    h.insert(&UPGRADE, upgrade);
    h.insert(&CONNECTION, HeaderValue::from_static("upgrade"));
}

/// For a handshake request: puts its `Upgrade` back on the outgoing head
/// and takes the client's side of the upgrade, for the tunnel.
pub fn take_upgrade(parts: &mut http::request::Parts, upgrade: HeaderValue) -> Option<OnUpgrade> {
    keep_upgrade(&mut parts.headers, upgrade);
    parts.extensions.remove::<OnUpgrade>()
}

/// After the upstream's 101: spawns the tunnel between the client's
/// connection (once hyper has sent it the 101) and the upstream's, first
/// passing on any bytes the upstream sent right after its 101. `alive`
/// keeps shutdown waiting for the tunnel, at most `shutdown_timeout`.
pub fn tunnel(client: OnUpgrade, upstream: h1::Conn, alive: mpsc::Sender<()>) {
    let (mut upstream, early) = upstream.into_parts();
    tokio::spawn(async move {
        let _alive = alive;
        let mut client = match client.await {
            Ok(client) => TokioIo::new(client),
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade did not complete");
                return;
            }
        };
        if let Err(e) = client.write_all(&early).await {
            tracing::debug!(error = %e, "WebSocket tunnel ended with an error");
            return;
        }
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((up, down)) => tracing::debug!(up, down, "WebSocket tunnel closed"),
            Err(e) => tracing::debug!(error = %e, "WebSocket tunnel ended with an error"),
        }
    });
}
