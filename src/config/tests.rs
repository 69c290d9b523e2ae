//! Config tests: YAML in, positioned errors (or a validated value) out.

use std::path::Path;
use std::time::Duration;

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "PORT" => Some("4000".into()),
        "SECRET_A" => Some("a".repeat(32)),
        "SECRET_B" => Some("b".repeat(32)),
        _ => None,
    }
}

fn parse_str(text: &str) -> Result<Config, ConfigErrors> {
    parse(text, Path::new("/tmp/gw-test/gateway.yaml"), &env)
}

/// Each error as `LINE:COL: path: message`, for compact assertions.
fn errors(text: &str) -> Vec<String> {
    match parse_str(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e
            .errors
            .iter()
            .map(|e| format!("{}:{}: {}: {}", e.pos.line, e.pos.col, e.path, e.message))
            .collect(),
    }
}

fn assert_error(text: &str, at: &str, contains: &str) {
    let errs = errors(text);
    assert!(
        errs.iter()
            .any(|e| e.starts_with(at) && e.contains(contains)),
        "wanted an error at {at} containing {contains:?}, got:\n{}",
        errs.join("\n")
    );
}

const ROUTE: &str =
    "routes:\n  - name: a\n    path: /a\n    upstream: http://127.0.0.1:4000\n    auth: none\n";

#[test]
fn minimal_config_is_valid_with_defaults() {
    let c = parse_str(&format!("listen: 127.0.0.1:3000\n{ROUTE}")).unwrap();
    assert_eq!(c.routes.len(), 1);
    assert_eq!(c.limits.max_body, 10 * 1024 * 1024);
    assert_eq!(c.routes[0].timeout, std::time::Duration::from_secs(30));
    assert!(c.log.access);
    assert_eq!(c.listener_count(), 1);
}

#[test]
fn unknown_keys_are_errors_with_position() {
    assert_error(
        &format!("listen: 127.0.0.1:3000\nlisten_addr: x\n{ROUTE}"),
        "2:1",
        "unknown key `listen_addr`",
    );
    assert_error(
        "listen: 127.0.0.1:3000\nroutes:\n  - name: a\n    path: /a\n    upsream: http://x\n    auth: none\n",
        "5:5",
        "unknown field `upsream`",
    );
    assert_error(
        &format!("listen: 127.0.0.1:3000\nlimits:\n  max_bdy: 1\n{ROUTE}"),
        "3:3",
        "max_bdy",
    );
}

// Issue: an unknown key named no likely fix.
#[test]
fn an_unknown_key_or_word_suggests_the_nearest_known_one() {
    let route = |line: &str| {
        format!("listen: 127.0.0.1:1\nroutes:\n  - name: a\n    path: /a\n    echo: true\n{line}\n")
    };
    let cases = [
        (
            route("    auth: none\n    strip_prefx: /a"),
            "7:5: routes[0].strip_prefx: unknown field `strip_prefx`",
            "; did you mean `strip_prefix`?",
        ),
        (
            format!("listen: 127.0.0.1:1\nrotues: []\n{ROUTE}"),
            "2:1: rotues: unknown key `rotues`",
            "; did you mean `routes`?",
        ),
        (
            format!("listen: 127.0.0.1:1\nlimits:\n  max_bdy: 1\n{ROUTE}"),
            "3:3: limits.max_bdy: unknown field `max_bdy`",
            "; did you mean `max_body`?",
        ),
        (
            format!("listen: 127.0.0.1:1\nauth:\n  access_token:\n    scret: x\n{ROUTE}"),
            "4:5: auth.access_token.scret: unknown field `scret`",
            "; did you mean `secret`?",
        ),
        (
            route("    auth: requird"),
            "6:11: routes[0].auth: unknown variant `requird`",
            "; did you mean `required`?",
        ),
    ];
    for (text, at, hint) in cases {
        let errs = errors(&text);
        assert!(
            errs.len() == 1 && errs[0].starts_with(at) && errs[0].ends_with(hint),
            "wanted only {at}...{hint} for:\n{text}\ngot:\n{}",
            errs.join("\n")
        );
    }
    // Far from every known key: no guess, the list of keys only.
    for text in [
        route("    auth: none\n    bogus: 1"),
        format!("listen: 127.0.0.1:1\nfoo: 1\n{ROUTE}"),
    ] {
        let errs = errors(&text);
        assert!(
            errs.len() == 1
                && errs[0].contains("expected one of")
                && !errs[0].contains("did you mean"),
            "{}",
            errs.join("\n")
        );
    }
}

