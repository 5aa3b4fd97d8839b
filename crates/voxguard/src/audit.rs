//! Where an audit event is written: [`Auditor::record`].
//!
//! Owns turning what the runtime decided (a refusal, a tool call and its outcome, a
//! verification, an emergency toggle, a refused login) into an [`AuditEvent`] — stamped by the
//! runtime's one clock, caller masked to its last four digits, arguments passed through the
//! redactor — and appending it to the configured [`AuditSink`] *before* the response that
//! depends on it is sent. Without a sink nothing is recorded (the security log line is still
//! written by the caller). Anomalies found on the way are also handed to the security console's
//! open live pages (a bounded broadcast; they are not audit records). It must not decide
//! outcomes: callers pass typed kinds and outcomes.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use voxguard_guard::{
    Anomaly, AnomalyDetector, AuditEvent, AuditKind, Clock, Outcome, Reason, Redactor, SystemClock,
};
use voxguard_server::{Metrics, SecurityEvents};
use voxguard_store::AuditSink;

/// The audit trail of a runtime: a sink (or none), the clock that stamps events and the
/// redactor applied to arguments.
#[derive(Clone)]
pub(crate) struct Auditor {
    sink: Option<Arc<dyn AuditSink>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) redactor: Redactor,
    pub(crate) metrics: Metrics,
    detector: Option<Arc<AnomalyDetector>>,
    on_anomaly: Option<AnomalyCallback>,
    /// Every anomaly this process finds, for the security console's live page (its
    /// subscribers; none most of the time, and then a send costs nothing).
    anomalies: tokio::sync::broadcast::Sender<Anomaly>,
}

/// How many anomalies a slow live-page subscriber may fall behind before it misses some.
const ANOMALY_BACKLOG: usize = 64;

impl Default for Auditor {
    fn default() -> Self {
        Self::new(None, Arc::new(SystemClock), Metrics::new(), None, None)
    }
}

/// What `Runtime::on_anomaly` registers.
pub(crate) type AnomalyCallback = Arc<
    dyn Fn(Anomaly) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// The audit trail could not be written; the request must not be answered as if it were.
#[derive(Debug)]
pub(crate) struct AuditUnavailable;

impl Auditor {
    pub(crate) fn new(
        sink: Option<Arc<dyn AuditSink>>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
        detector: Option<Arc<AnomalyDetector>>,
        on_anomaly: Option<AnomalyCallback>,
    ) -> Self {
        Self {
            sink,
            clock,
            redactor: Redactor::new(),
            metrics,
            detector,
            on_anomaly,
            anomalies: tokio::sync::broadcast::channel(ANOMALY_BACKLOG).0,
        }
    }

    /// The anomalies found from now on (the console's live page), at most [`ANOMALY_BACKLOG`]
    /// behind.
    pub(crate) fn anomalies(&self) -> tokio::sync::broadcast::Receiver<Anomaly> {
        self.anomalies.subscribe()
    }

    /// Run the anomaly rules over `event`: each finding becomes a warn-level security event, a
    /// metric and (in the background, never delaying the request) a call of the callback.
    pub(crate) fn watch(&self, event: &AuditEvent) {
        let Some(detector) = &self.detector else {
            return;
        };
        for anomaly in detector.observe(event) {
            tracing::warn!(
                target: "voxguard::security",
                event = "anomaly",
                rule = anomaly.rule,
                subject = %anomaly.subject,
                detail = %anomaly.detail,
                "anomaly detected"
            );
            self.metrics.anomaly(anomaly.rule);
            if self.anomalies.receiver_count() > 0 {
                let _ = self.anomalies.send(anomaly.clone());
            }
            if let Some(callback) = &self.on_anomaly {
                tokio::spawn(callback(anomaly));
            }
        }
    }

    /// The sink events go to, for reading the trail back (records API, role `auditor`).
    pub(crate) fn sink(&self) -> Option<&Arc<dyn AuditSink>> {
        self.sink.as_ref()
    }

    /// A blank event of `kind` with `outcome`, stamped now by the runtime's clock.
    pub(crate) fn event(&self, kind: AuditKind, outcome: Outcome) -> AuditEvent {
        let mut event = AuditEvent::new(kind, self.clock.now_ms());
        event.outcome = Some(outcome);
        event
    }

