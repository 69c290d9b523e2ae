//! The built-in identity service (docs/identity.md): users and sessions in a
//! `store` (redb or PostgreSQL), bcrypt `password`s, JWT `tokens` signed with `keys`, the
//! sign-in `throttle`, and the four `endpoints`. The `UserStore` is opened
//! once and lives as long as the process (its path needs a restart to
//! change); an `Identity` is built from each config version over it.

pub mod accounts;
pub mod endpoints;
pub mod error;
pub mod input;
pub mod keys;
pub mod password;
pub mod records;
pub mod reset_mail;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod view;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::auth::jwt::SigningKeys;

use crate::auth::{self, Authorizer, Revoked};
use crate::config::{Algorithm, Auth};
use crate::telemetry::metrics::Metrics;
use password::Passwords;
use store::{Store, StoreError};
use throttle::Throttle;
use tokens::{TokenSettings, Tokens};

pub use error::AccountError;

/// While the database cannot be reached, another try this often.
const RETRY_REACH: Duration = Duration::from_secs(1);

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
    #[error("auth.password_reset.webhook: the system's trusted roots: {0}")]
    Roots(std::io::Error),
    #[error("auth.store: the database has not been reached yet, and the {0} token key is generated (kept in the database): configure auth.{0}_token.secret, or start the gateway once the database answers")]
    KeyNotReached(&'static str),
}

/// What outlives a reload: the open store (changing its location needs a
/// restart), the revoked-session set kept from it, and the generated keys.
pub struct UserStore {
    /// The path, or the URL without its password.
    pub shown: String,
    pub store: Arc<Store>,
    /// Sessions revoked while their access tokens may still be alive.
    revoked: Arc<Revoked>,
    /// Generated HS256 keys kept in PostgreSQL, by kind, once fetched.
    db_keys: Mutex<HashMap<&'static str, Vec<u8>>>,
    /// The kinds whose key is generated (no secret configured).
    generated: Vec<&'static str>,
    /// Turns true when the store is first reached (redb: at once).
    reached: watch::Sender<bool>,
}

impl UserStore {
    /// Opens the redb file and reads its revoked sessions, or sets up the
    /// PostgreSQL pool without connecting. Blocking: call it off the runtime.
    pub fn open(auth: &Auth) -> Result<UserStore, IdentityError> {
        let store = Store::open(&auth.store)?;
        let mut generated = Vec::new();
        if auth.access_token.secret.is_none() && auth.access_token.algorithm == Algorithm::HS256 {
            generated.push("access");
        }
        if auth.refresh_token.secret.is_none() {
            generated.push("refresh");
        }
        let revoked = match &store {
            Store::Redb { db, .. } => db.revoked_sessions()?,
            Store::Postgres(_) => Vec::new(),
        };
        let is_redb = matches!(store, Store::Redb { .. });
        Ok(UserStore {
            shown: auth.store.shown(),
            store: Arc::new(store),
            revoked: Arc::new(Revoked::new(revoked)),
            db_keys: Mutex::default(),
            generated,
            reached: watch::channel(is_redb).0,
        })
    }

