//! The authorizer (docs/authorizer.md), in process: the bearer token from the
//! `Authorization` header is verified once (algorithm pinned by config,
//! `iss`, `exp`/`nbf` with leeway, `token_use`, required claims), its
//! principal is cached by a hash of the token, and on every request, cached or
//! not, the principal's expiry, its session's revocation and the route's
//! scopes are checked.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use moka::sync::Cache;
use moka::Expiry;

use super::jwt::{now_unix, Rules};
use super::principal::Principal;
use super::revoked::Revoked;
use crate::auth::jwt::SigningKeys;
use crate::http::headers;
use crate::telemetry::metrics::Metrics;

/// Why a request was not authorized (401 or 403, docs/authorizer.md).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header, another scheme, or `Bearer` with no token.
    #[error("this route requires a bearer token")]
    MissingToken,
    #[error("the bearer token is invalid, expired or revoked")]
    InvalidToken,
    /// The keys are generated and kept in a database not reached yet.
    #[error("user store unavailable")]
    StoreUnavailable,
    /// The route's required scopes, space separated.
    #[error("the token lacks a scope this route requires: {0}")]
    InsufficientScope(String),
}

/// Longer tokens are refused before any work (ours are ~600 bytes).
const MAX_TOKEN_BYTES: usize = 4096;
/// Invalid tokens are remembered this long, in a cache of their own so a
/// flood of garbage cannot evict valid principals.
const INVALID_TTL: Duration = Duration::from_secs(10);
const INVALID_CAPACITY: u64 = 10_000;

/// A token's cache key: SipHash-2-4 with a 128-bit output under a key drawn
/// when the authorizer is made. A keyed PRF nobody outside the process can
/// compute or observe, so a forged token shares a valid one's entry with
/// probability 2^-128 per try; a fifth of the cost of the SHA-256 it
/// replaced, which was 20 % of a cached request's instructions.
type TokenHash = u128;

pub struct Authorizer {
    keys: Arc<SigningKeys>,
    /// The cache key's key (`TokenHash`).
    hash_key: [u8; 16],
    validation: Rules,
    leeway: u64,
    valid: Cache<TokenHash, Arc<Principal>>,
    invalid: Cache<TokenHash, ()>,
    revoked: Arc<Revoked>,
    metrics: Arc<Metrics>,
}

pub struct Settings<'a> {
    pub issuer: &'a str,
    pub keys: Arc<SigningKeys>,
    pub leeway: Duration,
    pub cache_ttl: Duration,
    pub cache_capacity: u64,
}

/// A valid principal lives in the cache for `min(cache_ttl, time to exp)`.
struct UntilExpiry {
    cache_ttl: Duration,
}

impl Expiry<TokenHash, Arc<Principal>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _: &TokenHash,
        p: &Arc<Principal>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        let left = Duration::from_secs(p.exp.saturating_sub(now_unix()));
        Some(self.cache_ttl.min(left))
    }
}

impl Authorizer {
    /// Fails only when the OS random source does (the cache key's key).
    pub fn new(
        s: Settings<'_>,
        revoked: Arc<Revoked>,
        metrics: Arc<Metrics>,
    ) -> Result<Authorizer, getrandom::Error> {
        let mut hash_key = [0u8; 16];
        getrandom::fill(&mut hash_key)?;
        Ok(Authorizer {
            hash_key,
            validation: s.keys.validation(s.issuer, s.leeway.as_secs()),
            keys: s.keys,
            leeway: s.leeway.as_secs(),
            valid: Cache::builder()
                .max_capacity(s.cache_capacity)
                .expire_after(UntilExpiry {
                    cache_ttl: s.cache_ttl,
                })
                .build(),
            invalid: Cache::builder()
                .max_capacity(INVALID_CAPACITY)
                .time_to_live(INVALID_TTL)
                .build(),
            revoked,
            metrics,
        })
    }

    /// The principal of the request's bearer token, if it may use a route
    /// requiring `scopes`.
    pub fn authorize(
        &self,
        headers: &HeaderMap,
        scopes: &[String],
    ) -> Result<Arc<Principal>, AuthError> {
        self.authorize_at(headers, scopes, now_unix())
    }

    /// `authorize` with the clock read by the caller (tests move it on).
    fn authorize_at(
        &self,
        headers: &HeaderMap,
        scopes: &[String],
        now: u64,
    ) -> Result<Arc<Principal>, AuthError> {
        let token = bearer_token(headers)?;
        let principal = self.principal(token)?;
        if principal.exp.saturating_add(self.leeway) <= now || self.revoked.contains(&principal.sid)
        {
            return Err(AuthError::InvalidToken);
        }
        if !principal.has_all(scopes) {
            return Err(AuthError::InsufficientScope(scopes.join(" ")));
        }
        Ok(principal)
    }