    /// Redacted copy of tool arguments for the record; `extra` names are masked on top of the
    /// redactor's defaults.
    pub(crate) fn redact_args(&self, args: &Value, extra: &[String]) -> Value {
        let mut copy = args.clone();
        if extra.is_empty() {
            self.redactor.redact_json(&mut copy);
        } else {
            self.redactor
                .clone()
                .with_sensitive_fields(extra.iter().cloned())
                .redact_json(&mut copy);
        }
        copy
    }

    /// **Where an audit event is written.** Returns once the sink has made it durable.
    pub(crate) async fn record(&self, event: AuditEvent) -> Result<(), AuditUnavailable> {
        self.watch(&event);
        self.append(event).await
    }

    /// Write `event` without showing it to the anomaly rules (for aggregated records whose
    /// individual events were already shown).
    async fn append(&self, event: AuditEvent) -> Result<(), AuditUnavailable> {
        let Some(sink) = &self.sink else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let written = sink.append(event).await;
        self.metrics.audit_write(started.elapsed());
        match written {
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::error!(target: "voxguard::security", %error, "audit event could not be written");
                Err(AuditUnavailable)
            }
        }
    }
}

/// The last four characters of a caller number or destination, for logs and audit records.
pub(crate) fn mask(value: &str) -> String {
    // The last four characters (not bytes), after three stars.
    let from = value.char_indices().rev().nth(3).map_or(0, |(at, _)| at);
    ["***", &value[from..]].concat()
}

/// How long one source's repeated authentication failures are folded into one record.
pub(crate) const AUTH_FAILURE_WINDOW_SECS: u64 = 60;

/// How many (source, reason) windows are held at once; a new source past this evicts (and
/// writes out) the oldest window.
pub(crate) const AUTH_FAILURE_SOURCES: usize = 4096;

/// How many failure records are written per window of [`AUTH_FAILURE_WINDOW_SECS`], all
/// sources together. Past it (many sources at once: a botnet, one host rotating the /64s of its
/// /48), the records are folded into one per reason, written with source `many` when the
/// window ends: the trail grows by at most this many (plus one per reason) records a window,
/// however many addresses fail.
pub(crate) const AUTH_FAILURE_RECORDS: u64 = 256;

/// Refused logins and webhook signatures at the HTTP layer go to the audit trail too —
/// aggregated, so that an anonymous flood cannot grow the trail at request rate.
///
/// Per source address and reason, the first failure of a window is written at once (with
/// `arguments: {"count": 1, "window_secs": w}`); the further ones in the same window are only
/// counted, and written as one event with their `count` when the next failure after the window
/// arrives, when the maintenance task finds the window closed, when the window is evicted to
/// make room, or at shutdown. At most [`AUTH_FAILURE_RECORDS`] such records are written per
/// window; the rest are folded per reason into one record with source `many` and `records`
/// (how many per-source records it stands for). The counts in the trail add up to the failures that
/// happened.
pub(crate) struct AuthEvents {
    auditor: Auditor,
    windows: std::sync::Mutex<FailureWindows>,
}

impl AuthEvents {
    pub(crate) fn new(auditor: Auditor) -> Self {
        Self {
            auditor,
            windows: std::sync::Mutex::new(FailureWindows::new(
                AUTH_FAILURE_WINDOW_SECS * 1000,
                AUTH_FAILURE_SOURCES,
            )),
        }
    }

    fn windows(&self) -> std::sync::MutexGuard<'_, FailureWindows> {
        self.windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Write out every window that closed by now (maintenance).
    pub(crate) async fn flush_closed(&self) {
        let due = self.windows().take_closed(self.auditor.clock.now_ms());
        let _ = self.write(due).await;
    }

    /// Write out every counted failure (shutdown).
    pub(crate) async fn flush_all(&self) {
        let due = self.windows().take_all();
        let _ = self.write(due).await;
    }