#[test]
fn every_error_is_reported_not_only_the_first() {
    let text = "listen: nowhere\nroutes:\n  - name: a\n    path: a\n    upstream: ftp://x\n    auth: none\n  - name: a\n    path: /b\n    echo: true\n    auth: none\n    timeout: soon\n";
    let errs = errors(text);
    for want in [
        "1:9: listen",
        "4:11: routes[0].path",
        "5:15: routes[0].upstream",
        "7:11: routes[1].name",
        "11:14: routes[1].timeout",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "missing {want} in:\n{}",
            errs.join("\n")
        );
    }
}

#[test]
fn missing_required_keys_point_at_the_enclosing_mapping() {
    assert_error("listen: 127.0.0.1:3000\n", "1:1", "`routes` is required");
    assert_error(ROUTE, "1:1", "`listen` or `tls` is required");
    assert_error(
        "listen: 127.0.0.1:3000\nroutes:\n  - name: a\n    echo: true\n    auth: none\n",
        "3:5",
        "missing field `path`",
    );
}

#[test]
fn env_interpolation_happens_before_interpretation() {
    let c = parse_str("listen: 127.0.0.1:${PORT}\nlimits:\n  max_body: ${SIZE:-1KiB}\nroutes:\n  - name: a\n    path: /a\n    upstream: http://127.0.0.1:${PORT}\n    auth: none\n").unwrap();
    assert_eq!(c.listen.unwrap().port(), 4000);
    assert_eq!(c.limits.max_body, 1024);
    // A number from the environment is still a number.
    let c = parse_str(&format!(
        "listen: 127.0.0.1:1\nauth:\n  bcrypt_cost: ${{COST:-12}}\n{ROUTE}"
    ))
    .unwrap();
    assert_eq!(c.auth.unwrap().bcrypt_cost, 12);
    assert_error(
        &format!("listen: 127.0.0.1:1\nauth:\n  issuer: ${{MISSING_VAR}}\n{ROUTE}"),
        "3:11",
        "MISSING_VAR",
    );
    let c = parse_str(&format!(
        "listen: 127.0.0.1:1\nauth:\n  issuer: \"$${{literal}}\"\n{ROUTE}"
    ))
    .unwrap();
    assert_eq!(c.auth.unwrap().issuer, "${literal}");
}

// Issue: an unset `${VAR}` hid every other error in the file.
#[test]
fn an_unset_variable_does_not_hide_the_other_errors() {
    let text = "listen: nowhere\nauth:\n  issuer: ${MISSING_VAR}\n  access_token:\n    secret: ${NO_SECRET}\nroutes:\n  - name: a\n    path: a\n    upstream: http://${NO_HOST}:80\n    auth: none\n";
    let errs = errors(text);
    // The scalars naming an unset variable report that, and only that: the
    // text left in them (`${NO_SECRET}` is short for a secret, the URL does
    // not parse) is no second error.
    let want = [
        ("1:9: listen: ", "not an address"),
        ("3:11: auth.issuer: ", "MISSING_VAR is not set"),
        ("5:13: auth.access_token.secret: ", "NO_SECRET is not set"),
        ("8:11: routes[0].path: ", "not absolute"),
        ("9:15: routes[0].upstream: ", "NO_HOST is not set"),
    ];
    assert_eq!(errs.len(), want.len(), "{}", errs.join("\n"));
    for (e, (at, contains)) in errs.iter().zip(want) {
        assert!(
            e.starts_with(at) && e.contains(contains),
            "wanted {at}...{contains}, got:\n{}",
            errs.join("\n")
        );
    }
}

