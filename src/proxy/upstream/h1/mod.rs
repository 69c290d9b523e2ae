//! HTTP/1.1 to upstreams, run inline in the request's task: `head` writes
//! the request head and parses the response head, `decode` takes the
//! response body's framing off the wire, `conn` drives one connection
//! through an exchange. HTTP/2 upstreams stay on hyper's client.

mod conn;
pub mod decode;
pub mod head;

pub use conn::{Answered, Conn, Failed, Io, Replay};
