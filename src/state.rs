//! What a request reads: one immutable `GatewayState` snapshot per request,
//! held in an `ArcSwap` so a reload can replace it without stopping traffic.
//! The upstream client (and its connection pool) outlives snapshots.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{Config, CorsPolicy, Limits, Log};
use crate::identity::Identity;
use crate::route::RouteTable;
use crate::upstream::Upstreams;

pub struct GatewayState {
    pub routes: RouteTable,
    pub limits: Limits,
    pub log: Log,
    /// The global CORS policy, for requests no route's own policy covers.
    pub cors: Option<Arc<CorsPolicy>>,
}

impl GatewayState {
    pub fn new(config: &Config) -> GatewayState {
        GatewayState {
            routes: RouteTable::new(config.routes.clone()),
            limits: config.limits,
            log: config.log,
            cors: config.cors.clone(),
        }
    }
}

pub struct Gateway {
    pub state: ArcSwap<GatewayState>,
    pub upstreams: Upstreams,
    /// The built-in endpoints; `None` without an `auth` section.
    pub identity: Option<Arc<Identity>>,
}

impl Gateway {
    pub fn new(config: &Config, identity: Option<Arc<Identity>>) -> std::io::Result<Gateway> {
        Ok(Gateway {
            state: ArcSwap::from_pointee(GatewayState::new(config)),
            upstreams: Upstreams::new(config.limits.idle_timeout)?,
            identity,
        })
    }
}
