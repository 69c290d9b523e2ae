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
}

impl Session {
    pub fn is_live(&self, now: u64) -> bool {
        !self.revoked && now < self.expires_at
    }
}

/// A live session as listed: its id and record.
pub type Listed = (String, Session);
