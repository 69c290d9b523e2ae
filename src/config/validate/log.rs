//! `log`: the log format and the access log switch.

use crate::config::model::Log;
use crate::config::raw;

pub(super) fn log(l: raw::Log) -> Log {
    let d = Log::default();
    Log {
        format: l.format.unwrap_or(d.format),
        access: l.access.unwrap_or(d.access),
    }
}
