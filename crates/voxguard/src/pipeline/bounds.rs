//! What a caller's request can make the pipeline keep: caller numbers and names cut to a bounded
//! shape before they become rate-limit keys, context or audit fields, and the arguments an audit
//! record keeps limited to what the tool's schema declares, redacted, and bounded in size.
//!
//! Owns those bounds. It must not decide policy or run before the function token is checked:
//! everything here is per-argument or per-field work, which an unauthenticated or token-refused
//! request must never cost (such requests are recorded in O(1)).

use serde_json::{Map, Value};
use voxguard_guard::{bounded_arguments, MAX_AUDITED_ARGUMENT_BYTES};

use crate::audit::Auditor;

/// The longest caller number accepted (E.164 allows 15 digits; SIP-derived numbers run longer).
const MAX_CALLER_NUMBER_LEN: usize = 32;

/// The longest caller name kept.
const MAX_CALLER_NAME_CHARS: usize = 64;

/// The platform's caller number when it is number-shaped — an optional `+` and 3 to 31 digits,
/// 32 characters at most — else `None`: an unknown caller, never an attacker-sized key. (Rate
/// limits then key the call by its SWML render alone.)
pub(crate) fn caller_number(raw: Option<&str>) -> Option<&str> {
    let raw = raw?;
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    let shaped = raw.len() <= MAX_CALLER_NUMBER_LEN
        && digits.len() >= 3
        && digits.bytes().all(|b| b.is_ascii_digit());
    shaped.then_some(raw)
}

/// The platform's caller name, cut to 64 characters.
pub(crate) fn caller_name(raw: Option<&str>) -> Option<String> {
    raw.map(|name| name.chars().take(MAX_CALLER_NAME_CHARS).collect())
}

/// The arguments an audit record keeps: only the paths the tool's schema declares (`declared`,
/// [`declared_path`](voxguard_guard::declared_path) on it: a name the caller made up is
/// dropped, and so is an array element at a position the schema does not declare), redacted,
/// and bounded to [`MAX_AUDITED_ARGUMENT_BYTES`]. Arguments that are not an object (a bare
/// string, number or list where the schema wants an object) declare nothing: they are kept
/// as `null`, never as the value the caller sent — a bare `"4321"` has no name for the
/// redactor to mask it by.
pub(crate) fn audited_arguments(
    auditor: &Auditor,
    declared: &dyn Fn(&str) -> bool,
    args: &Value,
    sensitive: &[String],
) -> Value {
    if !args.is_object() {
        return Value::Null;
    }
    let declared = declared_only(declared, args, &mut String::new());
    bounded_arguments(
        auditor.redact_args(&declared, sensitive),
        MAX_AUDITED_ARGUMENT_BYTES,
    )
}

/// `value` without the object members whose path is not `declared`.
fn declared_only(declared: &dyn Fn(&str) -> bool, value: &Value, path: &mut String) -> Value {
    match value {
        Value::Object(map) => {
            let mut kept = Map::new();
            for (name, member) in map {
                let len = path.len();
                voxguard_guard::push_path_segment(path, name);
                if declared(path) {
                    kept.insert(name.clone(), declared_only(declared, member, path));
                }
                path.truncate(len);
            }
            Value::Object(kept)
        }
        // Elements at undeclared positions (a list where the schema declares a string or an
        // object) are kept as `null`, so the positions of the declared ones stay as sent.
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let len = path.len();
                    voxguard_guard::push_path_segment(path, &i.to_string());
                    let kept = if declared(path) {
                        declared_only(declared, item, path)
                    } else {
                        Value::Null
                    };
                    path.truncate(len);
                    kept
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn caller_numbers_are_number_shaped_or_unknown() {
        for ok in ["+15551234567", "5551234", "+123"] {
            assert_eq!(caller_number(Some(ok)), Some(ok));
        }
        let long = "1".repeat(33);
        for bad in [
            "",
            "+",
            "12",
            "anonymous",
            "sip:alice@example.com",
            "+1 555 123",
            long.as_str(),
        ] {
            assert_eq!(caller_number(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(caller_number(None), None);
        assert_eq!(
            caller_name(Some(&"x".repeat(1_000))).map(|n| n.len()),
            Some(64)
        );
    }

    #[test]
    fn only_declared_arguments_are_audited_redacted_and_bounded() {
        let schema = json!({"type": "object", "properties": {
            "amount": {"type": "number"},
            "pin": {"type": "string"},
            "address": {"type": "object", "properties": {"zip": {"type": "string"}}},
            "items": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}}}
        }});
        let args = json!({
            "amount": 5, "pin": "1234", "code": "9876", "pín": "5555",
            "address": {"zip": "10001", "pin_hint": "4321"},
            "items": [{"sku": "A1", "secret": "x"}]
        });
        // As the pipeline asks: root members answered from memory, deeper paths walked.
        let paths = voxguard_guard::SchemaPaths::new(&schema);
        let declared = |path: &str| paths.declared(&schema, path);
        let audited = audited_arguments(&Auditor::default(), &declared, &args, &[]);
        assert_eq!(audited["amount"], 5);
        assert_ne!(audited["pin"], "1234", "redacted: {audited}");
        for undeclared in ["code", "pín"] {
            assert!(audited.get(undeclared).is_none(), "{audited}");
        }
        assert_eq!(audited["address"], json!({"zip": "10001"}));
        assert_eq!(audited["items"], json!([{"sku": "A1"}]));
        let text = audited.to_string();
        for secret in ["1234", "9876", "5555", "4321"] {
            assert!(!text.contains(secret), "{text}");
        }
        // Arguments that are not an object, or a list where the schema declares no list,
        // keep no value the caller sent (a bare PIN has no name to be masked by).
        for bare in [
            json!("4321"),
            json!(4321),
            json!(["4321"]),
            json!([{"pin": "4321"}]),
        ] {
            let audited = audited_arguments(&Auditor::default(), &declared, &bare, &[]);
            assert_eq!(audited, Value::Null, "{bare}");
        }
        let listed = json!({"amount": ["4321", 7], "address": [{"zip": "4321"}], "items": [
            {"sku": "A1"}, "4321"]});
        let audited = audited_arguments(&Auditor::default(), &declared, &listed, &[]);
        assert_eq!(audited["amount"], json!([null, null]), "{audited}");
        assert_eq!(audited["address"], json!([null]), "{audited}");
        assert_eq!(
            audited["items"],
            json!([{"sku": "A1"}, "4321"]),
            "{audited}"
        );
        let huge = json!({"amount": 1, "address": {"zip": "9".repeat(100_000)}});
        let bounded = audited_arguments(&Auditor::default(), &declared, &huge, &[]);
        assert!(
            bounded.to_string().len() <= MAX_AUDITED_ARGUMENT_BYTES,
            "{bounded}"
        );
    }
}
