//! Test configs built as data rather than edited as text: each setting by
//! its dotted path, each route by its name. A variant of a shared config
//! says which setting it changes, and a change that cannot apply (a path
//! through a scalar, a route that is not there) panics, where `.replace()`
//! on YAML text quietly leaves the file as it was once the text drifts.
//!
//! ```ignore
//! let yaml = Yaml::new()
//!     .set("log.access", "false")
//!     .set("auth.signin_limit", "{ failures: 3, window: 1m }")
//!     .route("me", "path: /me, echo: true");
//! Gateway::start(&yaml).await;
//! ```

use std::fmt;

#[derive(Clone, Debug)]
enum Node {
    /// A value as YAML text (`4`, `15m`, `[a, b]`, `{ ttl: 15m }`).
    Text(String),
    Map(Vec<(String, Node)>),
}

/// A gateway config: top-level sections in the order first set, then
/// `routes` (last, in the order added). `listen` is left to the harness,
/// which puts 127.0.0.1:0 there.
#[derive(Clone, Debug, Default)]
pub struct Yaml {
    top: Vec<(String, Node)>,
    /// (name, the route's other fields as flow-mapping members).
    routes: Vec<(String, String)>,
}

impl Yaml {
    pub fn new() -> Yaml {
        Yaml::default()
    }

    /// Sets `path` (`auth.access_token.ttl`) to `value` (YAML text),
    /// replacing the value there or adding it, with any missing parent
    /// sections. Panics if a parent on the path is a scalar.
    pub fn set(mut self, path: &str, value: &str) -> Yaml {
        assert!(
            !path.is_empty() && path != "routes",
            "set({path:?}): routes are added with route()"
        );
        let mut map = &mut self.top;
        let mut keys = path.split('.').peekable();
        while let Some(key) = keys.next() {
            let i = match map.iter().position(|(k, _)| k == key) {
                Some(i) => i,
                None => {
                    map.push((key.to_string(), Node::Map(Vec::new())));
                    map.len() - 1
                }
            };
            if keys.peek().is_none() {
                map[i].1 = Node::Text(value.to_string());
                break;
            }
            map = match &mut map[i].1 {
                Node::Map(inner) => inner,
                Node::Text(text) => {
                    panic!("set({path:?}): `{key}` is the scalar {text:?}, not a section")
                }
            };
        }
        self
    }

    /// Adds the route `name` with `fields`, flow-mapping members such as
    /// `path: /me, echo: true`. Panics if a route has that name already.
    pub fn route(mut self, name: &str, fields: &str) -> Yaml {
        assert!(
            self.routes.iter().all(|(n, _)| n != name),
            "route({name:?}): there is a route {name:?} already"
        );
        self.routes.push((name.to_string(), fields.to_string()));
        self
    }

    /// Replaces the fields of route `name`, keeping its place; panics if
    /// there is no such route.
    pub fn set_route(mut self, name: &str, fields: &str) -> Yaml {
        let route = self
            .routes
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("set_route({name:?}): no route {name:?}"));
        route.1 = fields.to_string();
        self
    }
}

fn write_map(f: &mut fmt::Formatter<'_>, map: &[(String, Node)], indent: usize) -> fmt::Result {
    for (key, node) in map {
        match node {
            Node::Text(text) => writeln!(f, "{:indent$}{key}: {text}", "")?,
            Node::Map(inner) if inner.is_empty() => writeln!(f, "{:indent$}{key}: {{}}", "")?,
            Node::Map(inner) => {
                writeln!(f, "{:indent$}{key}:", "")?;
                write_map(f, inner, indent + 2)?;
            }
        }
    }
    Ok(())
}

impl fmt::Display for Yaml {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_map(f, &self.top, 0)?;
        if !self.routes.is_empty() {
            writeln!(f, "routes:")?;
            for (name, fields) in &self.routes {
                if fields.is_empty() {
                    writeln!(f, "  - {{ name: {name} }}")?;
                } else {
                    writeln!(f, "  - {{ name: {name}, {fields} }}")?;
                }
            }
        }
        Ok(())
    }
}

#[test]
fn renders_sections_in_order_and_routes_last() {
    let yaml = Yaml::new()
        .set("log.access", "false")
        .set("auth.store", "data/users.redb")
        .set("auth.access_token.ttl", "15m")
        .route("me", "path: /me, echo: true")
        .set("auth.store", "other.redb")
        .set("admin", "{ listen: 127.0.0.1:0 }")
        .route("pub", "path: \"/pub/*\", echo: true, auth: none")
        .set_route("me", "path: /me, echo: true, scopes: [admin]");
    assert_eq!(
        yaml.to_string(),
        "log:\n  access: false\nauth:\n  store: other.redb\n  access_token:\n    ttl: 15m\n\
         admin: { listen: 127.0.0.1:0 }\nroutes:\n\
         \x20 - { name: me, path: /me, echo: true, scopes: [admin] }\n\
         \x20 - { name: pub, path: \"/pub/*\", echo: true, auth: none }\n"
    );
}

#[test]
#[should_panic(expected = "`admin` is the scalar")]
fn setting_inside_a_scalar_panics() {
    let _ = Yaml::new()
        .set("admin", "{ listen: 127.0.0.1:0 }")
        .set("admin.listen", "127.0.0.1:1");
}

#[test]
#[should_panic(expected = "no route \"missing\"")]
fn changing_a_missing_route_panics() {
    let _ = Yaml::new()
        .route("me", "path: /me")
        .set_route("missing", "path: /x");
}