#[test]
fn relative_paths_resolve_against_the_files_folder() {
    let c = parse_str(&format!(
        "listen: 127.0.0.1:1\nauth:\n  store: data/u.redb\n{ROUTE}"
    ))
    .unwrap();
    assert_eq!(
        c.auth.unwrap().store.file().unwrap().path,
        Path::new("/tmp/gw-test/data/u.redb")
    );
}

#[test]
fn route_validation() {
    let base = "listen: 127.0.0.1:1\nroutes:\n";
    let cases = [
        (
            "  - name: a\n    path: /a/{id\n    echo: true\n    auth: none\n",
            "4:11",
            "unbalanced",
        ),
        (
            "  - name: a\n    path: /a\n    auth: none\n",
            "3:5",
            "`upstream: URL` or `echo: true`",
        ),
        (
            "  - name: a\n    path: /a\n    echo: true\n    upstream: http://x\n    auth: none\n",
            "5:11",
            "not both",
        ),
        (
            "  - name: a\n    path: /a\n    upstream: localhost:80\n    auth: none\n",
            "5:15",
            "http://",
        ),
        (
            "  - name: a\n    path: /a\n    echo: true\n",
            "3:5",
            "no `auth` section",
        ),
        (
            "  - name: a\n    path: /a\n    echo: true\n    auth: maybe\n",
            "6:11",
            "maybe",
        ),
        (
            "  - name: a\n    path: /a\n    methods: [GIT, GET]\n    echo: true\n    auth: none\n",
            "5:15",
            "not an HTTP method",
        ),
    ];
    for (routes, at, msg) in cases {
        assert_error(&format!("{base}{routes}"), at, msg);
    }
}

// Issue: a strip_prefix that can never match its route's path was accepted.
#[test]
fn strip_prefix_must_start_every_path_the_route_matches() {
    let route = |path: &str, prefix: &str| {
        format!("listen: 127.0.0.1:1\nroutes:\n  - name: a\n    path: {path}\n    echo: true\n    auth: none\n    strip_prefix: {prefix}\n")
    };
    for (path, prefix) in [
        ("/api/items/*", "/v1"),
        // Ends inside a parameter: only some requests would lose it.
        ("/items/{id}", "/items/7"),
        ("/{tenant}/api", "/acme"),
        // Past the literal part: `/api/x` is matched but has no `/v1`.
        ("/api/*", "/api/v1"),
        // Not at a segment boundary: the upstream path keeps `/apiv2/x`.
        ("/apiv2/x", "/api"),
    ] {
        let errs = errors(&route(path, prefix));
        assert!(
            errs.len() == 1
                && errs[0].starts_with("7:19: routes[0].strip_prefix: ")
                && errs[0].contains("does not start every path"),
            "{path} with {prefix}:\n{}",
            errs.join("\n")
        );
    }
    for (path, prefix) in [
        ("/api/items/*", "/api"),
        ("/api/items/*", "/api/items"),
        ("/api", "/api"),
        ("/api/", "/api"),
        ("/api/{id}", "/api"),
        ("/api/{id}/x", "/api"),
    ] {
        let c = parse_str(&route(path, prefix));
        assert!(c.is_ok(), "{path} with {prefix}: {}", c.unwrap_err());
    }
}

#[test]
fn same_shape_routes_sharing_a_method_conflict() {
    let text = "listen: 127.0.0.1:1\nroutes:\n  - name: a\n    path: /items/{id}\n    echo: true\n    auth: none\n  - name: b\n    path: /items/{key}\n    methods: [GET]\n    echo: true\n    auth: none\n";
    assert_error(text, "8:11", "same path shape");
    let ok = "listen: 127.0.0.1:1\nroutes:\n  - name: a\n    path: /items/{id}\n    methods: [PUT]\n    echo: true\n    auth: none\n  - name: b\n    path: /items/{key}\n    methods: [GET]\n    echo: true\n    auth: none\n";
    assert!(parse_str(ok).is_ok());
}

