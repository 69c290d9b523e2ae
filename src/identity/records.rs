//! What the store keeps, as JSON values in redb tables: readable with any
//! tool, and a field added later gets a default instead of a migration.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    /// A UUID; the `sub` of every token.
    pub id: String,
    /// Trimmed and lower-cased; unique.
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// bcrypt, with its cost inside.
    pub password_hash: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub disabled: bool,
    /// Unix seconds.
    pub created_at: u64,
    /// The one password-reset token that may still be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<ResetTicket>,
    /// Unix seconds: the last reset token made for the webhook to deliver
    /// (`password_reset.resend_interval` counts from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_sent_at: Option<u64>,
}

impl User {
    /// Disabling also voids an outstanding reset token (its sessions are
    /// revoked by the store in the same change).
    pub fn disable(&mut self) {
        self.disabled = true;
        self.reset = None;
    }
}

/// A password-reset token as kept: only its SHA-256, never the token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResetTicket {
    /// Lower-case hex SHA-256 of the token.
    pub hash: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// One sign-in (or sign-up) and the refresh tokens rotated from it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    pub user_id: String,
    /// The `jti` of the one refresh token that may still be used.
    pub refresh_jti: String,
    #[serde(default)]
    pub revoked: bool,
    /// Unix seconds: the current refresh token's `exp`.
    pub expires_at: u64,
    /// Unix seconds: the sign-in or sign-up that started it (0 for
    /// sessions kept before this was recorded).
    #[serde(default)]
    pub created_at: u64,
    /// Unix seconds: the last rotation, if any.
    #[serde(default)]
    pub refreshed_at: Option<u64>,
    /// The `jti` the last rotation replaced: within
    /// `refresh_token.reuse_interval` of it, not reuse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_jti: Option<String>,
}

impl Session {
    pub fn is_live(&self, now: u64) -> bool {
        !self.revoked && now < self.expires_at
    }

    /// Is `jti` the token the last rotation replaced, presented again
    /// within `grace` seconds of that rotation?
    pub fn in_grace(&self, jti: &str, now: u64, grace: u64) -> bool {
        self.previous_jti.as_deref() == Some(jti)
            && self
                .refreshed_at
                .is_some_and(|at| now < at.saturating_add(grace))
    }

    /// The current token is replaced by `next_jti`, valid until `expires_at`.
    pub fn rotate(&mut self, next_jti: &str, expires_at: u64, now: u64) {
        let replaced = std::mem::replace(&mut self.refresh_jti, next_jti.to_string());
        self.previous_jti = Some(replaced);
        self.expires_at = expires_at;
        self.refreshed_at = Some(now);
    }
}

/// A live session as listed: its id and record.
pub type Listed = (String, Session);
