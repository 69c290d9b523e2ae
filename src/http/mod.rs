//! Bytes and hyper, no routes: the accept loop (`server`) hands each parsed
//! request to a handler it is given; `admission` keeps the connection
//! caps, `conn` the connection timeouts (the write stall included),
//! `framing` and `head` refuse heads that could be read two ways, `body`
//! enforces body limits and carries responses, `tls` holds the certificate,
//! `headers` spells every header name the gateway uses.

pub mod admission;
pub mod body;
pub mod conn;
pub mod framing;
pub mod head;
pub mod headers;
pub mod proxy_protocol;
pub mod server;
pub mod tls;