#[test]
fn cors_and_secret_rules() {
    assert_error(
        &format!("listen: 127.0.0.1:1\ncors:\n  allow_origins: [\"*\"]\n  allow_credentials: true\n{ROUTE}"),
        "4:22",
        "refused by browsers",
    );
    assert_error(
        &format!("listen: 127.0.0.1:1\nauth:\n  access_token:\n    secret: short\n{ROUTE}"),
        "4:13",
        "at least 32 bytes",
    );
    assert_error(
        &format!("listen: 127.0.0.1:1\nauth:\n  access_token:\n    secret: ${{SECRET_A}}\n  refresh_token:\n    secret: ${{SECRET_A}}\n{ROUTE}"),
        "6:13",
        "must differ",
    );
    assert!(parse_str(&format!("listen: 127.0.0.1:1\nauth:\n  access_token:\n    secret: ${{SECRET_A}}\n  refresh_token:\n    secret: ${{SECRET_B}}\n{ROUTE}")).is_ok());
    let c = parse_str(&format!(
        "listen: 127.0.0.1:1\ncors:\n  allow_origins: [\"http://a.test\"]\n{ROUTE}"
    ))
    .unwrap();
    assert_eq!(
        c.cors.unwrap().allow_headers,
        ["Authorization", "Content-Type"]
    );
}

#[test]
fn route_cors_off_and_override() {
    let text = "listen: 127.0.0.1:1\nroutes:\n  - name: a\n    path: /a\n    echo: true\n    auth: none\n    cors: off\n  - name: b\n    path: /b\n    echo: true\n    auth: none\n    cors:\n      allow_origins: [\"http://b.test\"]\n";
    let c = parse_str(text).unwrap();
    assert_eq!(c.routes[0].cors, RouteCors::Off);
    assert!(
        matches!(&c.routes[1].cors, RouteCors::Policy(p) if p.allow_origins == ["http://b.test"])
    );
}

#[test]
fn syntax_errors_are_positioned() {
    let errs = errors("listen: 127.0.0.1:1\nroutes: [\n");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("3:") || errs[0].starts_with("2:"),
        "{errs:?}"
    );
}

// Issue: a tab used for indentation was reported at the line before it
// ("while scanning a plain scalar, found a tab"), with no key and no hint.
#[test]
fn a_tab_in_the_indentation_is_reported_at_the_tab() {
    let cases = [
        (
            "listen: 127.0.0.1:1\nroutes:\n  - name: a\n\tpath: /a\n    echo: true\n",
            "4:1: ",
            "`path` is indented with a tab",
        ),
        (
            "listen: 127.0.0.1:1\nlimits:\n\tmax_body: 1\n",
            "3:1: ",
            "`max_body` is indented with a tab",
        ),
        (
            "listen: 127.0.0.1:1\nlimits:\n  max_body: 1\n  \tidle_timeout: 1s\n",
            "4:3: ",
            "`idle_timeout` is indented with a tab",
        ),
        (
            "listen: 127.0.0.1:1\nroutes:\n  - { name: a, path: /a, echo: true }\n\t- { name: b, path: /b, echo: true }\n",
            "4:1: ",
            "this line is indented with a tab",
        ),
        (
            "listen: 127.0.0.1:1\nauth:\n  issuer: |\n\tgw\n",
            "4:1: ",
            "this line is indented with a tab",
        ),
    ];
    for (text, at, contains) in cases {
        let errs = errors(text);
        assert!(
            errs.len() == 1
                && errs[0].starts_with(at)
                && errs[0].contains(contains)
                && errs[0].ends_with("indent with spaces (YAML does not allow tabs)"),
            "wanted one error at {at} containing {contains:?} and the hint for:\n{text}\ngot:\n{}",
            errs.join("\n")
        );
    }
}

#[test]
fn display_is_path_line_column_message() {
    let e = parse_str("listen: nowhere\nroutes: []\n").unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("/tmp/gw-test/gateway.yaml:1:9: listen: "),
        "{text}"
    );
}

