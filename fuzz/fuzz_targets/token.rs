//! Bearer-token verification: whatever the `Authorization` header holds, the
//! authorizer answers with a principal or a 401-kind error (403 only when a
//! scope is required), never a panic.
//!
//! Two authorizers are built once: HS256 with a fixed secret (the default
//! access-token setup) and EdDSA with a fixed test key (the `kid` lookup of
//! asymmetric keys). The committed seeds in fuzz/seeds/token are signed with
//! these same keys (fuzz/gen_token_seeds.py writes them), so the valid-token path
//! is reachable. Input: the token bytes, tried as `Bearer <input>`, as the
//! raw header value, with a duplicated header, and directly against the keys.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use gateway::auth::principal::AccessClaims;
use gateway::auth::{AuthError, Authorizer, Principal, Revoked, Settings};
use gateway::config::Algorithm;
use gateway::auth::jwt::now_unix;
use gateway::auth::jwt::SigningKeys;
use gateway::telemetry::metrics::Metrics;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

/// Test-only HS256 secret (also in fuzz/gen_token_seeds.py).
const HS256_SECRET: &[u8] = b"gateway-fuzz-hs256-secret-0123456789abcdef";
/// Test-only Ed25519 private key seed: bytes 0x00..0x1f.
const ED25519_SEED: [u8; 32] = {
    let mut s = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        s[i] = i as u8;
        i += 1;
    }
    s
};
const ISSUER: &str = "gateway";
const LEEWAY: u64 = 60;
/// Seed tokens carry this `sid` to reach the revocation check.
const REVOKED_SID: &str = "revoked-session";

struct Target {
    authorizer: Authorizer,
    keys: Arc<SigningKeys>,
}

struct Targets {
    hs256: Target,
    eddsa: Target,
}

fn build(keys: SigningKeys, metrics: &Arc<Metrics>, revoked: &Arc<Revoked>) -> Target {
    let keys = Arc::new(keys);
    let authorizer = Authorizer::new(
        Settings {
            issuer: ISSUER,
            keys: keys.clone(),
            leeway: Duration::from_secs(LEEWAY),
            cache_ttl: Duration::from_secs(300),
            cache_capacity: 1000,
        },
        revoked.clone(),
        metrics.clone(),
    )
    .expect("the OS random source works");
    Target { authorizer, keys }
}

/// The EdDSA keys as `serve` loads them: from a PKCS#8 PEM.
fn eddsa_keys() -> SigningKeys {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&ED25519_SEED);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(&der)
    );
    SigningKeys::asymmetric(Algorithm::EdDSA, pem.as_bytes(), &[])
        .expect("load the fuzz EdDSA key")
}

fn targets() -> &'static Targets {
    static T: OnceLock<Targets> = OnceLock::new();
    T.get_or_init(|| {
        let metrics = Arc::new(Metrics::new());
        let revoked = Arc::new(Revoked::new([REVOKED_SID.to_string()]));
        Targets {
            hs256: build(SigningKeys::hs256(HS256_SECRET), &metrics, &revoked),
            eddsa: build(eddsa_keys(), &metrics, &revoked),
        }
    })
}

/// GATEWAY_FUZZ_VERBOSE=1: print each outcome (to check seeds, triage).
fn verbose() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| std::env::var_os("GATEWAY_FUZZ_VERBOSE").is_some())
}

fn check(result: Result<Arc<Principal>, AuthError>, scopes: &[String], what: &str) {
    match result {
        Ok(p) => {
            assert!(p.has_all(scopes), "{what}: principal lacks {scopes:?}");
            assert_ne!(p.sid, REVOKED_SID, "{what}: revoked session accepted");
            assert!(
                p.exp.saturating_add(LEEWAY) > now_unix(),
                "{what}: expired token accepted"
            );
        }
        Err(AuthError::MissingToken | AuthError::InvalidToken) => {}
        Err(AuthError::InsufficientScope(_)) if !scopes.is_empty() => {}
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

fn one(t: &Target, data: &[u8], name: &str) {
    let none: Vec<String> = Vec::new();
    let read = vec!["read".to_string()];

    let mut bearer = b"Bearer ".to_vec();
    bearer.extend_from_slice(data);
    let mut accepted = None;
    if let Ok(value) = HeaderValue::from_bytes(&bearer) {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, value.clone());
        let r = t.authorizer.authorize(&h, &none);
        if verbose() {
            eprintln!("{name}: Bearer <input> -> {:?}", r.as_ref().map(|p| &p.sub));
        }
        if let Ok(p) = &r {
            accepted = Some(p.sub.clone());
        }
        check(r, &none, name);
        check(t.authorizer.authorize(&h, &read), &read, name);
        // Several Authorization headers are always refused.
        h.append(AUTHORIZATION, value);
        match t.authorizer.authorize(&h, &none) {
            Err(AuthError::InvalidToken) => {}
            other => panic!(
                "{name}: two Authorization headers gave {:?}",
                other.map(|p| p.sid.clone())
            ),
        }
    }
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, value);
        check(t.authorizer.authorize(&h, &none), &none, name);
    }
    // The keys directly, bypassing the header checks and the caches.
    if let Ok(token) = std::str::from_utf8(data) {
        // As the authorizer sees it after `Bearer `.
        let token = token.trim_matches(' ');
        let validation = t.keys.validation(ISSUER, LEEWAY);
        let claims: Option<AccessClaims> = t.keys.verify(token, &validation);
        if let Some(sub) = accepted {
            // The authorizer accepted it, so the key must too.
            let claims = claims.unwrap_or_else(|| panic!("{name}: authorized but does not verify"));
            assert_eq!(
                &*sub,
                claims.sub.as_str(),
                "{name}: principal of another subject"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let t = targets();
    one(&t.hs256, data, "hs256");
    one(&t.eddsa, data, "eddsa");
});
