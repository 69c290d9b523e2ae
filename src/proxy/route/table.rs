//! The route table: a segment trie over the templates, so a lookup costs
//! what the path's depth costs, whatever the number of routes.
//!
//! SPEC 3's precedence is lexicographic over segments (literal, then
//! `{param}`, then the template ending here, then `/*`), so a depth-first
//! walk that tries a node's literal child, then its param child, then the
//! routes ending at it, then its `/*` routes, meets the matching routes
//! most specific first, exactly as sorting them by `Template::specificity`
//! would. Routes of one shape keep their configured order.

use std::ops::ControlFlow;

use http::Method;

use crate::config::{Route, Segment};

/// The outcome of matching a normalised path and a method.
#[derive(Debug)]
pub enum Match<'a> {
    Found(&'a Route),
    /// Routes exist for the path, none for the method: 405 with `Allow`.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Route>,
    root: Node,
}

/// One path segment's position in the templates. Routes are indices into
/// `RouteTable::routes`.
#[derive(Debug, Default)]
struct Node {
    /// Sorted by segment, for binary search.
    literals: Vec<(Box<str>, Node)>,
    param: Option<Box<Node>>,
    /// Templates ending here.
    exact: Vec<usize>,
    /// Templates ending here in `/*`.
    rest: Vec<usize>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Route>) -> RouteTable {
        // Stable, so routes of one shape keep their configured order.
        routes.sort_by(|a, b| a.template.specificity(&b.template));
        let mut root = Node::default();
        for (i, route) in routes.iter().enumerate() {
            let mut node = &mut root;
            for segment in route.template.segments() {
                node = node.child(segment);
            }
            match route.template.wildcard() {
                true => node.rest.push(i),
                false => node.exact.push(i),
            }
        }
        RouteTable { routes, root }
    }

    /// The configured routes (built-in endpoints not counted), as logs report them.
    pub fn configured(&self) -> usize {
        self.routes.iter().filter(|r| !r.owns_path()).count()
    }

    /// Matches a normalised path (`route::normalize` output).
    pub fn lookup(&self, path: &str, method: &Method) -> Match<'_> {
        let mut path_matched = false;
        let found = self.root.visit(Some(&path[1..]), &mut |i| {
            let route = &self.routes[i];
            if route.allows(method) || route.owns_path() {
                return ControlFlow::Break(route);
            }
            path_matched = true;
            ControlFlow::Continue(())
        });
        match found {
            ControlFlow::Break(route) => Match::Found(route),
            ControlFlow::Continue(()) if path_matched => {
                Match::MethodNotAllowed(self.allowed_methods(path))
            }
            ControlFlow::Continue(()) => Match::NotFound,
        }
    }

    fn allowed_methods(&self, path: &str) -> Vec<Method> {
        let mut allow: Vec<Method> = Vec::new();
        let _ = self.root.visit::<()>(Some(&path[1..]), &mut |i| {
            add_methods(&mut allow, &self.routes[i]);
            ControlFlow::Continue(())
        });
        allow
    }
}

/// Adds the methods `route` names to `allow`, each once, in order.
fn add_methods(allow: &mut Vec<Method>, route: &Route) {
    for m in route.methods.iter().flatten() {
        if !allow.contains(m) {
            allow.push(m.clone());
        }
    }
}

impl Node {
    fn child(&mut self, segment: &Segment) -> &mut Node {
        match segment {
            Segment::Param => self.param.get_or_insert_with(Box::default),
            Segment::Literal(l) => {
                let at = match self.literals.binary_search_by(|(k, _)| (**k).cmp(l)) {
                    Ok(at) => at,
                    Err(at) => {
                        self.literals
                            .insert(at, (l.as_str().into(), Node::default()));
                        at
                    }
                };
                &mut self.literals[at].1
            }
        }
    }

