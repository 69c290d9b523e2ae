//! SPEC 5's sessions, password change and password reset, from outside, on
//! both stores: `GET /sessions`, `DELETE /sessions/{sid}`, sign-out
//! scopes, `POST /password`, the mailed reset through a real webhook
//! receiver that checks the signature, and `refresh_token.reuse_interval`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Response};
use serde_json::{json, Value};

use crate::harness::auth::{
    auth_config_at, auth_config_on, claims, post, signin, signup, tokens, unix_now, PASSWORD,
};
use crate::harness::upstream::{record, Body, Recorded};
use crate::harness::{
    eventually_async, full, Backend, Binary, Client, Gateway, Reply, Upstream, Yaml,
};

const SECRET: &str = "webhook-secret-0123456789-abcdefghijkl";
const NEW_PASSWORD: &str = "c0rrect-h0rse-battery";

async fn me(c: &Client, access: &str) -> u16 {
    c.get("/me").bearer(access).send().await.status.as_u16()
}

async fn refused_within_a_second(c: &Client, access: &str, what: &str) {
    eventually_async(what, Duration::from_secs(1), || async {
        me(c, access).await == 401
    })
    .await;
}

async fn sessions(c: &Client, access: &str) -> Reply {
    c.get("/sessions").bearer(access).send().await
}

async fn delete_session(c: &Client, access: &str, sid: &str) -> Reply {
    c.request(Method::DELETE, &format!("/sessions/{sid}"))
        .bearer(access)
        .send()
        .await
}

async fn refresh(c: &Client, refresh: &str) -> Reply {
    post(c, "/refresh-token", &json!({ "refreshToken": refresh })).await
}

async fn signout(c: &Client, refresh: &str, scope: Option<&str>) -> Reply {
    let mut body = json!({ "refreshToken": refresh });
    if let Some(s) = scope {
        body["scope"] = json!(s);
    }
    post(c, "/signout", &body).await
}

async fn change_password(c: &Client, access: &str, current: &str, new: &str) -> Reply {
    c.post("/password")
        .bearer(access)
        .body(json!({ "currentPassword": current, "newPassword": new }).to_string())
        .send()
        .await
}

fn sid(token: &str) -> String {
    claims(token)["sid"].as_str().unwrap().to_string()
}

fn is_rfc3339_utc_seconds(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    s.len() == 20
        && s.ends_with('Z')
        && humantime::parse_rfc3339(s).is_ok()
        && s.as_bytes()[10] == b'T'
}

/// Signs `email` up and in `n - 1` more times: `n` sessions, oldest first.
async fn sessions_of(c: &Client, email: &str, n: usize) -> Vec<(String, String)> {
    let mut out = vec![signup(c, email).await];
    for _ in 1..n {
        out.push(tokens(&signin(c, email, PASSWORD).await));
    }
    out
}

