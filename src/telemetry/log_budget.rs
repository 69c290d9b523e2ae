//! A budget for log lines a client can cause at will (connection errors,
//! failed TLS handshakes, connections refused at accept; docs/operations.md):
//! at most `PER_SECOND` a second. The rest are counted, and the count is
//! logged in one line when the second is over, so an attacker cannot grow
//! the log at the rate it opens connections.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const PER_SECOND: u32 = 10;
const WINDOW: Duration = Duration::from_secs(1);

/// Connection-level lines, from every listener (and every gateway in one process).
pub static CONNECTIONS: LogBudget = LogBudget::new("connection-level");

pub struct LogBudget {
    /// Names the lines in the report of those left out.
    what: &'static str,
    window: Mutex<Window>,
}

struct Window {
    /// When the current second ends (`None`: no line yet).
    ends: Option<Instant>,
    written: u32,
    left_out: u64,
}

/// The budget's answer for one line.
#[derive(Debug, PartialEq, Eq)]
enum Turn {
    Write,
    /// Leave it out; the first left out in a second asks for the report.
    LeaveOut {
        first: bool,
    },
}

impl Window {
    /// This line's turn, and the count left out in a second that is over.
    fn turn(&mut self, now: Instant) -> (Option<u64>, Turn) {
        let mut over = None;
        if self.ends.is_none_or(|ends| now >= ends) {
            over = self.take_left_out();
            self.ends = Some(now + WINDOW);
            self.written = 0;
        }
        if self.written < PER_SECOND {
            self.written += 1;
            return (over, Turn::Write);
        }
        self.left_out += 1;
        let first = self.left_out == 1;
        (over, Turn::LeaveOut { first })
    }

    fn take_left_out(&mut self) -> Option<u64> {
        (self.left_out > 0).then(|| std::mem::take(&mut self.left_out))
    }
}

impl LogBudget {
    pub const fn new(what: &'static str) -> LogBudget {
        LogBudget {
            what,
            window: Mutex::new(Window {
                ends: None,
                written: 0,
                left_out: 0,
            }),
        }
    }

    fn window(&self) -> MutexGuard<'_, Window> {
        // Every critical section leaves the window consistent.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// May one more line be written now? Ask just before writing it.
    pub fn allow(&'static self) -> bool {
        let (over, turn) = self.window().turn(Instant::now());
        if let Some(n) = over {
            self.report(n);
        }
        match turn {
            Turn::Write => true,
            Turn::LeaveOut { first } => {
                if first {
                    self.report_when_the_second_ends();
                }
                false
            }
        }
    }

    /// The count is reported at the end of the second even if no line
    /// follows (by whichever comes first: this timer or the next line).
    fn report_when_the_second_ends(&'static self) {
        let (Some(ends), Ok(runtime)) = (self.window().ends, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            tokio::time::sleep_until(ends.into()).await;
            let over = self.window().take_left_out();
            if let Some(n) = over {
                self.report(n);
            }
        });
    }

    fn report(&self, left_out: u64) {
        tracing::warn!(
            left_out,
            "{} log lines left out in the last second (at most {PER_SECOND} a second)",
            self.what
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_lines_a_second_then_one_count_of_those_left_out() {
        let mut w = Window {
            ends: None,
            written: 0,
            left_out: 0,
        };
        let t0 = Instant::now();
        for _ in 0..PER_SECOND {
            assert_eq!(w.turn(t0), (None, Turn::Write));
        }
        assert_eq!(w.turn(t0), (None, Turn::LeaveOut { first: true }));
        for _ in 0..99 {
            assert_eq!(w.turn(t0), (None, Turn::LeaveOut { first: false }));
        }
        // The next second: its first line brings the count of the last.
        let t1 = t0 + WINDOW;
        assert_eq!(w.turn(t1), (Some(100), Turn::Write));
        assert_eq!(w.turn(t1), (None, Turn::Write));
        // A count taken by the timer is not reported twice.
        for _ in 0..PER_SECOND - 1 {
            w.turn(t1);
        }
        assert_eq!(w.take_left_out(), Some(1));
        assert_eq!(w.turn(t1 + WINDOW), (None, Turn::Write));
    }
}
