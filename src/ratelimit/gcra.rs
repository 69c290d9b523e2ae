//! The arithmetic of one bucket: GCRA (the generic cell rate algorithm),
//! the token bucket kept as one number per key, its theoretical arrival
//! time (`tat`), in nanoseconds since the policy's epoch. A request is
//! allowed when, after adding one emission interval to `tat`, `tat` is no
//! further ahead of now than the burst allows.

use crate::config::Rate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Nanoseconds one request costs: the unit over the count.
    interval: u64,
    /// How far ahead of now `tat` may run: burst x interval.
    tolerance: u64,
}

/// What one request was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Whole requests the bucket allows now, after this one.
    pub remaining: u64,
    /// Nanoseconds until one more request is allowed (0 while `remaining` >= 1).
    pub wait_ns: u64,
}

impl Gcra {
    pub fn new(rate: Rate) -> Gcra {
        let per = rate.per.as_nanos() as u64;
        let interval = (per / u64::from(rate.count)).max(1);
        Gcra {
            interval,
            tolerance: interval.saturating_mul(u64::from(rate.burst)),
        }
    }

    /// One request at `now` on a bucket at `tat`: the verdict, and the
    /// bucket's new `tat` when the request is allowed.
    pub fn take(&self, tat: u64, now: u64) -> (Verdict, Option<u64>) {
        let next = tat.max(now).saturating_add(self.interval);
        let ahead = next - now;
        if ahead > self.tolerance {
            let verdict = Verdict {
                allowed: false,
                remaining: 0,
                wait_ns: ahead - self.tolerance,
            };
            return (verdict, None);
        }
        let remaining = (self.tolerance - ahead) / self.interval;
        let wait_ns = match remaining {
            0 => (ahead + self.interval).saturating_sub(self.tolerance),
            _ => 0,
        };
        let verdict = Verdict {
            allowed: true,
            remaining,
            wait_ns,
        };
        (verdict, Some(next))
    }

    /// Undoes one allowed request (another policy denied it).
    pub fn give_back(&self, tat: u64) -> u64 {
        tat.saturating_sub(self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: u64 = 1_000_000_000;

    fn rate(count: u32, secs: u64, burst: u32) -> Gcra {
        Gcra::new(Rate {
            count,
            per: Duration::from_secs(secs),
            burst,
        })
    }

    /// Takes `n` requests at `now`, returning the verdicts and the final tat.
    fn burst(g: &Gcra, mut tat: u64, now: u64, n: usize) -> (Vec<Verdict>, u64) {
        let mut out = Vec::new();
        for _ in 0..n {
            let (v, next) = g.take(tat, now);
            tat = next.unwrap_or(tat);
            out.push(v);
        }
        (out, tat)
    }

    #[test]
    fn a_full_bucket_allows_the_burst_then_refuses() {
        let g = rate(10, 1, 3);
        let (v, tat) = burst(&g, 0, 100 * S, 4);
        let allowed: Vec<bool> = v.iter().map(|v| v.allowed).collect();
        assert_eq!(allowed, [true, true, true, false]);
        assert_eq!(
            v.iter().map(|v| v.remaining).collect::<Vec<_>>(),
            [2, 1, 0, 0]
        );
        assert_eq!((v[0].wait_ns, v[1].wait_ns), (0, 0));
        // One more token every 100 ms.
        assert_eq!(v[2].wait_ns, S / 10);
        assert_eq!(v[3].wait_ns, S / 10);
        // After 100 ms one request passes, the next does not.
        let (v, _) = burst(&g, tat, 100 * S + S / 10, 2);
        assert_eq!((v[0].allowed, v[1].allowed), (true, false));
    }

    #[test]
    fn the_rate_is_sustained_and_idle_time_refills_no_more_than_the_burst() {
        let g = rate(60, 60, 5);
        // An hour idle refills five, not more.
        let (v, mut tat) = burst(&g, 0, 3600 * S, 6);
        assert_eq!(v.iter().filter(|v| v.allowed).count(), 5);
        // Then one a second: a request each second passes, a second one does not.
        for sec in 1..=10u64 {
            let (v, next) = g.take(tat, 3600 * S + sec * S);
            assert!(v.allowed, "second {sec}");
            tat = next.unwrap();
            assert!(!g.take(tat, 3600 * S + sec * S).0.allowed);
        }
    }

    #[test]
    fn giving_back_restores_the_request() {
        let g = rate(1, 60, 1);
        let (v, tat) = g.take(0, 10 * S);
        assert!(v.allowed);
        let tat = tat.unwrap();
        assert!(!g.take(tat, 10 * S).0.allowed);
        assert!(g.take(g.give_back(tat), 10 * S).0.allowed);
    }

    #[test]
    fn extreme_rates_do_not_overflow() {
        let g = rate(1_000_000_000, 1, 1_000_000_000);
        assert!(g.take(0, 0).0.allowed);
        let g = rate(1, 3600, 1_000_000_000);
        let (v, tat) = g.take(u64::MAX - 5, u64::MAX - 10);
        assert!(v.allowed && tat == Some(u64::MAX));
    }
}
