//! `signin_limit`: per email, at most `failures` failed sign-ins within a
//! sliding `window`; past that, 429 until the oldest failure leaves the window.
//!
//! The attempts of one email take turns: each waits for the previous one's
//! verdict, then decides on the failures it left. So a burst of parallel
//! guesses gets at most `failures` password checks per window, and parallel
//! sign-ins with the right password all succeed (only failures count, as
//! docs/identity.md says). Failure times live in a bounded moka cache, so
//! spraying emails cannot grow memory without bound; a turn's queue lives only
//! while attempts for its email are in flight.
//!
//! On a PostgreSQL store the count is the database's (`PgStore::reserve_signin`),
//! shared by every gateway: each attempt is counted as a failure before its
//! password is checked, and a success clears the count. The local turns still
//! order one gateway's attempts, so each holds no connection while it waits.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use moka::sync::Cache;
use tokio::sync::OwnedMutexGuard;

use super::error::AccountError;
use super::store::Store;
use crate::config::SigninLimit;

/// Emails tracked at once; the least recently used fall out first.
const CAPACITY: u64 = 100_000;

pub struct Throttle {
    limit: SigninLimit,
    /// The PostgreSQL store that counts instead of `recent`.
    shared: Option<Arc<Store>>,
    /// Per email: the times of its recent failed attempts, oldest first.
    recent: Cache<String, Arc<Mutex<VecDeque<Instant>>>>,
    /// Per email with attempts in flight: the lock they take turns on, and
    /// how many attempts hold or wait for it (the entry goes with the last).
    queues: Mutex<HashMap<String, Queue>>,
}

struct Queue {
    turn: Arc<tokio::sync::Mutex<()>>,
    attempts: usize,
}

impl Throttle {
    pub fn new(limit: SigninLimit) -> Throttle {
        Throttle::counted_in(limit, None)
    }

    /// A throttle whose count lives in `shared` (a PostgreSQL store).
    pub fn counted_in(limit: SigninLimit, shared: Option<Arc<Store>>) -> Throttle {
        Throttle {
            limit,
            shared,
            recent: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_idle(limit.window)
                .build(),
            queues: Mutex::default(),
        }
    }

    pub fn limit(&self) -> SigninLimit {
        self.limit
    }

    /// Waits until the email's earlier attempts have their verdict.
    pub async fn turn<'a>(&'a self, email: &'a str) -> Turn<'a> {
        let place = Place::join(self, email);
        let order = place.turn.clone().lock_owned().await;
        Turn {
            throttle: self,
            email,
            pending: false,
            _order: order,
            _place: place,
        }
    }

    /// Forgets the email's failed attempts (a password was reset).
    pub async fn clear(&self, email: &str) -> Result<(), AccountError> {
        self.clear_shared(email).await?;
        self.recent.invalidate(email);
        Ok(())
    }

    async fn clear_shared(&self, email: &str) -> Result<(), AccountError> {
        if let Some(Store::Postgres(pg)) = self.shared.as_deref() {
            if self.limit.failures > 0 {
                pg.clear_signin(email).await?;
            }
        }
        Ok(())
    }

    /// Emails with attempts in flight.
    #[cfg(test)]
    fn queued(&self) -> usize {
        lock(&self.queues).len()
    }
}

/// One attempt's turn for its email: `check`, then `failed` or `succeeded`.
pub struct Turn<'a> {
    throttle: &'a Throttle,
    email: &'a str,
    /// `check` let the attempt through and it has no verdict yet: dropped
    /// like that (client gone, store error), it counts as a failure, so
    /// abandoned guesses cannot buy password checks past the limit.
    pending: bool,
    _order: OwnedMutexGuard<()>,
    _place: Place<'a>,
}

impl Turn<'_> {
    /// `Err(retry_after)` when the email is throttled.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        let (limit, window) = (self.throttle.limit.failures, self.throttle.limit.window);
        if limit == 0 {
            return Ok(());
        }
        if let Some(entry) = self.throttle.recent.get(self.email) {
            let mut times = lock(&entry);
            while times
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= window)
            {
                times.pop_front();
            }
            if times.len() >= limit as usize {
                return Err(window - now.saturating_duration_since(times[0]));
            }
        }
        self.pending = true;
        Ok(())
    }

    /// `check`, in the shared count when there is one: `Throttled`, or a
    /// store failure, refuses the attempt.
    pub async fn admit(&mut self, now: Instant) -> Result<(), AccountError> {
        let limit = self.throttle.limit;
        match self.throttle.shared.as_deref() {
            Some(Store::Postgres(pg)) if limit.failures > 0 => {
                match pg
                    .reserve_signin(self.email, limit.failures, limit.window)
                    .await?
                {
                    None => Ok(()),
                    Some(ms) => Err(AccountError::Throttled(retry_after_secs(
                        Duration::from_millis(ms),
                    ))),
                }
            }
            Some(_) => Ok(()),
            None => self
                .check(now)
                .map_err(|wait| AccountError::Throttled(retry_after_secs(wait))),
        }
    }

    /// A correct password clears the email's count (on every gateway, when shared).
    pub async fn accept(self) -> Result<(), AccountError> {
        self.throttle.clear_shared(self.email).await?;
        self.succeeded();
        Ok(())
    }

    /// A wrong password (or unknown email, or disabled account) at `now`.
    pub fn failed(mut self, now: Instant) {
        self.record(now);
    }

    /// A correct password clears the email's count.
    pub fn succeeded(mut self) {
        self.pending = false;
        self.throttle.recent.invalidate(self.email);
    }

    fn record(&mut self, now: Instant) {
        if !std::mem::take(&mut self.pending) || self.throttle.limit.failures == 0 {
            return;
        }
        let entry = self
            .throttle
            .recent
            .get_with_by_ref(self.email, Arc::default);
        lock(&entry).push_back(now);
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.record(Instant::now());
    }
}

