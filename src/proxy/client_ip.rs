//! Who the client is (docs/rate-limits.md): the connection's peer (after
//! any PROXY header), unless the peer is a trusted proxy, in which case the
//! `X-Forwarded-For` entries are walked from the right past trusted proxies.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::config::{canonical, ClientIp};
use crate::http::headers;

/// Forwarded headers count only from a trusted peer, and never when the
/// balancer speaks PROXY (it says who the client is itself).
pub fn trusts_forwarded(cfg: &ClientIp, peer: IpAddr) -> bool {
    !cfg.proxy_protocol && cfg.trusts(peer)
}

/// The client IP for rate limits.
pub fn client_ip(cfg: &ClientIp, peer: IpAddr, h: &HeaderMap) -> IpAddr {
    let peer = canonical(peer);
    if !trusts_forwarded(cfg, peer) {
        return peer;
    }
    let mut reached = peer;
    let lines: Vec<&str> = h
        .get_all(&headers::X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    for entry in lines.iter().rev().flat_map(|l| l.rsplit(',')) {
        let Some(ip) = entry_ip(entry.trim()) else {
            return reached;
        };
        reached = ip;
        if !cfg.trusts(ip) {
            return ip;
        }
    }
    reached
}

/// `IP`, `IP:port` or `[v6]:port`.
fn entry_ip(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    text.parse::<SocketAddr>().ok().map(|a| canonical(a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cfg(nets: &[&str], proxy_protocol: bool) -> ClientIp {
        ClientIp {
            trusted_proxies: nets.iter().map(|n| n.parse().unwrap()).collect(),
            proxy_protocol,
        }
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(&headers::X_FORWARDED_FOR, HeaderValue::from_str(l).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_rightmost_untrusted_entry_from_a_trusted_peer() {
        let c = cfg(&["10.0.0.0/8"], false);
        let peer = ip("10.0.0.1");
        let h = xff(&["198.51.100.9, 203.0.113.5", "10.1.1.1"]);
        assert_eq!(client_ip(&c, peer, &h), ip("203.0.113.5"));
        // Ports and brackets.
        let h = xff(&["[2001:db8::7]:443, 10.2.2.2:80"]);
        assert_eq!(client_ip(&c, peer, &h), ip("2001:db8::7"));
        let h = xff(&["203.0.113.5:1234"]);
        assert_eq!(client_ip(&c, peer, &h), ip("203.0.113.5"));
        // Only trusted entries: the leftmost reached.
        let h = xff(&["10.9.9.9, 10.8.8.8"]);
        assert_eq!(client_ip(&c, peer, &h), ip("10.9.9.9"));
        // A malformed entry ends the walk at the last address reached.
        let h = xff(&["203.0.113.5, garbage, 10.3.3.3"]);
        assert_eq!(client_ip(&c, peer, &h), ip("10.3.3.3"));
        let h = xff(&["203.0.113.5, unknown"]);
        assert_eq!(client_ip(&c, peer, &h), peer);
        assert_eq!(client_ip(&c, peer, &HeaderMap::new()), peer);
    }

    #[test]
    fn an_untrusted_peer_or_proxy_protocol_ignores_the_header() {
        let h = xff(&["203.0.113.5"]);
        let c = cfg(&["10.0.0.0/8"], false);
        assert_eq!(client_ip(&c, ip("192.0.2.1"), &h), ip("192.0.2.1"));
        let c = cfg(&["10.0.0.0/8"], true);
        assert_eq!(client_ip(&c, ip("10.0.0.1"), &h), ip("10.0.0.1"));
        let c = cfg(&[], false);
        assert_eq!(client_ip(&c, ip("10.0.0.1"), &h), ip("10.0.0.1"));
        // A dual-stack socket's view of an IPv4 peer is that peer.
        let c = cfg(&["10.0.0.0/8"], false);
        assert_eq!(client_ip(&c, ip("::ffff:10.0.0.1"), &h), ip("203.0.113.5"));
    }
}
