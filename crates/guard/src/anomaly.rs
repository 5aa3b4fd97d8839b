//! Anomaly detection over the audit trail: sliding-window rules that turn a stream of
//! [`AuditEvent`]s into [`Anomaly`] reports.
//!
//! Owns the *rules* and their state: failed-authentication bursts per source address, tool-call
//! spikes per (masked) caller, repeated verification lockouts per subject, large transaction
//! attempts (a configurable argument field above a
//! threshold) and activity outside business hours. The runtime hands every audit event it writes
//! to [`AnomalyDetector::observe`] and acts on what comes back (a warn-level security event, a
//! metric, an optional callback); this module does no I/O, no logging and never reads the clock:
//! the only time it knows is the event's own `time_ms`, so replaying a trail gives the same
//! anomalies.
//!
//! Memory is bounded whatever the traffic: each key keeps at most `max + 1` timestamps, expired
//! ones are dropped as events arrive, and each burst rule tracks at most
//! [`DEFAULT_MAX_TRACKED_KEYS`] keys (configurable with [`AnomalyDetector::with_max_keys`]),
//! forgetting the least recently seen key first. Reports never carry argument values: the only
//! value taken from the arguments is the transaction amount, which is the point of that rule.
//! Keys and subjects come from fields the audit trail already holds masked (the caller, last
//! four digits), pseudonymous (a verification subject's keyed-hash prefix) or not secret at
//! all (source address, function name); they are cut to
//! [`MAX_SUBJECT_CHARS`] characters with control characters replaced, so a report is always safe
//! to put on one log line.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use crate::audit::{AuditEvent, AuditKind, Outcome};

/// [`Anomaly::rule`] of a failed-authentication burst from one source address.
pub const FAILED_AUTH_BURST: &str = "failed_auth_burst";
/// [`Anomaly::rule`] of a spike of tool calls from one caller.
pub const TOOL_CALL_SPIKE: &str = "tool_call_spike";
/// [`Anomaly::rule`] of repeated verification lockouts of one subject.
pub const REPEATED_LOCKOUTS: &str = "repeated_lockouts";
/// [`Anomaly::rule`] of a transaction attempt above the configured threshold.
pub const LARGE_TRANSACTION: &str = "large_transaction";
/// [`Anomaly::rule`] of a tool call outside business hours.
pub const AFTER_HOURS: &str = "after_hours";
/// Every rule name, e.g. to register metric labels up front.
pub const RULE_NAMES: [&str; 5] = [
    FAILED_AUTH_BURST,
    TOOL_CALL_SPIKE,
    REPEATED_LOCKOUTS,
    LARGE_TRANSACTION,
    AFTER_HOURS,
];

/// How many keys (source addresses, callers) each burst rule tracks at most by default.
pub const DEFAULT_MAX_TRACKED_KEYS: usize = 10_000;

/// The longest subject (and burst key) kept, in characters; longer ones are cut.
pub const MAX_SUBJECT_CHARS: usize = 128;

/// The subject used when an event lacks the field a rule keys on (no source, withheld caller).
pub const UNKNOWN_SUBJECT: &str = "unknown";

const MINUTES_PER_DAY: u16 = 24 * 60;
const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_DAY: i64 = 24 * 60 * MS_PER_MINUTE;
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Which anomaly rules are on, and their parameters. `None` turns a rule off.
#[derive(Debug, Clone)]
pub struct AnomalyRules {
    /// Events of kind `auth_failed` or `token_refused` per source address (`source`; events
    /// without one share the key [`UNKNOWN_SUBJECT`]). Default: more than 10 in 60 s.
    pub failed_auth: Option<BurstRule>,
    /// `tool_called` events (any outcome) per masked caller (`caller`; calls without a caller
    /// number share the key [`UNKNOWN_SUBJECT`], so withholding the number does not evade the
    /// rule). Default: more than 30 in 60 s.
    pub tool_spike: Option<BurstRule>,
    /// `lockout` events that start a lockout (outcome `verification_lockout`) per agent and
    /// subject (`arguments.subject`, the pseudonym the verification kit writes; events without
    /// one share the agent's key). The settlements of parallel guesses that end in one lockout
    /// each write such an event, so a flood of parallel guesses counts too. Default: more than
    /// 2 in 24 h, i.e. a third lockout of one subject within a day.
    pub repeated_lockouts: Option<BurstRule>,
    /// A transaction amount above a threshold. Default: `amount` above 5000 in any function.
    pub large_transaction: Option<LargeTransactionRule>,
    /// Tool calls outside business hours. Default: off.
    pub after_hours: Option<BusinessHours>,
}

