//! Sessions and times as JSON shows them, the same in `GET /sessions`, the
//! admin API and `gateway users`.

use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::records::Listed;

/// A live session: when it started, was last rotated, and expires.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub sid: String,
    pub created_at: String,
    pub refreshed_at: Option<String>,
    pub expires_at: String,
}

impl From<&Listed> for SessionView {
    fn from((sid, s): &Listed) -> SessionView {
        SessionView {
            sid: sid.clone(),
            created_at: rfc3339(s.created_at),
            refreshed_at: s.refreshed_at.map(rfc3339),
            expires_at: rfc3339(s.expires_at),
        }
    }
}

/// UTC, whole seconds, with `Z`.
pub fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_whole_seconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
