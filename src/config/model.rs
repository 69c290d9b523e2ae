//! Validated configuration: the only config types runtime code sees, with
//! the default of every setting the file may leave out next to its field
//! (`validate/` takes them from here; docs/configuration.md lists the same values).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderValue, Method};

use super::error::{ConfigError, Pos};
pub use super::raw::{LogFormat, UpstreamProtocol};
use crate::config::Template;

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from (relative paths were resolved against its folder).
    pub file: PathBuf,
    pub listen: Option<SocketAddr>,
    pub tls: Option<Tls>,
    pub admin: Option<Admin>,
    pub log: Log,
    pub limits: Limits,
    pub client_ip: ClientIp,
    /// Named rate-limit policies, in file order.
    pub rate_limits: Vec<RatePolicy>,
    pub auth: Option<Auth>,
    /// The global CORS policy; `None` adds no CORS headers.
    pub cors: Option<Arc<CorsPolicy>>,
    pub routes: Vec<Route>,
}

/// A file the config names, and where it names it. Validation reads no
/// file; the loading step (`crate::load`) does, and reports what is wrong
/// with the file at the scalar that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// Resolved against the config file's folder.
    pub path: PathBuf,
    /// The YAML path of that scalar, like `tls.cert` or
    /// `auth.access_token.previous_keys[1]`.
    pub yaml_path: String,
    /// Where the scalar is; for a default path (`auth.store` left out),
    /// the enclosing mapping.
    pub pos: Pos,
}

impl FileRef {
    /// An error about the file, positioned at the scalar naming it.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.pos, self.yaml_path.clone(), message)
    }
}

#[derive(Debug, Clone)]
pub struct Tls {
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert: FileRef,
    /// PEM private key of the chain's first certificate.
    pub key: FileRef,
}

/// `client_ip` (docs/rate-limits.md): whom to believe about the client's address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIp {
    /// Peers whose `X-Forwarded-For` (or, with `proxy_protocol`, whose
    /// PROXY header) names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Connections on the plain and TLS listeners start with a PROXY header.
    pub proxy_protocol: bool,
}

impl ClientIp {
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4
/// peer) as the IPv4 address it is.
pub fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

/// `N/s`, `N/m` or `N/h` sustained, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    /// One second, minute or hour.
    pub per: Duration,
    pub burst: u32,
}

impl Rate {
    /// `auth.endpoint_limit` unless the file says otherwise: `{rate: 60/m, burst: 30}`.
    pub const ENDPOINT_DEFAULT: Rate = Rate {
        count: 60,
        per: Duration::from_secs(60),
        burst: 30,
    };
}

/// What a policy's buckets are keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    /// The client IP (IPv6 clients by their /64).
    ClientIp,
    /// The verified token's `sub`; the client IP without one.
    Principal,
    /// That header's value; the client IP without one.
    Header(http::HeaderName),
    /// One bucket per route.
    Route,
}

/// One named policy of `rate_limits:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatePolicy {
    pub name: Arc<str>,
    pub rate: Rate,
    pub key: LimitKey,
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub listen: SocketAddr,
    /// Turns on the admin API (docs/admin.md); at least `MIN_TOKEN_BYTES`.
    pub token: Option<AdminToken>,
}

impl Admin {
    pub const MIN_TOKEN_BYTES: usize = 32;
}