async fn sessions_are_listed_and_revoked_one_by_one(backend: Backend) {
    let gw = Gateway::start(auth_config_on(backend)).await;
    let c = gw.client();
    let s = sessions_of(&c, "list@example.com", 3).await;
    let (other, _) = signup(&c, "other@example.com").await;
    // A rotation shows as `refreshedAt`, and moves `expiresAt`.
    let before = sessions(&c, &s[2].0).await.json();
    let rotated = tokens(&refresh(&c, &s[0].1).await);
    let r = sessions(&c, &s[2].0).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let j = r.json();
    assert_eq!(j["success"], true);
    let list = j["data"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{j}");
    for item in list {
        let keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["sid", "createdAt", "refreshedAt", "expiresAt", "current"],
            "{item}"
        );
        assert!(is_rfc3339_utc_seconds(&item["createdAt"]), "{item}");
        assert!(is_rfc3339_utc_seconds(&item["expiresAt"]), "{item}");
    }
    let created: Vec<&str> = list
        .iter()
        .map(|i| i["createdAt"].as_str().unwrap())
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {created:?}"
    );
    let mine: Vec<&Value> = list.iter().filter(|i| i["current"] == true).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["sid"], sid(&s[2].0));
    let first = list.iter().find(|i| i["sid"] == sid(&s[0].0)).unwrap();
    assert!(is_rfc3339_utc_seconds(&first["refreshedAt"]), "{first}");
    let first_before = before["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["sid"] == sid(&s[0].0))
        .unwrap()
        .clone();
    assert_eq!(first_before["refreshedAt"], Value::Null);
    let exp = claims(&rotated.1)["exp"].as_u64().unwrap();
    assert_eq!(
        humantime::parse_rfc3339(first["expiresAt"].as_str().unwrap()).unwrap(),
        std::time::UNIX_EPOCH + Duration::from_secs(exp)
    );
    // Another user's list holds only their own session.
    let theirs = sessions(&c, &other).await.json();
    assert_eq!(theirs["data"].as_array().unwrap().len(), 1);

    // No token, a bad one: 401 with the authorizer's challenges.
    let r = c.get("/sessions").send().await;
    r.assert_error(401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"gateway\"")
    );
    let r = sessions(&c, "not.a.token").await;
    r.assert_error(401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"gateway\", error=\"invalid_token\"")
    );
    // A wrong method is 405, token or not.
    let r = c.post("/sessions").send().await;
    r.assert_error(405);
    assert_eq!(r.header("allow"), Some("GET"));

    // Revoking one: its access token refused within a second, its refresh
    // token refused; the others untouched.
    let victim = sid(&s[1].0);
    assert_eq!(delete_session(&c, &s[2].0, &victim).await.status, 204);
    refused_within_a_second(&c, &s[1].0, "the revoked session's access token").await;
    refresh(&c, &s[1].1).await.assert_error(403);
    assert_eq!(me(&c, &s[2].0).await, 200);
    assert_eq!(me(&c, &rotated.0).await, 200);
    // Not a live session of this user: 404, and nothing happens to it.
    delete_session(&c, &s[2].0, &victim).await.assert_error(404);
    delete_session(&c, &s[2].0, "no-such-session")
        .await
        .assert_error(404);
    delete_session(&c, &s[2].0, &sid(&other))
        .await
        .assert_error(404);
    assert_eq!(me(&c, &other).await, 200);
    delete_session(&c, &s[2].0, "").await;
    let listed = sessions(&c, &s[2].0).await.json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2, "{listed}");
    // Its own session: 204, then its tokens fail like any revoked one's.
    assert_eq!(delete_session(&c, &s[2].0, &sid(&s[2].0)).await.status, 204);
    refused_within_a_second(&c, &s[2].0, "the caller's own revoked session").await;
    refresh(&c, &s[2].1).await.assert_error(403);
}

async fn signout_applies_its_scope(backend: Backend) {
    let gw = Gateway::start(auth_config_on(backend)).await;
    let c = gw.client();
    let s = sessions_of(&c, "scope@example.com", 4).await;
    let (bystander, _) = signup(&c, "bystander@example.com").await;
    // A scope it does not know: 400, and nothing is revoked.
    for bad in [json!("everything"), json!(""), json!(1)] {
        let r = post(
            &c,
            "/signout",
            &json!({"refreshToken": s[0].1, "scope": bad}),
        )
        .await;
        r.assert_error(400);
    }
    for (access, _) in &s {
        assert_eq!(me(&c, access).await, 200);
    }
    // `others` keeps the caller's session only.
    assert_eq!(signout(&c, &s[0].1, Some("others")).await.status, 204);
    for (access, refresh_token) in &s[1..] {
        refused_within_a_second(&c, access, "a session `others` revoked").await;
        refresh(&c, refresh_token).await.assert_error(403);
    }
    assert_eq!(me(&c, &s[0].0).await, 200);
    // `local` (the default) ends the caller's own.
    let more = tokens(&signin(&c, "scope@example.com", PASSWORD).await);
    assert_eq!(signout(&c, &s[0].1, None).await.status, 204);
    refused_within_a_second(&c, &s[0].0, "the signed-out session").await;
    assert_eq!(me(&c, &more.0).await, 200);
    // A token that was already used (rotated, or signed out) applies no
    // scope: 403.
    signout(&c, &s[0].1, Some("global")).await.assert_error(403);
    assert_eq!(me(&c, &more.0).await, 200);
    // `global` ends them all, and no one else's.
    let last = tokens(&signin(&c, "scope@example.com", PASSWORD).await);
    assert_eq!(signout(&c, &last.1, Some("global")).await.status, 204);
    refused_within_a_second(&c, &more.0, "a session `global` revoked").await;
    refused_within_a_second(&c, &last.0, "the caller's session under `global`").await;
    assert_eq!(me(&c, &bystander).await, 200);
}

