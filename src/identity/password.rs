//! bcrypt, off the request threads. At most `threads` hashes run at once
//! (one core fewer than the machine has, at least one), so a sign-in storm
//! queues here instead of taking the cores proxying needs.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use tokio::sync::Semaphore;

/// bcrypt reads at most 72 bytes; longer passwords are refused, never truncated.
pub const MAX_BYTES: usize = 72;
pub const MIN_BYTES: usize = 8;

/// The 5,000 most common passwords of 8 to 72 bytes (lower case), from
/// zxcvbn's frequency list (MIT licence).
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common_passwords.txt").lines().collect());

pub fn is_common(password: &str) -> bool {
    COMMON.contains(password.to_lowercase().as_str())
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("bcrypt: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
    #[error("the hashing thread failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

pub struct Passwords {
    cost: u32,
    /// A real hash of a random password at the same cost: unknown emails are
    /// checked against it, so they take as long as a wrong password.
    dummy: String,
    permits: Arc<Semaphore>,
    threads: usize,
}

impl Passwords {
    /// Blocking (hashes the dummy): call at start-up, off the runtime.
    pub fn new(cost: u32) -> Result<Passwords, bcrypt::BcryptError> {
        let dummy = bcrypt::hash(super::tokens::new_id(), cost)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = cores.saturating_sub(1).max(1);
        Ok(Passwords {
            cost,
            dummy,
            permits: Arc::new(Semaphore::new(threads)),
            threads,
        })
    }

    pub fn cost(&self) -> u32 {
        self.cost
    }

    /// How many hashes may run at once.
    pub fn threads(&self) -> usize {
        self.threads
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let cost = self.cost;
        // Callers refuse passwords over 72 bytes, so nothing is cut here.
        // (`non_truncating_hash` would count bcrypt's NUL terminator and
        // refuse exactly 72.)
        debug_assert!(password.len() <= MAX_BYTES);
        Ok(self
            .blocking(move || bcrypt::hash(password, cost))
            .await??)
    }

    /// Checks `password` against `hash`, or against the dummy when there is
    /// no user or the password is too long to have been accepted: same work,
    /// same time, always false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let possible = hash.is_some() && password.len() <= MAX_BYTES;
        let hash = hash
            .filter(|_| possible)
            .unwrap_or_else(|| self.dummy.clone());
        let ok = self
            .blocking(move || {
                let bytes = password.as_bytes();
                bcrypt::verify(&bytes[..bytes.len().min(MAX_BYTES)], &hash)
            })
            .await??;
        Ok(ok && possible)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = self.permits.clone().acquire_owned().await.ok();
        tokio::task::spawn_blocking(move || {
            let out = f();
            drop(permit);
            out
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_passwords_are_found_whatever_their_case() {
        assert!(is_common("password"));
        assert!(is_common("PassWord"));
        assert!(is_common("iloveyou"));
        assert!(!is_common("correct horse battery staple 9"));
        assert!(COMMON.len() >= 5000);
        assert!(COMMON.iter().all(|p| p.len() >= MIN_BYTES));
    }

    #[tokio::test]
    async fn verify_matches_only_the_right_password_and_never_the_dummy() {
        let p = Passwords::new(4).unwrap();
        let h = p.hash("s3cret-pass".into()).await.unwrap();
        assert!(p
            .verify("s3cret-pass".into(), Some(h.clone()))
            .await
            .unwrap());
        assert!(!p.verify("wrong-pass".into(), Some(h)).await.unwrap());
        assert!(!p.verify("anything".into(), None).await.unwrap());
        // bcrypt reads 72 bytes: a longer password sharing them never matches.
        let long = "y".repeat(72);
        let h = p.hash(long.clone()).await.unwrap();
        assert!(p.verify(long.clone(), Some(h.clone())).await.unwrap());
        assert!(!p.verify(format!("{long}z"), Some(h)).await.unwrap());
        assert_eq!(cost_of(&p.dummy), 4);
    }

    fn cost_of(h: &str) -> u32 {
        h.split('$').nth(2).unwrap().parse().unwrap()
    }
}
