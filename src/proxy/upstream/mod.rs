//! Upstream side: `pool` owns connections (connect, reuse, idle expiry),
//! `h1` runs an HTTP/1.1 exchange on one inline,
//! `body` streams the answer back under the route's silence timeout,
//! `forward` picks a target and sends a request on a pooled connection,
//! `error` says which side failed and how.

mod body;
mod error;
mod forward;
pub mod h1;
mod pool;

pub use body::UpstreamBody;
pub use error::UpstreamError;
pub use forward::{BodyLimit, Forward, Upstreams};
