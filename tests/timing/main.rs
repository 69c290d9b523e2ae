//! Tests that measure time. They live in their own test binary, which cargo
//! runs after the others, so no other test shares the CPU while they measure.

#[allow(dead_code, unused_imports)]
#[path = "../e2e/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::auth::{auth_config, signin, signup};
use harness::Gateway;

#[tokio::test]
async fn unknown_email_and_wrong_password_take_the_same_time() {
    // A real cost, so the hash dominates; a limit that never triggers.
    let yaml = auth_config()
        .set("auth.signin_limit", "{ failures: 1000, window: 1m }")
        .set("auth.bcrypt_cost", "8");
    let gw = Gateway::start(&yaml).await;
    let c = gw.client();
    signup(&c, "timing@example.com").await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..20 {
        let wrong = async {
            let t = Instant::now();
            signin(&c, "timing@example.com", "wrong-password")
                .await
                .assert_error(401);
            t.elapsed()
        };
        let ghost = async {
            let t = Instant::now();
            signin(&c, &format!("nobody{i}@example.com"), "wrong-password")
                .await
                .assert_error(401);
            t.elapsed()
        };
        // Alternate the order, so drift in machine load hits both alike.
        if i % 2 == 0 {
            known.push(wrong.await);
            unknown.push(ghost.await);
        } else {
            unknown.push(ghost.await);
            known.push(wrong.await);
        }
    }
    // This VM's host stalls it for 100-600 ms at random moments, which
    // swamps a plain mean: compare the means of each side's faster half.
    // (Skipping the hash for unknown emails would make the ratio ~40.)
    let ratio = trimmed_mean(&mut known) / trimmed_mean(&mut unknown);
    assert!(
        (0.5..=2.0).contains(&ratio),
        "wrong password {known:?} vs unknown email {unknown:?}"
    );
}

fn trimmed_mean(samples: &mut [Duration]) -> f64 {
    samples.sort();
    let kept = &samples[..samples.len() / 2];
    kept.iter().map(Duration::as_secs_f64).sum::<f64>() / kept.len() as f64
}

/// `POST /password-reset` answers 202 in the same time whether the email
/// has an account (a token made and delivered, every time: no resend
/// interval) or not: the work happens after the answer.
#[tokio::test]
async fn a_reset_request_takes_the_same_time_for_known_and_unknown_emails() {
    let hook = harness::Upstream::start().await;
    let yaml = auth_config()
        .set(
            "auth.password_reset.webhook",
            &format!("\"{}/reset\"", hook.url()),
        )
        .set(
            "auth.password_reset.webhook_secret",
            "timing-secret-0123456789-abcdefghij",
        )
        .set("auth.password_reset.resend_interval", "0s");
    let gw = Gateway::start(&yaml).await;
    let c = gw.client();
    signup(&c, "reset-timing@example.com").await;
    let request = |email: String| {
        let c = c.clone();
        async move {
            let body = serde_json::json!({ "email": email }).to_string();
            let t = Instant::now();
            let r = c.post("/password-reset").body(body).send().await;
            assert_eq!(r.status, 202);
            t.elapsed()
        }
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..40 {
        let ghost = format!("nobody{i}@example.com");
        if i % 2 == 0 {
            known.push(request("reset-timing@example.com".into()).await);
            unknown.push(request(ghost).await);
        } else {
            unknown.push(request(ghost).await);
            known.push(request("reset-timing@example.com".into()).await);
        }
    }
    let ratio = trimmed_mean(&mut known) / trimmed_mean(&mut unknown);
    assert!(
        (0.5..=2.0).contains(&ratio),
        "known {known:?} vs unknown {unknown:?}"
    );
    // Every known request made and delivered a token.
    harness::eventually("40 deliveries", Duration::from_secs(10), || {
        hook.requests().len() == 40
    })
    .await;
}
