//! Unit tests of the anomaly rules and the detector.

use super::*;
use crate::audit::Outcome;
use serde_json::json;

/// 2024-01-01T00:00:00Z, a Monday.
const MONDAY: u64 = 1_704_067_200_000;
const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

fn auth_failed(source: &str, time_ms: u64) -> AuditEvent {
    AuditEvent {
        source: Some(source.to_owned()),
        ..AuditEvent::new(AuditKind::AuthFailed, time_ms)
    }
}

fn tool_called(caller: &str, time_ms: u64) -> AuditEvent {
    AuditEvent {
        caller: Some(caller.to_owned()),
        function: Some("get_balance".to_owned()),
        outcome: Some(Outcome::Ok),
        source: Some("203.0.113.9".to_owned()),
        ..AuditEvent::new(AuditKind::ToolCalled, time_ms)
    }
}

fn transfer(arguments: Value) -> AuditEvent {
    AuditEvent {
        caller: Some("***4567".to_owned()),
        function: Some("transfer_funds".to_owned()),
        arguments: Some(arguments),
        outcome: Some(Outcome::Ok),
        ..AuditEvent::new(AuditKind::ToolCalled, MONDAY + 10 * HOUR)
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
    assert_eq!(
        rules.repeated_lockouts,
        Some(BurstRule::new(2, Duration::from_secs(24 * 3600)))
    );
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
            "repeated_lockouts",
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
        ..AuditEvent::new(AuditKind::TokenRefused, t)
    };
    let other = |t| AuditEvent {
        source: Some("198.51.100.7".to_owned()),
        ..AuditEvent::new(AuditKind::PolicyRefused, t)
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
    let anonymous = |t| AuditEvent::new(AuditKind::AuthFailed, t);
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
        ..AuditEvent::new(AuditKind::PolicyRefused, MONDAY)
    };
    for _ in 0..5 {
        assert!(detector.observe(&refused).is_empty());
    }
    let withheld = |t| AuditEvent {
        function: Some("get_balance".to_owned()),
        ..AuditEvent::new(AuditKind::ToolCalled, t)
    };
    assert!(detector.observe(&withheld(MONDAY)).is_empty());
    assert!(detector.observe(&withheld(MONDAY + 1)).is_empty());
    let fired = detector.observe(&withheld(MONDAY + 2));
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].subject, UNKNOWN_SUBJECT);
    // Failed and refused tool calls are tool calls too.
    let detector = only(spike_rule(1, 60));
    let mut failed = tool_called("***4567", MONDAY);
    failed.outcome = Some(Outcome::Failed);
    assert!(detector.observe(&failed).is_empty());
    failed.outcome = Some(Outcome::Refused);
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
    refused.kind = AuditKind::PolicyRefused;
    refused.outcome = Some(Outcome::Refused);
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
        repeated_lockouts: Some(BurstRule::new(0, Duration::from_secs(60))),
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
        ..AuditEvent::new(AuditKind::ToolCalled, t)
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
        AuditKind::AuthFailed,
        AuditKind::PolicyRefused,
        AuditKind::TokenRefused,
        AuditKind::EmergencyToggled,
    ] {
        assert!(
            detector.observe(&AuditEvent::new(kind, night)).is_empty(),
            "{kind}"
        );
    }
    assert_eq!(
        rules_fired(&detector, &AuditEvent::new(AuditKind::ToolCalled, night)),
        [AFTER_HOURS]
    );
    // Off by default.
    let default = AnomalyDetector::new(AnomalyRules::default());
    assert!(default
        .observe(&AuditEvent::new(AuditKind::ToolCalled, night))
        .is_empty());
}

#[test]
fn utc_offset_shifts_hours_and_weekday() {
    let at = |t| AuditEvent::new(AuditKind::ToolCalled, t);
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

fn lockout(agent: &str, subject: Option<&str>, outcome: Outcome, time_ms: u64) -> AuditEvent {
    AuditEvent {
        agent: Some(agent.to_owned()),
        caller: Some("***4567".to_owned()),
        arguments: subject.map(|s| json!({ "subject": s })),
        outcome: Some(outcome),
        ..AuditEvent::new(AuditKind::Lockout, time_ms)
    }
}

#[test]
fn a_third_lockout_of_one_subject_within_a_day_fires() {
    let detector = AnomalyDetector::new(AnomalyRules::default());
    let lockout_at = |subject, t| lockout("bank", Some(subject), Outcome::VerificationLockout, t);
    // Two lockouts, and attempts while locked (which are not new lockouts): quiet.
    assert!(detector.observe(&lockout_at("a1b2", MONDAY)).is_empty());
    for minute in 1..10 {
        let locked = lockout(
            "bank",
            Some("a1b2"),
            Outcome::VerificationLocked,
            MONDAY + minute * MINUTE,
        );
        assert!(detector.observe(&locked).is_empty());
    }
    assert!(detector
        .observe(&lockout_at("a1b2", MONDAY + HOUR))
        .is_empty());
    // Other subjects and other agents keep their own count.
    assert!(detector
        .observe(&lockout_at("ffff", MONDAY + HOUR))
        .is_empty());
    assert!(detector
        .observe(&lockout(
            "shop",
            Some("a1b2"),
            Outcome::VerificationLockout,
            MONDAY + HOUR
        ))
        .is_empty());
    let fired = detector.observe(&lockout_at("a1b2", MONDAY + 3 * HOUR));
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].rule, REPEATED_LOCKOUTS);
    assert_eq!(fired[0].subject, "bank/a1b2");
    assert_eq!(
        fired[0].detail,
        "more than 2 verification lockouts of subject bank/a1b2 within 86400 s"
    );
    assert!(!fired[0].detail.contains("4567"));
    // Once per window.
    assert!(detector
        .observe(&lockout_at("a1b2", MONDAY + 4 * HOUR))
        .is_empty());
}

#[test]
fn lockouts_spread_over_more_than_a_day_do_not_fire() {
    let detector = AnomalyDetector::new(AnomalyRules::default());
    for day in 0..5 {
        let event = lockout(
            "bank",
            Some("a1b2"),
            Outcome::VerificationLockout,
            MONDAY + day * (DAY / 2 + HOUR),
        );
        assert!(detector.observe(&event).is_empty(), "day {day}");
    }
    // Without a subject the lockouts of an agent share one key; disabled means disabled.
    let fired: Vec<_> = (0..3)
        .flat_map(|i| {
            detector.observe(&lockout(
                "bank",
                None,
                Outcome::VerificationLockout,
                MONDAY + i * MINUTE,
            ))
        })
        .collect();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].subject, "bank/unknown");
    let off = only(AnomalyRules::disabled());
    for i in 0..5 {
        let event = lockout(
            "bank",
            Some("a1b2"),
            Outcome::VerificationLockout,
            MONDAY + i,
        );
        assert!(off.observe(&event).is_empty());
    }
}
