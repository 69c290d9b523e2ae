//! tracing setup: the access log as bare lines on stdout (JSON or pretty),
//! everything else on stderr in the same format (pretty is coloured only
//! when stderr is a terminal). The format follows the config across
//! reloads unless `--log-format` fixed it.

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{filter, reload, Layer};

use crate::config::LogFormat;
use crate::telemetry::access_log;

/// The `--log-format` flag, which wins over every version of the config.
static FORCED: OnceLock<LogFormat> = OnceLock::new();
/// Switches the stderr layer's format (set by `init`; a reload calls it).
static SWITCH: OnceLock<Box<dyn Fn(LogFormat) + Send + Sync>> = OnceLock::new();

/// Sets up logging in the format the config asks for, unless `forced`.
pub fn init(config: LogFormat, forced: Option<LogFormat>) {
    if let Some(f) = forced {
        let _ = FORCED.set(f);
    }
    let access = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stdout)
        .event_format(MessageOnly)
        .with_filter(filter::filter_fn(|m| m.target() == access_log::TARGET));
    // Filters stay outside the swappable part: tracing cannot swap a filtered layer.
    let (app, handle) = reload::Layer::new(diagnostics(effective(config)));
    let not_access = filter::filter_fn(|m| m.target() != access_log::TARGET);
    let app = app
        .with_filter(not_access)
        .with_filter(filter::LevelFilter::from_level(Level::INFO));
    let subscriber = tracing_subscriber::registry().with(access).with(app);
    // A second init (tests) keeps the first subscriber.
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        let _ = SWITCH.set(Box::new(move |format| {
            let _ = handle.reload(diagnostics(format));
        }));
    }
}

/// The format in force for a config asking for `config`.
pub fn effective(config: LogFormat) -> LogFormat {
    FORCED.get().copied().unwrap_or(config)
}

/// Switches the diagnostic log to `format` (after a reload).
pub fn set_format(format: LogFormat) {
    if let Some(switch) = SWITCH.get() {
        switch(format);
    }
}

/// The stderr log's formatter (its filters are added around it).
fn diagnostics<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colour())
            .boxed(),
    }
}

/// Colour only for a person at a terminal: escape codes in a redirected
/// file or a log collector are noise, and split `key=value` for grep.
/// `NO_COLOR` (no-color.org) turns it off at a terminal too, as
/// tracing-subscriber's own default does.
fn colour() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stderr().is_terminal() && !no_color
}

/// Writes only an event's message: access records are formatted already.
struct MessageOnly;

impl<S, N> FormatEvent<S, N> for MessageOnly
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        struct Message<'w, 'a>(&'w mut Writer<'a>, fmt::Result);
        impl Visit for Message<'_, '_> {
            fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
                if field.name() == "message" {
                    self.1 = write!(self.0, "{value:?}");
                }
            }
        }
        let mut visitor = Message(&mut w, Ok(()));
        event.record(&mut visitor);
        visitor.1?;
        writeln!(w)
    }
}

/// An error and its causes, outermost first, joined by `: `.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
