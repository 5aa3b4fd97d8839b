//! Log output that never carries a sensitive value in clear (invariant 5).
//!
//! [`RedactingWriter`] wraps any [`tracing_subscriber::fmt::MakeWriter`] (stderr, a file, a
//! buffer) and passes every formatted log line through [`Redactor::redact_text`] before it
//! reaches the inner writer: card numbers, PINs and security codes, SSNs, passwords, tokens,
//! `Authorization` credentials, credentials in URLs, email addresses and phone numbers are
//! masked wherever they appear — in the message, in fields, in span fields, in error chains, in
//! a dependency's log line. Because it works on the finished line, it covers the text and the
//! JSON formats alike and does not depend on every call site remembering to redact.
//!
//! [`crate::init_tracing`] installs it for its subscriber; users who build their own subscriber
//! wrap their writer with [`redacting_writer`]:
//!
//! ```no_run
//! let subscriber = tracing_subscriber::fmt()
//!     .json()
//!     .with_writer(voxguard::logging::redacting_writer(std::io::stderr))
//!     .finish();
//! tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
//! ```
//!
//! How a line is cut: the fmt layer formats one event into a buffer and writes it with a single
//! `write_all` on a fresh writer from `make_writer()`. [`RedactedLine`] collects what it is
//! given and redacts everything up to the last newline as one piece (so an event spanning
//! several lines is redacted whole), keeping any unfinished tail until more arrives or the writer
//! is dropped. A secret therefore never straddles two redaction calls for one event.
//!
//! ANSI colour codes could sit between a field name and its value (`pin`, a style reset, `=4321`)
//! and hide the pair from the redactor, so lines are examined without them; a line that needed
//! masking is written without colours, every other line byte for byte as formatted.
//!
//! JSON lines stay JSON: where masking a bare value (`"pin":4321`) would break a line that was
//! valid JSON, that line is masked structurally instead (the value becomes a string; the keys of
//! such a line come out sorted).
//!
//! Lines are bounded: one longer than [`MAX_LOG_LINE`] (16 KiB) is cut at the cap before it is
//! redacted and ends with ` …[truncated N bytes]`, so no event makes the redactor read more.
//! Request fields are capped earlier, where they are logged ([`Redactor::redact_bounded`]).
//!
//! Panics are the one common path around `tracing`: std's default hook prints the panic message
//! straight to stderr. [`crate::init_tracing`] therefore installs a panic hook that logs the
//! message through `tracing` (target `panic`, level error), so it is redacted like every other
//! line; when the log filter leaves that target out, it writes the redacted message to stderr
//! itself.

mod access_format;

use std::borrow::Cow;
use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;
use voxguard_guard::redact::{truncation_marker, MAX_LOG_LINE};
use voxguard_guard::Redactor;

pub use access_format::{TextFormat, ACCESS_FIELDS};

/// Wrap `inner` so every line written through it is redacted first.
///
/// Use it as the writer of a `tracing_subscriber` fmt layer, in any format:
/// `tracing_subscriber::fmt().with_writer(redacting_writer(std::io::stderr))`. Lines that
/// contain nothing sensitive are written unchanged; see the [module docs](self) for what is
/// masked and how lines are cut.
pub fn redacting_writer<W: for<'a> MakeWriter<'a>>(inner: W) -> RedactingWriter<W> {
    RedactingWriter::new(inner)
}

/// A [`MakeWriter`] whose writers redact each line before passing it to the inner writer.
///
/// Built by [`redacting_writer`]; [`RedactingWriter::with_redactor`] swaps in a redactor with
/// extra sensitive field names.
#[derive(Debug, Clone)]
pub struct RedactingWriter<W> {
    inner: W,
    redactor: Redactor,
}

impl<W> RedactingWriter<W> {
    /// Wrap `inner` with the default [`Redactor`].
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            redactor: Redactor::new(),
        }
    }

    /// Use `redactor` instead of the default one (e.g. one built with
    /// [`Redactor::with_sensitive_fields`]).
    pub fn with_redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// The wrapped writer.
    pub fn inner(&self) -> &W {
        &self.inner
    }
}

impl<'a, W: MakeWriter<'a>> MakeWriter<'a> for RedactingWriter<W> {
    type Writer = RedactedLine<'a, W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactedLine::new(self.inner.make_writer(), &self.redactor)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactedLine::new(self.inner.make_writer_for(meta), &self.redactor)
    }
}