/// The admin API's bearer token. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(pub Arc<[u8]>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Log {
    /// Default `json`.
    pub format: LogFormat,
    /// The per-request access log on stdout; default on.
    pub access: bool,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: LogFormat::Json,
            access: true,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes; a larger request body gets 413. Default 10 MiB.
    pub max_body: u64,
    /// A request head not complete in time closes the connection. Default 10s.
    pub header_timeout: Duration,
    /// Idle keep-alive and pooled upstream connections close. Default 60s.
    /// Also the longest a response may wait on a client that accepts none
    /// of its bytes (a write stall).
    pub idle_timeout: Duration,
    /// Drain time on SIGTERM. Default 30s.
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
    /// A redb file (created with its folder if missing; default
    /// `DEFAULT_STORE`, beside the config file) or a PostgreSQL database.
    pub store: StoreLocation,
    /// `iss` of issued tokens; default `DEFAULT_ISSUER`.
    pub issuer: String,
    /// Default ttl `TokenKeys::ACCESS_TTL`.
    pub access_token: TokenKeys,
    /// Default ttl `TokenKeys::REFRESH_TTL`.
    pub refresh_token: TokenKeys,
    /// In `BCRYPT_COSTS`; default `DEFAULT_BCRYPT_COST`.
    pub bcrypt_cost: u32,
    /// The authorizer's decision cache; default `DEFAULT_CACHE_TTL`.
    pub cache_ttl: Duration,
    /// Entries; default `DEFAULT_CACHE_CAPACITY`.
    pub cache_capacity: u64,
    /// Given to every new user at sign-up; default none.
    pub default_scopes: Vec<String>,
    /// Default `SigninLimit::DEFAULT`.
    pub signin_limit: SigninLimit,
    /// Clock skew allowed on `exp`/`nbf`; default none, at most `MAX_LEEWAY`.
    pub leeway: Duration,
    /// How long a password-reset token stays valid; default `DEFAULT_RESET_TTL`.
    pub reset_ttl: Duration,
    /// Where reset tokens are delivered; `None`: no `POST /password-reset`.
    pub reset_webhook: Option<ResetWebhook>,
    /// How long a just-rotated refresh token still gets the current pair
    /// instead of counting as reuse; default none, at most `MAX_REUSE_INTERVAL`.
    pub reuse_interval: Duration,
    /// Per client IP, each built-in endpoint; `None`: `off`. Default
    /// `Rate::ENDPOINT_DEFAULT`.
    pub endpoint_limit: Option<Rate>,
}

impl Auth {
    pub const DEFAULT_STORE: &'static str = "data/users.redb";
    pub const DEFAULT_ISSUER: &'static str = "gateway";
    pub const DEFAULT_BCRYPT_COST: u32 = 10;
    /// The costs the bcrypt crate accepts.
    pub const BCRYPT_COSTS: RangeInclusive<u32> = 4..=31;
    pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
    pub const DEFAULT_CACHE_CAPACITY: u64 = 100_000;
    pub const DEFAULT_LEEWAY: Duration = Duration::ZERO;
    pub const MAX_LEEWAY: Duration = Duration::from_secs(60);
    pub const DEFAULT_RESET_TTL: Duration = Duration::from_secs(3600);
    pub const MAX_REUSE_INTERVAL: Duration = Duration::from_secs(60);
}

/// `auth.password_reset.webhook`: the receiver that mails reset tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct ResetWebhook {
    /// `http` or `https`, with a host.
    pub url: http::Uri,
    /// Keys the HMAC of each delivery; at least `MIN_SECRET_BYTES`.
    pub secret: Vec<u8>,
    /// At most one token per email per interval; zero: no limit.
    pub resend_interval: Duration,
}

impl ResetWebhook {
    pub const MIN_SECRET_BYTES: usize = 32;
    pub const DEFAULT_RESEND_INTERVAL: Duration = Duration::from_secs(60);
}

impl std::fmt::Debug for ResetWebhook {
    // The secret never appears in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetWebhook")
            .field("url", &self.url)
            .field("resend_interval", &self.resend_interval)
            .finish_non_exhaustive()
    }
}

