//! Comparing a step's expectations with the answer that came back, and saying what differs
//! in a way a person reads at a glance: one expected/got pair per failed expectation.
//!
//! It owns the meaning of each expectation (`refused`, `status`, `response_contains`,
//! `response_not_contains`, `action`), of a step without any (it must succeed: a 2xx SWAIG
//! answer without a refusal), and of what counts as a refusal or a SWAIG answer at all. It
//! must not send or print anything. Expectations are compared with the answer as it came;
//! every agent text it puts in a [`Mismatch`] goes through the caller's `hide` (masking)
//! before it is quoted or cut, so that escaping or a cut cannot split a secret.

use serde::Serialize;
use serde_json::Value;

use super::outcome::RefusalSeen;
use super::script::{Expect, Refused};
use crate::agent::swaig::is_stable_reason;
use crate::agent::Reply;

/// One expectation that did not hold.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Mismatch {
    /// Which expectation: `refused`, `status`, `response_contains`, `response_not_contains`,
    /// `action`, or `function` (the step could not be played).
    pub expectation: String,
    /// What the script expected.
    pub expected: String,
    /// What came back.
    pub actual: String,
}

impl Mismatch {
    fn new(expectation: &str, expected: String, actual: String) -> Self {
        Self {
            expectation: expectation.to_string(),
            expected,
            actual,
        }
    }
}

/// What the answer's `error` field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorField<'a> {
    /// No `error` (or `null`).
    Absent,
    /// A stable reason: 1 to 64 of `A-Z a-z 0-9 _ . -`.
    Readable(&'a str),
    /// Text that is not such a reason (it is compared, never shown).
    Unreadable(&'a str),
    /// Not text at all (`{"error": {"code": 1}}`).
    Malformed,
}

/// The `error` field of `reply`'s body.
pub fn error_field(reply: &Reply) -> ErrorField<'_> {
    match reply.body.get("error") {
        None | Some(Value::Null) => ErrorField::Absent,
        Some(Value::String(reason)) if is_stable_reason(reason) => ErrorField::Readable(reason),
        Some(Value::String(reason)) => ErrorField::Unreadable(reason),
        Some(_) => ErrorField::Malformed,
    }
}

/// Whether the call was refused: a non-2xx status, or an `error` of any kind.
pub fn refused(reply: &Reply) -> bool {
    !(200..300).contains(&reply.status) || error_field(reply) != ErrorField::Absent
}

/// Why the body is not a SWAIG answer (a JSON object with a `response` text or an
/// `action`), or `None` when it is one.
pub fn not_swaig(reply: &Reply) -> Option<String> {
    if let Some(text) = &reply.text {
        return Some(if text.is_empty() {
            "empty body".into()
        } else if text.chars().count() >= 2000 {
            format!("not JSON, over {} bytes", text.len())
        } else {
            format!("not JSON, {} bytes", text.len())
        });
    }
    match &reply.body {
        Value::Object(map)
            if map.get("response").is_some_and(Value::is_string)
                || map
                    .get("action")
                    .is_some_and(|a| a.is_array() || a.is_object()) =>
        {
            None
        }
        Value::Object(_) => Some("JSON without a response text or an action".into()),
        _ => Some("JSON that is not an object".into()),
    }
}

/// What is said of the body instead of printing it: `not JSON, N bytes` when it is not
/// JSON, or why a 2xx answer without an `error` is not a SWAIG answer.
pub fn body_note(reply: &Reply) -> Option<String> {
    if reply.text.is_some() || !refused(reply) {
        not_swaig(reply)
    } else {
        None
    }
}

/// Whether the call succeeded: not refused, and a SWAIG answer.
pub fn succeeded(reply: &Reply) -> bool {
    !refused(reply) && not_swaig(reply).is_none()
}

/// The text an expectation on the response is checked against: `response`, else the
/// refusal's sentence, else the body when it is not JSON.
pub fn response_text(reply: &Reply) -> Option<&str> {
    reply
        .response
        .as_deref()
        .or_else(|| reply.refusal.as_ref().and_then(|r| r.sentence.as_deref()))
        .or(reply.text.as_deref())
}

/// The response text as shown, `hide`-masked: `None` for a body that is not JSON (it is
/// described by [`body_note`], never printed).
pub fn shown_response(reply: &Reply, hide: &dyn Fn(&str) -> String) -> Option<String> {
    if reply.text.is_some() {
        return None;
    }
    response_text(reply).map(hide)
}

