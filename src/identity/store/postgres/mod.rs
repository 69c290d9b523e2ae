//! The shared backend: PostgreSQL, through a bounded deadpool of
//! tokio-postgres connections. Every change is one transaction whose
//! conditions are in its statements (a unique index, `WHERE current_jti =`),
//! never a read in Rust followed by a write, so gateways sharing the
//! database cannot race each other. Revocations are appended to
//! `gateway_revocations` and announced with NOTIFY in the same transaction
//! (`feed` turns both into the local revoked set).

mod feed;
mod schema;
mod tls;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::watch;
use tokio_postgres::{Row, Transaction};

use super::{Cursor, PasswordChange, Presentation, Presented, SignoutScope, StoreError, UserRef};
use crate::auth::Revoked;
use crate::config::PostgresUrl;
use crate::identity::records::{Listed, ResetTicket, Session, User};

use feed::Feed;

/// Pooled connections per gateway. Each request holds one for a few
/// statements; bcrypt, not the database, bounds the endpoints' throughput.
const POOL_SIZE: usize = 16;
/// How long one store call may take in all (waiting for a connection, or
/// for a database that stopped answering) before it is `Unavailable`: the
/// endpoints answer 503 within 5 s of the request.
const CALL_TIMEOUT: Duration = Duration::from_secs(4);
/// Connecting gives up after this (the call's own timeout is the outer bound).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Sign-in attempts older than this are deleted by the hourly purge (the
/// count only reads an email's attempts inside its window; a success
/// deletes them all).
const ATTEMPTS_KEPT_MS: i64 = 7 * 86_400_000;

const USER_COLUMNS: &str = "id, email, first_name, last_name, password_hash, scopes, disabled, \
     created_at, reset_hash, reset_expires_at, reset_sent_at";

/// The session columns `session_of` reads, after the user's.
const SESSION_COLUMNS: &str =
    "s.current_jti, s.revoked, s.expires_at, s.created_at, s.refreshed_at, s.previous_jti";

/// Whether the database answers: `/readyz`, `gateway_store_up`.
#[derive(Default)]
pub struct Health {
    /// Reached at least once (and the schema is in place).
    pub reached: AtomicBool,
    /// The last call reached it.
    pub up: AtomicBool,
}

pub struct PgStore {
    pool: Pool,
    /// The settings of the revocation feed's own connection.
    feed: Feed,
    pub health: Arc<Health>,
}

/// A connection or pool failure is `Unavailable` (retry later); an error the
/// database itself sent is `Postgres`.
pub(super) fn db_error(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Postgres(format!("{}: {}", db.code().code(), db.message())),
        None => StoreError::Unavailable(e.to_string()),
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error(e),
        e => StoreError::Unavailable(e.to_string()),
    }
}

/// Makes the current transaction's commit not wait for its WAL flush. Only
/// for the sign-in count: a database crash may forget the last moment's
/// attempts (a counter, never an acknowledged write).
const NOT_DURABLE: &str = "set_config('synchronous_commit', 'off', true)";

/// Unix milliseconds by the database's clock: one clock for every gateway.
const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// Pins an async block's output type, so `?` inside it knows its error.
async fn typed<T>(f: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    f.await
}

/// Runs the block in one transaction on a pooled connection, bounded by
/// `timed`, and commits if it succeeds.
macro_rules! in_tx {
    ($store:ident, |$tx:ident| $body:block) => {
        $store
            .timed(async {
                let mut client = $store.client().await?;
                let $tx = client.transaction().await.map_err(db_error)?;
                let out = typed(async $body).await?;
                $tx.commit().await.map_err(db_error)?;
                Ok(out)
            })
            .await
    };
}

/// Runs the block with a pooled connection, bounded by `timed`.
macro_rules! on_conn {
    ($store:ident, |$c:ident| $body:block) => {
        $store
            .timed(async {
                let $c = $store.client().await?;
                typed(async $body).await
            })
            .await
    };
}

