//! Live security events (`/console/live`, permission `read_audit`): refusals, lockouts,
//! anomalies and emergency switch changes as they happen, and the page's one script.
//!
//! The page lists the last [`PAGE_EVENTS`] security events among the last [`PAGE_SCAN`] audit
//! records. `live.js` then opens `/console/live/events`, a `text/event-stream` that polls the
//! audit trail about once a second ([`POLL`]) from the last sequence number seen, so that
//! with a trail shared through PostgreSQL the events of every replica appear. Each event is one
//! `data:` line of JSON ([`LiveEvent`]) with its sequence number as `id:`, so a reconnecting
//! `EventSource` resumes after the last one it got (`Last-Event-ID`, at most [`CATCH_UP`]
//! records back). Anomalies are not audit records: those this process finds while a stream is
//! open are sent too, without an id (they are not replayed).
//!
//! The bounds: at most [`STREAMS_PER_OPERATOR`] streams per operator and [`STREAMS_TOTAL`] in
//! all (429 with `Retry-After` past them); each poll checks the session again *without
//! renewing it*, so a stream ends when the session is signed out, expires (an open live page
//! does not keep an idle session alive), or its operator is removed, loses `read_audit` or
//! gets a new password; and a stream never outlives the session's absolute end. Reads are
//! audited once per page view and once per stream opened (`record_accessed`, functions
//! `console_live` and `console_live_stream`), never per poll. Caller numbers are masked to
//! their last four digits and no argument is shown. This module must not renew a session,
//! write an audit event per poll, or write markup (`pages::live` does).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::broadcast::{self, error::TryRecvError};
use voxguard_guard::records::Permission;
use voxguard_guard::{Anomaly, AuditEvent, AuditKind, AuditRecord, Clock, Outcome, Redactor};
use voxguard_server::{Bytes, ConsoleReply, ConsoleRequest, ConsoleStream};
use voxguard_store::SessionStore;

use super::pages::{self, live::LiveEvent, live::LiveView};
use super::{
    check_session, method_not_allowed, not_found, page, query, retry_after, scope_of, unavailable,
    valid_id, Console, ConsoleTimeouts, SESSION_COOKIE,
};
use crate::audit::mask;
use crate::records::{Records, RecordsError, TrailReader};

/// Streams one operator may have open at once.
pub(super) const STREAMS_PER_OPERATOR: usize = 4;

/// Streams all operators together may have open at once.
pub(super) const STREAMS_TOTAL: usize = 64;

/// How often a stream polls the trail and checks its session.
const POLL: Duration = Duration::from_secs(1);

/// Polls without an event after which a stream sends a comment (so that proxies and the
/// browser see the connection alive).
const HEARTBEAT_POLLS: u32 = 15;

/// Security events the page lists.
const PAGE_EVENTS: usize = 50;

/// Audit records the page reads back to find them.
const PAGE_SCAN: u64 = 2_000;

/// The furthest back a stream starts (records before the trail's end), whatever
/// `Last-Event-ID` or `after` asks.
const CATCH_UP: u64 = 1_000;

/// The most records one poll reads.
const READ_PER_POLL: u64 = 1_000;

/// `Retry-After` of the 429 when too many streams are open.
const RETRY_AFTER_SECS: u64 = 10;

/// What an `EventSource` waits before reconnecting (ms), sent at the start of each stream.
const RETRY_MS: u64 = 5_000;

/// The live page's script.
const SCRIPT: &str = include_str!("live.js");

/// `GET /console/static/live.js`.
pub(super) fn script() -> ConsoleReply {
    ConsoleReply {
        status: 200,
        content_type: "text/javascript; charset=utf-8",
        body: Bytes::from_static(SCRIPT.as_bytes()),
        headers: Vec::new(),
        stream: None,
    }
}

/// Whether `event` is a security event: a refusal of any kind (authentication, token, policy,
/// rate limit, transfer, operator access, …), a failed verification, a lockout, an emergency
/// switch change, or a payment whose amount did not match.
pub(super) fn is_security_event(event: &AuditEvent) -> bool {
    event.outcome == Some(Outcome::Refused)
        || matches!(
            event.kind,
            AuditKind::Lockout
                | AuditKind::VerificationFailed
                | AuditKind::EmergencyToggled
                | AuditKind::PaymentAmountMismatch
        )
}

