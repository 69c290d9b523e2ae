//! `auth`: the user store, token keys and the identity service's settings.
//! The store's folder and the key files are only named here; the loading
//! step (`crate::load`) checks them.

use std::time::Duration;

use crate::config::model::{
    is_scope_token, Algorithm, Auth, PostgresUrl, Rate, ResetWebhook, SigninLimit, SslMode,
    StoreLocation, TokenKeys,
};
use crate::config::raw;

use super::Validator;

impl Validator<'_> {
    pub(super) fn auth(&mut self, a: raw::Auth) -> Auth {
        let store = self.store(a.store.as_deref().unwrap_or(Auth::DEFAULT_STORE));
        if a.access_token
            .as_ref()
            .is_some_and(|t| t.reuse_interval.is_some())
        {
            self.err(
                "auth.access_token.reuse_interval",
                "`reuse_interval` belongs to `refresh_token`",
            );
        }
        let access_token = self.token_keys(
            "auth.access_token",
            a.access_token.unwrap_or_default(),
            TokenKeys::ACCESS_TTL,
            true,
        );
        let mut refresh = a.refresh_token.unwrap_or_default();
        let reuse_interval = self.reuse_interval(refresh.reuse_interval.take());
        let refresh_token =
            self.token_keys("auth.refresh_token", refresh, TokenKeys::REFRESH_TTL, false);
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
        let mut reset = a.password_reset.unwrap_or_default();
        let resend = reset.resend_interval.take();
        Auth {
            store,
            issuer: a.issuer.unwrap_or_else(|| Auth::DEFAULT_ISSUER.to_string()),
            access_token,
            refresh_token,
            bcrypt_cost,
            cache_ttl: self.duration("auth.cache_ttl", a.cache_ttl, Auth::DEFAULT_CACHE_TTL),
            cache_capacity: a.cache_capacity.unwrap_or(Auth::DEFAULT_CACHE_CAPACITY),
            default_scopes: self.scopes("auth.default_scopes", a.default_scopes),
            signin_limit,
            leeway,
            reset_ttl: self.duration(
                "auth.password_reset.ttl",
                reset.ttl,
                Auth::DEFAULT_RESET_TTL,
            ),
            reset_webhook: self.reset_webhook(reset.webhook, reset.webhook_secret, resend),
            reuse_interval,
            endpoint_limit: match a.endpoint_limit {
                None => Some(Rate::ENDPOINT_DEFAULT),
                Some(raw::OffOr::Off) => None,
                Some(raw::OffOr::On(r)) => self.rate("auth.endpoint_limit", &r.rate, r.burst),
            },
        }
    }

    fn reuse_interval(&mut self, text: Option<String>) -> Duration {
        const PATH: &str = "auth.refresh_token.reuse_interval";
        let interval = self.duration(PATH, text, Duration::ZERO);
        if interval > Auth::MAX_REUSE_INTERVAL {
            let most = Auth::MAX_REUSE_INTERVAL.as_secs();
            self.err(PATH, format!("reuse_interval is at most {most}s"));
        }
        interval
    }

    /// `webhook` and `webhook_secret` come together or not at all.
    fn reset_webhook(
        &mut self,
        url: Option<String>,
        secret: Option<String>,
        resend: Option<String>,
    ) -> Option<ResetWebhook> {
        const PATH: &str = "auth.password_reset";
        let resend_interval = self.duration(
            "auth.password_reset.resend_interval",
            resend,
            ResetWebhook::DEFAULT_RESEND_INTERVAL,
        );
        let (url, secret) = match (url, secret) {
            (None, None) => return None,
            (Some(url), Some(secret)) => (url, secret),
            (Some(_), None) => {
                self.err(
                    PATH,
                    "`webhook` needs `webhook_secret` (>= 32 bytes) to sign its deliveries",
                );
                return None;
            }
            (None, Some(_)) => {
                self.err(
                    PATH,
                    "`webhook_secret` without `webhook`: set both or neither",
                );
                return None;
            }
        };
        let least = ResetWebhook::MIN_SECRET_BYTES;
        if secret.len() < least {
            self.err(
                "auth.password_reset.webhook_secret",
                format!("a webhook secret must be at least {least} bytes"),
            );
        }
        let url = match url.parse::<http::Uri>() {
            Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => u,
            _ => {
                self.err(
                    "auth.password_reset.webhook",
                    format!("{url:?} is not an http:// or https:// URL with a host"),
                );
                return None;
            }
        };
        Some(ResetWebhook {
            url,
            secret: secret.into_bytes(),
            resend_interval,
        })
    }

    /// A list of scopes, each an RFC 6749 scope-token.
    pub(super) fn scopes(&mut self, path: &str, scopes: Option<Vec<String>>) -> Vec<String> {
        let scopes = scopes.unwrap_or_default();
        for (i, s) in scopes.iter().enumerate() {
            if !is_scope_token(s) {
                self.err(
                    &format!("{path}[{i}]"),
                    format!("{s:?} is not a scope: 1 to 128 visible ASCII characters, without spaces, `\"` or `\\`"),
                );
            }
        }
        scopes
    }

    /// A PostgreSQL URL, checked without connecting, or else a file path.
    fn store(&mut self, text: &str) -> StoreLocation {
        const PATH: &str = "auth.store";
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return StoreLocation::File(self.file_ref(PATH, text));
        }
        match postgres_url(text) {
            Ok(url) => StoreLocation::Postgres(Box::new(url)),
            Err(message) => {
                self.err(PATH, message);
                // A placeholder keeps the other checks going; the error stops start-up.
                StoreLocation::Postgres(Box::new(PostgresUrl {
                    config: tokio_postgres::Config::new(),
                    sslmode: SslMode::Disable,
                    shown: redact(text),
                }))
            }
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

/// Parses a libpq URL. `sslmode` is taken out first (tokio-postgres knows
/// no `verify-full`); the error texts never contain the password.
fn postgres_url(text: &str) -> Result<PostgresUrl, String> {
    let shown = redact(text);
    let (base, query) = text.split_once('?').unwrap_or((text, ""));
    let mut sslmode = SslMode::Disable;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => {
                sslmode = match v {
                    "disable" => SslMode::Disable,
                    "require" => SslMode::Require,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(format!(
                        "sslmode {other:?} is not supported; use disable, require or verify-full"
                    ))
                    }
                }
            }
            _ => kept.push(pair),
        }
    }
    let rest = match kept.is_empty() {
        true => base.to_string(),
        false => format!("{base}?{}", kept.join("&")),
    };
    let config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e| format!("not a valid PostgreSQL URL ({shown}): {e}"))?;
    if config.get_hosts().is_empty() {
        return Err(format!("the URL names no host: {shown}"));
    }
    if config.get_dbname().is_none() {
        return Err(format!(
            "the URL names no database (postgres://user@host/DATABASE): {shown}"
        ));
    }
    Ok(PostgresUrl {
        config,
        sslmode,
        shown,
    })
}

