//! Rate limits (docs/rate-limits.md): named token-bucket policies, one
//! bucket per key, the buckets of one policy kept in a bounded cache (at
//! most `MAX_KEYS`, least recently used dropped first); the arithmetic is
//! in `gcra`. A request on a limited route is checked in two phases (every
//! policy not keyed by the principal before the token is verified, the
//! principal's after it), and a denied request takes no token from any
//! bucket. The outcome of every policy evaluated becomes the response's
//! `RateLimit-Policy` and `RateLimit` headers.

mod gcra;

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, HeaderName, HeaderValue};
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use crate::config::{canonical, Config, LimitKey, Rate, RatePolicy, Route, Target};

pub use gcra::{Gcra, Verdict};

/// Keys kept per policy.
pub const MAX_KEYS: u64 = 100_000;
/// The member name of `auth.endpoint_limit`'s policy in the headers.
pub const ENDPOINT_POLICY: &str = "endpoint";
/// Header values up to this long are keys as they are; longer ones by
/// their SHA-256, so a key never costs more than this.
const MAX_KEY_BYTES: usize = 64;

pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// One bucket's key within its policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BucketKey {
    Ip(IpAddr),
    Principal(Arc<str>),
    Header(Box<[u8]>),
    HeaderDigest([u8; 32]),
    Route(Arc<str>),
    /// `auth.endpoint_limit`: each endpoint's own bucket per client.
    EndpointIp(Arc<str>, IpAddr),
}

/// One policy and its buckets.
pub struct Policy {
    pub def: RatePolicy,
    gcra: Gcra,
    epoch: Instant,
    buckets: Cache<BucketKey, Arc<AtomicU64>>,
    /// This policy's member of `RateLimit-Policy`, as text and as the
    /// whole header value when it is the only one (the common case).
    member: String,
    member_value: HeaderValue,
    /// `"<name>";r=`: the start of its `RateLimit` member.
    state_prefix: String,
}

impl Policy {
    fn new(def: RatePolicy) -> Policy {
        let member = format!(
            "\"{}\";q={};w={}",
            def.name,
            def.rate.count,
            def.rate.per.as_secs()
        );
        let member_value =
            HeaderValue::from_str(&member).expect("policy names are header-safe (validated)");
        Policy {
            member_value,
            state_prefix: format!("\"{}\";r=", def.name),
            gcra: Gcra::new(def.rate),
            epoch: Instant::now(),
            buckets: Cache::builder()
                .max_capacity(MAX_KEYS)
                .eviction_policy(EvictionPolicy::lru())
                .build(),
            member,
            def,
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// One request on the bucket of `key`.
    fn take(&self, key: &BucketKey) -> Verdict {
        let cell = self
            .buckets
            .get_with_by_ref(key, || Arc::new(AtomicU64::new(0)));
        let now = self.now();
        let mut tat = cell.load(Ordering::Acquire);
        loop {
            let (verdict, next) = self.gcra.take(tat, now);
            let Some(next) = next else {
                return verdict;
            };
            match cell.compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return verdict,
                Err(seen) => tat = seen,
            }
        }
    }

    /// Undoes one allowed request of `key`.
    fn give_back(&self, key: &BucketKey) {
        if let Some(cell) = self.buckets.get(key) {
            let _ = cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(self.gcra.give_back(tat))
            });
        }
    }

    /// Keys kept now (tests and memory checks).
    pub fn keys(&self) -> u64 {
        self.buckets.run_pending_tasks();
        self.buckets.entry_count()
    }
}

/// Every policy of one config version, and which apply to which route.
#[derive(Default)]
pub struct RateLimits {
    by_name: HashMap<Arc<str>, Arc<Policy>>,
    /// Per route name: its policies in `rate_limit` order.
    routes: HashMap<Arc<str>, Arc<[Arc<Policy>]>>,
    /// `auth.endpoint_limit`, for every built-in endpoint but the JWK set.
    endpoint: Option<Arc<[Arc<Policy>]>>,
}

