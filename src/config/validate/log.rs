//! `log`: the log format and the access log switch.

use crate::config::model::Log;
use crate::config::raw;

pub(super) fn log(l: raw::Log) -> Log {
    Log {
        format: l.format.unwrap_or_default(),
        access: l.access.unwrap_or(true),
    }
}