    /// Show a webhook refused before its token was verified to the anomaly rules (`event`: as
    /// it would have been written) and count it: the first of a window of its source and
    /// reason is written at once, the rest are counted into one record, as for refused
    /// authentications — a sender with the webhook credentials but no token grows the trail by
    /// a bounded number of records (invariant 10).
    /// `Err` when a record due now could not be stored (the request is then answered
    /// `audit_unavailable`, as any whose record is lost).
    pub(crate) async fn refused_unverified(
        &self,
        client: SocketAddr,
        reason: Reason,
        event: &AuditEvent,
    ) -> Result<(), AuditUnavailable> {
        self.auditor.watch(event);
        let failure = Failures {
            source: aggregation_source(client.ip()),
            reason,
            method: String::new(),
            path: String::new(),
            request_id: event.request_id.clone().unwrap_or_default(),
            count: 1,
            folded: 0,
            call: Some(RefusedCall {
                kind: event.kind,
                agent: event.agent.clone().unwrap_or_default(),
                function: event.function.clone(),
                call_id: event.call_id.clone(),
                caller: event.caller.clone(),
            }),
        };
        let due = self.windows().observe(failure, self.auditor.clock.now_ms());
        self.write(due).await
    }

    /// Write `failures`; `Err` when any of them could not be stored.
    async fn write(&self, failures: Vec<Failures>) -> Result<(), AuditUnavailable> {
        let mut stored = Ok(());
        for failures in failures {
            // Refusals on the operator records API are `access_denied` (issue 10); webhooks
            // refused before their token was verified keep the kind they were refused as; the
            // others are refused webhook or agent authentications.
            let kind = if let Some(call) = &failures.call {
                call.kind
            } else if voxguard_server::is_records_path(&failures.path)
                || voxguard_server::is_console_path(&failures.path)
            {
                AuditKind::AccessDenied
            } else {
                AuditKind::AuthFailed
            };
            let mut event = self.auditor.event(kind, Outcome::Refused);
            event.reason = Some(failures.reason.as_str().into());
            event.request_id = Some(failures.request_id);
            if let Some(call) = failures.call {
                // The sender chose these: cut, and redacted like a log line.
                let named = |text: String| {
                    let cut: String = text.chars().take(MAX_NAMED_CHARS).collect();
                    self.auditor.redactor.redact_text(&cut).into_owned()
                };
                event.agent = Some(call.agent);
                event.function = call.function.map(named);
                event.call_id = call.call_id.map(named);
                event.caller = call.caller;
            } else {
                event.function = Some(format!(
                    "{} {}",
                    failures.method,
                    self.auditor.redactor.redact_text(&failures.path)
                ));
            }
            let mut arguments = serde_json::json!({
                "count": failures.count,
                "window_secs": AUTH_FAILURE_WINDOW_SECS,
            });
            event.source = Some(if failures.folded > 0 {
                arguments["records"] = failures.folded.into();
                MANY_SOURCES.to_string()
            } else {
                failures.source.to_string()
            });
            event.arguments = Some(arguments);
            if self.auditor.append(event).await.is_err() {
                stored = Err(AuditUnavailable);
            }
        }
        stored
    }
}

/// The most characters of a function name or call id a refused webhook's record keeps.
const MAX_NAMED_CHARS: usize = 128;

/// The `source` of a record that folds the failures of many sources ([`AUTH_FAILURE_RECORDS`]).
pub(crate) const MANY_SOURCES: &str = "many";

/// The source failures are counted under: the address itself for IPv4, its /48 network for
/// IPv6 (one host commonly holds a /48 or a /56, so counting per address or per /64 would let
/// it write one durable event per request — or spend the records budget of every other source,
/// [`AUTH_FAILURE_RECORDS`] — by rotating addresses).
fn aggregation_source(ip: std::net::IpAddr) -> std::net::IpAddr {
    voxguard_guard::source_network(ip, 48)
}

