//! `signin_limit`: per email, at most `failures` failed sign-ins within a
//! sliding `window`; past that, 429 until the oldest failure leaves the window.
//!
//! An attempt counts as a failure from the moment it starts (a success
//! clears the count), so a burst of parallel guesses cannot slip past the
//! limit while the first ones are still hashing. Entries live in a bounded
//! moka cache, so spraying emails cannot grow memory without bound.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::config::SigninLimit;

/// Emails tracked at once; the least recently used fall out first.
const CAPACITY: u64 = 100_000;

pub struct Throttle {
    limit: SigninLimit,
    /// Per email: the start times of its recent failed (or pending) attempts, oldest first.
    recent: Cache<String, Arc<Mutex<VecDeque<Instant>>>>,
}

impl Throttle {
    pub fn new(limit: SigninLimit) -> Throttle {
        Throttle {
            limit,
            recent: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_idle(limit.window)
                .build(),
        }
    }

    pub fn limit(&self) -> SigninLimit {
        self.limit
    }

    /// Starts an attempt: `Err(retry_after)` when the email is throttled,
    /// else the attempt is counted as a failure until `succeeded`.
    pub fn begin(&self, email: &str, now: Instant) -> Result<(), Duration> {
        if self.limit.failures == 0 {
            return Ok(());
        }
        let entry = self.recent.get_with_by_ref(email, Arc::default);
        let mut times = entry.lock().unwrap_or_else(|p| p.into_inner());
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.limit.window)
        {
            times.pop_front();
        }
        if times.len() >= self.limit.failures as usize {
            let oldest = times[0];
            return Err(self.limit.window - now.saturating_duration_since(oldest));
        }
        times.push_back(now);
        Ok(())
    }

    /// A correct password clears the email's count.
    pub fn succeeded(&self, email: &str) {
        self.recent.invalidate(email);
    }
}

/// `Retry-After` in whole seconds, rounded up and at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(failures: u32, window_s: u64) -> Throttle {
        Throttle::new(SigninLimit {
            failures,
            window: Duration::from_secs(window_s),
        })
    }

    #[test]
    fn the_attempt_after_the_limit_waits_for_the_oldest_to_expire() {
        let t = throttle(3, 60);
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(t.begin("a@x.io", t0 + Duration::from_secs(i)).is_ok());
        }
        let wait = t.begin("a@x.io", t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        // Other emails are unaffected.
        assert!(t.begin("b@x.io", t0).is_ok());
        // Once the first failure leaves the window, one more attempt is allowed.
        assert!(t.begin("a@x.io", t0 + Duration::from_secs(60)).is_ok());
        assert!(t.begin("a@x.io", t0 + Duration::from_secs(60)).is_err());
    }

    #[test]
    fn success_clears_the_count() {
        let t = throttle(2, 60);
        let t0 = Instant::now();
        t.begin("a@x.io", t0).unwrap();
        t.succeeded("a@x.io");
        t.begin("a@x.io", t0).unwrap();
        t.begin("a@x.io", t0).unwrap();
        assert!(t.begin("a@x.io", t0).is_err());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
