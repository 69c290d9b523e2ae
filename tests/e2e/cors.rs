//! CORS (docs/cors.md) on the wire: headers on upstream answers and on the
//! gateway's own errors, preflights answered without auth or upstream,
//! refusals, per-route policies and `cors: off`.

use http::Method;
use hyper::Response;

use crate::harness::{full, Gateway, Reply, Upstream};

const APP: &str = "http://app.test";

/// An upstream that answers with CORS headers of its own, which the gateway
/// must replace on routes with a policy.
async fn upstream() -> Upstream {
    Upstream::with(|req, log| {
        Box::pin(async move {
            crate::harness::upstream::record(req, &log).await;
            Response::builder()
                .header("access-control-allow-origin", "*")
                .header("access-control-allow-credentials", "true")
                .header("vary", "Accept-Encoding")
                .body(full("{\"ok\":true}"))
                .unwrap()
        })
    })
    .await
}

async fn setup() -> (Gateway, Upstream) {
    let up = upstream().await;
    let u = up.url();
    let yaml = format!(
        r#"listen: 127.0.0.1:0
log: {{ access: false }}
auth:
  store: data/users.redb
  bcrypt_cost: 4
cors:
  allow_origins: ["{APP}"]
  max_age: 10m
routes:
  - {{ name: items, path: "/items/*", upstream: "{u}", auth: none, methods: [GET, PUT] }}
  - {{ name: secure, path: "/secure/*", upstream: "{u}" }}
  - name: own
    path: "/own/*"
    upstream: "{u}"
    auth: none
    cors: {{ allow_origins: ["http://other.test"], allow_credentials: true }}
  - {{ name: off, path: "/off/*", upstream: "{u}", auth: none, cors: off }}
  - name: star
    path: "/star/*"
    upstream: "{u}"
    auth: none
    cors: {{ allow_origins: ["*"], allow_headers: ["*"] }}
  - {{ name: dead, path: "/dead", upstream: "http://127.0.0.1:9", auth: none }}
"#
    );
    (Gateway::start(&yaml).await, up)
}

fn assert_cors(r: &Reply, origin: &str) {
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some(origin),
        "{r:?}"
    );
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("X-Request-Id")
    );
    assert!(r.header("access-control-allow-credentials").is_none());
    let vary: Vec<_> = r.headers.get_all("vary").iter().collect();
    assert!(
        vary.iter().any(|v| *v == "Origin"),
        "no Vary: Origin in {vary:?}"
    );
}

fn assert_no_cors(r: &Reply) {
    let aca: Vec<_> = r
        .headers
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .collect();
    assert!(aca.is_empty(), "unexpected {aca:?}");
}

fn preflight(
    c: &crate::harness::Client,
    path: &str,
    origin: &str,
    method: &str,
) -> crate::harness::RequestBuilder {
    c.request(Method::OPTIONS, path)
        .header("origin", origin)
        .header("access-control-request-method", method)
}

#[tokio::test]
async fn upstream_answers_get_the_gateways_cors_headers_instead_of_their_own() {
    let (gw, _up) = setup().await;
    let c = gw.client();
    let r = c.get("/items/1").header("origin", APP).send().await;
    assert_eq!(r.status, 200);
    assert_cors(&r, APP);
    let vary: Vec<_> = r.headers.get_all("vary").iter().collect();
    assert!(
        vary.iter().any(|v| *v == "Accept-Encoding"),
        "upstream Vary kept: {vary:?}"
    );

    // Origins compare case-insensitively; the answer echoes the request's.
    let r = c
        .get("/items/1")
        .header("origin", "HTTP://APP.TEST")
        .send()
        .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("HTTP://APP.TEST")
    );

    // A disallowed origin is served, with no CORS headers but Vary.
    let r = c
        .get("/items/1")
        .header("origin", "http://evil.test")
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert_no_cors(&r);
    assert!(r.headers.get_all("vary").iter().any(|v| v == "Origin"));

    // No Origin: no CORS headers (and the upstream's were removed).
    let r = c.get("/items/1").send().await;
    assert_no_cors(&r);
}

