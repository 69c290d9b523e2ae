//! Rate limits and the real client address (docs/rate-limits.md), from
//! outside: the 429 and its headers, refill, keys kept apart, limits before
//! the token is verified, the built-in endpoints' limit, reloads, and
//! forwarded headers from trusted and untrusted peers.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::auth::{auth_config, post, signup};
use crate::harness::{eventually_async, Client, Gateway, Reply, Upstream, Yaml};

/// A config with one upstream route `/api/*` limited by `rate_limit`, and
/// the given policies.
fn limited(up: &Upstream, policies: &[(&str, &str)], rate_limit: &str) -> Yaml {
    let mut yaml = auth_config().set("admin.listen", "127.0.0.1:0");
    for (name, policy) in policies {
        yaml = yaml.set(&format!("rate_limits.{name}"), policy);
    }
    yaml.route(
        "api",
        &format!(
            "path: /api/*, upstream: {}, auth: none, rate_limit: {rate_limit}",
            up.url()
        ),
    )
}

fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

async fn metrics(gw: &Gateway) -> String {
    String::from_utf8_lossy(&gw.admin().get("/metrics").send().await.body).into_owned()
}

fn headers(r: &Reply) -> (String, String) {
    (
        r.header("ratelimit-policy").unwrap_or_default().to_string(),
        r.header("ratelimit").unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn a_burst_then_429_with_its_headers_and_the_upstream_never_sees_it() {
    let up = Upstream::start().await;
    let gw = Gateway::start(limited(&up, &[("api", "{ rate: 1/s, burst: 3 }")], "api")).await;
    let c = gw.client();
    for left in [2, 1, 0] {
        let r = c.get("/api/x").send().await;
        assert_eq!(r.status, 200);
        let t = if left == 0 { 1 } else { 0 };
        assert_eq!(
            headers(&r),
            (
                "\"api\";q=1;w=1".to_string(),
                format!("\"api\";r={left};t={t}")
            )
        );
    }
    let r = c.get("/api/x").send().await;
    r.assert_error(429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(headers(&r).1, "\"api\";r=0;t=1");
    assert!(
        r.json()["message"].as_str().unwrap().contains("api"),
        "{:?}",
        r.body
    );
    assert_eq!(up.requests().len(), 3, "the refused request never left");
    // Refill: one more a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(c.get("/api/x").send().await.status, 200);
    c.get("/api/x").send().await.assert_error(429);
    assert_eq!(up.requests().len(), 4);
    let m = metrics(&gw).await;
    assert_eq!(
        sample(
            &m,
            r#"gateway_rate_limited_total{policy="api",route="api"}"#
        ),
        2.0,
        "{m}"
    );
    // 404s, 405s and routes without rate_limit are not limited nor decorated.
    for _ in 0..5 {
        c.get("/nowhere").send().await.assert_error(404);
    }
    let r = c.get("/pub/x").send().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ratelimit"), None);
}

#[tokio::test]
async fn the_upstreams_ratelimit_headers_are_replaced_on_a_limited_route_only() {
    let up = Upstream::with(|_req, _log| {
        Box::pin(async {
            hyper::Response::builder()
                .header("ratelimit", "\"upstream\";r=5;t=0")
                .header("ratelimit-policy", "\"upstream\";q=9;w=1")
                .body(crate::harness::full("ok"))
                .unwrap()
        })
    })
    .await;
    let yaml = limited(&up, &[("api", "{ rate: 100/s }")], "api").route(
        "open",
        &format!("path: /open, upstream: {}, auth: none", up.url()),
    );
    let gw = Gateway::start(yaml).await;
    let r = gw.client().get("/api/x").send().await;
    assert_eq!(headers(&r).1, "\"api\";r=99;t=0");
    let values: Vec<_> = r.headers.get_all("ratelimit").iter().collect();
    assert_eq!(values.len(), 1);
    let r = gw.client().get("/open").send().await;
    assert_eq!(headers(&r).1, "\"upstream\";r=5;t=0", "passed through");
}

#[tokio::test]
async fn several_policies_each_must_allow_and_a_refusal_takes_no_token() {
    let up = Upstream::start().await;
    let gw = Gateway::start(limited(
        &up,
        &[
            ("wide", "{ rate: 100/m }"),
            ("narrow", "{ rate: 2/m, key: \"header:X-Api-Key\" }"),
        ],
        "[wide, narrow]",
    ))
    .await;
    let c = gw.client();
    let call = |key: &str| c.get("/api/x").header("x-api-key", key).send();
    for _ in 0..2 {
        assert_eq!(call("k1").await.status, 200);
    }
    for _ in 0..5 {
        let r = call("k1").await;
        r.assert_error(429);
        assert_eq!(headers(&r).0, "\"wide\";q=100;w=60, \"narrow\";q=2;w=60");
        assert_eq!(headers(&r).1, "\"wide\";r=97;t=0, \"narrow\";r=0;t=30");
        assert_eq!(r.header("retry-after"), Some("30"));
    }
    // Another key has its own bucket; `wide` lost nothing to the refusals.
    let r = call("k2").await;
    assert_eq!(r.status, 200);
    assert_eq!(headers(&r).1, "\"wide\";r=97;t=0, \"narrow\";r=1;t=0");
    // Without the header, the client IP is the key.
    assert_eq!(c.get("/api/x").send().await.status, 200);
}

#[tokio::test]
async fn per_principal_buckets_come_after_the_token_and_others_before_it() {
    let up = Upstream::start().await;
    let yaml = auth_config()
        .set("admin.listen", "127.0.0.1:0")
        .set("rate_limits.per_ip", "{ rate: 1/m, burst: 5 }")
        .set(
            "rate_limits.per_user",
            "{ rate: 1/m, burst: 2, key: principal }",
        )
        .route(
            "flooded",
            &format!("path: /flooded, upstream: {}, rate_limit: per_ip", up.url()),
        )
        .route(
            "mine",
            &format!("path: /mine, upstream: {}, rate_limit: per_user", up.url()),
        );
    let gw = Gateway::start(yaml).await;
    let c = gw.client();
    // A flood of bad tokens: only the burst reaches the verifier.
    let before = sample(&metrics(&gw).await, "gateway_authorizer_cache_misses_total");
    let mut statuses = Vec::new();
    for i in 0..40 {
        let r = c
            .get("/flooded")
            .bearer(&format!("bad.token.{i}"))
            .send()
            .await;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 35);
    let after = sample(&metrics(&gw).await, "gateway_authorizer_cache_misses_total");
    assert_eq!(after - before, 5.0, "verifications past the burst");
    // Per principal: two users, two buckets, the same client IP.
    let (ann, _) = signup(&c, "ann@example.com").await;
    let (bob, _) = signup(&c, "bob@example.com").await;
    for _ in 0..2 {
        assert_eq!(c.get("/mine").bearer(&ann).send().await.status, 200);
    }
    let r = c.get("/mine").bearer(&ann).send().await;
    r.assert_error(429);
    assert_eq!(headers(&r).1, "\"per_user\";r=0;t=60");
    assert_eq!(c.get("/mine").bearer(&bob).send().await.status, 200);
    // A missing token is refused before the principal's policy is checked:
    // 401, and no RateLimit headers (no policy was evaluated).
    let r = c.get("/mine").send().await;
    r.assert_error(401);
    assert_eq!(r.header("ratelimit"), None);
}

#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let up = Upstream::start().await;
    let policies = [("api", "{ rate: 1/m, burst: 1 }")];
    // The test client is 127.0.0.1: trusted here.
    let trusted = limited(&up, &policies, "api")
        .set("client_ip.trusted_proxies", "[127.0.0.1/32]")
        .route("echo", "path: /echo, echo: true, auth: none");
    let gw = Gateway::start(&trusted).await;
    let c = gw.client();
    let from = |ip: &str, chain: &str| {
        c.get("/api/x")
            .header("x-forwarded-for", &format!("{chain}{ip}"))
            .send()
    };
    assert_eq!(from("203.0.113.1", "").await.status, 200);
    from("203.0.113.1", "").await.assert_error(429);
    assert_eq!(from("203.0.113.2", "").await.status, 200, "another client");
    // The rightmost untrusted entry is the client, whatever is left of it.
    from("203.0.113.2", "198.51.100.66, ")
        .await
        .assert_error(429);
    assert_eq!(from("127.0.0.1", "203.0.113.3, ").await.status, 200);
    // A trusted peer's X-Forwarded-Proto and -Host are kept.
    let r = c
        .get("/echo")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "api.example.com")
        .send()
        .await;
    assert_eq!(r.json()["headers"]["x-forwarded-proto"], "https");
    assert_eq!(r.json()["headers"]["x-forwarded-host"], "api.example.com");

    // Untrusted (the proxies are elsewhere): spoofing changes nothing.
    let untrusted = trusted.set("client_ip.trusted_proxies", "[10.0.0.0/8]");
    let gw = Gateway::start(&untrusted).await;
    let c = gw.client();
    let r = c
        .get("/api/x")
        .header("x-forwarded-for", "203.0.113.1")
        .send()
        .await;
    assert_eq!(r.status, 200);
    for spoof in ["203.0.113.9", "198.51.100.1", "10.0.0.1"] {
        c.get("/api/x")
            .header("x-forwarded-for", spoof)
            .send()
            .await
            .assert_error(429);
    }
    let r = c
        .get("/echo")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await;
    assert_eq!(r.json()["headers"]["x-forwarded-proto"], "http");
    assert_ne!(r.json()["headers"]["x-forwarded-host"], "evil.example");
}

#[tokio::test]
async fn the_built_in_endpoints_are_limited_each_on_its_own() {
    let yaml = auth_config()
        .set("admin.listen", "127.0.0.1:0")
        .set("auth.endpoint_limit", "{ rate: 1/m, burst: 2 }");
    let gw = Gateway::start(yaml).await;
    let c = gw.client();
    let wrong = json!({"email": "x@example.com", "password": "wrong-password-1"});
    // A wrong method is a 405, never limited nor counted.
    for _ in 0..5 {
        let r = c.get("/signin").send().await;
        r.assert_error(405);
        assert_eq!(r.header("ratelimit"), None);
    }
    for _ in 0..2 {
        let r = post(&c, "/signin", &wrong).await;
        assert_eq!(r.status, 401);
        assert_eq!(headers(&r).0, "\"endpoint\";q=1;w=60");
    }
    let r = post(&c, "/signin", &wrong).await;
    r.assert_error(429);
    assert_eq!(headers(&r).1, "\"endpoint\";r=0;t=60");
    assert_eq!(r.header("retry-after"), Some("60"));
    // The same limit even with a malformed body: checked before it is read.
    c.post("/signin")
        .body("{not json")
        .send()
        .await
        .assert_error(429);
    // Sign-up has a bucket of its own; the JWK set is not limited.
    let r = post(&c, "/signup", &crate::harness::auth::user("ok@example.com")).await;
    assert_eq!(r.status, 201);
    assert_eq!(headers(&r).1, "\"endpoint\";r=1;t=0");
    for _ in 0..5 {
        let r = c.get("/.well-known/jwks.json").send().await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("ratelimit"), None);
    }
    let m = metrics(&gw).await;
    assert_eq!(
        sample(&m, r#"gateway_signins_total{outcome="throttled"}"#),
        2.0,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            r#"gateway_rate_limited_total{policy="endpoint",route="builtin:signin"}"#
        ),
        2.0
    );
}