impl PgStore {
    /// The pool, not yet connected: nothing here touches the network.
    pub fn new(url: &PostgresUrl) -> Result<PgStore, StoreError> {
        let (connector, mode) = tls::connector(url.sslmode)?;
        let mut config = url.config.clone();
        config.ssl_mode(mode);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("gateway");
        let feed = Feed::new(config.clone(), connector.clone());
        let manager = Manager::from_config(
            config,
            connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CALL_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Postgres(e.to_string()))?;
        Ok(PgStore {
            pool,
            feed,
            health: Arc::default(),
        })
    }

    /// Applies the migrations; until it succeeds every call is `Unavailable`
    /// (`Schema` stops start-up).
    pub async fn connect(&self) -> Result<(), StoreError> {
        let out = async {
            let mut client = self.pool.get().await.map_err(pool_error)?;
            schema::migrate(&mut client).await
        };
        let out = self.timed(out).await;
        if out.is_ok() {
            self.health.reached.store(true, Ordering::Relaxed);
            self.health.up.store(true, Ordering::Relaxed);
        }
        out
    }

    /// The task that keeps `revoked` current from the revocation feed (a
    /// connection of its own, outside the pool) until `stop` turns true.
    pub fn follow_revocations(
        &self,
        revoked: Arc<Revoked>,
        stop: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (feed, health) = (self.feed.clone(), self.health.clone());
        async move { feed.run(&health, revoked, stop).await }
    }