#[async_trait::async_trait]
impl SecurityEvents for AuthEvents {
    async fn auth_failed(
        &self,
        client: SocketAddr,
        method: &str,
        path: &str,
        reason: Reason,
        request_id: &str,
    ) {
        self.auditor.metrics.refusal(reason.as_str());
        // The anomaly rules see every failure, written or only counted; a bare event keeps
        // this O(1) (nothing is redacted for a failure that is only counted).
        let mut seen = self.auditor.event(AuditKind::AuthFailed, Outcome::Refused);
        seen.source = Some(client.ip().to_string());
        seen.reason = Some(reason.as_str().into());
        self.auditor.watch(&seen);
        let failure = Failures {
            source: aggregation_source(client.ip()),
            reason,
            // hyper accepts extension methods as long as the request head allows: keep a
            // method-sized prefix only.
            method: method.chars().take(16).collect(),
            path: path.into(),
            request_id: request_id.into(),
            count: 1,
            folded: 0,
            call: None,
        };
        let due = self.windows().observe(failure, self.auditor.clock.now_ms());
        let _ = self.write(due).await;
    }
}

/// Failures of one source for one reason: the last request's method, path and id (and, for a
/// webhook refused before its token was verified, its agent, function and call id), and how
/// many.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failures {
    source: std::net::IpAddr,
    reason: Reason,
    method: String,
    path: String,
    request_id: String,
    count: u64,
    /// How many per-source records this one stands for (0: it is one source's own).
    folded: u64,
    /// What the last refused webhook named; `None` for a refused authentication.
    call: Option<RefusedCall>,
}

/// The parts of a webhook refused before its token was verified that its record keeps: the
/// kind it is recorded as and the agent, function and call id the sender named (redacted and
/// cut when written: the sender chose them).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RefusedCall {
    pub(crate) kind: AuditKind,
    pub(crate) agent: String,
    pub(crate) function: Option<String>,
    pub(crate) call_id: Option<String>,
    /// The caller number as the event shows it (its last four digits).
    pub(crate) caller: Option<String>,
}

/// What failures are counted together under: the source, the reason, and for a refused webhook
/// the kind, agent and function it was refused as (so that refusals of one endpoint never hide
/// under another's record).
type WindowKey = (
    std::net::IpAddr,
    Reason,
    Option<(AuditKind, String, Option<String>)>,
);

impl Failures {
    /// A token-less SWAIG refusal of function `function` from one source, numbered `i`.
    #[cfg(test)]
    pub(crate) fn refused_call_for_tests(i: usize, function: &str) -> Self {
        Self {
            source: std::net::IpAddr::from([198, 51, 100, 7]),
            reason: Reason::TokenMissing,
            method: String::new(),
            path: String::new(),
            request_id: format!("r{i}"),
            count: 1,
            folded: 0,
            call: Some(RefusedCall {
                kind: AuditKind::TokenRefused,
                agent: "gw".into(),
                function: Some(function.into()),
                call_id: None,
                caller: None,
            }),
        }
    }

    fn key(&self) -> WindowKey {
        let label = self
            .call
            .as_ref()
            .map(|call| (call.kind, call.agent.clone(), call.function.clone()));
        (self.source, self.reason, label)
    }
}

/// One open window: when it opened, and the failures counted (not yet written) since.
struct Window {
    opened_ms: u64,
    pending: Option<Failures>,
}

/// The bounded map of open windows. Pure bookkeeping: it says what to write, never writes.
pub(crate) struct FailureWindows {
    window_ms: u64,
    cap: usize,
    open: std::collections::HashMap<WindowKey, Window>,
    /// Records written per window, all sources together, and past it folded per reason.
    budget: RecordBudget,
}

/// The records written in the current budget window, and those folded past
/// [`AUTH_FAILURE_RECORDS`] (one per reason).
struct RecordBudget {
    limit: u64,
    started_ms: u64,
    used: u64,
    folded: Vec<Failures>,
}

impl RecordBudget {
    /// `due` as it may be written at `now_ms`: within the budget as they are, the rest folded
    /// (and the records folded in a window that ended by now, first).
    fn admit(&mut self, due: Vec<Failures>, now_ms: u64, window_ms: u64) -> Vec<Failures> {
        let mut out = Vec::new();
        if now_ms >= self.started_ms.saturating_add(window_ms) {
            self.started_ms = now_ms;
            self.used = 0;
            out.append(&mut self.folded);
        }
        for failure in due {
            if self.used < self.limit {
                self.used += 1;
                out.push(failure);
                continue;
            }
            let folds = failure.folded.max(1);
            // Past the budget, folded by reason alone (whatever each window's label): the
            // folded records stay one per reason however many functions a sender names.
            match self.folded.iter_mut().find(|f| f.reason == failure.reason) {
                Some(folded) => {
                    folded.count += failure.count;
                    folded.folded += folds;
                    folded.method = failure.method;
                    folded.path = failure.path;
                    folded.request_id = failure.request_id;
                    folded.call = failure.call;
                }
                None => self.folded.push(Failures {
                    source: std::net::IpAddr::from([0, 0, 0, 0]),
                    folded: folds,
                    ..failure
                }),
            }
        }
        out
    }
}

