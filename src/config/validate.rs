//! One pass from the YAML tree to `model::Config`, collecting every error
//! with its position instead of stopping at the first.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Scheme, Uri};
use http::{HeaderValue, Method};
use serde::Deserialize;

use super::de::from_node;
use super::error::{ConfigError, Pos};
use super::model::*;
use super::raw;
use super::units;
use super::yaml::{Kind, Node};
use crate::auth::jwt::{SigningError, SigningKeys};
use crate::config::Template;

const STANDARD_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
    Method::CONNECT,
];

const TOP_LEVEL_KEYS: &[&str] = &[
    "listen", "tls", "admin", "log", "limits", "auth", "cors", "routes",
];

/// Builds the validated config; `base` is the folder relative paths resolve against.
pub fn config(root: &Node, file: &Path, base: &Path) -> Result<Config, Vec<ConfigError>> {
    let mut v = Validator {
        root,
        base,
        errors: Vec::new(),
    };
    let config = v.top_level(file);
    match v.errors.is_empty() {
        true => Ok(config),
        false => Err(v.errors),
    }
}

struct Validator<'a> {
    root: &'a Node,
    base: &'a Path,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    /// Records an error at the node found at `path` (or its nearest ancestor).
    fn err(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.root.locate(path);
        self.errors.push(ConfigError::new(pos, path, message));
    }

    /// Deserializes one section, recording its error instead of failing the whole file.
    fn section<'n, T: Deserialize<'n>>(&mut self, node: &'n Node, path: &str) -> Option<T> {
        match from_node(node, path) {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    fn top_level(&mut self, file: &Path) -> Config {
        let mut config = Config {
            file: file.to_path_buf(),
            listen: None,
            tls: None,
            admin: None,
            log: Log {
                format: LogFormat::Json,
                access: true,
            },
            limits: Limits::default(),
            auth: None,
            cors: None,
            routes: Vec::new(),
        };
        let Some(entries) = self.root.as_map() else {
            self.errors.push(ConfigError::new(
                Pos::new(1, 1),
                "",
                "the file must be a YAML mapping",
            ));
            return config;
        };
        let (mut listen, mut tls, mut routes) = (None, None, None);
        for (key, value) in entries {
            let name = key.key_text();
            if value.is_null() && name != "routes" {
                continue;
            }
            match name {
                "listen" => listen = self.section::<String>(value, name),
                "tls" => tls = self.section::<raw::Tls>(value, name),
                "admin" => {
                    if let Some(a) = self.section::<raw::Admin>(value, name) {
                        config.admin = self.addr("admin.listen", &a.listen);
                    }
                }
                "log" => {
                    if let Some(l) = self.section::<raw::Log>(value, name) {
                        config.log = Log {
                            format: l.format.unwrap_or_default(),
                            access: l.access.unwrap_or(true),
                        };
                    }
                }
                "limits" => {
                    if let Some(l) = self.section::<raw::Limits>(value, name) {
                        config.limits = self.limits(l);
                    }
                }
                "auth" => {
                    config.auth = self.section::<raw::Auth>(value, name).map(|a| self.auth(a))
                }
                "cors" => {
                    config.cors = self
                        .section::<raw::Cors>(value, name)
                        .map(|c| Arc::new(self.cors(c, "cors")))
                }
                "routes" => routes = Some(value),
                _ => self.errors.push(ConfigError::new(
                    key.pos,
                    name,
                    format!(
                        "unknown key `{name}`, expected one of: {}",
                        TOP_LEVEL_KEYS.join(", ")
                    ),
                )),
            }
        }
        config.listen = listen.and_then(|l| self.addr("listen", &l));
        config.tls = tls.and_then(|t| self.tls(t));
        if listen_missing(&config)
            && self
                .errors
                .iter()
                .all(|e| !e.path.starts_with("listen") && !e.path.starts_with("tls"))
        {
            self.err(
                "",
                "`listen` or `tls` is required: the gateway needs somewhere to listen",
            );
        }
        match routes {
            None => self.err("", "`routes` is required"),
            Some(node) => config.routes = self.routes(node, config.auth.is_some()),
        }
        config
    }

    fn addr(&mut self, path: &str, text: &str) -> Option<SocketAddr> {
        match SocketAddr::from_str(text) {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(path, format!("{text:?} is not an address; write IP:PORT, e.g. 127.0.0.1:3000 or [::1]:3000"));
                None
            }
        }
    }

    fn duration(&mut self, path: &str, text: Option<String>, default: Duration) -> Duration {
        match text.map(|t| units::duration(&t)) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(msg)) => {
                self.err(path, msg);
                default
            }
        }
    }

    fn file_path(&self, text: &str) -> PathBuf {
        self.base.join(text)
    }

    fn tls(&mut self, t: raw::Tls) -> Option<Tls> {
        let listen = self.addr("tls.listen", &t.listen)?;
        let (cert, key) = (self.file_path(&t.cert), self.file_path(&t.key));
        if let Err(msg) = crate::http::tls::load_certified_key(&cert, &key) {
            self.err("tls.cert", msg);
        }
        Some(Tls { listen, cert, key })
    }

    fn limits(&mut self, l: raw::Limits) -> Limits {
        let d = Limits::default();
        let max_body = match l.max_body {
            None => d.max_body,
            Some(raw::Size::Bytes(n)) => n,
            Some(raw::Size::Text(t)) => units::size(&t).unwrap_or_else(|msg| {
                self.err("limits.max_body", msg);
                d.max_body
            }),
        };
        Limits {
            max_body,
            header_timeout: self.duration(
                "limits.header_timeout",
                l.header_timeout,
                d.header_timeout,
            ),
            idle_timeout: self.duration("limits.idle_timeout", l.idle_timeout, d.idle_timeout),
            shutdown_timeout: self.duration(
                "limits.shutdown_timeout",
                l.shutdown_timeout,
                d.shutdown_timeout,
            ),
            max_connections: self
                .count("limits.max_connections", l.max_connections, 1)
                .unwrap_or(d.max_connections),
            // 0: no cap.
            max_connections_per_ip: self
                .count("limits.max_connections_per_ip", l.max_connections_per_ip, 0)
                .filter(|&n| n > 0),
            h2_max_streams: self
                .count("limits.h2_max_streams", l.h2_max_streams, 1)
                .map_or(d.h2_max_streams, |n| n as u32),
        }
    }

    /// A count of at least `min`, at most `u32::MAX` (what HTTP/2 settings carry).
    fn count(&mut self, path: &str, n: Option<u64>, min: u64) -> Option<usize> {
        let n = n?;
        if n < min || n > u64::from(u32::MAX) {
            let msg = format!("{n} is out of range; expected {min}..={}", u32::MAX);
            self.err(path, msg);
            return None;
        }
        Some(n as usize)
    }

    fn auth(&mut self, a: raw::Auth) -> Auth {
        let store = self.file_path(a.store.as_deref().unwrap_or("data/users.redb"));
        if let Err(msg) = store_folder_writable(&store) {
            self.err("auth.store", msg);
        }
        let access_token = self.token_keys(
            "auth.access_token",
            a.access_token.unwrap_or_default(),
            Duration::from_secs(15 * 60),
            true,
        );
        let refresh_token = self.token_keys(
            "auth.refresh_token",
            a.refresh_token.unwrap_or_default(),
            Duration::from_secs(7 * 86_400),
            false,
        );
        if access_token.secret.is_some() && access_token.secret == refresh_token.secret {
            self.err(
                "auth.refresh_token.secret",
                "the refresh secret must differ from the access secret",
            );
        }
        let bcrypt_cost = a.bcrypt_cost.unwrap_or(10);
        if !(4..=31).contains(&bcrypt_cost) {
            self.err(
                "auth.bcrypt_cost",
                format!("{bcrypt_cost} is out of range; bcrypt cost is 4..=31"),
            );
        }
        let leeway = self.duration("auth.leeway", a.leeway, Duration::ZERO);
        if leeway > Duration::from_secs(60) {
            self.err("auth.leeway", "leeway is at most 60s");
        }
        let signin_limit = match a.signin_limit {
            None => SigninLimit {
                failures: 5,
                window: Duration::from_secs(15 * 60),
            },
            Some(l) => SigninLimit {
                failures: l.failures,
                window: self.duration(
                    "auth.signin_limit.window",
                    Some(l.window),
                    Duration::from_secs(900),
                ),
            },
        };
        Auth {
            store,
            issuer: a.issuer.unwrap_or_else(|| "gateway".to_string()),
            access_token,
            refresh_token,
            bcrypt_cost,
            cache_ttl: self.duration("auth.cache_ttl", a.cache_ttl, Duration::from_secs(300)),
            cache_capacity: a.cache_capacity.unwrap_or(100_000),
            default_scopes: a.default_scopes.unwrap_or_default(),
            signin_limit,
            leeway,
        }
    }

    fn token_keys(
        &mut self,
        path: &str,
        t: raw::Token,
        default_ttl: Duration,
        asymmetric_allowed: bool,
    ) -> TokenKeys {
        let algorithm = match t.algorithm.as_deref() {
            None | Some("HS256") => Algorithm::HS256,
            Some("EdDSA") if asymmetric_allowed => Algorithm::EdDSA,
            Some("ES256") if asymmetric_allowed => Algorithm::ES256,
            Some("RS256") if asymmetric_allowed => Algorithm::RS256,
            Some(other) => {
                let allowed = if asymmetric_allowed {
                    "HS256, EdDSA, ES256 or RS256"
                } else {
                    "HS256 (refresh tokens are only read by the gateway)"
                };
                self.err(
                    &format!("{path}.algorithm"),
                    format!("unknown algorithm {other:?}; expected {allowed}"),
                );
                Algorithm::HS256
            }
        };
        let secret = t.secret.filter(|s| !s.is_empty()).map(String::into_bytes);
        if secret.as_ref().is_some_and(|s| s.len() < 32) {
            self.err(
                &format!("{path}.secret"),
                "a secret must be at least 32 bytes (256 bits)",
            );
        }
        let private_key = t.private_key.map(|p| self.file_path(&p));
        match (algorithm, &secret, &private_key) {
            (Algorithm::HS256, _, Some(_)) => self.err(
                &format!("{path}.private_key"),
                "HS256 uses `secret`, not `private_key`",
            ),
            (Algorithm::HS256, _, None) => {}
            (_, Some(_), _) => self.err(
                &format!("{path}.secret"),
                "asymmetric algorithms use `private_key`, not `secret`",
            ),
            (_, None, None) => {
                self.err(path, "asymmetric algorithms need `private_key: PATH` (PEM)")
            }
            (_, None, Some(p)) => {
                if let Err(e) = std::fs::metadata(p) {
                    self.err(
                        &format!("{path}.private_key"),
                        format!("cannot read {}: {e}", p.display()),
                    );
                }
            }
        }
        let keys = TokenKeys {
            algorithm,
            secret,
            private_key,
            previous_keys: t
                .previous_keys
                .unwrap_or_default()
                .iter()
                .map(|p| self.file_path(p))
                .collect(),
            ttl: self.duration(&format!("{path}.ttl"), t.ttl, default_ttl),
        };
        self.check_key_files(path, &keys);
        keys
    }

    /// Key files must parse as the algorithm's keys, as `serve` will read them.
    fn check_key_files(&mut self, path: &str, keys: &TokenKeys) {
        let Some(private) = keys.private_key.as_ref().filter(|p| p.exists()) else {
            return;
        };
        if keys.algorithm == Algorithm::HS256 {
            return;
        }
        let loaded = SigningKeys::asymmetric(keys.algorithm, private, &keys.previous_keys);
        if let Err(e) = loaded {
            let field = match &e {
                SigningError::Read { path: p, .. } | SigningError::Bad { path: p, .. }
                    if p != private =>
                {
                    "previous_keys"
                }
                _ => "private_key",
            };
            self.err(&format!("{path}.{field}"), e.to_string());
        }
    }

    fn cors(&mut self, c: raw::Cors, path: &str) -> CorsPolicy {
        let origins: Vec<String> = c
            .allow_origins
            .unwrap_or_default()
            .iter()
            .map(|o| o.to_ascii_lowercase())
            .collect();
        let any_origin = origins.iter().any(|o| o == "*");
        if any_origin && origins.len() > 1 {
            self.err(
                &format!("{path}.allow_origins"),
                "`*` must be the only entry when present",
            );
        }
        for (i, o) in origins.iter().enumerate().filter(|(_, o)| *o != "*") {
            if !is_origin(o) {
                self.err(
                    &format!("{path}.allow_origins[{i}]"),
                    format!("{o:?} is not an origin; write scheme://host[:port] with no path"),
                );
            }
        }
        let allow_credentials = c.allow_credentials.unwrap_or(false);
        if any_origin && allow_credentials {
            self.err(&format!("{path}.allow_credentials"), "`allow_origins: [\"*\"]` with `allow_credentials: true` is refused by browsers; list the origins instead");
        }
        let methods = c.allow_methods.unwrap_or_else(|| {
            ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
                .map(String::from)
                .to_vec()
        });
        CorsPolicy {
            allow_origins: origins,
            any_origin,
            allow_methods: self.methods(&format!("{path}.allow_methods"), &methods),
            allow_headers: c
                .allow_headers
                .unwrap_or_else(|| vec!["Authorization".into(), "Content-Type".into()]),
            expose_headers: c
                .expose_headers
                .unwrap_or_else(|| vec!["X-Request-Id".into()]),
            allow_credentials,
            max_age: self.duration(
                &format!("{path}.max_age"),
                c.max_age,
                Duration::from_secs(600),
            ),
        }
    }

    fn methods(&mut self, path: &str, names: &[String]) -> Vec<Method> {
        let mut out = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            // Only the standard methods: an extension method in this file is
            // far more likely a typo than a WebDAV verb.
            let upper = name.to_ascii_uppercase();
            match STANDARD_METHODS.iter().find(|m| m.as_str() == upper) {
                Some(m) if !out.contains(m) => out.push(m.clone()),
                Some(_) => self.err(&format!("{path}[{i}]"), format!("method {name} is listed twice")),
                None => self.err(&format!("{path}[{i}]"), format!("{name:?} is not an HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT)")),
            }
        }
        out
    }

    fn routes(&mut self, node: &Node, auth_configured: bool) -> Vec<Route> {
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
            let Some(route) = self.route(r, &path, auth_configured) else {
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

    fn route(&mut self, r: raw::Route, path: &str, auth_configured: bool) -> Option<Route> {
        let template = Template::parse(&r.path)
            .map_err(|msg| self.err(&format!("{path}.path"), msg))
            .ok();
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
            if !p.starts_with('/') || p.len() < 2 || p.ends_with('/') {
                self.err(
                    &format!("{path}.strip_prefix"),
                    "strip_prefix is an absolute path like /api, without a trailing /",
                );
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
            Some(raw::RouteCors::Off) => RouteCors::Off,
            Some(raw::RouteCors::Policy(c)) => {
                RouteCors::Policy(Arc::new(self.cors(c, &format!("{path}.cors"))))
            }
        };
        Some(Route {
            name: r.name.into(),
            template: template?,
            methods,
            target,
            auth,
            scopes: r.scopes.unwrap_or_default(),
            strip_prefix: r.strip_prefix,
            timeout: self.duration(
                &format!("{path}.timeout"),
                r.timeout,
                Duration::from_secs(30),
            ),
            cors,
            upstream_protocol: r.upstream_protocol.unwrap_or_default(),
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

fn listen_missing(c: &Config) -> bool {
    c.listen.is_none() && c.tls.is_none()
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

fn is_origin(o: &str) -> bool {
    let Some((scheme, rest)) = o.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && !rest.is_empty()
        && !rest.contains('/')
        && Uri::from_str(o).is_ok_and(|u| u.host().is_some())
}

/// The store's folder must exist and be writable, or be creatable.
fn store_folder_writable(store: &Path) -> Result<(), String> {
    let folder = store.parent().unwrap_or(Path::new("."));
    let mut existing = folder;
    while !existing.exists() {
        existing = existing
            .parent()
            .ok_or_else(|| format!("no existing folder above {}", folder.display()))?;
    }
    let meta = std::fs::metadata(existing)
        .map_err(|e| format!("cannot read {}: {e}", existing.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a folder", existing.display()));
    }
    if meta.permissions().readonly() {
        return Err(format!("{} is not writable", existing.display()));
    }
    Ok(())
}