/// The writer a [`RedactingWriter`] hands out for one event: it buffers what it is given and
/// writes each completed line (and, when dropped, the unfinished rest) redacted.
///
/// [`Write::flush`] writes out completed lines and flushes the inner writer, but keeps an
/// unfinished line: half a line could split a secret from the context that identifies it.
pub struct RedactedLine<'a, W: Write> {
    inner: W,
    redactor: &'a Redactor,
    pending: Vec<u8>,
}

impl<'a, W: Write> RedactedLine<'a, W> {
    /// A writer that redacts with `redactor` and writes to `inner`.
    pub fn new(inner: W, redactor: &'a Redactor) -> Self {
        Self {
            inner,
            redactor,
            pending: Vec::new(),
        }
    }

    /// Redact and write the pending bytes up to and including the last newline.
    fn write_completed(&mut self) -> io::Result<()> {
        let Some(last) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let rest = self.pending.split_off(last + 1);
        let lines = std::mem::replace(&mut self.pending, rest);
        write_redacted(&mut self.inner, self.redactor, &lines)
    }
}

impl<W: Write> Write for RedactedLine<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if buf.contains(&b'\n') {
            self.write_completed()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_completed()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactedLine<'_, W> {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            let _ = write_redacted(&mut self.inner, self.redactor, &rest);
        }
        let _ = self.inner.flush();
    }
}

impl<W: Write> std::fmt::Debug for RedactedLine<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pending bytes are not redacted yet: never show them.
        f.debug_struct("RedactedLine")
            .field("pending_bytes", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// Write `bytes` to `out` as they are if they hold nothing sensitive, redacted otherwise.
///
/// A line (or multi-line event) longer than [`MAX_LOG_LINE`] bytes is cut at the cap *before*
/// redaction, redacted as text, and ends with the truncation marker: one event never makes the
/// redactor read more than the cap (such a JSON line is no longer JSON).
fn write_redacted(out: &mut impl Write, redactor: &Redactor, bytes: &[u8]) -> io::Result<()> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.len() > MAX_LOG_LINE {
        let text = String::from_utf8_lossy(&body[..MAX_LOG_LINE + 1]);
        let (kept, _) = voxguard_guard::redact::clip(&text, MAX_LOG_LINE);
        let mut line = redactor.redact_text(&strip_ansi(kept)).into_owned();
        line.push_str(&truncation_marker(body.len() - kept.len()));
        line.push_str(if body.len() < bytes.len() { "\n" } else { "" });
        return out.write_all(line.as_bytes());
    }
    let text = String::from_utf8_lossy(bytes);
    let plain = strip_ansi(&text);
    match redact(redactor, &plain) {
        Cow::Borrowed(_) => out.write_all(bytes),
        Cow::Owned(redacted) => out.write_all(redacted.as_bytes()),
    }
}

/// Redact one or more formatted lines; borrowed when there is nothing to mask.
///
/// JSON lines stay JSON: text redaction can turn a bare number into a mask (`"pin":4321` →
/// `"pin":[REDACTED]`), so when it breaks a line that was valid JSON, that line is masked
/// structurally instead ([`Redactor::redact_json`], which replaces the value with a string), and
/// the result is read by the text redactor once more so that nothing it would have caught in the
/// raw line (e.g. a secret after a context word in a key) is missed. Object keys come out in
/// sorted order on such a line (the only visible difference).
fn redact<'t>(redactor: &Redactor, plain: &'t str) -> Cow<'t, str> {
    let redacted = redactor.redact_text(plain);
    let Cow::Owned(text) = &redacted else {
        return redacted;
    };
    if !plain.trim_start().starts_with('{') || is_json_lines(text) || !is_json_lines(plain) {
        return redacted;
    }
    let mut out = String::with_capacity(plain.len());
    for line in plain.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        match serde_json::from_str::<serde_json::Value>(body) {
            Ok(mut value) => {
                redactor.redact_json(&mut value);
                mask_numbers(redactor, &mut value);
                out.push_str(&redactor.redact_text(&value.to_string()));
            }
            Err(_) => out.push_str(&redactor.redact_text(body)),
        }
        out.push_str(&line[body.len()..]);
    }
    Cow::Owned(out)
}