/// An attempt's place in its email's queue, held from before it waits
/// until after its turn ends.
struct Place<'a> {
    throttle: &'a Throttle,
    email: &'a str,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> Place<'a> {
    fn join(throttle: &'a Throttle, email: &'a str) -> Place<'a> {
        let mut queues = lock(&throttle.queues);
        let queue = queues.entry(email.to_string()).or_insert_with(|| Queue {
            turn: Arc::default(),
            attempts: 0,
        });
        queue.attempts += 1;
        Place {
            throttle,
            email,
            turn: queue.turn.clone(),
        }
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut queues = lock(&self.throttle.queues);
        if let Some(queue) = queues.get_mut(self.email) {
            queue.attempts -= 1;
            if queue.attempts == 0 {
                queues.remove(self.email);
            }
        }
    }
}

/// A poisoned lock still holds consistent data here (pushes and pops only).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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

    /// One whole attempt at `at`: `Err(retry_after)` if throttled, else
    /// the verdict `right` is recorded.
    async fn attempt(t: &Throttle, email: &str, at: Instant, right: bool) -> Result<(), Duration> {
        let mut turn = t.turn(email).await;
        turn.check(at)?;
        match right {
            true => turn.succeeded(),
            false => turn.failed(at),
        }
        Ok(())
    }

    #[tokio::test]
    async fn the_attempt_after_the_limit_waits_for_the_oldest_to_expire() {
        let t = throttle(3, 60);
        let t0 = Instant::now();
        for i in 0..3 {
            let at = t0 + Duration::from_secs(i);
            assert!(attempt(&t, "a@x.io", at, false).await.is_ok());
        }
        let at = t0 + Duration::from_secs(10);
        let wait = attempt(&t, "a@x.io", at, false).await.unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        // Even the right password waits.
        assert_eq!(attempt(&t, "a@x.io", at, true).await, Err(wait));
        // Other emails are unaffected.
        assert!(attempt(&t, "b@x.io", at, false).await.is_ok());
        // One nanosecond before the first failure leaves the window: still throttled.
        let almost = t0 + Duration::from_secs(60) - Duration::from_nanos(1);
        assert_eq!(
            attempt(&t, "a@x.io", almost, true).await,
            Err(Duration::from_nanos(1))
        );
        // Once it left, one more attempt is allowed; then the next one
        // waits for the second failure to leave.
        let at = t0 + Duration::from_secs(60);
        assert!(attempt(&t, "a@x.io", at, false).await.is_ok());
        assert_eq!(
            attempt(&t, "a@x.io", at, false).await,
            Err(Duration::from_secs(1))
        );
        // After a whole window without failures, the count is empty again.
        let later = t0 + Duration::from_secs(120);
        for _ in 0..3 {
            assert!(attempt(&t, "a@x.io", later, false).await.is_ok());
        }
    }

    #[tokio::test]
    async fn success_clears_the_count() {
        let t = throttle(2, 60);
        let t0 = Instant::now();
        attempt(&t, "a@x.io", t0, false).await.unwrap();
        attempt(&t, "a@x.io", t0, true).await.unwrap();
        attempt(&t, "a@x.io", t0, false).await.unwrap();
        attempt(&t, "a@x.io", t0, false).await.unwrap();
        assert!(attempt(&t, "a@x.io", t0, true).await.is_err());
    }

    #[tokio::test]
    async fn only_failures_count_so_right_passwords_are_never_throttled() {
        let t = throttle(1, 60);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(attempt(&t, "a@x.io", t0, true).await.is_ok());
        }
    }

    #[tokio::test]
    async fn attempts_of_one_email_take_turns() {
        let t = throttle(3, 60);
        let t0 = Instant::now();
        let mut first = t.turn("a@x.io").await;
        first.check(t0).unwrap();
        // The second attempt of that email waits for the first's verdict...
        let second = tokio::time::timeout(Duration::from_millis(50), t.turn("a@x.io")).await;
        assert!(second.is_err(), "two attempts of one email at once");
        // ...other emails do not.
        let other = t.turn("b@x.io").await;
        drop(other);
        first.failed(t0);
        let mut second = t.turn("a@x.io").await;
        second.check(t0).unwrap();
        second.succeeded();
    }

    #[tokio::test]
    async fn an_attempt_dropped_without_a_verdict_counts_as_a_failure() {
        let t = throttle(2, 60);
        for _ in 0..2 {
            let mut turn = t.turn("a@x.io").await;
            turn.check(Instant::now()).unwrap();
            drop(turn);
        }
        let mut turn = t.turn("a@x.io").await;
        assert!(turn.check(Instant::now()).is_err());
    }

    #[tokio::test]
    async fn queues_go_when_their_last_attempt_does() {
        let t = throttle(3, 60);
        let first = t.turn("a@x.io").await;
        let mut waiting = Box::pin(t.turn("a@x.io"));
        let waited = tokio::time::timeout(Duration::from_millis(10), &mut waiting).await;
        assert!(waited.is_err(), "two attempts of one email at once");
        assert_eq!(t.queued(), 1);
        // A waiter that gives up leaves the queue too.
        drop(waiting);
        drop(first);
        assert_eq!(t.queued(), 0);
        let a = t.turn("a@x.io").await;
        let b = t.turn("b@x.io").await;
        assert_eq!(t.queued(), 2);
        drop((a, b));
        assert_eq!(t.queued(), 0);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
