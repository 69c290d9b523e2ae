//! The PROXY protocol header (HAProxy's v1 text and v2 binary forms) that an
//! L4 balancer sends first on each connection when `client_ip.proxy_protocol`
//! is on: read exactly its bytes (what follows is the client's TLS or HTTP),
//! parsed by the `ppp` crate.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The shortest v1 header is `PROXY UNKNOWN\r\n`; a v2 header has 16 fixed bytes.
const SHORTEST: usize = 15;
/// v1 headers are at most 107 bytes.
const V1_MAX: usize = 107;
/// v2 addresses are at most 216 bytes; TLVs past this much are refused.
const V2_MAX_PAYLOAD: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    #[error("the connection did not start with a PROXY header")]
    Missing,
    #[error("the PROXY header is malformed")]
    Malformed,
}

/// Reads the header and returns the client address it carries; `None` for
/// a balancer's own connection (v2 `LOCAL`, v1 `UNKNOWN`, or an address
/// family other than TCP over IPv4/IPv6): the TCP peer stands.
pub async fn read<S: AsyncRead + Unpin>(s: &mut S) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut buf = vec![0u8; SHORTEST];
    s.read_exact(&mut buf).await?;
    if buf.starts_with(b"PROXY ") {
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= V1_MAX {
                return Err(ProxyHeaderError::Malformed);
            }
            buf.push(s.read_u8().await?);
        }
        let header =
            ppp::v1::Header::try_from(buf.as_slice()).map_err(|_| ProxyHeaderError::Malformed)?;
        return Ok(match header.addresses {
            ppp::v1::Addresses::Tcp4(a) => Some((a.source_address, a.source_port).into()),
            ppp::v1::Addresses::Tcp6(a) => Some((a.source_address, a.source_port).into()),
            ppp::v1::Addresses::Unknown => None,
        });
    }
    if !buf.starts_with(&V2_SIGNATURE[..]) {
        return Err(ProxyHeaderError::Missing);
    }
    buf.push(s.read_u8().await?);
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > V2_MAX_PAYLOAD {
        return Err(ProxyHeaderError::Malformed);
    }
    let fixed = buf.len();
    buf.resize(fixed + len, 0);
    s.read_exact(&mut buf[fixed..]).await?;
    let header =
        ppp::v2::Header::try_from(buf.as_slice()).map_err(|_| ProxyHeaderError::Malformed)?;
    if header.command == ppp::v2::Command::Local {
        return Ok(None);
    }
    Ok(match header.addresses {
        ppp::v2::Addresses::IPv4(a) => Some((a.source_address, a.source_port).into()),
        ppp::v2::Addresses::IPv6(a) => Some((a.source_address, a.source_port).into()),
        ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> (Result<Option<SocketAddr>, String>, Vec<u8>) {
        let mut r = bytes;
        let out = read(&mut r).await.map_err(|e| e.to_string());
        (out, r.to_vec())
    }

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut b = V2_SIGNATURE.to_vec();
        b.push(0x20 | command);
        b.push(family);
        b.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        b.extend_from_slice(addresses);
        b
    }

    #[tokio::test]
    async fn v1_headers_give_the_client_and_leave_the_rest() {
        let (a, rest) =
            parse(b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\nGET / HTTP/1.1\r\n").await;
        assert_eq!(a, Ok(Some("203.0.113.7:51000".parse().unwrap())));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (a, _) = parse(b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n").await;
        assert_eq!(a, Ok(Some("[2001:db8::7]:51000".parse().unwrap())));
        let (a, rest) = parse(b"PROXY UNKNOWN\r\n\x16\x03\x01").await;
        assert_eq!((a, rest), (Ok(None), b"\x16\x03\x01".to_vec()));
    }

    #[tokio::test]
    async fn v2_headers_give_the_client_and_local_keeps_the_peer() {
        let mut addrs = vec![203, 0, 113, 7, 192, 0, 2, 1];
        addrs.extend_from_slice(&51000u16.to_be_bytes());
        addrs.extend_from_slice(&443u16.to_be_bytes());
        let mut bytes = v2(1, 0x11, &addrs);
        bytes.extend_from_slice(b"PRI * HTTP/2.0");
        let (a, rest) = parse(&bytes).await;
        assert_eq!(a, Ok(Some("203.0.113.7:51000".parse().unwrap())));
        assert_eq!(rest, b"PRI * HTTP/2.0");
        let (a, _) = parse(&v2(0, 0x00, &[])).await;
        assert_eq!(a, Ok(None));
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"PROXY TCP4 not-an-ip 192.0.2.1 1 2\r\n",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443 and much more than a header may hold, far past the one hundred and seven bytes\r\n",
            b"PROXY TCP4",
        ] {
            assert!(parse(bad).await.0.is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(parse(&huge).await.0.is_err());
    }
}
