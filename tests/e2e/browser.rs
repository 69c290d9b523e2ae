//! Real browsers: headless Debian chromium, driven through playwright-core
//! (no browser download). CORS (`tests/browser/cors.mjs`): a page from one
//! loopback origin calls the gateway on another port with `fetch` and an
//! `Authorization` header (a preflighted request), and a page from a
//! disallowed origin. The admin console (`tests/browser/console.mjs`): an
//! operator pastes the token, finds a user, revokes a session and disables
//! the user, and the gateway refuses that user's tokens. Without chromium,
//! node or `tests/browser/node_modules` the tests fail and say what is
//! missing; `scripts/test` installs all three.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use hyper::Response;

use crate::harness::auth::{auth_config, claims, signin, signup, tokens, PASSWORD};
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

/// The console, driven as an operator would; a screenshot of the user page
/// is kept in `target/test-artifacts/console-user.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_revokes_a_session_and_disables_a_user_in_the_console() {
    let (node, chromium) = browser_tools();
    let token = crate::admin_api::TOKEN;
    let yaml = auth_config()
        .set("admin.listen", "127.0.0.1:0")
        .set("admin.token", token);
    let gw = Gateway::start(&yaml).await;
    let c = gw.client();
    let email = "operator-test@example.com";
    let (first, _) = signup(&c, email).await;
    let (second, _) = tokens(&signin(&c, email, PASSWORD).await);
    for t in [&first, &second] {
        assert_eq!(c.get("/me").bearer(t).send().await.status, 200);
    }
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("console-user.png");
    let _ = std::fs::remove_file(&shot);
    let url = format!("http://{}/admin/", gw.admin_addr.unwrap());
    let mut driver = Command::new(node)
        .arg(tool_dir().join("console.mjs"))
        .env("CHROMIUM", chromium)
        .args([&url, token, email, shot.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut stdin = driver.stdin.take().unwrap();
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stdout = driver.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let Some(step) = next_line(&mut lines).await else {
        let out = driver.wait_with_output().unwrap();
        panic!(
            "the console driver stopped:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let step: serde_json::Value = serde_json::from_str(&step).unwrap();
    let revoked = step["revoked"].as_str().unwrap().to_string();
    // The first session listed (newest first; within one second either).
    let (gone, kept) = match claims(&first)["sid"] == revoked.as_str() {
        true => (&first, &second),
        false => (&second, &first),
    };
    assert_eq!(claims(gone)["sid"], revoked.as_str());
    crate::harness::eventually_async(
        "the revoked session refused",
        Duration::from_secs(1),
        || async { c.get("/me").bearer(gone).send().await.status == 401 },
    )
    .await;
    assert_eq!(
        c.get("/me").bearer(kept).send().await.status,
        200,
        "the other session lives"
    );
    writeln!(stdin, "go").unwrap();
    let last = next_line(&mut lines).await;
    let out = driver.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the console driver failed:\n{stderr}");
    let seen: serde_json::Value = serde_json::from_str(&last.unwrap_or_default())
        .unwrap_or_else(|e| panic!("driver output is not JSON ({e}):\n{stderr}"));
    assert_eq!(seen["sessionsBefore"], 2, "{seen}");
    assert_eq!(seen["statusAfter"], "disabled", "{seen}");
    crate::harness::eventually_async(
        "the disabled user's token refused",
        Duration::from_secs(1),
        || async { c.get("/me").bearer(&first).send().await.status == 401 },
    )
    .await;
    assert_eq!(signin(&c, email, PASSWORD).await.status, 401);
    // The server's message is shown; destructive actions were confirmed.
    let shown = seen["errorShown"].as_str().unwrap();
    assert!(
        shown.contains("400") && shown.contains("not a scope"),
        "{shown}"
    );
    let dialogs = seen["dialogs"].as_array().unwrap();
    assert_eq!(dialogs.len(), 2, "{seen}");
    // The token stayed in memory: not in the URL, storage, cookies or field.
    let kept = seen["kept"].to_string();
    assert!(!kept.contains(token), "{kept}");
    assert_eq!(seen["pageErrors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["cspViolations"], serde_json::json!([]), "{seen}");
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "screenshot kept"
    );
}

/// The driver's next line of output, if it comes within a minute.
async fn next_line(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(60), lines.recv())
        .await
        .ok()
        .flatten()
}
