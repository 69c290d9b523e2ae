//! The built-in endpoints (docs/identity.md) on the wire: every status of the
//! table, the bodies, rotation and reuse, sign-out, throttling, timing parity.

use http::Method;
use serde_json::{json, Value};

use crate::harness::auth::*;
use crate::harness::{Backend, Gateway};

async fn signup_answers_201_with_tokens_carrying_the_spec_claims(backend: Backend) {
    let gw = gateway_on(backend).await;
    let c = gw.client();
    let r = post(&c, "/signup", &user("  Ann.Lee@Example.COM ")).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let (access, refresh) = tokens(&r);

    assert_eq!(jwt_header(&access)["alg"], "HS256");
    let a = claims(&access);
    let keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    let mut want = vec![
        "sub",
        "email",
        "firstName",
        "lastName",
        "scope",
        "sid",
        "iss",
        "iat",
        "exp",
        "jti",
        "token_use",
    ];
    want.sort();
    assert_eq!(sorted, want);
    assert_eq!(a["email"], "ann.lee@example.com");
    assert_eq!(
        (&a["firstName"], &a["lastName"]),
        (&json!("Ann"), &json!("Lee"))
    );
    assert_eq!(a["scope"], "items:read profile");
    assert_eq!(a["iss"], "test-issuer");
    assert_eq!(a["token_use"], "access");
    assert_eq!(
        a["exp"].as_u64().unwrap() - a["iat"].as_u64().unwrap(),
        15 * 60
    );
    assert!(uuid::Uuid::parse_str(a["sub"].as_str().unwrap()).is_ok());

    let f = claims(&refresh);
    let mut keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["exp", "iat", "iss", "jti", "sid", "sub", "token_use"]
    );
    assert_eq!(f["token_use"], "refresh");
    assert_eq!((&f["sub"], &f["sid"]), (&a["sub"], &a["sid"]));
    assert_ne!(f["jti"], a["jti"]);
    assert_eq!(
        f["exp"].as_u64().unwrap() - f["iat"].as_u64().unwrap(),
        7 * 86400
    );
}

async fn signup_refuses_bad_input_with_400_and_a_json_body(backend: Backend) {
    let gw = gateway_on(backend).await;
    let c = gw.client();
    let long_name = "n".repeat(101);
    let mut cases: Vec<(String, String)> = vec![
        ("invalid JSON".into(), "{\"email\":".into()),
        ("not an object".into(), "[]".into()),
        ("empty body".into(), String::new()),
    ];
    let with = |field: &str, value: Value| {
        let mut u = user("new@example.com");
        u[field] = value;
        u.to_string()
    };
    let without = |field: &str| {
        let mut u = user("new@example.com");
        u.as_object_mut().unwrap().remove(field);
        u.to_string()
    };
    for field in ["email", "password", "firstName", "lastName"] {
        cases.push((format!("missing {field}"), without(field)));
        cases.push((format!("empty {field}"), with(field, json!(""))));
        cases.push((format!("{field} of the wrong type"), with(field, json!(7))));
        cases.push((format!("{field} null"), with(field, Value::Null)));
    }
    for (what, email) in [
        ("no @", "ann.example.com"),
        ("two @", "a@b@example.com"),
        ("no local part", "@example.com"),
        ("no dot in domain", "ann@localhost"),
        ("whitespace inside", "ann lee@example.com"),
    ] {
        cases.push((format!("email {what}"), with("email", json!(email))));
    }
    let too_long = format!("{}@example.com", "a".repeat(243));
    cases.push((
        "email over 254 bytes".into(),
        with("email", json!(too_long)),
    ));
    for (what, pw) in [
        ("password of 7 bytes", "x7#kQ2!".to_string()),
        ("password of 73 bytes", "Zq9!".repeat(18) + "x"),
        ("password of 37 two-byte chars", "é".repeat(37)),
        ("common password", "password1".to_string()),
        ("common password, other case", "Sunshine".to_string() + "1"),
    ] {
        cases.push((what.into(), with("password", json!(pw))));
    }
    cases.push(("blank firstName".into(), with("firstName", json!("   "))));
    cases.push((
        "lastName over 100 chars".into(),
        with("lastName", json!(long_name)),
    ));

    for (what, body) in cases {
        let r = c.post("/signup").body(body).send().await;
        assert_eq!(r.status, 400, "{what}: {:?}", r.body);
        r.assert_error(400);
    }
    // None of them created a user: the email is still free.
    signup(&c, "new@example.com").await;
}