    /// Verified principal from the cache, or verify and cache the outcome.
    fn principal(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        let key = token_hash(&self.hash_key, token);
        if let Some(p) = self.valid.get(&key) {
            self.metrics.authorizer_cache_hits.inc();
            return Ok(p);
        }
        self.metrics.authorizer_cache_misses.inc();
        if self.invalid.contains_key(&key) {
            return Err(AuthError::InvalidToken);
        }
        match self.verify(token) {
            Some(p) => {
                let p = Arc::new(p);
                self.valid.insert(key, p.clone());
                Ok(p)
            }
            None => {
                self.invalid.insert(key, ());
                Err(AuthError::InvalidToken)
            }
        }
    }

    fn verify(&self, token: &str) -> Option<Principal> {
        let claims: super::principal::AccessClaims = self.keys.verify(token, &self.validation)?;
        if claims.token_use != "access" {
            return None;
        }
        Principal::from_claims(claims)
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
/// No header, another scheme or an empty token: 401 without `error`; several
/// `Authorization` headers, or a token that cannot be one: `invalid_token`.
fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(&headers::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::MissingToken)?;
    if values.next().is_some() {
        return Err(AuthError::InvalidToken);
    }
    let value = value.to_str().map_err(|_| AuthError::InvalidToken)?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingToken);
    }
    let token = token.trim_matches(' ');
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    if token.len() > MAX_TOKEN_BYTES || !token.bytes().all(is_token_byte) {
        return Err(AuthError::InvalidToken);
    }
    Ok(token)
}

/// base64url, and the base64 and token68 extras (`~+/=`).
fn is_token_byte(b: u8) -> bool {
    matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

fn token_hash(key: &[u8; 16], token: &str) -> TokenHash {
    use std::hash::Hasher;
    let mut h = siphasher::sip128::SipHasher24::new_with_key(key);
    h.write(token.as_bytes());
    siphasher::sip128::Hasher128::finish128(&h).as_u128()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"unit-test-access-secret-0123456789abcdef";

    fn authorizer(leeway: u64) -> Authorizer {
        let keys = Arc::new(SigningKeys::hs256(SECRET));
        let settings = Settings {
            issuer: "gateway",
            keys,
            leeway: Duration::from_secs(leeway),
            cache_ttl: Duration::from_secs(300),
            cache_capacity: 100,
        };
        Authorizer::new(
            settings,
            Arc::new(Revoked::new([])),
            Arc::new(Metrics::new()),
        )
        .expect("the OS random source works")
    }

    fn bearer(exp: u64) -> HeaderMap {
        let now = now_unix();
        let claims = json!({
            "sub": "u1", "email": "a@example.com", "firstName": "A", "lastName": "B",
            "scope": "items:read", "sid": "s1", "iss": "gateway", "iat": now,
            "exp": exp, "jti": "j1", "token_use": "access",
        });
        let token = SigningKeys::hs256(SECRET).sign(&claims).unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            &headers::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn a_cached_principal_is_refused_once_its_exp_passes() {
        let a = authorizer(0);
        let now = now_unix();
        let h = bearer(now + 2);
        assert!(a.authorize_at(&h, &[], now).is_ok(), "verified and cached");
        assert!(
            a.authorize_at(&h, &[], now + 1).is_ok(),
            "still valid from cache"
        );
        assert_eq!(
            a.authorize_at(&h, &[], now + 2).err(),
            Some(AuthError::InvalidToken)
        );
        assert_eq!(
            a.metrics.authorizer_cache_hits.get(),
            2,
            "both later looks were cache hits"
        );
    }

    #[test]
    fn leeway_extends_a_cached_principal_by_that_much_only() {
        let a = authorizer(5);
        let now = now_unix();
        let h = bearer(now + 2);
        assert!(a.authorize_at(&h, &[], now).is_ok());
        assert!(
            a.authorize_at(&h, &[], now + 6).is_ok(),
            "exp + leeway not reached"
        );
        assert_eq!(
            a.authorize_at(&h, &[], now + 7).err(),
            Some(AuthError::InvalidToken)
        );
    }

    #[test]
    fn a_revoked_session_is_refused_from_cache() {
        let a = authorizer(0);
        let now = now_unix();
        let h = bearer(now + 60);
        assert!(a.authorize_at(&h, &[], now).is_ok());
        a.revoked.insert("s1");
        assert_eq!(
            a.authorize_at(&h, &[], now).err(),
            Some(AuthError::InvalidToken)
        );
    }

    #[test]
    fn scopes_are_checked_on_the_cached_principal_per_route() {
        let a = authorizer(0);
        let now = now_unix();
        let h = bearer(now + 60);
        assert!(a.authorize_at(&h, &["items:read".into()], now).is_ok());
        assert_eq!(
            a.authorize_at(&h, &["items:write".into()], now).err(),
            Some(AuthError::InsufficientScope("items:write".into()))
        );
    }
}
