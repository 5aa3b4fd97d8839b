//! Anomaly detection over the audit trail: sliding-window rules that turn a stream of
//! [`AuditEvent`]s into [`Anomaly`] reports.
//!
//! Owns the *rules* and their state: failed-authentication bursts per source address, tool-call
//! spikes per (masked) caller, large transaction attempts (a configurable argument field above a
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
//! four digits) or not secret at all (source address, function name); they are cut to
//! [`MAX_SUBJECT_CHARS`] characters with control characters replaced, so a report is always safe
//! to put on one log line.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use crate::audit::AuditEvent;

/// [`Anomaly::rule`] of a failed-authentication burst from one source address.
pub const FAILED_AUTH_BURST: &str = "failed_auth_burst";
/// [`Anomaly::rule`] of a spike of tool calls from one caller.
pub const TOOL_CALL_SPIKE: &str = "tool_call_spike";
/// [`Anomaly::rule`] of a transaction attempt above the configured threshold.
pub const LARGE_TRANSACTION: &str = "large_transaction";
/// [`Anomaly::rule`] of a tool call outside business hours.
pub const AFTER_HOURS: &str = "after_hours";
/// Every rule name, e.g. to register metric labels up front.
pub const RULE_NAMES: [&str; 4] = [
    FAILED_AUTH_BURST,
    TOOL_CALL_SPIKE,
    LARGE_TRANSACTION,
    AFTER_HOURS,
];

/// How many keys (source addresses, callers) each burst rule tracks at most by default.
pub const DEFAULT_MAX_TRACKED_KEYS: usize = 10_000;

/// The longest subject (and burst key) kept, in characters; longer ones are cut.
pub const MAX_SUBJECT_CHARS: usize = 128;

/// The subject used when an event lacks the field a rule keys on (no source, withheld caller).
pub const UNKNOWN_SUBJECT: &str = "unknown";