/// The URL with the password of its userinfo replaced by `***`; a
/// `password=` parameter too.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority_end, _) = rest
        .char_indices()
        .find(|(_, c)| *c == '/' || *c == '?')
        .unwrap_or((rest.len(), ' '));
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some(("password", _)) => "password=***".to_string(),
                    _ => p.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_wherever_the_url_holds_them() {
        assert_eq!(
            redact("postgres://gw:s3cret@db.internal:5432/gateway?sslmode=require"),
            "postgres://gw:***@db.internal:5432/gateway?sslmode=require"
        );
        assert_eq!(
            redact("postgresql://db/gw?user=a&password=s3cret"),
            "postgresql://db/gw?user=a&password=***"
        );
        assert_eq!(redact("postgres://gw@db/x"), "postgres://gw@db/x");
    }

    #[test]
    fn sslmode_is_one_of_three_and_the_rest_goes_to_tokio_postgres() {
        let u =
            postgres_url("postgres://gw:pw@127.0.0.1:5433/g?sslmode=verify-full&connect_timeout=3")
                .unwrap();
        assert_eq!(u.sslmode, SslMode::VerifyFull);
        assert_eq!(u.config.get_dbname(), Some("g"));
        assert_eq!(u.config.get_ports(), [5433]);
        let e = postgres_url("postgres://gw:pw@h/g?sslmode=prefer").unwrap_err();
        assert!(e.contains("disable, require or verify-full"), "{e}");
        let e = postgres_url("postgres://gw:pw@h").unwrap_err();
        assert!(e.contains("no database") && !e.contains("pw@"), "{e}");
        let e = postgres_url("postgres://gw:pw@h/g?bogus=1").unwrap_err();
        assert!(!e.contains(":pw@"), "{e}");
    }
}