    /// Bounds one call by `CALL_TIMEOUT` and keeps `health.up` current.
    async fn timed<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let out = match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(out) => out,
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} s",
                CALL_TIMEOUT.as_secs()
            ))),
        };
        let reached = !matches!(out, Err(StoreError::Unavailable(_)));
        self.health.up.store(reached, Ordering::Relaxed);
        out
    }

    /// A pooled connection, once the schema is known to be in place.
    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        if !self.health.reached.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("not reached yet".into()));
        }
        self.pool.get().await.map_err(pool_error)
    }

    pub async fn create_user(&self, user: &User, first: Option<&Listed>) -> Result<(), StoreError> {
        let reset = user.reset.as_ref();
        in_tx!(self, |tx| {
            let inserted = tx
                .execute(
                    &format!(
                        "INSERT INTO gateway_users ({USER_COLUMNS})
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                             ON CONFLICT DO NOTHING"
                    ),
                    &[
                        &user.id,
                        &user.email,
                        &user.first_name,
                        &user.last_name,
                        &user.password_hash,
                        &user.scopes,
                        &user.disabled,
                        &(user.created_at as i64),
                        &reset.map(|r| r.hash.as_str()),
                        &reset.map(|r| r.expires_at as i64),
                        &user.reset_sent_at.map(|t| t as i64),
                    ],
                )
                .await
                .map_err(db_error)?;
            if inserted == 0 {
                return Err(StoreError::EmailTaken);
            }
            match first {
                Some((sid, session)) => insert_session(&tx, sid, session).await,
                None => Ok(()),
            }
        })
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        on_conn!(self, |c| {
            let row = c
                .query_opt(
                    &format!(
                        "SELECT {USER_COLUMNS} FROM gateway_users WHERE lower(email) = lower($1)"
                    ),
                    &[&email],
                )
                .await
                .map_err(db_error)?;
            Ok(row.as_ref().map(user_of))
        })
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        on_conn!(self, |c| {
            let row = c
                .query_opt(
                    &format!("SELECT {USER_COLUMNS} FROM gateway_users WHERE id = $1"),
                    &[&id],
                )
                .await
                .map_err(db_error)?;
            Ok(row.as_ref().map(user_of))
        })
    }

    pub async fn start_session(&self, sid: &str, session: &Session) -> Result<(), StoreError> {
        in_tx!(self, |tx| { insert_session(&tx, sid, session).await })
    }

    pub async fn rotate(
        &self,
        p: &Presentation,
        next_jti: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<Presented, StoreError> {
        in_tx!(self, |tx| {
            let presented = present(&tx, p, now).await?;
            if let Presented::Current(_) = presented {
                tx.execute(
                    "UPDATE gateway_sessions
                         SET previous_jti = current_jti, current_jti = $2,
                             expires_at = $3, refreshed_at = $4
                         WHERE sid = $1",
                    &[&p.sid, &next_jti, &(expires_at as i64), &(now as i64)],
                )
                .await
                .map_err(db_error)?;
            }
            Ok(presented)
        })
    }

    pub async fn end_session(
        &self,
        p: &Presentation,
        scope: SignoutScope,
        now: u64,
    ) -> Result<(Presented, Vec<String>), StoreError> {
        in_tx!(self, |tx| {
            let presented = present(&tx, p, now).await?;
            let revoked = match (&presented, scope) {
                (Presented::Reused | Presented::Dead, _) => Vec::new(),
                (_, SignoutScope::Local) => {
                    let rows = tx
                        .query(
                            "UPDATE gateway_sessions SET revoked = true
                                 WHERE sid = $1 AND NOT revoked RETURNING sid",
                            &[&p.sid],
                        )
                        .await
                        .map_err(db_error)?;
                    rows.iter().map(|r| r.get(0)).collect()
                }
                (_, SignoutScope::Others) => revoke_all(&tx, &p.user_id, Some(&p.sid)).await?,
                (_, SignoutScope::Global) => revoke_all(&tx, &p.user_id, None).await?,
            };
            if scope == SignoutScope::Local {
                announce(&tx, &revoked).await?;
            }
            Ok((presented, revoked))
        })
    }

    pub async fn revoked_sessions(&self) -> Result<Vec<String>, StoreError> {
        on_conn!(self, |c| { revoked_sessions(&c).await })
    }

    pub async fn purge_expired(&self, now: u64, grace: u64) -> Result<Vec<String>, StoreError> {
        in_tx!(self, |tx| {
            let rows = tx
                .query(
                    "DELETE FROM gateway_sessions WHERE expires_at + $2 < $1 RETURNING sid",
                    &[&(now as i64), &(grace as i64)],
                )
                .await
                .map_err(db_error)?;
            // The feed reads events a few seconds back; these are long read.
            tx.execute(
                &format!("DELETE FROM gateway_revocations WHERE at_ms < {DB_NOW_MS} - $1"),
                &[&(grace as i64 * 1000)],
            )
            .await
            .map_err(db_error)?;
            tx.execute(
                &format!("DELETE FROM gateway_signin_attempts WHERE at_ms < {DB_NOW_MS} - $1"),
                &[&ATTEMPTS_KEPT_MS],
            )
            .await
            .map_err(db_error)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    pub async fn users_page(
        &self,
        after: Option<&Cursor>,
        limit: usize,
        filter: Option<&str>,
    ) -> Result<Vec<User>, StoreError> {
        let (at, id) = (
            after.map(|c| c.created_at as i64),
            after.map(|c| c.id.as_str()),
        );
        on_conn!(self, |c| {
            let rows = c
                .query(
                    &format!(
                        "SELECT {USER_COLUMNS} FROM gateway_users
                             WHERE ($1::bigint IS NULL OR (created_at, id) > ($1, $2::text))
                               AND ($3::text IS NULL OR strpos(lower(email), $3) > 0)
                             ORDER BY created_at, id LIMIT $4"
                    ),
                    &[&at, &id, &filter, &(limit as i64)],
                )
                .await
                .map_err(db_error)?;
            Ok(rows.iter().map(user_of).collect())
        })
    }

    pub async fn user_sessions(
        &self,
        who: &UserRef,
        now: u64,
    ) -> Result<(User, Vec<Listed>), StoreError> {
        let user = match who {
            UserRef::Email(email) => self.user_by_email(email).await?,
            UserRef::Id(id) => self.user_by_id(id).await?,
        }
        .ok_or_else(|| StoreError::NoSuchUser(who.shown()))?;
        let rows = on_conn!(self, |c| {
            c.query(
                "SELECT sid, current_jti, revoked, expires_at, created_at, refreshed_at
                     FROM gateway_sessions
                     WHERE user_id = $1 AND NOT revoked AND expires_at > $2
                     ORDER BY created_at DESC, sid",
                &[&user.id, &(now as i64)],
            )
            .await
            .map_err(db_error)
        })?;
        let sessions = rows
            .iter()
            .map(|r| {
                let session = Session {
                    user_id: user.id.clone(),
                    refresh_jti: r.get(1),
                    revoked: r.get(2),
                    expires_at: r.get::<_, i64>(3) as u64,
                    created_at: r.get::<_, i64>(4) as u64,
                    refreshed_at: r.get::<_, Option<i64>>(5).map(|t| t as u64),
                    previous_jti: None,
                };
                (r.get(0), session)
            })
            .collect();
        Ok((user, sessions))
    }

    pub async fn delete_user(&self, email: &str, now: u64) -> Result<Vec<String>, StoreError> {
        in_tx!(self, |tx| {
            let row = tx
                .query_opt(
                    "DELETE FROM gateway_users WHERE lower(email) = lower($1) RETURNING id",
                    &[&email],
                )
                .await
                .map_err(db_error)?;
            let id: String = row
                .ok_or_else(|| StoreError::NoSuchUser(email.to_string()))?
                .get(0);
            // Kept revoked until the purge, which deletes them once every
            // access token issued from them has expired.
            let revoked: Vec<String> = tx
                .query(
                    "WITH s AS (SELECT sid, revoked FROM gateway_sessions
                                WHERE user_id = $1 FOR UPDATE)
                     UPDATE gateway_sessions g
                         SET revoked = true, expires_at = least(g.expires_at, $2)
                         FROM s WHERE g.sid = s.sid AND NOT s.revoked
                         RETURNING g.sid",
                    &[&id, &(now as i64)],
                )
                .await
                .map_err(db_error)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.execute(
                "UPDATE gateway_sessions SET expires_at = least(expires_at, $2)
                     WHERE user_id = $1 AND revoked",
                &[&id, &(now as i64)],
            )
            .await
            .map_err(db_error)?;
            announce(&tx, &revoked).await?;
            Ok(revoked)
        })
    }

    pub async fn revoke_session(
        &self,
        who: &UserRef,
        sid: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        in_tx!(self, |tx| {
            let (by, key) = match who {
                UserRef::Email(email) => ("lower(email) = lower($1)", email),
                UserRef::Id(id) => ("id = $1", id),
            };
            let user = tx
                .query_opt(&format!("SELECT id FROM gateway_users WHERE {by}"), &[key])
                .await
                .map_err(db_error)?
                .ok_or_else(|| StoreError::NoSuchUser(who.shown()))?;
            let id: String = user.get(0);
            let revoked = tx
                .execute(
                    "UPDATE gateway_sessions SET revoked = true
                         WHERE sid = $1 AND user_id = $2 AND NOT revoked AND expires_at > $3",
                    &[&sid, &id, &(now as i64)],
                )
                .await
                .map_err(db_error)?;
            if revoked == 1 {
                announce(&tx, &[sid.to_string()]).await?;
            }
            Ok(revoked == 1)
        })
    }

    pub async fn user_by_reset(&self, hash: &str, now: u64) -> Result<Option<User>, StoreError> {
        on_conn!(self, |c| {
            let row = c
                .query_opt(
                    &format!(
                        "SELECT {USER_COLUMNS} FROM gateway_users
                             WHERE reset_hash = $1 AND reset_expires_at > $2 AND NOT disabled"
                    ),
                    &[&hash, &(now as i64)],
                )
                .await
                .map_err(db_error)?;
            Ok(row.as_ref().map(user_of))
        })
    }

    pub async fn confirm_reset(
        &self,
        hash: &str,
        password_hash: &str,
        now: u64,
    ) -> Result<Option<(User, Vec<String>)>, StoreError> {
        in_tx!(self, |tx| {
            let row = tx
                .query_opt(
                    &format!(
                        "UPDATE gateway_users
                             SET password_hash = $2, reset_hash = NULL, reset_expires_at = NULL
                             WHERE reset_hash = $1 AND reset_expires_at > $3 AND NOT disabled
                             RETURNING {USER_COLUMNS}"
                    ),
                    &[&hash, &password_hash, &(now as i64)],
                )
                .await
                .map_err(db_error)?;
            let Some(user) = row.as_ref().map(user_of) else {
                return Ok(None);
            };
            let revoked = revoke_all(&tx, &user.id, None).await?;
            Ok(Some((user, revoked)))
        })
    }

    pub async fn change_password(
        &self,
        c: &PasswordChange,
        now: u64,
    ) -> Result<Option<(User, Vec<String>)>, StoreError> {
        in_tx!(self, |tx| {
            let row = tx
                .query_opt(
                    &format!(
                        "UPDATE gateway_users
                             SET password_hash = $4, reset_hash = NULL, reset_expires_at = NULL
                             WHERE id = $1 AND password_hash = $3 AND NOT disabled
                               AND EXISTS (SELECT 1 FROM gateway_sessions
                                           WHERE sid = $2 AND user_id = $1
                                             AND NOT revoked AND expires_at > $5)
                             RETURNING {USER_COLUMNS}"
                    ),
                    &[
                        &c.user_id,
                        &c.keep_sid,
                        &c.checked_hash,
                        &c.new_hash,
                        &(now as i64),
                    ],
                )
                .await
                .map_err(db_error)?;
            let Some(user) = row.as_ref().map(user_of) else {
                return Ok(None);
            };
            let revoked = revoke_all(&tx, &user.id, Some(&c.keep_sid)).await?;
            Ok(Some((user, revoked)))
        })
    }

    pub async fn request_reset(
        &self,
        email: &str,
        ticket: &ResetTicket,
        resend: u64,
        now: u64,
    ) -> Result<Option<User>, StoreError> {
        in_tx!(self, |tx| {
            let row = tx
                .query_opt(
                    &format!(
                        "UPDATE gateway_users
                             SET reset_hash = $2, reset_expires_at = $3, reset_sent_at = $4
                             WHERE lower(email) = lower($1) AND NOT disabled
                               AND (reset_sent_at IS NULL OR reset_sent_at + $5 <= $4)
                             RETURNING {USER_COLUMNS}"
                    ),
                    &[
                        &email,
                        &ticket.hash,
                        &(ticket.expires_at as i64),
                        &(now as i64),
                        &(resend as i64),
                    ],
                )
                .await
                .map_err(db_error)?;
            Ok(row.as_ref().map(user_of))
        })
    }

    pub async fn update_user(
        &self,
        email: &str,
        revoke: bool,
        change: impl FnOnce(&mut User) + Send,
    ) -> Result<(User, Vec<String>), StoreError> {
        in_tx!(self, |tx| {
            let row = tx
                .query_opt(
                    &format!(
                        "SELECT {USER_COLUMNS} FROM gateway_users
                             WHERE lower(email) = lower($1) FOR UPDATE"
                    ),
                    &[&email],
                )
                .await
                .map_err(db_error)?;
            let mut user = row
                .as_ref()
                .map(user_of)
                .ok_or_else(|| StoreError::NoSuchUser(email.to_string()))?;
            change(&mut user);
            let reset = user.reset.as_ref();
            tx.execute(
                "UPDATE gateway_users SET first_name = $2, last_name = $3,
                         password_hash = $4, scopes = $5, disabled = $6,
                         reset_hash = $7, reset_expires_at = $8, reset_sent_at = $9
                     WHERE id = $1",
                &[
                    &user.id,
                    &user.first_name,
                    &user.last_name,
                    &user.password_hash,
                    &user.scopes,
                    &user.disabled,
                    &reset.map(|r| r.hash.as_str()),
                    &reset.map(|r| r.expires_at as i64),
                    &user.reset_sent_at.map(|t| t as i64),
                ],
            )
            .await
            .map_err(db_error)?;
            let revoked = match revoke {
                true => revoke_all(&tx, &user.id, None).await?,
                false => Vec::new(),
            };
            Ok((user, revoked))
        })
    }

    /// Counts one sign-in attempt of `email` before its password is checked:
    /// `Ok(None)` lets it through (the attempt stays counted as a failure
    /// unless `clear_signin` follows), `Ok(Some(ms))` refuses it for that
    /// long. Attempts of one email take turns on an advisory lock, so a
    /// parallel burst over many gateways gets at most `failures` checks.
    pub async fn reserve_signin(
        &self,
        email: &str,
        failures: u32,
        window: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let window_ms = window.as_millis() as i64;
        in_tx!(self, |tx| {
            // The lock first, in a statement of its own: the count below then
            // sees every attempt committed by whoever held it before.
            tx.execute(
                &format!("SELECT {NOT_DURABLE}, pg_advisory_xact_lock(hashtextextended($1, 7))"),
                &[&email],
            )
            .await
            .map_err(db_error)?;
            let row = tx
                .query_one(
                    &format!(
                        "WITH n AS (SELECT {DB_NOW_MS} AS t),
                              c AS (SELECT count(*) AS k, min(at_ms) AS oldest
                                    FROM gateway_signin_attempts, n
                                    WHERE email = $1 AND at_ms > n.t - $2),
                              counted AS (INSERT INTO gateway_signin_attempts (email, at_ms)
                                          SELECT $1, n.t FROM n, c WHERE c.k < $3)
                         SELECT n.t, c.k, c.oldest FROM n, c"
                    ),
                    &[&email, &window_ms, &i64::from(failures)],
                )
                .await
                .map_err(db_error)?;
            let (now, count, oldest): (i64, i64, Option<i64>) =
                (row.get(0), row.get(1), row.get(2));
            if count >= i64::from(failures) {
                let left = oldest.map_or(window_ms, |t| t + window_ms - now);
                return Ok(Some(left.max(1) as u64));
            }
            Ok(None)
        })
    }

    /// A correct password clears the email's count, on every gateway.
    pub async fn clear_signin(&self, email: &str) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            tx.execute(&format!("SELECT {NOT_DURABLE}"), &[])
                .await
                .map_err(db_error)?;
            tx.execute(
                "DELETE FROM gateway_signin_attempts WHERE email = $1",
                &[&email],
            )
            .await
            .map_err(db_error)?;
            Ok(())
        })
    }

    /// The generated key of `kind`: `fresh` if this call is the first to
    /// store one, else the one stored first (by whichever gateway).
    pub async fn generated_key(&self, kind: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        in_tx!(self, |tx| {
            tx.execute(
                "INSERT INTO gateway_keys (kind, key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&kind, &fresh],
            )
            .await
            .map_err(db_error)?;
            let row = tx
                .query_one("SELECT key FROM gateway_keys WHERE kind = $1", &[&kind])
                .await
                .map_err(db_error)?;
            Ok(row.get(0))
        })
    }
}