impl Default for AnomalyRules {
    fn default() -> Self {
        Self {
            failed_auth: Some(BurstRule::new(10, Duration::from_secs(60))),
            tool_spike: Some(BurstRule::new(30, Duration::from_secs(60))),
            repeated_lockouts: Some(BurstRule::new(2, Duration::from_secs(24 * 3600))),
            large_transaction: Some(LargeTransactionRule::default()),
            after_hours: None,
        }
    }
}

impl AnomalyRules {
    /// Every rule off; switch on the ones wanted.
    pub fn disabled() -> Self {
        Self {
            failed_auth: None,
            tool_spike: None,
            repeated_lockouts: None,
            large_transaction: None,
            after_hours: None,
        }
    }
}

/// "More than `max` events within `window`" for one key.
///
/// An event at time `t` is within the window at time `now` while `now - t < window`. The rule
/// fires on the event that makes the count exceed `max`, then stays quiet for that key until
/// `window` has passed since it fired; if the burst is still going on then, it fires again
/// (once per window). `max: 0` fires on the first event; a zero `window` never fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurstRule {
    /// Events allowed within the window; one more is a burst.
    pub max: u32,
    /// The sliding window.
    pub window: Duration,
}

impl BurstRule {
    /// More than `max` events within `window`.
    pub const fn new(max: u32, window: Duration) -> Self {
        Self { max, window }
    }
}

/// "An argument `field` above `threshold`" in a call of `function` (or of any function).
///
/// Checked on every event that names a function and carries arguments — the runtime writes one
/// such event per SWAIG call, whether it ran, failed or was refused, so refused *attempts* are
/// reported too. The value may be a JSON number or a numeric string (`"6000"`, `"6000.50"`,
/// `"$6,000.50"`: surrounding spaces, one leading `$`, `€` or `£` and comma thousands separators
/// in groups of three are accepted); anything else, including a redacted value, is not an
/// amount and is ignored, so the amount field must not be marked sensitive. The rule fires when
/// the amount is strictly greater than `threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct LargeTransactionRule {
    /// The only function checked, or `None` for every function.
    pub function: Option<String>,
    /// The argument holding the amount: a top-level field name (`"amount"`), or a JSON pointer
    /// when it starts with `/` (`"/payment/amount"`).
    pub field: String,
    /// Amounts strictly above this fire.
    pub threshold: f64,
}

impl Default for LargeTransactionRule {
    fn default() -> Self {
        Self {
            function: None,
            field: "amount".to_owned(),
            threshold: 5000.0,
        }
    }
}

/// Business hours: `tool_called` events outside them fire [`AFTER_HOURS`].
///
/// Times are local minutes of the day (`8 * 60` is 08:00), local time being UTC shifted by
/// `utc_offset_minutes` (`60` for UTC+01:00, `-300` for UTC-05:00). The offset is fixed: there
/// is no time-zone database, so **daylight saving time is the operator's to adjust** (change the
/// offset when the clocks change). Open from `open_minute` (inclusive) to `close_minute`
/// (exclusive); when `close_minute` is earlier than `open_minute` the hours span midnight
/// (`22 * 60` to `6 * 60` is a night shift), and when they are equal the business is open all
/// day. Minutes past 1440 count as 1440. With `weekdays_only`, every minute of a local Saturday
/// or Sunday is after hours (the local calendar day of the event decides, also for night
/// shifts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusinessHours {
    /// Local minute of the day the business opens (inclusive).
    pub open_minute: u16,
    /// Local minute of the day the business closes (exclusive).
    pub close_minute: u16,
    /// Whether Saturdays and Sundays are after hours all day.
    pub weekdays_only: bool,
    /// Local time minus UTC, in minutes (fixed; adjust it for daylight saving time).
    pub utc_offset_minutes: i32,
}

