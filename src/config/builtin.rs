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
    pub const ALL: [Endpoint; 10] = [
        Endpoint::Signup,
        Endpoint::Signin,
        Endpoint::RefreshToken,
        Endpoint::Signout,
        Endpoint::Jwks,
        Endpoint::Sessions,
        Endpoint::SessionDelete,
        Endpoint::Password,
        Endpoint::PasswordReset,
        Endpoint::PasswordResetConfirm,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Signup => "/signup",
            Endpoint::Signin => "/signin",
            Endpoint::RefreshToken => "/refresh-token",
            Endpoint::Signout => "/signout",
            Endpoint::Jwks => "/.well-known/jwks.json",
            Endpoint::Sessions => "/sessions",
            Endpoint::SessionDelete => "/sessions/{sid}",
            Endpoint::Password => "/password",
            Endpoint::PasswordReset => "/password-reset",
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
            Endpoint::Sessions => "builtin:sessions",
            Endpoint::SessionDelete => "builtin:session-delete",
            Endpoint::Password => "builtin:password",
            Endpoint::PasswordReset => "builtin:password-reset",
            Endpoint::PasswordResetConfirm => "builtin:password-reset-confirm",
        }
    }

    /// The one method it answers (and `HEAD` for `GET`).
    pub fn method(self) -> Method {
        match self {
            Endpoint::Jwks | Endpoint::Sessions => Method::GET,
            Endpoint::SessionDelete => Method::DELETE,
            _ => Method::POST,
        }
    }

    /// Does it act for the bearer of an access token, verified as on an
    /// `auth: required` route without scopes?
    pub fn needs_bearer(self) -> bool {
        matches!(
            self,
            Endpoint::Sessions | Endpoint::SessionDelete | Endpoint::Password
        )
    }

    /// The route it is served as: the global CORS policy; a token required
    /// where it acts for a bearer (the others read what they need).
    pub fn route(self) -> Route {
        Route {
            name: Arc::from(self.route_name()),
            template: Template::parse(self.path()).expect("built-in paths are valid templates"),
            methods: Some(vec![self.method()]),
            target: Target::Builtin(self),
            auth: match self.needs_bearer() {
                true => AuthMode::Required,
                false => AuthMode::None,
            },
            scopes: Vec::new(),
            strip_prefix: None,
            timeout: Duration::from_secs(30),
            max_body: None,
            cors: RouteCors::Inherit,
            upstream_protocol: UpstreamProtocol::Http1,
            rate_limit: Vec::new(),
        }
    }
}
