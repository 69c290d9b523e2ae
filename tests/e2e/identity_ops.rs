//! The identity service as an operator sees it, through the built binary:
//! durability across kill -9, keys across restarts, `gateway users`, and
//! logs that never carry a secret.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::harness::auth::{auth_config_at, claims, post, signin, signup, tokens, user, PASSWORD};
use crate::harness::{Backend, Binary, Yaml};

fn yaml() -> Yaml {
    yaml_on(Backend::Redb)
}

/// A PostgreSQL URL carries a password (the test server trusts loopback,
/// so any is accepted): the logs must not show it either.
const DB_PASSWORD: &str = "db-pass-hunter2";

fn yaml_on(backend: Backend) -> Yaml {
    let store = backend
        .store()
        .replace("postgres@", &format!("postgres:{DB_PASSWORD}@"));
    auth_config_at(&store).set("auth.signin_limit", "{ failures: 50, window: 1m }")
}

async fn every_acknowledged_signup_survives_kill_9(backend: Backend) {
    let gw = Binary::serve(&yaml_on(backend)).await;
    let c = gw.client();
    // One user whose refresh token must still work after the restart (the
    // generated keys were persisted).
    let (_, refresh) = signup(&c, "before@example.com").await;

    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (c, acked, stop) = (c.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let email = format!("w{w}-{i}@example.com");
                    let body = user(&email).to_string();
                    // The kill cuts requests off mid-flight: only a 201 counts.
                    match tokio::time::timeout(
                        Duration::from_secs(5),
                        c.post("/signup").body(body).try_send(),
                    )
                    .await
                    {
                        Ok(Ok(r)) if r.status == 201 => acked.lock().unwrap().push(email),
                        _ => break,
                    }
                }
            })
        })
        .collect();
    crate::harness::eventually("30 acknowledged sign-ups", Duration::from_secs(30), || {
        acked.lock().unwrap().len() >= 30
    })
    .await;
    let gw = gw.kill_and_restart().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    let c = gw.client();
    let acked = acked.lock().unwrap().clone();
    for email in &acked {
        let r = signin(&c, email, PASSWORD).await;
        assert_eq!(
            r.status, 200,
            "{email} got 201 before the kill but cannot sign in"
        );
    }
    let r = post(&c, "/refresh-token", &json!({"refreshToken": refresh})).await;
    assert_eq!(
        r.status, 200,
        "a token from before the restart: {:?}",
        r.body
    );
    assert!(
        !gw.stderr().contains("generated a signing key"),
        "keys must be reused, not regenerated:\n{}",
        gw.stderr()
    );
}

#[tokio::test]
async fn generated_keys_are_private_files_and_the_log_never_shows_them() {
    let gw = Binary::serve(&yaml()).await;
    let dir = gw.config_path().parent().unwrap().join("data");
    for kind in ["access", "refresh"] {
        let path = dir.join(format!("users.redb.{kind}.key"));
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
    }
    let store = std::fs::metadata(dir.join("users.redb")).unwrap();
    assert_eq!(store.permissions().mode() & 0o777, 0o600);
    assert!(gw.stderr().contains("generated a signing key"));
}

async fn passwords_and_tokens_never_reach_the_logs(backend: Backend) {
    let gw = Binary::serve(yaml_on(backend).set("log.access", "true")).await;
    let c = gw.client();
    let (access, refresh) = signup(&c, "logs@example.com").await;
    signin(&c, "logs@example.com", "a-wrong-password-123").await;
    let r = signin(&c, "logs@example.com", PASSWORD).await;
    let (_, r2) = tokens(&r);
    post(&c, "/refresh-token", &json!({"refreshToken": refresh})).await;
    post(&c, "/refresh-token", &json!({"refreshToken": refresh})).await; // reuse: logged
    post(&c, "/signout", &json!({"refreshToken": r2})).await;
    c.get("/pub/x").bearer(&access).send().await;
    let (a2, _) = tokens(&signin(&c, "logs@example.com", PASSWORD).await);
    assert_eq!(c.get("/me").bearer(&a2).send().await.status, 200);
    let mut gw = gw;
    assert!(gw.terminate().success());
    let logs = format!("{}{}", gw.stdout(), gw.stderr());
    assert!(
        logs.contains("builtin:signin"),
        "access log missing:\n{logs}"
    );
    assert!(
        logs.contains("session revoked"),
        "reuse not logged:\n{logs}"
    );
    let sub = claims(&a2)["sub"].as_str().unwrap().to_string();
    assert!(
        logs.contains("\"route\":\"me\",\"status\":200")
            && logs.contains(&format!("\"principal\":\"{sub}\"")),
        "the protected request's record lacks its principal:\n{logs}"
    );
    for secret in [
        PASSWORD,
        "a-wrong-password-123",
        &access,
        &refresh,
        &r2,
        &a2,
        DB_PASSWORD,
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs:\n{logs}");
    }
    // Not even a token's signature part alone.
    for token in [&access, &refresh] {
        let sig = token.rsplit('.').next().unwrap();
        assert!(!logs.contains(sig));
    }
}