/// How the refusal looked: `not refused (HTTP 200)`, `refused: verification_required (HTTP
/// 200)`, `refused (unreadable reason) (HTTP 200)`, `refused: HTTP 500 without a reason`,
/// `not a SWAIG answer: not JSON, 15 bytes (HTTP 200)`.
pub fn refusal_of(reply: &Reply, hide: &dyn Fn(&str) -> String) -> String {
    let status = reply.status;
    match error_field(reply) {
        ErrorField::Readable(reason) => format!("refused: {} (HTTP {status})", hide(reason)),
        ErrorField::Unreadable(_) => format!("refused (unreadable reason) (HTTP {status})"),
        ErrorField::Malformed => format!("refused (malformed error) (HTTP {status})"),
        ErrorField::Absent if !(200..300).contains(&status) => {
            format!("refused: HTTP {status} without a reason")
        }
        ErrorField::Absent => match not_swaig(reply) {
            Some(why) => format!("not a SWAIG answer: {why} (HTTP {status})"),
            None => format!("not refused (HTTP {status})"),
        },
    }
}

/// The refusal of `reply` as shown, `hide`-masked: its stable reason, or the problem with
/// it; `None` when the body has no `error`.
pub fn refusal_seen(reply: &Reply, hide: &dyn Fn(&str) -> String) -> Option<RefusalSeen> {
    let (reason, problem) = match error_field(reply) {
        ErrorField::Absent => return None,
        ErrorField::Readable(reason) => (Some(hide(reason)), None),
        ErrorField::Unreadable(_) => (None, Some("unreadable reason".to_string())),
        ErrorField::Malformed => (None, Some("malformed error".to_string())),
    };
    let sentence = ["response", "message"]
        .iter()
        .find_map(|key| reply.body.get(*key).and_then(Value::as_str))
        .map(hide);
    Some(RefusalSeen {
        reason,
        sentence,
        problem,
    })
}

/// Whether an action takes effect: one whose value is `false` (`{"hangup": false}`) does not.
pub fn takes_effect(raw: &Value) -> bool {
    raw != &Value::Bool(false)
}

