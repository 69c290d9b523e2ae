//! One record per request, taken once, when its response body is done (so
//! `bytes_out` and the duration are final): the request metrics, and the
//! access-log line unless `log.access` is off. Never holds a secret: no
//! headers, no query string, no body.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{HeaderValue, Method};

use crate::body::{OnComplete, RequestStats};
use crate::config::LogFormat;
use crate::metrics::Metrics;

/// The tracing target that the access-log layer writes to stdout.
pub const TARGET: &str = "access";

pub struct RequestRecord {
    pub metrics: Arc<Metrics>,
    /// The access log's format and the request's wall-clock start; `None`
    /// when the access log is off.
    pub log: Option<(LogFormat, SystemTime)>,
    pub start: Instant,
    pub request_id: HeaderValue,
    pub client: SocketAddr,
    pub method: Method,
    pub path: String,
    pub route: Option<Arc<str>>,
    pub status: u16,
    pub upstream: Option<Arc<str>>,
    pub principal: Option<Arc<str>>,
    pub stats: Arc<RequestStats>,
}

impl OnComplete for RequestRecord {
    fn complete(self: Box<Self>, bytes_out: u64) {
        let took = self.start.elapsed();
        let route = self.route.as_deref().unwrap_or("");
        self.metrics.request(route, &self.method, self.status, took);
        if let Some((format, time)) = self.log {
            write(&self, format, time, took.as_secs_f64() * 1000.0, bytes_out);
        }
    }
}

fn write(r: &RequestRecord, format: LogFormat, time: SystemTime, duration_ms: f64, bytes_out: u64) {
    let bytes_in = r.stats.bytes_in.load(Ordering::Relaxed);
    let line = match format {
        LogFormat::Json => serde_json::json!({
            "time": humantime::format_rfc3339_millis(time).to_string(),
            "request_id": r.request_id.to_str().unwrap_or_default(),
            "client": r.client.to_string(),
            "method": r.method.as_str(),
            "path": r.path,
            "route": r.route.as_deref(),
            "status": r.status,
            "duration_ms": (duration_ms * 1000.0).round() / 1000.0,
            "upstream": r.upstream.as_deref(),
            "principal": r.principal.as_deref(),
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
        })
        .to_string(),
        LogFormat::Pretty => format!(
            "{} {} {} {} {:.2}ms route={} upstream={} principal={} in={} out={} id={}",
            r.client,
            r.method,
            r.path,
            r.status,
            duration_ms,
            r.route.as_deref().unwrap_or("-"),
            r.upstream.as_deref().unwrap_or("-"),
            r.principal.as_deref().unwrap_or("-"),
            bytes_in,
            bytes_out,
            r.request_id.to_str().unwrap_or_default(),
        ),
    };
    tracing::info!(target: TARGET, "{line}");
}
