//! One request on a connection the test made itself (TLS, h2c), as HTTP/2
//! or HTTP/1.1.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use super::client::Reply;

/// Sends `req` over `io`, as HTTP/2 (prior knowledge) when `h2`, else HTTP/1.1.
pub async fn send_on<T>(io: T, h2: bool, req: Request<Full<Bytes>>) -> Reply
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let res = match h2 {
        true => {
            let (mut tx, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            tx.send_request(req).await.unwrap()
        }
        false => {
            let (mut tx, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            tx.send_request(req).await.unwrap()
        }
    };
    let version = res.version();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
        version,
    }
}