impl FailureWindows {
    pub(crate) fn new(window_ms: u64, cap: usize) -> Self {
        Self::with_budget(window_ms, cap, AUTH_FAILURE_RECORDS)
    }

    /// Windows of `window_ms`, at most `cap` at once, at most `records` written per window.
    pub(crate) fn with_budget(window_ms: u64, cap: usize, records: u64) -> Self {
        Self {
            window_ms,
            cap: cap.max(1),
            open: std::collections::HashMap::new(),
            budget: RecordBudget {
                limit: records.max(1),
                started_ms: 0,
                used: 0,
                folded: Vec::new(),
            },
        }
    }

    /// Count `failure` at `now_ms`; returns what must be written now (in order).
    pub(crate) fn observe(&mut self, failure: Failures, now_ms: u64) -> Vec<Failures> {
        let due = self.observe_unbudgeted(failure, now_ms);
        self.budget.admit(due, now_ms, self.window_ms)
    }

    fn observe_unbudgeted(&mut self, failure: Failures, now_ms: u64) -> Vec<Failures> {
        let key = failure.key();
        let window_ms = self.window_ms;
        let mut due = Vec::new();
        if let Some(window) = self.open.get_mut(&key) {
            if now_ms < window.opened_ms.saturating_add(window_ms) {
                let count = window.pending.as_ref().map_or(0, |p| p.count) + 1;
                window.pending = Some(Failures { count, ..failure });
                return due;
            }
            due.extend(window.pending.take());
            window.opened_ms = now_ms;
        } else {
            if self.open.len() >= self.cap {
                due.extend(self.close_ended(now_ms));
            }
            if self.open.len() >= self.cap {
                let oldest = self
                    .open
                    .iter()
                    .min_by_key(|(_, w)| w.opened_ms)
                    .map(|(k, _)| k.clone());
                if let Some(window) = oldest.and_then(|k| self.open.remove(&k)) {
                    due.extend(window.pending);
                }
            }
            self.open.insert(
                key,
                Window {
                    opened_ms: now_ms,
                    pending: None,
                },
            );
        }
        due.push(failure);
        due
    }

    /// Close every window that ended by `now_ms`; returns what must be written of their
    /// counted failures (and of the records folded in a budget window that ended).
    pub(crate) fn take_closed(&mut self, now_ms: u64) -> Vec<Failures> {
        let due = self.close_ended(now_ms);
        self.budget.admit(due, now_ms, self.window_ms)
    }

    fn close_ended(&mut self, now_ms: u64) -> Vec<Failures> {
        let window_ms = self.window_ms;
        let mut due = Vec::new();
        self.open.retain(|_, window| {
            let open = now_ms < window.opened_ms.saturating_add(window_ms);
            if !open {
                due.extend(window.pending.take());
            }
            open
        });
        due
    }

    /// Close every window; returns their counted failures and every folded record (shutdown:
    /// everything is written).
    pub(crate) fn take_all(&mut self) -> Vec<Failures> {
        let mut due: Vec<Failures> = self
            .open
            .drain()
            .filter_map(|(_, window)| window.pending)
            .collect();
        due.append(&mut self.budget.folded);
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked value keeps its last four characters (not bytes) after three stars, whatever
    /// its length and script.
    #[test]
    fn mask_keeps_the_last_four_characters() {
        for (value, masked) in [
            ("+15551234567", "***4567"),
            ("4567", "***4567"),
            ("567", "***567"),
            ("", "***"),
            ("ab€€€€", "***€€€€"),
            ("x😀é1", "***x😀é1"),
            ("yx😀é1", "***x😀é1"),
        ] {
            assert_eq!(mask(value), masked, "{value:?}");
        }
    }

    #[test]
    fn ipv6_failures_are_counted_per_48_and_ipv4_per_address() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: std::net::IpAddr = "2001:db8:1:ff:bbbb::9".parse().expect("ip");
        let c: std::net::IpAddr = "2001:db8:2:2::1".parse().expect("ip");
        assert_eq!(aggregation_source(a), aggregation_source(b));
        assert_ne!(aggregation_source(a), aggregation_source(c));
        let v4: std::net::IpAddr = "198.51.100.7".parse().expect("ip");
        assert_eq!(aggregation_source(v4), v4);
    }

