//! Managing accounts as an operator (docs/admin.md): what the admin API and
//! `gateway users` do, in one place, over the store. Revocations made here
//! reach the running gateway's revoked set at once when there is one, and
//! the other gateways through the store's revocation feed.

use std::time::Duration;

use base64::Engine;

use super::error::AccountError;
use super::input::{self, check_new_password, Invalid};
use super::password::Passwords;
use super::records::{Listed, ResetTicket, User};
use super::store::{Cursor, Store, UserRef};
use super::tokens::new_id;
use crate::auth::jwt::now_unix;
use crate::auth::Revoked;
use crate::config::is_scope_token;

/// A user an operator creates; `scopes: None` gives the default scopes.
pub struct NewUser {
    pub email: String,
    pub password: String,
    pub first_name: String,
    pub last_name: String,
    pub scopes: Option<Vec<String>>,
}

/// A single-use password-reset token, shown once.
pub struct ResetToken {
    pub token: String,
    /// Unix seconds.
    pub expires_at: u64,
}

impl ResetToken {
    /// A new token valid `ttl` from `now`, and what the store keeps of it.
    pub fn new(ttl: Duration, now: u64) -> Result<(ResetToken, ResetTicket), AccountError> {
        let token = reset_token()?;
        let expires_at = now + ttl.as_secs();
        let ticket = ResetTicket {
            hash: reset_hash(&token),
            expires_at,
        };
        Ok((ResetToken { token, expires_at }, ticket))
    }
}

pub struct Accounts<'a> {
    pub store: &'a Store,
    pub passwords: &'a Passwords,
    pub default_scopes: &'a [String],
    pub reset_ttl: Duration,
    /// The running gateway's revoked set, when this runs inside one.
    pub revoked: Option<&'a Revoked>,
}