#[test]
fn upstream_protocol_is_http1_by_default_h2_on_request() {
    let c = parse_str(
        "listen: 127.0.0.1:1\nroutes:\n  - { name: a, path: /a, upstream: http://x:1, auth: none }\n  - { name: b, path: /b, upstream: https://x:1, auth: none, upstream_protocol: h2 }\n",
    )
    .unwrap();
    assert_eq!(c.routes[0].upstream_protocol, UpstreamProtocol::Http1);
    assert_eq!(c.routes[1].upstream_protocol, UpstreamProtocol::H2);
    assert_error(
        "listen: 127.0.0.1:1\nroutes:\n  - { name: a, path: /a, upstream: http://x:1, auth: none, upstream_protocol: h3 }\n",
        "3:",
        "h3",
    );
    assert_error(
        "listen: 127.0.0.1:1\nroutes:\n  - name: a\n    path: /a\n    echo: true\n    auth: none\n    upstream_protocol: h2\n",
        "7:24:",
        "applies to routes with an `upstream` only",
    );
}

#[test]
fn nested_aliases_cannot_blow_up_memory() {
    // Found by fuzzing (fuzz/regressions/config): 600 bytes, 10^9 nodes.
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..9 {
        let prev = format!("*a{}", level - 1);
        let items = [prev.as_str(); 10].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    assert_error(&text, "4:", "aliases expand to more than 10000 nodes");
}

#[test]
fn upstreams_naming_one_server_share_a_pool_key() {
    let c = parse_str(
        "listen: 127.0.0.1:1\nroutes:\n  - { name: a, path: /a, upstream: http://API.Example:8080/v1, auth: none }\n  - { name: b, path: /b, upstream: http://api.example:8080, auth: none }\n  - { name: c, path: /c, upstream: https://api.example:8080, auth: none }\n",
    )
    .unwrap();
    let key = |i: usize| match &c.routes[i].target {
        Target::Upstream(t) => t[0].pool_key.to_string(),
        Target::Echo | Target::Builtin(_) => unreachable!(),
    };
    assert_eq!(key(0), "http://api.example:8080");
    assert_eq!(key(0), key(1), "case and path do not split the pool");
    assert_eq!(key(2), "https://api.example:8080");
}

#[test]
fn a_section_with_errors_still_counts_as_present() {
    // One typo inside `auth` is one error: the routes that need `auth`
    // must not also report that there is no `auth` section.
    let required = "  - { name: a, path: /a, echo: true }\n  - { name: b, path: /b, echo: true, auth: required }\n";
    let cases = [
        (
            format!("listen: 127.0.0.1:1\nauth:\n  bogus: 1\nroutes:\n{required}"),
            "3:3: auth.bogus: unknown field `bogus`",
        ),
        (
            format!("listen: 127.0.0.1:1\nauth: [store]\nroutes:\n{required}"),
            "2:7: auth: ",
        ),
        (
            "tls:\n  listen: 127.0.0.1:1\n  crt: x\nroutes:\n  - { name: a, path: /a, echo: true, auth: none }\n".to_string(),
            "3:3: tls.crt: unknown field `crt`",
        ),
    ];
    for (text, want) in cases {
        let errs = errors(&text);
        assert!(
            errs.len() == 1 && errs[0].starts_with(want),
            "wanted only {want:?} for:\n{text}\ngot:\n{}",
            errs.join("\n")
        );
    }
}

#[test]
fn left_out_settings_take_the_documented_defaults() {
    use std::time::Duration;
    let c = parse_str(&format!(
        "listen: 127.0.0.1:1\nauth:\n  issuer: gateway\ncors:\n  allow_origins: [\"http://a.test\"]\n{ROUTE}"
    ))
    .unwrap();
    let auth = c.auth.unwrap();
    // As docs/configuration.md gives them.
    assert_eq!(
        auth.store.file().unwrap().path,
        Path::new("/tmp/gw-test/data/users.redb")
    );
    assert_eq!(auth.issuer, "gateway");
    assert_eq!(auth.access_token.ttl, Duration::from_secs(15 * 60));
    assert_eq!(auth.refresh_token.ttl, Duration::from_secs(7 * 86_400));
    assert_eq!(auth.bcrypt_cost, 10);
    assert_eq!(auth.cache_ttl, Duration::from_secs(300));
    assert_eq!(auth.cache_capacity, 100_000);
    assert_eq!(
        (auth.signin_limit.failures, auth.signin_limit.window),
        (5, Duration::from_secs(15 * 60))
    );
    assert_eq!(auth.leeway, Duration::ZERO);
    let cors = c.cors.unwrap();
    assert_eq!(
        cors.allow_methods,
        ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    );
    assert_eq!(cors.expose_headers, ["X-Request-Id"]);
    assert!(!cors.allow_credentials);
    assert_eq!(cors.max_age, Duration::from_secs(600));
    assert_eq!(c.limits.header_timeout, Duration::from_secs(10));
    assert_eq!(c.limits.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.limits.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(c.log.format, LogFormat::Json);
}

#[test]
fn the_files_a_config_names_keep_where_it_names_them() {
    // Validation reads none of them (none of these exist); the loading
    // step reads them and reports their errors at these positions.
    let c = parse_str(&format!(
        "tls:\n  listen: 127.0.0.1:1\n  cert: certs/gw.crt\n  key: /abs/gw.key\nauth:\n  access_token:\n    algorithm: EdDSA\n    private_key: k.pem\n    previous_keys: [a.pub, b.pub]\n{ROUTE}"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let at = |f: &FileRef| {
        format!(
            "{}:{}: {} = {}",
            f.pos.line,
            f.pos.col,
            f.yaml_path,
            f.path.display()
        )
    };
    let tls = c.tls.unwrap();
    let auth = c.auth.unwrap();
    let keys = &auth.access_token;
    let mut named = vec![at(&tls.cert), at(&tls.key), at(auth.store.file().unwrap())];
    named.extend(keys.private_key.iter().chain(&keys.previous_keys).map(at));
    assert_eq!(
        named,
        [
            "3:9: tls.cert = /tmp/gw-test/certs/gw.crt",
            "4:8: tls.key = /abs/gw.key",
            // Left out: the default, at the enclosing mapping.
            "6:3: auth.store = /tmp/gw-test/data/users.redb",
            "8:18: auth.access_token.private_key = /tmp/gw-test/k.pem",
            "9:21: auth.access_token.previous_keys[0] = /tmp/gw-test/a.pub",
            "9:28: auth.access_token.previous_keys[1] = /tmp/gw-test/b.pub",
        ]
    );
}

#[test]
fn connection_limits_default_and_are_checked() {
    let d = parse_str(&format!("listen: 127.0.0.1:3000\n{ROUTE}"))
        .unwrap()
        .limits;
    assert_eq!(
        (
            d.max_connections,
            d.max_connections_per_ip,
            d.h2_max_streams
        ),
        (10_000, None, 100)
    );
    let set = |lines: &str| format!("listen: 127.0.0.1:3000\nlimits:\n{lines}{ROUTE}");
    let l = parse_str(&set(
        "  max_connections: 5\n  max_connections_per_ip: 2\n  h2_max_streams: 8\n",
    ))
    .unwrap()
    .limits;
    assert_eq!(
        (
            l.max_connections,
            l.max_connections_per_ip,
            l.h2_max_streams
        ),
        (5, Some(2), 8)
    );
    // 0 per IP is no cap; 0 overall or 0 streams would refuse everything.
    let l = parse_str(&set("  max_connections_per_ip: 0\n"))
        .unwrap()
        .limits;
    assert_eq!(l.max_connections_per_ip, None);
    assert_error(&set("  max_connections: 0\n"), "3:", "out of range");
    assert_error(&set("  h2_max_streams: 0\n"), "3:", "out of range");
    assert_error(&set("  h2_max_streams: 4294967296\n"), "3:", "out of range");
    assert_error(&set("  max_connections_per_ip: -1\n"), "3:", "");
}

#[test]
fn rate_limit_policies_and_client_ip_parse() {
    let c = parse_str(
        "listen: 127.0.0.1:3000
client_ip:
  trusted_proxies: [10.0.0.0/8, 192.0.2.7, \"2001:db8::/32\"]
rate_limits:
  api: { rate: 100/s, burst: 200 }
  per_user: { rate: 1000/m, key: principal }
  keyed: { rate: 5/h, key: \"header:X-Api-Key\" }
  whole: { rate: 10/s, key: route }
routes:
  - { name: a, path: /a, echo: true, auth: none, rate_limit: [api, keyed] }
  - { name: b, path: /b, echo: true, auth: none, rate_limit: whole }
",
    )
    .unwrap();
    assert_eq!(c.client_ip.trusted_proxies.len(), 3);
    assert!(c.client_ip.trusts("10.1.2.3".parse().unwrap()));
    assert!(c.client_ip.trusts("192.0.2.7".parse().unwrap()));
    assert!(!c.client_ip.trusts("192.0.2.8".parse().unwrap()));
    let names: Vec<&str> = c.rate_limits.iter().map(|p| &*p.name).collect();
    assert_eq!(names, ["api", "per_user", "keyed", "whole"]);
    let api = &c.rate_limits[0];
    assert_eq!(
        (api.rate.count, api.rate.per.as_secs(), api.rate.burst),
        (100, 1, 200)
    );
    assert_eq!(api.key, LimitKey::ClientIp);
    assert_eq!(
        c.rate_limits[1].rate.burst, 1000,
        "burst defaults to the count"
    );
    assert_eq!(c.rate_limits[1].key, LimitKey::Principal);
    assert_eq!(
        c.rate_limits[2].key,
        LimitKey::Header(http::HeaderName::from_static("x-api-key"))
    );
    assert_eq!(c.rate_limits[2].rate.per.as_secs(), 3600);
    let route_names = |i: usize| {
        c.routes[i]
            .rate_limit
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(route_names(0), ["api", "keyed"]);
    assert_eq!(route_names(1), ["whole"]);
}

#[test]
fn rate_limit_mistakes_are_positioned() {
    let base = "listen: 127.0.0.1:3000\nrate_limits:\n  api: { rate: 10/s }\n";
    assert_error(
        &format!(
            "{base}routes:\n  - {{ name: a, path: /a, echo: true, auth: none, rate_limit: apx }}\n"
        ),
        "5:62",
        "unknown rate-limit policy \"apx\"",
    );
    let errs = errors(&format!(
        "{base}routes:\n  - {{ name: a, path: /a, echo: true, auth: none, rate_limit: apx }}\n"
    ));
    assert!(
        errs.iter().any(|e| e.contains("did you mean `api`")),
        "{errs:?}"
    );
    for (policy, contains) in [
        ("{ rate: ten/s }", "is not a rate"),
        ("{ rate: 10/d }", "is not a rate"),
        ("{ rate: 0/s }", "the count is 1"),
        ("{ rate: 10/s, burst: 0 }", "burst is 1"),
        ("{ rate: 10/s, key: user }", "unknown key \"user\""),
        (
            "{ rate: 10/s, key: \"header:bad header\" }",
            "is not a header name",
        ),
        ("{ rate: 10/s, per: 1s }", "unknown field `per`"),
    ] {
        assert_error(
            &format!("listen: 127.0.0.1:3000\nrate_limits:\n  p: {policy}\n{ROUTE}"),
            "3:",
            contains,
        );
    }
    assert_error(
        &format!("listen: 127.0.0.1:3000\nclient_ip: {{ proxy_protocol: true }}\n{ROUTE}"),
        "2:",
        "needs client_ip.trusted_proxies",
    );
    assert_error(
        &format!(
            "listen: 127.0.0.1:3000\nclient_ip: {{ trusted_proxies: [10.0.0.0/33] }}\n{ROUTE}"
        ),
        "2:",
        "is not an address or CIDR",
    );
    assert_error(
        &format!("listen: 127.0.0.1:3000\nrate_limits:\n  endpoint: {{ rate: 1/s }}\n{ROUTE}"),
        "3:3",
        "`endpoint` is the name",
    );
}

#[test]
fn the_endpoint_limit_is_on_by_default_and_can_be_turned_off() {
    let with = |auth: &str| {
        parse_str(&format!(
            "listen: 127.0.0.1:3000\nauth:\n  store: x.redb\n{auth}{ROUTE}"
        ))
        .unwrap()
        .auth
        .unwrap()
        .endpoint_limit
    };
    assert_eq!(with(""), Some(Rate::ENDPOINT_DEFAULT));
    assert_eq!(with("  endpoint_limit: off\n"), None);
    assert_eq!(with("  endpoint_limit: false\n"), None);
    let custom = with("  endpoint_limit: { rate: 10/s, burst: 5 }\n").unwrap();
    assert_eq!((custom.count, custom.burst), (10, 5));
    assert_error(
        &format!("listen: 127.0.0.1:3000\nauth:\n  endpoint_limit: on\n{ROUTE}"),
        "3:",
        "expected `off`",
    );
}

#[test]
fn a_route_on_a_built_in_path_is_an_error_naming_both() {
    let yaml = |auth: &str| {
        format!(
            "listen: 127.0.0.1:3000\n{auth}routes:\n  - {{ name: mine, path: /signin, echo: true, auth: none }}\n"
        )
    };
    assert_error(
        &yaml("auth:\n  store: x.redb\n"),
        "5:",
        "route \"mine\" has the path of the built-in endpoint /signin",
    );
    // Without `auth` there is no endpoint there, and templates may cover one.
    assert!(parse_str(&yaml("")).is_ok());
    let template = "listen: 127.0.0.1:3000\nauth:\n  store: x.redb\nroutes:\n  - { name: any, path: \"/{x}\", echo: true, auth: none }\n";
    assert!(parse_str(template).is_ok());
}

#[test]
fn the_reuse_interval_and_the_reset_webhook_are_checked() {
    let auth =
        |body: &str| format!("listen: 127.0.0.1:3000\nauth:\n  store: x.redb\n{body}{ROUTE}");
    let parsed = |body: &str| parse_str(&auth(body)).unwrap().auth.unwrap();
    let a = parsed("");
    assert_eq!(a.reuse_interval, Duration::ZERO);
    assert!(a.reset_webhook.is_none());
    assert_eq!(
        parsed("  refresh_token:\n    reuse_interval: 10s\n").reuse_interval,
        Duration::from_secs(10)
    );
    assert_error(
        &auth("  refresh_token:\n    reuse_interval: 61s\n"),
        "5:",
        "reuse_interval is at most 60s",
    );
    assert_error(
        &auth("  access_token:\n    reuse_interval: 5s\n"),
        "5:",
        "belongs to `refresh_token`",
    );
    let secret = "s".repeat(32);
    let hook = parsed(&format!(
        "  password_reset:\n    webhook: https://mail.internal/hook\n    webhook_secret: {secret}\n"
    ))
    .reset_webhook
    .unwrap();
    assert_eq!(hook.url, "https://mail.internal/hook");
    assert_eq!(hook.resend_interval, Duration::from_secs(60));
    assert!(
        !format!("{hook:?}").contains(&secret),
        "the secret in a debug print"
    );
    assert_error(
        &auth("  password_reset:\n    webhook: https://mail.internal/hook\n"),
        "5:",
        "needs `webhook_secret`",
    );
    assert_error(
        &auth(&format!(
            "  password_reset:\n    webhook_secret: {secret}\n"
        )),
        "5:",
        "set both or neither",
    );
    assert_error(
        &auth("  password_reset:\n    webhook: https://mail.internal/hook\n    webhook_secret: short\n"),
        "6:",
        "at least 32 bytes",
    );
    assert_error(
        &auth(&format!(
            "  password_reset:\n    webhook: ftp://mail.internal/hook\n    webhook_secret: {secret}\n"
        )),
        "5:",
        "is not an http:// or https:// URL",
    );
}

#[test]
fn a_route_may_set_its_own_max_body() {
    let yaml = |extra: &str| {
        format!("listen: 127.0.0.1:3000\nroutes:\n  - {{ name: up, path: /up, echo: true, auth: none{extra} }}\n")
    };
    let c = parse_str(&yaml(", max_body: 64KiB")).unwrap();
    assert_eq!(c.routes[0].max_body, Some(64 * 1024));
    assert_eq!(c.routes[0].max_body(&c.limits), 64 * 1024);
    let c = parse_str(&yaml("")).unwrap();
    assert_eq!(c.routes[0].max_body(&c.limits), c.limits.max_body);
    assert_error(&yaml(", max_body: lots"), "3:", "max_body");
}