    /// Calls `f` with every route matching `rest` (the path after this
    /// node's segment, `None` past the last one), most specific first,
    /// until it breaks. Recursion is as deep as the deepest template.
    fn visit<B>(
        &self,
        rest: Option<&str>,
        f: &mut impl FnMut(usize) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        match rest {
            Some(rest) => {
                let (segment, after) = match rest.split_once('/') {
                    Some((segment, after)) => (segment, Some(after)),
                    None => (rest, None),
                };
                if let Ok(at) = self.literals.binary_search_by(|(k, _)| (**k).cmp(segment)) {
                    self.literals[at].1.visit(after, f)?;
                }
                if let Some(param) = self.param.as_deref().filter(|_| !segment.is_empty()) {
                    param.visit(after, f)?;
                }
            }
            None => self.exact.iter().try_for_each(|&i| f(i))?,
        }
        self.rest.iter().try_for_each(|&i| f(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn table(routes: &[(&str, &str, &str)]) -> RouteTable {
        let mut yaml = String::from("listen: 127.0.0.1:3000\nroutes:\n");
        for (name, path, methods) in routes {
            yaml +=
                &format!("  - name: {name}\n    path: {path}\n    echo: true\n    auth: none\n");
            if !methods.is_empty() {
                yaml += &format!("    methods: [{methods}]\n");
            }
        }
        let config = crate::config::parse(&yaml, Path::new("/t/gateway.yaml"), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        RouteTable::new(config.routes)
    }

    fn found(t: &RouteTable, path: &str, method: Method) -> Option<String> {
        match t.lookup(path, &method) {
            Match::Found(r) => Some(r.name.to_string()),
            _ => None,
        }
    }

    /// The table the trie replaced: every route in precedence order, the
    /// first that matches the path and allows the method wins.
    fn linear(t: &RouteTable, path: &str, method: &Method) -> (Option<String>, Vec<Method>) {
        let segments: Vec<&str> = path[1..].split('/').collect();
        let matching: Vec<&Route> = t
            .routes
            .iter()
            .filter(|r| r.template.matches(&segments))
            .collect();
        let winner = matching
            .iter()
            .find(|r| r.allows(method) || r.owns_path())
            .map(|r| r.name.to_string());
        let mut allow: Vec<Method> = Vec::new();
        for route in &matching {
            add_methods(&mut allow, route);
        }
        (winner, allow)
    }

    #[test]
    fn precedence_follows_spec_3() {
        let t = table(&[
            ("catch-all", "/*", ""),
            ("items-rest", "/items/*", ""),
            ("item", "/items/{id}", ""),
            ("item-new", "/items/new", ""),
            ("item-rest", "/items/{id}/*", ""),
            ("tenant-items", "/{tenant}/items", ""),
            ("dir", "/dir/", ""),
        ]);
        let cases = [
            ("/items/new", "item-new"),
            ("/items/7", "item"),
            ("/items/7/x/y", "item-rest"),
            ("/items/7/", "item-rest"),
            ("/items", "items-rest"),
            ("/items/", "items-rest"),
            ("/acme/items", "tenant-items"),
            ("/items/items", "item"),
            ("/dir/", "dir"),
            ("/dir", "catch-all"),
            ("/", "catch-all"),
            ("/x/y/z", "catch-all"),
        ];
        for (path, want) in cases {
            assert_eq!(
                found(&t, path, Method::GET).as_deref(),
                Some(want),
                "{path}"
            );
        }
    }

    #[test]
    fn a_param_never_matches_an_empty_segment() {
        let t = table(&[("item", "/items/{id}", ""), ("two", "/a/{x}/b", "")]);
        assert!(matches!(t.lookup("/items/", &Method::GET), Match::NotFound));
        assert!(matches!(t.lookup("/a//b", &Method::GET), Match::NotFound));
        assert!(matches!(
            t.lookup("/items/7", &Method::GET),
            Match::Found(_)
        ));
    }

    #[test]
    fn a_less_specific_route_serves_the_methods_a_more_specific_one_lacks() {
        let t = table(&[
            ("item-get", "/items/{id}", "GET"),
            ("item-put", "/items/{id}", "PUT"),
            ("items-post", "/items/*", "POST"),
        ]);
        assert_eq!(
            found(&t, "/items/7", Method::PUT).as_deref(),
            Some("item-put")
        );
        assert_eq!(
            found(&t, "/items/7", Method::POST).as_deref(),
            Some("items-post")
        );
        match t.lookup("/items/7", &Method::DELETE) {
            Match::MethodNotAllowed(allow) => {
                assert_eq!(allow, [Method::GET, Method::PUT, Method::POST])
            }
            other => panic!("{other:?}"),
        }
    }

    /// Many routes of every shape against paths built from the same
    /// segments: the trie answers exactly as the ordered scan did.
    #[test]
    fn the_trie_agrees_with_a_scan_of_the_ordered_routes() {
        let words = ["a", "b", "{p}", "{q}"];
        let mut routes = Vec::new();
        let mut n = 0;
        for depth in 1..=3 {
            let mut paths = vec![String::new()];
            for _ in 0..depth {
                paths = paths
                    .iter()
                    .flat_map(|p| words.iter().map(move |w| format!("{p}/{w}")))
                    .collect();
            }
            for p in paths {
                for (suffix, methods) in [("", "GET"), ("/*", "POST"), ("/", "")] {
                    n += 1;
                    routes.push((format!("r{n}"), format!("{p}{suffix}"), methods));
                }
            }
        }
        routes.push(("root".into(), "/".into(), "DELETE"));
        routes.push(("all".into(), "/*".into(), "PUT"));
        // `{p}` and `{q}` at one place are one shape; keep one per method set.
        let mut seen: Vec<(String, &str)> = Vec::new();
        routes.retain(|(_, path, methods)| {
            let shape = (path.replace("{q}", "{p}"), *methods);
            let new = !seen.contains(&shape);
            seen.push(shape);
            new
        });
        let refs: Vec<(&str, &str, &str)> = routes
            .iter()
            .map(|(n, p, m)| (n.as_str(), p.as_str(), *m))
            .collect();
        let t = table(&refs);
        let segs = ["a", "b", "c", ""];
        let mut paths = vec!["/".to_string()];
        let mut level = vec![String::new()];
        for _ in 0..4 {
            level = level
                .iter()
                .flat_map(|p| segs.iter().map(move |s| format!("{p}/{s}")))
                .filter(|p| !p.contains("//"))
                .collect();
            paths.extend(level.iter().cloned());
        }
        for path in &paths {
            for method in [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::PATCH,
            ] {
                let (want, allow) = linear(&t, path, &method);
                match t.lookup(path, &method) {
                    Match::Found(r) => {
                        assert_eq!(Some(r.name.to_string()), want, "{method} {path}")
                    }
                    Match::MethodNotAllowed(got) => {
                        assert_eq!(want, None, "{method} {path}");
                        assert_eq!(got, allow, "{method} {path}");
                    }
                    Match::NotFound => {
                        assert_eq!((want, allow.len()), (None, 0), "{method} {path}")
                    }
                }
            }
        }
    }
}