async fn a_password_change_keeps_only_the_caller(backend: Backend) {
    let gw = Gateway::start(
        auth_config_on(backend).set("auth.signin_limit", "{ failures: 3, window: 1m }"),
    )
    .await;
    let c = gw.client();
    let s = sessions_of(&c, "change@example.com", 2).await;
    // The body is checked first; a weak new password changes nothing.
    let r = change_password(&c, &s[0].0, PASSWORD, "short").await;
    r.assert_error(400);
    let r = c.post("/password").bearer(&s[0].0).body("{}").send().await;
    r.assert_error(400);
    // No token: 401 from the authorizer.
    let r = c
        .post("/password")
        .body(json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}).to_string())
        .send()
        .await;
    r.assert_error(401);
    // A wrong current password: 401 `Wrong credentials`, a challenge
    // without `error` (the token was fine).
    let r = change_password(&c, &s[0].0, "not-the-password", NEW_PASSWORD).await;
    r.assert_error(401);
    assert_eq!(r.json()["message"], "Wrong credentials");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"gateway\"")
    );
    // The right one: 204; the old password is gone, the new one signs in.
    assert_eq!(
        change_password(&c, &s[0].0, PASSWORD, NEW_PASSWORD)
            .await
            .status,
        204
    );
    signin(&c, "change@example.com", PASSWORD)
        .await
        .assert_error(401);
    assert_eq!(
        signin(&c, "change@example.com", NEW_PASSWORD).await.status,
        200
    );
    // The caller's session stays; every other one is revoked.
    assert_eq!(me(&c, &s[0].0).await, 200);
    assert_eq!(refresh(&c, &s[0].1).await.status, 200);
    refused_within_a_second(&c, &s[1].0, "another session after a password change").await;
    refresh(&c, &s[1].1).await.assert_error(403);

    // Wrong current passwords count as failed sign-ins of the email: the
    // fourth attempt is throttled even with the right password, on
    // `/password` and `/signin` alike.
    let (access, _) = signup(&c, "guess@example.com").await;
    for _ in 0..3 {
        change_password(&c, &access, "guess-guess-guess", NEW_PASSWORD)
            .await
            .assert_error(401);
    }
    let r = change_password(&c, &access, PASSWORD, NEW_PASSWORD).await;
    r.assert_error(429);
    assert!(r
        .header("retry-after")
        .is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    signin(&c, "guess@example.com", PASSWORD)
        .await
        .assert_error(429);
}

/// A webhook receiver: records every delivery, answers 503 to the first
/// `failures`, 204 after.
async fn receiver(failures: usize) -> Upstream {
    let seen = Arc::new(AtomicUsize::new(0));
    Upstream::with(move |req, log| {
        let seen = seen.clone();
        Box::pin(async move {
            record(req, &log).await;
            let status = match seen.fetch_add(1, Ordering::SeqCst) < failures {
                true => 503,
                false => 204,
            };
            let res: Response<Body> = Response::builder().status(status).body(full("")).unwrap();
            res
        })
    })
    .await
}

fn with_webhook(yaml: Yaml, hook: &Upstream, resend: &str) -> Yaml {
    yaml.set(
        "auth.password_reset.webhook",
        &format!("\"{}/hooks/reset\"", hook.url()),
    )
    .set("auth.password_reset.webhook_secret", SECRET)
    .set("auth.password_reset.resend_interval", resend)
}

/// A delivery as the receiver checks it: the signature over "<t>.<body>"
/// with the shared secret, a fresh `t`, and the body's fields. The token.
fn verified(d: &Recorded, email: &str) -> String {
    assert_eq!(d.method, "POST");
    assert_eq!(d.target, "/hooks/reset");
    assert_eq!(d.headers["content-type"], "application/json");
    let sig = d.headers["x-gateway-signature"].to_str().unwrap();
    let (t, mac) = sig
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",sha256="))
        .unwrap_or_else(|| panic!("signature header: {sig}"));
    let t: u64 = t.parse().unwrap();
    assert!(unix_now().abs_diff(t) <= 5, "t={t} is not now");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(&d.body);
    let tag: Vec<u8> = (0..mac.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&mac[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(mac.len(), 64);
    ring::hmac::verify(&key, &signed, &tag).expect("the HMAC matches");
    // A replay with another timestamp does not verify.
    let mut replayed = format!("{}.", t + 1).into_bytes();
    replayed.extend_from_slice(&d.body);
    assert!(ring::hmac::verify(&key, &replayed, &tag).is_err());
    let j: Value = serde_json::from_slice(&d.body).unwrap();
    let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["event", "email", "token", "expiresAt"], "{j}");
    assert_eq!(j["event"], "password_reset");
    assert_eq!(j["email"], email);
    assert!(is_rfc3339_utc_seconds(&j["expiresAt"]), "{j}");
    let token = j["token"].as_str().unwrap().to_string();
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    token
}

