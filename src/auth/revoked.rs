//! Revoked sessions, in memory, checked on every authorized request (cached
//! principal or not), so revocation takes effect at once. Loaded from the
//! store at start-up (`gateway users` revokes offline) and fed by sign-out
//! and refresh-token reuse while running.

use std::collections::HashSet;
use std::sync::RwLock;

#[derive(Default)]
pub struct Revoked {
    sids: RwLock<HashSet<String>>,
}

impl Revoked {
    pub fn new(sids: impl IntoIterator<Item = String>) -> Revoked {
        Revoked {
            sids: RwLock::new(sids.into_iter().collect()),
        }
    }

    pub fn contains(&self, sid: &str) -> bool {
        self.sids
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(sid)
    }

    pub fn insert(&self, sid: &str) {
        self.sids
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sid.to_string());
    }

    /// Forgets purged sessions: their access tokens have long expired.
    pub fn forget(&self, sids: &[String]) {
        let mut set = self.sids.write().unwrap_or_else(|p| p.into_inner());
        for sid in sids {
            set.remove(sid);
        }
    }
}
