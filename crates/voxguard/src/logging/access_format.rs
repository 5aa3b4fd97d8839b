//! The text log format of [`crate::init_tracing`]: `tracing_subscriber`'s default ("full")
//! format, byte for byte, with the access log's one line per request written by a short path.
//!
//! This module owns [`TextFormat`]. The generic formatter spends most of an access line's
//! cost on machinery the line does not need (a `write!` per field name, per `=` and per value,
//! styles that are off, the date computed anew for every line); here the line is assembled in
//! one buffer, the date is computed once a second, and plain values are copied as they are.
//! Only the access line itself takes the short path: an event of [`ACCESS_TARGET`] with exactly
//! the access line's fields ([`ACCESS_FIELDS`]), no colours and no enclosing span. Anything else
//! — and an access line whose message holds a control character, or whose value fails to format
//! — is formatted by the generic formatter (after a short path that gave up, the values are
//! formatted a second time: the access line's own values are plain strings and numbers). It
//! must not change a line's text (unit tests compare both formatters on many events), and it
//! must not redact or write anything itself: every line, this one too, still goes through the
//! [`RedactingWriter`](super::RedactingWriter).

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Writer};
use tracing_subscriber::fmt::time::SystemTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent};
use tracing_subscriber::registry::LookupSpan;

use super::ACCESS_TARGET;

/// The fields of the access line (`voxguard_server`'s response layer logs them); an event of
/// [`ACCESS_TARGET`] with any other set is formatted by the generic formatter.
pub const ACCESS_FIELDS: [&str; 8] = [
    "message",
    "method",
    "path",
    "status",
    "duration_ms",
    "client",
    "request_id",
    "call_id",
];

/// `tracing_subscriber`'s full text format (what `tracing_subscriber::fmt()` writes by
/// default), with the lines of [`ACCESS_TARGET`] formatted without the generic machinery; the
/// text is the same.
#[derive(Debug, Default)]
pub struct TextFormat {
    full: Format<Full, SystemTime>,
}

impl<S> FormatEvent<S, DefaultFields> for TextFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, DefaultFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let fields = meta.fields();
        if meta.target() != ACCESS_TARGET
            || fields.len() != ACCESS_FIELDS.len()
            || !fields.iter().all(|f| ACCESS_FIELDS.contains(&f.name()))
            || writer.has_ansi_escapes()
            || ctx.event_scope().is_some()
        {
            return self.full.format_event(ctx, writer, event);
        }
        // One buffer per thread; a fresh one if it is taken (a value whose formatting logs).
        thread_local! {
            static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
        }
        let mut write = |line: &mut String| short_line(line, event).then(|| writer.write_str(line));
        let short = LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => write(&mut line),
            Err(_) => write(&mut String::new()),
        });
        match short {
            Some(written) => written,
            None => self.full.format_event(ctx, writer, event),
        }
    }
}

/// Write `event`'s whole line (newline included) into `line` as the full format would, or
/// return `false` when it holds something the short path leaves to the generic formatter.
fn short_line(line: &mut String, event: &Event<'_>) -> bool {
    line.clear();
    let Ok(since_epoch) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) else {
        return false;
    };
    write_timestamp(line, since_epoch.as_secs(), since_epoch.subsec_micros());
    line.push(' ');
    line.push_str(match *event.metadata().level() {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    });
    line.push(' ');
    line.push_str(event.metadata().target());
    line.push_str(": ");
    let mut fields = Fields {
        line,
        first: true,
        covered: true,
    };
    event.record(&mut fields);
    if !fields.covered {
        return false;
    }
    line.push('\n');
    #[cfg(test)]
    tests::SHORT_LINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    true
}

/// `2026-11-28T16:20:58.714819Z`, as `tracing_subscriber`'s `SystemTime` writes it; the part
/// up to the seconds is computed once per second and thread.
fn write_timestamp(line: &mut String, secs: u64, micros: u32) {
    thread_local! {
        static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    }
    let (cached, mut text) = SECOND.get();
    if cached != secs {
        let days = i64::try_from(secs / voxguard_guard::utc::DAY_SECS).unwrap_or(i64::MAX);
        let (year, month, day) = voxguard_guard::utc::civil_from_days(days);
        let of_day = secs % voxguard_guard::utc::DAY_SECS;
        let mut formatted = String::with_capacity(19);
        // Years past 9999 are written as the generic formatter does (`+10000`), not cached.
        if !(0..=9999).contains(&year) {
            let _ = write!(
                line,
                "+{year}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
                of_day / 3600,
                of_day / 60 % 60,
                of_day % 60
            );
            return;
        }
        let _ = write!(
            formatted,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60
        );
        text.copy_from_slice(formatted.as_bytes());
        SECOND.set((secs, text));
    }
    // Written from ASCII digits and separators only.
    line.push_str(std::str::from_utf8(&text).unwrap_or_default());
    line.push('.');
    let mut digits = [b'0'; 6];
    let mut rest = micros.min(999_999);
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    line.push_str(std::str::from_utf8(&digits).unwrap_or_default());
    line.push('Z');
}

