//! What the gateway tells operators: `metrics` (Prometheus counters and
//! histograms), `logging` (the stderr log and its format), `access_log`
//! (one line per request on stdout), `log_budget` (a cap on the lines
//! clients can cause). It imports nothing else of the crate but config
//! types, so every layer may report through it.

pub mod access_log;
pub mod log_budget;
pub mod logging;
pub mod metrics;