async fn edge_values_are_accepted(backend: Backend) {
    let gw = gateway_on(backend).await;
    let c = gw.client();
    let mut u = user("edge@example.com");
    u["password"] = json!("Zq9!".repeat(18)); // exactly 72 bytes
    u["firstName"] = json!("é".repeat(100)); // 100 characters, 200 bytes
    u["extra"] = json!({"ignored": true});
    let r = post(&c, "/signup", &u).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = signin(&c, "edge@example.com", &"Zq9!".repeat(18)).await;
    assert_eq!(r.status, 200);
    // 73 bytes sharing the first 72 must not sign in (bcrypt would truncate).
    let r = signin(&c, "edge@example.com", &("Zq9!".repeat(18) + "x")).await;
    r.assert_error(401);
}

// The last of two equal keys used to win, while a filter in front of the
// gateway may read the first: the two would act on different emails.
async fn a_key_given_twice_is_400(backend: Backend) {
    let gw = gateway_on(backend).await;
    let c = gw.client();
    signup(&c, "first@example.com").await;
    let signup_body = format!(
        r#"{{"email":"second@example.com","email":"third@example.com","password":"{PASSWORD}","firstName":"Ann","lastName":"Lee"}}"#
    );
    let signin_bodies = [
        format!(
            r#"{{"email":"other@example.com","email":"first@example.com","password":"{PASSWORD}"}}"#
        ),
        format!(r#"{{"email":"first@example.com","password":"x","password":"{PASSWORD}"}}"#),
    ];
    let r = c.post("/signup").body(signup_body).send().await;
    r.assert_error(400);
    assert_eq!(r.json()["message"], "`email` is given more than once");
    for body in signin_bodies {
        let r = c.post("/signin").body(body.clone()).send().await;
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
        r.assert_error(400);
    }
    // Neither email of the refused sign-up was taken.
    signup(&c, "second@example.com").await;
    signup(&c, "third@example.com").await;
}

async fn bodies_over_64_kib_get_413_and_other_methods_405(backend: Backend) {
    let gw = gateway_on(backend).await;
    let c = gw.client();
    let mut u = user("big@example.com");
    u["pad"] = json!("x".repeat(64 * 1024));
    for path in ["/signup", "/signin", "/refresh-token", "/signout"] {
        post(&c, path, &u).await.assert_error(413);
        let r = c.request(Method::GET, path).send().await;
        r.assert_error(405);
        assert_eq!(r.header("allow"), Some("POST"));
    }
}

async fn a_taken_email_is_409_whatever_its_case(backend: Backend) {
    let gw = gateway_on(backend).await;
    let c = gw.client();
    signup(&c, "taken@example.com").await;
    let r = post(&c, "/signup", &user(" TAKEN@example.com")).await;
    r.assert_error(409);
    assert_eq!(r.json()["message"], "Email already in use");
}

async fn twenty_concurrent_signups_of_one_email_make_one_account(backend: Backend) {
    let gw = gateway_on(backend).await;
    let c = gw.client();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { post(&c, "/signup", &user("race@example.com")).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        if r.status != 201 {
            r.assert_error(409);
        }
        statuses.push(r.status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
}

async fn signin_starts_a_new_session_and_failures_look_alike(backend: Backend) {
    let gw = gateway_on(backend).await;
    let c = gw.client();
    let (signup_access, _) = signup(&c, "ann@example.com").await;
    let r = signin(&c, " Ann@Example.com ", PASSWORD).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (access, refresh) = tokens(&r);
    assert_ne!(claims(&access)["sid"], claims(&signup_access)["sid"]);
    assert_eq!(claims(&access)["sid"], claims(&refresh)["sid"]);
    assert_eq!(claims(&access)["sub"], claims(&signup_access)["sub"]);

    let wrong = signin(&c, "ann@example.com", "not-the-password").await;
    let unknown = signin(&c, "nobody@example.com", "not-the-password").await;
    let malformed = signin(&c, "not an email", "not-the-password").await;
    for r in [&wrong, &unknown, &malformed] {
        r.assert_error(401);
        assert_eq!(r.body, wrong.body, "failures must not differ");
        assert_eq!(r.json()["message"], "Wrong credentials");
    }
    let r = post(&c, "/signin", &json!({"email": "ann@example.com"})).await;
    r.assert_error(400);
    let r = post(
        &c,
        "/signin",
        &json!({"email": "ann@example.com", "password": 12345678}),
    )
    .await;
    r.assert_error(400);
}

async fn refresh_rotates_and_a_reused_token_kills_the_session(backend: Backend) {
    let gw = gateway_on(backend).await;
    let c = gw.client();
    signup(&c, "rot@example.com").await;
    let (_, r1) = tokens(&signin(&c, "rot@example.com", PASSWORD).await);
    // A second session of the same user, which reuse elsewhere must not touch.
    let (_, other) = tokens(&signin(&c, "rot@example.com", PASSWORD).await);

    let r = post(&c, "/refresh-token", &json!({"refreshToken": r1})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (a2, r2) = tokens(&r);
    assert_eq!(claims(&r2)["sid"], claims(&r1)["sid"]);
    assert_eq!(claims(&a2)["sid"], claims(&r1)["sid"]);
    assert_ne!(claims(&r2)["jti"], claims(&r1)["jti"]);

    // The thief replays r1: refused, and the session dies...
    post(&c, "/refresh-token", &json!({"refreshToken": r1}))
        .await
        .assert_error(403);
    // ...so the victim's newest token is dead too.
    post(&c, "/refresh-token", &json!({"refreshToken": r2}))
        .await
        .assert_error(403);
    // The other session is untouched.
    let r = post(&c, "/refresh-token", &json!({"refreshToken": other})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

async fn refresh_refuses_anything_but_a_live_refresh_token(backend: Backend) {
    let gw = gateway_on(backend).await;
    let c = gw.client();
    let (access, refresh) = signup(&c, "ref@example.com").await;
    let forged = {
        let mut f = claims(&refresh);
        f["sub"] = json!(uuid::Uuid::new_v4().to_string());
        with_payload(&refresh, &f)
    };
    let none_alg = mint(
        r#"{"alg":"none","typ":"JWT"}"#,
        &claims(&refresh).to_string(),
        Key::Unsigned,
    );
    for (what, token) in [
        ("an access token", access.as_str()),
        ("garbage", "not.a.jwt"),
        ("a forged payload", forged.as_str()),
        ("alg none", none_alg.as_str()),
        ("truncated", &refresh[..refresh.len() - 5]),
    ] {
        for path in ["/refresh-token", "/signout"] {
            let r = post(&c, path, &json!({"refreshToken": token})).await;
            assert_eq!(r.status, 403, "{what} on {path}: {:?}", r.body);
            r.assert_error(403);
        }
    }
    for body in [
        json!({}),
        json!({"refreshToken": 5}),
        json!({"refreshToken": ""}),
    ] {
        post(&c, "/refresh-token", &body).await.assert_error(400);
        post(&c, "/signout", &body).await.assert_error(400);
    }
    // After all that, the real token still works.
    let r = post(&c, "/refresh-token", &json!({"refreshToken": refresh})).await;
    assert_eq!(r.status, 200);
}

async fn signout_revokes_only_that_session(backend: Backend) {
    let gw = gateway_on(backend).await;
    let c = gw.client();
    signup(&c, "out@example.com").await;
    let (_, mine) = tokens(&signin(&c, "out@example.com", PASSWORD).await);
    let (_, other) = tokens(&signin(&c, "out@example.com", PASSWORD).await);
    let r = post(&c, "/signout", &json!({"refreshToken": mine})).await;
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    post(&c, "/refresh-token", &json!({"refreshToken": mine}))
        .await
        .assert_error(403);
    post(&c, "/signout", &json!({"refreshToken": mine}))
        .await
        .assert_error(403);
    let r = post(&c, "/refresh-token", &json!({"refreshToken": other})).await;
    assert_eq!(r.status, 200);
}

async fn signout_with_a_rotated_token_revokes_the_session(backend: Backend) {
    let gw = gateway_on(backend).await;
    let c = gw.client();
    let (_, r1) = signup(&c, "rot-out@example.com").await;
    let (_, r2) = tokens(&post(&c, "/refresh-token", &json!({"refreshToken": r1})).await);
    post(&c, "/signout", &json!({"refreshToken": r1}))
        .await
        .assert_error(403);
    post(&c, "/refresh-token", &json!({"refreshToken": r2}))
        .await
        .assert_error(403);
}

async fn failed_signins_past_the_limit_get_429_whatever_the_password(backend: Backend) {
    let gw = gateway_on(backend).await;
    let c = gw.client();
    signup(&c, "thr@example.com").await;
    for _ in 0..3 {
        signin(&c, "thr@example.com", "wrong-password")
            .await
            .assert_error(401);
    }
    for pw in ["wrong-password", PASSWORD] {
        let r = signin(&c, "THR@example.com", pw).await;
        r.assert_error(429);
        let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
    }
    // Unknown emails are throttled the same way; other emails are not affected.
    for _ in 0..3 {
        signin(&c, "ghost@example.com", "x").await.assert_error(401);
    }
    signin(&c, "ghost@example.com", "x").await.assert_error(429);
    signup(&c, "free@example.com").await;
    assert_eq!(signin(&c, "free@example.com", PASSWORD).await.status, 200);
}

async fn a_success_clears_the_count_and_the_429_names_the_window(backend: Backend) {
    let gw = Gateway::start(
        auth_config_on(backend).set("auth.signin_limit", "{ failures: 2, window: 2s }"),
    )
    .await;
    let c = gw.client();
    signup(&c, "win@example.com").await;
    signin(&c, "win@example.com", "wrong-password")
        .await
        .assert_error(401);
    assert_eq!(signin(&c, "win@example.com", PASSWORD).await.status, 200);
    // The success cleared it: two more failures are allowed.
    signin(&c, "win@example.com", "wrong-password")
        .await
        .assert_error(401);
    signin(&c, "win@example.com", "wrong-password")
        .await
        .assert_error(401);
    let r = signin(&c, "win@example.com", PASSWORD).await;
    r.assert_error(429);
    // The window slides: the unit tests in throttle.rs step its clock.
    assert_eq!(r.header("retry-after"), Some("2"));
}

async fn parallel_guesses_cannot_slip_past_the_limit(backend: Backend) {
    let gw = gateway_on(backend).await;
    let c = gw.client();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(
                async move { signin(&c, "burst@example.com", &format!("guess-{i}")).await },
            )
        })
        .collect();
    let mut counted = [0; 2];
    for t in tasks {
        match t.await.unwrap().status.as_u16() {
            401 => counted[0] += 1,
            429 => counted[1] += 1,
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(counted, [3, 9], "[401s, 429s]");
}

// Every in-flight attempt used to count as a failure, so 12 parallel
// sign-ins with the right password got 429s past the third.
async fn parallel_signins_with_the_right_password_all_succeed(backend: Backend) {
    let gw = gateway_on(backend).await;
    let c = gw.client();
    signup(&c, "crowd@example.com").await;
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { signin(&c, "crowd@example.com", PASSWORD).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        statuses.push(r.status.as_u16());
        if r.status == 200 {
            tokens(&r);
        }
    }
    assert_eq!(statuses, [200; 12]);
}

#[tokio::test]
async fn without_auth_the_endpoints_do_not_exist() {
    let gw = Gateway::start(
        "listen: 127.0.0.1:0\nroutes:\n  - { name: pub, path: /pub, echo: true, auth: none }\n",
    )
    .await;
    post(&gw.client(), "/signup", &user("a@example.com"))
        .await
        .assert_error(404);
}

async fn builtin_paths_are_matched_after_normalisation(backend: Backend) {
    let gw = gateway_on(backend).await;
    let c = gw.client();
    let r = c
        .post("/pub/../%73ignup")
        .body(user("norm@example.com").to_string())
        .send()
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

crate::on_both_stores!(
    signup_answers_201_with_tokens_carrying_the_spec_claims,
    signup_refuses_bad_input_with_400_and_a_json_body,
    edge_values_are_accepted,
    a_key_given_twice_is_400,
    bodies_over_64_kib_get_413_and_other_methods_405,
    a_taken_email_is_409_whatever_its_case,
    twenty_concurrent_signups_of_one_email_make_one_account,
    signin_starts_a_new_session_and_failures_look_alike,
    refresh_rotates_and_a_reused_token_kills_the_session,
    refresh_refuses_anything_but_a_live_refresh_token,
    signout_revokes_only_that_session,
    signout_with_a_rotated_token_revokes_the_session,
    failed_signins_past_the_limit_get_429_whatever_the_password,
    a_success_clears_the_count_and_the_429_names_the_window,
    parallel_guesses_cannot_slip_past_the_limit,
    parallel_signins_with_the_right_password_all_succeed,
    builtin_paths_are_matched_after_normalisation,
);
