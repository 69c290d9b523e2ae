//! The identity service's wire format, for tests: a config with the
//! built-in endpoints and helpers that call them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::{Backend, Client, Gateway, Reply, Yaml};

pub const PASSWORD: &str = "Tr0ub4dor&3x-horse";

/// A gateway config with the built-in endpoints, a fast bcrypt cost and
/// two echo routes, `pub` (`/pub/*`, public) and `me` (`/me`, any token).
pub fn auth_config() -> Yaml {
    auth_config_on(Backend::Redb)
}

/// `auth_config` on a new, empty store of `backend`.
pub fn auth_config_on(backend: Backend) -> Yaml {
    auth_config_at(&backend.store())
}

/// `auth_config` on the store at `store` (a path or a PostgreSQL URL).
pub fn auth_config_at(store: &str) -> Yaml {
    Yaml::new()
        .set("log.access", "false")
        .set("auth.store", &format!("{store:?}"))
        .set("auth.issuer", "test-issuer")
        .set("auth.bcrypt_cost", "4")
        .set("auth.default_scopes", "[items:read, profile]")
        .set("auth.access_token.ttl", "15m")
        .set("auth.refresh_token.ttl", "7d")
        // Tests sign up and in far faster than a person; the endpoint
        // limit has tests of its own.
        .set("auth.endpoint_limit", "off")
        .route("pub", r#"path: "/pub/*", echo: true, auth: none"#)
        .route("me", "path: /me, echo: true")
}

/// `auth_config` with a small sign-in limit (3 failures a minute), on a
/// new, empty store of `backend`.
pub async fn gateway_on(backend: Backend) -> Gateway {
    Gateway::start(auth_config_on(backend).set("auth.signin_limit", "{ failures: 3, window: 1m }"))
        .await
}

pub fn user(email: &str) -> Value {
    json!({"email": email, "password": PASSWORD, "firstName": "Ann", "lastName": "Lee"})
}

pub async fn post(c: &Client, path: &str, body: &Value) -> Reply {
    c.post(path).body(body.to_string()).send().await
}

pub async fn signup(c: &Client, email: &str) -> (String, String) {
    let r = post(c, "/signup", &user(email)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    tokens(&r)
}

pub async fn signin(c: &Client, email: &str, password: &str) -> Reply {
    post(c, "/signin", &json!({"email": email, "password": password})).await
}

/// (access_token, refresh_token) of a success body, after checking its shape.
pub fn tokens(r: &Reply) -> (String, String) {
    let j = r.json();
    assert_eq!(j["success"], true, "{j}");
    let data = j["data"].as_object().unwrap();
    assert_eq!(data.len(), 2, "{j}");
    (
        data["access_token"].as_str().unwrap().to_string(),
        data["refresh_token"].as_str().unwrap().to_string(),
    )
}

/// A JWT's payload, unverified.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A JWT's header, unverified.
pub fn jwt_header(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

// Minting: every token a test makes itself, well formed or forged, comes
// from `mint` (or `hs256`, its common case).

/// Seconds since the Unix epoch, for `iat`, `exp` and `nbf`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What a minted token is signed with.
#[derive(Clone, Copy)]
pub enum Key<'a> {
    /// Nothing: `header.payload.` with an empty signature.
    Unsigned,
    /// HMAC over these secret bytes: SHA-384 or SHA-512 when the header's
    /// `alg` is HS384 or HS512, SHA-256 whatever else it says.
    Secret(&'a [u8]),
    /// A private key in PEM, for the header's `alg`: EdDSA, ES256 or RS256.
    Pem(&'a [u8]),
}

/// The base64 alphabet of a minted token's parts: JWS's URL-safe one
/// without padding, or one a forger might try instead.
#[derive(Clone, Copy)]
pub enum Base64 {
    Url,
    UrlPadded,
    Standard,
}

impl Base64 {
    fn encode(self, bytes: &[u8]) -> String {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        match self {
            Base64::Url => URL_SAFE_NO_PAD.encode(bytes),
            Base64::UrlPadded => URL_SAFE.encode(bytes),
            Base64::Standard => STANDARD.encode(bytes),
        }
    }
}

/// A JWT from its header and payload JSON exactly as written (duplicate
/// keys, odd spacing and all), signed with `key`.
pub fn mint(header: &str, payload: &str, key: Key) -> String {
    mint_encoded(header, payload, key, Base64::Url)
}

/// `mint` with its three parts in another base64 alphabet.
pub fn mint_encoded(header: &str, payload: &str, key: Key, b64: Base64) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey};
    let input = format!(
        "{}.{}",
        b64.encode(header.as_bytes()),
        b64.encode(payload.as_bytes())
    );
    let alg = serde_json::from_str::<Value>(header)
        .ok()
        .and_then(|h| h["alg"].as_str().map(str::to_string))
        .unwrap_or_default();
    let (key, alg) = match key {
        Key::Unsigned => return format!("{input}."),
        Key::Secret(secret) => (
            EncodingKey::from_secret(secret),
            match alg.as_str() {
                "HS384" => Algorithm::HS384,
                "HS512" => Algorithm::HS512,
                _ => Algorithm::HS256,
            },
        ),
        Key::Pem(pem) => match alg.as_str() {
            "EdDSA" => (EncodingKey::from_ed_pem(pem).unwrap(), Algorithm::EdDSA),
            "ES256" => (EncodingKey::from_ec_pem(pem).unwrap(), Algorithm::ES256),
            "RS256" => (EncodingKey::from_rsa_pem(pem).unwrap(), Algorithm::RS256),
            other => panic!("mint: no PEM signing for alg {other:?}"),
        },
    };
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, alg).unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    format!("{input}.{}", b64.encode(&sig))
}

/// An HS256 token carrying `claims`, signed with `secret`.
pub fn hs256(claims: &Value, secret: &str) -> String {
    mint(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &claims.to_string(),
        Key::Secret(secret.as_bytes()),
    )
}

/// `token` with its payload replaced by `claims` and its header and
/// signature kept (a tampered token).
pub fn with_payload(token: &str, claims: &Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    parts.join(".")
}
