//! The embedded backend: one redb file that one process holds. Every method
//! is synchronous and may touch the disk, so `Store` calls them on blocking
//! threads. Each write is one transaction, committed with redb's default
//! (immediate, fsynced) durability before the method returns: acknowledged
//! means on disk.

use std::ops::Bound;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use redb::{
    Database, MultimapTableDefinition, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use super::{Cursor, PasswordChange, Presentation, Presented, SignoutScope, StoreError, UserRef};
use crate::identity::records::{Listed, ResetTicket, Session, User};

/// redb's page cache (its default is 1 GiB): enough for ~100k users' hot
/// pages without letting the store dominate the gateway's memory.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// user id -> `User`
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// email -> user id
const EMAILS: TableDefinition<&str, &str> = TableDefinition::new("emails");
/// session id (`sid`) -> `Session`
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// user id -> its session ids, to revoke them all at once
const USER_SESSIONS: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("user_sessions");
/// (created_at, user id): users in creation order, for paging
const BY_CREATION: TableDefinition<(u64, &str), ()> = TableDefinition::new("users_by_creation");
/// SHA-256 (hex) of a user's outstanding reset token -> user id
const RESETS: TableDefinition<&str, &str> = TableDefinition::new("reset_tokens");

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl RedbStore {
    /// Opens (or creates, with its folder) the store. Fails with `InUse` when
    /// another process has it open: redb locks the file. Created files and
    /// folders are private to the gateway's user (password hashes live here).
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| StoreError::Folder {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        // An empty file is one redb initialises; making it first sets the mode.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|source| StoreError::Folder {
                path: path.to_path_buf(),
                source,
            })?;
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse(path.to_path_buf()),
                e => StoreError::Db(e.into()),
            })?;
        let store = RedbStore {
            db,
            path: path.to_path_buf(),
        };
        store.write(|tx| {
            tx.open_table(USERS)?;
            tx.open_table(EMAILS)?;
            tx.open_table(SESSIONS)?;
            tx.open_multimap_table(USER_SESSIONS)?;
            tx.open_table(RESETS)?;
            index_creation_order(tx)
        })?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Claims the email and starts the first session in one transaction, so
    /// of concurrent sign-ups of one email exactly one succeeds.
    pub fn create_user(&self, user: &User, first: Option<&Listed>) -> Result<(), StoreError> {
        self.write(|tx| {
            {
                let mut emails = tx.open_table(EMAILS)?;
                if emails.get(user.email.as_str())?.is_some() {
                    return Err(StoreError::EmailTaken);
                }
                emails.insert(user.email.as_str(), user.id.as_str())?;
            }
            put_user(tx, user)?;
            if let Some((sid, session)) = first {
                put_session(tx, sid, session)?;
            }
            Ok(())
        })
    }

    pub fn email_taken(&self, email: &str) -> Result<bool, StoreError> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(EMAILS)?.get(email)?.is_some())
    }

    pub fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let tx = self.db.begin_read()?;
        let Some(id) = tx.open_table(EMAILS)?.get(email)? else {
            return Ok(None);
        };
        let users = tx.open_table(USERS)?;
        let user = users.get(id.value())?;
        Ok(user
            .map(|u| serde_json::from_slice(u.value()))
            .transpose()?)
    }

    pub fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let tx = self.db.begin_read()?;
        let users = tx.open_table(USERS)?;
        let user = users.get(id)?;
        Ok(user
            .map(|u| serde_json::from_slice(u.value()))
            .transpose()?)
    }

    pub fn start_session(&self, sid: &str, session: &Session) -> Result<(), StoreError> {
        self.write(|tx| put_session(tx, sid, session))
    }

    /// Rotation: if the presented token is the session's current one,
    /// replace it with `next_jti` (valid until `expires_at`); the one it
    /// replaced within the grace gets the session as it is; an older one
    /// revokes the session (reuse detection).
    pub fn rotate(
        &self,
        p: &Presentation,
        next_jti: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<Presented, StoreError> {
        self.write(|tx| {
            let (presented, session) = present(tx, p, now)?;
            if let (Presented::Current(_), Some(mut s)) = (&presented, session) {
                s.rotate(next_jti, expires_at, now);
                put_session(tx, &p.sid, &s)?;
            }
            Ok(presented)
        })
    }

    /// Sign-out: if rotation would take the token, revoke what `scope`
    /// names; returns the sessions revoked.
    pub fn end_session(
        &self,
        p: &Presentation,
        scope: SignoutScope,
        now: u64,
    ) -> Result<(Presented, Vec<String>), StoreError> {
        self.write(|tx| {
            let (presented, _) = present(tx, p, now)?;
            let revoked = match presented {
                Presented::Current(_) | Presented::Grace(..) => {
                    let keep = (scope == SignoutScope::Others).then_some(p.sid.as_str());
                    match scope {
                        SignoutScope::Local => revoke_one(tx, &p.sid)?,
                        SignoutScope::Others | SignoutScope::Global => {
                            revoke_all(tx, &p.user_id, None, keep)?
                        }
                    }
                }
                Presented::Reused | Presented::Dead => Vec::new(),
            };
            Ok((presented, revoked))
        })
    }

    /// The ids of revoked sessions still kept (their access tokens may live).
    pub fn revoked_sessions(&self) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin_read()?;
        let sessions = tx.open_table(SESSIONS)?;
        let mut revoked = Vec::new();
        for entry in sessions.iter()? {
            let (sid, value) = entry?;
            let s: Session = serde_json::from_slice(value.value())?;
            if s.revoked {
                revoked.push(sid.value().to_string());
            }
        }
        Ok(revoked)
    }

    /// Deletes sessions whose refresh token expired more than `grace` seconds
    /// ago (the grace outlives every access token issued from them); returns
    /// their ids.
    pub fn purge_expired(&self, now: u64, grace: u64) -> Result<Vec<String>, StoreError> {
        self.write(|tx| {
            let mut sessions = tx.open_table(SESSIONS)?;
            let mut index = tx.open_multimap_table(USER_SESSIONS)?;
            let mut dead = Vec::new();
            for entry in sessions.iter()? {
                let (sid, value) = entry?;
                let s: Session = serde_json::from_slice(value.value())?;
                if s.expires_at.saturating_add(grace) < now {
                    dead.push((sid.value().to_string(), s.user_id));
                }
            }
            for (sid, user_id) in &dead {
                sessions.remove(sid.as_str())?;
                index.remove(user_id.as_str(), sid.as_str())?;
            }
            Ok(dead.into_iter().map(|(sid, _)| sid).collect())
        })
    }

    /// Up to `limit` users after `after`, in creation order, whose email
    /// contains `filter` (lower case) when one is given.
    pub fn users_page(
        &self,
        after: Option<&Cursor>,
        limit: usize,
        filter: Option<&str>,
    ) -> Result<Vec<User>, StoreError> {
        let tx = self.db.begin_read()?;
        let order = tx.open_table(BY_CREATION)?;
        let users = tx.open_table(USERS)?;
        let start = match after {
            Some(c) => Bound::Excluded((c.created_at, c.id.as_str())),
            None => Bound::Unbounded,
        };
        let mut page = Vec::new();
        for entry in order.range::<(u64, &str)>((start, Bound::Unbounded))? {
            if page.len() == limit {
                break;
            }
            let (key, _) = entry?;
            let Some(value) = users.get(key.value().1)? else {
                continue;
            };
            let user: User = serde_json::from_slice(value.value())?;
            if filter.is_none_or(|f| user.email.contains(f)) {
                page.push(user);
            }
        }
        Ok(page)
    }

    /// The user and their live sessions, newest first.
    pub fn user_sessions(
        &self,
        who: &UserRef,
        now: u64,
    ) -> Result<(User, Vec<Listed>), StoreError> {
        let user = match who {
            UserRef::Email(email) => self.required_user(email)?,
            UserRef::Id(id) => self.user_by_id(id)?.ok_or_else(|| no_such(who))?,
        };
        let tx = self.db.begin_read()?;
        let index = tx.open_multimap_table(USER_SESSIONS)?;
        let sessions = tx.open_table(SESSIONS)?;
        let mut live = Vec::new();
        for sid in index.get(user.id.as_str())? {
            let sid = sid?;
            if let Some(s) = sessions.get(sid.value())? {
                let s: Session = serde_json::from_slice(s.value())?;
                if s.is_live(now) {
                    live.push((sid.value().to_string(), s));
                }
            }
        }
        live.sort_by(|a, b| b.1.created_at.cmp(&a.1.created_at).then(a.0.cmp(&b.0)));
        Ok((user, live))
    }

    /// Deletes the user (their email may sign up again). Their sessions are
    /// kept, revoked and expiring now, until the purge: their access tokens
    /// stay refused after a restart. Returns the sessions it revoked.
    pub fn delete_user(&self, email: &str, now: u64) -> Result<Vec<String>, StoreError> {
        self.write(|tx| {
            let user = user_in(tx, email)?;
            let revoked = revoke_all(tx, &user.id, Some(now), None)?;
            tx.open_table(USERS)?.remove(user.id.as_str())?;
            tx.open_table(EMAILS)?.remove(user.email.as_str())?;
            tx.open_table(BY_CREATION)?
                .remove((user.created_at, user.id.as_str()))?;
            if let Some(r) = &user.reset {
                tx.open_table(RESETS)?.remove(r.hash.as_str())?;
            }
            Ok(revoked)
        })
    }

    /// Revokes one live session of the user; false when `sid` is none.
    pub fn revoke_session(&self, who: &UserRef, sid: &str, now: u64) -> Result<bool, StoreError> {
        self.write(|tx| {
            let user = user_ref_in(tx, who)?;
            match get_session(tx, sid)?.filter(|s| s.user_id == user.id && s.is_live(now)) {
                Some(_) => Ok(!revoke_one(tx, sid)?.is_empty()),
                None => Ok(false),
            }
        })
    }

    /// Replaces the password if it is still `checked_hash` and `keep_sid`
    /// is a live session of the enabled user: voids the reset token and
    /// revokes every other session.
    pub fn change_password(
        &self,
        c: &PasswordChange,
        now: u64,
    ) -> Result<Option<(User, Vec<String>)>, StoreError> {
        self.write(|tx| {
            let Some(mut user) = get_user(tx, &c.user_id)? else {
                return Ok(None);
            };
            let kept = get_session(tx, &c.keep_sid)?
                .is_some_and(|s| s.user_id == user.id && s.is_live(now));
            if user.disabled || !kept || user.password_hash != c.checked_hash {
                return Ok(None);
            }
            user.password_hash = c.new_hash.clone();
            user.reset = None;
            put_user(tx, &user)?;
            let revoked = revoke_all(tx, &user.id, None, Some(&c.keep_sid))?;
            Ok(Some((user, revoked)))
        })
    }

    /// Gives the enabled user with this email `ticket`, unless one was
    /// made for the webhook less than `resend` seconds ago.
    pub fn request_reset(
        &self,
        email: &str,
        ticket: ResetTicket,
        resend: u64,
        now: u64,
    ) -> Result<Option<User>, StoreError> {
        self.write(|tx| {
            let mut user = match user_in(tx, email) {
                Ok(user) if !user.disabled => user,
                Ok(_) | Err(StoreError::NoSuchUser(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            if user
                .reset_sent_at
                .is_some_and(|at| now < at.saturating_add(resend))
            {
                return Ok(None);
            }
            user.reset = Some(ticket);
            user.reset_sent_at = Some(now);
            put_user(tx, &user)?;
            Ok(Some(user))
        })
    }

    /// The enabled user whose outstanding reset token hashes to `hash`.
    pub fn user_by_reset(&self, hash: &str, now: u64) -> Result<Option<User>, StoreError> {
        let tx = self.db.begin_read()?;
        let Some(id) = tx.open_table(RESETS)?.get(hash)? else {
            return Ok(None);
        };
        let users = tx.open_table(USERS)?;
        let Some(user) = users.get(id.value())? else {
            return Ok(None);
        };
        let user: User = serde_json::from_slice(user.value())?;
        Ok(resettable(&user, hash, now).then_some(user))
    }

    /// Uses the reset token: sets the password, voids the token and revokes
    /// every session, or does nothing (`None`) when the token is not valid.
    pub fn confirm_reset(
        &self,
        hash: &str,
        password_hash: &str,
        now: u64,
    ) -> Result<Option<(User, Vec<String>)>, StoreError> {
        self.write(|tx| {
            let id = match tx.open_table(RESETS)?.get(hash)? {
                Some(id) => id.value().to_string(),
                None => return Ok(None),
            };
            let Some(mut user) = get_user(tx, &id)?.filter(|u| resettable(u, hash, now)) else {
                return Ok(None);
            };
            user.password_hash = password_hash.to_string();
            user.reset = None;
            put_user(tx, &user)?;
            let revoked = revoke_all(tx, &user.id, None, None)?;
            Ok(Some((user, revoked)))
        })
    }

    /// Changes one user; `revoke` also revokes all their sessions. Returns the
    /// changed user and the sessions it revoked.
    pub fn update_user(
        &self,
        email: &str,
        revoke: bool,
        change: impl FnOnce(&mut User),
    ) -> Result<(User, Vec<String>), StoreError> {
        self.write(|tx| {
            let mut user = user_in(tx, email)?;
            change(&mut user);
            put_user(tx, &user)?;
            let revoked = match revoke {
                true => revoke_all(tx, &user.id, None, None)?,
                false => Vec::new(),
            };
            Ok((user, revoked))
        })
    }

    pub fn required_user(&self, email: &str) -> Result<User, StoreError> {
        self.user_by_email(email)?
            .ok_or_else(|| StoreError::NoSuchUser(email.to_string()))
    }

    /// Runs `f` in one write transaction and commits (durably) if it succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self.db.begin_write()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

fn get_user(tx: &WriteTransaction, id: &str) -> Result<Option<User>, StoreError> {
    let users = tx.open_table(USERS)?;
    let user = users.get(id)?;
    Ok(user
        .map(|u| serde_json::from_slice(u.value()))
        .transpose()?)
}

/// Writes the user and keeps the creation-order and reset-token indexes
/// in step with it.
fn put_user(tx: &WriteTransaction, user: &User) -> Result<(), StoreError> {
    let old_reset = get_user(tx, &user.id)?.and_then(|u| u.reset);
    let bytes = serde_json::to_vec(user)?;
    tx.open_table(USERS)?
        .insert(user.id.as_str(), bytes.as_slice())?;
    tx.open_table(BY_CREATION)?
        .insert((user.created_at, user.id.as_str()), ())?;
    let new_reset = user.reset.as_ref().map(|r| r.hash.as_str());
    let old_reset = old_reset.as_ref().map(|r| r.hash.as_str());
    if old_reset != new_reset {
        let mut resets = tx.open_table(RESETS)?;
        if let Some(old) = old_reset {
            resets.remove(old)?;
        }
        if let Some(new) = new_reset {
            resets.insert(new, user.id.as_str())?;
        }
    }
    Ok(())
}

/// The user named, in a write transaction.
fn user_ref_in(tx: &WriteTransaction, who: &UserRef) -> Result<User, StoreError> {
    match who {
        UserRef::Email(email) => user_in(tx, email),
        UserRef::Id(id) => get_user(tx, id)?.ok_or_else(|| no_such(who)),
    }
}

fn no_such(who: &UserRef) -> StoreError {
    StoreError::NoSuchUser(who.shown())
}

/// What a presented refresh token is, and its session when it is taken.
fn present(
    tx: &WriteTransaction,
    p: &Presentation,
    now: u64,
) -> Result<(Presented, Option<Session>), StoreError> {
    let Some(mut session) = get_session(tx, &p.sid)? else {
        return Ok((Presented::Dead, None));
    };
    if session.user_id != p.user_id || !session.is_live(now) {
        return Ok((Presented::Dead, None));
    }
    let current = session.refresh_jti == p.jti;
    if !current && !session.in_grace(&p.jti, now, p.grace) {
        session.revoked = true;
        put_session(tx, &p.sid, &session)?;
        return Ok((Presented::Reused, None));
    }
    let user = match get_user(tx, &p.user_id)? {
        Some(user) if !user.disabled => user,
        _ => return Ok((Presented::Dead, None)),
    };
    match current {
        true => Ok((Presented::Current(user), Some(session))),
        false => Ok((Presented::Grace(user, session.clone()), Some(session))),
    }
}

/// Revokes one session if it is not yet; returns it if it was revoked now.
fn revoke_one(tx: &WriteTransaction, sid: &str) -> Result<Vec<String>, StoreError> {
    match get_session(tx, sid)? {
        Some(mut s) if !s.revoked => {
            s.revoked = true;
            put_session(tx, sid, &s)?;
            Ok(vec![sid.to_string()])
        }
        _ => Ok(Vec::new()),
    }
}

/// The user with this email, in a write transaction.
fn user_in(tx: &WriteTransaction, email: &str) -> Result<User, StoreError> {
    let no_such = || StoreError::NoSuchUser(email.to_string());
    let id = match tx.open_table(EMAILS)?.get(email)? {
        Some(id) => id.value().to_string(),
        None => return Err(no_such()),
    };
    get_user(tx, &id)?.ok_or_else(no_such)
}

/// Revokes every session of the user not revoked yet but `keep`; with
/// `expire`, also makes every session expire then (so the purge deletes it
/// after the grace). Returns the sessions it revoked.
fn revoke_all(
    tx: &WriteTransaction,
    user_id: &str,
    expire: Option<u64>,
    keep: Option<&str>,
) -> Result<Vec<String>, StoreError> {
    let sids: Vec<String> = tx
        .open_multimap_table(USER_SESSIONS)?
        .get(user_id)?
        .map(|sid| sid.map(|s| s.value().to_string()))
        .filter(|sid| sid.as_ref().map_or(true, |sid| Some(sid.as_str()) != keep))
        .collect::<Result<_, _>>()?;
    let mut revoked = Vec::new();
    for sid in sids {
        let Some(mut s) = get_session(tx, &sid)? else {
            continue;
        };
        let expires_at = expire.map_or(s.expires_at, |at| s.expires_at.min(at));
        if s.revoked && s.expires_at == expires_at {
            continue;
        }
        if !s.revoked {
            revoked.push(sid.clone());
        }
        s.revoked = true;
        s.expires_at = expires_at;
        put_session(tx, &sid, &s)?;
    }
    Ok(revoked)
}

/// Stores written before the creation-order index get it built once.
fn index_creation_order(tx: &WriteTransaction) -> Result<(), StoreError> {
    let users = tx.open_table(USERS)?;
    let mut order = tx.open_table(BY_CREATION)?;
    if order.len()? == users.len()? {
        return Ok(());
    }
    for entry in users.iter()? {
        let user: User = serde_json::from_slice(entry?.1.value())?;
        order.insert((user.created_at, user.id.as_str()), ())?;
    }
    Ok(())
}

/// Is `hash` this user's outstanding reset token, still valid?
fn resettable(user: &User, hash: &str, now: u64) -> bool {
    !user.disabled
        && user
            .reset
            .as_ref()
            .is_some_and(|r| r.hash == hash && now < r.expires_at)
}

fn get_session(tx: &WriteTransaction, sid: &str) -> Result<Option<Session>, StoreError> {
    let sessions = tx.open_table(SESSIONS)?;
    let session = sessions.get(sid)?;
    Ok(session
        .map(|s| serde_json::from_slice(s.value()))
        .transpose()?)
}

/// Writes the session and indexes it under its user (idempotent).
fn put_session(tx: &WriteTransaction, sid: &str, session: &Session) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(session)?;
    tx.open_table(SESSIONS)?.insert(sid, bytes.as_slice())?;
    tx.open_multimap_table(USER_SESSIONS)?
        .insert(session.user_id.as_str(), sid)?;
    Ok(())
}

#[cfg(test)]
impl RedbStore {
    /// Is this session live? (Tests ask; the authorizer keeps its own set.)
    pub fn session_live(&self, sid: &str, now: u64) -> Result<bool, StoreError> {
        let tx = self.db.begin_read()?;
        let sessions = tx.open_table(SESSIONS)?;
        let session: Option<Session> = sessions
            .get(sid)?
            .map(|s| serde_json::from_slice(s.value()))
            .transpose()?;
        Ok(session.is_some_and(|s| s.is_live(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(email: &str) -> User {
        User {
            id: uuid::Uuid::new_v4().to_string(),
            email: email.to_string(),
            first_name: "A".into(),
            last_name: "B".into(),
            password_hash: "h".into(),
            scopes: vec![],
            disabled: false,
            created_at: 1,
            reset: None,
            reset_sent_at: None,
        }
    }

    /// `jti` of session `sid` presented, with `grace` seconds of reuse interval.
    fn at(sid: &str, user_id: &str, jti: &str, grace: u64) -> Presentation {
        Presentation {
            sid: sid.into(),
            user_id: user_id.into(),
            jti: jti.into(),
            grace,
        }
    }

    fn session(user: &User, jti: &str, expires_at: u64) -> Session {
        Session {
            user_id: user.id.clone(),
            refresh_jti: jti.into(),
            revoked: false,
            expires_at,
            created_at: 0,
            refreshed_at: None,
            previous_jti: None,
        }
    }

    fn first(sid: &str, s: Session) -> Option<Listed> {
        Some((sid.to_string(), s))
    }

    #[test]
    fn email_is_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("d/users.redb")).unwrap();
        let a = user("a@x.io");
        store
            .create_user(&a, first("s1", session(&a, "j", 100)).as_ref())
            .unwrap();
        let b = user("a@x.io");
        let err = store.create_user(&b, first("s2", session(&b, "j", 100)).as_ref());
        assert!(matches!(err, Err(StoreError::EmailTaken)));
        assert_eq!(store.users_page(None, 10, None).unwrap(), vec![a.clone()]);
        assert_eq!(store.user_by_email("a@x.io").unwrap(), Some(a));
    }

    #[test]
    fn rotation_then_reuse_revokes_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("users.redb")).unwrap();
        let a = user("a@x.io");
        store
            .create_user(&a, first("s", session(&a, "j1", 100)).as_ref())
            .unwrap();
        let r = store
            .rotate(&at("s", &a.id, "j1", 0), "j2", 200, 10)
            .unwrap();
        assert_eq!(r, Presented::Current(a.clone()));
        assert_eq!(
            store
                .rotate(&at("s", &a.id, "j1", 0), "j3", 200, 11)
                .unwrap(),
            Presented::Reused
        );
        // The newest token died with the session.
        assert_eq!(
            store
                .rotate(&at("s", &a.id, "j2", 0), "j4", 200, 12)
                .unwrap(),
            Presented::Dead
        );
        assert!(!store.session_live("s", 12).unwrap());
    }

    #[test]
    fn expired_sessions_are_purged_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("users.redb")).unwrap();
        let a = user("a@x.io");
        store
            .create_user(&a, first("old", session(&a, "j", 100)).as_ref())
            .unwrap();
        store.start_session("new", &session(&a, "k", 1000)).unwrap();
        assert!(store.purge_expired(150, 60).unwrap().is_empty());
        assert_eq!(store.purge_expired(161, 60).unwrap(), ["old"]);
        assert!(store.session_live("new", 161).unwrap());
        assert_eq!(
            store
                .user_sessions(&UserRef::Email("a@x.io".into()), 161)
                .unwrap()
                .1
                .len(),
            1
        );
    }

    #[test]
    fn a_new_store_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/users.redb");
        RedbStore::open(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }

    #[test]
    fn a_second_open_is_refused_while_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.redb");
        let _held = RedbStore::open(&path).unwrap();
        assert!(matches!(RedbStore::open(&path), Err(StoreError::InUse(_))));
    }

    #[test]
    fn disabling_revokes_every_session() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("users.redb")).unwrap();
        let a = user("a@x.io");
        store
            .create_user(&a, first("s1", session(&a, "j", 100)).as_ref())
            .unwrap();
        store.start_session("s2", &session(&a, "k", 100)).unwrap();
        let (u, revoked) = store
            .update_user("a@x.io", true, |u| u.disabled = true)
            .unwrap();
        assert!(u.disabled);
        assert_eq!(revoked.len(), 2);
        let mut listed = store.revoked_sessions().unwrap();
        listed.sort();
        assert_eq!(listed, ["s1", "s2"]);
        assert_eq!(
            store
                .rotate(&at("s1", &a.id, "j", 0), "j2", 200, 10)
                .unwrap(),
            Presented::Dead
        );
    }

    #[test]
    fn users_page_in_creation_order_with_a_cursor_and_a_filter() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("users.redb")).unwrap();
        let mut made = Vec::new();
        for (i, email) in ["c@x.io", "a@y.io", "b@x.io", "d@y.io", "e@x.io"]
            .iter()
            .enumerate()
        {
            let mut u = user(email);
            u.created_at = 10 + (i as u64) / 2;
            store.create_user(&u, None).unwrap();
            made.push(u);
        }
        made.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store.users_page(after.as_ref(), 2, None).unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().map(Cursor::after);
            seen.extend(page);
        }
        assert_eq!(seen, made);
        let xs = store.users_page(None, 10, Some("@x.")).unwrap();
        assert_eq!(xs.len(), 3);
        assert!(xs.iter().all(|u| u.email.ends_with("@x.io")));
    }

    #[test]
    fn a_deleted_user_frees_the_email_and_keeps_its_sessions_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("users.redb")).unwrap();
        let a = user("a@x.io");
        store
            .create_user(&a, first("s1", session(&a, "j", 1000)).as_ref())
            .unwrap();
        assert_eq!(store.delete_user("a@x.io", 50).unwrap(), ["s1"]);
        assert!(matches!(
            store.delete_user("a@x.io", 50),
            Err(StoreError::NoSuchUser(_))
        ));
        assert!(!store.email_taken("a@x.io").unwrap());
        assert_eq!(store.revoked_sessions().unwrap(), ["s1"]);
        // Purged once the grace after the deletion has passed.
        assert!(store.purge_expired(100, 60).unwrap().is_empty());
        assert_eq!(store.purge_expired(111, 60).unwrap(), ["s1"]);
        let again = user("a@x.io");
        store.create_user(&again, None).unwrap();
        assert!(store.users_page(None, 10, None).unwrap() == vec![again]);
    }

    #[test]
    fn a_reset_token_is_single_use_superseded_and_voided_by_disabling() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("users.redb")).unwrap();
        let a = user("a@x.io");
        store
            .create_user(&a, first("s1", session(&a, "j", 1000)).as_ref())
            .unwrap();
        let ticket = |h: &str| {
            Some(crate::identity::records::ResetTicket {
                hash: h.into(),
                expires_at: 100,
            })
        };
        store
            .update_user("a@x.io", false, move |u| u.reset = ticket("h1"))
            .unwrap();
        store
            .update_user("a@x.io", false, move |u| u.reset = ticket("h2"))
            .unwrap();
        assert_eq!(store.user_by_reset("h1", 10).unwrap(), None);
        assert!(store.confirm_reset("h1", "new", 10).unwrap().is_none());
        assert!(store.user_by_reset("h2", 100).unwrap().is_none(), "expired");
        let (u, revoked) = store.confirm_reset("h2", "new", 10).unwrap().unwrap();
        assert_eq!(
            (u.password_hash.as_str(), revoked.as_slice()),
            ("new", &["s1".to_string()][..])
        );
        assert!(
            store.confirm_reset("h2", "newer", 11).unwrap().is_none(),
            "used"
        );
        store
            .update_user("a@x.io", false, move |u| u.reset = ticket("h3"))
            .unwrap();
        store.update_user("a@x.io", true, User::disable).unwrap();
        assert!(store.user_by_reset("h3", 10).unwrap().is_none());
    }

    #[test]
    fn one_session_is_revoked_only_for_its_own_user() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("users.redb")).unwrap();
        let (a, b) = (user("a@x.io"), user("b@x.io"));
        store
            .create_user(&a, first("sa", session(&a, "j", 1000)).as_ref())
            .unwrap();
        store
            .create_user(&b, first("sb", session(&b, "k", 1000)).as_ref())
            .unwrap();
        assert!(!store
            .revoke_session(&UserRef::Email("a@x.io".into()), "sb", 10)
            .unwrap());
        assert!(store
            .revoke_session(&UserRef::Email("a@x.io".into()), "sa", 10)
            .unwrap());
        assert!(!store
            .revoke_session(&UserRef::Email("a@x.io".into()), "sa", 10)
            .unwrap());
        assert!(store.session_live("sb", 10).unwrap());
    }

    #[test]
    fn the_replaced_token_gets_the_current_session_within_the_grace_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("users.redb")).unwrap();
        let a = user("a@x.io");
        store
            .create_user(&a, first("s", session(&a, "j1", 1000)).as_ref())
            .unwrap();
        store
            .rotate(&at("s", &a.id, "j1", 5), "j2", 900, 100)
            .unwrap();
        // j1 again, 4 s later: the session as it is (j2), nothing rotated.
        match store
            .rotate(&at("s", &a.id, "j1", 5), "j3", 905, 104)
            .unwrap()
        {
            Presented::Grace(u, s) => {
                assert_eq!(u, a);
                assert_eq!((s.refresh_jti.as_str(), s.expires_at), ("j2", 900));
                assert_eq!(s.refreshed_at, Some(100));
            }
            other => panic!("{other:?}"),
        }
        assert!(store.session_live("s", 104).unwrap());
        // Rotating j2 makes j1 older than the replaced token: reuse.
        store
            .rotate(&at("s", &a.id, "j2", 5), "j3", 910, 104)
            .unwrap();
        assert_eq!(
            store
                .rotate(&at("s", &a.id, "j1", 5), "j4", 910, 104)
                .unwrap(),
            Presented::Reused
        );
        assert!(!store.session_live("s", 104).unwrap());
        // And the replaced token after the grace is reuse too.
        store.start_session("t", &session(&a, "k1", 1000)).unwrap();
        store
            .rotate(&at("t", &a.id, "k1", 5), "k2", 900, 200)
            .unwrap();
        assert_eq!(
            store
                .rotate(&at("t", &a.id, "k1", 5), "k3", 900, 205)
                .unwrap(),
            Presented::Reused
        );
    }

    #[test]
    fn signout_scopes_revoke_the_session_the_others_or_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("users.redb")).unwrap();
        let (a, b) = (user("a@x.io"), user("b@x.io"));
        store
            .create_user(&a, first("a1", session(&a, "j1", 1000)).as_ref())
            .unwrap();
        store
            .create_user(&b, first("b1", session(&b, "k1", 1000)).as_ref())
            .unwrap();
        for sid in ["a2", "a3", "a4"] {
            store.start_session(sid, &session(&a, "j", 1000)).unwrap();
        }
        let (p, revoked) = store
            .end_session(&at("a1", &a.id, "j1", 0), SignoutScope::Others, 10)
            .unwrap();
        assert_eq!(p, Presented::Current(a.clone()));
        let mut revoked = revoked;
        revoked.sort();
        assert_eq!(revoked, ["a2", "a3", "a4"]);
        assert!(store.session_live("a1", 10).unwrap());
        let (_, revoked) = store
            .end_session(&at("a1", &a.id, "j1", 0), SignoutScope::Local, 10)
            .unwrap();
        assert_eq!(revoked, ["a1"]);
        // A token of a revoked session applies no scope.
        let (p, revoked) = store
            .end_session(&at("a1", &a.id, "j1", 0), SignoutScope::Global, 10)
            .unwrap();
        assert_eq!((p, revoked.len()), (Presented::Dead, 0));
        assert!(store.session_live("b1", 10).unwrap());
        store.start_session("a5", &session(&a, "j5", 1000)).unwrap();
        store.start_session("a6", &session(&a, "j6", 1000)).unwrap();
        let (_, revoked) = store
            .end_session(&at("a5", &a.id, "j5", 0), SignoutScope::Global, 10)
            .unwrap();
        assert_eq!(revoked.len(), 2);
        assert!(store.session_live("b1", 10).unwrap());
    }

    #[test]
    fn a_password_change_keeps_the_caller_and_needs_the_checked_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("users.redb")).unwrap();
        let a = user("a@x.io");
        store
            .create_user(&a, first("a1", session(&a, "j1", 1000)).as_ref())
            .unwrap();
        store.start_session("a2", &session(&a, "j2", 1000)).unwrap();
        store
            .update_user("a@x.io", false, |u| {
                u.reset = Some(ResetTicket {
                    hash: "r".into(),
                    expires_at: 1000,
                })
            })
            .unwrap();
        let change = |checked: &str, keep: &str| PasswordChange {
            user_id: a.id.clone(),
            keep_sid: keep.into(),
            checked_hash: checked.into(),
            new_hash: "h2".into(),
        };
        assert!(store
            .change_password(&change("stale", "a1"), 10)
            .unwrap()
            .is_none());
        let (user, revoked) = store
            .change_password(&change("h", "a1"), 10)
            .unwrap()
            .unwrap();
        assert_eq!(
            (user.password_hash.as_str(), revoked),
            ("h2", vec!["a2".to_string()])
        );
        assert!(store.session_live("a1", 10).unwrap());
        assert!(
            store.user_by_reset("r", 10).unwrap().is_none(),
            "reset voided"
        );
        // A revoked caller session changes nothing.
        assert!(store
            .change_password(&change("h2", "a2"), 10)
            .unwrap()
            .is_none());
    }

    #[test]
    fn reset_requests_are_one_per_resend_interval_for_enabled_users() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("users.redb")).unwrap();
        store.create_user(&user("a@x.io"), None).unwrap();
        let ticket = |h: &str| ResetTicket {
            hash: h.into(),
            expires_at: 5000,
        };
        assert!(store
            .request_reset("a@x.io", ticket("r1"), 60, 100)
            .unwrap()
            .is_some());
        assert!(store
            .request_reset("a@x.io", ticket("r2"), 60, 159)
            .unwrap()
            .is_none());
        assert!(
            store.user_by_reset("r1", 159).unwrap().is_some(),
            "not superseded"
        );
        assert!(store
            .request_reset("a@x.io", ticket("r3"), 60, 160)
            .unwrap()
            .is_some());
        assert!(
            store.user_by_reset("r1", 160).unwrap().is_none(),
            "superseded"
        );
        assert!(store
            .request_reset("nobody@x.io", ticket("r4"), 60, 160)
            .unwrap()
            .is_none());
        store.update_user("a@x.io", true, User::disable).unwrap();
        assert!(store
            .request_reset("a@x.io", ticket("r5"), 0, 500)
            .unwrap()
            .is_none());
    }
}
