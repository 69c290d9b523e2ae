//! tracing setup: the access log as bare lines on stdout (JSON or pretty),
//! everything else on stderr in the same format.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{filter, Layer};

use crate::config::LogFormat;
use crate::record;

pub fn init(format: LogFormat) {
    let access = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stdout)
        .event_format(MessageOnly)
        .with_filter(filter::filter_fn(|m| m.target() == record::TARGET));
    let not_access = filter::filter_fn(|m| m.target() != record::TARGET);
    let level = filter::LevelFilter::from_level(Level::INFO);
    let app: Box<dyn Layer<_> + Send + Sync> = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_filter(not_access)
            .with_filter(level)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(not_access)
            .with_filter(level)
            .boxed(),
    };
    let subscriber = tracing_subscriber::registry().with(access).with(app);
    // A second init (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);
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
