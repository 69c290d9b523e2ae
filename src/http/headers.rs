//! Every header name the gateway sets or strips, in one place.

use http::header::HeaderName;

pub use http::header::{
    ALLOW, AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST,
    RETRY_AFTER, TE, TRAILER, TRANSFER_ENCODING, UPGRADE, WWW_AUTHENTICATE,
};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
pub static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Identity headers set from the verified token (docs/routing.md).
pub static X_PRINCIPAL_ID: HeaderName = HeaderName::from_static("x-principal-id");
pub static X_PRINCIPAL_EMAIL: HeaderName = HeaderName::from_static("x-principal-email");
pub static X_PRINCIPAL_SCOPES: HeaderName = HeaderName::from_static("x-principal-scopes");

/// Any client-sent header with this prefix is removed on every route.
pub const PRINCIPAL_PREFIX: &str = "x-principal-";

/// Headers some frameworks route by instead of the request line (Symfony,
/// IIS URL Rewrite): a client-sent one would bypass the path the gateway
/// authorised, so they are removed on every route, like `X-Principal-*`.
pub static X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
pub static X_REWRITE_URL: HeaderName = HeaderName::from_static("x-rewrite-url");
pub static ROUTING_OVERRIDES: [&HeaderName; 2] = [&X_ORIGINAL_URL, &X_REWRITE_URL];

/// Hop-by-hop headers (RFC 9110 section 7.6.1), never forwarded either way,
/// in addition to the names listed in `Connection`.
pub static HOP_BY_HOP: [&HeaderName; 7] = [
    &CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &TE,
    &TRAILER,
    &TRANSFER_ENCODING,
    &UPGRADE,
];