#[tokio::test]
async fn users_commands_work_offline_and_refuse_while_the_gateway_runs() {
    let mut gw = Binary::serve(&yaml()).await;
    let c = gw.client();
    let (_, refresh) = signup(&c, "ops@example.com").await;
    let (other_access, _) = signup(&c, "other@example.com").await;

    let (code, _, err) = gw.cli(&["users", "list"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("running gateway") && err.contains("admin.token"),
        "{err}"
    );

    assert!(gw.terminate().success());
    let (code, out, err) = gw.cli(&["users", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ops@example.com") && out.contains("other@example.com"),
        "{out}"
    );
    // --config accepted before the subcommand too.
    let cfg = gw.config_path().to_str().unwrap().to_string();
    let out = std::process::Command::new(crate::harness::gateway::bin())
        .args([
            "--config",
            &cfg,
            "users",
            "show",
            "OPS@example.com",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["email"], "ops@example.com");
    assert_eq!(shown["sessions"].as_array().unwrap().len(), 1);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("$2"),
        "hash shown"
    );

    cli_ok(&gw, &["users", "grant", "ops@example.com", "items:write"]);
    cli_ok(&gw, &["users", "grant", "ops@example.com", "admin"]);
    cli_ok(&gw, &["users", "revoke-scope", "ops@example.com", "admin"]);
    // Issue: the count was always plural ("1 sessions revoked").
    assert_eq!(
        cli_ok(&gw, &["users", "revoke-sessions", "other@example.com"]),
        "other@example.com: 1 session revoked\n"
    );
    assert_eq!(
        cli_ok(&gw, &["users", "revoke-sessions", "other@example.com"]),
        "other@example.com: 0 sessions revoked\n"
    );
    let (code, _, err) = gw.cli(&["users", "grant", "nobody@example.com", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("nobody@example.com"), "{err}");
    let (code, _, _) = gw.cli(&["users", "grant", "ops@example.com", "two words"]);
    assert_eq!(code, 1);

    let gw = gw.restart().await;
    let c = gw.client();
    // Sessions revoked offline are refused after the restart.
    let r = c.get("/me").bearer(&other_access).send().await;
    r.assert_error(401);
    let r = signin(&c, "ops@example.com", PASSWORD).await;
    let (access, _) = tokens(&r);
    assert_eq!(claims(&access)["scope"], "items:read profile items:write");
    assert_eq!(c.get("/me").bearer(&access).send().await.status, 200);

    let mut gw = gw;
    assert!(gw.terminate().success());
    assert!(cli_ok(&gw, &["users", "disable", "ops@example.com"]).contains("disabled"));
    let gw = gw.restart().await;
    let c = gw.client();
    let r = signin(&c, "ops@example.com", PASSWORD).await;
    r.assert_error(401);
    assert_eq!(r.json()["message"], "Wrong credentials");
    // Disabling revoked the session its access token belongs to.
    let r = c.get("/me").bearer(&access).send().await;
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"gateway\", error=\"invalid_token\"")
    );
    post(&c, "/refresh-token", &json!({"refreshToken": refresh}))
        .await
        .assert_error(403);

    let mut gw = gw;
    assert!(gw.terminate().success());
    cli_ok(&gw, &["users", "enable", "ops@example.com"]);
    let gw = gw.restart().await;
    assert_eq!(
        signin(&gw.client(), "ops@example.com", PASSWORD)
            .await
            .status,
        200
    );
}

/// Runs a `gateway` command that must succeed; returns its stdout.
fn cli_ok(gw: &Binary, args: &[&str]) -> String {
    let (code, out, err) = gw.cli(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

crate::on_both_stores!(
    every_acknowledged_signup_survives_kill_9,
    passwords_and_tokens_never_reach_the_logs,
);