/// The action kinds of `reply`, joined (`hangup (false)` for one without effect), or
/// `no actions`.
pub fn kinds_of(reply: &Reply) -> String {
    if reply.actions.is_empty() {
        "no actions".into()
    } else {
        reply
            .actions
            .iter()
            .map(|action| {
                if takes_effect(&action.raw) {
                    action.kind.clone()
                } else {
                    format!("{} (false)", action.kind)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `text` quoted, at most 300 characters. Mask before quoting: quoting escapes `"` and `\`
/// and the cut may split a secret.
fn quoted(text: &str) -> String {
    let cut: String = text.chars().take(300).collect();
    if cut.len() < text.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}

/// Every expectation of `expect` that `reply` does not meet, in the order status, refused,
/// response, action. The texts shown went through `hide` before being quoted or cut.
pub fn compare(expect: &Expect, reply: &Reply, hide: &dyn Fn(&str) -> String) -> Vec<Mismatch> {
    let mut out = Vec::new();
    if let Some(status) = expect.status {
        if reply.status != status {
            out.push(Mismatch::new(
                "status",
                format!("HTTP {status}"),
                format!("HTTP {}", reply.status),
            ));
        }
    }
    let reason = match error_field(reply) {
        ErrorField::Readable(reason) | ErrorField::Unreadable(reason) => Some(reason),
        ErrorField::Absent | ErrorField::Malformed => None,
    };
    let wanted = match &expect.refused {
        Some(Refused::Reason(wanted)) if reason != Some(wanted.as_str()) => {
            Some(format!("refused: {}", hide(wanted)))
        }
        Some(Refused::Flag(true)) if !refused(reply) => Some("refused (any reason)".into()),
        Some(Refused::Flag(false)) | None if expect.must_succeed() && !succeeded(reply) => {
            Some("not refused (a 2xx SWAIG answer, no refusal reason)".into())
        }
        _ => None,
    };
    if let Some(wanted) = wanted {
        out.push(Mismatch::new("refused", wanted, refusal_of(reply, hide)));
    }
    let text = response_text(reply);
    let got = || match (shown_response(reply, hide), not_swaig(reply)) {
        (Some(shown), _) => quoted(&shown),
        (None, Some(why)) if reply.text.is_some() => format!("({why})"),
        _ => "no response text".into(),
    };
    for wanted in &expect.response_contains {
        if !text.is_some_and(|text| text.contains(wanted.as_str())) {
            out.push(Mismatch::new(
                "response_contains",
                format!("response containing {}", quoted(&hide(wanted))),
                got(),
            ));
        }
    }
    for unwanted in &expect.response_not_contains {
        if text.is_some_and(|text| text.contains(unwanted.as_str())) {
            out.push(Mismatch::new(
                "response_not_contains",
                format!("response without {}", quoted(&hide(unwanted))),
                got(),
            ));
        }
    }
    for kind in &expect.action {
        let present = reply
            .actions
            .iter()
            .any(|action| &action.kind == kind && takes_effect(&action.raw));
        if !present {
            out.push(Mismatch::new(
                "action",
                format!("action {}", hide(kind)),
                hide(&kinds_of(reply)),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::mask::Secrets;
    use crate::agent::swaig::decode_actions;
    use crate::agent::swaig::Refusal;
    use serde_json::{json, Value};

    fn reply(status: u16, body: Value) -> Reply {
        Reply {
            status,
            refusal: body
                .get("error")
                .and_then(Value::as_str)
                .map(|reason| Refusal {
                    reason: reason.into(),
                    sentence: body.get("response").and_then(Value::as_str).map(Into::into),
                }),
            response: body.get("response").and_then(Value::as_str).map(Into::into),
            actions: decode_actions(&body),
            text: None,
            body,
        }
    }

    /// An answer whose body is not JSON.
    fn raw(status: u16, text: &str) -> Reply {
        Reply {
            status,
            refusal: None,
            response: None,
            actions: Vec::new(),
            text: Some(text.into()),
            body: Value::Null,
        }
    }

    fn expect(yaml: &str) -> Expect {
        serde_norway::from_str(yaml).unwrap()
    }

    fn shown(text: &str) -> String {
        text.to_string()
    }

    fn compare_shown(expect: &Expect, reply: &Reply) -> Vec<Mismatch> {
        compare(expect, reply, &shown)
    }

    #[test]
    fn a_matching_answer_has_no_mismatch() {
        let ok = reply(
            200,
            json!({"response": "Transferring you to sales now.", "action": [
                {"SWML": {"sections": {"main": [{"connect": {"to": "+1"}}]}}}
            ]}),
        );
        assert!(compare_shown(&expect("{}"), &ok).is_empty());
        assert!(compare_shown(
            &expect("{response_contains: [sales, Transferring], action: connect, refused: false, status: 200, response_not_contains: billing}"),
            &ok
        )
        .is_empty());
        let refused = reply(
            200,
            json!({"error": "verification_required", "response": "Verify first."}),
        );
        assert!(compare_shown(
            &expect("{refused: verification_required, response_contains: first}"),
            &refused
        )
        .is_empty());
        assert!(compare_shown(&expect("{refused: true}"), &refused).is_empty());
        let forbidden = reply(403, json!({"error": "token_missing"}));
        assert!(compare_shown(&expect("{status: 403}"), &forbidden).is_empty());
        // An answer with actions only is a SWAIG answer.
        let actions_only = reply(200, json!({"action": [{"hangup": true}]}));
        assert!(compare_shown(&expect("{action: hangup}"), &actions_only).is_empty());
    }

    #[test]
    fn each_failed_expectation_says_what_came_back() {
        let refused = reply(
            200,
            json!({"error": "verification_required", "response": "Verify first."}),
        );
        let got = compare_shown(&expect("{}"), &refused);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].actual, "refused: verification_required (HTTP 200)");

        let ok = reply(200, json!({"response": "Your balance is $150.00."}));
        let got = compare_shown(
            &expect("{refused: confirmation_required, response_contains: \"$999\", action: [connect], status: 201, response_not_contains: balance}"),
            &ok,
        );
        let names: Vec<&str> = got.iter().map(|m| m.expectation.as_str()).collect();
        assert_eq!(
            names,
            [
                "status",
                "refused",
                "response_contains",
                "response_not_contains",
                "action"
            ]
        );
        assert_eq!(got[1].expected, "refused: confirmation_required");
        assert_eq!(got[1].actual, "not refused (HTTP 200)");
        assert_eq!(got[2].actual, "\"Your balance is $150.00.\"");
        assert_eq!(got[4].actual, "no actions");
        let other = compare_shown(&expect("{refused: forbidden}"), &refused);
        assert_eq!(other[0].actual, "refused: verification_required (HTTP 200)");
        let server_error = reply(500, Value::Null);
        assert_eq!(
            compare_shown(&expect("{}"), &server_error)[0].actual,
            "refused: HTTP 500 without a reason"
        );
    }

    /// H1: the response is masked before it is quoted (which escapes `"` and `\`) and cut
    /// (which may split a secret).
    #[test]
    fn secrets_are_masked_before_quoting_and_cutting() {
        let password = "p\"w\\x-SECRETPASSWORD-1";
        let token = "TOKEN-abcdefghijklmnop";
        let mut secrets = Secrets::default();
        secrets.add(password);
        secrets.add(token);
        let hide = |text: &str| secrets.mask(text);
        let answer = reply(
            200,
            json!({"response": format!("your password is {password} and token {token}")}),
        );
        let got = compare(&expect("{response_contains: nothing}"), &answer, &hide);
        assert_eq!(
            got[0].actual, "\"your password is **** and token ****\"",
            "{got:?}"
        );
        // A secret straddling the 300-character cut.
        let long = format!("{}{token} tail", "x".repeat(290));
        let answer = reply(200, json!({ "response": long }));
        let got = compare(&expect("{response_contains: nothing}"), &answer, &hide);
        assert!(!got[0].actual.contains("TOKEN-abc"), "{got:?}");
        assert!(got[0].actual.contains("****"), "{got:?}");
        // The expected side (the script's text) too.
        let got = compare(
            &expect(&format!("{{response_contains: '{token}'}}")),
            &reply(200, json!({"response": "no"})),
            &hide,
        );
        assert!(!got[0].expected.contains(token), "{got:?}");
    }

    /// H2: only a stable reason is shown; anything else is an unreadable reason, still a
    /// refusal, and a readable one is masked.
    #[test]
    fn an_unreadable_reason_is_not_shown_but_still_refused() {
        let hostile = reply(
            200,
            json!({"error": "\u{1b}]0;pwned\u{7}\u{1b}[31mRED hunter2222"}),
        );
        let got = compare_shown(&expect("{}"), &hostile);
        assert_eq!(got[0].actual, "refused (unreadable reason) (HTTP 200)");
        assert!(compare_shown(&expect("{refused: true}"), &hostile).is_empty());
        let mut secrets = Secrets::default();
        secrets.add("hunter2222");
        let hide = |text: &str| secrets.mask(text);
        let reason_is_secret = reply(200, json!({"error": "hunter2222"}));
        assert_eq!(
            compare(&expect("{}"), &reason_is_secret, &hide)[0].actual,
            "refused: **** (HTTP 200)"
        );
    }

    /// H5: a 2xx answer that is not a SWAIG answer is not a success; a non-text `error` is
    /// a refusal.
    #[test]
    fn only_a_swaig_answer_succeeds() {
        for (answer, actual) in [
            (
                raw(200, "<html>hi</html>"),
                "not a SWAIG answer: not JSON, 15 bytes (HTTP 200)",
            ),
            (raw(200, ""), "not a SWAIG answer: empty body (HTTP 200)"),
            (
                reply(200, json!({"ok": true})),
                "not a SWAIG answer: JSON without a response text or an action (HTTP 200)",
            ),
            (
                reply(200, json!({"error": {"code": 7}})),
                "refused (malformed error) (HTTP 200)",
            ),
        ] {
            let got = compare_shown(&expect("{}"), &answer);
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!(got[0].actual, actual);
            assert!(!compare_shown(&expect("{refused: false}"), &answer).is_empty());
        }
        assert!(compare_shown(
            &expect("{refused: true}"),
            &reply(200, json!({"error": {"code": 7}}))
        )
        .is_empty());
        // L5: a body that is not JSON is described, never quoted.
        let got = compare_shown(
            &expect("{response_contains: nothing}"),
            &raw(200, "<html>hi</html>"),
        );
        assert_eq!(got[1].actual, "(not JSON, 15 bytes)");
    }

    /// M5: `status: 200` alone does not hide a policy refusal.
    #[test]
    fn a_2xx_status_alone_still_demands_no_refusal() {
        let policy = reply(
            200,
            json!({"error": "verification_required", "response": "Verify first."}),
        );
        let got = compare_shown(&expect("{status: 200}"), &policy);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].expectation, "refused");
        assert!(compare_shown(
            &expect("{status: 200, refused: verification_required}"),
            &policy
        )
        .is_empty());
    }

    /// L5: `{"hangup": false}` does not hang up.
    #[test]
    fn a_false_action_does_not_count() {
        let answer = reply(
            200,
            json!({"response": "ok", "action": [{"hangup": false}]}),
        );
        let got = compare_shown(&expect("{action: hangup}"), &answer);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].actual, "hangup (false)");
        let hangs_up = reply(200, json!({"response": "ok", "action": [{"hangup": true}]}));
        assert!(compare_shown(&expect("{action: hangup}"), &hangs_up).is_empty());
    }
}
