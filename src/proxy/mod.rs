//! The request path, in stage order: `pipeline` runs `route` (normalise,
//! match), `cors` (preflight), authorization (`crate::auth`), `rewrite`,
//! then `upstream` (or `echo`, or a built-in endpoint of
//! `crate::identity`), and on the way back `decorate`. `state` is the
//! snapshot a request reads; `error` maps every stage's failure to its
//! response.

pub mod client_ip;
pub mod cors;
pub mod ctx;
pub mod decorate;
pub mod echo;
pub mod error;
pub mod grpc;
pub mod pipeline;
pub mod request_id;
pub mod rewrite;
pub mod route;
pub mod state;
pub mod upstream;
pub mod websocket;