impl RateLimits {
    /// The policies `config` defines; one `previous` had with the same
    /// definition keeps its buckets (a reload forgets no count).
    pub fn build(config: &Config, previous: Option<&RateLimits>) -> RateLimits {
        let reuse = |def: &RatePolicy| -> Arc<Policy> {
            previous
                .and_then(|p| p.by_name.get(&def.name))
                .filter(|p| p.def == *def)
                .cloned()
                .unwrap_or_else(|| Arc::new(Policy::new(def.clone())))
        };
        let by_name: HashMap<Arc<str>, Arc<Policy>> = config
            .rate_limits
            .iter()
            .map(|def| (def.name.clone(), reuse(def)))
            .collect();
        let routes = config
            .routes
            .iter()
            .filter(|r| !r.rate_limit.is_empty())
            .map(|r| {
                let policies: Vec<Arc<Policy>> = r
                    .rate_limit
                    .iter()
                    .filter_map(|n| by_name.get(n).cloned())
                    .collect();
                (r.name.clone(), Arc::from(policies))
            })
            .collect();
        let endpoint = config
            .auth
            .as_ref()
            .and_then(|a| a.endpoint_limit)
            .map(|rate| endpoint_policy(rate, previous));
        RateLimits {
            by_name,
            routes,
            endpoint,
        }
    }

    /// The policies a request on `route` must pass (none for most routes).
    pub fn of(&self, route: &Route) -> Option<&Arc<[Arc<Policy>]>> {
        match &route.target {
            Target::Builtin(e) if *e == crate::config::Endpoint::Jwks => None,
            Target::Builtin(_) => self.endpoint.as_ref(),
            // Most routes have no limit: no lookup for them.
            _ if route.rate_limit.is_empty() => None,
            _ => self.routes.get(&route.name),
        }
    }

    /// The named policy (tests and metrics).
    pub fn policy(&self, name: &str) -> Option<&Arc<Policy>> {
        match name {
            ENDPOINT_POLICY => self.endpoint.as_ref().and_then(|p| p.first()),
            _ => self.by_name.get(name),
        }
    }
}

fn endpoint_policy(rate: Rate, previous: Option<&RateLimits>) -> Arc<[Arc<Policy>]> {
    let def = RatePolicy {
        name: Arc::from(ENDPOINT_POLICY),
        rate,
        key: LimitKey::ClientIp,
    };
    match previous.and_then(|p| p.endpoint.as_ref()) {
        Some(p) if p.first().is_some_and(|p| p.def == def) => p.clone(),
        _ => Arc::from(vec![Arc::new(Policy::new(def))]),
    }
}

/// What a request's keys are made of.
pub struct Subject<'a> {
    /// The client IP (section 11: the peer, or from `X-Forwarded-For`).
    pub client: IpAddr,
    /// The verified token's `sub`, once known.
    pub principal: Option<&'a Arc<str>>,
    pub headers: &'a HeaderMap,
    pub route: &'a Arc<str>,
    pub builtin: bool,
}

/// The request was refused: `Retry-After` and the policies that refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub retry_after: u64,
    pub policies: Vec<Arc<str>>,
}

/// One request's checks on a limited route, across both phases.
pub struct Limited {
    policies: Arc<[Arc<Policy>]>,
    verdicts: Vec<Option<Verdict>>,
    /// What was taken, to give back when a later check denies.
    taken: Vec<(usize, BucketKey)>,
}

/// Which policies a phase checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Everything but `principal` policies: before the token is verified.
    BeforeAuth,
    /// `principal` policies, once the principal is known.
    AfterAuth,
}

impl Limited {
    pub fn new(policies: Arc<[Arc<Policy>]>) -> Limited {
        let n = policies.len();
        Limited {
            policies,
            verdicts: vec![None; n],
            taken: Vec::new(),
        }
    }

    /// Checks the phase's policies; when one denies, every token this
    /// request took (in this phase or the one before) is given back.
    pub fn check(&mut self, phase: Phase, s: &Subject) -> Result<(), Denied> {
        let mut denied = Vec::new();
        let mut wait_ns = 0;
        for (i, p) in self.policies.iter().enumerate() {
            let principal = matches!(p.def.key, LimitKey::Principal);
            if principal != (phase == Phase::AfterAuth) {
                continue;
            }
            let key = bucket_key(&p.def.key, s);
            let verdict = p.take(&key);
            self.verdicts[i] = Some(verdict);
            match verdict.allowed {
                true => self.taken.push((i, key)),
                false => {
                    wait_ns = wait_ns.max(verdict.wait_ns);
                    denied.push(p.def.name.clone());
                }
            }
        }
        if denied.is_empty() {
            return Ok(());
        }
        for (i, key) in self.taken.drain(..) {
            self.policies[i].give_back(&key);
        }
        Err(Denied {
            retry_after: secs_up(wait_ns).max(1),
            policies: denied,
        })
    }

