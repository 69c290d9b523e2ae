//! The metric set of docs/operations.md, one registry per running gateway (tests
//! run several in one process), rendered in Prometheus text format by the
//! admin listener. Every label value comes from a bounded set, so no client
//! can grow the series count: unknown methods become `OTHER`, requests that
//! matched no route have `route=""`.

use std::time::Duration;

use http::Method;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Request durations, in seconds: fine below 10 ms, where proxied requests live.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How an upstream exchange failed, as the `kind` label says it.
#[derive(Debug, Clone, Copy)]
pub enum UpstreamErrorKind {
    Connect,
    Timeout,
    Reset,
    Protocol,
}

/// Why a client connection was closed at accept, as the `reason` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// `limits.max_connections` reached.
    Total,
    /// `limits.max_connections_per_ip` reached for the client's IP.
    PerIp,
}

/// What became of a password-reset delivery attempt, as `outcome` says it.
#[derive(Debug, Clone, Copy)]
pub enum ResetDelivery {
    /// The webhook answered 2xx.
    Delivered,
    /// One attempt failed (another may follow).
    Failed,
    /// The last attempt failed.
    GivenUp,
    /// Too many pending: not made at all.
    Dropped,
}

#[derive(Debug, Clone, Copy)]
pub enum SigninOutcome {
    Success,
    Failure,
    Throttled,
}

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    upstream_errors: IntCounterVec,
    connections_rejected: IntCounterVec,
    pub authorizer_cache_hits: IntCounter,
    pub authorizer_cache_misses: IntCounter,
    pub signups: IntCounter,
    signins: IntCounterVec,
    reloads: IntCounterVec,
    admin_requests: IntCounterVec,
    rate_limited: IntCounterVec,
    reset_deliveries: IntCounterVec,
    /// 1 while the user store answers; set by the admin listener at each scrape.
    pub store_up: IntGauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("a valid metric name");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let family = |name: &str, help: &str, labels: &[&str], values: &[&[&str]]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            // Known label values start at 0, so rates work from the first scrape.
            for v in values {
                c.with_label_values(v);
            }
            c
        };
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "gateway_request_duration_seconds",
                "Time from the request head to the end of the response body",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("a valid metric");
        registry
            .register(Box::new(duration.clone()))
            .expect("registered once");
        let store_up = IntGauge::new(
            "gateway_store_up",
            "1 while the user store can be reached (always 1 for redb), 0 while it cannot",
        )
        .expect("a valid metric name");
        registry
            .register(Box::new(store_up.clone()))
            .expect("registered once");
        Metrics {
            store_up,
            requests: family(
                "gateway_requests_total",
                "Requests answered, by route, method and status",
                &["route", "method", "status"],
                &[],
            ),
            duration,
            upstream_errors: family(
                "gateway_upstream_errors_total",
                "Upstream exchanges that failed before a response head, by kind",
                &["kind"],
                &[&["connect"], &["timeout"], &["reset"], &["protocol"]],
            ),
            connections_rejected: family(
                "gateway_connections_rejected_total",
                "Client connections closed at accept, by the cap they met",
                &["reason"],
                &[&["total"], &["per_ip"]],
            ),
            authorizer_cache_hits: counter(
                "gateway_authorizer_cache_hits_total",
                "Bearer tokens whose verified principal came from the cache",
            ),
            authorizer_cache_misses: counter(
                "gateway_authorizer_cache_misses_total",
                "Bearer tokens not found among cached principals",
            ),
            signups: counter("gateway_signups_total", "Users created by POST /signup"),
            signins: family(
                "gateway_signins_total",
                "POST /signin attempts, by outcome",
                &["outcome"],
                &[&["success"], &["failure"], &["throttled"]],
            ),
            reloads: family(
                "gateway_config_reloads_total",
                "Config reloads, by outcome",
                &["outcome"],
                &[&["success"], &["failure"]],
            ),
            admin_requests: family(
                "gateway_admin_requests_total",
                "Admin API requests, by action and status",
                &["action", "status"],
                &[],
            ),
            rate_limited: family(
                "gateway_rate_limited_total",
                "Requests refused with 429 by a rate-limit policy, by route and policy",
                &["route", "policy"],
                &[],
            ),
            reset_deliveries: family(
                "gateway_password_reset_deliveries_total",
                "Password-reset webhook deliveries, by outcome (failed counts attempts)",
                &["outcome"],
                &[&["delivered"], &["failed"], &["given_up"], &["dropped"]],
            ),
            registry,
        }
    }

    pub fn reset_delivery(&self, outcome: ResetDelivery) {
        let outcome = match outcome {
            ResetDelivery::Delivered => "delivered",
            ResetDelivery::Failed => "failed",
            ResetDelivery::GivenUp => "given_up",
            ResetDelivery::Dropped => "dropped",
        };
        self.reset_deliveries.with_label_values(&[outcome]).inc();
    }

    /// A request `policy` refused on `route`.
    pub fn rate_limited(&self, route: &str, policy: &str) {
        self.rate_limited.with_label_values(&[route, policy]).inc();
    }

    /// One admin API request (`action` is one of a fixed set of names).
    pub fn admin_request(&self, action: &str, status: u16) {
        let code = http::StatusCode::from_u16(status);
        let status = code.as_ref().map_or("000", |c| c.as_str());
        self.admin_requests
            .with_label_values(&[action, status])
            .inc();
    }

    /// One finished request; `route` is `""` when none matched.
    pub fn request(&self, route: &str, method: &Method, status: u16, took: Duration) {
        let code = http::StatusCode::from_u16(status);
        let status = code.as_ref().map_or("000", |c| c.as_str());
        self.requests
            .with_label_values(&[route, method_label(method), status])
            .inc();
        self.duration
            .with_label_values(&[route])
            .observe(took.as_secs_f64());
    }

    pub fn upstream_error(&self, kind: UpstreamErrorKind) {
        let kind = match kind {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Reset => "reset",
            UpstreamErrorKind::Protocol => "protocol",
        };
        self.upstream_errors.with_label_values(&[kind]).inc();
    }

    pub fn connection_rejected(&self, reason: RejectReason) {
        let reason = match reason {
            RejectReason::Total => "total",
            RejectReason::PerIp => "per_ip",
        };
        self.connections_rejected.with_label_values(&[reason]).inc();
    }

    pub fn signin(&self, outcome: SigninOutcome) {
        let outcome = match outcome {
            SigninOutcome::Success => "success",
            SigninOutcome::Failure => "failure",
            SigninOutcome::Throttled => "throttled",
        };
        self.signins.with_label_values(&[outcome]).inc();
    }

    pub fn reload(&self, ok: bool) {
        let outcome = if ok { "success" } else { "failure" };
        self.reloads.with_label_values(&[outcome]).inc();
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Writing to a Vec fails only on an invalid metric, which `new` rules out.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The standard methods by name; anything else is `OTHER` (a client choosing
/// methods must not be able to mint series).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_spec_set_with_known_labels_at_zero() {
        let m = Metrics::new();
        m.request("items", &Method::GET, 200, Duration::from_millis(3));
        m.request(
            "",
            &Method::from_bytes(b"BREW").unwrap(),
            404,
            Duration::ZERO,
        );
        let text = m.render();
        for line in [
            "# TYPE gateway_requests_total counter",
            r#"gateway_requests_total{method="GET",route="items",status="200"} 1"#,
            r#"gateway_requests_total{method="OTHER",route="",status="404"} 1"#,
            "# TYPE gateway_request_duration_seconds histogram",
            r#"gateway_request_duration_seconds_bucket{route="items",le="0.005"} 1"#,
            r#"gateway_request_duration_seconds_count{route="items"} 1"#,
            r#"gateway_upstream_errors_total{kind="reset"} 0"#,
            r#"gateway_connections_rejected_total{reason="per_ip"} 0"#,
            "gateway_authorizer_cache_hits_total 0",
            "gateway_authorizer_cache_misses_total 0",
            "gateway_signups_total 0",
            r#"gateway_signins_total{outcome="throttled"} 0"#,
            r#"gateway_config_reloads_total{outcome="failure"} 0"#,
            r#"gateway_password_reset_deliveries_total{outcome="given_up"} 0"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