/// A security event as shown: the caller masked (again: the trail already holds it masked),
/// the function redacted, no arguments but an aggregated refusal's `count` and an emergency
/// change's tools.
pub(super) fn shown(record: &AuditRecord, redactor: &Redactor) -> LiveEvent {
    let event = &record.event;
    let arguments = event.arguments.as_ref();
    let detail = (event.kind == AuditKind::EmergencyToggled).then(|| {
        match arguments
            .and_then(|a| a.get("tools"))
            .and_then(Value::as_array)
        {
            Some(tools) => format!(
                "tools: {}",
                tools
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|t| redactor.redact_text(t).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "every sensitive tool".to_string(),
        }
    });
    LiveEvent {
        seq: Some(record.seq),
        time_ms: event.time_ms,
        kind: event.kind.as_str().to_string(),
        outcome: event.outcome.map(|o| o.as_str().to_string()),
        reason: event.reason.clone(),
        agent: event.agent.clone(),
        function: event
            .function
            .as_deref()
            .map(|f| redactor.redact_text(f).into_owned()),
        caller: event.caller.as_deref().filter(|c| !c.is_empty()).map(mask),
        source: event.source.clone(),
        operator: event.operator.clone(),
        role: event.role.clone(),
        count: arguments
            .and_then(|a| a.get("count"))
            .and_then(Value::as_u64),
        detail,
    }
}

/// An anomaly as shown (its subject is a source address, a masked caller, a pseudonym or a
/// function name; its detail holds no argument value but a transaction's amount).
fn shown_anomaly(anomaly: &Anomaly, redactor: &Redactor) -> LiveEvent {
    let detail = format!(
        "{} ({})",
        redactor.redact_text(&anomaly.detail),
        redactor.redact_text(&anomaly.subject)
    );
    anomaly_event(
        anomaly.time_ms,
        Some(anomaly.rule.to_string()),
        None,
        detail,
    )
}

/// An event of kind `anomaly`: no audit record, so no sequence number (and no `id:`).
fn anomaly_event(
    time_ms: u64,
    reason: Option<String>,
    count: Option<u64>,
    detail: String,
) -> LiveEvent {
    LiveEvent {
        seq: None,
        time_ms,
        kind: "anomaly".to_string(),
        outcome: None,
        reason,
        agent: None,
        function: None,
        caller: None,
        source: None,
        operator: None,
        role: None,
        count,
        detail: Some(detail),
    }
}

/// One server-sent event: `id:` (when the event is an audit record) and one `data:` line.
fn sse(event: &LiveEvent, out: &mut String) {
    let Ok(data) = serde_json::to_string(event) else {
        return;
    };
    if let Some(seq) = event.seq {
        out.push_str(&format!("id: {seq}\n"));
    }
    out.push_str("data: ");
    out.push_str(&data);
    out.push_str("\n\n");
}

/// The open streams, per operator and in all.
#[derive(Default)]
pub(super) struct Streams {
    open: Mutex<(usize, HashMap<String, usize>)>,
}

/// One open stream's place; given back when dropped (the stream ended, or its client left).
pub(super) struct Slot {
    streams: Arc<Streams>,
    operator: String,
}

impl Streams {
    /// A place for one more stream of `operator`, unless that would pass a bound.
    fn open(self: &Arc<Self>, operator: &str) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per) = &mut *open;
        let mine = per.get(operator).copied().unwrap_or(0);
        if *total >= STREAMS_TOTAL || mine >= STREAMS_PER_OPERATOR {
            return None;
        }
        *total += 1;
        per.insert(operator.to_string(), mine + 1);
        Some(Slot {
            streams: self.clone(),
            operator: operator.to_string(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(mine) = per.get_mut(&self.operator) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                per.remove(&self.operator);
            }
        }
    }
}

/// The last [`PAGE_EVENTS`] security events (newest first) among the last [`PAGE_SCAN`]
/// records of the trail, how many records that was, and the trail's last sequence number.
async fn recent(
    trail: &TrailReader,
    redactor: &Redactor,
) -> Result<(Vec<LiveEvent>, u64, u64), RecordsError> {
    let end = trail.end().await?;
    let first = end.saturating_sub(PAGE_SCAN) + 1;
    let records = trail.read(first, (end + 1).saturating_sub(first)).await?;
    let mut kept: VecDeque<LiveEvent> = VecDeque::with_capacity(PAGE_EVENTS + 1);
    for record in records.iter().filter(|r| is_security_event(&r.event)) {
        kept.push_back(shown(record, redactor));
        if kept.len() > PAGE_EVENTS {
            kept.pop_front();
        }
    }
    Ok((
        kept.into_iter().rev().collect(),
        (end + 1).saturating_sub(first),
        end,
    ))
}