/// Event kinds counted by the failed-authentication rule.
const FAILED_AUTH_KINDS: [&str; 2] = ["auth_failed", "token_refused"];
/// Event kind counted by the tool-call spike rule and checked by the after-hours rule.
const TOOL_CALLED: &str = "tool_called";

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
    /// ([`TOOL_CALL_SPIKE`]) or the function ([`LARGE_TRANSACTION`], [`AFTER_HOURS`]).
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
        [&state.failed_auth, &state.tool_spike]
            .into_iter()
            .flatten()
            .map(|tracker| tracker.keys.len())
            .sum()
    }

    /// Feed one audit event; returns the anomalies it completes (usually none), in the order
    /// failed-auth burst, tool-call spike, large transaction, after hours.
    ///
    /// Only the event's `time_ms` is used as the time; events may arrive slightly out of
    /// order, and one older than a key's window is not counted.
    pub fn observe(&self, event: &AuditEvent) -> Vec<Anomaly> {
        let mut found = Vec::new();
        let is_failed_auth = FAILED_AUTH_KINDS.contains(&event.kind.as_str());
        let is_tool_call = event.kind == TOOL_CALLED;
        if is_failed_auth || is_tool_call {
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
mod tests {
    use super::*;
    use serde_json::json;

    /// 2024-01-01T00:00:00Z, a Monday.
    const MONDAY: u64 = 1_704_067_200_000;
    const MINUTE: u64 = 60_000;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;

    fn auth_failed(source: &str, time_ms: u64) -> AuditEvent {
        AuditEvent {
            source: Some(source.to_owned()),
            ..AuditEvent::new("auth_failed", time_ms)
        }
    }

    fn tool_called(caller: &str, time_ms: u64) -> AuditEvent {
        AuditEvent {
            caller: Some(caller.to_owned()),
            function: Some("get_balance".to_owned()),
            outcome: Some("ok".to_owned()),
            source: Some("203.0.113.9".to_owned()),
            ..AuditEvent::new("tool_called", time_ms)
        }
    }

    fn transfer(arguments: Value) -> AuditEvent {
        AuditEvent {
            caller: Some("***4567".to_owned()),
            function: Some("transfer_funds".to_owned()),
            arguments: Some(arguments),
            outcome: Some("ok".to_owned()),
            ..AuditEvent::new("tool_called", MONDAY + 10 * HOUR)
        }
    }

    fn only(rules: AnomalyRules) -> AnomalyDetector {
        AnomalyDetector::new(rules)
    }

    fn auth_rule(max: u32, secs: u64) -> AnomalyRules {
        AnomalyRules {
            failed_auth: Some(BurstRule::new(max, Duration::from_secs(secs))),
            ..AnomalyRules::disabled()
        }
    }

    fn spike_rule(max: u32, secs: u64) -> AnomalyRules {
        AnomalyRules {
            tool_spike: Some(BurstRule::new(max, Duration::from_secs(secs))),
            ..AnomalyRules::disabled()
        }
    }

    fn hours_rule(hours: BusinessHours) -> AnomalyRules {
        AnomalyRules {
            after_hours: Some(hours),
            ..AnomalyRules::disabled()
        }
    }

    fn rules_fired(detector: &AnomalyDetector, event: &AuditEvent) -> Vec<&'static str> {
        detector.observe(event).iter().map(|a| a.rule).collect()
    }

    #[test]
    fn defaults_are_as_documented() {
        let rules = AnomalyRules::default();
        assert_eq!(
            rules.failed_auth,
            Some(BurstRule::new(10, Duration::from_secs(60)))
        );
        assert_eq!(
            rules.tool_spike,
            Some(BurstRule::new(30, Duration::from_secs(60)))
        );
        assert_eq!(
            rules.large_transaction,
            Some(LargeTransactionRule {
                function: None,
                field: "amount".to_owned(),
                threshold: 5000.0
            })
        );
        assert_eq!(rules.after_hours, None);
        let hours = BusinessHours::default();
        assert_eq!((hours.open_minute, hours.close_minute), (480, 1080));
        assert!(hours.weekdays_only);
        assert_eq!(hours.utc_offset_minutes, 0);
        let detector = AnomalyDetector::new(rules);
        assert_eq!(detector.rules().tool_spike.map(|r| r.max), Some(30));
        assert_eq!(
            RULE_NAMES,
            [
                "failed_auth_burst",
                "tool_call_spike",
                "large_transaction",
                "after_hours"
            ]
        );
    }

    #[test]
    fn failed_auth_burst_fires_on_the_event_past_max() {
        let detector = AnomalyDetector::new(AnomalyRules::default());
        for i in 0..10 {
            assert!(detector
                .observe(&auth_failed("198.51.100.7", MONDAY + i * 1000))
                .is_empty());
        }
        let fired = detector.observe(&auth_failed("198.51.100.7", MONDAY + 10_000));
        assert_eq!(fired.len(), 1, "{fired:?}");
        let anomaly = &fired[0];
        assert_eq!(anomaly.rule, FAILED_AUTH_BURST);
        assert_eq!(anomaly.subject, "198.51.100.7");
        assert_eq!(anomaly.time_ms, MONDAY + 10_000);
        assert_eq!(
            anomaly.detail,
            "more than 10 failed authentications from 198.51.100.7 within 60 s"
        );
        assert!(anomaly
            .to_string()
            .starts_with("failed_auth_burst: more than 10"));
    }

    #[test]
    fn token_refusals_count_as_failed_auth_and_other_kinds_do_not() {
        let detector = only(auth_rule(2, 60));
        let refused = |t| AuditEvent {
            source: Some("198.51.100.7".to_owned()),
            ..AuditEvent::new("token_refused", t)
        };
        let other = |t| AuditEvent {
            source: Some("198.51.100.7".to_owned()),
            ..AuditEvent::new("policy_refused", t)
        };
        for t in 0..10 {
            assert!(detector.observe(&other(MONDAY + t)).is_empty());
        }
        assert!(detector.observe(&refused(MONDAY + 10)).is_empty());
        assert!(detector
            .observe(&auth_failed("198.51.100.7", MONDAY + 11))
            .is_empty());
        assert_eq!(
            rules_fired(&detector, &refused(MONDAY + 12)),
            [FAILED_AUTH_BURST]
        );
    }

    #[test]
    fn bursts_are_counted_per_source() {
        let detector = only(auth_rule(3, 60));
        for i in 0..3 {
            for source in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
                assert!(detector
                    .observe(&auth_failed(source, MONDAY + i))
                    .is_empty());
            }
        }
        let fired = detector.observe(&auth_failed("198.51.100.2", MONDAY + 5));
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].subject, "198.51.100.2");
        // Events without a source address share one key.
        let anonymous = |t| AuditEvent::new("auth_failed", t);
        for t in 0..3 {
            assert!(detector.observe(&anonymous(MONDAY + t)).is_empty());
        }
        let fired = detector.observe(&anonymous(MONDAY + 3));
        assert_eq!(fired[0].subject, UNKNOWN_SUBJECT);
    }

    #[test]
    fn window_boundary_is_exclusive_of_the_oldest_event() {
        // 10 events at t = 0..9 s; the 11th at exactly 60 s after the first: the first has
        // left the window (now - t < window is false), so only 10 are within it.
        let detector = only(auth_rule(10, 60));
        let ip = "198.51.100.7";
        for i in 0..10 {
            assert!(detector
                .observe(&auth_failed(ip, MONDAY + i * 1000))
                .is_empty());
        }
        assert!(detector
            .observe(&auth_failed(ip, MONDAY + 60_000))
            .is_empty());
        // One millisecond earlier it would have fired.
        let detector = only(auth_rule(10, 60));
        for i in 0..10 {
            assert!(detector
                .observe(&auth_failed(ip, MONDAY + i * 1000))
                .is_empty());
        }
        assert_eq!(
            rules_fired(&detector, &auth_failed(ip, MONDAY + 59_999)),
            [FAILED_AUTH_BURST]
        );
    }

    #[test]
    fn a_burst_fires_once_per_window() {
        let detector = only(auth_rule(3, 60));
        let ip = "198.51.100.7";
        let mut fired_at = Vec::new();
        // One failure a second for three minutes: a sustained burst.
        for s in 0..180 {
            let t = MONDAY + s * 1000;
            if !detector.observe(&auth_failed(ip, t)).is_empty() {
                fired_at.push(s);
            }
        }
        // First at the 4th event (s = 3), then again only once a full window has passed since.
        assert_eq!(fired_at, [3, 63, 123]);
    }

    #[test]
    fn refire_needs_the_burst_to_still_be_on_after_the_window() {
        let detector = only(auth_rule(3, 60));
        let ip = "198.51.100.7";
        for s in 0..4 {
            let fired = detector.observe(&auth_failed(ip, MONDAY + s * 1000));
            assert_eq!(fired.len(), usize::from(s == 3));
        }
        // More failures within the same window stay quiet.
        for s in 4..20 {
            assert!(detector
                .observe(&auth_failed(ip, MONDAY + s * 1000))
                .is_empty());
        }
        // Past the quiet period a single failure is no burst: the window has emptied.
        assert!(detector
            .observe(&auth_failed(ip, MONDAY + 200_000))
            .is_empty());
    }

    #[test]
    fn expired_events_no_longer_count() {
        let detector = only(auth_rule(3, 60));
        let ip = "198.51.100.7";
        for s in 0..3 {
            assert!(detector
                .observe(&auth_failed(ip, MONDAY + s * 1000))
                .is_empty());
        }
        // After a quiet minute the count starts again from scratch: three more do not fire...
        let later = MONDAY + 2 * 60_000;
        for s in 0..3 {
            assert!(detector.observe(&auth_failed(ip, later + s)).is_empty());
        }
        // ...the fourth does.
        assert_eq!(
            rules_fired(&detector, &auth_failed(ip, later + 3)),
            [FAILED_AUTH_BURST]
        );
    }

    #[test]
    fn out_of_order_events_are_counted_and_stale_ones_ignored() {
        let detector = only(auth_rule(3, 60));
        let ip = "198.51.100.7";
        assert!(detector
            .observe(&auth_failed(ip, MONDAY + 100_000))
            .is_empty());
        // Older than the window relative to the newest event: not counted.
        for t in [0, 1, 2, 40_000] {
            assert!(detector.observe(&auth_failed(ip, MONDAY + t)).is_empty());
        }
        // Slightly late events within the window count.
        assert!(detector
            .observe(&auth_failed(ip, MONDAY + 99_000))
            .is_empty());
        assert!(detector
            .observe(&auth_failed(ip, MONDAY + 98_000))
            .is_empty());
        assert_eq!(
            rules_fired(&detector, &auth_failed(ip, MONDAY + 99_500)),
            [FAILED_AUTH_BURST]
        );
    }

    #[test]
    fn edge_parameters() {
        // max 0: the first event is already a burst.
        let detector = only(auth_rule(0, 60));
        assert_eq!(
            rules_fired(&detector, &auth_failed("198.51.100.7", MONDAY)),
            [FAILED_AUTH_BURST]
        );
        // A zero window never fires.
        let detector = only(auth_rule(0, 0));
        for t in 0..5 {
            assert!(detector
                .observe(&auth_failed("198.51.100.7", MONDAY))
                .is_empty());
            assert!(detector
                .observe(&auth_failed("198.51.100.7", MONDAY + t))
                .is_empty());
        }
        // Sub-second windows are described in ms.
        let detector = only(AnomalyRules {
            failed_auth: Some(BurstRule::new(0, Duration::from_millis(1500))),
            ..AnomalyRules::disabled()
        });
        let fired = detector.observe(&auth_failed("198.51.100.7", MONDAY));
        assert!(fired[0].detail.ends_with("within 1500 ms"), "{fired:?}");
    }

    #[test]
    fn tool_call_spike_per_caller() {
        let detector = AnomalyDetector::new(AnomalyRules::default());
        for i in 0..30 {
            assert!(detector
                .observe(&tool_called("***4567", MONDAY + 10 * HOUR + i * 100))
                .is_empty());
            assert!(detector
                .observe(&tool_called("***9999", MONDAY + 10 * HOUR + i * 100))
                .is_empty());
        }
        let fired = detector.observe(&tool_called("***4567", MONDAY + 10 * HOUR + 5_000));
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].rule, TOOL_CALL_SPIKE);
        assert_eq!(fired[0].subject, "***4567");
        assert_eq!(
            fired[0].detail,
            "more than 30 tool calls from caller ***4567 within 60 s"
        );
        // Again within the window: suppressed. The other caller is at exactly 30: quiet too.
        assert!(detector
            .observe(&tool_called("***4567", MONDAY + 10 * HOUR + 6_000))
            .is_empty());
        assert_eq!(
            rules_fired(
                &detector,
                &tool_called("***9999", MONDAY + 10 * HOUR + 6_000)
            ),
            [TOOL_CALL_SPIKE]
        );
    }

    #[test]
    fn tool_spike_counts_only_tool_calls_and_pools_unknown_callers() {
        let detector = only(spike_rule(2, 60));
        let refused = AuditEvent {
            caller: Some("***4567".to_owned()),
            ..AuditEvent::new("policy_refused", MONDAY)
        };
        for _ in 0..5 {
            assert!(detector.observe(&refused).is_empty());
        }
        let withheld = |t| AuditEvent {
            function: Some("get_balance".to_owned()),
            ..AuditEvent::new("tool_called", t)
        };
        assert!(detector.observe(&withheld(MONDAY)).is_empty());
        assert!(detector.observe(&withheld(MONDAY + 1)).is_empty());
        let fired = detector.observe(&withheld(MONDAY + 2));
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].subject, UNKNOWN_SUBJECT);
        // Failed and refused tool calls are tool calls too.
        let detector = only(spike_rule(1, 60));
        let mut failed = tool_called("***4567", MONDAY);
        failed.outcome = Some("failed".to_owned());
        assert!(detector.observe(&failed).is_empty());
        failed.outcome = Some("refused".to_owned());
        assert_eq!(rules_fired(&detector, &failed), [TOOL_CALL_SPIKE]);
    }

    #[test]
    fn large_transaction_fires_strictly_above_the_threshold() {
        let detector = AnomalyDetector::new(AnomalyRules::default());
        assert!(detector
            .observe(&transfer(json!({"amount": 5000})))
            .is_empty());
        assert!(detector
            .observe(&transfer(json!({"amount": 5000.0})))
            .is_empty());
        assert!(detector
            .observe(&transfer(json!({"amount": "5000.00"})))
            .is_empty());
        assert!(detector
            .observe(&transfer(json!({"amount": 150})))
            .is_empty());
        let fired = detector.observe(&transfer(json!({"amount": 5000.01})));
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].rule, LARGE_TRANSACTION);
        assert_eq!(fired[0].subject, "transfer_funds");
        assert_eq!(fired[0].time_ms, MONDAY + 10 * HOUR);
        assert_eq!(
            fired[0].detail,
            "transfer_funds was called with amount 5000.01, above the threshold of 5000"
        );
    }

    #[test]
    fn numeric_strings_are_amounts_and_other_values_are_not() {
        let detector = AnomalyDetector::new(AnomalyRules::default());
        for amount in [
            "6000",
            " 6000.50 ",
            "$6,000.50",
            "€ 7500",
            "£12,345",
            "1,000,000",
        ] {
            assert_eq!(
                rules_fired(&detector, &transfer(json!({ "amount": amount }))),
                [LARGE_TRANSACTION],
                "{amount}"
            );
        }
        for amount in [
            json!("6.000,50"),
            json!("6000 USD"),
            json!("60,00"),
            json!("1e9"),
            json!("inf"),
            json!("NaN"),
            json!("[REDACTED]"),
            json!("-9000"),
            json!(-9000),
            json!(""),
            json!(null),
            json!(true),
            json!([9000]),
            json!({"value": 9000}),
        ] {
            assert!(
                detector
                    .observe(&transfer(json!({ "amount": amount })))
                    .is_empty(),
                "{amount}"
            );
        }
        // No amount field, no arguments, or no function: nothing to judge.
        assert!(detector
            .observe(&transfer(json!({"total": 9000})))
            .is_empty());
        let mut bare = transfer(json!({"amount": 9000}));
        bare.arguments = None;
        assert!(detector.observe(&bare).is_empty());
        let mut nameless = transfer(json!({"amount": 9000}));
        nameless.function = None;
        assert!(detector.observe(&nameless).is_empty());
    }

    #[test]
    fn large_transaction_counts_refused_attempts_and_honours_function_and_field() {
        let detector = AnomalyDetector::new(AnomalyRules::default());
        let mut refused = transfer(json!({"amount": 9000}));
        refused.kind = "policy_refused".to_owned();
        refused.outcome = Some("refused".to_owned());
        assert_eq!(rules_fired(&detector, &refused), [LARGE_TRANSACTION]);

        let detector = only(AnomalyRules {
            large_transaction: Some(LargeTransactionRule {
                function: Some("wire".to_owned()),
                field: "/payment/total".to_owned(),
                threshold: 100.0,
            }),
            ..AnomalyRules::disabled()
        });
        let mut wire = transfer(json!({"payment": {"total": "100.50"}}));
        assert!(detector.observe(&wire).is_empty(), "other function");
        wire.function = Some("wire".to_owned());
        let fired = detector.observe(&wire);
        assert_eq!(fired.len(), 1);
        assert!(
            fired[0].detail.contains("/payment/total 100.5"),
            "{fired:?}"
        );
        wire.arguments = Some(json!({"payment": {"total": 100}}));
        assert!(detector.observe(&wire).is_empty());
    }

    #[test]
    fn details_hold_no_argument_values_but_the_amount() {
        let secrets = json!({
            "amount": "7,250.00",
            "to_account": "ACCT-99887766",
            "memo": "rent for flat 4b",
            "pin": "8421",
            "card": "4111 1111 1111 1111",
            "email": "someone@example.com",
        });
        let values = ["99887766", "rent", "8421", "4111", "someone@example.com"];
        let detector = only(AnomalyRules {
            failed_auth: Some(BurstRule::new(0, Duration::from_secs(60))),
            tool_spike: Some(BurstRule::new(0, Duration::from_secs(60))),
            large_transaction: Some(LargeTransactionRule::default()),
            after_hours: Some(BusinessHours::default()),
        });
        let mut event = transfer(secrets.clone());
        event.time_ms = MONDAY + 23 * HOUR;
        let fired = detector.observe(&event);
        assert_eq!(
            fired.iter().map(|a| a.rule).collect::<Vec<_>>(),
            [TOOL_CALL_SPIKE, LARGE_TRANSACTION, AFTER_HOURS]
        );
        let mut auth = auth_failed("198.51.100.7", MONDAY);
        auth.arguments = Some(secrets);
        auth.function = Some("transfer_funds".to_owned());
        let fired: Vec<_> = fired.into_iter().chain(detector.observe(&auth)).collect();
        assert_eq!(fired.len(), 5, "{fired:?}");
        for anomaly in &fired {
            for value in values {
                assert!(!anomaly.detail.contains(value), "{anomaly:?}");
                assert!(!anomaly.subject.contains(value), "{anomaly:?}");
            }
        }
        let large: Vec<_> = fired
            .iter()
            .filter(|a| a.rule == LARGE_TRANSACTION)
            .collect();
        assert_eq!(large.len(), 2);
        assert!(large.iter().all(|a| a.detail.contains("7250")));
        assert!(fired
            .iter()
            .filter(|a| a.rule != LARGE_TRANSACTION)
            .all(|a| !a.detail.contains("7250") && !a.detail.contains("7,250")));
    }

    #[test]
    fn after_hours_boundaries() {
        let detector = only(hours_rule(BusinessHours::default()));
        let at = |t| AuditEvent {
            function: Some("transfer_funds".to_owned()),
            ..AuditEvent::new("tool_called", t)
        };
        // Monday: open 08:00 (inclusive) to 18:00 (exclusive).
        assert_eq!(
            rules_fired(&detector, &at(MONDAY + 8 * HOUR - 1)),
            [AFTER_HOURS]
        );
        assert!(detector.observe(&at(MONDAY + 8 * HOUR)).is_empty());
        assert!(detector.observe(&at(MONDAY + 18 * HOUR - 1)).is_empty());
        let fired = detector.observe(&at(MONDAY + 18 * HOUR));
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].subject, "transfer_funds");
        assert_eq!(
            fired[0].detail,
            "transfer_funds was called at 18:00 on a Monday (UTC+00:00), outside business \
             hours 08:00-18:00 Monday to Friday"
        );
        // Friday noon is open; Saturday and Sunday noon are not.
        assert!(detector
            .observe(&at(MONDAY + 4 * DAY + 12 * HOUR))
            .is_empty());
        let saturday = detector.observe(&at(MONDAY + 5 * DAY + 12 * HOUR));
        assert!(saturday[0].detail.contains("on a Saturday"), "{saturday:?}");
        assert_eq!(
            rules_fired(&detector, &at(MONDAY + 6 * DAY + 12 * HOUR)),
            [AFTER_HOURS]
        );
        // Without weekdays_only the weekend is like any day.
        let every_day = only(hours_rule(BusinessHours {
            weekdays_only: false,
            ..BusinessHours::default()
        }));
        assert!(every_day
            .observe(&at(MONDAY + 5 * DAY + 12 * HOUR))
            .is_empty());
        assert!(every_day.observe(&at(MONDAY + 5 * DAY + 20 * HOUR))[0]
            .detail
            .ends_with("08:00-18:00 every day"));
    }

    #[test]
    fn after_hours_only_judges_tool_calls() {
        let detector = only(hours_rule(BusinessHours::default()));
        let night = MONDAY + 2 * HOUR;
        for kind in [
            "auth_failed",
            "policy_refused",
            "token_refused",
            "config_changed",
        ] {
            assert!(
                detector.observe(&AuditEvent::new(kind, night)).is_empty(),
                "{kind}"
            );
        }
        assert_eq!(
            rules_fired(&detector, &AuditEvent::new("tool_called", night)),
            [AFTER_HOURS]
        );
        // Off by default.
        let default = AnomalyDetector::new(AnomalyRules::default());
        assert!(default
            .observe(&AuditEvent::new("tool_called", night))
            .is_empty());
    }

    #[test]
    fn utc_offset_shifts_hours_and_weekday() {
        let at = |t| AuditEvent::new("tool_called", t);
        // UTC-05:00: 12:59 UTC is 07:59 local (closed), 13:00 UTC is 08:00 local (open).
        let new_york = only(hours_rule(BusinessHours {
            utc_offset_minutes: -300,
            ..BusinessHours::default()
        }));
        assert_eq!(
            rules_fired(&new_york, &at(MONDAY + 13 * HOUR - 1)),
            [AFTER_HOURS]
        );
        assert!(new_york.observe(&at(MONDAY + 13 * HOUR)).is_empty());
        // Monday 02:00 UTC is Sunday 21:00 in UTC-05:00.
        let fired = new_york.observe(&at(MONDAY + 2 * HOUR));
        assert!(
            fired[0].detail.contains("21:00 on a Sunday (UTC-05:00)"),
            "{fired:?}"
        );
        // UTC+05:30: Friday 23:00 UTC is Saturday 04:30 local.
        let india = BusinessHours {
            utc_offset_minutes: 330,
            ..BusinessHours::default()
        };
        let fired = only(hours_rule(india)).observe(&at(MONDAY + 4 * DAY + 23 * HOUR));
        assert!(
            fired[0].detail.contains("04:30 on a Saturday (UTC+05:30)"),
            "{fired:?}"
        );
        assert!(india.is_open(MONDAY + 3 * HOUR) && !india.is_open(MONDAY + 2 * HOUR));
        // Before the epoch in local time: Wednesday 1969-12-31 14:00 in UTC-10:00.
        assert!(BusinessHours {
            utc_offset_minutes: -600,
            ..BusinessHours::default()
        }
        .is_open(0));
        assert!(!BusinessHours::default().is_open(0), "Thursday 00:00 UTC");
    }

    #[test]
    fn night_shift_and_round_the_clock_hours() {
        let night = BusinessHours {
            open_minute: 22 * 60,
            close_minute: 6 * 60,
            weekdays_only: false,
            utc_offset_minutes: 0,
        };
        assert!(night.is_open(MONDAY + 22 * HOUR));
        assert!(night.is_open(MONDAY + 23 * HOUR + 59 * MINUTE));
        assert!(night.is_open(MONDAY + DAY + 5 * HOUR + 59 * MINUTE));
        assert!(!night.is_open(MONDAY + 6 * HOUR));
        assert!(!night.is_open(MONDAY + 12 * HOUR));
        assert!(!night.is_open(MONDAY + 22 * HOUR - 1));
        let always = BusinessHours {
            open_minute: 0,
            close_minute: 0,
            weekdays_only: true,
            utc_offset_minutes: 0,
        };
        assert!(always.is_open(MONDAY + 3 * HOUR));
        assert!(!always.is_open(MONDAY + 5 * DAY + 3 * HOUR));
        // Minutes past the end of the day count as the end of the day.
        let whole_day = BusinessHours {
            open_minute: 0,
            close_minute: u16::MAX,
            weekdays_only: false,
            utc_offset_minutes: 0,
        };
        assert!(whole_day.is_open(MONDAY + DAY - 1));
    }

    #[test]
    fn tracked_keys_are_bounded_and_the_least_recent_is_forgotten() {
        // With max 1, a key's second event fires only if its first is still remembered.
        let detector = AnomalyDetector::with_max_keys(auth_rule(1, 60), 3);
        let t = MONDAY;
        let fires = |key: &str, time: u64| !detector.observe(&auth_failed(key, time)).is_empty();
        for key in ["A", "B", "C"] {
            assert!(!fires(key, t));
        }
        assert_eq!(detector.tracked_keys(), 3);
        assert!(fires("A", t + 1), "A is tracked");
        // Recency is now B, C, A: the newcomer D evicts B.
        assert!(!fires("D", t + 2));
        assert_eq!(detector.tracked_keys(), 3);
        assert!(fires("C", t + 3), "C is still tracked");
        // B was forgotten: its second failure counts as a first. Recency was A, D, C, so B's
        // return evicts A.
        assert!(!fires("B", t + 4), "B was evicted");
        assert!(fires("D", t + 5), "D is still tracked");
        assert!(!fires("A", t + 6), "A was evicted");
        assert_eq!(detector.tracked_keys(), 3);
        // Many distinct keys never grow the state past the bound.
        for i in 0..1000 {
            detector.observe(&auth_failed(&format!("198.51.100.{i}"), t + 5));
        }
        assert_eq!(detector.tracked_keys(), 3);
        // A bound of 0 is taken as 1.
        let tiny = AnomalyDetector::with_max_keys(auth_rule(1, 60), 0);
        tiny.observe(&auth_failed("A", t));
        tiny.observe(&auth_failed("B", t));
        assert_eq!(tiny.tracked_keys(), 1);
    }

    #[test]
    fn default_key_bound_holds_per_rule() {
        let detector = AnomalyDetector::new(AnomalyRules::default());
        for i in 0..(DEFAULT_MAX_TRACKED_KEYS as u64 + 500) {
            let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            detector.observe(&auth_failed(&ip, MONDAY + i));
            detector.observe(&tool_called(&format!("***{i:04}"), MONDAY + i));
        }
        assert_eq!(detector.tracked_keys(), 2 * DEFAULT_MAX_TRACKED_KEYS);
        // A disabled rule tracks nothing.
        let disabled = AnomalyDetector::new(AnomalyRules::disabled());
        for i in 0..100 {
            assert!(disabled
                .observe(&auth_failed("198.51.100.7", MONDAY + i))
                .is_empty());
            assert!(disabled
                .observe(&tool_called("***4567", MONDAY + i))
                .is_empty());
            assert!(disabled
                .observe(&transfer(json!({"amount": 1e9})))
                .is_empty());
        }
        assert_eq!(disabled.tracked_keys(), 0);
    }

    #[test]
    fn per_key_memory_is_bounded_by_max() {
        let detector = only(auth_rule(5, 3600));
        for i in 0..10_000 {
            detector.observe(&auth_failed("198.51.100.7", MONDAY + i));
        }
        let state = detector.state.lock().unwrap();
        let tracker = state.failed_auth.as_ref().unwrap();
        assert_eq!(tracker.keys["198.51.100.7"].times.len(), 6);
        assert_eq!(tracker.recency.len(), tracker.keys.len());
    }

    #[test]
    fn subjects_are_bounded_and_single_line() {
        let detector = only(auth_rule(0, 60));
        let hostile = format!("1.2.3.4\n{}", "x".repeat(500));
        let fired = detector.observe(&auth_failed(&hostile, MONDAY));
        let subject = &fired[0].subject;
        assert_eq!(subject.chars().count(), MAX_SUBJECT_CHARS);
        assert!(subject.starts_with("1.2.3.4?x"));
        assert!(!fired[0].detail.contains('\n'));
        // Blank counts as absent.
        let fired = detector.observe(&auth_failed("  ", MONDAY));
        assert_eq!(fired[0].subject, UNKNOWN_SUBJECT);
    }

    #[test]
    fn detector_is_shareable() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<AnomalyDetector>();
        assert_send_sync::<Anomaly>();
        let detector = std::sync::Arc::new(only(auth_rule(100, 60)));
        let handles: Vec<_> = (0..4)
            .map(|n| {
                let detector = detector.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .flat_map(|i| {
                            detector.observe(&auth_failed("198.51.100.7", MONDAY + n * 25 + i))
                        })
                        .count()
                })
            })
            .collect();
        let fired: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(fired, 0);
        // The 101st event within the window is the burst, whatever thread sent the others.
        assert_eq!(
            rules_fired(&detector, &auth_failed("198.51.100.7", MONDAY + 100)),
            [FAILED_AUTH_BURST]
        );
    }
}
