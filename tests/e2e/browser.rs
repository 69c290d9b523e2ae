//! CORS in a real browser: headless Debian chromium (driven by
//! `tests/browser/cors.mjs` through playwright-core, no browser download)
//! loads a page from one loopback origin that calls the gateway on another
//! port with `fetch` and an `Authorization` header (a preflighted request),
//! and a page from a disallowed origin. Without chromium, node or
//! `tests/browser/node_modules` the test fails and says what is missing;
//! `scripts/test` installs all three.

use std::path::PathBuf;
use std::process::Command;

use hyper::Response;

use crate::harness::auth::signup;
use crate::harness::tools::installed;
use crate::harness::{full, Gateway, Upstream};

fn tool_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// The programs the driver needs: `node`, with chromium (`CHROMIUM`, else
/// /usr/bin/chromium) and playwright-core in place. Panics naming what is
/// missing.
fn browser_tools() -> (PathBuf, PathBuf) {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let chromium = installed(&chromium, "chromium");
    let node = installed("node", "nodejs");
    let modules = tool_dir().join("node_modules/playwright-core");
    assert!(
        modules.exists(),
        "{} is missing: run scripts/test (it runs `npm ci --prefix tests/browser`)",
        modules.display()
    );
    (node, chromium)
}

/// A page server for one origin: every path answers an empty HTML page.
async fn page_server() -> Upstream {
    Upstream::with(|_req, _log| {
        Box::pin(async {
            Response::builder()
                .header("content-type", "text/html")
                .body(full("<!doctype html><title>page</title>"))
                .unwrap()
        })
    })
    .await
}

#[tokio::test]
async fn a_browser_page_calls_the_gateway_cross_origin() {
    let (node, chromium) = browser_tools();
    let allowed = page_server().await;
    let disallowed = page_server().await;
    let api = Upstream::with(|req, log| {
        Box::pin(async move {
            crate::harness::upstream::record(req, &log).await;
            Response::builder()
                .header("content-type", "application/json")
                .body(full(r#"{"items":[1,2,3]}"#))
                .unwrap()
        })
    })
    .await;
    let yaml = format!(
        r#"listen: 127.0.0.1:0
log: {{ access: false }}
auth:
  store: data/users.redb
  bcrypt_cost: 4
cors:
  allow_origins: ["{}"]
routes:
  - {{ name: api, path: "/api/*", upstream: "{}" }}
"#,
        allowed.url(),
        api.url()
    );
    let gw = Gateway::start(&yaml).await;
    let (token, _) = signup(&gw.client(), "browser@example.com").await;
    let gateway_url = format!("http://{}", gw.addr);
    let (allowed_page, disallowed_page) = (
        format!("{}/", allowed.url()),
        format!("{}/", disallowed.url()),
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new(node)
            .arg(tool_dir().join("cors.mjs"))
            .env("CHROMIUM", chromium)
            .args([&allowed_page, &disallowed_page, &gateway_url, &token])
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser driver failed:\n{stderr}");
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("driver output is not JSON ({e}): {:?}", out.stdout));

    // The allowed page read the upstream's JSON through a preflighted call.
    assert_eq!(seen["authorized"]["status"], 200, "{seen}");
    assert_eq!(seen["authorized"]["body"]["items"][2], 3, "{seen}");
    // The gateway's own 401 was readable by page script.
    assert_eq!(seen["unauthorized"]["status"], 401, "{seen}");
    assert_eq!(seen["unauthorized"]["body"]["statusCode"], 401, "{seen}");
    // The disallowed page's call failed in the browser.
    assert_eq!(seen["disallowed"]["ok"], false, "{seen}");
    // The preflights never reached the upstream; the one authorized GET did.
    let methods: Vec<String> = api.requests().iter().map(|r| r.method.clone()).collect();
    assert!(!methods.iter().any(|m| m == "OPTIONS"), "{methods:?}");
    assert_eq!(
        methods.iter().filter(|m| *m == "GET").count(),
        1,
        "{methods:?}"
    );
}
