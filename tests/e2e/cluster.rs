//! Several gateways on one PostgreSQL database (docs/clusters.md): every
//! promise of the identity service holds across them, revocations travel
//! within a second, and a database outage or a cut connection degrades
//! only what needs the database.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::auth::{auth_config_at, post, signin, signup, tokens, user, PASSWORD};
use crate::harness::postgres::{db_name, shared, Postgres};
use crate::harness::{eventually_async, within, Client, Gateway, Yaml};

/// `auth_config_at(store)` with an admin listener and a sign-in limit.
fn config(store: &str) -> Yaml {
    auth_config_at(store)
        .set("admin.listen", "127.0.0.1:0")
        .set("auth.signin_limit", "{ failures: 3, window: 1m }")
}

/// `n` gateways started at once on one new database.
async fn gateways(n: usize) -> (String, Vec<Gateway>) {
    let url = shared().database();
    let starts = (0..n).map(|_| Gateway::start(config(&url)));
    let gws = futures_util::future::join_all(starts).await;
    (url, gws)
}

async fn me(c: &Client, access: &str) -> u16 {
    c.get("/me").bearer(access).send().await.status.as_u16()
}

async fn refresh(c: &Client, token: &str) -> crate::harness::Reply {
    post(c, "/refresh-token", &json!({ "refreshToken": token })).await
}