/// Replace every JSON number whose text the redactor would mask (e.g. a float whose digits form
/// a Luhn-valid run) with the masked text as a string, so the text pass has nothing left to
/// break. [`Redactor::redact_json`] only looks at integers.
fn mask_numbers(redactor: &Redactor, value: &mut serde_json::Value) {
    use serde_json::Value;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Number(n) => {
                if let Cow::Owned(masked) = redactor.redact_text(&n.to_string()) {
                    *value = Value::String(masked);
                }
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            Value::Object(map) => stack.extend(map.values_mut()),
            Value::String(_) | Value::Bool(_) | Value::Null => {}
        }
    }
}

/// Whether every non-blank line of `text` is a JSON value.
fn is_json_lines(text: &str) -> bool {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .all(|line| serde_json::from_str::<serde::de::IgnoredAny>(line).is_ok())
}

/// `text` without ANSI escape sequences (CSI sequences such as colours, and two-byte escapes).
fn strip_ansi(text: &str) -> Cow<'_, str> {
    const ESC: char = '\u{1b}';
    if !text.contains(ESC) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != ESC {
            out.push(c);
            continue;
        }
        // CSI: parameter and intermediate bytes, then one final byte in `@`..=`~`. Any other
        // escape: ESC and the one character after it.
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    Cow::Owned(out)
}

/// The target of the access log's one line per request (`voxguard_server`'s response layer).
pub const ACCESS_TARGET: &str = "voxguard::access";

/// How often batched access lines are written out when no batch filled up first.
pub const DEFAULT_LOG_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

/// A batch of access lines is written out once it holds this many bytes.
const BATCH_BYTES: usize = 32 * 1024;

/// Stderr, with the access log's lines written in batches.
///
/// Every `INFO` line of [`ACCESS_TARGET`] is appended to one process-wide buffer, written out
/// when it holds 32 KiB, every `flush_every` (a background thread), at the end of
/// [`Running::serve`](crate::Running::serve) and before any other line: one `write`
/// system call for many requests instead of one each (BENCHMARKS.md, issue 13). Every other
/// line — warnings, security events, errors, panics — is written at once, after whatever is
/// buffered, so lines keep their order. An access line is therefore on stderr at most
/// `flush_every` after its request (`VOXGUARD_LOG_FLUSH_MS`; `0` writes each line at once),
/// and a process killed with `SIGKILL` loses at most that much of its access log; the audit
/// trail, not the log, is the durable record.
#[derive(Debug, Clone)]
pub struct BatchedStderr {
    batched: bool,
}

impl BatchedStderr {
    /// Access lines batched and written out at least every `flush_every`; `Duration::ZERO`
    /// writes every line at once. The first batching writer starts the flushing thread; its
    /// period is the one that stays.
    pub fn new(flush_every: std::time::Duration) -> Self {
        if flush_every.is_zero() {
            return Self { batched: false };
        }
        ACCESS_FLUSHER.get_or_init(|| {
            let started = std::thread::Builder::new()
                .name("voxguard-log-flush".into())
                .spawn(move || loop {
                    std::thread::sleep(flush_every);
                    flush_access_log();
                });
            started.is_ok()
        });
        Self {
            batched: ACCESS_FLUSHER.get() == Some(&true),
        }
    }
}

/// Whether the flushing thread runs (set once).
static ACCESS_FLUSHER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Access lines not yet written, and stderr.
static ACCESS_BATCH: LineBatch<StderrOut> = LineBatch::new(StderrOut);

/// Write out the access lines batched so far (see [`BatchedStderr`]).
pub fn flush_access_log() {
    let _ = ACCESS_BATCH.flush();
}

/// The process's stderr as a [`Write`] that can live in a `static`.
struct StderrOut;

impl Write for StderrOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stderr().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Lines collected for one output, written out in batches; lines that may not wait go out
/// at once, after everything collected before them.
struct LineBatch<W> {
    state: std::sync::Mutex<(Vec<u8>, W)>,
}