impl Console {
    /// Everything below `/console/live`.
    pub(super) async fn live(&self, request: &ConsoleRequest) -> ConsoleReply {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/live") => self.live_page(request).await,
            ("GET", "/live/events") => self.live_events(request).await,
            (_, "/live" | "/live/events") => method_not_allowed(),
            _ => not_found(),
        }
    }

    async fn live_page(&self, request: &ConsoleRequest) -> ConsoleReply {
        let signed = match self.allowed(request, Permission::ReadAudit).await {
            Ok(signed) => signed,
            Err(reply) => return reply,
        };
        let actor = self.actor(request, &signed.operator);
        let trail = match self
            .api
            .records
            .audit_reader(&actor, "console_live", json!({}))
            .await
        {
            Ok(trail) => trail,
            Err(_) => return unavailable(),
        };
        let view = match trail {
            None => LiveView::Unreadable,
            Some(trail) => match recent(&trail, &Redactor::new()).await {
                Ok((events, scanned, end)) => LiveView::Events {
                    events,
                    scanned,
                    end,
                },
                Err(_) => return unavailable(),
            },
        };
        page(200, pages::live::page(&self.who(&signed), &view))
    }

    async fn live_events(&self, request: &ConsoleRequest) -> ConsoleReply {
        // Not `require`: opening the stream (an `EventSource` reconnecting by itself) does not
        // renew the session.
        let signed = match self.session(request, false).await {
            Ok(Some(signed)) => signed,
            Ok(None) => return self.no_session(request).await,
            Err(reply) => return reply,
        };
        if let Err(reply) = self
            .check_role(request, &signed, Permission::ReadAudit)
            .await
        {
            return reply;
        }
        let Some(slot) = self.streams.open(&signed.operator.name) else {
            let refused = page(
                429,
                pages::problem(
                    Some(&self.who(&signed)),
                    "Too many live streams",
                    &format!(
                        "At most {STREAMS_PER_OPERATOR} live event streams per operator and {STREAMS_TOTAL} in all may be open at once. Close another live page and reload this one."
                    ),
                ),
            );
            return retry_after(refused, Some(RETRY_AFTER_SECS));
        };
        let Some(scope) = request
            .cookie(SESSION_COOKIE)
            .filter(|id| valid_id(id))
            .map(scope_of)
        else {
            return unavailable();
        };
        let asked = request
            .last_event_id
            .as_deref()
            .or_else(|| query(request, "after"))
            .and_then(|seen| seen.trim().parse::<u64>().ok());
        let actor = self.actor(request, &signed.operator);
        let trail = match self
            .api
            .records
            .audit_reader(&actor, "console_live_stream", json!({ "after": asked }))
            .await
        {
            Ok(Some(trail)) => trail,
            Ok(None) => return not_found(),
            Err(_) => return unavailable(),
        };
        let end = match trail.end().await {
            Ok(end) => end,
            Err(_) => return unavailable(),
        };
        // After the one asked for, but never before CATCH_UP records back nor past the end.
        let next = match asked {
            Some(seen) => seen.min(end).max(end.saturating_sub(CATCH_UP)) + 1,
            None => end + 1,
        };
        let now = self.clock.now_unix();
        let absolute_end = signed
            .state
            .created
            .saturating_add(self.timeouts.max.as_secs());
        let feed = Feed {
            sessions: self.sessions.clone(),
            records: self.api.records.clone(),
            clock: self.clock.clone(),
            timeouts: self.timeouts,
            scope,
            operator: signed.operator.name.clone(),
            trail,
            next,
            anomalies: self.admin.auditor.anomalies(),
            redactor: Redactor::new(),
            deadline: tokio::time::Instant::now()
                + Duration::from_secs(absolute_end.saturating_sub(now)),
            quiet: 0,
            _slot: slot,
        };
        let stream = futures_util::stream::unfold(feed, |mut feed| async move {
            let chunk = feed.next_chunk().await?;
            Some((chunk, feed))
        });
        ConsoleReply {
            status: 200,
            content_type: "text/event-stream",
            body: Bytes::from(format!("retry: {RETRY_MS}\n: live security events\n\n")),
            headers: vec![("x-accel-buffering", "no".to_string())],
            stream: Some(ConsoleStream(Box::pin(stream))),
        }
    }
}

/// One open stream: what it needs to check its session and read the trail on its own (it
/// outlives the request that opened it), and where it is.
struct Feed {
    sessions: Arc<dyn SessionStore>,
    records: Records,
    clock: Arc<dyn Clock>,
    timeouts: ConsoleTimeouts,
    /// The session's store scope (the hash of its id).
    scope: String,
    operator: String,
    trail: TrailReader,
    /// The next sequence number to read.
    next: u64,
    anomalies: broadcast::Receiver<Anomaly>,
    redactor: Redactor,
    /// The session's absolute end, on the tokio clock.
    deadline: tokio::time::Instant,
    /// Polls since the last chunk sent.
    quiet: u32,
    _slot: Slot,
}