impl Default for BusinessHours {
    /// 08:00 to 18:00 UTC, Monday to Friday.
    fn default() -> Self {
        Self {
            open_minute: 8 * 60,
            close_minute: 18 * 60,
            weekdays_only: true,
            utc_offset_minutes: 0,
        }
    }
}

impl BusinessHours {
    /// Whether the business is open at `time_ms` (milliseconds since the unix epoch, UTC).
    pub fn is_open(&self, time_ms: u64) -> bool {
        let local = LocalTime::at(time_ms, self.utc_offset_minutes);
        self.is_open_local(&local)
    }

    fn is_open_local(&self, local: &LocalTime) -> bool {
        if self.weekdays_only && local.weekday >= 5 {
            return false;
        }
        let open = self.open_minute.min(MINUTES_PER_DAY);
        let close = self.close_minute.min(MINUTES_PER_DAY);
        let m = local.minute_of_day;
        match open.cmp(&close) {
            std::cmp::Ordering::Less => open <= m && m < close,
            std::cmp::Ordering::Greater => m >= open || m < close,
            std::cmp::Ordering::Equal => true,
        }
    }
}

/// A local wall-clock position: minute of the day and weekday (0 = Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LocalTime {
    minute_of_day: u16,
    weekday: usize,
}

impl LocalTime {
    fn at(time_ms: u64, utc_offset_minutes: i32) -> Self {
        let utc = i64::try_from(time_ms).unwrap_or(i64::MAX);
        let local = utc.saturating_add(i64::from(utc_offset_minutes).saturating_mul(MS_PER_MINUTE));
        let days = local.div_euclid(MS_PER_DAY);
        let minute = local.rem_euclid(MS_PER_DAY) / MS_PER_MINUTE;
        // 1970-01-01 was a Thursday (3 with Monday as 0).
        let weekday = days.saturating_add(3).rem_euclid(7);
        Self {
            minute_of_day: u16::try_from(minute).unwrap_or(0),
            weekday: usize::try_from(weekday).unwrap_or(0),
        }
    }
}

/// Something unusual the detector noticed in the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    /// Which rule fired: one of [`RULE_NAMES`].
    pub rule: &'static str,
    /// What it is about: the source address ([`FAILED_AUTH_BURST`]), the masked caller
    /// ([`TOOL_CALL_SPIKE`]), `agent/subject pseudonym` ([`REPEATED_LOCKOUTS`]) or the function ([`LARGE_TRANSACTION`], [`AFTER_HOURS`]).
    pub subject: String,
    /// One human sentence saying what happened; it holds no argument value except, for
    /// [`LARGE_TRANSACTION`], the amount.
    pub detail: String,
    /// The `time_ms` of the event that fired the rule.
    pub time_ms: u64,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

/// Watches audit events and reports [`Anomaly`]s. Shareable across tasks (`Send + Sync`).
#[derive(Debug)]
pub struct AnomalyDetector {
    rules: AnomalyRules,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    failed_auth: Option<BurstTracker>,
    tool_spike: Option<BurstTracker>,
    lockouts: Option<BurstTracker>,
}

impl AnomalyDetector {
    /// A detector applying `rules`, tracking at most [`DEFAULT_MAX_TRACKED_KEYS`] keys per rule.
    pub fn new(rules: AnomalyRules) -> Self {
        Self::with_max_keys(rules, DEFAULT_MAX_TRACKED_KEYS)
    }

