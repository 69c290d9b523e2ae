//! The identity service's wire format, for tests: a config with the
//! built-in endpoints and helpers that call them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::{Client, Gateway, Reply, Yaml};

pub const PASSWORD: &str = "Tr0ub4dor&3x-horse";

/// A gateway config with the built-in endpoints, a fast bcrypt cost and
/// two echo routes, `pub` (`/pub/*`, public) and `me` (`/me`, any token).
pub fn auth_config() -> Yaml {
    Yaml::new()
        .set("log.access", "false")
        .set("auth.store", "data/users.redb")
        .set("auth.issuer", "test-issuer")
        .set("auth.bcrypt_cost", "4")
        .set("auth.default_scopes", "[items:read, profile]")
        .set("auth.access_token.ttl", "15m")
        .set("auth.refresh_token.ttl", "7d")
        .route("pub", r#"path: "/pub/*", echo: true, auth: none"#)
        .route("me", "path: /me, echo: true")
}

/// `auth_config` with a small sign-in limit (3 failures a minute).
pub async fn gateway() -> Gateway {
    Gateway::start(auth_config().set("auth.signin_limit", "{ failures: 3, window: 1m }")).await
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
