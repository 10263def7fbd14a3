//! Logs on stderr: text for people, JSON for machines, and under systemd
//! each line led by its syslog priority (`<3>` error … `<7>` debug), the
//! sd-daemon convention journald reads, so `journalctl -p err` finds
//! flexsync's errors.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, format};
use tracing_subscriber::registry::LookupSpan;

/// Sets up logging once; a second call (tests running the CLI twice) is
/// harmless.
pub fn init(json: bool, default_filter: &str, ansi: bool) {
    let journal = stderr_is_journal();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi && !journal)
        // Its own complaint about a closed stderr would go to that same
        // stderr through eprintln!, which panics.
        .log_internal_errors(false);
    let _ = if json {
        builder
            .fmt_fields(JsonFields::new())
            .event_format(Priority {
                inner: format().json(),
                on: journal,
            })
            .try_init()
    } else {
        builder
            .event_format(Priority {
                inner: format(),
                on: journal,
            })
            .try_init()
    };
}

/// systemd sets JOURNAL_STREAM to the device and inode of the stream it
/// connected; it is the journal only if stderr is still that stream (not a
/// pipe a child's caller set up).
fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    journal_matches(&value)
}

#[cfg(unix)]
fn journal_matches(value: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

#[cfg(not(unix))]
fn journal_matches(_: &str) -> bool {
    false
}

/// The syslog priority of a level.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Leads each line with `<N>` when logging to the journal.
struct Priority<T> {
    inner: Format<T>,
    on: bool,
}

impl<S, N, T> FormatEvent<S, N> for Priority<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    Format<T>: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.on {
            write!(writer, "<{}>", priority(event.metadata().level()))?;
        }
        self.inner.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
    }

    #[test]
    fn a_malformed_journal_stream_is_not_the_journal() {
        assert!(!journal_matches("nonsense"));
        assert!(!journal_matches("1:x"));
        assert!(!journal_matches("0:0"));
    }
}
