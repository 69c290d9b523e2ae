//! `limits`: body size and connection timeouts.

use crate::config::model::Limits;
use crate::config::{raw, units};

use super::Validator;

impl Validator<'_> {
    pub(super) fn limits(&mut self, l: raw::Limits) -> Limits {
        let d = Limits::default();
        let max_body = match l.max_body {
            None => d.max_body,
            Some(raw::Size::Bytes(n)) => n,
            Some(raw::Size::Text(t)) => units::size(&t).unwrap_or_else(|msg| {
                self.err("limits.max_body", msg);
                d.max_body
            }),
        };
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
        }
    }
}