    /// A detector applying `rules`, tracking at most `max_keys` keys (at least 1) per burst rule;
    /// beyond that the least recently seen key is forgotten.
    pub fn with_max_keys(rules: AnomalyRules, max_keys: usize) -> Self {
        let max_keys = max_keys.max(1);
        let state = State {
            failed_auth: rules
                .failed_auth
                .map(|rule| BurstTracker::new(rule, max_keys)),
            tool_spike: rules
                .tool_spike
                .map(|rule| BurstTracker::new(rule, max_keys)),
            lockouts: rules
                .repeated_lockouts
                .map(|rule| BurstTracker::new(rule, max_keys)),
        };
        Self {
            rules,
            state: Mutex::new(state),
        }
    }

    /// The rules this detector applies.
    pub fn rules(&self) -> &AnomalyRules {
        &self.rules
    }

    /// How many keys the burst rules currently track, all rules together (for metrics and
    /// tests; never more than the key bound times the number of burst rules).
    pub fn tracked_keys(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        [&state.failed_auth, &state.tool_spike, &state.lockouts]
            .into_iter()
            .flatten()
            .map(|tracker| tracker.keys.len())
            .sum()
    }

    /// Feed one audit event; returns the anomalies it completes (usually none), in the order
    /// failed-auth burst, tool-call spike, repeated lockouts, large transaction, after hours.
    ///
    /// Only the event's `time_ms` is used as the time; events may arrive slightly out of
    /// order, and one older than a key's window is not counted.
    pub fn observe(&self, event: &AuditEvent) -> Vec<Anomaly> {
        let mut found = Vec::new();
        let is_failed_auth = matches!(event.kind, AuditKind::AuthFailed | AuditKind::TokenRefused);
        let is_tool_call = event.kind == AuditKind::ToolCalled;
        let is_lockout =
            event.kind == AuditKind::Lockout && event.outcome == Some(Outcome::VerificationLockout);
        if is_failed_auth || is_tool_call || is_lockout {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if is_failed_auth {
                if let Some(tracker) = state.failed_auth.as_mut() {
                    let subject = subject_of(event.source.as_deref());
                    if tracker.observe(&subject, event.time_ms) {
                        let detail = format!(
                            "more than {} failed authentications from {subject} within {}",
                            tracker.rule.max,
                            human_duration(tracker.rule.window)
                        );
                        found.push(anomaly(FAILED_AUTH_BURST, subject, detail, event));
                    }
                }
            }
            if is_tool_call {
                if let Some(tracker) = state.tool_spike.as_mut() {
                    let subject = subject_of(event.caller.as_deref());
                    if tracker.observe(&subject, event.time_ms) {
                        let detail = format!(
                            "more than {} tool calls from caller {subject} within {}",
                            tracker.rule.max,
                            human_duration(tracker.rule.window)
                        );
                        found.push(anomaly(TOOL_CALL_SPIKE, subject, detail, event));
                    }
                }
            }
            if is_lockout {
                if let Some(tracker) = state.lockouts.as_mut() {
                    let subject = lockout_subject(event);
                    if tracker.observe(&subject, event.time_ms) {
                        let detail = format!(
                            "more than {} verification lockouts of subject {subject} within {}",
                            tracker.rule.max,
                            human_duration(tracker.rule.window)
                        );
                        found.push(anomaly(REPEATED_LOCKOUTS, subject, detail, event));
                    }
                }
            }
        }
        if let Some(rule) = &self.rules.large_transaction {
            if let Some(found_one) = large_transaction(rule, event) {
                found.push(found_one);
            }
        }
        if let Some(hours) = &self.rules.after_hours {
            if is_tool_call {
                if let Some(found_one) = after_hours(hours, event) {
                    found.push(found_one);
                }
            }
        }
        found
    }
}