#[tokio::test]
async fn the_endpoint_limit_is_on_by_default() {
    let yaml = auth_config().set("auth.endpoint_limit", "{ rate: 60/m, burst: 30 }");
    // The default, written out, equals leaving the key out.
    let gw = Gateway::start(yaml).await;
    let gw_default = {
        let mut text = auth_config().to_string();
        text = text.replace("  endpoint_limit: off\n", "");
        assert!(!text.contains("endpoint_limit"), "{text}");
        Gateway::start(text).await
    };
    for gw in [&gw, &gw_default] {
        let c = gw.client();
        let wrong = json!({"email": "y@example.com", "password": "wrong-password-1"});
        let mut statuses = Vec::new();
        for _ in 0..32 {
            statuses.push(
                post(&c, "/refresh-token", &json!({"refreshToken": "x"}))
                    .await
                    .status,
            );
        }
        assert_eq!(statuses.iter().filter(|s| s.as_u16() == 403).count(), 30);
        assert_eq!(statuses.iter().filter(|s| s.as_u16() == 429).count(), 2);
        assert_eq!(post(&c, "/signin", &wrong).await.status, 401);
    }
}

#[tokio::test]
async fn a_reload_keeps_the_buckets_of_unchanged_policies() {
    let up = Upstream::start().await;
    let policies = [
        ("api", "{ rate: 1/m, burst: 1 }"),
        ("other", "{ rate: 1/m, burst: 1 }"),
    ];
    let yaml = limited(&up, &policies, "api").route(
        "second",
        &format!(
            "path: /second, upstream: {}, auth: none, rate_limit: other",
            up.url()
        ),
    );
    let gw = Gateway::start(&yaml).await;
    let c = gw.client();
    assert_eq!(c.get("/api/x").send().await.status, 200);
    assert_eq!(c.get("/second").send().await.status, 200);
    // Change `other` only (and a route's timeout): `api` keeps its count.
    let next = yaml
        .clone()
        .set("rate_limits.other", "{ rate: 2/m, burst: 2 }")
        .set("limits.idle_timeout", "61s");
    gw.write_config(&next);
    // The changed policy starts with full buckets...
    eventually_async("the reload applies", Duration::from_secs(10), || async {
        let r = c.get("/second").send().await;
        r.status == 200 && headers(&r).0 == "\"other\";q=2;w=60"
    })
    .await;
    // ...the unchanged one kept its count.
    c.get("/api/x").send().await.assert_error(429);
}