impl Feed {
    /// The next chunk of the stream, or `None` when it ends: the session ended or lost
    /// `read_audit`, the deadline passed, or the trail could not be read (the browser then
    /// reconnects and resumes).
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            let wake = (tokio::time::Instant::now() + POLL).min(self.deadline);
            tokio::time::sleep_until(wake).await;
            if tokio::time::Instant::now() >= self.deadline || !self.still_allowed().await {
                return None;
            }
            let mut out = String::new();
            self.anomalies_into(&mut out);
            self.records_into(&mut out).await.ok()?;
            if !out.is_empty() {
                self.quiet = 0;
                return Some(Bytes::from(out));
            }
            self.quiet += 1;
            if self.quiet >= HEARTBEAT_POLLS {
                self.quiet = 0;
                return Some(Bytes::from_static(b": keep-alive\n\n"));
            }
        }
    }

    /// Whether the session is still live, still this operator's, and its role still allows
    /// `read_audit` (checked without renewing the session).
    async fn still_allowed(&self) -> bool {
        match check_session(
            &*self.sessions,
            &self.records,
            self.clock.now_unix(),
            self.timeouts,
            &self.scope,
            false,
        )
        .await
        {
            Ok(Some(signed)) => {
                signed.operator.name == self.operator
                    && self
                        .records
                        .roles()
                        .allows(&signed.operator.role, Permission::ReadAudit)
            }
            _ => false,
        }
    }

    /// The anomalies found since the last poll.
    fn anomalies_into(&mut self, out: &mut String) {
        loop {
            match self.anomalies.try_recv() {
                Ok(anomaly) => sse(&shown_anomaly(&anomaly, &self.redactor), out),
                Err(TryRecvError::Lagged(missed)) => {
                    let detail = format!("{missed} anomalies were not shown (too many at once)");
                    let note = anomaly_event(self.clock.now_ms(), None, Some(missed), detail);
                    sse(&note, out);
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }

    /// The security events among the records written since the last poll (at most
    /// [`READ_PER_POLL`] of them; the next poll reads on).
    async fn records_into(&mut self, out: &mut String) -> Result<(), RecordsError> {
        for record in self.trail.read(self.next, READ_PER_POLL).await? {
            self.next = record.seq + 1;
            if is_security_event(&record.event) {
                sse(&shown(&record, &self.redactor), out);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_bounded_per_operator_and_in_all() {
        let streams = Arc::new(Streams::default());
        let mine: Vec<Slot> = (0..STREAMS_PER_OPERATOR)
            .map(|_| streams.open("ana").expect("a slot"))
            .collect();
        assert!(streams.open("ana").is_none(), "per operator");
        drop(mine);
        let mut all = Vec::new();
        for i in 0..STREAMS_TOTAL {
            all.push(
                streams
                    .open(&format!("op{}", i / STREAMS_PER_OPERATOR))
                    .expect("a slot"),
            );
        }
        assert!(streams.open("someone-else").is_none(), "in all");
        all.pop();
        assert!(streams.open("someone-else").is_some());
    }

    #[test]
    fn security_events_are_refusals_lockouts_and_toggles_with_the_caller_masked() {
        use voxguard_guard::Chain;
        let mut chain = Chain::genesis();
        let mut refused = AuditEvent::new(AuditKind::TokenRefused, 1_700_000_000_000);
        refused.outcome = Some(Outcome::Refused);
        refused.reason = Some("token_invalid".into());
        refused.caller = Some("+15550001234".into());
        refused.arguments = Some(json!({"count": 3, "pin": "1234"}));
        let mut toggled = AuditEvent::new(AuditKind::EmergencyToggled, 1_700_000_001_000);
        toggled.outcome = Some(Outcome::Enabled);
        toggled.arguments = Some(json!({"enabled": true, "tools": ["wire"]}));
        let mut ok = AuditEvent::new(AuditKind::ToolCalled, 1_700_000_002_000);
        ok.outcome = Some(Outcome::Ok);
        let records: Vec<AuditRecord> = [refused, toggled, ok]
            .into_iter()
            .map(|e| chain.append(e))
            .collect();
        let picked: Vec<&AuditRecord> = records
            .iter()
            .filter(|r| is_security_event(&r.event))
            .collect();
        assert_eq!(picked.len(), 2);
        let first = shown(picked[0], &Redactor::new());
        assert_eq!(first.caller.as_deref(), Some("***1234"));
        assert_eq!(first.count, Some(3));
        let text = serde_json::to_string(&first).expect("json");
        assert!(!text.contains("5550001234"), "{text}");
        assert!(!text.contains("pin"), "no arguments: {text}");
        let second = shown(picked[1], &Redactor::new());
        assert_eq!(second.detail.as_deref(), Some("tools: wire"));
        let mut out = String::new();
        sse(&second, &mut out);
        assert!(out.starts_with("id: 2\ndata: {"), "{out}");
        assert!(out.ends_with("}\n\n"), "{out}");
        assert_eq!(out.matches('\n').count(), 3, "one data line: {out}");
    }
}
