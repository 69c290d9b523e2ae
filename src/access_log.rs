//! One record per request, written once, when its response body is done
//! (so `bytes_out` and `duration_ms` are final). Never holds a secret: no
//! headers, no query string, no body.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{HeaderValue, Method};

use crate::body::{OnComplete, RequestStats};
use crate::config::LogFormat;

/// The tracing target that the access-log layer writes to stdout.
pub const TARGET: &str = "access";

pub struct AccessRecord {
    pub format: LogFormat,
    pub time: SystemTime,
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

impl OnComplete for AccessRecord {
    fn complete(self: Box<Self>, bytes_out: u64) {
        write(&self, bytes_out);
    }
}

pub fn write(r: &AccessRecord, bytes_out: u64) {
    let duration_ms = r.start.elapsed().as_secs_f64() * 1000.0;
    let bytes_in = r.stats.bytes_in.load(Ordering::Relaxed);
    let line = match r.format {
        LogFormat::Json => serde_json::json!({
            "time": humantime::format_rfc3339_millis(r.time).to_string(),
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