fn qualified_user_columns() -> String {
    USER_COLUMNS
        .split(", ")
        .map(|c| format!("u.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn user_of(row: &Row) -> User {
    let reset = match (
        row.get::<_, Option<String>>(8),
        row.get::<_, Option<i64>>(9),
    ) {
        (Some(hash), Some(at)) => Some(ResetTicket {
            hash,
            expires_at: at as u64,
        }),
        _ => None,
    };
    User {
        id: row.get(0),
        email: row.get(1),
        first_name: row.get(2),
        last_name: row.get(3),
        password_hash: row.get(4),
        scopes: row.get(5),
        disabled: row.get(6),
        created_at: row.get::<_, i64>(7) as u64,
        reset,
        reset_sent_at: row.get::<_, Option<i64>>(10).map(|t| t as u64),
    }
}

/// The session columns of a row that has the user's first.
fn session_of(row: &Row, user_id: &str) -> Session {
    const AT: usize = 11;
    Session {
        user_id: user_id.to_string(),
        refresh_jti: row.get(AT),
        revoked: row.get(AT + 1),
        expires_at: row.get::<_, i64>(AT + 2) as u64,
        created_at: row.get::<_, i64>(AT + 3) as u64,
        refreshed_at: row.get::<_, Option<i64>>(AT + 4).map(|t| t as u64),
        previous_jti: row.get(AT + 5),
    }
}

/// What a presented refresh token is. A taken one (current, or within
/// the grace) holds its session's row lock until the transaction ends, so
/// concurrent presentations on any gateway take turns.
async fn present(
    tx: &Transaction<'_>,
    p: &Presentation,
    now: u64,
) -> Result<Presented, StoreError> {
    let row = tx
        .query_opt(
            &format!(
                "SELECT {}, {SESSION_COLUMNS}
                     FROM gateway_sessions s JOIN gateway_users u ON u.id = s.user_id
                     WHERE s.sid = $1 AND s.user_id = $2
                       AND (s.current_jti = $3
                            OR (s.previous_jti = $3 AND s.refreshed_at + $5 > $4))
                       AND NOT s.revoked AND s.expires_at > $4 AND NOT u.disabled
                     FOR UPDATE OF s",
                qualified_user_columns()
            ),
            &[&p.sid, &p.user_id, &p.jti, &(now as i64), &(p.grace as i64)],
        )
        .await
        .map_err(db_error)?;
    let Some(row) = row else {
        return revoke_if_reused(tx, p, now).await;
    };
    let user = user_of(&row);
    let session = session_of(&row, &user.id);
    match session.refresh_jti == p.jti {
        true => Ok(Presented::Current(user)),
        false => Ok(Presented::Grace(user, session)),
    }
}

/// Revokes every live session of the user but `keep` and announces it;
/// returns them.
async fn revoke_all(
    tx: &Transaction<'_>,
    user_id: &str,
    keep: Option<&str>,
) -> Result<Vec<String>, StoreError> {
    let revoked: Vec<String> = tx
        .query(
            "UPDATE gateway_sessions SET revoked = true
                 WHERE user_id = $1 AND NOT revoked AND sid IS DISTINCT FROM $2
                 RETURNING sid",
            &[&user_id, &keep],
        )
        .await
        .map_err(db_error)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    announce(tx, &revoked).await?;
    Ok(revoked)
}

async fn insert_session(
    tx: &Transaction<'_>,
    sid: &str,
    session: &Session,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO gateway_sessions
             (sid, user_id, current_jti, revoked, expires_at, created_at, refreshed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &sid,
            &session.user_id,
            &session.refresh_jti,
            &session.revoked,
            &(session.expires_at as i64),
            &(session.created_at as i64),
            &session.refreshed_at.map(|t| t as i64),
        ],
    )
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The presented token was not current: if its session is live, it was
/// rotated already, so this is reuse and the session is revoked now.
async fn revoke_if_reused(
    tx: &Transaction<'_>,
    p: &Presentation,
    now: u64,
) -> Result<Presented, StoreError> {
    let reused = tx
        .query_opt(
            "UPDATE gateway_sessions SET revoked = true
             WHERE sid = $1 AND user_id = $2 AND current_jti <> $3
               AND NOT revoked AND expires_at > $4
             RETURNING sid",
            &[&p.sid, &p.user_id, &p.jti, &(now as i64)],
        )
        .await
        .map_err(db_error)?;
    match reused {
        Some(_) => {
            announce(tx, std::slice::from_ref(&p.sid)).await?;
            Ok(Presented::Reused)
        }
        None => Ok(Presented::Dead),
    }
}

/// NOTIFY payloads are at most 8000 bytes: sids (36 bytes) go 200 at a time.
const SIDS_PER_NOTIFY: usize = 200;

/// Appends the revocations to the feed and announces them, in the caller's
/// transaction: both happen at its commit, or neither.
async fn announce(tx: &Transaction<'_>, sids: &[String]) -> Result<(), StoreError> {
    if sids.is_empty() {
        return Ok(());
    }
    tx.execute(
        &format!(
            "INSERT INTO gateway_revocations (sid, at_ms) SELECT unnest($1::text[]), {DB_NOW_MS}"
        ),
        &[&sids],
    )
    .await
    .map_err(db_error)?;
    for chunk in sids.chunks(SIDS_PER_NOTIFY) {
        tx.execute(
            "SELECT pg_notify('gateway_revocations', $1)",
            &[&chunk.join(",")],
        )
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

async fn revoked_sessions(c: &tokio_postgres::Client) -> Result<Vec<String>, StoreError> {
    let rows = c
        .query("SELECT sid FROM gateway_sessions WHERE revoked", &[])
        .await
        .map_err(db_error)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