/// 100,000 keys per policy at most: more distinct clients than that keep
/// the gateway's memory flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_past_the_key_cap() {
    // An echo route: nothing but the gateway keeps anything per request.
    let yaml = Yaml::new()
        .set("log.access", "false")
        .set("client_ip.trusted_proxies", "[127.0.0.1/32]")
        .set("rate_limits.api", "{ rate: 1/h, burst: 1 }")
        .route(
            "api",
            "path: /api/*, echo: true, auth: none, rate_limit: api",
        );
    let gw = crate::harness::Binary::serve(&yaml).await;
    let run = |from: u32, n: u32| {
        let c = Client::new(gw.addr);
        async move {
            let tasks: Vec<_> = (0..16)
                .map(|t| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        let mut i = from + t;
                        while i < from + n {
                            let ip = std::net::Ipv4Addr::from(0x0A00_0000 + i);
                            let r = c
                                .get("/api/x")
                                .header("x-forwarded-for", &ip.to_string())
                                .send()
                                .await;
                            assert_eq!(r.status, 200, "a new client is allowed");
                            i += 16;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    let started = Instant::now();
    run(0, 110_000).await;
    let first = crate::harness::h2::rss_kib(gw.pid());
    run(110_000, 110_000).await;
    let second = crate::harness::h2::rss_kib(gw.pid());
    println!(
        "RSS after 110k keys {first} KiB, after 220k {second} KiB ({:?})",
        started.elapsed()
    );
    assert!(
        second < first + first / 10,
        "RSS grew from {first} to {second} KiB past the cap"
    );
    // The first clients were dropped first: their buckets are fresh again.
    let c = Client::new(gw.addr);
    let r = c
        .get("/api/x")
        .header("x-forwarded-for", "10.0.0.0")
        .send()
        .await;
    assert_eq!(r.status, 200);
}
