//! `client_ip`, `rate_limits` and the rates they and `auth.endpoint_limit`
//! are written in (docs/rate-limits.md).

use std::sync::Arc;
use std::time::Duration;

use crate::config::model::{ClientIp, LimitKey, Rate, RatePolicy};
use crate::config::raw;
use crate::config::yaml::Node;

use super::Validator;

/// What a count or a burst may be: enough for any real quota, and small
/// enough that a bucket's arithmetic in nanoseconds cannot overflow.
const MAX_COUNT: u64 = 1_000_000_000;

impl Validator<'_> {
    pub(super) fn client_ip(&mut self, c: raw::ClientIp) -> ClientIp {
        let mut trusted = Vec::new();
        for (i, text) in c.trusted_proxies.unwrap_or_default().iter().enumerate() {
            match cidr(text) {
                Some(net) => trusted.push(net),
                None => self.err(
                    &format!("client_ip.trusted_proxies[{i}]"),
                    format!("{text:?} is not an address or CIDR block (10.0.0.0/8, 192.0.2.7, 2001:db8::/32)"),
                ),
            }
        }
        let proxy_protocol = c.proxy_protocol.unwrap_or(false);
        if proxy_protocol && trusted.is_empty() {
            self.err(
                "client_ip.proxy_protocol",
                "proxy_protocol needs client_ip.trusted_proxies: the balancers allowed to send PROXY headers",
            );
        }
        ClientIp {
            trusted_proxies: trusted,
            proxy_protocol,
        }
    }

    /// The policies in file order; each error at its own key.
    pub(super) fn rate_limits(&mut self, node: &Node) -> Vec<RatePolicy> {
        let Some(entries) = node.as_map() else {
            self.err(
                "rate_limits",
                "`rate_limits` maps policy names to `{ rate: N/s, burst: B, key: K }`",
            );
            return Vec::new();
        };
        let mut policies = Vec::new();
        for (key, value) in entries {
            let name = key.key_text();
            let path = format!("rate_limits.{name}");
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            {
                self.errors.push(crate::config::ConfigError::new(
                    key.pos,
                    path,
                    "a policy name is letters, digits, `-` and `_` (it appears in headers and metrics)",
                ));
                continue;
            }
            if name == "endpoint" {
                self.errors.push(crate::config::ConfigError::new(
                    key.pos,
                    path,
                    "`endpoint` is the name of auth.endpoint_limit's policy; choose another",
                ));
                continue;
            }
            let Some(r) = self.section::<raw::RateLimit>(value, &path) else {
                continue;
            };
            let key = self.limit_key(&format!("{path}.key"), r.key.as_deref());
            if let (Some(rate), Some(key)) = (self.rate(&path, &r.rate, r.burst), key) {
                policies.push(RatePolicy {
                    name: Arc::from(name),
                    rate,
                    key,
                });
            }
        }
        policies
    }

    /// `rate` (`N/s`, `N/m`, `N/h`) and `burst` (default N) under `path`.
    pub(super) fn rate(&mut self, path: &str, rate: &str, burst: Option<u64>) -> Option<Rate> {
        let parsed = rate.trim().split_once('/').and_then(|(n, unit)| {
            let per = match unit.trim() {
                "s" => Duration::from_secs(1),
                "m" => Duration::from_secs(60),
                "h" => Duration::from_secs(3600),
                _ => return None,
            };
            let n: u64 = n.trim().parse().ok()?;
            Some((n, per))
        });
        let Some((count, per)) = parsed else {
            self.err(
                &format!("{path}.rate"),
                format!("{rate:?} is not a rate; write N/s, N/m or N/h (e.g. 100/s)"),
            );
            return None;
        };
        let mut ok = true;
        if !(1..=MAX_COUNT).contains(&count) {
            self.err(
                &format!("{path}.rate"),
                format!("the count is 1..={MAX_COUNT}"),
            );
            ok = false;
        }
        let burst = burst.unwrap_or(count);
        if !(1..=MAX_COUNT).contains(&burst) {
            self.err(
                &format!("{path}.burst"),
                format!("burst is 1..={MAX_COUNT}"),
            );
            ok = false;
        }
        ok.then_some(Rate {
            count: count as u32,
            per,
            burst: burst as u32,
        })
    }

    fn limit_key(&mut self, path: &str, key: Option<&str>) -> Option<LimitKey> {
        match key.unwrap_or("client_ip") {
            "client_ip" => Some(LimitKey::ClientIp),
            "principal" => Some(LimitKey::Principal),
            "route" => Some(LimitKey::Route),
            other => match other.strip_prefix("header:") {
                Some(name) => match http::HeaderName::from_bytes(name.trim().as_bytes()) {
                    Ok(h) => Some(LimitKey::Header(h)),
                    Err(_) => {
                        self.err(path, format!("{name:?} is not a header name"));
                        None
                    }
                },
                None => {
                    self.err(
                        path,
                        format!("unknown key {other:?}; expected client_ip, principal, route or header:NAME"),
                    );
                    None
                }
            },
        }
    }

    /// A route's `rate_limit`: names that must all be policies.
    pub(super) fn route_policies(
        &mut self,
        path: &str,
        names: Option<raw::OneOrMany>,
        policies: &[RatePolicy],
    ) -> Vec<Arc<str>> {
        let names = names.map(|n| n.0).unwrap_or_default();
        let mut out: Vec<Arc<str>> = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let at = match names.len() {
                1 => format!("{path}.rate_limit"),
                _ => format!("{path}.rate_limit[{i}]"),
            };
            match policies.iter().find(|p| &*p.name == name) {
                Some(_) if out.iter().any(|n| &**n == name) => {
                    self.err(&at, format!("policy {name:?} is listed twice"))
                }
                Some(p) => out.push(p.name.clone()),
                None => {
                    let known: Vec<&str> = policies.iter().map(|p| &*p.name).collect();
                    let hint = crate::config::suggest::hint(name, &known);
                    let listed = match known.is_empty() {
                        true => "no policies are defined under `rate_limits`".to_string(),
                        false => format!("defined: {}", known.join(", ")),
                    };
                    self.err(
                        &at,
                        format!("unknown rate-limit policy {name:?} ({listed}){hint}"),
                    )
                }
            }
        }
        out
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`, or one address (a /32 or /128).
fn cidr(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Some(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .ok()
        .map(ipnet::IpNet::from)
}
