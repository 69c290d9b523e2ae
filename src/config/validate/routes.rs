//! `routes`: each route, and the conflicts between them.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

use http::uri::{Scheme, Uri};
use http::HeaderValue;

use crate::config::model::{
    AuthMode, Endpoint, RatePolicy, Route, RouteCors, Target, UpstreamTarget,
};
use crate::config::raw;
use crate::config::yaml::{Kind, Node};
use crate::config::Template;

use super::Validator;

impl Validator<'_> {
    pub(super) fn routes(
        &mut self,
        node: &Node,
        auth_configured: bool,
        policies: &[RatePolicy],
    ) -> Vec<Route> {
        let Kind::Seq(items) = &node.kind else {
            self.err("routes", "`routes` is a list of routes");
            return Vec::new();
        };
        if items.is_empty() {
            self.err("routes", "at least one route is required");
        }
        let mut routes: Vec<Route> = Vec::with_capacity(items.len());
        let mut names = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("routes[{i}]");
            let Some(r) = self.section::<raw::Route>(item, &path) else {
                continue;
            };
            if !names.insert(r.name.clone()) {
                self.err(
                    &format!("{path}.name"),
                    format!("duplicate route name {:?}", r.name),
                );
            }
            let Some(route) = self.route(r, &path, auth_configured, policies) else {
                continue;
            };
            if let Some(other) = routes
                .iter()
                .find(|o| o.template.same_shape(&route.template) && methods_overlap(o, &route))
            {
                self.err(
                    &format!("{path}.path"),
                    format!(
                        "route {:?} has the same path shape and a shared method as route {:?}",
                        route.name, other.name
                    ),
                );
            }
            routes.push(route);
        }
        routes
    }

    fn route(
        &mut self,
        r: raw::Route,
        path: &str,
        auth_configured: bool,
        policies: &[RatePolicy],
    ) -> Option<Route> {
        let template = Template::parse(&r.path)
            .map_err(|msg| self.err(&format!("{path}.path"), msg))
            .ok();
        // The built-in endpoint would answer there, never this route.
        if let Some(e) = Endpoint::ALL
            .into_iter()
            .find(|e| auth_configured && e.path() == r.path)
        {
            self.err(
                &format!("{path}.path"),
                format!(
                    "route {:?} has the path of the built-in endpoint {} ({}); the endpoint would answer there, never the route",
                    r.name,
                    e.path(),
                    e.route_name()
                ),
            );
        }
        let methods = r
            .methods
            .map(|m| self.methods(&format!("{path}.methods"), &m));
        let target = match (r.upstream, r.echo) {
            (Some(u), None | Some(false)) => {
                Target::Upstream(self.upstreams(&format!("{path}.upstream"), &u.0))
            }
            (None, Some(true)) => Target::Echo,
            (Some(_), Some(true)) => {
                self.err(
                    &format!("{path}.echo"),
                    "a route has either `upstream` or `echo: true`, not both",
                );
                Target::Echo
            }
            (None, _) => {
                self.err(path, "a route needs `upstream: URL` or `echo: true`");
                Target::Echo
            }
        };
        let auth = match r.auth {
            Some(raw::AuthMode::None) => AuthMode::None,
            None | Some(raw::AuthMode::Required) => AuthMode::Required,
        };
        if auth == AuthMode::Required && !auth_configured {
            let at = if r.auth.is_some() {
                format!("{path}.auth")
            } else {
                path.to_string()
            };
            self.err(&at, "this route requires a token (`auth: required` is the default) but there is no `auth` section; add one, or set `auth: none`");
        }
        if let Some(p) = &r.strip_prefix {
            let at = format!("{path}.strip_prefix");
            if !p.starts_with('/') || p.len() < 2 || p.ends_with('/') {
                self.err(
                    &at,
                    "strip_prefix is an absolute path like /api, without a trailing /",
                );
            } else if let Some(t) = template.as_ref().filter(|t| !t.always_starts_with(p)) {
                self.err(&at, never_strips(p, &r.path, t));
            }
        }
        if r.upstream_protocol.is_some() && matches!(target, Target::Echo) {
            self.err(
                &format!("{path}.upstream_protocol"),
                "upstream_protocol applies to routes with an `upstream` only",
            );
        }
        let cors = match r.cors {
            None => RouteCors::Inherit,
            Some(raw::OffOr::Off) => RouteCors::Off,
            Some(raw::OffOr::On(c)) => {
                RouteCors::Policy(Arc::new(self.cors(c, &format!("{path}.cors"))))
            }
        };
        Some(Route {
            name: r.name.into(),
            template: template?,
            methods,
            target,
            auth,
            scopes: self.scopes(&format!("{path}.scopes"), r.scopes),
            strip_prefix: r.strip_prefix,
            timeout: self.duration(
                &format!("{path}.timeout"),
                r.timeout,
                Route::DEFAULT_TIMEOUT,
            ),
            max_body: self.size(&format!("{path}.max_body"), r.max_body),
            cors,
            upstream_protocol: r.upstream_protocol.unwrap_or_default(),
            rate_limit: self.route_policies(path, r.rate_limit, policies),
        })
    }

    fn upstreams(&mut self, path: &str, urls: &[String]) -> Vec<UpstreamTarget> {
        if urls.is_empty() {
            self.err(path, "at least one upstream URL is required");
        }
        let mut out = Vec::with_capacity(urls.len());
        for (i, url) in urls.iter().enumerate() {
            let at = if urls.len() == 1 {
                path.to_string()
            } else {
                format!("{path}[{i}]")
            };
            match upstream_target(url) {
                Ok(t) => out.push(t),
                Err(msg) => self.err(&at, msg),
            }
        }
        out
    }
}

/// Why `prefix` does not fit the route path `text`, and which would.
fn never_strips(prefix: &str, text: &str, template: &Template) -> String {
    let fits = template.strippable_prefixes();
    let fix = match fits.as_slice() {
        [] => "no strip_prefix fits a path that starts with a {param} or /*".to_string(),
        _ => format!(
            "give whole leading literal segments of the path: {}",
            fits.join(" or ")
        ),
    };
    format!("strip_prefix {prefix:?} does not start every path that {text:?} matches, so some requests or all would keep it; {fix}")
}

fn methods_overlap(a: &Route, b: &Route) -> bool {
    match (&a.methods, &b.methods) {
        (Some(x), Some(y)) => x.iter().any(|m| y.contains(m)),
        _ => true,
    }
}

fn upstream_target(url: &str) -> Result<UpstreamTarget, String> {
    let bad = || {
        format!("{url:?} is not an upstream URL; write http://HOST[:PORT][/path] or https://...")
    };
    let uri = Uri::from_str(url).map_err(|_| bad())?;
    let scheme = uri.scheme().cloned().ok_or_else(bad)?;
    if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
        return Err(format!(
            "{url:?}: an upstream URL starts with http:// or https://"
        ));
    }
    let authority = uri.authority().cloned().ok_or_else(bad)?;
    if authority.host().is_empty() || authority.as_str().contains('@') {
        return Err(bad());
    }
    if uri.query().is_some() {
        return Err(format!("{url:?}: an upstream URL has no query string"));
    }
    let base_path = uri.path().trim_end_matches('/').to_string();
    let host = HeaderValue::from_str(authority.as_str()).map_err(|_| bad())?;
    Ok(UpstreamTarget {
        host,
        display: format!("{scheme}://{authority}{base_path}").into(),
        pool_key: format!("{scheme}://{authority}")
            .to_ascii_lowercase()
            .into(),
        scheme,
        authority,
        base_path,
    })
}