fn anomaly(rule: &'static str, subject: String, detail: String, event: &AuditEvent) -> Anomaly {
    Anomaly {
        rule,
        subject,
        detail,
        time_ms: event.time_ms,
    }
}

/// `agent/subject` of a lockout event, each part bounded like any subject.
fn lockout_subject(event: &AuditEvent) -> String {
    let pseudonym = event
        .arguments
        .as_ref()
        .and_then(|arguments| arguments.get("subject"))
        .and_then(Value::as_str);
    let agent = subject_of(event.agent.as_deref());
    let pseudonym = subject_of(pseudonym);
    subject_of(Some(&format!("{agent}/{pseudonym}")))
}

fn large_transaction(rule: &LargeTransactionRule, event: &AuditEvent) -> Option<Anomaly> {
    let function = event.function.as_deref()?;
    if rule
        .function
        .as_deref()
        .is_some_and(|only| only != function)
    {
        return None;
    }
    let arguments = event.arguments.as_ref()?;
    let value = if rule.field.starts_with('/') {
        arguments.pointer(&rule.field)
    } else {
        arguments.get(&rule.field)
    }?;
    let amount = amount_of(value)?;
    if amount <= rule.threshold {
        return None;
    }
    let subject = subject_of(Some(function));
    let detail = format!(
        "{subject} was called with {} {amount}, above the threshold of {}",
        subject_of(Some(&rule.field)),
        rule.threshold
    );
    Some(anomaly(LARGE_TRANSACTION, subject, detail, event))
}

fn after_hours(hours: &BusinessHours, event: &AuditEvent) -> Option<Anomaly> {
    let local = LocalTime::at(event.time_ms, hours.utc_offset_minutes);
    if hours.is_open_local(&local) {
        return None;
    }
    let subject = subject_of(event.function.as_deref());
    let days = if hours.weekdays_only {
        "Monday to Friday"
    } else {
        "every day"
    };
    let detail = format!(
        "{subject} was called at {} on a {} (UTC{}), outside business hours {}-{} {days}",
        clock(local.minute_of_day),
        WEEKDAYS.get(local.weekday).copied().unwrap_or("day"),
        offset(hours.utc_offset_minutes),
        clock(hours.open_minute.min(MINUTES_PER_DAY)),
        clock(hours.close_minute.min(MINUTES_PER_DAY)),
    );
    Some(anomaly(AFTER_HOURS, subject, detail, event))
}

/// A JSON number or numeric string as a finite amount.
fn amount_of(value: &Value) -> Option<f64> {
    let amount = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => parse_amount(s)?,
        _ => return None,
    };
    amount.is_finite().then_some(amount)
}

/// `"6000"`, `" 6000.50 "`, `"$6,000.50"`, `"-12"`; not `"6.000,50"`, `"12 USD"` or `"1,00"`.
fn parse_amount(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.len() > 64 {
        return None;
    }
    let text = ['$', '€', '£']
        .iter()
        .find_map(|symbol| text.strip_prefix(*symbol))
        .map_or(text, str::trim_start);
    let plain: String = if text.contains(',') {
        let (integer, fraction) = match text.split_once('.') {
            Some((integer, fraction)) => (integer, Some(fraction)),
            None => (text, None),
        };
        let digits = integer.strip_prefix('-').unwrap_or(integer);
        let mut groups = digits.split(',');
        let first_ok = groups
            .next()
            .is_some_and(|g| (1..=3).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit()));
        let rest_ok = groups.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()));
        let fraction_ok = fraction.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit()));
        if !(first_ok && rest_ok && fraction_ok) {
            return None;
        }
        text.replace(',', "")
    } else {
        text.to_owned()
    };
    // Plain decimal text only: no exponents, signs other than a leading minus, `inf` or `NaN`.
    let body = plain.strip_prefix('-').unwrap_or(&plain);
    let decimal = !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && body.bytes().filter(|&b| b == b'.').count() <= 1
        && body.bytes().any(|b| b.is_ascii_digit());
    if !decimal {
        return None;
    }
    plain.parse().ok()
}

