//! Upstream side: `pool` owns connections (connect, reuse, idle expiry),
//! `forward` picks a target and sends a request on a pooled connection,
//! `error` says which side failed and how.

mod error;
mod forward;
mod pool;

pub use error::UpstreamError;
pub use forward::{BodyLimit, Forward, Upstreams};
pub use pool::Lease;
