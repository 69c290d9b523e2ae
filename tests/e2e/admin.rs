//! The admin listener: health, readiness and the metrics of docs/operations.md,
//! counted from real traffic; none of it on the public listener.

use crate::harness::auth::{auth_config, post, signin, signup, user, PASSWORD};
use crate::harness::{Gateway, Upstream};

fn with_admin(yaml: &str) -> String {
    format!("admin: {{ listen: 127.0.0.1:0 }}\n{yaml}")
}

/// The value of the sample line `series` (name and labels exactly as rendered).
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn health_readiness_and_metrics_live_on_the_admin_listener_only() {
    let gw = Gateway::start(&with_admin(
        "routes:\n  - { name: e, path: /*, echo: true, auth: none }\n",
    ))
    .await;
    let admin = gw.admin();
    let health = admin.get("/healthz").send().await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(admin.get("/readyz").send().await.status, 200);
    let metrics = admin.get("/metrics").send().await;
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    admin.get("/nope").send().await.assert_error(404);
    let post = admin.post("/metrics").send().await;
    post.assert_error(405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    // The public listener routes these paths like any other (here: the echo).
    let public = gw.client().get("/metrics").send().await;
    assert_eq!(public.json()["path"], "/metrics");
}

#[tokio::test]
async fn metrics_count_requests_auth_and_upstream_errors() {
    let up = Upstream::start().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let yaml = auth_config()
        .set("admin.listen", "127.0.0.1:0")
        .set("auth.signin_limit", "{ failures: 1, window: 1m }")
        .route(
            "api",
            &format!("path: /api/*, upstream: {}, auth: none", up.url()),
        )
        .route(
            "down",
            &format!("path: /down, upstream: {dead_url}, auth: none"),
        );
    let gw = Gateway::start(&yaml).await;
    let c = gw.client();
    for _ in 0..3 {
        assert_eq!(c.get("/api/x").send().await.status, 200);
    }
    assert_eq!(c.post("/api/x").send().await.status, 200);
    c.get("/down").send().await.assert_error(502);
    c.get("/nothing-here").send().await.assert_error(404);
    c.request(http::Method::from_bytes(b"BREW").unwrap(), "/nothing")
        .send()
        .await
        .assert_error(404);
    let (access, _) = signup(&c, "m@example.com").await;
    assert_eq!(
        post(&c, "/signup", &user("m@example.com")).await.status,
        409
    );
    assert_eq!(signin(&c, "m@example.com", PASSWORD).await.status, 200);
    assert_eq!(
        signin(&c, "m@example.com", "wrong-password-1").await.status,
        401
    );
    assert_eq!(
        signin(&c, "m@example.com", "wrong-password-2").await.status,
        429
    );
    for _ in 0..3 {
        assert_eq!(c.get("/me").bearer(&access).send().await.status, 200);
    }
    c.get("/me")
        .bearer("not.a.token")
        .send()
        .await
        .assert_error(401);

    let m = gw.admin().get("/metrics").send().await;
    let m = std::str::from_utf8(&m.body).unwrap();
    let count = |series: &str| sample(m, series);
    assert_eq!(
        count(r#"gateway_requests_total{method="GET",route="api",status="200"}"#),
        3.0
    );
    assert_eq!(
        count(r#"gateway_requests_total{method="POST",route="api",status="200"}"#),
        1.0
    );
    assert_eq!(
        count(r#"gateway_requests_total{method="GET",route="down",status="502"}"#),
        1.0
    );
    assert_eq!(
        count(r#"gateway_requests_total{method="GET",route="",status="404"}"#),
        1.0
    );
    // A method a client made up is not a new series.
    assert_eq!(
        count(r#"gateway_requests_total{method="OTHER",route="",status="404"}"#),
        1.0
    );
    assert_eq!(
        count(r#"gateway_requests_total{method="GET",route="me",status="200"}"#),
        3.0
    );
    assert_eq!(
        count(r#"gateway_requests_total{method="POST",route="builtin:signin",status="429"}"#),
        1.0
    );
    assert_eq!(
        count(r#"gateway_request_duration_seconds_count{route="api"}"#),
        4.0
    );
    assert_eq!(
        count(r#"gateway_request_duration_seconds_bucket{route="api",le="+Inf"}"#),
        4.0
    );
    assert!(count(r#"gateway_request_duration_seconds_sum{route="api"}"#) > 0.0);
    assert_eq!(
        count(r#"gateway_upstream_errors_total{kind="connect"}"#),
        1.0
    );
    assert_eq!(
        count(r#"gateway_upstream_errors_total{kind="timeout"}"#),
        0.0
    );
    // One verification, two cache hits; the garbage token is a miss.
    assert_eq!(count("gateway_authorizer_cache_misses_total"), 2.0);
    assert_eq!(count("gateway_authorizer_cache_hits_total"), 2.0);
    assert_eq!(count("gateway_signups_total"), 1.0);
    assert_eq!(count(r#"gateway_signins_total{outcome="success"}"#), 1.0);
    assert_eq!(count(r#"gateway_signins_total{outcome="failure"}"#), 1.0);
    assert_eq!(count(r#"gateway_signins_total{outcome="throttled"}"#), 1.0);
    assert_eq!(
        count(r#"gateway_config_reloads_total{outcome="success"}"#),
        0.0
    );
    assert!(m.contains("# TYPE gateway_requests_total counter"));
    assert!(m.contains("# TYPE gateway_request_duration_seconds histogram"));
}
