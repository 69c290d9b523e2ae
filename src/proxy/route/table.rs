//! The route table: routes sorted by precedence once, matched per request.

use http::Method;

use crate::config::Route;

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
    /// Most specific first, so the first match that allows the method wins.
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Route>) -> RouteTable {
        routes.sort_by(|a, b| a.template.specificity(&b.template));
        RouteTable { routes }
    }

    /// The configured routes (built-in endpoints not counted), as logs report them.
    pub fn configured(&self) -> usize {
        self.routes.iter().filter(|r| !r.owns_path()).count()
    }

    /// Matches a normalised path (`route::normalize` output).
    pub fn lookup(&self, path: &str, method: &Method) -> Match<'_> {
        let segments: Vec<&str> = path[1..].split('/').collect();
        let mut path_matched = false;
        for route in &self.routes {
            if route.template.matches(&segments) {
                if route.allows(method) || route.owns_path() {
                    return Match::Found(route);
                }
                path_matched = true;
            }
        }
        if !path_matched {
            return Match::NotFound;
        }
        Match::MethodNotAllowed(self.allowed_methods(&segments))
    }

    fn allowed_methods(&self, segments: &[&str]) -> Vec<Method> {
        let mut allow: Vec<Method> = Vec::new();
        for route in self.routes.iter().filter(|r| r.template.matches(segments)) {
            for m in route.methods.iter().flatten() {
                if !allow.contains(m) {
                    allow.push(m.clone());
                }
            }
        }
        allow
    }
}