#[tokio::test]
async fn the_gateways_own_errors_carry_cors_headers() {
    let (gw, _up) = setup().await;
    let c = gw.client();
    let cases = [
        (c.get("/nowhere"), 404),
        (c.get("/secure/x"), 401),
        (c.get("/secure/x").bearer("garbage"), 401),
        (c.request(Method::DELETE, "/items/1"), 405),
        (c.get("/dead"), 502),
        (c.get("/items/%2F"), 400),
        (c.post("/signin").body("{}"), 400),
        (
            c.post("/signin")
                .body(r#"{"email":"a@b.io","password":"nope-nope"}"#),
            401,
        ),
    ];
    for (req, status) in cases {
        let r = req.header("origin", APP).send().await;
        r.assert_error(status);
        assert_cors(&r, APP);
    }
}

#[tokio::test]
async fn preflights_are_answered_without_auth_or_upstream() {
    let (gw, up) = setup().await;
    let c = gw.client();
    let r = preflight(&c, "/items/1", APP, "PUT")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    // The policy's methods that the route allows.
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    // A protected route: no token needed for the preflight.
    let r = preflight(&c, "/secure/x", APP, "GET")
        .header("access-control-request-headers", "Authorization")
        .send()
        .await;
    assert_eq!(r.status, 204);
    // The built-in endpoints take POST.
    let r = preflight(&c, "/signin", APP, "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-methods"), Some("POST"));
    assert!(up.requests().is_empty(), "a preflight reached the upstream");
}

#[tokio::test]
async fn refused_preflights_get_403_without_allow_headers() {
    let (gw, up) = setup().await;
    let c = gw.client();
    let cases = [
        (
            "bad origin",
            preflight(&c, "/items/1", "http://evil.test", "GET"),
        ),
        (
            "method outside the route",
            preflight(&c, "/items/1", APP, "DELETE"),
        ),
        (
            "method outside the policy",
            preflight(&c, "/secure/1", APP, "OPTIONS"),
        ),
        (
            "header not allowed",
            preflight(&c, "/items/1", APP, "GET")
                .header("access-control-request-headers", "x-custom"),
        ),
        (
            "authorization not covered by *",
            preflight(&c, "/star/1", APP, "GET")
                .header("access-control-request-headers", "authorization"),
        ),
    ];
    for (what, req) in cases {
        let r = req.send().await;
        assert_eq!(r.status, 403, "{what}: {:?}", r.body);
        r.assert_error(403);
        let allow: Vec<_> = r
            .headers
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-allow-"))
            .collect();
        assert!(allow.is_empty(), "{what}: {allow:?}");
        // A response on a route with a policy: Vary: Origin all the same
        // (the `*` route has none, docs/cors.md).
        let varies = r.headers.get_all("vary").iter().any(|v| v == "Origin");
        assert_eq!(varies, !what.contains('*'), "{what}: Vary");
    }
    preflight(&c, "/nowhere", APP, "GET")
        .send()
        .await
        .assert_error(404);
    // `*` covers other headers.
    let r = preflight(&c, "/star/1", APP, "GET")
        .header("access-control-request-headers", "x-anything")
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn routes_override_the_policy_or_turn_it_off() {
    let (gw, up) = setup().await;
    let c = gw.client();
    let r = c
        .get("/own/1")
        .header("origin", "http://other.test")
        .send()
        .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://other.test")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    let r = c.get("/own/1").header("origin", APP).send().await;
    assert_no_cors(&r);

    // `*` without credentials answers `*` and adds no Vary: Origin.
    let r = c.get("/star/1").header("origin", APP).send().await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(!r.headers.get_all("vary").iter().any(|v| v == "Origin"));

    // `cors: off`: the upstream's headers pass untouched, OPTIONS is routed.
    let r = c.get("/off/1").header("origin", APP).send().await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    let before = up.requests().len();
    let r = preflight(&c, "/off/1", APP, "GET").send().await;
    assert_eq!(r.status, 200);
    assert_eq!(up.requests().len(), before + 1);
    assert_eq!(up.last().method, "OPTIONS");
}
