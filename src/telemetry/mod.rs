//! What the gateway tells operators: `metrics` (Prometheus counters and
//! histograms), `logging` (the stderr log and its format), `access_log`
//! (one line per request on stdout). It imports nothing else of the crate
//! but config types, so every layer may report through it.

pub mod access_log;
pub mod logging;
pub mod metrics;