/// A field value as a safe, bounded subject: control characters replaced, at most
/// [`MAX_SUBJECT_CHARS`] characters, [`UNKNOWN_SUBJECT`] when absent or empty.
fn subject_of(value: Option<&str>) -> String {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(value) => value
            .chars()
            .take(MAX_SUBJECT_CHARS)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
        None => UNKNOWN_SUBJECT.to_owned(),
    }
}

fn clock(minute_of_day: u16) -> String {
    format!("{:02}:{:02}", minute_of_day / 60, minute_of_day % 60)
}

fn offset(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let abs = minutes.unsigned_abs();
    format!("{sign}{:02}:{:02}", abs / 60, abs % 60)
}

fn human_duration(window: Duration) -> String {
    let ms = window.as_millis();
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

fn millis(window: Duration) -> u64 {
    u64::try_from(window.as_millis()).unwrap_or(u64::MAX)
}

/// The sliding windows of one burst rule, one per key, with least-recently-seen eviction.
#[derive(Debug)]
struct BurstTracker {
    rule: BurstRule,
    window_ms: u64,
    max_keys: usize,
    keys: HashMap<String, KeyWindow>,
    /// Recency order: stamp → key; the smallest stamp is the least recently seen key.
    recency: BTreeMap<u64, String>,
    next_stamp: u64,
}

#[derive(Debug, Default)]
struct KeyWindow {
    /// Timestamps within the window, oldest first; at most `max + 1` of them.
    times: VecDeque<u64>,
    /// When the rule last fired for this key.
    fired_at: Option<u64>,
    /// This key's entry in `recency`.
    stamp: u64,
}

impl BurstTracker {
    fn new(rule: BurstRule, max_keys: usize) -> Self {
        Self {
            rule,
            window_ms: millis(rule.window),
            max_keys,
            keys: HashMap::new(),
            recency: BTreeMap::new(),
            next_stamp: 0,
        }
    }

    /// Count an event for `key` at `time`; whether the rule fires now.
    fn observe(&mut self, key: &str, time: u64) -> bool {
        let stamp = self.next_stamp;
        self.next_stamp = self.next_stamp.wrapping_add(1);
        if let Some(entry) = self.keys.get_mut(key) {
            self.recency.remove(&entry.stamp);
            entry.stamp = stamp;
        } else {
            while self.keys.len() >= self.max_keys {
                match self.recency.pop_first() {
                    Some((_, oldest)) => {
                        self.keys.remove(&oldest);
                    }
                    None => break,
                }
            }
            self.keys.insert(
                key.to_owned(),
                KeyWindow {
                    stamp,
                    ..KeyWindow::default()
                },
            );
        }
        self.recency.insert(stamp, key.to_owned());
        let window_ms = self.window_ms;
        let keep = usize::try_from(self.rule.max)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let Some(entry) = self.keys.get_mut(key) else {
            return false;
        };
        entry.count(time, window_ms, keep);
        let in_burst = entry.times.len() >= keep;
        let quiet = entry
            .fired_at
            .is_some_and(|fired| time < fired.saturating_add(window_ms));
        if in_burst && !quiet {
            entry.fired_at = Some(time);
            true
        } else {
            false
        }
    }
}

impl KeyWindow {
    /// Add `time` (kept sorted even when events arrive out of order), then drop what has left
    /// the window and all but the newest `keep` timestamps.
    fn count(&mut self, time: u64, window_ms: u64, keep: usize) {
        let latest = self.times.back().copied().unwrap_or(time).max(time);
        if time.saturating_add(window_ms) > latest {
            let at = self.times.partition_point(|&t| t <= time);
            self.times.insert(at, time);
        }
        while self
            .times
            .front()
            .is_some_and(|&t| t.saturating_add(window_ms) <= latest)
        {
            self.times.pop_front();
        }
        while self.times.len() > keep {
            self.times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests;
