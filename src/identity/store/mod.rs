//! The user store: one interface, two backends (docs/clusters.md). `redb` is
//! an embedded file one process holds; `postgres` is a database any number
//! of gateways share. Every method is one atomic change (or one read), and
//! returns only once the change is durable: acknowledged means committed.
//! redb's methods block, so they run on blocking threads, a few at a time;
//! PostgreSQL's are async over a bounded pool.

mod postgres;
mod redb;

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::records::{Listed, ResetTicket, Session, User};
use crate::config::StoreLocation;

pub use self::postgres::PgStore;
pub use self::redb::RedbStore;

/// redb calls running at once on blocking threads. redb runs one write
/// transaction at a time anyway; this keeps a burst from parking hundreds of
/// blocking threads on its lock.
const REDB_CONCURRENCY: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the user store {0} is in use by another process, most likely a running gateway; stop it first (one process at a time may hold the store)")]
    InUse(std::path::PathBuf),
    #[error("cannot create the store {path}: {source}")]
    Folder {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("email already in use")]
    EmailTaken,
    #[error("no user with email {0}")]
    NoSuchUser(String),
    #[error("store: {0}")]
    Db(#[from] ::redb::Error),
    #[error("store: a record does not decode: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// The database cannot be reached now (refused, timed out, cut).
    #[error("user store unavailable: {0}")]
    Unavailable(String),
    /// The database answered with an error.
    #[error("store: {0}")]
    Postgres(String),
    /// The database's schema is newer than this binary knows.
    #[error("{0}")]
    Schema(String),
}

/// What a presented refresh token turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// The session's current token: the action went through.
    Current(User),
    /// The token the last rotation replaced, within `reuse_interval`: the
    /// session as it is now (its current refresh token is handed out again).
    Grace(User, Session),
    /// An already rotated token: the whole session is now revoked.
    Reused,
    /// Unknown, revoked or expired session, or a user that is gone or disabled.
    Dead,
}

/// Where a page of users starts: after this user, in creation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: u64,
    pub id: String,
}

impl Cursor {
    /// The cursor of the page that follows `user`.
    pub fn after(user: &User) -> Cursor {
        Cursor {
            created_at: user.created_at,
            id: user.id.clone(),
        }
    }
}

/// A refresh token as presented: which session, whose, its `jti`, and
/// how long after a rotation the replaced token is still taken (seconds).
#[derive(Debug, Clone)]
pub struct Presentation {
    pub sid: String,
    pub user_id: String,
    pub jti: String,
    pub grace: u64,
}

/// Which sessions a sign-out revokes, besides nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignoutScope {
    /// The token's own session.
    Local,
    /// Every other session of the user.
    Others,
    /// All of them.
    Global,
}

/// A user named by email (operators) or by id (a token's `sub`).
#[derive(Debug, Clone)]
pub enum UserRef {
    Email(String),
    Id(String),
}

impl UserRef {
    fn shown(&self) -> String {
        match self {
            UserRef::Email(e) => e.clone(),
            UserRef::Id(id) => format!("id {id}"),
        }
    }
}

/// A password change: whose, which session stays, the hash the current
/// password was checked against, and the new one.
#[derive(Debug, Clone)]
pub struct PasswordChange {
    pub user_id: String,
    pub keep_sid: String,
    pub checked_hash: String,
    pub new_hash: String,
}

pub enum Store {
    Redb {
        db: Arc<RedbStore>,
        permits: Arc<Semaphore>,
    },
    Postgres(Box<PgStore>),
}

impl Store {
    /// Opens the redb file (blocking: call it off the runtime), or sets up
    /// the PostgreSQL pool without connecting (`PgStore::connect` does).
    pub fn open(location: &StoreLocation) -> Result<Store, StoreError> {
        match location {
            StoreLocation::File(f) => Ok(Store::Redb {
                db: Arc::new(RedbStore::open(&f.path)?),
                permits: Arc::new(Semaphore::new(REDB_CONCURRENCY)),
            }),
            StoreLocation::Postgres(url) => Ok(Store::Postgres(Box::new(PgStore::new(url)?))),
        }
    }

