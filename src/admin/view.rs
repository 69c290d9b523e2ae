//! The admin API's JSON shapes (docs/admin.md): what the API writes and
//! what `gateway users` reads back from it, so both print the same things.
//! A password hash or reset-token hash never enters these.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::identity::records::{Listed, User};
use crate::identity::store::Cursor;
pub use crate::identity::view::{rfc3339, SessionView};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub scopes: Vec<String>,
    pub disabled: bool,
    pub created_at: String,
}

/// `GET /admin/users/{email}`: the user and their live sessions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserDetail {
    #[serde(flatten)]
    pub user: UserView,
    pub sessions: Vec<SessionView>,
}

/// `GET /admin/users`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Page {
    pub users: Vec<UserView>,
    pub next: Option<String>,
}

/// `POST /admin/users/{email}/password-reset`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResetView {
    pub token: String,
    pub expires_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> UserView {
        UserView {
            id: u.id.clone(),
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            scopes: u.scopes.clone(),
            disabled: u.disabled,
            created_at: rfc3339(u.created_at),
        }
    }
}

impl UserDetail {
    pub fn of(user: &User, sessions: &[Listed]) -> UserDetail {
        UserDetail {
            user: user.into(),
            sessions: sessions.iter().map(SessionView::from).collect(),
        }
    }
}

/// A page cursor as the API hands it out: opaque to clients.
pub fn encode_cursor(c: &Cursor) -> String {
    let text = format!("{}.{}", c.created_at, c.id);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// `None` for anything `encode_cursor` did not make.
pub fn decode_cursor(text: &str) -> Option<Cursor> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (at, id) = text.split_once('.')?;
    let created_at = at
        .parse()
        .ok()
        .filter(|_| at.bytes().all(|b| b.is_ascii_digit()))?;
    let valid_id = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic());
    valid_id.then(|| Cursor {
        created_at,
        id: id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let c = Cursor {
            created_at: 1_700_000_000,
            id: "7f0c0a52-1b1e-4a55-9d8e-3c0d6a1f2b3c".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        for junk in ["", "%%%", "bm9kb3Q", "LjE", "MTIz", "eC5hYmM", "LTEuYWJj"] {
            assert_eq!(decode_cursor(junk), None, "{junk}");
        }
    }
}
