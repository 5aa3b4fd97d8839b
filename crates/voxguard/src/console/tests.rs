//! Unit tests of the console's pure parts: timeouts from the environment, tool lists,
//! session ids, constant-time comparison and the audit summary.

use super::overview::summarize;
use super::*;

fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
    }
}

#[test]
fn timeouts_default_and_bounds() {
    assert_eq!(
        ConsoleTimeouts::from_lookup(lookup(&[])).unwrap(),
        ConsoleTimeouts::default()
    );
    let set = ConsoleTimeouts::from_lookup(lookup(&[
        ("VOXGUARD_CONSOLE_IDLE_SECS", "120"),
        ("VOXGUARD_CONSOLE_MAX_SECS", " 3600 "),
    ]))
    .unwrap();
    assert_eq!(set.idle, Duration::from_secs(120));
    assert_eq!(set.max, Duration::from_secs(3600));
    for bad in [
        &[("VOXGUARD_CONSOLE_IDLE_SECS", "59")][..],
        &[("VOXGUARD_CONSOLE_IDLE_SECS", "ten")][..],
        &[("VOXGUARD_CONSOLE_MAX_SECS", "604801")][..],
        &[
            ("VOXGUARD_CONSOLE_IDLE_SECS", "600"),
            ("VOXGUARD_CONSOLE_MAX_SECS", "300"),
        ][..],
    ] {
        let bad: &'static [(&'static str, &'static str)] = bad;
        let error = ConsoleTimeouts::from_lookup(lookup(bad)).unwrap_err();
        assert!(error.to_string().contains("VOXGUARD_CONSOLE_"), "{error}");
    }
}

#[test]
fn tool_lists() {
    assert_eq!(parse_tools("").unwrap().len(), 0);
    assert_eq!(
        parse_tools(" transfer_funds, ,close-account,transfer_funds ")
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        ["close-account", "transfer_funds"]
    );
    assert!(parse_tools("a b").is_none());
    assert!(parse_tools("<script>").is_none());
    assert!(parse_tools(&"x".repeat(65)).is_none());
    let many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
    assert!(parse_tools(&many.join(",")).is_none());
}

#[test]
fn session_ids_are_random_and_checked_before_lookup() {
    let a = new_secret();
    assert!(valid_id(&a));
    assert_ne!(a, new_secret());
    for bad in ["", "short", &format!("{a}x"), &a.replace(|_| true, "-")] {
        assert!(!valid_id(bad), "{bad}");
    }
    // The stored scope never contains the id itself.
    assert!(!scope_of(&a).contains(&a));
}

#[test]
fn csrf_comparison() {
    assert!(same(Some("abc"), "abc"));
    assert!(!same(Some("abd"), "abc"));
    assert!(!same(Some("ab"), "abc"));
    assert!(!same(None, "abc"));
    assert!(!same(Some(""), "abc"));
}

#[test]
fn the_summary_counts_refusals_and_finds_a_broken_link() {
    use voxguard_guard::{AuditEvent, AuditKind, Chain};
    let mut chain = Chain::genesis();
    let mut records = Vec::new();
    for (i, reason) in ["emergency_disabled", "token_invalid", "emergency_disabled"]
        .iter()
        .enumerate()
    {
        let mut event = AuditEvent::new(AuditKind::PolicyRefused, 1_000 + i as u64);
        event.outcome = Some(Outcome::Refused);
        event.reason = Some(reason.to_string());
        records.push(chain.append(event));
    }
    records.push(chain.append(AuditEvent::new(AuditKind::ToolCalled, 2_000)));
    let summary = summarize(&records, 100, &AnomalyRules::default());
    assert_eq!(summary.records, 4);
    assert_eq!(summary.broken_at, None);
    assert_eq!(summary.refusals["emergency_disabled"], 2);
    assert_eq!(summary.refusals["token_invalid"], 1);
    assert_eq!(summary.span, Some((1, 4)));
    assert!(!summary.capped);
    // An altered event no longer matches its hash.
    records[2].event.reason = Some("edited".into());
    assert_eq!(
        summarize(&records, 100, &AnomalyRules::default()).broken_at,
        Some(3)
    );
}

#[test]
fn the_summary_counts_calls_tool_calls_lockouts_and_replays_anomalies() {
    use serde_json::json;
    use voxguard_guard::{AuditEvent, AuditKind, Chain};
    let mut chain = Chain::genesis();
    let mut records = Vec::new();
    let mut push = |event: AuditEvent| records.push(chain.append(event));
    for (call, outcome) in [
        ("call-1", Outcome::Ok),
        ("call-1", Outcome::Failed),
        ("call-2", Outcome::Ok),
    ] {
        let mut event = AuditEvent::new(AuditKind::ToolCalled, 1_000);
        event.agent = Some("bank".into());
        event.call_id = Some(call.into());
        event.outcome = Some(outcome);
        push(event);
    }
    // An operator's read names a call too, but it is no call activity.
    let mut read = AuditEvent::new(AuditKind::RecordAccessed, 1_000);
    read.call_id = Some("call-3".into());
    push(read);
    for outcome in [
        Outcome::VerificationLockout,
        Outcome::VerificationLocked,
        Outcome::VerificationLocked,
    ] {
        let mut event = AuditEvent::new(AuditKind::Lockout, 2_000);
        event.outcome = Some(outcome);
        push(event);
    }
    // Twelve refused logins from one address within a minute, as the HTTP layer writes them:
    // the first at once, the other eleven folded into one record.
    for (count, time) in [(1, 3_000), (11, 40_000)] {
        let mut event = AuditEvent::new(AuditKind::AuthFailed, time);
        event.outcome = Some(Outcome::Refused);
        event.reason = Some("auth_invalid".into());
        event.source = Some("198.51.100.7".into());
        event.arguments = Some(json!({ "count": count, "window_secs": 60 }));
        push(event);
    }
    let summary = summarize(&records, 100, &AnomalyRules::default());
    assert_eq!(summary.calls, 2);
    assert_eq!(summary.tool_calls["ok"], 2);
    assert_eq!(summary.tool_calls["failed"], 1);
    assert_eq!(summary.lockouts, 1);
    assert_eq!(summary.locked_attempts, 2);
    assert_eq!(
        summary.refusals["auth_invalid"], 12,
        "the failures, not the records"
    );
    assert_eq!(
        summary
            .anomalies
            .get(voxguard_guard::anomaly::FAILED_AUTH_BURST),
        Some(&1)
    );
    // Without the rules, nothing is found; counted as single events, no burst either.
    assert!(summarize(&records, 100, &AnomalyRules::disabled())
        .anomalies
        .is_empty());
    let mut unfolded = records.clone();
    for record in &mut unfolded {
        record.event.arguments = None;
    }
    assert!(summarize(&unfolded, 100, &AnomalyRules::default())
        .anomalies
        .is_empty());
}

#[test]
fn record_paths() {
    assert_eq!(record_path("/records/rec_a"), Some(("rec_a", false)));
    assert_eq!(record_path("/records/rec_a/content"), Some(("rec_a", true)));
    for none in [
        "/records",
        "/records/",
        "/records//content",
        "/records/rec_a/export",
        "/records/rec_a/content/x",
        "/recordsx/rec_a",
    ] {
        assert_eq!(record_path(none), None, "{none}");
    }
}
