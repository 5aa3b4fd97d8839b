//! The checklist items read from a live agent's SWML (`--url`): every function carries a
//! per-call token, and the sensitive ones are gated by verification, ask for confirmation
//! when they move money, and (as far as can be seen from outside) are rate limited.
//!
//! It owns the documented rule of what counts as *sensitive* and *money-moving*, decided on
//! what the document shows (names, descriptions, parameters, `active`):
//!
//! - a **verification function** has a name or description with one of the words verify,
//!   verification, authenticate, authentication, pin, otp or identity; it is the gate, not a
//!   sensitive tool;
//! - a **sensitive** tool is any other function rendered inactive (the agent gates it
//!   itself), or whose name or description has one of [`SENSITIVE_WORDS`] (money, funds,
//!   payment, account, balance, admin, record, delete, …);
//! - a **money-moving** tool is a sensitive tool that declares a number or integer parameter
//!   whose name contains amount, total, sum or price (the caller's side names the amount).
//!
//! It must not send anything but the SWML fetch (it calls no function), and never print a
//! token or password (function names only).

use serde_json::Value;

use crate::agent::{Function, Rendered};

use super::{Item, Status};

/// Words of a function's name or description that make it sensitive.
pub const SENSITIVE_WORDS: [&str; 28] = [
    "money",
    "fund",
    "funds",
    "payment",
    "payments",
    "pay",
    "charge",
    "refund",
    "withdraw",
    "withdrawal",
    "deposit",
    "account",
    "accounts",
    "balance",
    "balances",
    "admin",
    "administrative",
    "administrator",
    "record",
    "records",
    "delete",
    "deletion",
    "erase",
    "purge",
    "card",
    "ssn",
    "prescription",
    "diagnosis",
];

/// Words of a verification function's name or description.
const VERIFY_WORDS: [&str; 7] = [
    "verify",
    "verification",
    "authenticate",
    "authentication",
    "pin",
    "otp",
    "identity",
];

/// Parameter name parts that mark an amount.
const AMOUNT_PARTS: [&str; 4] = ["amount", "total", "sum", "price"];

/// The lowercase words of `text` (split on anything but letters and digits, `_` included).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The words of a function's name and description.
fn function_words(function: &Function) -> Vec<String> {
    let mut all = words(&function.name);
    all.extend(words(&function.description));
    all
}

/// Whether `function` is a verification function.
pub fn is_verification(function: &Function) -> bool {
    function_words(function)
        .iter()
        .any(|w| VERIFY_WORDS.contains(&w.as_str()))
}

/// Whether `function` is sensitive (see the module's rule).
pub fn is_sensitive(function: &Function) -> bool {
    !is_verification(function)
        && (!function.active
            || function_words(function)
                .iter()
                .any(|w| SENSITIVE_WORDS.contains(&w.as_str())))
}

/// Whether `function` moves money (see the module's rule).
pub fn moves_money(function: &Function) -> bool {
    is_sensitive(function)
        && function.properties().iter().any(|(name, schema)| {
            let numeric = matches!(
                schema.get("type").and_then(Value::as_str),
                Some("number") | Some("integer")
            );
            let lower = name.to_ascii_lowercase();
            numeric && AMOUNT_PARTS.iter().any(|part| lower.contains(part))
        })
}

/// Whether `function` declares a boolean parameter whose name contains "confirm".
fn has_confirmation(function: &Function) -> bool {
    function.properties().iter().any(|(name, schema)| {
        name.to_ascii_lowercase().contains("confirm")
            && schema.get("type").and_then(Value::as_str) == Some("boolean")
    })
}

