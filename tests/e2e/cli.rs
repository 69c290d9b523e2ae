//! The binary: `check`, `serve`, exit codes, the ready line, the access log.

use std::process::Command;

use crate::harness::gateway::bin;
use crate::harness::{Binary, Upstream};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// Issue: the summary said "1 routes, 1 listeners".
#[test]
fn check_prints_a_summary_for_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.yaml");
    let route =
        |name: &str| format!("  - {{ name: {name}, path: /{name}, echo: true, auth: none }}\n");
    let cases = [
        (
            format!(
                "listen: 127.0.0.1:3000\nroutes:\n{}{}",
                route("a"),
                route("b")
            ),
            "ok: 2 routes, 1 listener",
        ),
        (
            format!("listen: 127.0.0.1:3000\nroutes:\n{}", route("a")),
            "ok: 1 route, 1 listener",
        ),
        (
            format!(
                "listen: 127.0.0.1:3000\nadmin: {{ listen: 127.0.0.1:9901 }}\nroutes:\n{}{}{}",
                route("a"),
                route("b"),
                route("c")
            ),
            "ok: 3 routes, 2 listeners",
        ),
    ];
    for (yaml, want) in cases {
        std::fs::write(&file, &yaml).unwrap();
        let (code, out, err) = run(&["check", "--config", file.to_str().unwrap()]);
        assert_eq!(
            (code, out.as_str()),
            (0, format!("{want}\n").as_str()),
            "{yaml}{err}"
        );
    }
}

#[test]
fn check_prints_every_error_with_path_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.yaml");
    std::fs::write(
        &file,
        "listen: 127.0.0.1:3000\nroutes:\n  - name: a\n    path: /a\n    upstream: ftp://x\n    auth: none\n  - name: a\n    path: /b/{id\n    echo: true\n    auth: none\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    // --config accepted after the subcommand name and before it.
    for args in [vec!["check", "--config", f], vec!["--config", f, "check"]] {
        let (code, out, err) = run(&args);
        assert_eq!(code, 1, "{out}{err}");
        let all = format!("{out}{err}");
        for want in [
            format!("{f}:5:15: "),
            format!("{f}:7:11: "),
            format!("{f}:8:11: "),
        ] {
            assert!(all.contains(&want), "missing {want} in:\n{all}");
        }
    }
}

#[test]
fn config_defaults_to_gateway_config_env_var() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("custom.yaml");
    std::fs::write(
        &file,
        "listen: 127.0.0.1:3000\nroutes:\n  - { name: a, path: /a, echo: true, auth: none }\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("check")
        .env("GATEWAY_CONFIG", &file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn help_version_and_bad_usage() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("serve") && out.contains("check"), "{out}");
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("gateway "), "{out}");
    let (code, _, err) = run(&["frobnicate"]);
    assert_eq!(code, 2, "{err}");
}

// Issue: `--log-format` was offered on `check` and `users`, where it does nothing.
#[test]
fn log_format_is_a_usage_error_outside_serve() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.yaml");
    std::fs::write(
        &file,
        "listen: 127.0.0.1:3000\nroutes:\n  - { name: a, path: /a, echo: true, auth: none }\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    for args in [
        vec!["check", "--log-format", "json", "--config", f],
        vec!["--log-format", "json", "check", "--config", f],
        vec!["users", "list", "--log-format", "json", "--config", f],
        vec!["users", "--log-format", "json", "list", "--config", f],
    ] {
        let (code, out, err) = run(&args);
        assert_eq!(code, 2, "{args:?}:\n{out}{err}");
        assert!(err.contains("--log-format"), "{args:?}:\n{err}");
    }
    let (code, out, _) = run(&["check", "--help"]);
    assert_eq!(code, 0);
    assert!(!out.contains("--log-format"), "{out}");
    let (code, out, _) = run(&["serve", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--log-format"), "{out}");
}

/// `cargo run --release` with no arguments is `serve`, so the flag works
/// without the subcommand name too.
#[tokio::test]
async fn log_format_is_given_to_serve_named_or_implied() {
    let yaml = "routes:\n  - { name: a, path: /a, echo: true, auth: none }\n";
    for args in [
        &["serve", "--log-format", "pretty"][..],
        &["--log-format", "pretty"],
    ] {
        let mut gw = Binary::serve_args(args, yaml).await;
        let ready = gw.wait_log("gateway ready").await;
        // The config asks for JSON (the default); the flag wins.
        assert!(!ready.trim_start().starts_with('{'), "{args:?}: {ready}");
        assert_eq!(gw.client().get("/a").send().await.status, 200);
        assert!(gw.terminate().success());
        assert!(gw.stdout().contains(" GET /a 200 "), "{}", gw.stdout());
    }
}

// Issue: `--log-format pretty` wrote ANSI colour codes into a redirected file.
#[tokio::test]
async fn pretty_logs_have_no_colour_when_stderr_is_not_a_terminal() {
    let route = "routes:\n  - { name: a, path: /a, echo: true, auth: none }\n";
    let by_config = format!("log: {{ format: pretty }}\n{route}");
    // stderr is a pipe here, as when redirected to a file.
    for mut gw in [
        Binary::serve_args(&["serve", "--log-format", "pretty"], route).await,
        Binary::serve(&by_config).await,
    ] {
        assert_eq!(gw.client().get("/a").send().await.status, 200);
        assert!(gw.terminate().success());
        let logs = format!("{}{}", gw.stderr(), gw.stdout());
        assert!(logs.contains("gateway ready"), "{logs}");
        assert!(!logs.contains('\x1b'), "colour codes in:\n{logs:?}");
        // Pretty, not JSON.
        assert!(!logs.trim_start().starts_with('{'), "{logs}");
    }
}

#[test]
fn serve_refuses_a_port_in_use_with_one_clear_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.yaml");
    let addr = taken.local_addr().unwrap();
    std::fs::write(
        &file,
        format!("listen: {addr}\nroutes:\n  - {{ name: a, path: /a, echo: true, auth: none }}\n"),
    )
    .unwrap();
    let (code, _, err) = run(&["serve", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&addr.to_string()) && err.contains("cannot listen"),
        "{err}"
    );
}

