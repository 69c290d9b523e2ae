//! Reload: a changed file (or SIGHUP) swaps in the new config while
//! traffic flows; nothing in flight notices, an invalid edit changes
//! nothing, and settings that need a restart say so.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Response;

use crate::harness::auth::{auth_config, signup};
use crate::harness::gateway::with_ephemeral_listen;
use crate::harness::{eventually, eventually_async, full, Binary, Client, Gateway, Upstream, Yaml};

fn version(up: &Upstream, i: usize) -> String {
    format!(
        "admin: {{ listen: 127.0.0.1:0 }}\nroutes:\n  - {{ name: stable, path: /stable/*, upstream: {}, auth: none }}\n  - {{ name: v{i}, path: /v{i}, echo: true, auth: none }}\n",
        up.url()
    )
}

/// Polls until `path` answers `status`.
async fn until_status(c: &Client, path: &str, status: u16) {
    eventually_async(
        &format!("{path} to answer {status}"),
        Duration::from_secs(15),
        || async { c.get(path).send().await.status == status },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_steady_traffic_fail_no_request() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&version(&up, 0)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut senders = Vec::new();
    // Two clients on kept-alive connections, one opening a new connection each time.
    for fresh in [false, false, true] {
        let (stop, ok, failed, addr) = (stop.clone(), ok.clone(), failed.clone(), gw.addr);
        senders.push(tokio::spawn(async move {
            let mut c = Client::new(addr);
            while !stop.load(Ordering::Relaxed) {
                if fresh {
                    c = Client::new(addr);
                }
                match c.get("/stable/x").try_send().await {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("failed: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    let c = gw.client();
    for i in 1..=20 {
        gw.write_config(version(&up, i));
        until_status(&c, &format!("/v{i}"), 200).await;
        c.get(&format!("/v{}", i - 1))
            .send()
            .await
            .assert_error(404);
    }
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} failed, {ok} succeeded");
    assert!(ok > 100, "only {ok} requests made it through");
    let m = gw.admin().get("/metrics").send().await;
    let m = String::from_utf8_lossy(&m.body);
    assert!(
        m.contains(r#"gateway_config_reloads_total{outcome="success"} 20"#),
        "{m}"
    );
}

#[tokio::test]
async fn a_request_in_flight_finishes_on_the_config_it_started_with() {
    let slow = Upstream::with(|_, _| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Response::new(full("old upstream"))
        })
    })
    .await;
    let fast = Upstream::with(|_, _| Box::pin(async { Response::new(full("new upstream")) })).await;
    let route = |up: &Upstream| {
        format!(
            "routes:\n  - {{ name: r, path: /*, upstream: {}, auth: none }}\n",
            up.url()
        )
    };
    let gw = Gateway::start(&route(&slow)).await;
    let c = gw.client();
    let in_flight = tokio::spawn({
        let c = c.clone();
        async move { c.get("/work").send().await }
    });
    eventually(
        "the slow upstream to get the request",
        Duration::from_secs(5),
        || slow.connections() == 1,
    )
    .await;
    gw.write_config(route(&fast));
    eventually_async(
        "the reload to the new upstream",
        Duration::from_secs(10),
        || async { c.get("/probe").send().await.body == "new upstream" },
    )
    .await;
    let old = in_flight.await.unwrap();
    assert_eq!(old.status, 200);
    assert_eq!(old.body, "old upstream");
}

#[tokio::test]
async fn route_and_auth_settings_apply_on_reload_without_losing_the_store() {
    let gw = Gateway::start(auth_config()).await;
    let c = gw.client();
    let (access, _) = signup(&c, "r@example.com").await;
    assert_eq!(c.get("/me").bearer(&access).send().await.status, 200);
    gw.write_config(auth_config().set_route("me", "path: /me, echo: true, scopes: [admin]"));
    eventually_async(
        "the admin scope on /me to apply",
        Duration::from_secs(10),
        || async { c.get("/me").bearer(&access).send().await.status == 403 },
    )
    .await;
    c.get("/me").bearer(&access).send().await.assert_error(403);
    // Same store, same keys: the user still signs in and the token still verifies.
    let again =
        crate::harness::auth::signin(&c, "r@example.com", crate::harness::auth::PASSWORD).await;
    assert_eq!(again.status, 200);
    assert_eq!(c.get("/pub/x").bearer(&access).send().await.status, 200);
}

/// The binary's config: an admin listener and the echo route `old`.
fn binary_config() -> Yaml {
    Yaml::new()
        .set("admin", "{ listen: 127.0.0.1:0 }")
        .route("old", "path: /old, echo: true, auth: none")
}

#[tokio::test]
async fn an_invalid_edit_keeps_the_old_config_and_logs_every_error_with_its_position() {
    let gw = Binary::serve(binary_config()).await;
    let c = gw.client();
    assert_eq!(c.get("/old").send().await.status, 200);
    // Two mistakes, in two routes: an unknown key and a bad upstream,
    // written out as text after the routes (which come last) because the
    // positions in the file are what this test checks.
    let broken = with_ephemeral_listen(&format!(
        "{}  - name: typo\n    path: /typo\n    tiemout: 5s\n  - {{ name: bad, path: /bad, upstream: \"ftp://127.0.0.1:1\", auth: none }}\n",
        binary_config()
    ));
    assert_eq!(broken.lines().nth(6), Some("    tiemout: 5s"));
    std::fs::write(gw.config_path(), &broken).unwrap();
    gw.wait_log("config reload failed").await;
    let file = gw.config_path().display().to_string();
    let err = gw.stderr();
    let positioned: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(&format!("{file}:")))
        .collect();
    assert!(
        positioned
            .iter()
            .any(|l| l.contains(&format!("{file}:7:5:")) && l.contains("tiemout")),
        "{err}"
    );
    assert!(
        positioned
            .iter()
            .any(|l| l.contains(&format!("{file}:8:")) && l.contains("upstream")),
        "{err}"
    );
    assert_eq!(c.get("/old").send().await.status, 200);
    c.get("/typo").send().await.assert_error(404);
    c.get("/bad").send().await.assert_error(404);
    let admin = Client::new(gw.admin_addr.unwrap());
    let m = admin.get("/metrics").send().await;
    assert!(String::from_utf8_lossy(&m.body)
        .contains(r#"gateway_config_reloads_total{outcome="failure"} 1"#));
    // Fixed: applied.
    let fixed = with_ephemeral_listen(
        &binary_config()
            .route("new", "path: /new, echo: true, auth: none")
            .to_string(),
    );
    std::fs::write(gw.config_path(), &fixed).unwrap();
    gw.wait_log("config reloaded").await;
    assert_eq!(c.get("/new").send().await.status, 200);
}

#[tokio::test]
async fn sighup_reloads_and_a_listener_change_is_reported_as_needing_a_restart() {
    let gw = Binary::serve(binary_config()).await;
    let c = gw.client();
    // A new route, a new log format and a moved admin listener: the route
    // and format apply, the listener stays and the log says why.
    let moved = binary_config()
        .set("admin", "{ listen: 127.0.0.1:1 }")
        .set("log.format", "pretty")
        .route("moved", "path: /moved, echo: true, auth: none");
    std::fs::write(gw.config_path(), with_ephemeral_listen(&moved.to_string())).unwrap();
    let warned = gw.wait_log("admin.listen").await;
    assert!(warned.contains("restart"), "{warned}");
    // The log format is no restart-only setting: this line is pretty already.
    let reloaded = gw.wait_log("config reloaded").await;
    assert!(!reloaded.starts_with('{'), "{reloaded}");
    // Everything else applied; the admin listener stayed where it was.
    assert_eq!(c.get("/moved").send().await.status, 200);
    let admin = Client::new(gw.admin_addr.unwrap());
    assert_eq!(admin.get("/healthz").send().await.status, 200);
    let reloads = |gw: &Binary| gw.stderr().matches("config reloaded").count();
    let before = reloads(&gw);
    gw.signal("HUP");
    gw.wait_log("SIGHUP").await;
    eventually("a second reload", Duration::from_secs(10), || {
        reloads(&gw) > before
    })
    .await;
    assert_eq!(c.get("/moved").send().await.status, 200);
}
