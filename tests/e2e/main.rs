//! The one integration-test target: the real gateway and real upstreams on
//! loopback ephemeral ports, asserting what crossed the wire at both ends.

mod harness;

mod accounts;
mod admin;
mod admin_api;
mod authorizer;
mod browser;
mod bypass;
mod cli;
mod cluster;
mod cors;
mod crash;
mod examples;
mod forwarding;
mod grpc;
mod h2_flood;
mod identity;
mod identity_ops;
mod keys;
mod limits;
mod proxy_protocol;
mod quickstart;
mod rate_limits;
mod reload;
mod routing;
mod shutdown;
mod smuggling;
mod streaming;
mod transport;
mod upstream_faults;
mod upstream_framing;
mod websocket;