/// The `gateway_store_up` value `/metrics` shows.
async fn store_up(gw: &Gateway) -> String {
    let reply = gw.admin().get("/metrics").send().await;
    let metrics = String::from_utf8_lossy(&reply.body).to_string();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("gateway_store_up "))
        .unwrap_or("absent")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_starting_at_once_on_an_empty_database_all_come_up_and_share_keys() {
    let (url, gws) = gateways(3).await;
    let db = db_name(&url);
    assert_eq!(
        shared().sql(db, "SELECT max(version) FROM gateway_schema"),
        "3"
    );
    // Generated once: one row per kind, whoever came first.
    assert_eq!(shared().sql(db, "SELECT count(*) FROM gateway_keys"), "2");
    let (access, refresh_token) = signup(&gws[0].client(), "keys@example.com").await;
    for gw in &gws {
        assert_eq!(me(&gw.client(), &access).await, 200);
    }
    // A refresh token issued by the first verifies on the last.
    let r = refresh(&gws[2].client(), &refresh_token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (access2, _) = tokens(&r);
    assert_eq!(me(&gws[1].client(), &access2).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_signups_of_one_email_over_three_gateways_make_one_account() {
    let (url, gws) = gateways(3).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let c = gws[i % 3].client();
            // The same address in other spellings too: one account per email.
            let email = match i % 2 {
                0 => "race@example.com".to_string(),
                _ => " Race@Example.COM ".to_string(),
            };
            tokio::spawn(async move { post(&c, "/signup", &user(&email)).await.status.as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    let mut want = vec![201];
    want.extend([409; 19]);
    assert_eq!(statuses, want);
    let count = shared().sql(db_name(&url), "SELECT count(*) FROM gateway_users");
    assert_eq!(count, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_rotated_on_one_gateway_and_replayed_on_another_kills_the_session() {
    let (_, gws) = gateways(2).await;
    let (a, b) = (gws[0].client(), gws[1].client());
    let (_, first) = signup(&a, "replay@example.com").await;
    let r = refresh(&a, &first).await;
    assert_eq!(r.status, 200);
    let (newest_access, newest) = tokens(&r);
    // The thief replays the rotated token elsewhere: refused, and the session dies.
    refresh(&b, &first).await.assert_error(403);
    refresh(&a, &newest).await.assert_error(403);
    // Both gateways refuse the session's access token (cached on neither).
    for c in [&a, &b] {
        eventually_async(
            "the session's access token refused",
            Duration::from_secs(1),
            || async { me(c, &newest_access).await == 401 },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_presented_to_two_gateways_at_once_rotates_once() {
    let (_, gws) = gateways(2).await;
    for round in 0..10 {
        let (_, token) = signup(&gws[0].client(), &format!("twice{round}@example.com")).await;
        let (a, b) = (gws[0].client(), gws[1].client());
        let (t1, t2) = (token.clone(), token.clone());
        let (ra, rb) = tokio::join!(
            async move { refresh(&a, &t1).await.status.as_u16() },
            async move { refresh(&b, &t2).await.status.as_u16() }
        );
        let mut got = [ra, rb];
        got.sort();
        assert_eq!(got, [200, 403], "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signout_on_one_gateway_is_refused_by_the_other_within_a_second() {
    let (_, gws) = gateways(2).await;
    let (a, b) = (gws[0].client(), gws[1].client());
    let (access, refresh_token) = signup(&a, "out@example.com").await;
    // Cached on the other gateway first.
    assert_eq!(me(&b, &access).await, 200);
    let r = post(&a, "/signout", &json!({ "refreshToken": refresh_token })).await;
    assert_eq!(r.status, 204);
    let signed_out = Instant::now();
    eventually_async(
        "the other gateway refuses",
        Duration::from_secs(1),
        || async { me(&b, &access).await == 401 },
    )
    .await;
    println!(
        "revocation reached the other gateway in {:?}",
        signed_out.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_spread_over_gateways_share_one_signin_limit() {
    let (_, gws) = gateways(3).await;
    signup(&gws[0].client(), "guess@example.com").await;
    // One after another, round robin: the fourth is throttled, wherever it lands.
    for gw in &gws {
        let r = signin(&gw.client(), "guess@example.com", "wrong-password-1").await;
        r.assert_error(401);
    }
    for gw in &gws {
        let r = signin(&gw.client(), "guess@example.com", PASSWORD).await;
        r.assert_error(429);
        assert!(r.header("retry-after").is_some());
    }
    // A parallel burst on a fresh email: exactly `failures` password checks
    // in total (401), every other attempt refused unchecked (429).
    signup(&gws[0].client(), "burst@example.com").await;
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let c = gws[i % 3].client();
            tokio::spawn(async move {
                signin(&c, "burst@example.com", "wrong-password-2")
                    .await
                    .status
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, throttled), (3, 27), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_on_one_gateway_clears_the_count_on_all() {
    let (_, gws) = gateways(2).await;
    signup(&gws[0].client(), "clear@example.com").await;
    for _ in 0..2 {
        signin(&gws[0].client(), "clear@example.com", "wrong-password-3")
            .await
            .assert_error(401);
    }
    assert_eq!(
        signin(&gws[1].client(), "clear@example.com", PASSWORD)
            .await
            .status,
        200
    );
    for _ in 0..3 {
        signin(&gws[0].client(), "clear@example.com", "wrong-password-3")
            .await
            .assert_error(401);
    }
    signin(&gws[1].client(), "clear@example.com", PASSWORD)
        .await
        .assert_error(429);
}

/// A database outage under traffic: `auth: none` routes and cached tokens
/// keep working, the endpoints answer 503 with `Retry-After: 5` within 5 s,
/// `gateway_store_up` drops to 0, and everything recovers without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_degrades_only_what_needs_the_database() {
    let mut pg = Postgres::start();
    let url = pg.database();
    let gw = Gateway::start(config(&url)).await;
    let c = gw.client();
    let (access, _) = signup(&c, "outage@example.com").await;
    assert_eq!(me(&c, &access).await, 200);
    assert_eq!(store_up(&gw).await, "1");

    pg.stop();
    for _ in 0..20 {
        assert_eq!(c.get("/pub/x").send().await.status, 200);
    }
    assert_eq!(
        me(&c, &access).await,
        200,
        "a known token verifies from memory"
    );
    let asked = Instant::now();
    let r = signin(&c, "outage@example.com", PASSWORD).await;
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "took {:?}",
        asked.elapsed()
    );
    r.assert_error(503);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.json()["message"], "user store unavailable");
    post(&c, "/signup", &user("during@example.com"))
        .await
        .assert_error(503);
    assert_eq!(store_up(&gw).await, "0");
    assert_eq!(
        gw.admin().get("/readyz").send().await.status,
        200,
        "it was reached once"
    );

    pg.restart();
    eventually_async("sign-in works again", Duration::from_secs(10), || async {
        signin(&c, "outage@example.com", PASSWORD).await.status == 200
    })
    .await;
    assert_eq!(store_up(&gw).await, "1");
    signup(&c, "after@example.com").await;
}

/// Started while its database is down, with generated keys: it serves
/// `auth: none` routes, answers 503 where keys or the store are needed and
/// is not ready; once the database answers, all of it works, unrestarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_started_before_its_database_serves_then_catches_up() {
    let mut pg = Postgres::start();
    let url = pg.database();
    pg.stop();
    let gw = Gateway::start(config(&url)).await;
    let c = gw.client();
    assert_eq!(c.get("/pub/x").send().await.status, 200);
    let r = c.get("/me").bearer("a.b.c").send().await;
    r.assert_error(503);
    assert_eq!(r.header("retry-after"), Some("5"));
    post(&c, "/signup", &user("early@example.com"))
        .await
        .assert_error(503);
    assert_eq!(gw.admin().get("/readyz").send().await.status, 503);

    pg.restart();
    eventually_async(
        "ready once the store is reached",
        Duration::from_secs(10),
        || async { gw.admin().get("/readyz").send().await.status == 200 },
    )
    .await;
    eventually_async("sign-up works", Duration::from_secs(5), || async {
        post(&c, "/signup", &user("early@example.com")).await.status == 201
    })
    .await;
    let r = signin(&c, "early@example.com", PASSWORD).await;
    let (access, _) = tokens(&r);
    assert_eq!(me(&c, &access).await, 200);
}

/// One gateway's connections are cut (and kept out) while a revocation
/// happens on another: the NOTIFY is lost to it, and once it reconnects it
/// reads the revocation from the table within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_cut_off_during_a_revocation_catches_up_within_a_second_of_reconnecting() {
    let pg = shared();
    let url = pg.database();
    let db = db_name(&url);
    // The second gateway connects as a role of its own, so it alone can be cut.
    let role = format!("cut_{db}");
    pg.sql(db, &format!("CREATE ROLE {role} SUPERUSER LOGIN"));
    let a = Gateway::start(config(&url)).await;
    let b_url = url.replace("postgres@", &format!("{role}@"));
    let b = Gateway::start(config(&b_url)).await;
    let (access, refresh_token) = signup(&a.client(), "cut@example.com").await;
    assert_eq!(me(&b.client(), &access).await, 200);

    pg.sql(db, &format!("ALTER ROLE {role} NOLOGIN"));
    pg.sql(
        db,
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"),
    );
    let r = post(
        &a.client(),
        "/signout",
        &json!({ "refreshToken": refresh_token }),
    )
    .await;
    assert_eq!(r.status, 204);
    // Cut off, it cannot know yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(me(&b.client(), &access).await, 200, "it was cut off");

    pg.sql(db, &format!("ALTER ROLE {role} LOGIN"));
    let let_in = Instant::now();
    let caught_up = within(Duration::from_secs(2), || async {
        me(&b.client(), &access).await == 401
    })
    .await;
    assert!(
        caught_up,
        "not caught up 2 s after reconnecting was allowed"
    );
    // Reconnection attempts are 250 ms apart; the read follows at once.
    assert!(
        let_in.elapsed() < Duration::from_millis(1250),
        "took {:?}",
        let_in.elapsed()
    );
}

/// `gateway users` on a PostgreSQL store runs while gateways do, and the
/// sessions it revokes are refused by a running gateway within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_commands_work_while_gateways_run_and_their_revocations_reach_them() {
    let (_, gws) = gateways(1).await;
    let gw = &gws[0];
    let (access, _) = signup(&gw.client(), "cli@example.com").await;
    assert_eq!(me(&gw.client(), &access).await, 200);
    let users = |args: &[&str]| {
        let out = std::process::Command::new(crate::harness::gateway::bin())
            .arg("users")
            .args(args)
            .arg("--config")
            .arg(&gw.file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "gateway users {args:?}: {text}");
        text
    };
    assert!(users(&["list"]).contains("cli@example.com"));
    assert!(users(&["grant", "cli@example.com", "admin"])
        .contains("scopes now [items:read profile admin]"));
    let disabled = users(&["disable", "cli@example.com"]);
    assert!(
        disabled.contains("disabled, 1 session revoked"),
        "{disabled}"
    );
    let revoked_at = Instant::now();
    eventually_async(
        "the running gateway refuses",
        Duration::from_secs(1),
        || async { me(&gw.client(), &access).await == 401 },
    )
    .await;
    println!(
        "revoked by the CLI, refused after {:?}",
        revoked_at.elapsed()
    );
    signin(&gw.client(), "cli@example.com", PASSWORD)
        .await
        .assert_error(401);
    users(&["enable", "cli@example.com"]);
    assert_eq!(
        signin(&gw.client(), "cli@example.com", PASSWORD)
            .await
            .status,
        200
    );
}

/// A schema newer than the binary knows stops start-up with one line; the
/// URL's password appears nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_the_binary_stops_start_up_with_one_clear_line() {
    let url = shared().database();
    let first = Gateway::start(config(&url)).await;
    drop(first);
    shared().sql(
        db_name(&url),
        "INSERT INTO gateway_schema (version) VALUES (99)",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.yaml");
    let with_password = url.replace("postgres@", "postgres:hunter2-secret@");
    let yaml = crate::harness::gateway::with_ephemeral_listen(&config(&with_password).to_string());
    std::fs::write(&file, yaml).unwrap();
    let out = std::process::Command::new(crate::harness::gateway::bin())
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("schema is version 99, newer than this gateway knows (version 3)"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// `deploy/cluster/gateway.yaml`, as the two gateways of the compose file
/// run it (its listeners moved to free loopback ports): a user signed up on
/// one is served on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_cluster_config_runs_two_gateways_on_one_database() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/cluster/gateway.yaml");
    let shipped = std::fs::read_to_string(path).unwrap();
    let yaml = shipped.replace("0.0.0.0:9901", "127.0.0.1:0");
    let url = shared().database();
    let env = [
        ("GATEWAY_DATABASE_URL", url.as_str()),
        (
            "GATEWAY_ACCESS_SECRET",
            "deploy-access-secret-0123456789abcdef",
        ),
        (
            "GATEWAY_REFRESH_SECRET",
            "deploy-refresh-secret-0123456789abcdef",
        ),
    ];
    let one = crate::harness::Binary::serve_env(&yaml, &env).await;
    let two = crate::harness::Binary::serve_env(&yaml, &env).await;
    let r = post(&one.client(), "/signup", &user("deploy@example.com")).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let (access, _) = tokens(&r);
    assert_eq!(me(&two.client(), &access).await, 200);
    assert_eq!(two.client().get("/hello").send().await.status, 200);
}

/// `sslmode` against a server that takes TCP clients over TLS only, with a
/// self-signed certificate: `require` connects (and the server sees TLS),
/// `disable` is refused by the server, and `verify-full` refuses the
/// certificate (not signed by any root of the operating system's store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_database_follows_sslmode() {
    let pg = Postgres::start_tls_only();
    let url = pg.database();
    let gw = Gateway::start(config(&format!("{url}?sslmode=require"))).await;
    signup(&gw.client(), "tls@example.com").await;
    let encrypted = pg.sql(
        db_name(&url),
        "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.application_name LIKE 'gateway%'",
    );
    assert_eq!(encrypted, "t", "every gateway connection uses TLS");
    for mode in ["disable", "verify-full"] {
        let other = Gateway::start(config(&format!("{url}?sslmode={mode}"))).await;
        let r = signin(&other.client(), "tls@example.com", PASSWORD).await;
        r.assert_error(503);
        assert_eq!(
            other.admin().get("/readyz").send().await.status,
            503,
            "{mode}"
        );
    }
}
