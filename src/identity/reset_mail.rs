//! `POST /password-reset`'s work, done after its 202 (docs/identity.md):
//! the reset token made in the store (at most one per email per
//! `resend_interval`) and delivered to `password_reset.webhook` as JSON,
//! signed with a timestamp, retried. The token is never logged.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

use super::accounts::ResetToken;
use super::store::Store;
use super::view::rfc3339;
use crate::auth::jwt::now_unix;
use crate::config::ResetWebhook;
use crate::http::headers;
use crate::telemetry::metrics::{Metrics, ResetDelivery};

/// Requests being made or delivered at once; past it, one is dropped
/// (with a warning): a flood cannot grow memory without bound.
const PENDING: usize = 1024;

/// Waits before the second, third and fourth attempt: four over a minute.
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(5),
    Duration::from_secs(15),
    Duration::from_secs(40),
];

/// One attempt, connecting included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

pub const SIGNATURE_HEADER: &str = "x-gateway-signature";

pub struct ResetMailer {
    webhook: ResetWebhook,
    /// `password_reset.ttl`.
    ttl: Duration,
    store: Arc<Store>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    pending: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl ResetMailer {
    /// Blocking (reads the system's trusted roots).
    pub fn new(
        webhook: &ResetWebhook,
        ttl: Duration,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<ResetMailer> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(ATTEMPT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(Arc::new(rustls::crypto::ring::default_provider()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(ResetMailer {
            webhook: webhook.clone(),
            ttl,
            store,
            client: Client::builder(TokioExecutor::new()).build(https),
            pending: Arc::new(Semaphore::new(PENDING)),
            metrics,
        })
    }

    /// Is it configured as `webhook` and `ttl` say (a reload keeps it)?
    pub fn is(&self, webhook: &ResetWebhook, ttl: Duration) -> bool {
        self.webhook == *webhook && self.ttl == ttl
    }

    /// Makes and delivers a token for `email` in the background, if it
    /// belongs to an enabled user not sent one within `resend_interval`.
    pub fn request(self: &Arc<Self>, email: String) {
        let Ok(permit) = self.pending.clone().try_acquire_owned() else {
            tracing::warn!(
                pending = PENDING,
                "password reset dropped: too many pending"
            );
            self.metrics.reset_delivery(ResetDelivery::Dropped);
            return;
        };
        let mailer = self.clone();
        tokio::spawn(async move {
            mailer.make(email).await;
            drop(permit);
        });
    }

    async fn make(&self, email: String) {
        let now = now_unix();
        let (token, ticket) = match ResetToken::new(self.ttl, now) {
            Ok(made) => made,
            Err(e) => return tracing::warn!(error = %e, "password reset not made"),
        };
        let resend = self.webhook.resend_interval.as_secs();
        match self.store.request_reset(email, ticket, resend, now).await {
            Ok(Some(user)) => self.deliver(&user.email, &token).await,
            // Unknown, disabled, or sent one within `resend_interval`.
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "password reset not made: the store failed"),
        }
    }

    async fn deliver(&self, email: &str, token: &ResetToken) {
        let body = serde_json::json!({
            "event": "password_reset",
            "email": email,
            "token": token.token,
            "expiresAt": rfc3339(token.expires_at),
        })
        .to_string();
        let waits = std::iter::once(Duration::ZERO).chain(RETRY_DELAYS);
        for (attempt, wait) in waits.enumerate() {
            tokio::time::sleep(wait).await;
            let outcome = self.attempt(&body).await;
            self.metrics.reset_delivery(match outcome {
                Ok(()) => ResetDelivery::Delivered,
                Err(_) => ResetDelivery::Failed,
            });
            match outcome {
                Ok(()) => return tracing::info!(attempt = attempt + 1, "password reset delivered"),
                Err(e) => tracing::warn!(
                    attempt = attempt + 1,
                    webhook = self.webhook.url.host().unwrap_or_default(),
                    error = %e,
                    "password reset delivery failed"
                ),
            }
        }
        self.metrics.reset_delivery(ResetDelivery::GivenUp);
        tracing::warn!(
            attempts = RETRY_DELAYS.len() + 1,
            "password reset delivery given up"
        );
    }

    /// One POST, signed now; a 2xx answer is delivery.
    async fn attempt(&self, body: &str) -> Result<(), String> {
        let t = now_unix();
        let signature = signature(&self.webhook.secret, t, body);
        let req = Request::post(self.webhook.url.clone())
            .header(
                &headers::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(SIGNATURE_HEADER, signature)
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let res = tokio::time::timeout(ATTEMPT_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs()))?
            .map_err(|e| crate::telemetry::logging::error_chain(&e))?;
        match res.status().is_success() {
            true => Ok(()),
            false => Err(format!("answered {}", res.status())),
        }
    }
}

/// `t=<unix>,sha256=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &[u8], t: u64, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, format!("{t}.{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2 shape: key "Jefe", data "<t>.<body>".
        let s = signature(b"Jefe", 1, "x");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        let hex = s.strip_prefix("t=1,sha256=").unwrap();
        let tag: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert!(ring::hmac::verify(&key, b"1.x", &tag).is_ok());
        assert!(ring::hmac::verify(&key, b"2.x", &tag).is_err());
    }
}
