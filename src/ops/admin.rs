//! The admin listener (docs/operations.md): `GET /healthz` while the process
//! lives, `GET /readyz` once every listener serves (503 before and during
//! shutdown), `GET /metrics` in Prometheus text format, and with
//! `admin.token` the admin API and console under `/admin/` (`crate::admin`).
//! None of it is served on the public listeners.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::body::ResponseBody;
use crate::http::headers;
use crate::proxy::error::GatewayError;
use crate::proxy::request_id;
use crate::proxy::state::Gateway;

/// Admin clients are scrapers and probes: a connection gets this long, in all.
const CONNECTION_LIMIT: Duration = Duration::from_secs(60);

pub async fn serve(listener: TcpListener, gw: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let gw = gw.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let gw = gw.clone();
                async move { Ok::<_, Infallible>(answer(&gw, req, peer).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIMIT, conn).await;
        });
    }
}

async fn answer(gw: &Gateway, req: Request<Incoming>, peer: SocketAddr) -> Response<ResponseBody> {
    let id = request_id::keep_or_generate(req.headers());
    let mut res = match req.uri().path().starts_with("/admin/") {
        true => crate::admin::api::serve(gw, req, peer).await,
        false => route(gw, &req),
    };
    res.headers_mut().insert(&headers::X_REQUEST_ID, id);
    res
}

fn route(gw: &Gateway, req: &Request<Incoming>) -> Response<ResponseBody> {
    let known = ["/healthz", "/readyz", "/metrics"].contains(&req.uri().path());
    if !known {
        return GatewayError::NotFound.into_response();
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return GatewayError::MethodNotAllowed(vec![Method::GET, Method::HEAD]).into_response();
    }
    match req.uri().path() {
        "/healthz" => json(r#"{"status":"ok"}"#),
        "/readyz" if gw.ready.load(Ordering::Relaxed) && store_reached(gw) => {
            json(r#"{"status":"ready"}"#)
        }
        "/readyz" => GatewayError::NotReady.into_response(),
        _ => {
            let up = gw.users.as_ref().is_none_or(|u| u.up());
            gw.metrics.store_up.set(i64::from(up));
            let mut res = Response::new(ResponseBody::full(Bytes::from(gw.metrics.render())));
            res.headers_mut().insert(
                &headers::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            res
        }
    }
}

/// `/readyz` waits for the user store to be reached once (docs/clusters.md).
fn store_reached(gw: &Gateway) -> bool {
    gw.users.as_ref().is_none_or(|u| *u.reached().borrow())
}

fn json(body: &'static str) -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::full(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = StatusCode::OK;
    res.headers_mut().insert(
        &headers::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