    /// Runs a redb call on a blocking thread, at most `REDB_CONCURRENCY` at a time.
    async fn blocking<T: Send + 'static>(
        db: &Arc<RedbStore>,
        permits: &Arc<Semaphore>,
        f: impl FnOnce(&RedbStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        // Never closed, so acquiring cannot fail.
        let permit = permits.clone().acquire_owned().await.ok();
        let db = db.clone();
        let out = tokio::task::spawn_blocking(move || {
            let out = f(&db);
            drop(permit);
            out
        })
        .await;
        out.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Claims the email and starts the first session (if any) in one
    /// transaction, so of concurrent sign-ups of one email exactly one succeeds.
    pub async fn create_user(&self, user: User, first: Option<Listed>) -> Result<(), StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| s.create_user(&user, first.as_ref())).await
            }
            Store::Postgres(pg) => pg.create_user(&user, first.as_ref()).await,
        }
    }

    pub async fn email_taken(&self, email: String) -> Result<bool, StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| s.email_taken(&email)).await
            }
            Store::Postgres(pg) => Ok(pg.user_by_email(&email).await?.is_some()),
        }
    }

    pub async fn user_by_email(&self, email: String) -> Result<Option<User>, StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| s.user_by_email(&email)).await
            }
            Store::Postgres(pg) => pg.user_by_email(&email).await,
        }
    }

    pub async fn user_by_id(&self, id: String) -> Result<Option<User>, StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| s.user_by_id(&id)).await
            }
            Store::Postgres(pg) => pg.user_by_id(&id).await,
        }
    }

    pub async fn required_user(&self, email: String) -> Result<User, StoreError> {
        self.user_by_email(email.clone())
            .await?
            .ok_or(StoreError::NoSuchUser(email))
    }

    pub async fn start_session(&self, sid: String, session: Session) -> Result<(), StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| s.start_session(&sid, &session)).await
            }
            Store::Postgres(pg) => pg.start_session(&sid, &session).await,
        }
    }

    /// Rotation: if the presented `jti` is the session's current refresh
    /// token, replace it with `next_jti` (valid until `expires_at`); if it is
    /// an older one, revoke the session (reuse detection). One atomic step.
    pub async fn rotate(
        &self,
        p: Presentation,
        next_jti: String,
        expires_at: u64,
        now: u64,
    ) -> Result<Presented, StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| {
                    s.rotate(&p, &next_jti, expires_at, now)
                })
                .await
            }
            Store::Postgres(pg) => pg.rotate(&p, &next_jti, expires_at, now).await,
        }
    }

    /// Sign-out: if the refresh token is one rotation would take, revoke
    /// the sessions `scope` names. Returns them.
    pub async fn end_session(
        &self,
        p: Presentation,
        scope: SignoutScope,
        now: u64,
    ) -> Result<(Presented, Vec<String>), StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| s.end_session(&p, scope, now)).await
            }
            Store::Postgres(pg) => pg.end_session(&p, scope, now).await,
        }
    }

    /// The ids of revoked sessions still kept (their access tokens may live).
    pub async fn revoked_sessions(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, |s| s.revoked_sessions()).await
            }
            Store::Postgres(pg) => pg.revoked_sessions().await,
        }
    }

    /// Deletes sessions whose refresh token expired more than `grace` seconds
    /// ago (the grace outlives every access token issued from them); returns
    /// their ids.
    pub async fn purge_expired(&self, now: u64, grace: u64) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| s.purge_expired(now, grace)).await
            }
            Store::Postgres(pg) => pg.purge_expired(now, grace).await,
        }
    }

    /// Up to `limit` users after `after`, in creation order; with `filter`
    /// (lower case), only those whose email contains it.
    pub async fn users_page(
        &self,
        after: Option<Cursor>,
        limit: usize,
        filter: Option<String>,
    ) -> Result<Vec<User>, StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| {
                    s.users_page(after.as_ref(), limit, filter.as_deref())
                })
                .await
            }
            Store::Postgres(pg) => {
                pg.users_page(after.as_ref(), limit, filter.as_deref())
                    .await
            }
        }
    }

    /// The user and their live sessions, newest first.
    pub async fn user_sessions(
        &self,
        who: UserRef,
        now: u64,
    ) -> Result<(User, Vec<Listed>), StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| s.user_sessions(&who, now)).await
            }
            Store::Postgres(pg) => pg.user_sessions(&who, now).await,
        }
    }

    /// Deletes the user, so the email may sign up again; their sessions
    /// stay behind revoked (until purged), so no token of theirs works.
    /// Returns the sessions it revoked.
    pub async fn delete_user(&self, email: String, now: u64) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| s.delete_user(&email, now)).await
            }
            Store::Postgres(pg) => pg.delete_user(&email, now).await,
        }
    }

    /// Revokes one live session of the user; false when it is not one.
    pub async fn revoke_session(
        &self,
        who: UserRef,
        sid: String,
        now: u64,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| s.revoke_session(&who, &sid, now)).await
            }
            Store::Postgres(pg) => pg.revoke_session(&who, &sid, now).await,
        }
    }

    /// Replaces the password if it is still `checked_hash` and `keep_sid`
    /// is a live session of the enabled user; voids any reset token and
    /// revokes every other session. `None` when those do not hold.
    pub async fn change_password(
        &self,
        c: PasswordChange,
        now: u64,
    ) -> Result<Option<(User, Vec<String>)>, StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| s.change_password(&c, now)).await
            }
            Store::Postgres(pg) => pg.change_password(&c, now).await,
        }
    }

    /// Gives the enabled user with this email the reset token `ticket`,
    /// unless one was made for them less than `resend` seconds ago. The
    /// user when it did (the token is then to be delivered).
    pub async fn request_reset(
        &self,
        email: String,
        ticket: ResetTicket,
        resend: u64,
        now: u64,
    ) -> Result<Option<User>, StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| {
                    s.request_reset(&email, ticket, resend, now)
                })
                .await
            }
            Store::Postgres(pg) => pg.request_reset(&email, &ticket, resend, now).await,
        }
    }

    /// The enabled user whose valid reset token hashes to `hash`.
    pub async fn user_by_reset(&self, hash: String, now: u64) -> Result<Option<User>, StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| s.user_by_reset(&hash, now)).await
            }
            Store::Postgres(pg) => pg.user_by_reset(&hash, now).await,
        }
    }

    /// Uses the reset token in one step: the password replaced, the token
    /// voided, every session revoked; `None` when the token is not valid
    /// (unknown, used, superseded, expired, or its user disabled).
    pub async fn confirm_reset(
        &self,
        hash: String,
        password_hash: String,
        now: u64,
    ) -> Result<Option<(User, Vec<String>)>, StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| {
                    s.confirm_reset(&hash, &password_hash, now)
                })
                .await
            }
            Store::Postgres(pg) => pg.confirm_reset(&hash, &password_hash, now).await,
        }
    }

    /// Changes one user; `revoke` also revokes all their sessions. Returns the
    /// changed user and the sessions revoked.
    pub async fn update_user(
        &self,
        email: String,
        revoke: bool,
        change: impl FnOnce(&mut User) + Send + 'static,
    ) -> Result<(User, Vec<String>), StoreError> {
        match self {
            Store::Redb { db, permits } => {
                Self::blocking(db, permits, move |s| s.update_user(&email, revoke, change)).await
            }
            Store::Postgres(pg) => pg.update_user(&email, revoke, change).await,
        }
    }
}
