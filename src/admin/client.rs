//! The admin API as `gateway users` calls it, when a running gateway holds
//! the redb store: one HTTP/1.1 request per call to the admin listener's
//! address from the config, with the config's `admin.token`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;

use crate::config::AdminToken;

/// A call that takes longer than this has failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Everything but unreserved characters is escaped in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the running gateway's admin API at {addr}: {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    /// The API answered with an error; `message` is its body's.
    #[error("the gateway's admin API answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("the gateway's admin API answered something unexpected: {0}")]
    Unexpected(String),
}

pub struct AdminClient {
    addr: SocketAddr,
    token: AdminToken,
}

impl AdminClient {
    /// A listener on every address (`0.0.0.0`, `::`) is reached on loopback.
    pub fn new(listen: SocketAddr, token: AdminToken) -> AdminClient {
        let ip = match listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        AdminClient {
            addr: SocketAddr::new(ip, listen.port()),
            token,
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        parse(&self.call(Method::GET, path, None).await?)
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, ClientError> {
        parse(&self.call(Method::POST, path, body).await?)
    }

    /// A call answered with no body (204).
    pub async fn send(&self, method: Method, path: &str) -> Result<(), ClientError> {
        self.call(method, path, None).await.map(|_| ())
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Bytes, ClientError> {
        let call = self.exchange(method, path, body);
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(out) => out,
            Err(_) => {
                Err(self.unreachable(format!("no answer within {} s", CALL_TIMEOUT.as_secs())))
            }
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Bytes, ClientError> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| self.unreachable(e.to_string()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unreachable(e.to_string()))?;
        tokio::spawn(conn);
        let token = String::from_utf8_lossy(&self.token.0).into_owned();
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, self.addr.to_string())
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        let bytes = match body {
            Some(b) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(bytes))
            .map_err(|e| ClientError::Unexpected(e.to_string()))?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| self.unreachable(e.to_string()))?;
        let status = res.status();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| self.unreachable(e.to_string()))?
            .to_bytes();
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        Err(ClientError::Refused {
            status: status.as_u16(),
            message,
        })
    }

    fn unreachable(&self, reason: String) -> ClientError {
        ClientError::Unreachable {
            addr: self.addr,
            reason,
        }
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::Unexpected(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_escape_everything_but_unreserved() {
        assert_eq!(segment("ann+1@example.com"), "ann%2B1%40example.com");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("items:write"), "items%3Awrite");
    }
}