#[tokio::test]
async fn access_log_has_exactly_the_spec_keys_and_no_secrets() {
    let up = Upstream::start().await;
    let yaml = format!(
        "routes:\n  - {{ name: open, path: /*, upstream: {}, auth: none }}\n",
        up.url()
    );
    let mut gw = Binary::serve(&yaml).await;
    let res = gw
        .client()
        .post("/a/../b?token=query-secret")
        .bearer("very-secret-token")
        .header("cookie", "session=cookie-secret")
        .body("hello")
        .send()
        .await;
    assert_eq!(res.status, 200);
    crate::harness::eventually(
        "an access log line",
        std::time::Duration::from_secs(5),
        || gw.stdout().lines().count() >= 1,
    )
    .await;
    let status = gw.terminate();
    assert!(status.success(), "exit status {status}");
    let stdout = gw.stdout();
    let line: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "time",
            "request_id",
            "client",
            "method",
            "path",
            "route",
            "status",
            "duration_ms",
            "upstream",
            "principal",
            "bytes_in",
            "bytes_out"
        ]
    );
    assert_eq!(line["path"], "/b");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["route"], "open");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes_in"], 5);
    assert_eq!(line["bytes_out"], 11);
    assert_eq!(line["upstream"], up.url());
    assert!(line["principal"].is_null());
    assert_eq!(line["request_id"], res.header("x-request-id").unwrap());
    let everything = format!("{stdout}{}", gw.stderr());
    for secret in ["very-secret-token", "query-secret", "cookie-secret"] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked into the logs:\n{everything}"
        );
    }
}

#[tokio::test]
async fn access_log_can_be_turned_off() {
    let yaml =
        "log: { access: false }\nroutes:\n  - { name: a, path: /a, echo: true, auth: none }\n";
    let mut gw = Binary::serve(yaml).await;
    assert_eq!(gw.client().get("/a").send().await.status, 200);
    gw.terminate();
    assert_eq!(gw.stdout(), "");
}

/// `check` validates a PostgreSQL URL without connecting (the host below
/// does not resolve), and never shows its password.
#[test]
fn check_validates_a_postgres_url_offline_and_hides_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.yaml");
    let f = file.to_str().unwrap();
    let with_store = |store: &str| {
        format!("listen: 127.0.0.1:3000\nauth:\n  store: {store}\nroutes:\n  - {{ name: a, path: /a, echo: true }}\n")
    };
    let ok = "postgresql://gw:hunter2@db.invalid:5432/gateway?sslmode=verify-full";
    std::fs::write(&file, with_store(ok)).unwrap();
    let (code, out, err) = run(&["check", "--config", f]);
    assert_eq!(
        (code, out.as_str()),
        (0, "ok: 1 route, 1 listener\n"),
        "{err}"
    );
    for (store, says) in [
        (
            "postgres://gw:hunter2@db.invalid/gateway?sslmode=prefer",
            "3:10: auth.store: sslmode \"prefer\" is not supported; use disable, require or verify-full",
        ),
        (
            "postgres://gw:hunter2@db.invalid:99999/gateway",
            "3:10: auth.store: not a valid PostgreSQL URL (postgres://gw:***@db.invalid:99999/gateway)",
        ),
        (
            "postgres://gw:hunter2@db.invalid",
            "3:10: auth.store: the URL names no database",
        ),
    ] {
        std::fs::write(&file, with_store(store)).unwrap();
        let (code, out, err) = run(&["check", "--config", f]);
        assert_eq!(code, 1, "{store}: {out}{err}");
        assert!(err.contains(says), "{store}: {err}");
        assert!(!(out + &err).contains("hunter2"), "{store}: {err}");
    }
}
