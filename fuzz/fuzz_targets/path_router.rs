//! Path normalisation and route matching: any request path either is refused
//! with a `PathError` or normalises to a canonical path (checked below), and
//! looking that path up in the route table (a segment trie) never panics
//! and answers exactly as a scan of the routes in precedence order would.
//!
//! Input: the first byte picks the method, the rest is the request path.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use gateway::config::Route;
use gateway::proxy::route::{normalize, Match, RouteTable};
use http::Method;
use libfuzzer_sys::fuzz_target;

/// Literals, `{param}`s, `/*` wildcards (at the root too), method-restricted
/// routes sharing a path, and an ambiguous literal/param pair.
const ROUTES: &str = r#"
listen: 127.0.0.1:3000
routes:
  - name: root
    path: /
    echo: true
    auth: none
  - name: items-list
    path: /items
    methods: [GET, HEAD]
    echo: true
    auth: none
  - name: items-create
    path: /items
    methods: [POST]
    echo: true
    auth: none
  - name: item
    path: /items/{id}
    methods: [GET, PUT, DELETE]
    echo: true
    auth: none
  - name: item-special
    path: /items/new
    echo: true
    auth: none
  - name: item-children
    path: /items/{id}/children/{child}
    echo: true
    auth: none
  - name: public
    path: /public/*
    strip_prefix: /public
    echo: true
    auth: none
  - name: api-v1
    path: /api/v1/*
    methods: [GET, POST, PATCH, OPTIONS]
    echo: true
    auth: none
  - name: api-v1-users
    path: /api/v1/users/{user}
    methods: [GET]
    echo: true
    auth: none
  - name: odd-literals
    path: /~user/a.b/x-y_z
    echo: true
    auth: none
  - name: dir
    path: /dir/
    echo: true
    auth: none
  - name: catch-all
    path: /*
    methods: [GET]
    echo: true
    auth: none
"#;

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PURGE",
];

/// The table, and its routes sorted by precedence for the reference scan.
fn tables() -> &'static (RouteTable, Vec<Route>) {
    static TABLES: OnceLock<(RouteTable, Vec<Route>)> = OnceLock::new();
    TABLES.get_or_init(|| {
        let config = gateway::config::parse(ROUTES, Path::new("/fuzz/gateway.yaml"), &|_| None)
            .unwrap_or_else(|e| panic!("the fuzz route config is invalid: {e}"));
        let mut sorted = config.routes.clone();
        sorted.sort_by(|a, b| a.template.specificity(&b.template));
        (RouteTable::new(config.routes), sorted)
    })
}

/// Everything a normalised path must satisfy.
fn check_normal_form(input: &str, out: &str) {
    assert!(out.starts_with('/'), "{input:?} -> {out:?}: not absolute");
    assert!(!out.contains("//"), "{input:?} -> {out:?}: has //");
    assert!(!out.contains('\\'), "{input:?} -> {out:?}: has a backslash");
    let upper = out.to_ascii_uppercase();
    for bad in ["%2F", "%5C", "%00"] {
        assert!(!upper.contains(bad), "{input:?} -> {out:?}: has {bad}");
    }
    for seg in out[1..].split('/') {
        assert!(
            seg != "." && seg != "..",
            "{input:?} -> {out:?}: has a dot segment"
        );
    }
    assert!(
        out.bytes().all(|b| b.is_ascii_graphic()),
        "{input:?} -> {out:?}: has a raw byte that is not printable ASCII"
    );
    // Escapes are well formed and in upper case; unreserved ones are decoded.
    let bytes = out.as_bytes();
    for (i, _) in out.match_indices('%') {
        let hex = bytes.get(i + 1..i + 3);
        let hex = hex.unwrap_or_else(|| panic!("{input:?} -> {out:?}: truncated escape"));
        assert!(
            hex.iter()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)),
            "{input:?} -> {out:?}: escape not in upper-case hex"
        );
        let v = u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap();
        assert!(
            !(v.is_ascii_alphanumeric() || b"-._~".contains(&v)),
            "{input:?} -> {out:?}: unreserved character left escaped"
        );
    }
    assert_eq!(
        normalize(out).as_deref(),
        Ok(out),
        "normalize is not idempotent for {input:?}"
    );
}

fn check_lookup(path: &str, method: &Method) {
    let (table, sorted) = tables();
    let segments: Vec<&str> = path[1..].split('/').collect();
    let matching: Vec<&Route> = sorted
        .iter()
        .filter(|r| r.template.matches(&segments))
        .collect();
    let winner = matching.iter().find(|r| r.allows(method));
    match (table.lookup(path, method), winner) {
        (Match::Found(route), Some(want)) => assert_eq!(
            route.name, want.name,
            "{method} {path:?}: the trie and the ordered scan disagree"
        ),
        (Match::MethodNotAllowed(allow), None) if !matching.is_empty() => {
            let mut want: Vec<&Method> = Vec::new();
            for m in matching.iter().flat_map(|r| r.methods.iter().flatten()) {
                if !want.contains(&m) {
                    want.push(m);
                }
            }
            assert_eq!(
                allow.iter().collect::<Vec<_>>(),
                want,
                "{method} {path:?}: Allow"
            );
            assert!(
                !allow.contains(method),
                "{method} {path:?}: 405 listing {method}"
            );
        }
        (Match::NotFound, None) if matching.is_empty() => {}
        (got, want) => panic!(
            "{method} {path:?}: the trie answered {got:?}, the ordered scan {:?}",
            want.map(|r| &r.name)
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = Method::from_bytes(METHODS[m as usize % METHODS.len()].as_bytes()).unwrap();
    let raw = String::from_utf8_lossy(rest);
    match normalize(&raw) {
        Ok(out) => {
            check_normal_form(&raw, &out);
            check_lookup(&out, &method);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