async fn request_reset(c: &Client, email: &str) -> Reply {
    let r = post(c, "/password-reset", &json!({ "email": email })).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.json(), json!({"success": true}));
    r
}

async fn confirm(c: &Client, token: &str, password: &str) -> Reply {
    post(
        c,
        "/password-reset/confirm",
        &json!({ "token": token, "newPassword": password }),
    )
    .await
}

/// Waits for the receiver's `n`th delivery.
async fn deliveries(hook: &Upstream, n: usize) -> Vec<Recorded> {
    eventually_async(
        &format!("{n} deliveries"),
        Duration::from_secs(5),
        || async { hook.requests().len() >= n },
    )
    .await;
    hook.requests()
}

async fn a_reset_is_mailed_signed_and_single_use(backend: Backend) {
    let hook = receiver(0).await;
    let yaml = with_webhook(
        crate::admin_api::with_admin(auth_config_on(backend)),
        &hook,
        "0s",
    );
    let gw = Gateway::start(yaml).await;
    let c = gw.client();
    let s = sessions_of(&c, "reset@example.com", 2).await;
    signup(&c, "off@example.com").await;
    let admin = gw.admin();
    let r = admin
        .post("/admin/users/off@example.com/disable")
        .bearer(crate::admin_api::TOKEN)
        .send()
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    // Unknown and disabled emails get the same 202, and nothing is sent.
    request_reset(&c, "nobody@example.com").await;
    request_reset(&c, "off@example.com").await;
    request_reset(&c, "  Reset@Example.com ").await;
    let first = verified(&deliveries(&hook, 1).await[0], "reset@example.com");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        hook.requests().len(),
        1,
        "only the enabled user's email got one"
    );
    // A newer token supersedes it.
    request_reset(&c, "reset@example.com").await;
    let second = verified(&deliveries(&hook, 2).await[1], "reset@example.com");
    assert_ne!(first, second);
    confirm(&c, &first, NEW_PASSWORD).await.assert_error(403);
    // A weak password is refused before the token is used.
    confirm(&c, &second, "short").await.assert_error(400);
    assert_eq!(confirm(&c, &second, NEW_PASSWORD).await.status, 204);
    let r = confirm(&c, &second, "another-good-password").await;
    r.assert_error(403);
    assert_eq!(r.json()["message"], "Invalid or expired token");
    // Every session revoked; the new password signs in.
    for (access, refresh_token) in &s {
        refused_within_a_second(&c, access, "a session after a reset").await;
        refresh(&c, refresh_token).await.assert_error(403);
    }
    assert_eq!(
        signin(&c, "reset@example.com", NEW_PASSWORD).await.status,
        200
    );
    // A password change voids an outstanding token.
    request_reset(&c, "reset@example.com").await;
    let third = verified(&deliveries(&hook, 3).await[2], "reset@example.com");
    let (access, _) = tokens(&signin(&c, "reset@example.com", NEW_PASSWORD).await);
    assert_eq!(
        change_password(&c, &access, NEW_PASSWORD, PASSWORD)
            .await
            .status,
        204
    );
    confirm(&c, &third, NEW_PASSWORD).await.assert_error(403);
    // So does disabling the user.
    request_reset(&c, "reset@example.com").await;
    let fourth = verified(&deliveries(&hook, 4).await[3], "reset@example.com");
    admin
        .post("/admin/users/reset@example.com/disable")
        .bearer(crate::admin_api::TOKEN)
        .send()
        .await;
    confirm(&c, &fourth, NEW_PASSWORD).await.assert_error(403);
    // Malformed requests are still 400.
    c.post("/password-reset")
        .body("{nope")
        .send()
        .await
        .assert_error(400);
    post(&c, "/password-reset", &json!({"email": 7}))
        .await
        .assert_error(400);
}

