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
}

impl Session {
    pub fn is_live(&self, now: u64) -> bool {
        !self.revoked && now < self.expires_at
    }
}
