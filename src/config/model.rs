//! Validated configuration: the only config types runtime code sees.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderValue, Method};

pub use super::raw::{LogFormat, UpstreamProtocol};
use crate::config::Template;

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from (relative paths were resolved against its folder).
    pub file: PathBuf,
    pub listen: Option<SocketAddr>,
    pub tls: Option<Tls>,
    pub admin: Option<SocketAddr>,
    pub log: Log,
    pub limits: Limits,
    pub auth: Option<Auth>,
    /// The global CORS policy; `None` adds no CORS headers.
    pub cors: Option<Arc<CorsPolicy>>,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone)]
pub struct Tls {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy)]
pub struct Log {
    pub format: LogFormat,
    pub access: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body: u64,
    pub header_timeout: Duration,
    /// Also the longest a response may wait on a client that accepts none
    /// of its bytes (a write stall).
    pub idle_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// Open client connections at once, plain and HTTPS together.
    pub max_connections: usize,
    /// Open client connections from one IP; `None`: no cap.
    pub max_connections_per_ip: Option<usize>,
    /// Concurrent HTTP/2 streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub h2_max_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 10 * 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_connections_per_ip: None,
            h2_max_streams: 100,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Auth {
    pub store: PathBuf,
    pub issuer: String,
    pub access_token: TokenKeys,
    pub refresh_token: TokenKeys,
    pub bcrypt_cost: u32,
    pub cache_ttl: Duration,
    pub cache_capacity: u64,
    pub default_scopes: Vec<String>,
    pub signin_limit: SigninLimit,
    pub leeway: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HS256,
    EdDSA,
    ES256,
    RS256,
}

/// How one kind of token is signed. A `None` secret with HS256 means the key
/// is generated once and kept beside the store.
#[derive(Debug, Clone)]
pub struct TokenKeys {
    pub algorithm: Algorithm,
    pub secret: Option<Vec<u8>>,
    pub private_key: Option<PathBuf>,
    pub previous_keys: Vec<PathBuf>,
    pub ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigninLimit {
    pub failures: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Lower-cased exact origins; `any` when the list is `["*"]`.
    pub allow_origins: Vec<String>,
    pub any_origin: bool,
    pub allow_methods: Vec<Method>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Required,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteCors {
    /// Use the global policy (if any).
    Inherit,
    /// No CORS handling on this route.
    Off,
    Policy(Arc<CorsPolicy>),
}

#[derive(Debug, Clone)]
pub struct Route {
    /// Shared with access records, which outlive a config snapshot's borrow.
    pub name: Arc<str>,
    pub template: Template,
    /// `None`: every method.
    pub methods: Option<Vec<Method>>,
    pub target: Target,
    pub auth: AuthMode,
    pub scopes: Vec<String>,
    pub strip_prefix: Option<String>,
    pub timeout: Duration,
    pub cors: RouteCors,
    /// HTTP/1.1 (default) or HTTP/2 to the upstream (h2c for `http://`).
    pub upstream_protocol: UpstreamProtocol,
}

impl Route {
    pub fn allows(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.contains(method))
    }

    /// A built-in endpoint owns its path: every method reaches it (and gets
    /// its 405), never a template's route that also matches.
    pub fn owns_path(&self) -> bool {
        matches!(self.target, Target::Builtin(_))
    }
}

#[derive(Debug, Clone)]
pub enum Target {
    Upstream(Vec<UpstreamTarget>),
    Echo,
    /// A built-in endpoint (added to the table when `auth` is set).
    Builtin(super::builtin::Endpoint),
}

/// One `http://` or `https://` upstream; its path, if any, prefixes forwarded paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTarget {
    pub scheme: Scheme,
    pub authority: Authority,
    /// The URL's path without a trailing `/` (empty for none).
    pub base_path: String,
    /// `scheme://authority/base`, made once for access records.
    pub display: Arc<str>,
    /// The `Host` header upstream requests carry, made once.
    pub host: HeaderValue,
    /// `scheme://authority` in lower case: which pooled connections serve
    /// this target (the same across reloads), cheap to hash and compare.
    pub pool_key: Arc<str>,
}

impl std::fmt::Display for UpstreamTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}