    /// PostgreSQL: reaches the database (schema, generated keys) and starts
    /// the revocation feed; when it cannot be reached now, keeps trying in
    /// the background. Fails only on what a retry cannot fix (a schema newer
    /// than this binary).
    pub async fn start(self: &Arc<Self>, stop: watch::Receiver<bool>) -> Result<(), IdentityError> {
        let Store::Postgres(_) = &*self.store else {
            return Ok(());
        };
        match self.reach().await {
            Ok(()) => {
                self.spawn_feed(stop);
                return Ok(());
            }
            Err(e @ StoreError::Schema(_)) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(store = %self.shown, error = %e, "user store unreachable; starting without it and retrying")
            }
        }
        let users = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RETRY_REACH).await;
                if *stop.borrow() {
                    return;
                }
                match users.reach().await {
                    Ok(()) => {
                        tracing::info!(store = %users.shown, "user store reached");
                        users.spawn_feed(stop);
                        return;
                    }
                    Err(e @ StoreError::Schema(_)) => {
                        tracing::error!(error = %e, "user store refused")
                    }
                    Err(_) => {}
                }
            }
        });
        Ok(())
    }

    async fn reach(&self) -> Result<(), StoreError> {
        let Store::Postgres(pg) = &*self.store else {
            return Ok(());
        };
        pg.connect().await?;
        // Before the store counts as reached: no revoked session's token is
        // accepted meanwhile. (The feed reads them again when it connects.)
        for sid in pg.revoked_sessions().await? {
            self.revoked.insert(&sid);
        }
        for kind in &self.generated {
            let fresh = keys::random_key().map_err(|e| StoreError::Postgres(e.to_string()))?;
            let key = pg.generated_key(kind, &fresh).await?;
            lock(&self.db_keys).insert(kind, key);
        }
        self.reached.send_replace(true);
        Ok(())
    }

    fn spawn_feed(&self, stop: watch::Receiver<bool>) {
        if let Store::Postgres(pg) = &*self.store {
            tokio::spawn(pg.follow_revocations(self.revoked.clone(), stop));
        }
    }

    /// Turns true once the store was reached (at once for redb).
    pub fn reached(&self) -> watch::Receiver<bool> {
        self.reached.subscribe()
    }

    /// The database answers now (`gateway_store_up`); redb always does.
    pub fn up(&self) -> bool {
        match &*self.store {
            Store::Redb { .. } => true,
            Store::Postgres(pg) => pg.health.up.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The HS256 secret for `kind`: configured, or generated (a file beside
    /// the redb store, or a row in PostgreSQL). Blocking (the file).
    fn secret(
        &self,
        configured: Option<&[u8]>,
        kind: &'static str,
    ) -> Result<Vec<u8>, IdentityError> {
        if let Some(s) = configured {
            return Ok(s.to_vec());
        }
        match &*self.store {
            Store::Redb { db, .. } => Ok(keys::secret(None, db.path(), kind)?),
            Store::Postgres(_) => lock(&self.db_keys)
                .get(kind)
                .cloned()
                .ok_or(IdentityError::KeyNotReached(kind)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
    reset_ttl: Duration,
    /// `refresh_token.reuse_interval`, in seconds.
    reuse_interval: u64,
    /// Delivers reset tokens; `None`: no `POST /password-reset`.
    mailer: Option<Arc<reset_mail::ResetMailer>>,
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
            (None, Algorithm::HS256) => Arc::new(SigningKeys::hs256(
                &users.secret(auth.access_token.secret.as_deref(), "access")?,
            )),
            (None, alg) => return Err(IdentityError::NoKeys(alg)),
        };
        let refresh = users.secret(auth.refresh_token.secret.as_deref(), "refresh")?;
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
        )
        .map_err(keys::KeyError::Random)?;
        let passwords = match previous {
            Some(p) if p.passwords.cost() == auth.bcrypt_cost => p.passwords.clone(),
            _ => Arc::new(Passwords::new(auth.bcrypt_cost)?),
        };
        let throttle = match previous {
            Some(p) if p.throttle.limit() == auth.signin_limit => p.throttle.clone(),
            _ => Arc::new(Throttle::counted_in(
                auth.signin_limit,
                matches!(*users.store, Store::Postgres(_)).then(|| users.store.clone()),
            )),
        };
        let mailer = match &auth.reset_webhook {
            None => None,
            Some(hook) => match previous.and_then(|p| p.mailer.clone()) {
                Some(m) if m.is(hook, auth.reset_ttl) => Some(m),
                _ => Some(Arc::new(
                    reset_mail::ResetMailer::new(
                        hook,
                        auth.reset_ttl,
                        users.store.clone(),
                        metrics.clone(),
                    )
                    .map_err(IdentityError::Roots)?,
                )),
            },
        };
        if previous.is_none() {
            tracing::info!(
                store = %users.shown,
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
            reset_ttl: auth.reset_ttl,
            reuse_interval: auth.reuse_interval.as_secs(),
            mailer,
            purge_grace: auth.access_token.ttl.as_secs() + leeway + 60,
            metrics,
        })
    }

    /// The store the endpoints read and write.
    pub fn store(&self) -> &Store {
        &self.users.store
    }

    /// Account management as an operator does it, applied to this gateway at once.
    pub fn accounts(&self) -> accounts::Accounts<'_> {
        accounts::Accounts {
            store: self.store(),
            passwords: &self.passwords,
            default_scopes: &self.default_scopes,
            reset_ttl: self.reset_ttl,
            revoked: Some(&self.users.revoked),
        }
    }

    fn revoke(&self, sid: &str) {
        self.users.revoked.insert(sid);
    }

    /// Deletes sessions expired for longer than `purge_grace` and forgets
    /// their revocations.
    pub async fn purge(&self) {
        let (now, grace) = (crate::auth::jwt::now_unix(), self.purge_grace);
        match self.store().purge_expired(now, grace).await {
            Ok(sids) if sids.is_empty() => {}
            Ok(sids) => {
                self.users.revoked.forget(&sids);
                tracing::info!(sessions = sids.len(), "purged expired sessions");
            }
            Err(e) => tracing::warn!(error = %e, "purging expired sessions failed"),
        }
    }
}