impl<W: Write> LineBatch<W> {
    const fn new(out: W) -> Self {
        Self {
            state: std::sync::Mutex::new((Vec::new(), out)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<u8>, W)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Collect `line`; write the batch out once it holds [`BATCH_BYTES`].
    fn batched(&self, line: &[u8]) -> io::Result<()> {
        let mut state = self.lock();
        state.0.extend_from_slice(line);
        if state.0.len() >= BATCH_BYTES {
            return Self::write_out(&mut state);
        }
        Ok(())
    }

    /// Write the batch, then `line`.
    fn direct(&self, line: &[u8]) -> io::Result<()> {
        let mut state = self.lock();
        let written = Self::write_out(&mut state);
        state.1.write_all(line)?;
        written
    }

    /// Write the batch out.
    fn flush(&self) -> io::Result<()> {
        Self::write_out(&mut self.lock())
    }

    /// Write the batch and empty it (also when the write fails: the output is gone, and a
    /// batch that cannot be written must not grow without bound).
    fn write_out(state: &mut (Vec<u8>, W)) -> io::Result<()> {
        let (pending, out) = state;
        if pending.is_empty() {
            return Ok(());
        }
        let written = out.write_all(pending);
        pending.clear();
        written
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = BatchedLine;

    fn make_writer(&'a self) -> Self::Writer {
        BatchedLine { batched: false }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        BatchedLine {
            batched: self.batched
                && meta.target() == ACCESS_TARGET
                && *meta.level() == tracing::Level::INFO,
        }
    }
}

/// The writer [`BatchedStderr`] hands out for one line.
#[derive(Debug)]
pub struct BatchedLine {
    batched: bool,
}

impl Write for BatchedLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.batched {
            ACCESS_BATCH.batched(buf)?;
        } else {
            // Whatever is batched was logged before this line.
            ACCESS_BATCH.direct(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // A batched line is written with its batch; only a direct one flushes.
        if self.batched {
            return Ok(());
        }
        io::stderr().flush()
    }
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>")
}

/// Replace std's panic hook (which prints the message straight to stderr) with [`panic_hook`]
/// writing to stderr when `tracing` cannot take the message.
pub(crate) fn install_panic_hook() {
    std::panic::set_hook(panic_hook(io::stderr));
}

/// A panic hook that logs the panic through `tracing` (target `panic`, level error), so the
/// installed subscriber's [`RedactingWriter`] masks it. If that event would not be logged — no
/// subscriber, a filter that leaves out the `panic` target, or a panic inside the logging
/// machinery itself — the message is redacted here and written to `fallback()` instead: a
/// panic is never silently lost, and never printed in clear.
fn panic_hook<W: Write>(
    fallback: impl Fn() -> W + Send + Sync + 'static,
) -> Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync + 'static> {
    Box::new(move |info| {
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("<unnamed>");
        let message = panic_message(info.payload());
        let location = info.location().map(ToString::to_string).unwrap_or_default();
        let backtrace = std::backtrace::Backtrace::capture();
        let captured = backtrace.status() == std::backtrace::BacktraceStatus::Captured;
        if tracing::enabled!(target: "panic", tracing::Level::ERROR) {
            if captured {
                tracing::error!(target: "panic", thread, location, %backtrace, "thread '{thread}' panicked at {location}: {message}");
            } else {
                tracing::error!(target: "panic", thread, location, "thread '{thread}' panicked at {location}: {message}");
            }
        } else {
            let mut text = format!("thread '{thread}' panicked at {location}:\n{message}\n");
            if captured {
                text.push_str(&format!("{backtrace}\n"));
            }
            let _ = write_redacted(&mut fallback(), &Redactor::new(), text.as_bytes());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// An in-memory log sink.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Buffer {
        fn contents(&self) -> String {
            let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
            String::from_utf8(bytes).expect("log output is UTF-8")
        }
    }

    struct BufferWriter(Arc<Mutex<Vec<u8>>>);

    impl Write for BufferWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = BufferWriter;

        fn make_writer(&'a self) -> Self::Writer {
            BufferWriter(self.0.clone())
        }
    }

    /// Batched lines wait for a full batch or a flush; a line that may not wait goes out at
    /// once, after everything batched before it, so the output keeps the order of the calls.
    #[test]
    fn batched_lines_wait_and_direct_lines_keep_their_order() {
        let out = Buffer::default();
        let batch = LineBatch::new(BufferWriter(out.0.clone()));
        batch.batched(b"access 1\n").unwrap();
        batch.batched(b"access 2\n").unwrap();
        assert_eq!(out.contents(), "", "batched lines wait");
        batch.direct(b"WARN security\n").unwrap();
        assert_eq!(out.contents(), "access 1\naccess 2\nWARN security\n");
        batch.batched(b"access 3\n").unwrap();
        assert_eq!(out.contents(), "access 1\naccess 2\nWARN security\n");
        batch.flush().unwrap();
        assert!(out.contents().ends_with("WARN security\naccess 3\n"));
        batch.flush().unwrap();
        assert_eq!(
            out.contents().matches("access 3").count(),
            1,
            "written once"
        );
    }

    /// A batch is written out as soon as it holds `BATCH_BYTES`, without waiting for a flush.
    #[test]
    fn a_full_batch_is_written_at_once() {
        let out = Buffer::default();
        let batch = LineBatch::new(BufferWriter(out.0.clone()));
        let line = format!("{}\n", "a".repeat(99));
        for _ in 0..(BATCH_BYTES / line.len()) {
            batch.batched(line.as_bytes()).unwrap();
        }
        assert_eq!(out.contents(), "");
        batch.batched(line.as_bytes()).unwrap();
        let written = out.contents();
        assert!(written.len() >= BATCH_BYTES, "{}", written.len());
        assert!(written.ends_with(&line));
    }

    /// Only the access log's INFO lines are batched; warnings on that target, and every other
    /// target, are written at once; with a period of zero nothing is batched.
    #[test]
    fn only_access_lines_are_batched() {
        use tracing::callsite::Identifier;
        use tracing::metadata::{Kind, Metadata};
        use tracing::Level;
        struct Site;
        impl tracing::Callsite for Site {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unreachable!()
            }
        }
        static SITE: Site = Site;
        let meta = |target: &'static str, level: Level| {
            Metadata::new(
                "event",
                target,
                level,
                None,
                None,
                None,
                tracing::field::FieldSet::new(&[], Identifier(&SITE)),
                Kind::EVENT,
            )
        };
        let writer = BatchedStderr::new(DEFAULT_LOG_FLUSH);
        assert!(writer.batched, "the flushing thread starts");
        assert!(
            writer
                .make_writer_for(&meta(ACCESS_TARGET, Level::INFO))
                .batched
        );
        for (target, level) in [
            (ACCESS_TARGET, Level::WARN),
            ("voxguard::security", Level::INFO),
            ("voxguard::security", Level::WARN),
            ("panic", Level::ERROR),
        ] {
            assert!(!writer.make_writer_for(&meta(target, level)).batched);
        }
        assert!(!writer.make_writer().batched);
        let unbatched = BatchedStderr::new(std::time::Duration::ZERO);
        assert!(
            !unbatched
                .make_writer_for(&meta(ACCESS_TARGET, Level::INFO))
                .batched
        );
    }

    /// The panic hook is process-wide: tests that replace it take turns.
    static PANIC_HOOK: Mutex<()> = Mutex::new(());

    const CARD: &str = "4111111111111111";
    const CARD_SPACED: &str = "4111 1111 1111 1111";
    const BASIC: &str = "dXNlcjpwYXNz";
    const URL_PASSWORD: &str = "hunter2secret";
    const EMAIL_LOCAL: &str = "jane.doe";

    /// Every way a secret can reach a log call: in the message and in fields.
    fn log_secrets() {
        tracing::info!("paying with card {CARD} and pin=4321");
        tracing::info!("caller said: my card is {CARD_SPACED}, pin 4321");
        tracing::warn!("request header Authorization: Basic {BASIC}");
        tracing::info!("fetching https://agent:{URL_PASSWORD}@bank.example.com/swaig");
        tracing::info!("contact {EMAIL_LOCAL}@example.com");
        tracing::info!(
            pin = "4321",
            card_number = CARD,
            card = %CARD_SPACED,
            authorization = %format!("Basic {BASIC}"),
            url = %format!("https://agent:{URL_PASSWORD}@bank.example.com/"),
            email = %format!("{EMAIL_LOCAL}@example.com"),
            "fields"
        );
        tracing::info!(pin = 4321, "numeric pin");
        let args = std::collections::BTreeMap::from([
            ("pin", "4321".to_string()),
            ("note", format!("card {CARD}")),
        ]);
        tracing::info!(?args, "debug fields");
        tracing::info!(args = %serde_json::json!({"pin": "4321"}), "display fields");
        let span = tracing::info_span!("call", header = %format!("Basic {BASIC}"));
        span.in_scope(|| tracing::info!(amount = "$150.00", "Your balance is $150.00."));
        tracing::info!("order ORD-12345 ships at 10:30");
    }

    /// `out` without its timestamps, whose fractional seconds can spell any digits
    /// (`…T17:47:42.654321Z` holds the test's PIN).
    fn untimed(out: &str) -> String {
        let timestamp = |token: &str| {
            let token = token.trim_end_matches(['"', ' ']);
            let bytes = token.as_bytes();
            token.len() >= 20 && token.ends_with('Z') && bytes[4] == b'-' && bytes[10] == b'T'
        };
        out.split_inclusive(['"', ' '])
            .filter(|token| !timestamp(token))
            .collect()
    }

    fn assert_clean(out: &str) {
        assert!(!out.is_empty());
        let untimed = untimed(out);
        for secret in [
            CARD,
            CARD_SPACED,
            "4321",
            BASIC,
            URL_PASSWORD,
            EMAIL_LOCAL,
            "1111 1111 1111",
        ] {
            assert!(!untimed.contains(secret), "{secret:?} survived in:\n{out}");
        }
        for kept in [
            "Your balance is $150.00.",
            "order ORD-12345 ships at 10:30",
            "paying with card",
            "numeric pin",
            "@bank.example.com",
            "@example.com",
        ] {
            assert!(out.contains(kept), "{kept:?} is missing from:\n{out}");
        }
        assert!(out.contains("****1111"), "{out}");
    }

    #[test]
    fn text_format_is_redacted() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(redacting_writer(buffer.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, log_secrets);
        let out = buffer.contents();
        assert_clean(&out);
        assert_eq!(out.lines().count(), 11, "one line per event:\n{out}");
    }

    #[test]
    fn text_format_with_colours_is_redacted() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(true)
            .with_writer(redacting_writer(buffer.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, log_secrets);
        let out = buffer.contents();
        assert_clean(&strip_ansi(&out));
        // Lines without secrets keep their colours.
        let kept = out
            .lines()
            .find(|line| line.contains("ORD-12345"))
            .expect("line");
        assert!(kept.contains('\u{1b}'), "{kept:?}");
    }

    #[test]
    fn json_format_is_redacted() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(redacting_writer(buffer.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, log_secrets);
        let out = buffer.contents();
        assert_clean(&out);
        // Still one valid JSON object per line.
        for line in out.lines() {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(value["fields"].is_object(), "{line}");
        }
        assert_eq!(out.lines().count(), 11, "{out}");
        assert!(out.contains(r#""pin":"[REDACTED]""#), "{out}");
    }

    #[test]
    fn json_lines_stay_valid_json() {
        let redactor = Redactor::new();
        let line = "{\"fields\":{\"message\":\"pin=4321 $150.00\",\"pin\":4321,\"n\":4111111111111111,\"f\":0.4111111111111111,\"social\":\"ssn 123-45-6789\"}}\n";
        let out = redact(&redactor, line);
        assert!(out.ends_with('\n'), "{out}");
        let value: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(value["fields"]["pin"], "[REDACTED]", "{out}");
        assert_eq!(value["fields"]["n"], "****1111", "{out}");
        assert_eq!(value["fields"]["f"], "****1111", "{out}");
        assert_eq!(
            value["fields"]["message"], "pin=[REDACTED] $150.00",
            "{out}"
        );
        assert!(!out.contains("4321") && !out.contains("123-45"), "{out}");
        // Nothing to mask: the very same text; plain text is not parsed as JSON.
        assert!(matches!(redact(&redactor, "{\"a\":1}\n"), Cow::Borrowed(_)));
        assert_eq!(redact(&redactor, "{pin=4321"), "{pin=[REDACTED]");
    }

    #[test]
    fn lines_are_redacted_whole_however_they_are_written() {
        let buffer = Buffer::default();
        let writer = redacting_writer(buffer.clone());
        {
            let mut line = writer.make_writer();
            // A secret split across writes, and a flush half-way through it.
            line.write_all(b"first pin=43").expect("write");
            line.flush().expect("flush");
            assert_eq!(buffer.contents(), "", "half a line is held back");
            line.write_all(b"21 done\nsecond card 4111 1111 ")
                .expect("write");
            assert_eq!(buffer.contents(), "first pin=[REDACTED] done\n");
            line.write_all(b"1111 1111").expect("write");
        }
        assert_eq!(
            buffer.contents(),
            "first pin=[REDACTED] done\nsecond card ****1111"
        );
        // A multi-line event is redacted as one piece: the context on one line covers the
        // value on the next.
        let buffer = Buffer::default();
        let writer = redacting_writer(buffer.clone());
        writer
            .make_writer()
            .write_all(b"ok $150.00\nAuthorization: Basic dXNlcjpwYXNz\n")
            .expect("write");
        assert_eq!(
            buffer.contents(),
            "ok $150.00\nAuthorization: Basic [REDACTED]\n"
        );
    }

    #[test]
    fn custom_sensitive_fields() {
        let buffer = Buffer::default();
        let writer = redacting_writer(buffer.clone())
            .with_redactor(Redactor::new().with_sensitive_fields(["member_id"]));
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(writer)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(member_id = "M-778899", "lookup");
        });
        let out = buffer.contents();
        assert!(!out.contains("M-778899"), "{out}");
        assert!(out.contains("lookup"), "{out}");
    }

    #[test]
    fn ansi_is_stripped_for_inspection() {
        assert!(matches!(strip_ansi("plain"), Cow::Borrowed("plain")));
        assert_eq!(
            strip_ansi("\u{1b}[3mpin\u{1b}[0m\u{1b}[2m=\u{1b}[0m4321 \u{1b}7x"),
            "pin=4321 x"
        );
        assert_eq!(strip_ansi("dangling \u{1b}[3"), "dangling ");
    }

    #[test]
    fn panics_are_logged_through_tracing_and_redacted() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(redacting_writer(buffer.clone()))
            .finish();
        let _turn = PANIC_HOOK.lock().unwrap_or_else(|e| e.into_inner());
        let previous = std::panic::take_hook();
        install_panic_hook();
        let result = tracing::subscriber::with_default(subscriber, || {
            std::panic::catch_unwind(|| {
                panic!("could not charge card {CARD} for pin=4321");
            })
        });
        std::panic::set_hook(previous);
        assert!(result.is_err());
        let out = buffer.contents();
        assert!(out.contains("panicked at"), "{out}");
        assert!(out.contains("could not charge card ****1111"), "{out}");
        assert!(!out.contains(CARD) && !out.contains("4321"), "{out}");
    }

