//! Path normalisation, route precedence, 404 and 405.

use http::Method;

use crate::harness::{raw, Gateway, Upstream};

/// A public prefix and a protected prefix on one upstream; the protected one
/// needs a token, which no request here has.
fn public_and_protected(up: &Upstream) -> String {
    format!(
        "auth: {{}}\nroutes:\n  - name: public\n    path: /public/*\n    upstream: {u}\n    auth: none\n  - name: admin\n    path: /admin/*\n    upstream: {u}\n",
        u = up.url()
    )
}

#[tokio::test]
async fn dot_segments_are_resolved_before_authorising() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&public_and_protected(&up)).await;
    for path in [
        "/public/%2e%2e/admin/users",
        "/public/../admin/users",
        "/public/.%2E/admin/users",
        "/public/./../admin/users",
    ] {
        let res = gw.client().get(path).send().await;
        res.assert_error(401);
    }
    assert!(
        up.requests().is_empty(),
        "a denied request reached the upstream"
    );
}

#[tokio::test]
async fn encoded_separators_and_climbing_above_root_are_400() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&public_and_protected(&up)).await;
    for path in [
        "/public/..%2fadmin/x",
        "/public/%2e%2e%2Fadmin",
        "/public/a%5cb",
        "/public/a%00b",
        "/public/%zz",
        "/public/../../admin",
        "/%2e%2e/public/x",
    ] {
        gw.client().get(path).send().await.assert_error(400);
    }
    // A raw backslash never gets through a client library: send it by hand.
    let reply = raw(
        gw.addr,
        b"GET /public/a\\..\\..\\admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn upstream_receives_the_normalised_path_and_original_query() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&public_and_protected(&up)).await;
    let res = gw
        .client()
        .get("/public//a/./b/../c/%7Euser/%c3%a9?q=%2e%2e&x=1")
        .send()
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(up.last().target, "/public/a/c/~user/%C3%A9?q=%2e%2e&x=1");
}

#[tokio::test]
async fn double_encoding_is_not_decoded_twice() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&public_and_protected(&up)).await;
    let res = gw.client().get("/public/%252e%252e/admin").send().await;
    assert_eq!(res.status, 200);
    assert_eq!(up.last().target, "/public/%252e%252e/admin");
}

#[tokio::test]
async fn precedence_literal_then_param_then_wildcard() {
    let up = Upstream::start().await;
    // Each route forwards under a different base path, so the upstream tells which matched.
    let u = up.url();
    let yaml = format!(
        r#"routes:
  - {{ name: wild, path: "/items/*", upstream: {u}/wild, auth: none }}
  - {{ name: param, path: "/items/{{id}}", upstream: {u}/param, auth: none }}
  - {{ name: literal, path: "/items/special", upstream: {u}/literal, auth: none }}
  - {{ name: deeper, path: "/items/special/*", upstream: {u}/deeper, auth: none }}
  - {{ name: root, path: "/*", upstream: {u}/root, auth: none }}
"#
    );
    let gw = Gateway::start(&yaml).await;
    let cases = [
        ("/items/special", "/literal/items/special"),
        ("/items/7", "/param/items/7"),
        ("/items", "/wild/items"),
        ("/items/", "/wild/items/"),
        ("/items/7/reviews", "/wild/items/7/reviews"),
        ("/items/special/x", "/deeper/items/special/x"),
        ("/other", "/root/other"),
        ("/", "/root/"),
    ];
    for (path, want) in cases {
        let res = gw.client().get(path).send().await;
        assert_eq!(res.status, 200, "{path}");
        assert_eq!(up.last().target, want, "{path}");
    }
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405_with_allow() {
    let up = Upstream::start().await;
    let u = up.url();
    let yaml = format!(
        r#"routes:
  - {{ name: read, path: "/items/{{id}}", methods: [GET, HEAD], upstream: {u}, auth: none }}
  - {{ name: write, path: "/items/{{id}}", methods: [PUT], upstream: {u}, auth: none }}
"#
    );
    let gw = Gateway::start(&yaml).await;
    gw.client()
        .get("/nothing-here")
        .send()
        .await
        .assert_error(404);
    // `{param}` never matches an empty segment.
    gw.client().get("/items/").send().await.assert_error(404);
    let res = gw.client().request(Method::DELETE, "/items/7").send().await;
    res.assert_error(405);
    assert_eq!(res.header("allow"), Some("GET, HEAD, PUT"));
    assert_eq!(
        gw.client()
            .request(Method::PUT, "/items/7")
            .send()
            .await
            .status,
        200
    );
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn strip_prefix_is_removed_before_forwarding() {
    let up = Upstream::start().await;
    let yaml = format!("routes:\n  - {{ name: api, path: /api/*, strip_prefix: /api, upstream: {}, auth: none }}\n", up.url());
    let gw = Gateway::start(&yaml).await;
    gw.client().get("/api/v1/items?x=1").send().await;
    assert_eq!(up.last().target, "/v1/items?x=1");
    gw.client().get("/api").send().await;
    assert_eq!(up.last().target, "/");
}