/// `tools.token`, `tools.verification`, `tools.confirmation`, `tools.rate_limits`.
pub fn tools(rendered: &Rendered) -> Vec<Item> {
    let webhooks: Vec<&Function> = rendered
        .functions
        .iter()
        .filter(|f| f.webhook.is_some())
        .collect();
    let missing: Vec<&str> = webhooks
        .iter()
        .filter(|f| f.token.is_none())
        .map(|f| f.name.as_str())
        .collect();
    let token = if !rendered.has_ai {
        Item::warn(
            "tools.token",
            "the document has no ai verb: no functions to check",
            "check that --url is the agent's SWML route",
        )
    } else if missing.is_empty() {
        Item::pass(
            "tools.token",
            format!(
                "{} webhook function(s), each with a per-call token in its URL",
                webhooks.len()
            ),
        )
    } else {
        Item::fail(
            "tools.token",
            format!("without a function token in the webhook URL: {}", missing.join(", ")),
            "mint a per-call token for every function at render time and check it on every call (voxguard: Tool is secure by default; never .insecure())",
        )
    };
    let sensitive: Vec<&Function> = rendered
        .functions
        .iter()
        .filter(|f| is_sensitive(f))
        .collect();
    let names = |list: &[&Function]| {
        list.iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let has_gate = rendered.functions.iter().any(is_verification);
    let open: Vec<&Function> = sensitive.iter().copied().filter(|f| f.active).collect();
    let open_money: Vec<&Function> = open.iter().copied().filter(|f| moves_money(f)).collect();
    let verification = if sensitive.is_empty() {
        Item::pass(
            "tools.verification",
            "no sensitive tool by check's rule (see docs/cli.md)",
        )
    } else if !open_money.is_empty() {
        Item::fail(
            "tools.verification",
            format!(
                "money-moving tool(s) active before any verification: {}{}",
                names(&open_money),
                if has_gate { "" } else { " (and no verification function)" }
            ),
            "render them inactive and let a verification function toggle them on (voxguard: .requires(flag).inactive() with VerificationPolicy::activate)",
        )
    } else if !open.is_empty() {
        Item::warn(
            "tools.verification",
            format!(
                "sensitive tool(s) active from the start: {}; a server-side gate (e.g. a role or .requires) cannot be seen from outside",
                names(&open)
            ),
            "render them inactive until verification, or make sure the server refuses them before it (`voxguard probe` tests the refusals)",
        )
    } else {
        Item::pass(
            "tools.verification",
            format!(
                "sensitive tool(s) rendered inactive until verification: {}",
                names(&sensitive)
            ),
        )
    };
    let money: Vec<&Function> = sensitive
        .iter()
        .copied()
        .filter(|f| moves_money(f))
        .collect();
    let unconfirmed: Vec<&Function> = money
        .iter()
        .copied()
        .filter(|f| !has_confirmation(f))
        .collect();
    let confirmation = if money.is_empty() {
        Item::pass(
            "tools.confirmation",
            "no money-moving tool (a sensitive tool with a numeric amount parameter)",
        )
    } else if unconfirmed.is_empty() {
        Item::pass(
            "tools.confirmation",
            format!(
                "money-moving tool(s) with a boolean confirmation parameter: {}",
                names(&money)
            ),
        )
    } else {
        Item::fail(
            "tools.confirmation",
            format!("money-moving tool(s) without a boolean confirmation parameter: {}", names(&unconfirmed)),
            "require a read-back confirmation before the money moves (voxguard: Tool::confirm, which declares `confirmed`)",
        )
    };
    let rate_limits = if sensitive.is_empty() {
        Item::pass("tools.rate_limits", "no sensitive tool to limit")
    } else {
        Item {
            id: "tools.rate_limits",
            status: Status::Warn,
            detail: format!(
                "not visible from outside: SWML does not show rate limits, so those of {} were not checked",
                names(&sensitive)
            ),
            fix: Some("confirm them in the agent's code (voxguard: Tool::rate_limit, AgentBuilder::rate_limit_per_caller/_global; on by default per caller)".into()),
        }
    };
    vec![token, verification, confirmation, rate_limits]
}

/// What the live document does that HIPAA mode forbids: call recording (`record_call`) and
/// AI parameters that send the conversation elsewhere.
pub fn hipaa_findings(rendered: &Rendered) -> Vec<String> {
    let mut findings = Vec::new();
    let text = rendered.document.to_string();
    if text.contains("\"record_call\"") {
        findings.push("records the call (record_call)".to_string());
    }
    for param in ["debug_webhook_url", "save_conversation"] {
        let set = rendered
            .document
            .pointer("/sections")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|sections| sections.values())
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|verb| verb.pointer(&format!("/ai/params/{param}")))
            .any(|value| !value.is_null() && value != &Value::Bool(false));
        if set {
            findings.push(format!("sets the AI parameter {param}"));
        }
    }
    findings
}

/// The rendered webhook URLs (and the post-prompt URL) that are plain http, host only.
pub fn plain_http(rendered: &Rendered) -> Vec<String> {
    let mut hosts: Vec<String> = rendered
        .urls()
        .iter()
        .filter_map(|url| url::Url::parse(url).ok())
        .filter(|url| url.scheme() == "http")
        .map(|url| {
            let mut shown = format!("http://{}", url.host_str().unwrap_or(""));
            if let Some(port) = url.port() {
                shown.push_str(&format!(":{port}"));
            }
            shown
        })
        .collect();
    hosts.dedup();
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rendered(functions: Value) -> Rendered {
        Rendered::read(json!({"version": "1.0.0", "sections": {"main": [{"ai": {
            "SWAIG": {"defaults": {"web_hook_url": "https://u:p@h/swaig"}, "functions": functions}
        }}]}}))
        .unwrap()
    }

    #[test]
    fn the_bank_shapes_pass_and_weak_shapes_fail() {
        let bank = rendered(json!([
            {"function": "verify_pin", "description": "Verify the caller's identity with their PIN",
             "web_hook_url": "https://u:p@h/swaig?__token=t1"},
            {"function": "transfer_funds", "description": "Transfer money", "active": false,
             "web_hook_url": "https://u:p@h/swaig?__token=t2",
             "parameters": {"type": "object", "properties": {
                "amount": {"type": "number"}, "confirmed": {"type": "boolean"}}}},
            {"function": "transfer_to_department", "description": "Connect the caller to sales",
             "web_hook_url": "https://u:p@h/swaig?__token=t3"},
        ]));
        let items = tools(&bank);
        let status: Vec<Status> = items.iter().map(|i| i.status).collect();
        assert_eq!(
            status,
            [Status::Pass, Status::Pass, Status::Pass, Status::Warn],
            "{items:?}"
        );

        let weak = rendered(json!([
            {"function": "send_money", "description": "Send money to anyone",
             "parameters": {"type": "object", "properties": {"amount": {"type": "integer"}}}},
        ]));
        let items = tools(&weak);
        let status: Vec<Status> = items.iter().map(|i| i.status).collect();
        assert_eq!(
            status,
            [Status::Fail, Status::Fail, Status::Fail, Status::Warn],
            "{items:?}"
        );
        assert!(items[0].detail.contains("send_money"));
    }

    #[test]
    fn hipaa_findings_and_plain_http_are_read_from_the_document() {
        let doc = Rendered::read(json!({"sections": {"main": [
            {"record_call": {}},
            {"ai": {"params": {"debug_webhook_url": "https://x"}, "post_prompt_url": "http://u:p@h:8/post"}}
        ]}}))
        .unwrap();
        assert_eq!(hipaa_findings(&doc).len(), 2);
        assert_eq!(plain_http(&doc), ["http://h:8"]);
    }
}
