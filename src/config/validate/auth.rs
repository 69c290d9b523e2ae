//! `auth`: the user store, token keys and the identity service's settings.
//! The store's folder and the key files are only named here; the loading
//! step (`crate::load`) checks them.

use std::time::Duration;

use crate::config::model::{Algorithm, Auth, SigninLimit, TokenKeys};
use crate::config::raw;

use super::Validator;

impl Validator<'_> {
    pub(super) fn auth(&mut self, a: raw::Auth) -> Auth {
        let store = self.file_ref(
            "auth.store",
            a.store.as_deref().unwrap_or(Auth::DEFAULT_STORE),
        );
        let access_token = self.token_keys(
            "auth.access_token",
            a.access_token.unwrap_or_default(),
            TokenKeys::ACCESS_TTL,
            true,
        );
        let refresh_token = self.token_keys(
            "auth.refresh_token",
            a.refresh_token.unwrap_or_default(),
            TokenKeys::REFRESH_TTL,
            false,
        );
        if access_token.secret.is_some() && access_token.secret == refresh_token.secret {
            self.err(
                "auth.refresh_token.secret",
                "the refresh secret must differ from the access secret",
            );
        }
        let bcrypt_cost = a.bcrypt_cost.unwrap_or(Auth::DEFAULT_BCRYPT_COST);
        if !Auth::BCRYPT_COSTS.contains(&bcrypt_cost) {
            let (low, high) = Auth::BCRYPT_COSTS.into_inner();
            self.err(
                "auth.bcrypt_cost",
                format!("{bcrypt_cost} is out of range; bcrypt cost is {low}..={high}"),
            );
        }
        let leeway = self.duration("auth.leeway", a.leeway, Auth::DEFAULT_LEEWAY);
        if leeway > Auth::MAX_LEEWAY {
            let most = Auth::MAX_LEEWAY.as_secs();
            self.err("auth.leeway", format!("leeway is at most {most}s"));
        }
        let signin_limit = match a.signin_limit {
            None => SigninLimit::DEFAULT,
            Some(l) => SigninLimit {
                failures: l.failures,
                window: self.duration(
                    "auth.signin_limit.window",
                    Some(l.window),
                    SigninLimit::DEFAULT.window,
                ),
            },
        };
        Auth {
            store,
            issuer: a.issuer.unwrap_or_else(|| Auth::DEFAULT_ISSUER.to_string()),
            access_token,
            refresh_token,
            bcrypt_cost,
            cache_ttl: self.duration("auth.cache_ttl", a.cache_ttl, Auth::DEFAULT_CACHE_TTL),
            cache_capacity: a.cache_capacity.unwrap_or(Auth::DEFAULT_CACHE_CAPACITY),
            default_scopes: a.default_scopes.unwrap_or_default(),
            signin_limit,
            leeway,
        }
    }

    fn token_keys(
        &mut self,
        path: &str,
        t: raw::Token,
        default_ttl: Duration,
        asymmetric_allowed: bool,
    ) -> TokenKeys {
        let algorithm = match t.algorithm.as_deref() {
            None | Some("HS256") => Algorithm::HS256,
            Some("EdDSA") if asymmetric_allowed => Algorithm::EdDSA,
            Some("ES256") if asymmetric_allowed => Algorithm::ES256,
            Some("RS256") if asymmetric_allowed => Algorithm::RS256,
            Some(other) => {
                let allowed = if asymmetric_allowed {
                    "HS256, EdDSA, ES256 or RS256"
                } else {
                    "HS256 (refresh tokens are only read by the gateway)"
                };
                self.err(
                    &format!("{path}.algorithm"),
                    format!("unknown algorithm {other:?}; expected {allowed}"),
                );
                Algorithm::HS256
            }
        };
        let secret = t.secret.filter(|s| !s.is_empty()).map(String::into_bytes);
        let least = TokenKeys::MIN_SECRET_BYTES;
        if secret.as_ref().is_some_and(|s| s.len() < least) {
            self.err(
                &format!("{path}.secret"),
                format!(
                    "a secret must be at least {least} bytes ({} bits)",
                    least * 8
                ),
            );
        }
        let private_key = t
            .private_key
            .map(|p| self.file_ref(&format!("{path}.private_key"), &p));
        match (algorithm, &secret, &private_key) {
            (Algorithm::HS256, _, Some(_)) => self.err(
                &format!("{path}.private_key"),
                "HS256 uses `secret`, not `private_key`",
            ),
            (Algorithm::HS256, _, None) => {}
            (_, Some(_), _) => self.err(
                &format!("{path}.secret"),
                "asymmetric algorithms use `private_key`, not `secret`",
            ),
            (_, None, None) => {
                self.err(path, "asymmetric algorithms need `private_key: PATH` (PEM)")
            }
            (_, None, Some(_)) => {}
        }
        let previous_keys = t.previous_keys.unwrap_or_default();
        TokenKeys {
            algorithm,
            secret,
            private_key,
            previous_keys: previous_keys
                .iter()
                .enumerate()
                .map(|(i, p)| self.file_ref(&format!("{path}.previous_keys[{i}]"), p))
                .collect(),
            ttl: self.duration(&format!("{path}.ttl"), t.ttl, default_ttl),
        }
    }
}