    #[test]
    fn panics_the_log_filter_leaves_out_are_written_redacted_to_the_fallback() {
        let log = Buffer::default();
        let fallback = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::level_filters::LevelFilter::OFF)
            .with_writer(redacting_writer(log.clone()))
            .finish();
        let _turn = PANIC_HOOK.lock().unwrap_or_else(|e| e.into_inner());
        let previous = std::panic::take_hook();
        let sink = fallback.clone();
        std::panic::set_hook(panic_hook(move || sink.make_writer()));
        let result = tracing::subscriber::with_default(subscriber, || {
            std::panic::catch_unwind(|| {
                panic!("password=hunter2 rejected for card {CARD_SPACED}");
            })
        });
        std::panic::set_hook(previous);
        assert!(result.is_err());
        assert_eq!(log.contents(), "");
        let out = fallback.contents();
        assert!(out.contains("panicked at"), "{out}");
        assert!(
            out.contains("password=[REDACTED] rejected for card ****1111"),
            "{out}"
        );
        assert!(!out.contains("hunter2"), "{out}");
    }

    #[test]
    fn long_lines_are_cut_before_redaction_and_marked() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(redacting_writer(buffer.clone()))
            .finish();
        let path = "/pin:4321".repeat(60 * 1024 / 9);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(path = %path, "refused");
            tracing::info!("short line after it");
        });
        let out = buffer.contents();
        let mut lines = out.lines();
        let long = lines.next().expect("the long line");
        assert!(long.len() < MAX_LOG_LINE + 40, "{}", long.len());
        assert!(
            long.contains("…[truncated ") && long.ends_with(" bytes]"),
            "{long}"
        );
        assert!(!long.contains("4321"), "{long}");
        assert!(lines
            .next()
            .is_some_and(|l| l.ends_with("short line after it")));
    }

    #[test]
    fn panic_payloads() {
        let literal: Box<dyn std::any::Any + Send> = Box::new("static text");
        assert_eq!(panic_message(literal.as_ref()), "static text");
        let formatted: Box<dyn std::any::Any + Send> = Box::new(String::from("formatted 1"));
        assert_eq!(panic_message(formatted.as_ref()), "formatted 1");
        let other: Box<dyn std::any::Any + Send> = Box::new(7_u8);
        assert_eq!(panic_message(other.as_ref()), "Box<dyn Any>");
    }
}
