//! What a request reads: one immutable `GatewayState` snapshot per request,
//! held in an `ArcSwap` so a reload can replace it without stopping traffic.
//! What outlives snapshots (the upstream pool, the open user store, the
//! certificate slot, the metrics, the bound addresses) lives in `Gateway`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::auth::admin_token::AdminKey;
use crate::config::{ClientIp, Config, CorsPolicy, Endpoint, Limits, Log, Route};
use crate::http::tls::CertResolver;
use crate::identity::{Identity, IdentityError, UserStore};
use crate::load::Loaded;
use crate::proxy::route::RouteTable;
use crate::proxy::upstream::Upstreams;
use crate::ratelimit::RateLimits;
use crate::telemetry::metrics::Metrics;

pub struct GatewayState {
    pub routes: RouteTable,
    pub limits: Limits,
    pub log: Log,
    /// The global CORS policy, for requests no route's own policy covers.
    pub cors: Option<Arc<CorsPolicy>>,
    /// The built-in endpoints and the authorizer; `None` without `auth`,
    /// or while `identity_pending`.
    pub identity: Option<Arc<Identity>>,
    /// `auth` is set but its generated keys live in a database not reached
    /// yet: protected routes and the endpoints answer 503 until it is.
    pub identity_pending: bool,
    /// `admin.token`: turns on the admin API; a reload may change it.
    pub admin_key: Option<Arc<AdminKey>>,
    pub client_ip: Arc<ClientIp>,
    /// The rate-limit policies and their buckets (kept across reloads
    /// for policies a reload does not change).
    pub rate_limits: RateLimits,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("auth: {0}")]
    Identity(#[from] IdentityError),
    #[error(
        "{0}: `auth` was added, but the user store is opened at start only; restart the gateway"
    )]
    NoStore(String),
    #[error("admin.token: the system's random source failed")]
    Random,
}

impl GatewayState {
    /// The state the loaded config and its keys describe, over the running
    /// gateway's store; `previous` lends what a reload should not reset
    /// (see `Identity::build`). Blocking (generated secrets, a bcrypt hash):
    /// call it off the runtime.
    pub fn build(
        loaded: &Loaded,
        users: Option<&Arc<UserStore>>,
        metrics: &Arc<Metrics>,
        previous: Option<&GatewayState>,
    ) -> Result<GatewayState, StateError> {
        let config = &loaded.config;
        let identity = match (&config.auth, users) {
            (None, _) => None,
            (Some(auth), Some(users)) => match Identity::build(
                auth,
                loaded.access_keys.clone(),
                users.clone(),
                metrics.clone(),
                previous.and_then(|p| p.identity.as_deref()),
            ) {
                Ok(identity) => Some(Arc::new(identity)),
                Err(e @ IdentityError::KeyNotReached(_)) => {
                    tracing::warn!(error = %e, "identity service waiting for the user store");
                    None
                }
                Err(e) => return Err(e.into()),
            },
            (Some(_), None) => return Err(StateError::NoStore(config.file.display().to_string())),
        };
        let identity_pending = config.auth.is_some() && identity.is_none();
        let admin_key = match config.admin.as_ref().and_then(|a| a.token.as_ref()) {
            Some(token) => Some(Arc::new(
                AdminKey::new(&token.0).map_err(|_| StateError::Random)?,
            )),
            None => None,
        };
        Ok(GatewayState {
            routes: RouteTable::new(routes(config, config.auth.is_some())),
            limits: config.limits,
            log: config.log,
            cors: config.cors.clone(),
            identity,
            identity_pending,
            admin_key,
            client_ip: Arc::new(config.client_ip.clone()),
            rate_limits: RateLimits::build(config, previous.map(|p| &p.rate_limits)),
        })
    }
}

/// The configured routes, and the built-in endpoints when `auth` is set.
fn routes(config: &Config, builtins: bool) -> Vec<Route> {
    let mut routes = config.routes.clone();
    if builtins {
        routes.extend(Endpoint::ALL.map(Endpoint::route));
    }
    routes
}

/// What start-up fixed: a reload that changes one of these is told it needs a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    pub file: PathBuf,
    pub listen: Option<SocketAddr>,
    pub tls_listen: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    /// The store's path or URL (without its password).
    pub store: Option<String>,
}

impl Boot {
    pub fn of(config: &Config) -> Boot {
        Boot {
            file: config.file.clone(),
            listen: config.listen,
            tls_listen: config.tls.as_ref().map(|t| t.listen),
            admin: config.admin.as_ref().map(|a| a.listen),
            store: config.auth.as_ref().map(|a| a.store.shown()),
        }
    }

    /// The settings `next` changes that only a restart applies.
    pub fn needs_restart(&self, next: &Boot) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.listen != next.listen {
            changed.push("listen");
        }
        if self.tls_listen != next.tls_listen {
            changed.push("tls.listen");
        }
        if self.admin != next.admin {
            changed.push("admin.listen");
        }
        if self.store.is_some() && next.store.is_some() && self.store != next.store {
            changed.push("auth.store");
        }
        changed
    }
}

pub struct Gateway {
    pub state: ArcSwap<GatewayState>,
    pub upstreams: Upstreams,
    pub metrics: Arc<Metrics>,
    /// The user store opened at start; `None` without `auth` then.
    pub users: Option<Arc<UserStore>>,
    /// The HTTPS listener's certificate; `None` without `tls` at start.
    pub cert: Option<Arc<CertResolver>>,
    pub boot: Boot,
    /// `/readyz`: set once every listener serves, cleared at shutdown.
    pub ready: AtomicBool,
}
