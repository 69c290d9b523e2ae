//! The built-in endpoints that `auth` turns on (docs/identity.md): their paths,
//! their one method and the route each is served as, so routing treats them
//! like any route. Their paths are literal, so they beat templates and `/*`
//! prefixes that also match them.

use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::model::{AuthMode, Endpoint, Route, RouteCors, Target, UpstreamProtocol};
use super::template::Template;

impl Endpoint {
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Signup,
        Endpoint::Signin,
        Endpoint::RefreshToken,
        Endpoint::Signout,
        Endpoint::Jwks,
        Endpoint::PasswordResetConfirm,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Signup => "/signup",
            Endpoint::Signin => "/signin",
            Endpoint::RefreshToken => "/refresh-token",
            Endpoint::Signout => "/signout",
            Endpoint::Jwks => "/.well-known/jwks.json",
            Endpoint::PasswordResetConfirm => "/password-reset/confirm",
        }
    }

    /// The `route` of access records and metrics.
    pub fn route_name(self) -> &'static str {
        match self {
            Endpoint::Signup => "builtin:signup",
            Endpoint::Signin => "builtin:signin",
            Endpoint::RefreshToken => "builtin:refresh-token",
            Endpoint::Signout => "builtin:signout",
            Endpoint::Jwks => "builtin:jwks",
            Endpoint::PasswordResetConfirm => "builtin:password-reset-confirm",
        }
    }

    /// The one method it answers (and `HEAD` for `GET`).
    pub fn method(self) -> Method {
        match self {
            Endpoint::Jwks => Method::GET,
            _ => Method::POST,
        }
    }

    /// The route it is served as: no token required (the endpoint reads
    /// what it needs), the global CORS policy.
    pub fn route(self) -> Route {
        Route {
            name: Arc::from(self.route_name()),
            template: Template::parse(self.path()).expect("built-in paths are valid templates"),
            methods: Some(vec![self.method()]),
            target: Target::Builtin(self),
            auth: AuthMode::None,
            scopes: Vec::new(),
            strip_prefix: None,
            timeout: Duration::from_secs(30),
            cors: RouteCors::Inherit,
            upstream_protocol: UpstreamProtocol::Http1,
            rate_limit: Vec::new(),
        }
    }
}