    fn failure(source: [u8; 4], request_id: &str) -> Failures {
        Failures {
            source: std::net::IpAddr::from(source),
            reason: Reason::AuthRequired,
            method: "GET".into(),
            path: "/".into(),
            request_id: request_id.into(),
            count: 1,
            folded: 0,
            call: None,
        }
    }

    fn total(written: &[Failures]) -> u64 {
        written.iter().map(|f| f.count).sum()
    }

    #[test]
    fn repeated_failures_are_counted_and_written_when_the_window_closes() {
        let mut windows = FailureWindows::new(60_000, 16);
        let mut written = Vec::new();
        for i in 0..1000u64 {
            written.extend(windows.observe(failure([10, 0, 0, 1], &format!("r{i}")), i));
        }
        assert_eq!(written.len(), 1, "only the first is written at once");
        // The next failure after the window writes the count, then itself.
        let after = windows.observe(failure([10, 0, 0, 1], "late"), 60_000);
        assert_eq!(after.len(), 2);
        assert_eq!(after[0].count, 999);
        assert_eq!(after[0].request_id, "r999", "the last counted request");
        written.extend(after);
        assert_eq!(total(&written), 1001);
        // A quiet window with nothing counted writes nothing when closed.
        assert!(windows.take_closed(200_000).is_empty());
    }

    #[test]
    fn the_map_is_bounded_and_evicted_windows_are_written() {
        let mut windows = FailureWindows::new(60_000, 4);
        let mut written = Vec::new();
        for source in 0..4u8 {
            for n in 0..3 {
                written.extend(windows.observe(failure([10, 0, 0, source], "x"), n));
            }
        }
        assert_eq!(written.len(), 4);
        // A fifth source evicts the oldest window and writes its count.
        written.extend(windows.observe(failure([10, 0, 1, 0], "x"), 10));
        assert_eq!(windows.open.len(), 4);
        assert_eq!(written.len(), 6);
        written.extend(windows.take_all());
        assert_eq!(total(&written), 13, "4 sources x 3 + 1");
        assert!(windows.open.is_empty());
    }

    #[test]
    fn many_sources_at_once_write_a_bounded_number_of_records_and_lose_no_count() {
        let mut windows = FailureWindows::with_budget(60_000, 4096, 16);
        let mut written = Vec::new();
        // 10,000 sources (a /48's /64s, say) failing twice each within one window.
        for round in 0..2u64 {
            for i in 0..10_000u32 {
                let [_, _, a, b] = i.to_be_bytes();
                written.extend(windows.observe(failure([10, 1, a, b], "x"), round * 100 + 1));
            }
        }
        assert_eq!(written.len(), 16, "only the budget is written at once");
        // The window ends: what was counted is folded, not written source by source.
        written.extend(windows.take_closed(60_001));
        written.extend(windows.take_closed(120_002));
        assert!(written.len() <= 16 + 16 + 1, "{}", written.len());
        let folded: Vec<_> = written.iter().filter(|f| f.folded > 0).collect();
        assert!(!folded.is_empty());
        assert!(folded.iter().all(|f| f.source.is_unspecified()));
        written.extend(windows.take_all());
        assert_eq!(total(&written), 20_000, "every failure is counted");
    }

    #[test]
    fn closed_windows_are_flushed_by_maintenance() {
        let mut windows = FailureWindows::new(1_000, 8);
        windows.observe(failure([10, 0, 0, 1], "a"), 0);
        windows.observe(failure([10, 0, 0, 1], "b"), 10);
        assert!(windows.take_closed(999).is_empty());
        let due = windows.take_closed(1_000);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].count, 1);
    }
}
