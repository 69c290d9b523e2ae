//! The access log (docs/operations.md): one line per request on stdout, JSON or
//! pretty. It is handed plain values, never headers, the query string or a
//! body, so it cannot leak a secret.

use std::net::SocketAddr;
use std::time::SystemTime;

use crate::config::LogFormat;

/// The tracing target that the access-log layer writes to stdout.
pub const TARGET: &str = "access";

/// One request, as the log line tells it.
pub struct Line<'a> {
    /// When the request started (wall clock).
    pub time: SystemTime,
    pub request_id: &'a str,
    pub client: SocketAddr,
    pub method: &'a str,
    /// Normalised, without the query string.
    pub path: &'a str,
    pub route: Option<&'a str>,
    pub status: u16,
    pub duration_ms: f64,
    pub upstream: Option<&'a str>,
    pub principal: Option<&'a str>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

pub fn write(l: &Line, format: LogFormat) {
    let line = match format {
        LogFormat::Json => serde_json::json!({
            "time": humantime::format_rfc3339_millis(l.time).to_string(),
            "request_id": l.request_id,
            "client": l.client.to_string(),
            "method": l.method,
            "path": l.path,
            "route": l.route,
            "status": l.status,
            "duration_ms": (l.duration_ms * 1000.0).round() / 1000.0,
            "upstream": l.upstream,
            "principal": l.principal,
            "bytes_in": l.bytes_in,
            "bytes_out": l.bytes_out,
        })
        .to_string(),
        LogFormat::Pretty => format!(
            "{} {} {} {} {:.2}ms route={} upstream={} principal={} in={} out={} id={}",
            l.client,
            l.method,
            l.path,
            l.status,
            l.duration_ms,
            l.route.unwrap_or("-"),
            l.upstream.unwrap_or("-"),
            l.principal.unwrap_or("-"),
            l.bytes_in,
            l.bytes_out,
            l.request_id,
        ),
    };
    tracing::info!(target: TARGET, "{line}");
}