/// RFC 6749 `scope-token`: 1 to 128 of `%x21 / %x23-5B / %x5D-7E` (no
/// space, `"` or `\`). Config, admin API and CLI apply the same rule.
pub fn is_scope_token(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// Where users and sessions live (docs/clusters.md).
#[derive(Debug, Clone)]
pub enum StoreLocation {
    /// One machine, one process: an embedded redb file.
    File(FileRef),
    /// Any number of gateways sharing one database.
    Postgres(Box<PostgresUrl>),
}

impl StoreLocation {
    /// The redb file, if the store is one.
    pub fn file(&self) -> Option<&FileRef> {
        match self {
            StoreLocation::File(f) => Some(f),
            StoreLocation::Postgres(_) => None,
        }
    }

    /// What start-up fixed, for the reload's restart check and the log:
    /// the path, or the URL without its password.
    pub fn shown(&self) -> String {
        match self {
            StoreLocation::File(f) => f.path.display().to_string(),
            StoreLocation::Postgres(u) => u.shown.clone(),
        }
    }
}

/// A `postgres://` or `postgresql://` URL, parsed (libpq syntax) but not
/// connected to.
#[derive(Clone)]
pub struct PostgresUrl {
    /// Everything but `sslmode`, which tokio-postgres cannot say
    /// `verify-full` in; its `Debug` hides the password.
    pub config: tokio_postgres::Config,
    pub sslmode: SslMode,
    /// The URL with its password replaced by `***`.
    pub shown: String,
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// libpq's `sslmode`, the three values the gateway supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// TLS without checking the server's certificate.
    Require,
    /// TLS, the chain checked against the operating system's roots and the
    /// name against the host.
    VerifyFull,
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
    /// PEM private key (asymmetric algorithms only).
    pub private_key: Option<FileRef>,
    /// PEM public keys that still verify tokens signed before a rotation.
    pub previous_keys: Vec<FileRef>,
    pub ttl: Duration,
}

impl TokenKeys {
    /// Access tokens live 15 minutes unless `ttl` says otherwise.
    pub const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
    /// Refresh tokens (sessions) live 7 days unless `ttl` says otherwise.
    pub const REFRESH_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);
    /// A configured secret has at least 256 bits.
    pub const MIN_SECRET_BYTES: usize = 32;
}

/// Failed sign-ins per email within `window` before further attempts get 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigninLimit {
    pub failures: u32,
    pub window: Duration,
}

impl SigninLimit {
    /// `signin_limit: { failures: 5, window: 15m }`.
    pub const DEFAULT: SigninLimit = SigninLimit {
        failures: 5,
        window: Duration::from_secs(15 * 60),
    };
}

/// A CORS policy; a key the file leaves out takes `CorsPolicy::default()`'s
/// value, in the global policy and in a route's own alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Lower-cased exact origins; `any` when the list is `["*"]`. Default none.
    pub allow_origins: Vec<String>,
    pub any_origin: bool,
    /// Default GET, HEAD, POST, PUT, PATCH, DELETE.
    pub allow_methods: Vec<Method>,
    /// Default Authorization, Content-Type.
    pub allow_headers: Vec<String>,
    /// Default X-Request-Id.
    pub expose_headers: Vec<String>,
    /// Default off.
    pub allow_credentials: bool,
    /// Default 10 minutes.
    pub max_age: Duration,
}

impl Default for CorsPolicy {
    fn default() -> Self {
        CorsPolicy {
            allow_origins: Vec::new(),
            any_origin: false,
            allow_methods: vec![
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ],
            allow_headers: vec!["Authorization".into(), "Content-Type".into()],
            expose_headers: vec!["X-Request-Id".into()],
            allow_credentials: false,
            max_age: Duration::from_secs(10 * 60),
        }
    }
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
    /// Connect + until the response head, and the longest silence while a
    /// body streams; default `Route::DEFAULT_TIMEOUT`.
    pub timeout: Duration,
    /// Overrides `limits.max_body` for this route's request bodies (a
    /// whole stream, for gRPC).
    pub max_body: Option<u64>,
    pub cors: RouteCors,
    /// HTTP/1.1 (default) or HTTP/2 to the upstream (h2c for `http://`).
    pub upstream_protocol: UpstreamProtocol,
    /// Names of `rate_limits` policies, each of which must allow a request.
    pub rate_limit: Vec<Arc<str>>,
}

impl Route {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// The largest request body it takes: its own `max_body`, else the global one.
    pub fn max_body(&self, limits: &Limits) -> u64 {
        self.max_body.unwrap_or(limits.max_body)
    }

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
    Builtin(Endpoint),
}

/// The built-in endpoints (`config::builtin` says where each is served).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Signup,
    Signin,
    RefreshToken,
    Signout,
    /// `GET /.well-known/jwks.json`: the public keys of access tokens.
    Jwks,
    /// `GET /sessions` (bearer): the caller's live sessions.
    Sessions,
    /// `DELETE /sessions/{sid}` (bearer): revokes one of them.
    SessionDelete,
    /// `POST /password` (bearer): the current password replaced.
    Password,
    /// `POST /password-reset`: a reset token mailed through the webhook.
    PasswordReset,
    /// `POST /password-reset/confirm`: a reset token sets a new password.
    PasswordResetConfirm,
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