/// The fields of one event as `tracing_subscriber`'s `DefaultFields` writes them without
/// colours: the message as it is, then `name=value` with each value's `Debug` text, separated
/// by spaces.
struct Fields<'a> {
    line: &'a mut String,
    first: bool,
    /// Cleared by anything this visitor leaves to the generic formatter.
    covered: bool,
}

impl Fields<'_> {
    /// Write the separator and `name=` for `field`; `false` for the message (no name). The
    /// names are [`ACCESS_FIELDS`], none of which the generic formatter treats specially.
    fn start(&mut self, field: &Field) -> bool {
        let name = field.name();
        if !self.first {
            self.line.push(' ');
        }
        self.first = false;
        if name == "message" {
            return false;
        }
        self.line.push_str(name);
        self.line.push('=');
        true
    }

    /// Write the message with `push`; one with a control character (which the generic
    /// formatter escapes) is not covered here.
    fn message(&mut self, push: impl FnOnce(&mut String) -> fmt::Result) {
        let at = self.line.len();
        self.covered &= push(self.line).is_ok();
        if self.line[at..].chars().any(char::is_control) {
            self.covered = false;
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.covered {
            return;
        }
        if !self.start(field) {
            self.message(|line| {
                line.push_str(value);
                Ok(())
            });
            return;
        }
        // `Debug` of a string: quoted, with escapes; printable ASCII without `"` or `\` needs
        // none.
        if value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            self.line.push('"');
            self.line.push_str(value);
            self.line.push('"');
        } else {
            self.covered &= write!(self.line, "{value:?}").is_ok();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.covered {
            return;
        }
        // A value that fails to format makes the generic formatter write its own line.
        if self.start(field) {
            self.covered &= write!(self.line, "{value:?}").is_ok();
        } else {
            // A message from `format_args!`.
            self.message(|line| write!(line, "{value:?}"));
        }
    }

    fn record_error(&mut self, _field: &Field, _value: &(dyn std::error::Error + 'static)) {
        // Written with its sources by the generic formatter.
        self.covered = false;
    }

    fn record_bytes(&mut self, _field: &Field, _value: &[u8]) {
        self.covered = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// Lines written by the short path.
    pub(super) static SHORT_LINES: AtomicUsize = AtomicUsize::new(0);

    /// Every line `emit` logs, formatted by `format`, without the timestamp.
    fn lines<F>(format: F, emit: &dyn Fn()) -> Vec<String>
    where
        F: FormatEvent<tracing_subscriber::Registry, DefaultFields> + Send + Sync + 'static,
    {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .event_format(format)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        // Each line without its timestamp (`2026-11-28T16:20:58.714819Z `, 28 bytes); the
        // continuation of a message with a line break has none.
        text.lines()
            .map(|line| {
                let stamped = line.len() > 28
                    && line.as_bytes()[27] == b' '
                    && line[..27].ends_with('Z')
                    && line.as_bytes()[10] == b'T';
                if stamped { &line[28..] } else { line }.to_owned()
            })
            .collect()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A value whose `Debug` writes part of itself, then fails.
    struct Failing;

    impl fmt::Debug for Failing {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("part")?;
            Err(fmt::Error)
        }
    }

    /// An access line as the response layer logs it, with `path`, `call_id` and `message`.
    fn access(path: &dyn fmt::Debug, call_id: Option<&str>, message: &str) {
        let client: std::net::SocketAddr = "127.0.0.1:53714".parse().unwrap();
        tracing::info!(
            target: "voxguard::access",
            method = %"POST",
            path = ?path,
            status = 200u16,
            duration_ms = %format_args!("{}.{:03}", 1, 222),
            client = %client,
            request_id = %"ytxunbxpdlwphnia",
            call_id = ?call_id.map(str::to_owned),
            "{message}"
        );
    }

    /// Lines the short path writes (22), then lines it leaves to the generic formatter (12).
    fn events() {
        for path in [
            "/fast/swaig",
            "/a \"quoted\" \\ path",
            "/caf\u{e9}/\u{1f600}",
            "/tab\there",
            "/\u{1b}[31mred",
            "/\u{9b}31mC1",
            "/\u{301}combining",
            "",
        ] {
            access(&path.to_owned(), Some("bench-1a222f59999-14-1"), "request");
            access(&path, None, "request");
        }
        access(&"/", None, "caf\u{e9} \u{1f600}");
        tracing::info!(target: "voxguard::access", message = "plain", method = "GET", path = "/",
            status = 404u64, duration_ms = 0.5f64, client = "::1", request_id = "r", call_id = false);
        tracing::warn!(target: "voxguard::access", method = %"POST", path = ?"/", status = 413u16,
            duration_ms = %"0.001", client = %"c", request_id = %"r", call_id = ?None::<String>, "request");
        tracing::error!(target: "voxguard::access", method = 1i64, path = -2i64, status = u128::MAX,
            duration_ms = 2.5f64, client = true, request_id = ?'x', call_id = ?(), "request {}", 7);
        tracing::debug!(target: "voxguard::access", method = "", path = "", status = 0u8,
            duration_ms = "", client = "", request_id = "", call_id = "", "request");
        tracing::trace!(target: "voxguard::access", method = "", path = "", status = 0u8,
            duration_ms = "", client = "", request_id = "", call_id = "", "request");

        // Left to the generic formatter: control characters in the message (C0, ESC, C1, a
        // line break), a value that fails to format, an explicit message with a tab, an error
        // value, another set of fields, another target, a span.
        access(&"/", None, "with \u{9b}31m C1");
        access(&"/", None, "\u{1b}[2J escape");
        access(&"/", None, "line\nbreak");
        access(&"/", None, "bell\u{7}");
        access(&Failing, None, "request");
        tracing::info!(target: "voxguard::access", message = "tab\there", method = "GET", path = "/",
            status = 404u64, duration_ms = 0.5f64, client = "::1", request_id = "r", call_id = false);
        tracing::info!(target: "voxguard::access", method = "GET", path = "/", status = 1u8,
            duration_ms = 1u8, client = "c", request_id = "r",
            call_id = &std::io::Error::other("boom") as &(dyn std::error::Error + 'static), "request");
        tracing::info!(target: "voxguard::access", "no fields");
        tracing::info!(target: "voxguard::access", only = 1u64);
        tracing::info!(target: "voxguard::access", method = "GET", path = "/", status = 1u8,
            duration_ms = 1u8, client = "c", request_id = "r", call_id = "x", extra = 1u8, "request");
        tracing::info!(target: "voxguard::other", method = "GET", path = "/", status = 1u8,
            duration_ms = 1u8, client = "c", request_id = "r", call_id = "x", "another target");
        let span = tracing::info_span!("call", id = 7);
        span.in_scope(|| access(&"/in/a/span", None, "request"));
    }

    #[test]
    fn writes_what_the_generic_formatter_writes() {
        let generic = lines(Format::<Full, SystemTime>::default(), &events);
        let before = SHORT_LINES.load(Ordering::Relaxed);
        let short = lines(TextFormat::default(), &events);
        assert_eq!(SHORT_LINES.load(Ordering::Relaxed) - before, 22);
        // 34 events, one of them on two lines.
        assert_eq!(generic.len(), 35, "{generic:#?}");
        assert_eq!(short, generic);
        assert_eq!(
            short[0],
            " INFO voxguard::access: request method=POST path=\"/fast/swaig\" status=200 \
             duration_ms=1.222 client=127.0.0.1:53714 request_id=ytxunbxpdlwphnia \
             call_id=Some(\"bench-1a222f59999-14-1\")"
        );
        // The generic formatter's own line for a value that fails to format.
        assert!(
            short
                .iter()
                .any(|l| l.starts_with("Unable to format the following event")),
            "{short:#?}"
        );
    }

    #[test]
    fn timestamps_match_the_generic_formatter() {
        use tracing_subscriber::fmt::time::FormatTime;
        // Both read the clock: retried until both fall in the same second.
        for _ in 0..100 {
            let mut generic = String::new();
            SystemTime
                .format_time(&mut Writer::new(&mut generic))
                .unwrap();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            let mut short = String::new();
            write_timestamp(&mut short, now.as_secs(), now.subsec_micros());
            if generic[..19] == short[..19] {
                assert_eq!(generic.len(), short.len(), "{generic} {short}");
                assert_eq!(&generic[19..20], ".");
                assert!(generic.ends_with('Z') && short.ends_with('Z'));
                return;
            }
        }
        panic!("the two clocks never agreed on the second");
    }

    #[test]
    fn timestamps_match_the_calendar() {
        for (secs, micros, want) in [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, 5, "2000-02-29T00:00:00.000005Z"),
            (1_795_881_658, 714_819, "2026-11-28T16:00:58.714819Z"),
            (1_795_881_659, 999_999, "2026-11-28T16:00:59.999999Z"),
            (253_402_300_799, 1, "9999-12-31T23:59:59.000001Z"),
            (253_402_300_800, 0, "+10000-01-01T00:00:00.000000Z"),
        ] {
            // Twice: computed, then from the per-second cache.
            for _ in 0..2 {
                let mut line = String::new();
                write_timestamp(&mut line, secs, micros);
                assert_eq!(line, want);
            }
        }
    }
}
