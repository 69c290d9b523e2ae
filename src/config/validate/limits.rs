//! `limits`: body size, connection timeouts and connection caps.

use crate::config::model::Limits;
use crate::config::{raw, units};

use super::Validator;

impl Validator<'_> {
    /// A size in bytes, or text like `10MiB`; `None` when absent or wrong.
    pub(super) fn size(&mut self, path: &str, size: Option<raw::Size>) -> Option<u64> {
        match size? {
            raw::Size::Bytes(n) => Some(n),
            raw::Size::Text(t) => units::size(&t).map_err(|msg| self.err(path, msg)).ok(),
        }
    }

    pub(super) fn limits(&mut self, l: raw::Limits) -> Limits {
        let d = Limits::default();
        let max_body = self
            .size("limits.max_body", l.max_body)
            .unwrap_or(d.max_body);
        Limits {
            max_body,
            header_timeout: self.duration(
                "limits.header_timeout",
                l.header_timeout,
                d.header_timeout,
            ),
            idle_timeout: self.duration("limits.idle_timeout", l.idle_timeout, d.idle_timeout),
            shutdown_timeout: self.duration(
                "limits.shutdown_timeout",
                l.shutdown_timeout,
                d.shutdown_timeout,
            ),
            max_connections: self
                .count("limits.max_connections", l.max_connections, 1)
                .unwrap_or(d.max_connections),
            // 0: no cap.
            max_connections_per_ip: self
                .count("limits.max_connections_per_ip", l.max_connections_per_ip, 0)
                .filter(|&n| n > 0),
            h2_max_streams: self
                .count("limits.h2_max_streams", l.h2_max_streams, 1)
                .map_or(d.h2_max_streams, |n| n as u32),
        }
    }

    /// A count of at least `min`, at most `u32::MAX` (what HTTP/2 settings carry).
    fn count(&mut self, path: &str, n: Option<u64>, min: u64) -> Option<usize> {
        let n = n?;
        if n < min || n > u64::from(u32::MAX) {
            let msg = format!("{n} is out of range; expected {min}..={}", u32::MAX);
            self.err(path, msg);
            return None;
        }
        Some(n as usize)
    }
}