    /// `RateLimit-Policy` and `RateLimit` for the policies evaluated, in
    /// `rate_limit` order, replacing any the upstream sent.
    pub fn decorate(&self, h: &mut HeaderMap) {
        h.remove(&RATELIMIT_POLICY);
        h.remove(&RATELIMIT);
        let evaluated = || {
            self.policies
                .iter()
                .zip(&self.verdicts)
                .filter_map(|(p, v)| v.map(|v| (p, v)))
        };
        let (mut count, mut state) = (0, String::with_capacity(32));
        let mut only = None;
        for (p, v) in evaluated() {
            if count > 0 {
                state.push_str(", ");
            }
            count += 1;
            only = Some(p);
            state.push_str(&p.state_prefix);
            push_u64(&mut state, v.remaining);
            state.push_str(";t=");
            push_u64(
                &mut state,
                if v.remaining == 0 {
                    secs_up(v.wait_ns)
                } else {
                    0
                },
            );
        }
        let policy = match (count, only) {
            (0, _) | (_, None) => return,
            (1, Some(p)) => p.member_value.clone(),
            _ => {
                let members: Vec<&str> = evaluated().map(|(p, _)| p.member.as_str()).collect();
                match HeaderValue::from_str(&members.join(", ")) {
                    Ok(v) => v,
                    Err(_) => return,
                }
            }
        };
        if let Ok(state) = HeaderValue::from_str(&state) {
            h.insert(&RATELIMIT_POLICY, policy);
            h.insert(&RATELIMIT, state);
        }
    }
}

/// Decimal digits without `format!`'s machinery (this runs per response).
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&digits[i..]).unwrap_or_default());
}

/// Whole seconds, rounded up.
fn secs_up(ns: u64) -> u64 {
    ns.div_ceil(1_000_000_000)
}

/// The bucket a request falls in under a policy keyed by `key`.
fn bucket_key(key: &LimitKey, s: &Subject) -> BucketKey {
    let by_ip = || match s.builtin {
        true => BucketKey::EndpointIp(s.route.clone(), client_key(s.client)),
        false => BucketKey::Ip(client_key(s.client)),
    };
    match key {
        LimitKey::ClientIp => by_ip(),
        LimitKey::Route => BucketKey::Route(s.route.clone()),
        LimitKey::Principal => match s.principal {
            Some(p) => BucketKey::Principal(p.clone()),
            None => by_ip(),
        },
        LimitKey::Header(name) => match s.headers.get(name) {
            Some(v) if v.len() <= MAX_KEY_BYTES => BucketKey::Header(v.as_bytes().into()),
            Some(v) => {
                let d = ring::digest::digest(&ring::digest::SHA256, v.as_bytes());
                let mut out = [0u8; 32];
                out.copy_from_slice(d.as_ref());
                BucketKey::HeaderDigest(out)
            }
            None => by_ip(),
        },
    }
}

