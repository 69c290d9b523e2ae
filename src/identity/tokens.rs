//! Issuing and checking the JWTs of the built-in endpoints (docs/identity.md). The algorithm is pinned
//! by configuration; a token's own header never chooses it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::records::{Session, User};
use crate::auth::jwt::{Rules, SignError, SigningKeys};

/// As issued; the authorizer reads them with its own, laxer struct
/// (`authorizer::principal::AccessClaims`: email and names optional).
#[derive(Debug, Serialize)]
pub struct AccessClaims {
    pub sub: String,
    pub email: String,
    #[serde(rename = "firstName")]
    pub first_name: String,
    #[serde(rename = "lastName")]
    pub last_name: String,
    /// Space separated; always present, possibly empty.
    pub scope: String,
    pub sid: String,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    pub token_use: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RefreshClaims {
    pub sub: String,
    pub sid: String,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    pub token_use: String,
}

/// A freshly issued pair, and what the session must remember of it.
pub struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub refresh_jti: String,
    pub refresh_exp: u64,
}

pub struct Tokens {
    issuer: String,
    access: Arc<SigningKeys>,
    refresh: SigningKeys,
    access_ttl: u64,
    refresh_ttl: u64,
    refresh_validation: Rules,
}

pub struct TokenSettings<'a> {
    pub issuer: &'a str,
    pub access: Arc<SigningKeys>,
    pub refresh_secret: &'a [u8],
    pub access_ttl: u64,
    pub refresh_ttl: u64,
    pub leeway: u64,
}

impl Tokens {
    pub fn new(s: TokenSettings<'_>) -> Tokens {
        let refresh = SigningKeys::hs256(s.refresh_secret);
        Tokens {
            issuer: s.issuer.to_string(),
            access: s.access,
            refresh_validation: refresh.validation(s.issuer, s.leeway),
            refresh,
            access_ttl: s.access_ttl,
            refresh_ttl: s.refresh_ttl,
        }
    }

    /// The `exp` of a refresh token issued at `now`.
    pub fn refresh_expiry(&self, now: u64) -> u64 {
        now + self.refresh_ttl
    }

    /// An access and a refresh token for `user` in session `sid`; the refresh
    /// token's `jti` is chosen by the caller, who may have stored it already.
    pub fn issue(
        &self,
        user: &User,
        sid: &str,
        refresh_jti: String,
        now: u64,
    ) -> Result<Issued, SignError> {
        let refresh = (refresh_jti, now, self.refresh_expiry(now));
        self.pair(user, sid, refresh, now)
    }

    /// Within `reuse_interval`: a fresh access token, and the session's
    /// current refresh token made again (its `jti`, `iat` and `exp`).
    pub fn reissue(
        &self,
        user: &User,
        sid: &str,
        session: &Session,
        now: u64,
    ) -> Result<Issued, SignError> {
        let iat = session.refreshed_at.unwrap_or(session.created_at);
        let refresh = (session.refresh_jti.clone(), iat, session.expires_at);
        self.pair(user, sid, refresh, now)
    }

    /// The refresh token is `(jti, iat, exp)`.
    fn pair(
        &self,
        user: &User,
        sid: &str,
        (jti, iat, exp): (String, u64, u64),
        now: u64,
    ) -> Result<Issued, SignError> {
        let access = AccessClaims {
            sub: user.id.clone(),
            email: user.email.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            scope: user.scopes.join(" "),
            sid: sid.to_string(),
            iss: self.issuer.clone(),
            iat: now,
            exp: now + self.access_ttl,
            jti: new_id(),
            token_use: "access".into(),
        };
        let refresh = RefreshClaims {
            sub: user.id.clone(),
            sid: sid.to_string(),
            iss: self.issuer.clone(),
            iat,
            exp,
            jti,
            token_use: "refresh".into(),
        };
        Ok(Issued {
            access_token: self.access.sign(&access)?,
            refresh_token: self.refresh.sign(&refresh)?,
            refresh_jti: refresh.jti,
            refresh_exp: refresh.exp,
        })
    }

    /// A refresh token's claims if its signature, algorithm, issuer, expiry
    /// and `token_use` are right; whether its session still accepts it is the
    /// store's question.
    pub fn verify_refresh(&self, token: &str) -> Option<RefreshClaims> {
        let claims: RefreshClaims = self.refresh.verify(token, &self.refresh_validation)?;
        (claims.token_use == "refresh").then_some(claims)
    }
}

/// A random UUID (v4), for user ids, session ids and `jti`s.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn tokens(access: &[u8], refresh: &[u8]) -> Tokens {
        Tokens::new(TokenSettings {
            issuer: "gw",
            access: Arc::new(SigningKeys::hs256(access)),
            refresh_secret: refresh,
            access_ttl: 60,
            refresh_ttl: 600,
            leeway: 0,
        })
    }

    fn user() -> User {
        User {
            id: new_id(),
            email: "a@x.io".into(),
            first_name: "A".into(),
            last_name: "B".into(),
            password_hash: String::new(),
            scopes: vec!["a".into(), "b:c".into()],
            disabled: false,
            created_at: 0,
            reset: None,
            reset_sent_at: None,
        }
    }

    #[test]
    fn issued_refresh_tokens_verify_and_access_tokens_do_not() {
        let t = tokens(&[1; 32], &[2; 32]);
        let now = crate::auth::jwt::now_unix();
        let issued = t.issue(&user(), "sid-1", new_id(), now).unwrap();
        let claims = t.verify_refresh(&issued.refresh_token).unwrap();
        assert_eq!(claims.sid, "sid-1");
        assert_eq!(claims.jti, issued.refresh_jti);
        assert_eq!(claims.exp, now + 600);
        // An access token is signed with the other key and says token_use access.
        assert!(t.verify_refresh(&issued.access_token).is_none());
    }

    #[test]
    fn refresh_tokens_of_another_key_or_issuer_fail() {
        let now = crate::auth::jwt::now_unix();
        let issued = tokens(&[1; 32], &[3; 32])
            .issue(&user(), "s", new_id(), now)
            .unwrap();
        assert!(tokens(&[1; 32], &[2; 32])
            .verify_refresh(&issued.refresh_token)
            .is_none());
        let mut other = tokens(&[1; 32], &[3; 32]);
        other.refresh_validation = other.refresh.validation("someone-else", 0);
        assert!(other.verify_refresh(&issued.refresh_token).is_none());
    }

    #[test]
    fn same_key_for_both_kinds_still_separates_them_by_token_use() {
        let t = tokens(&[1; 32], &[1; 32]);
        let issued = t
            .issue(&user(), "s", new_id(), crate::auth::jwt::now_unix())
            .unwrap();
        assert!(t.verify_refresh(&issued.access_token).is_none());
    }

    #[test]
    fn expired_refresh_tokens_fail() {
        let t = tokens(&[1; 32], &[2; 32]);
        let issued = t.issue(&user(), "s", new_id(), 1_000).unwrap();
        assert!(t.verify_refresh(&issued.refresh_token).is_none());
    }

    #[test]
    fn access_claims_have_the_spec_names() {
        let t = tokens(&[1; 32], &[2; 32]);
        let issued = t.issue(&user(), "s", new_id(), 1_000).unwrap();
        let payload = issued.access_token.split('.').nth(1).unwrap();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "sub",
                "email",
                "firstName",
                "lastName",
                "scope",
                "sid",
                "iss",
                "iat",
                "exp",
                "jti",
                "token_use"
            ]
        );
        assert_eq!(v["scope"], "a b:c");
    }
}
