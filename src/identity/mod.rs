//! The built-in identity service (docs/identity.md): users and sessions in a
//! redb `store`, bcrypt `password`s, JWT `tokens` signed with `keys`, the
//! sign-in `throttle`, and the four `endpoints`. The `UserStore` is opened
//! once and lives as long as the process (its path needs a restart to
//! change); an `Identity` is built from each config version over it.

pub mod endpoints;
pub mod error;
pub mod input;
pub mod keys;
pub mod password;
pub mod records;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod users_cli;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::auth::jwt::SigningKeys;

use crate::auth::{self, Authorizer, Revoked};
use crate::config::{Algorithm, Auth};
use crate::telemetry::metrics::Metrics;
use password::Passwords;
use store::{Store, StoreError};
use throttle::Throttle;
use tokens::{TokenSettings, Tokens};

pub use error::AccountError;

/// Store calls running at once on blocking threads. redb runs one write
/// transaction at a time anyway; this keeps a burst from parking hundreds of
/// blocking threads on its lock.
const STORE_CONCURRENCY: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    #[error("bcrypt: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
    #[error("auth.{0}.algorithm: refresh tokens are HS256 only (only the gateway reads them)")]
    Algorithm(&'static str),
    #[error("auth.access_token: {0:?} keys were not loaded from `private_key`")]
    NoKeys(Algorithm),
}

/// What outlives a reload: the open store (changing its path needs a
/// restart) and the revoked-session set loaded from it.
pub struct UserStore {
    pub path: PathBuf,
    store: Arc<Store>,
    permits: Arc<Semaphore>,
    /// Sessions revoked while their access tokens may still be alive.
    revoked: Arc<Revoked>,
}

impl UserStore {
    /// Opens (or creates) the store. Blocking: call it off the runtime.
    pub fn open(path: &Path) -> Result<UserStore, IdentityError> {
        let store = Store::open(path)?;
        let revoked = Arc::new(Revoked::new(store.revoked_sessions()?));
        Ok(UserStore {
            path: path.to_path_buf(),
            store: Arc::new(store),
            permits: Arc::new(Semaphore::new(STORE_CONCURRENCY)),
            revoked,
        })
    }
}

/// The identity service as one config describes it, over the open store;
/// a reload builds a new one.
pub struct Identity {
    /// Verifies the access tokens this service issues, on protected routes.
    pub authorizer: Authorizer,
    users: Arc<UserStore>,
    /// Served as the JWK set.
    access_keys: Arc<SigningKeys>,
    tokens: Tokens,
    passwords: Arc<Passwords>,
    throttle: Arc<Throttle>,
    default_scopes: Vec<String>,
    /// Seconds a session is kept after its refresh token expired: longer
    /// than any access token issued from it lives.
    purge_grace: u64,
    metrics: Arc<Metrics>,
}

impl Identity {
    /// Sets up the service over `users` with the access-token keys the
    /// loading step read (`access_keys`, for asymmetric algorithms), or else
    /// the HS256 secrets: configured, or generated once beside the store.
    /// `previous` (on reload) lends its sign-in throttle when the limit is
    /// unchanged, so a reload forgets no failed attempt, and its hasher when
    /// the cost is unchanged. The decision cache always starts empty, so new
    /// keys, issuer or leeway apply to every token at once. Blocking (the
    /// generated secrets, the dummy hash): call it off the runtime.
    pub fn build(
        auth: &Auth,
        access_keys: Option<Arc<SigningKeys>>,
        users: Arc<UserStore>,
        metrics: Arc<Metrics>,
        previous: Option<&Identity>,
    ) -> Result<Identity, IdentityError> {
        if auth.refresh_token.algorithm != Algorithm::HS256 {
            return Err(IdentityError::Algorithm("refresh_token"));
        }
        let access = match (access_keys, auth.access_token.algorithm) {
            (Some(keys), _) => keys,
            (None, Algorithm::HS256) => Arc::new(SigningKeys::hs256(&keys::secret(
                auth.access_token.secret.as_deref(),
                &users.path,
                "access",
            )?)),
            (None, alg) => return Err(IdentityError::NoKeys(alg)),
        };
        let refresh = keys::secret(auth.refresh_token.secret.as_deref(), &users.path, "refresh")?;
        let leeway = auth.leeway.as_secs();
        let tokens = Tokens::new(TokenSettings {
            issuer: &auth.issuer,
            access: access.clone(),
            refresh_secret: &refresh,
            access_ttl: auth.access_token.ttl.as_secs(),
            refresh_ttl: auth.refresh_token.ttl.as_secs(),
            leeway,
        });
        let authorizer = Authorizer::new(
            auth::Settings {
                issuer: &auth.issuer,
                keys: access.clone(),
                leeway: auth.leeway,
                cache_ttl: auth.cache_ttl,
                cache_capacity: auth.cache_capacity,
            },
            users.revoked.clone(),
            metrics.clone(),
        );
        let passwords = match previous {
            Some(p) if p.passwords.cost() == auth.bcrypt_cost => p.passwords.clone(),
            _ => Arc::new(Passwords::new(auth.bcrypt_cost)?),
        };
        let throttle = match previous {
            Some(p) if p.throttle.limit() == auth.signin_limit => p.throttle.clone(),
            _ => Arc::new(Throttle::new(auth.signin_limit)),
        };
        if previous.is_none() {
            tracing::info!(
                store = %users.path.display(),
                bcrypt_cost = auth.bcrypt_cost,
                hashing_threads = passwords.threads(),
                "user store open"
            );
        }
        Ok(Identity {
            authorizer,
            users,
            access_keys: access,
            tokens,
            passwords,
            throttle,
            default_scopes: auth.default_scopes.clone(),
            purge_grace: auth.access_token.ttl.as_secs() + leeway + 60,
            metrics,
        })
    }

    /// Runs `f` against the store on a blocking thread, at most
    /// `STORE_CONCURRENCY` at a time.
    pub async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        // Never closed, so acquiring cannot fail.
        let permit = self.users.permits.clone().acquire_owned().await.ok();
        let store = self.users.store.clone();
        let out = tokio::task::spawn_blocking(move || {
            let out = f(&store);
            drop(permit);
            out
        })
        .await;
        out.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    fn revoke(&self, sid: &str) {
        self.users.revoked.insert(sid);
    }

    /// Deletes sessions expired for longer than `purge_grace` and forgets
    /// their revocations.
    pub async fn purge(&self) {
        let (now, grace) = (crate::auth::jwt::now_unix(), self.purge_grace);
        match self.store(move |s| s.purge_expired(now, grace)).await {
            Ok(sids) if sids.is_empty() => {}
            Ok(sids) => {
                self.users.revoked.forget(&sids);
                tracing::info!(sessions = sids.len(), "purged expired sessions");
            }
            Err(e) => tracing::warn!(error = %e, "purging expired sessions failed"),
        }
    }
}
