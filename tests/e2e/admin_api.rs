//! The admin API of docs/admin.md, from outside: every endpoint and status
//! on both stores, the token check, effects seen on the proxied path within
//! a second, paging, the audit lines, and `gateway users` through a running
//! gateway.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::{json, Value};

use crate::harness::auth::{
    auth_config, auth_config_at, auth_config_on, claims, post, signin, signup, tokens, PASSWORD,
};
use crate::harness::{eventually_async, Backend, Binary, Client, Gateway, Reply, Yaml};

pub const TOKEN: &str = "admin-token-0123456789-abcdefghijklmnop";

pub fn with_admin(yaml: Yaml) -> Yaml {
    yaml.set("admin.listen", "127.0.0.1:0")
        .set("admin.token", TOKEN)
}

/// One admin request with `token` (`None`: no Authorization header).
async fn call(
    admin: &Client,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = admin.request(method, path);
    if let Some(t) = token {
        req = req.bearer(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let r = req.send().await;
    let text = String::from_utf8_lossy(&r.body);
    assert!(
        !text.contains("$2b$") && !text.contains("$2y$") && !text.contains(PASSWORD),
        "a hash or password in a response: {text}"
    );
    r
}

async fn admin_call(admin: &Client, method: Method, path: &str, body: Option<Value>) -> Reply {
    call(admin, method, path, Some(TOKEN), body).await
}

async fn me(c: &Client, access: &str) -> u16 {
    c.get("/me").bearer(access).send().await.status.as_u16()
}

/// Waits (at most 1 s) until the gateway refuses `access` on the proxied path.
async fn refused_within_a_second(c: &Client, access: &str, what: &str) {
    let started = Instant::now();
    eventually_async(what, Duration::from_secs(1), || async {
        me(c, access).await == 401
    })
    .await;
    println!("{what}: refused after {:?}", started.elapsed());
}

fn new_user(email: &str) -> Value {
    json!({"email": email, "password": PASSWORD, "firstName": "Ada", "lastName": "King"})
}

async fn the_token_is_checked_before_anything_else(backend: Backend) {
    let gw = Gateway::start(with_admin(auth_config_on(backend))).await;
    let admin = gw.admin();
    let mut off_by_one = TOKEN.as_bytes().to_vec();
    *off_by_one.last_mut().unwrap() ^= 1;
    let off_by_one = String::from_utf8(off_by_one).unwrap();
    let short = &TOKEN[..TOKEN.len() - 1];
    for path in [
        "/admin/users",
        "/admin/users/a@x.io",
        "/admin/nope",
        "/admin/users/a/b/c/d",
    ] {
        for token in [None, Some("wrong"), Some(off_by_one.as_str()), Some(short)] {
            let r = call(&admin, Method::GET, path, token, None).await;
            r.assert_error(401);
            assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"admin\""));
            assert_eq!(r.header("access-control-allow-origin"), None);
        }
    }
    // Basic, or the token in another header, is no bearer token.
    let r = admin
        .get("/admin/users")
        .header("authorization", &format!("Basic {TOKEN}"))
        .send()
        .await;
    r.assert_error(401);
    // With the token: unknown paths and methods are told apart.
    admin_call(&admin, Method::GET, "/admin/nope", None)
        .await
        .assert_error(404);
    let r = admin_call(&admin, Method::PATCH, "/admin/users", None).await;
    r.assert_error(405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
    // The main listener never serves it, token or not.
    let r = call(&gw.client(), Method::GET, "/admin/users", Some(TOKEN), None).await;
    r.assert_error(404);
    let r = call(&gw.client(), Method::GET, "/admin/", None, None).await;
    r.assert_error(404);
}

async fn every_endpoint_works_and_applies_at_once(backend: Backend) {
    let gw = Gateway::start(with_admin(auth_config_on(backend))).await;
    let (admin, c) = (gw.admin(), gw.client());

    // Create: the sign-up rules, default scopes or exactly those given.
    let r = admin_call(
        &admin,
        Method::POST,
        "/admin/users",
        Some(new_user(" Ada@Example.COM ")),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let ada = r.json();
    assert_eq!(ada["email"], "ada@example.com");
    assert_eq!(ada["scopes"], json!(["items:read", "profile"]));
    assert_eq!(ada["disabled"], false);
    assert!(ada["createdAt"].as_str().unwrap().ends_with('Z'));
    let keys: Vec<&str> = ada
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "email",
            "firstName",
            "lastName",
            "scopes",
            "disabled",
            "createdAt"
        ]
    );
    let mut scoped = new_user("bob@example.com");
    scoped["scopes"] = json!(["reports:read"]);
    let r = admin_call(&admin, Method::POST, "/admin/users", Some(scoped)).await;
    assert_eq!(r.json()["scopes"], json!(["reports:read"]));
    admin_call(
        &admin,
        Method::POST,
        "/admin/users",
        Some(new_user("ADA@example.com")),
    )
    .await
    .assert_error(409);
    for (body, why) in [
        (json!({"email": "x@example.com"}), "missing fields"),
        (new_user("not-an-email"), "bad email"),
        (
            json!({"email": "w@example.com", "password": "password1", "firstName": "A", "lastName": "B"}),
            "common password",
        ),
        (
            json!({"email": "s@example.com", "password": PASSWORD, "firstName": "A", "lastName": "B", "scopes": ["two words"]}),
            "bad scope",
        ),
        (
            json!({"email": "t@example.com", "password": PASSWORD, "firstName": "A", "lastName": "B", "scopes": "one"}),
            "scopes not a list",
        ),
    ] {
        let r = admin_call(&admin, Method::POST, "/admin/users", Some(body)).await;
        assert_eq!(r.status, 400, "{why}: {:?}", r.body);
        r.assert_error(400);
    }
    let r = admin
        .post("/admin/users")
        .bearer(TOKEN)
        .body("{not json")
        .send()
        .await;
    r.assert_error(400);

    // The created user signs in; its session is listed with its times.
    let r = signin(&c, "ada@example.com", PASSWORD).await;
    let (access, refresh) = tokens(&r);
    assert_eq!(me(&c, &access).await, 200);
    let shown = admin_call(&admin, Method::GET, "/admin/users/ADA%40example.com", None).await;
    assert_eq!(shown.status, 200);
    let shown = shown.json();
    assert_eq!(shown["id"], ada["id"]);
    let sessions = shown["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["sid"], claims(&access)["sid"]);
    assert_eq!(sessions[0]["refreshedAt"], Value::Null);
    let r = post(&c, "/refresh-token", &json!({"refreshToken": refresh})).await;
    let (access, _) = tokens(&r);
    let shown = admin_call(&admin, Method::GET, "/admin/users/ada@example.com", None)
        .await
        .json();
    assert!(shown["sessions"][0]["refreshedAt"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    admin_call(&admin, Method::GET, "/admin/users/nobody@example.com", None)
        .await
        .assert_error(404);
    let r = admin_call(&admin, Method::GET, "/admin/users/nobody@example.com", None).await;
    assert_eq!(r.json()["message"], "User not found");

    // Scopes: idempotent both ways, carried by tokens issued from then on.
    for _ in 0..2 {
        let r = admin_call(
            &admin,
            Method::PUT,
            "/admin/users/ada@example.com/scopes/items%3Awrite",
            None,
        )
        .await;
        assert_eq!(r.status, 204);
    }
    let r = admin_call(
        &admin,
        Method::DELETE,
        "/admin/users/ada@example.com/scopes/profile",
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let r = admin_call(
        &admin,
        Method::DELETE,
        "/admin/users/ada@example.com/scopes/profile",
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    admin_call(
        &admin,
        Method::PUT,
        "/admin/users/ada@example.com/scopes/a%20b",
        None,
    )
    .await
    .assert_error(400);
    admin_call(
        &admin,
        Method::PUT,
        "/admin/users/nobody@example.com/scopes/x",
        None,
    )
    .await
    .assert_error(404);
    let (fresh, _) = tokens(&signin(&c, "ada@example.com", PASSWORD).await);
    assert_eq!(claims(&fresh)["scope"], "items:read items:write");

    // One session revoked: its cached token is refused within a second,
    // the other session's token is not.
    let sid = claims(&access)["sid"].as_str().unwrap().to_string();
    assert_eq!(me(&c, &access).await, 200, "cached");
    let r = admin_call(
        &admin,
        Method::DELETE,
        &format!("/admin/users/ada@example.com/sessions/{sid}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    refused_within_a_second(&c, &access, "a revoked session's token").await;
    assert_eq!(me(&c, &fresh).await, 200);
    let r = admin_call(
        &admin,
        Method::DELETE,
        &format!("/admin/users/ada@example.com/sessions/{sid}"),
        None,
    )
    .await;
    r.assert_error(404);
    assert_eq!(r.json()["message"], "Session not found");
    // Another user's session is not this user's to revoke.
    let (bob_access, _) = tokens(&signin(&c, "bob@example.com", PASSWORD).await);
    let bob_sid = claims(&bob_access)["sid"].as_str().unwrap().to_string();
    admin_call(
        &admin,
        Method::DELETE,
        &format!("/admin/users/ada@example.com/sessions/{bob_sid}"),
        None,
    )
    .await
    .assert_error(404);
    assert_eq!(me(&c, &bob_access).await, 200);

    // All sessions.
    assert_eq!(me(&c, &fresh).await, 200);
    let r = admin_call(
        &admin,
        Method::DELETE,
        "/admin/users/ada@example.com/sessions",
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    refused_within_a_second(&c, &fresh, "every session revoked").await;

    // Disable: sessions revoked, sign-in refused; enable lets it back.
    let (access, refresh) = tokens(&signin(&c, "ada@example.com", PASSWORD).await);
    assert_eq!(me(&c, &access).await, 200);
    let r = admin_call(
        &admin,
        Method::POST,
        "/admin/users/ada@example.com/disable",
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    refused_within_a_second(&c, &access, "a disabled user's token").await;
    signin(&c, "ada@example.com", PASSWORD)
        .await
        .assert_error(401);
    post(&c, "/refresh-token", &json!({"refreshToken": refresh}))
        .await
        .assert_error(403);
    let shown = admin_call(&admin, Method::GET, "/admin/users/ada@example.com", None)
        .await
        .json();
    assert_eq!(shown["disabled"], true);
    assert_eq!(shown["sessions"], json!([]));
    admin_call(
        &admin,
        Method::POST,
        "/admin/users/ada@example.com/password-reset",
        None,
    )
    .await
    .assert_error(400);
    let r = admin_call(
        &admin,
        Method::POST,
        "/admin/users/ada@example.com/enable",
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(signin(&c, "ada@example.com", PASSWORD).await.status, 200);
    admin_call(
        &admin,
        Method::GET,
        "/admin/users/ada@example.com/disable",
        None,
    )
    .await
    .assert_error(405);

    // An operator reset token: single use, its checks, every session revoked.
    let (access, _) = tokens(&signin(&c, "ada@example.com", PASSWORD).await);
    let r = admin_call(
        &admin,
        Method::POST,
        "/admin/users/ada@example.com/password-reset",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let reset = r.json();
    let token = reset["token"].as_str().unwrap().to_string();
    assert!(token.len() >= 22, "at least 128 bits");
    assert!(reset["expiresAt"].as_str().unwrap().ends_with('Z'));
    let confirm = |token: &str, password: &str| json!({"token": token, "newPassword": password});
    post(&c, "/password-reset/confirm", &confirm(&token, "password1"))
        .await
        .assert_error(400);
    post(
        &c,
        "/password-reset/confirm",
        &confirm("not-a-token", "N3w-passphrase!"),
    )
    .await
    .assert_error(403);
    let r = post(
        &c,
        "/password-reset/confirm",
        &confirm(&token, "N3w-passphrase!"),
    )
    .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    refused_within_a_second(&c, &access, "sessions of a reset password").await;
    let r = post(
        &c,
        "/password-reset/confirm",
        &confirm(&token, "An0ther-passphrase"),
    )
    .await;
    r.assert_error(403);
    assert_eq!(r.json()["message"], "Invalid or expired token");
    signin(&c, "ada@example.com", PASSWORD)
        .await
        .assert_error(401);
    assert_eq!(
        signin(&c, "ada@example.com", "N3w-passphrase!")
            .await
            .status,
        200
    );
    // A newer token supersedes the older one.
    let first = admin_call(
        &admin,
        Method::POST,
        "/admin/users/ada@example.com/password-reset",
        None,
    )
    .await
    .json();
    let second = admin_call(
        &admin,
        Method::POST,
        "/admin/users/ada@example.com/password-reset",
        None,
    )
    .await
    .json();
    post(
        &c,
        "/password-reset/confirm",
        &confirm(first["token"].as_str().unwrap(), "Th1rd-passphrase"),
    )
    .await
    .assert_error(403);
    // Deleting voids it too (below).

    // Delete: the email is free again, nothing of the old user works.
    let (access, refresh) = tokens(&signin(&c, "ada@example.com", "N3w-passphrase!").await);
    assert_eq!(me(&c, &access).await, 200);
    let r = admin_call(&admin, Method::DELETE, "/admin/users/ada@example.com", None).await;
    assert_eq!(r.status, 204);
    refused_within_a_second(&c, &access, "a deleted user's token").await;
    admin_call(&admin, Method::GET, "/admin/users/ada@example.com", None)
        .await
        .assert_error(404);
    admin_call(&admin, Method::DELETE, "/admin/users/ada@example.com", None)
        .await
        .assert_error(404);
    post(&c, "/refresh-token", &json!({"refreshToken": refresh}))
        .await
        .assert_error(403);
    let (again, _) = signup(&c, "ada@example.com").await;
    assert_ne!(claims(&again)["sub"], ada["id"]);
    post(
        &c,
        "/password-reset/confirm",
        &confirm(second["token"].as_str().unwrap(), "Th1rd-passphrase"),
    )
    .await
    .assert_error(403);

    // Counted by action and status.
    let metrics = String::from_utf8_lossy(&admin.get("/metrics").send().await.body).to_string();
    for series in [
        r#"gateway_admin_requests_total{action="create_user",status="201"} 2"#,
        r#"gateway_admin_requests_total{action="disable_user",status="204"} 1"#,
        r#"gateway_admin_requests_total{action="delete_user",status="404"} 1"#,
        r#"gateway_admin_requests_total{action="grant_scope",status="400"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == series),
            "{series} in:\n{metrics}"
        );
    }
}

async fn users_page_in_creation_order(backend: Backend) {
    let gw = Gateway::start(with_admin(auth_config_on(backend))).await;
    let admin = gw.admin();
    let mut made = Vec::new();
    for i in 0..25 {
        let email = format!(
            "u{i:02}@{}.example.com",
            if i % 2 == 0 { "even" } else { "odd" }
        );
        let r = admin_call(&admin, Method::POST, "/admin/users", Some(new_user(&email))).await;
        assert_eq!(r.status, 201);
        made.push(r.json());
    }
    let page = |after: Option<String>, extra: &'static str| {
        let admin = admin.clone();
        async move {
            let path = match after {
                Some(a) => format!("/admin/users?limit=10{extra}&after={a}"),
                None => format!("/admin/users?limit=10{extra}"),
            };
            let r = admin_call(&admin, Method::GET, &path, None).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            r.json()
        }
    };
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let p = page(after.clone(), "").await;
        pages += 1;
        seen.extend(p["users"].as_array().unwrap().iter().cloned());
        match p["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let created_order = |users: &[Value]| {
        users
            .iter()
            .map(|u| {
                (
                    u["createdAt"].as_str().unwrap().to_string(),
                    u["id"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let mut expected = created_order(&made);
    expected.sort();
    assert_eq!(
        created_order(&seen),
        expected,
        "every user once, in creation order"
    );
    // The search: a part of the email, case-insensitive, paged the same way.
    let odd = page(None, "&q=ODD.example").await;
    assert_eq!(odd["users"].as_array().unwrap().len(), 10);
    let odd_rest = page(odd["next"].as_str().map(str::to_string), "&q=ODD.example").await;
    assert_eq!(odd_rest["users"].as_array().unwrap().len(), 2);
    assert_eq!(odd_rest["next"], Value::Null);
    let r = admin_call(&admin, Method::GET, "/admin/users", None)
        .await
        .json();
    assert_eq!(
        r["users"].as_array().unwrap().len(),
        25,
        "default limit 100"
    );
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "after=bm9wZQ",
        "after=%%",
        "sort=email",
    ] {
        admin_call(&admin, Method::GET, &format!("/admin/users?{bad}"), None)
            .await
            .assert_error(400);
    }
    let r = admin_call(&admin, Method::GET, "/admin/users?limit=1000", None).await;
    assert_eq!(r.status, 200);
}

/// Sign-up takes `/` and `\` in an email's local part; the API addresses
/// such a user with the character escaped in its one path segment, and
/// `gateway users` does the same through the running gateway.
#[tokio::test]
async fn an_email_with_a_slash_is_addressable() {
    let gw = Binary::serve(with_admin(auth_config()).set("admin.listen", &free_admin_port())).await;
    let c = gw.client();
    for email in ["a/b@example.com", "c\\d@example.com"] {
        signup(&c, email).await;
    }
    let admin = Client::new(gw.admin_addr.unwrap());
    let r = admin_call(&admin, Method::GET, "/admin/users/a%2Fb@example.com", None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["email"], "a/b@example.com");
    let r = admin_call(
        &admin,
        Method::POST,
        "/admin/users/c%5Cd@example.com/disable",
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let (code, out, err) = gw.cli(&["users", "show", "a/b@example.com"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("a/b@example.com"), "{out}");
}

crate::on_both_stores!(
    the_token_is_checked_before_anything_else,
    every_endpoint_works_and_applies_at_once,
    users_page_in_creation_order,
);

#[tokio::test]
async fn without_a_token_there_is_no_admin_api() {
    let gw = Gateway::start(auth_config().set("admin.listen", "127.0.0.1:0")).await;
    let admin = gw.admin();
    for path in ["/admin/", "/admin/users"] {
        admin.get(path).bearer(TOKEN).send().await.assert_error(404);
    }
    assert_eq!(admin.get("/healthz").send().await.status, 200);
}

#[tokio::test]
async fn admin_token_rules_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.yaml");
    let cases = [
        (
            with_admin(auth_config()).set("admin.token", "short"),
            "at least 32 bytes",
        ),
        (
            Yaml::new()
                .set("admin.listen", "127.0.0.1:0")
                .set("admin.token", TOKEN)
                .route("e", "path: /e, echo: true, auth: none"),
            "needs an `auth`",
        ),
        (
            auth_config().set("auth.default_scopes", "[\"a b\"]"),
            "is not a scope",
        ),
    ];
    for (yaml, want) in cases {
        std::fs::write(&file, format!("listen: 127.0.0.1:0\n{yaml}")).unwrap();
        let errors = match gateway::load::load(&file) {
            Ok(_) => panic!("accepted:\n{yaml}"),
            Err(e) => e.to_string(),
        };
        let want = if want == "needs an `auth`" {
            "add an `auth` section"
        } else {
            want
        };
        assert!(errors.contains(want), "{want} in {errors}");
        assert!(errors.contains("gateway.yaml:"), "positioned: {errors}");
    }
}

#[tokio::test]
async fn the_console_is_one_page_under_a_strict_policy() {
    let gw = Gateway::start(with_admin(auth_config())).await;
    let r = gw.admin().get("/admin/").send().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(
        csp.contains("script-src 'sha256-") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("access-control-allow-origin"), None);
    let page = String::from_utf8_lossy(&r.body);
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "no external assets"
    );
    // The page holds no data: no user appears in it.
    post(
        &gw.client(),
        "/signup",
        &crate::harness::auth::user("page@example.com"),
    )
    .await;
    let again = gw.admin().get("/admin/").send().await;
    assert!(!String::from_utf8_lossy(&again.body).contains("page@example.com"));
}

#[tokio::test]
async fn a_reload_rotates_the_token() {
    let yaml = with_admin(auth_config());
    let gw = Gateway::start(&yaml).await;
    let admin = gw.admin();
    assert_eq!(
        admin_call(&admin, Method::GET, "/admin/users", None)
            .await
            .status,
        200
    );
    let rotated = "rotated-admin-token-abcdefghijklmnopqrstuvwxyz";
    gw.write_config(yaml.set("admin.token", rotated));
    eventually_async(
        "the new token is the one",
        Duration::from_secs(10),
        || async {
            call(&admin, Method::GET, "/admin/users", Some(rotated), None)
                .await
                .status
                == 200
        },
    )
    .await;
    call(&admin, Method::GET, "/admin/users", Some(TOKEN), None)
        .await
        .assert_error(401);
}

/// Several gateways on one database: a change through one gateway's admin
/// API reaches another's decision cache within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_gateway_reaches_the_others() {
    let store = Backend::Postgres.store();
    let yaml = with_admin(auth_config_at(&store));
    let (a, b) = (Gateway::start(&yaml).await, Gateway::start(&yaml).await);
    let (access, _) = signup(&b.client(), "shared@example.com").await;
    assert_eq!(me(&b.client(), &access).await, 200, "cached on b");
    let r = admin_call(
        &a.admin(),
        Method::POST,
        "/admin/users/shared@example.com/disable",
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    refused_within_a_second(&b.client(), &access, "disabled through a, on b").await;
    let (access, _) = {
        admin_call(
            &a.admin(),
            Method::POST,
            "/admin/users/shared@example.com/enable",
            None,
        )
        .await;
        tokens(&signin(&b.client(), "shared@example.com", PASSWORD).await)
    };
    assert_eq!(me(&b.client(), &access).await, 200);
    let r = admin_call(
        &a.admin(),
        Method::DELETE,
        "/admin/users/shared@example.com",
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    refused_within_a_second(&b.client(), &access, "deleted through a, on b").await;
    assert_eq!(
        post(
            &b.client(),
            "/signup",
            &crate::harness::auth::user("shared@example.com")
        )
        .await
        .status,
        201
    );
}

/// The audit trail on stderr: one line per change naming the action, the
/// email and the client; never the admin token, a password or a reset token.
#[tokio::test]
async fn changes_are_audited_without_secrets() {
    let gw = Binary::serve(with_admin(auth_config())).await;
    let admin = Client::new(gw.admin_addr.unwrap());
    admin_call(
        &admin,
        Method::POST,
        "/admin/users",
        Some(new_user("audit@example.com")),
    )
    .await;
    admin_call(
        &admin,
        Method::PUT,
        "/admin/users/audit@example.com/scopes/x",
        None,
    )
    .await;
    admin_call(
        &admin,
        Method::POST,
        "/admin/users/audit@example.com/disable",
        None,
    )
    .await;
    admin_call(
        &admin,
        Method::POST,
        "/admin/users/audit@example.com/enable",
        None,
    )
    .await;
    let reset = admin_call(
        &admin,
        Method::POST,
        "/admin/users/audit@example.com/password-reset",
        None,
    )
    .await
    .json();
    let reset_token = reset["token"].as_str().unwrap().to_string();
    post(
        &gw.client(),
        "/password-reset/confirm",
        &json!({"token": reset_token, "newPassword": "N3w-passphrase!"}),
    )
    .await;
    admin_call(
        &admin,
        Method::DELETE,
        "/admin/users/audit@example.com",
        None,
    )
    .await;
    admin_call(&admin, Method::GET, "/admin/users", Some(json!({}))).await;
    gw.wait_log("delete_user").await;
    let logs = gw.stderr() + &gw.stdout();
    for action in [
        "create_user",
        "grant_scope",
        "disable_user",
        "enable_user",
        "password_reset",
        "delete_user",
    ] {
        let line = logs
            .lines()
            .find(|l| l.contains("admin change") && l.contains(action))
            .unwrap_or_else(|| panic!("no audit line for {action}:\n{logs}"));
        assert!(
            line.contains("audit@example.com") && line.contains("127.0.0.1"),
            "{line}"
        );
    }
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("admin change") && l.contains("list_users")),
        "reads are not changes"
    );
    for secret in [TOKEN, PASSWORD, "N3w-passphrase!", reset_token.as_str()] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
    }
}

/// A free loopback port: the CLI reads the admin address from the config,
/// so it must be a real port, not 0.
fn free_admin_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// `gateway users` while a gateway holds the redb store: through its admin
/// API, so changes apply to it at once.
#[tokio::test]
async fn the_cli_goes_through_a_running_gateway() {
    let gw = Binary::serve(with_admin(auth_config()).set("admin.listen", &free_admin_port())).await;
    let c = gw.client();
    let ok = |args: &[&str], input: &str| {
        let (code, out, err) = gw.cli_stdin(args, input);
        assert_eq!(code, 0, "{args:?}: {err}");
        out
    };
    let created = ok(
        &[
            "users",
            "create",
            "cli@example.com",
            "--first-name",
            "Cy",
            "--last-name",
            "Li",
            "--scope",
            "a",
            "--scope",
            "b:c",
        ],
        &format!("{PASSWORD}\n"),
    );
    let created: Value = serde_json::from_str(created.trim()).unwrap();
    assert_eq!(created["scopes"], json!(["a", "b:c"]));
    let (code, _, err) = gw.cli_stdin(
        &[
            "users",
            "create",
            "cli@example.com",
            "--first-name",
            "Cy",
            "--last-name",
            "Li",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(code, 1, "taken");
    assert!(err.contains("Email already in use"), "{err}");
    let (code, _, _) = gw.cli_stdin(
        &[
            "users",
            "create",
            "weak@example.com",
            "--first-name",
            "W",
            "--last-name",
            "K",
        ],
        "password1\n",
    );
    assert_eq!(code, 1, "a common password");

    let (access, _) = tokens(&signin(&c, "cli@example.com", PASSWORD).await);
    assert_eq!(me(&c, &access).await, 200);
    let listed = ok(&["users", "list", "--json"], "");
    let line: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(line["email"], "cli@example.com");
    let shown: Value =
        serde_json::from_str(ok(&["users", "show", "CLI@example.com", "--json"], "").trim())
            .unwrap();
    assert_eq!(shown["sessions"].as_array().unwrap().len(), 1);
    assert!(ok(&["users", "show", "cli@example.com"], "").contains("sessions: 1 live"));

    assert_eq!(
        ok(&["users", "disable", "cli@example.com"], ""),
        "cli@example.com: disabled, 1 session revoked\n"
    );
    refused_within_a_second(&c, &access, "disabled by the CLI").await;
    ok(&["users", "enable", "cli@example.com"], "");
    let token = ok(&["users", "reset-password", "cli@example.com"], "");
    let token = token.trim();
    assert!(!token.contains(' ') && token.len() >= 22, "{token}");
    let r = post(
        &c,
        "/password-reset/confirm",
        &json!({"token": token, "newPassword": "N3w-passphrase!"}),
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        signin(&c, "cli@example.com", "N3w-passphrase!")
            .await
            .status,
        200
    );
    let (access, _) = tokens(&signin(&c, "cli@example.com", "N3w-passphrase!").await);
    assert!(ok(&["users", "delete", "cli@example.com"], "").starts_with("cli@example.com: deleted"));
    refused_within_a_second(&c, &access, "deleted by the CLI").await;
    let (code, _, err) = gw.cli(&["users", "delete", "cli@example.com"]);
    assert_eq!(code, 1);
    assert!(err.contains("no user with email cli@example.com"), "{err}");
    // The password never went through argv, and never reached the logs.
    assert!(!gw.stderr().contains(PASSWORD));
}

#[tokio::test]
async fn the_cli_names_admin_token_when_it_cannot_reach_a_running_gateway() {
    let gw = Binary::serve(auth_config().set("admin.listen", "127.0.0.1:0")).await;
    let (code, out, err) = gw.cli(&["users", "list"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("admin.token") && err.contains("running gateway"),
        "{err}"
    );
}

/// `gateway users` on PostgreSQL goes to the database while a gateway runs;
/// what it revokes reaches that gateway within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_works_on_postgresql_while_a_gateway_runs() {
    let gw = Gateway::start(auth_config_at(&Backend::Postgres.store())).await;
    let c = gw.client();
    let cli = |args: &[&str], input: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(crate::harness::gateway::bin())
            .arg("users")
            .args(args)
            .arg("--config")
            .arg(&gw.file)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    cli(
        &[
            "create",
            "pg-cli@example.com",
            "--first-name",
            "P",
            "--last-name",
            "G",
        ],
        &format!("{PASSWORD}\n"),
    );
    let (access, _) = tokens(&signin(&c, "pg-cli@example.com", PASSWORD).await);
    assert_eq!(
        claims(&access)["scope"],
        "items:read profile",
        "default scopes"
    );
    assert_eq!(me(&c, &access).await, 200);
    let token = cli(&["reset-password", "pg-cli@example.com"], "");
    let r = post(
        &c,
        "/password-reset/confirm",
        &json!({"token": token.trim(), "newPassword": "N3w-passphrase!"}),
    )
    .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    refused_within_a_second(&c, &access, "sessions of a password reset by the CLI").await;
    let (access, _) = tokens(&signin(&c, "pg-cli@example.com", "N3w-passphrase!").await);
    assert_eq!(me(&c, &access).await, 200);
    assert!(cli(&["delete", "pg-cli@example.com"], "").contains("deleted, 1 session revoked"));
    refused_within_a_second(&c, &access, "deleted by the CLI on PostgreSQL").await;
    signin(&c, "pg-cli@example.com", "N3w-passphrase!")
        .await
        .assert_error(401);
}