/// IPv4 clients by their address, IPv6 clients by their /64 (one host
/// usually holds a whole /64).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn policy(name: &str, count: u32, burst: u32, key: LimitKey) -> Arc<Policy> {
        Arc::new(Policy::new(RatePolicy {
            name: Arc::from(name),
            rate: Rate {
                count,
                per: Duration::from_secs(60),
                burst,
            },
            key,
        }))
    }

    fn subject<'a>(h: &'a HeaderMap, route: &'a Arc<str>, client: &str) -> Subject<'a> {
        Subject {
            client: client.parse().unwrap(),
            principal: None,
            headers: h,
            route,
            builtin: false,
        }
    }

    #[test]
    fn a_denied_request_takes_no_token_from_any_policy() {
        let (wide, narrow) = (
            policy("wide", 10, 10, LimitKey::ClientIp),
            policy("narrow", 1, 1, LimitKey::Route),
        );
        let set: Arc<[Arc<Policy>]> = Arc::from(vec![wide.clone(), narrow]);
        let (h, route) = (HeaderMap::new(), Arc::<str>::from("r"));
        let s = subject(&h, &route, "192.0.2.1");
        assert!(Limited::new(set.clone())
            .check(Phase::BeforeAuth, &s)
            .is_ok());
        for _ in 0..5 {
            let mut l = Limited::new(set.clone());
            let denied = l.check(Phase::BeforeAuth, &s).unwrap_err();
            assert_eq!(denied.policies, [Arc::<str>::from("narrow")]);
            assert_eq!(denied.retry_after, 60);
            let mut h = HeaderMap::new();
            l.decorate(&mut h);
            assert_eq!(
                h[&RATELIMIT_POLICY],
                "\"wide\";q=10;w=60, \"narrow\";q=1;w=60"
            );
            // `wide` is shown as it was for this request, then given back.
            assert_eq!(h[&RATELIMIT], "\"wide\";r=8;t=0, \"narrow\";r=0;t=60");
        }
        // Only the first request took from `wide`.
        let mut l = Limited::new(Arc::from(vec![wide]));
        l.check(Phase::BeforeAuth, &s).unwrap();
        let mut h = HeaderMap::new();
        l.decorate(&mut h);
        assert_eq!(h[&RATELIMIT], "\"wide\";r=8;t=0");
    }

    #[test]
    fn principal_policies_wait_for_their_phase_and_fall_back_to_the_client() {
        let p = policy("user", 1, 1, LimitKey::Principal);
        let set: Arc<[Arc<Policy>]> = Arc::from(vec![p.clone()]);
        let (h, route) = (HeaderMap::new(), Arc::<str>::from("r"));
        let ann = Arc::<str>::from("ann");
        let mut s = subject(&h, &route, "192.0.2.1");
        let mut l = Limited::new(set.clone());
        l.check(Phase::BeforeAuth, &s).unwrap();
        assert_eq!(p.keys(), 0, "not checked before the token");
        s.principal = Some(&ann);
        l.check(Phase::AfterAuth, &s).unwrap();
        assert!(Limited::new(set.clone())
            .check(Phase::AfterAuth, &s)
            .is_err());
        s.principal = None;
        assert!(
            Limited::new(set).check(Phase::AfterAuth, &s).is_ok(),
            "the IP's own bucket"
        );
    }

    #[test]
    fn header_keys_are_bounded_and_ipv6_clients_share_their_64() {
        let p = policy(
            "key",
            1,
            1,
            LimitKey::Header(HeaderName::from_static("x-api-key")),
        );
        let set: Arc<[Arc<Policy>]> = Arc::from(vec![p.clone()]);
        let route = Arc::<str>::from("r");
        let mut h = HeaderMap::new();
        h.insert(
            "x-api-key",
            HeaderValue::from_str(&"k".repeat(5000)).unwrap(),
        );
        let s = subject(&h, &route, "192.0.2.1");
        assert!(Limited::new(set.clone())
            .check(Phase::BeforeAuth, &s)
            .is_ok());
        assert!(Limited::new(set.clone())
            .check(Phase::BeforeAuth, &s)
            .is_err());
        assert!(matches!(
            bucket_key(&p.def.key, &s),
            BucketKey::HeaderDigest(_)
        ));
        assert_eq!(
            client_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            client_key("2001:db8:1:2:ffff::9".parse().unwrap())
        );
        assert_ne!(
            client_key("2001:db8:1:2::1".parse().unwrap()),
            client_key("2001:db8:1:3::1".parse().unwrap())
        );
        assert_eq!(
            client_key("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn keys_are_capped_least_recently_used_first() {
        let p = policy("ip", 1, 1, LimitKey::ClientIp);
        let (h, route) = (HeaderMap::new(), Arc::<str>::from("r"));
        let set: Arc<[Arc<Policy>]> = Arc::from(vec![p.clone()]);
        for i in 0..(MAX_KEYS + 5_000) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0A00_0000 + i as u32));
            let s = Subject {
                client: ip,
                ..subject(&h, &route, "192.0.2.1")
            };
            let _ = Limited::new(set.clone()).check(Phase::BeforeAuth, &s);
        }
        assert!(p.keys() <= MAX_KEYS, "{}", p.keys());
    }
}