async fn one_token_per_email_per_resend_interval(backend: Backend) {
    let hook = receiver(0).await;
    let yaml =
        with_webhook(auth_config_on(backend), &hook, "60s").set("auth.password_reset.ttl", "1s");
    let gw = Gateway::start(yaml).await;
    let c = gw.client();
    signup(&c, "once@example.com").await;
    request_reset(&c, "once@example.com").await;
    let token = verified(&deliveries(&hook, 1).await[0], "once@example.com");
    // Inside the interval: the same 202, nothing made, nothing sent, and
    // the outstanding token is not cancelled.
    for _ in 0..5 {
        request_reset(&c, "once@example.com").await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hook.requests().len(), 1);
    // Past `ttl` (1 s), the token is expired.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    confirm(&c, &token, NEW_PASSWORD).await.assert_error(403);
    assert_eq!(signin(&c, "once@example.com", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn without_a_webhook_password_reset_is_not_served() {
    let gw = Gateway::start(auth_config_on(Backend::Redb)).await;
    let c = gw.client();
    post(&c, "/password-reset", &json!({"email": "a@example.com"}))
        .await
        .assert_error(404);
    // Confirming is served whenever `auth` is (operators make tokens).
    confirm(&c, "unknown-token", NEW_PASSWORD)
        .await
        .assert_error(403);
}

/// A receiver failing twice gets the delivery on the third attempt (about
/// 20 s: 0, 5 and 15 s apart); every attempt signed afresh; the token in
/// no log line of the gateway.
#[tokio::test]
async fn a_failed_delivery_is_retried_and_the_token_never_logged() {
    let hook = receiver(2).await;
    let yaml = with_webhook(auth_config_on(Backend::Redb), &hook, "60s")
        .set("admin.listen", "127.0.0.1:0");
    let gw = Binary::serve(yaml).await;
    let c = gw.client();
    signup(&c, "retry@example.com").await;
    let started = Instant::now();
    request_reset(&c, "retry@example.com").await;
    eventually_async("the third attempt", Duration::from_secs(30), || async {
        hook.requests().len() >= 3
    })
    .await;
    let attempts = hook.requests();
    let bodies: Vec<&[u8]> = attempts.iter().map(|d| &d.body[..]).collect();
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one delivery, retried"
    );
    let token = verified(&attempts[2], "retry@example.com");
    assert!(
        started.elapsed() >= Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(hook.requests().len(), 3, "no attempt after a 2xx");
    assert_eq!(confirm(&c, &token, NEW_PASSWORD).await.status, 204);
    let admin = Client::new(gw.admin_addr.unwrap());
    let metrics = String::from_utf8_lossy(&admin.get("/metrics").send().await.body).into_owned();
    for line in [
        r#"gateway_password_reset_deliveries_total{outcome="delivered"} 1"#,
        r#"gateway_password_reset_deliveries_total{outcome="failed"} 2"#,
        r#"gateway_password_reset_deliveries_total{outcome="given_up"} 0"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    let logs = format!("{}{}", gw.stdout(), gw.stderr());
    assert!(logs.contains("password reset delivery failed"), "{logs}");
    assert!(logs.contains("password reset delivered"), "{logs}");
    assert!(!logs.contains(&token), "the token is in the log");
    assert!(!logs.contains(SECRET), "the secret is in the log");
    assert!(!logs.contains(NEW_PASSWORD), "a password is in the log");
}

async fn a_just_rotated_token_gets_the_current_pair_within_the_interval(backend: Backend) {
    let gw = Gateway::start(auth_config_on(backend).set("auth.refresh_token.reuse_interval", "2s"))
        .await;
    let c = gw.client();
    let (_, r0) = signup(&c, "tabs@example.com").await;
    let (_, r1) = tokens(&refresh(&c, &r0).await);
    // Two more tabs present r0: the current pair, same refresh `jti`,
    // fresh access tokens; nothing is revoked.
    let mut access_jtis = Vec::new();
    for _ in 0..2 {
        let r = refresh(&c, &r0).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let (access, again) = tokens(&r);
        assert_eq!(claims(&again)["jti"], claims(&r1)["jti"]);
        assert_eq!(claims(&again)["exp"], claims(&r1)["exp"]);
        assert_eq!(me(&c, &access).await, 200);
        access_jtis.push(claims(&access)["jti"].clone());
    }
    assert_ne!(access_jtis[0], access_jtis[1]);
    // The current token still rotates once; r0 is then older than the
    // replaced one: reuse, and the session is revoked.
    let (_, r2) = tokens(&refresh(&c, &r1).await);
    refresh(&c, &r0).await.assert_error(403);
    refresh(&c, &r2).await.assert_error(403);

    // After the interval, the replaced token is reuse too.
    let (_, s0) = tokens(&signin(&c, "tabs@example.com", PASSWORD).await);
    let (s1_access, s1) = tokens(&refresh(&c, &s0).await);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    refresh(&c, &s0).await.assert_error(403);
    refresh(&c, &s1).await.assert_error(403);
    refused_within_a_second(&c, &s1_access, "the session reuse revoked").await;

    // Sign-out takes the just-rotated token too, and applies its scope.
    let (_, t0) = tokens(&signin(&c, "tabs@example.com", PASSWORD).await);
    let (t1_access, _) = tokens(&refresh(&c, &t0).await);
    assert_eq!(signout(&c, &t0, None).await.status, 204);
    refused_within_a_second(&c, &t1_access, "the signed-out session").await;
}

/// Two gateways on one database, two tabs presenting one refresh token at
/// once, one to each: without an interval exactly one gets a pair (and the
/// reuse revokes the session); with one, both get the same refresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reuse_interval_holds_across_gateways() {
    for (interval, both) in [("0s", false), ("5s", true)] {
        let db = crate::harness::postgres::shared().database();
        let yaml = auth_config_at(&db).set("auth.refresh_token.reuse_interval", interval);
        let (a, b) = (
            Gateway::start(yaml.clone()).await,
            Gateway::start(yaml).await,
        );
        let (ca, cb) = (a.client(), b.client());
        for round in 0..5 {
            let (_, r0) = signup(&ca, &format!("race{round}-{interval}@example.com")).await;
            let (x, y) = tokio::join!(refresh(&ca, &r0), refresh(&cb, &r0));
            let ok: Vec<&Reply> = [&x, &y].into_iter().filter(|r| r.status == 200).collect();
            match both {
                false => assert_eq!(ok.len(), 1, "{x:?} {y:?}"),
                true => {
                    assert_eq!(ok.len(), 2, "{x:?} {y:?}");
                    let (jx, jy) = (
                        claims(&tokens(&x).1)["jti"].clone(),
                        claims(&tokens(&y).1)["jti"].clone(),
                    );
                    assert_eq!(jx, jy);
                    assert_eq!(refresh(&cb, &tokens(&x).1).await.status, 200);
                }
            }
        }
    }
}

/// `auth.endpoint_limit` counts the new endpoints per client IP, one
/// bucket each, every sid of `DELETE /sessions/{sid}` in one.
#[tokio::test]
async fn the_new_endpoints_are_under_the_endpoint_limit() {
    let hook = receiver(0).await;
    let yaml = with_webhook(auth_config_on(Backend::Redb), &hook, "60s")
        .set("auth.endpoint_limit", "{ rate: 1/m, burst: 2 }");
    let gw = Gateway::start(yaml).await;
    let c = gw.client();
    let (access, _) = signup(&c, "limited@example.com").await;
    for _ in 0..2 {
        assert_eq!(sessions(&c, &access).await.status, 200);
    }
    let r = sessions(&c, &access).await;
    r.assert_error(429);
    assert_eq!(r.header("ratelimit"), Some("\"endpoint\";r=0;t=60"));
    delete_session(&c, &access, "a").await.assert_error(404);
    delete_session(&c, &access, "b").await.assert_error(404);
    delete_session(&c, &access, "c").await.assert_error(429);
    for _ in 0..2 {
        request_reset(&c, "nobody@example.com").await;
    }
    let r = post(
        &c,
        "/password-reset",
        &json!({"email": "nobody@example.com"}),
    )
    .await;
    r.assert_error(429);
    // Before the token is verified and before the body is read.
    change_password(&c, "junk", "a", "b")
        .await
        .assert_error(401);
    change_password(&c, "junk", "a", "b")
        .await
        .assert_error(401);
    change_password(&c, "junk", "a", "b")
        .await
        .assert_error(429);
    for _ in 0..2 {
        confirm(&c, "x", NEW_PASSWORD).await.assert_error(403);
    }
    c.post("/password-reset/confirm")
        .body("{")
        .send()
        .await
        .assert_error(429);
}

crate::on_both_stores!(
    sessions_are_listed_and_revoked_one_by_one,
    signout_applies_its_scope,
    a_password_change_keeps_only_the_caller,
    a_reset_is_mailed_signed_and_single_use,
    one_token_per_email_per_resend_interval,
    a_just_rotated_token_gets_the_current_pair_within_the_interval,
);

/// An SMTP server that takes one message per connection and hands its
/// data over: just enough of RFC 5321 for `smtplib`.
async fn smtp_sink() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.to_ascii_uppercase();
                    let reply: &[u8] = match (&mut data, verb.as_str()) {
                        (Some(d), ".") => {
                            tx.send(std::mem::take(d)).unwrap();
                            data = None;
                            b"250 queued\r\n"
                        }
                        (Some(d), _) => {
                            d.push_str(&line);
                            d.push('\n');
                            continue;
                        }
                        (None, "DATA") => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        (None, "QUIT") => b"221 bye\r\n",
                        (None, _) => b"250 ok\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (addr, rx)
}

/// Stops the receiver when the test ends, by its PID.
struct Receiver(std::process::Child);

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The README's receiver (`examples/reset-receiver.py`), run as shipped:
/// it refuses forged and replayed deliveries, and mails the gateway's link,
/// whose token then resets the password.
#[tokio::test]
async fn the_example_receiver_verifies_and_mails_the_reset_link() {
    let python = crate::harness::tools::installed("python3", "python3");
    let (smtp, mut mails) = smtp_sink().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/reset-receiver.py");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let shipped = std::fs::read_to_string(script).unwrap();
    assert!(
        readme.contains(&format!("```python\n{shipped}```")),
        "the README's receiver is not examples/reset-receiver.py"
    );
    let _receiver = Receiver(
        std::process::Command::new(python)
            .arg(script)
            .env("RESET_HOOK_SECRET", SECRET)
            .env("SMTP_HOST", "127.0.0.1")
            .env("SMTP_PORT", smtp.port().to_string())
            .env("PORT", port.to_string())
            .spawn()
            .unwrap(),
    );
    let hook_url = format!("http://127.0.0.1:{port}");
    eventually_async(
        "the receiver listening",
        Duration::from_secs(10),
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        },
    )
    .await;
    let hook = Client::new(([127, 0, 0, 1], port).into());
    let body = json!({"event": "password_reset", "email": "x@example.com", "token": "t", "expiresAt": "x"})
        .to_string();
    let sign = |t: u64, secret: &str| {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let tag = ring::hmac::sign(&key, format!("{t}.{body}").as_bytes());
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("t={t},sha256={hex}")
    };
    for forged in [
        sign(unix_now(), "another-secret-0123456789-abcdefghij"),
        sign(unix_now() - 600, SECRET),
        "t=1".into(),
    ] {
        let r = hook
            .post("/")
            .header("x-gateway-signature", &forged)
            .body(body.clone())
            .send()
            .await;
        assert_eq!(r.status, 401, "{forged}");
    }
    assert!(mails.try_recv().is_err(), "a forged delivery was mailed");

    let yaml = auth_config_on(Backend::Redb)
        .set("auth.password_reset.webhook", &format!("\"{hook_url}/\""))
        .set("auth.password_reset.webhook_secret", SECRET);
    let gw = Gateway::start(yaml).await;
    let c = gw.client();
    signup(&c, "mailed@example.com").await;
    request_reset(&c, "mailed@example.com").await;
    let mail = tokio::time::timeout(Duration::from_secs(10), mails.recv())
        .await
        .expect("a mail within 10 s")
        .unwrap();
    assert!(mail.contains("To: mailed@example.com"), "{mail}");
    let token = mail
        .split("https://app.example.com/reset#")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no link in {mail}"));
    assert_eq!(confirm(&c, token, NEW_PASSWORD).await.status, 204);
    assert_eq!(
        signin(&c, "mailed@example.com", NEW_PASSWORD).await.status,
        200
    );
}