impl Accounts<'_> {
    /// Up to `limit` users after `after` in creation order, and the cursor
    /// of the next page when there is one.
    pub async fn page(
        &self,
        after: Option<Cursor>,
        limit: usize,
        filter: Option<String>,
    ) -> Result<(Vec<User>, Option<Cursor>), AccountError> {
        let filter = filter
            .map(|f| f.trim().to_lowercase())
            .filter(|f| !f.is_empty());
        let mut users = self.store.users_page(after, limit + 1, filter).await?;
        let next = match users.len() > limit {
            true => {
                users.truncate(limit);
                users.last().map(Cursor::after)
            }
            false => None,
        };
        Ok((users, next))
    }

    /// The user and their live sessions, newest first.
    pub async fn show(&self, email: &str) -> Result<(User, Vec<Listed>), AccountError> {
        Ok(self
            .store
            .user_sessions(UserRef::Email(normal(email)), now_unix())
            .await?)
    }

    /// Creates the user under the sign-up rules, without a session.
    pub async fn create(&self, new: NewUser) -> Result<User, AccountError> {
        let email = input::email(&new.email)?;
        let first_name = input::name("firstName", &new.first_name)?;
        let last_name = input::name("lastName", &new.last_name)?;
        check_new_password("password", &new.password)?;
        let scopes = match new.scopes {
            Some(scopes) => {
                scopes.iter().try_for_each(|s| check_scope(s))?;
                let mut unique = Vec::with_capacity(scopes.len());
                for s in scopes {
                    if !unique.contains(&s) {
                        unique.push(s);
                    }
                }
                unique
            }
            None => self.default_scopes.to_vec(),
        };
        if self.store.email_taken(email.clone()).await? {
            return Err(AccountError::EmailTaken);
        }
        let user = User {
            id: new_id(),
            email,
            first_name,
            last_name,
            password_hash: self.passwords.hash(new.password).await?,
            scopes,
            disabled: false,
            created_at: now_unix(),
            reset: None,
            reset_sent_at: None,
        };
        self.store.create_user(user.clone(), None).await?;
        Ok(user)
    }

    /// Deletes the user; returns how many sessions that revoked.
    pub async fn delete(&self, email: &str) -> Result<usize, AccountError> {
        let revoked = self.store.delete_user(normal(email), now_unix()).await?;
        Ok(self.revoked_now(&revoked))
    }

    pub async fn grant(&self, email: &str, scope: &str) -> Result<User, AccountError> {
        check_scope(scope)?;
        let scope = scope.to_string();
        self.change(email, false, move |u| {
            if !u.scopes.contains(&scope) {
                u.scopes.push(scope);
            }
        })
        .await
        .map(|(u, _)| u)
    }

    pub async fn revoke_scope(&self, email: &str, scope: &str) -> Result<User, AccountError> {
        check_scope(scope)?;
        let scope = scope.to_string();
        self.change(email, false, move |u| u.scopes.retain(|s| *s != scope))
            .await
            .map(|(u, _)| u)
    }

    /// Disables the user and revokes every session; returns how many.
    pub async fn disable(&self, email: &str) -> Result<(User, usize), AccountError> {
        self.change(email, true, User::disable).await
    }

    pub async fn enable(&self, email: &str) -> Result<User, AccountError> {
        self.change(email, false, |u| u.disabled = false)
            .await
            .map(|(u, _)| u)
    }

    /// Revokes every session of the user; returns how many.
    pub async fn revoke_sessions(&self, email: &str) -> Result<(User, usize), AccountError> {
        self.change(email, true, |_| {}).await
    }

    /// Revokes one live session of the user.
    pub async fn revoke_session(&self, email: &str, sid: &str) -> Result<(), AccountError> {
        let revoked = self
            .store
            .revoke_session(UserRef::Email(normal(email)), sid.to_string(), now_unix())
            .await?;
        match revoked {
            true => {
                self.revoked_now(&[sid.to_string()]);
                Ok(())
            }
            false => Err(AccountError::NoSuchSession),
        }
    }

    /// A new reset token for the user, superseding any earlier one.
    pub async fn reset_token(&self, email: &str) -> Result<(User, ResetToken), AccountError> {
        let (token, ticket) = ResetToken::new(self.reset_ttl, now_unix())?;
        let (user, _) = self
            .change(email, false, move |u| {
                if !u.disabled {
                    u.reset = Some(ticket);
                }
            })
            .await?;
        if user.disabled {
            return Err(AccountError::InvalidInput(
                "the user is disabled; enable it before resetting its password".into(),
            ));
        }
        Ok((user, token))
    }

    async fn change(
        &self,
        email: &str,
        revoke: bool,
        change: impl FnOnce(&mut User) + Send + 'static,
    ) -> Result<(User, usize), AccountError> {
        let (user, revoked) = self
            .store
            .update_user(normal(email), revoke, change)
            .await?;
        let n = self.revoked_now(&revoked);
        Ok((user, n))
    }

    /// Applies revocations to the running gateway at once; returns how many.
    fn revoked_now(&self, sids: &[String]) -> usize {
        if let Some(set) = self.revoked {
            sids.iter().for_each(|sid| set.insert(sid));
        }
        sids.len()
    }
}

/// Emails are looked up trimmed and lower-cased, as they are stored.
fn normal(email: &str) -> String {
    email.trim().to_lowercase()
}

fn check_scope(scope: &str) -> Result<(), Invalid> {
    match is_scope_token(scope) {
        true => Ok(()),
        false => Err(Invalid(format!(
            "{scope:?} is not a scope: 1 to 128 visible ASCII characters, without spaces, `\"` or `\\`"
        ))),
    }
}

/// 256 random bits, base64url without padding.
fn reset_token() -> Result<String, AccountError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AccountError::Random(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// What the store keeps of a reset token: its SHA-256, in hex.
pub fn reset_hash(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_tokens_are_random_and_hashed() {
        let (a, b) = (reset_token().unwrap(), reset_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(reset_hash(&a).len(), 64);
        assert_eq!(reset_hash(&a), reset_hash(&a.clone()));
        assert_ne!(reset_hash(&a), reset_hash(&b));
    }

    #[test]
    fn scopes_follow_rfc_6749() {
        for ok in ["read", "items:write", "a/b.c", "!#[]~", &"x".repeat(128)] {
            assert!(check_scope(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a\"b", "a\\b", "é", "a\tb", &"x".repeat(129)] {
            assert!(check_scope(bad).is_err(), "{bad:?}");
        }
    }
}
