//! The built-in identity service (SPEC section 5): users and sessions in a
//! redb `store`, bcrypt `password`s, JWT `tokens` signed with `keys`, the
//! sign-in `throttle`, and the four `endpoints`. `Identity` is opened once at
//! start-up and lives as long as the process (the store path and keys need a
//! restart to change).

pub mod admin;
pub mod endpoints;
pub mod input;
pub mod keys;
pub mod password;
pub mod records;
pub mod signing;
pub mod store;
pub mod throttle;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use signing::SigningKeys;

use crate::authorizer::{self, Authorizer, Revoked};
use crate::config::{Algorithm, Auth};
use password::Passwords;
use store::{Store, StoreError};
use throttle::Throttle;
use tokens::{TokenSettings, Tokens};

pub use endpoints::Endpoint;

/// Store calls running at once on blocking threads. redb runs one write
/// transaction at a time anyway; this keeps a burst from parking hundreds of
/// blocking threads on its lock.
const STORE_CONCURRENCY: usize = 4;

/// How often expired sessions are purged from the store.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

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
    #[error(transparent)]
    Signing(#[from] signing::SigningError),
}

pub struct Identity {
    /// Verifies the access tokens this service issues, on protected routes.
    pub authorizer: Authorizer,
    /// Sessions revoked while their access tokens may still be alive.
    revoked: Arc<Revoked>,
    /// Served as the JWK set.
    access_keys: Arc<SigningKeys>,
    store: Arc<Store>,
    store_permits: Arc<Semaphore>,
    tokens: Tokens,
    passwords: Passwords,
    throttle: Throttle,
    default_scopes: Vec<String>,
    /// Seconds a session is kept after its refresh token expired: longer
    /// than any access token issued from it lives.
    purge_grace: u64,
}

impl Identity {
    /// Opens the store, loads or generates the keys, and makes the dummy
    /// hash. Blocking: call it off the runtime (`spawn_blocking`).
    pub fn open(auth: &Auth) -> Result<Identity, IdentityError> {
        if auth.refresh_token.algorithm != Algorithm::HS256 {
            return Err(IdentityError::Algorithm("refresh_token"));
        }
        // The store first: its lock keeps a second process from racing us
        // to generate the keys.
        let store = Store::open(&auth.store)?;
        let access = Arc::new(
            match (&auth.access_token.private_key, auth.access_token.algorithm) {
                (Some(private), alg) if alg != Algorithm::HS256 => {
                    SigningKeys::asymmetric(alg, private, &auth.access_token.previous_keys)?
                }
                _ => SigningKeys::hs256(&keys::secret(
                    auth.access_token.secret.as_deref(),
                    &auth.store,
                    "access",
                )?),
            },
        );
        let refresh = keys::secret(auth.refresh_token.secret.as_deref(), &auth.store, "refresh")?;
        let leeway = auth.leeway.as_secs();
        let tokens = Tokens::new(TokenSettings {
            issuer: &auth.issuer,
            access: access.clone(),
            refresh_secret: &refresh,
            access_ttl: auth.access_token.ttl.as_secs(),
            refresh_ttl: auth.refresh_token.ttl.as_secs(),
            leeway,
        });
        let revoked = Arc::new(Revoked::new(store.revoked_sessions()?));
        let authorizer = Authorizer::new(
            authorizer::Settings {
                issuer: &auth.issuer,
                keys: access.clone(),
                leeway: auth.leeway,
                cache_ttl: auth.cache_ttl,
                cache_capacity: auth.cache_capacity,
            },
            revoked.clone(),
        );
        let passwords = Passwords::new(auth.bcrypt_cost)?;
        tracing::info!(
            store = %auth.store.display(),
            bcrypt_cost = auth.bcrypt_cost,
            hashing_threads = passwords.threads(),
            "user store open"
        );
        Ok(Identity {
            authorizer,
            revoked,
            access_keys: access,
            store: Arc::new(store),
            store_permits: Arc::new(Semaphore::new(STORE_CONCURRENCY)),
            tokens,
            passwords,
            throttle: Throttle::new(auth.signin_limit),
            default_scopes: auth.default_scopes.clone(),
            purge_grace: auth.access_token.ttl.as_secs() + leeway + 60,
        })
    }

    /// Runs `f` against the store on a blocking thread, at most
    /// `STORE_CONCURRENCY` at a time.
    pub async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        // Never closed, so acquiring cannot fail.
        let permit = self.store_permits.clone().acquire_owned().await.ok();
        let store = self.store.clone();
        let out = tokio::task::spawn_blocking(move || {
            let out = f(&store);
            drop(permit);
            out
        })
        .await;
        out.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Purges expired sessions now and then every `PURGE_EVERY`, for as long
    /// as the identity service lives.
    pub fn spawn_purge(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PURGE_EVERY);
            loop {
                every.tick().await;
                let Some(id) = weak.upgrade() else { return };
                let (now, grace) = (records::now_unix(), id.purge_grace);
                match id.store(move |s| s.purge_expired(now, grace)).await {
                    Ok(sids) if sids.is_empty() => {}
                    Ok(sids) => {
                        id.revoked.forget(&sids);
                        tracing::info!(sessions = sids.len(), "purged expired sessions");
                    }
                    Err(e) => tracing::warn!(error = %e, "purging expired sessions failed"),
                }
            }
        });
    }
}
