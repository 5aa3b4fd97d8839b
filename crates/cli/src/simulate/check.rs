//! Comparing a step's expectations with the answer that came back, and saying what differs
//! in a way a person reads at a glance: one expected/got pair per failed expectation.
//!
//! It owns the meaning of each expectation (`refused`, `status`, `response_contains`,
//! `response_not_contains`, `action`) and of a step without any (it must not be refused).
//! It must not send anything or print anything; the text it returns is not yet masked
//! (the caller masks it).

use serde::Serialize;

use super::script::{Expect, Refused};
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

/// The text an expectation on the response is checked against: `response`, else the
/// refusal's sentence, else the body when it is not JSON.
pub fn response_text(reply: &Reply) -> Option<&str> {
    reply
        .response
        .as_deref()
        .or_else(|| reply.refusal.as_ref().and_then(|r| r.sentence.as_deref()))
        .or(reply.text.as_deref())
}

/// How the refusal looked: `not refused (HTTP 200)`, `refused: verification_required (HTTP
/// 200)`, `refused: HTTP 500 without a reason`.
pub fn refusal_of(reply: &Reply) -> String {
    match &reply.refusal {
        Some(refusal) => format!("refused: {} (HTTP {})", refusal.reason, reply.status),
        None if reply.refused() => format!("refused: HTTP {} without a reason", reply.status),
        None => format!("not refused (HTTP {})", reply.status),
    }
}

/// The action kinds of `reply`, joined, or `no actions`.
pub fn kinds_of(reply: &Reply) -> String {
    if reply.actions.is_empty() {
        "no actions".into()
    } else {
        reply
            .actions
            .iter()
            .map(|action| action.kind.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `text` quoted, at most 300 characters.
fn quoted(text: &str) -> String {
    let cut: String = text.chars().take(300).collect();
    if cut.len() < text.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}

/// Every expectation of `expect` that `reply` does not meet, in the order
/// status, refused, response, action.
pub fn compare(expect: &Expect, reply: &Reply) -> Vec<Mismatch> {
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
    let reason = reply.refusal.as_ref().map(|r| r.reason.as_str());
    let wanted = match &expect.refused {
        Some(Refused::Reason(wanted)) if reason != Some(wanted.as_str()) => {
            Some(format!("refused: {wanted}"))
        }
        Some(Refused::Flag(true)) if !reply.refused() => Some("refused (any reason)".into()),
        Some(Refused::Flag(false)) | None if expect.must_succeed() && reply.refused() => {
            Some("not refused (2xx, no refusal reason)".into())
        }
        _ => None,
    };
    if let Some(wanted) = wanted {
        out.push(Mismatch::new("refused", wanted, refusal_of(reply)));
    }
    let text = response_text(reply);
    let got = || {
        text.map(quoted)
            .unwrap_or_else(|| "no response text".into())
    };
    for wanted in &expect.response_contains {
        if !text.is_some_and(|text| text.contains(wanted.as_str())) {
            out.push(Mismatch::new(
                "response_contains",
                format!("response containing {}", quoted(wanted)),
                got(),
            ));
        }
    }
    for unwanted in &expect.response_not_contains {
        if text.is_some_and(|text| text.contains(unwanted.as_str())) {
            out.push(Mismatch::new(
                "response_not_contains",
                format!("response without {}", quoted(unwanted)),
                got(),
            ));
        }
    }
    for kind in &expect.action {
        if !reply.actions.iter().any(|action| &action.kind == kind) {
            out.push(Mismatch::new(
                "action",
                format!("action {kind}"),
                kinds_of(reply),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn expect(yaml: &str) -> Expect {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn a_matching_answer_has_no_mismatch() {
        let ok = reply(
            200,
            json!({"response": "Transferring you to sales now.", "action": [
                {"SWML": {"sections": {"main": [{"connect": {"to": "+1"}}]}}}
            ]}),
        );
        assert!(compare(&expect("{}"), &ok).is_empty());
        assert!(compare(
            &expect("{response_contains: [sales, Transferring], action: connect, refused: false, status: 200, response_not_contains: billing}"),
            &ok
        )
        .is_empty());
        let refused = reply(
            200,
            json!({"error": "verification_required", "response": "Verify first."}),
        );
        assert!(compare(
            &expect("{refused: verification_required, response_contains: first}"),
            &refused
        )
        .is_empty());
        assert!(compare(&expect("{refused: true}"), &refused).is_empty());
        let forbidden = reply(403, json!({"error": "token_missing"}));
        assert!(compare(&expect("{status: 403}"), &forbidden).is_empty());
    }

    #[test]
    fn each_failed_expectation_says_what_came_back() {
        let refused = reply(
            200,
            json!({"error": "verification_required", "response": "Verify first."}),
        );
        let got = compare(&expect("{}"), &refused);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].actual, "refused: verification_required (HTTP 200)");

        let ok = reply(200, json!({"response": "Your balance is $150.00."}));
        let got = compare(
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
        let other = compare(&expect("{refused: forbidden}"), &refused);
        assert_eq!(other[0].actual, "refused: verification_required (HTTP 200)");
        let server_error = reply(500, Value::Null);
        assert_eq!(
            compare(&expect("{}"), &server_error)[0].actual,
            "refused: HTTP 500 without a reason"
        );
    }
}
