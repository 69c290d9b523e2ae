//! One pass from the YAML tree to `model::Config`, collecting every error
//! with its position instead of stopping at the first. Each top-level
//! section is validated in its own file; this one holds the walk over the
//! top level and the helpers the sections share.

mod auth;
mod cors;
mod limits;
mod listeners;
mod log;
mod rate_limits;
mod routes;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde::Deserialize;

use super::de::from_node;
use super::error::{ConfigError, Pos};
use super::model::*;
use super::raw;
use super::suggest;
use super::units;
use super::yaml::Node;

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
    "listen",
    "tls",
    "admin",
    "log",
    "limits",
    "client_ip",
    "rate_limits",
    "auth",
    "cors",
    "routes",
];

/// Builds the config as far as the tree allows, with every error found;
/// `base` is the folder relative paths resolve against.
pub fn config(root: &Node, file: &Path, base: &Path) -> (Config, Vec<ConfigError>) {
    let mut v = Validator {
        root,
        base,
        errors: Vec::new(),
    };
    let config = v.top_level(file);
    (config, v.errors)
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
            log: Log::default(),
            limits: Limits::default(),
            client_ip: ClientIp::default(),
            rate_limits: Vec::new(),
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
        // Sections given in the file, valid or not: a section with errors
        // has reported them, and still counts as present for the checks
        // of other sections (one typo inside `auth` is one error).
        let mut present = HashSet::new();
        for (key, value) in entries {
            let name = key.key_text();
            if value.is_null() && name != "routes" {
                continue;
            }
            present.insert(name);
            match name {
                "listen" => listen = self.section::<String>(value, name),
                "tls" => tls = self.section::<raw::Tls>(value, name),
                "admin" => {
                    if let Some(a) = self.section::<raw::Admin>(value, name) {
                        config.admin = self.admin(a);
                    }
                }
                "log" => {
                    if let Some(l) = self.section::<raw::Log>(value, name) {
                        config.log = log::log(l);
                    }
                }
                "limits" => {
                    if let Some(l) = self.section::<raw::Limits>(value, name) {
                        config.limits = self.limits(l);
                    }
                }
                "client_ip" => {
                    if let Some(c) = self.section::<raw::ClientIp>(value, name) {
                        config.client_ip = self.client_ip(c);
                    }
                }
                "rate_limits" => config.rate_limits = self.rate_limits(value),
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
                        "unknown key `{name}`, expected one of: {}{}",
                        TOP_LEVEL_KEYS.join(", "),
                        suggest::hint(name, TOP_LEVEL_KEYS)
                    ),
                )),
            }
        }
        config.listen = listen.and_then(|l| self.addr("listen", &l));
        config.tls = tls.and_then(|t| self.tls(t));
        if !present.contains("listen") && !present.contains("tls") {
            self.err(
                "",
                "`listen` or `tls` is required: the gateway needs somewhere to listen",
            );
        }
        if config.admin.as_ref().is_some_and(|a| a.token.is_some()) && !present.contains("auth") {
            self.err(
                "admin.token",
                "the admin API manages the users of `auth`; add an `auth` section or remove admin.token",
            );
        }
        match routes {
            None => self.err("", "`routes` is required"),
            Some(node) => {
                config.routes = self.routes(node, present.contains("auth"), &config.rate_limits)
            }
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

    /// A file the config names at `path`, resolved against the config's
    /// folder and positioned at its scalar. Nothing is read here.
    fn file_ref(&mut self, path: &str, text: &str) -> FileRef {
        if text.trim().is_empty() {
            self.err(path, "the path is empty; give a file path");
        }
        FileRef {
            path: self.base.join(text),
            yaml_path: path.to_string(),
            pos: self.root.locate(path),
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
}
