//! Who a verified access token speaks for, with the identity headers made
//! once when the token is first verified and reused on every cache hit.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::http::headers::{X_PRINCIPAL_EMAIL, X_PRINCIPAL_ID, X_PRINCIPAL_SCOPES};

/// The claims an access token must carry (docs/authorizer.md): a missing one
/// fails deserialisation, and so does a duplicated one.
#[derive(Debug, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub sid: String,
    #[allow(dead_code)]
    pub iss: String,
    #[allow(dead_code)]
    pub iat: u64,
    pub exp: u64,
    #[allow(dead_code)]
    pub jti: String,
    pub token_use: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub scope: String,
}

#[derive(Debug)]
pub struct Principal {
    /// Shared with the access record of every request it makes.
    pub sub: Arc<str>,
    pub sid: String,
    pub exp: u64,
    pub scopes: Vec<String>,
    headers: [(HeaderName, HeaderValue); 3],
}

impl Principal {
    /// `None` when a claim cannot travel in a header (control characters).
    pub fn from_claims(c: AccessClaims) -> Option<Principal> {
        let headers = [
            (X_PRINCIPAL_ID.clone(), HeaderValue::from_str(&c.sub).ok()?),
            (
                X_PRINCIPAL_EMAIL.clone(),
                HeaderValue::from_str(c.email.as_deref().unwrap_or_default()).ok()?,
            ),
            (
                X_PRINCIPAL_SCOPES.clone(),
                HeaderValue::from_str(&c.scope).ok()?,
            ),
        ];
        Some(Principal {
            scopes: c.scope.split_whitespace().map(str::to_string).collect(),
            sub: Arc::from(c.sub),
            sid: c.sid,
            exp: c.exp,
            headers,
        })
    }

    /// Does the token carry every scope the route requires?
    pub fn has_all(&self, required: &[String]) -> bool {
        required.iter().all(|r| self.scopes.contains(r))
    }

    /// Sets the identity headers (client copies were already stripped).
    pub fn add_headers(&self, h: &mut HeaderMap) {
        for (name, value) in &self.headers {
            h.insert(name.clone(), value.clone());
        }
    }
}
