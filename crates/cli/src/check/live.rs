//! The checklist items read from a live agent's SWML (`--url`): every function carries a
//! per-call token, and the sensitive ones are gated by verification, ask for confirmation
//! when they move money, and (as far as can be seen from outside) are rate limited.
//!
//! It owns the documented rule of what counts as *sensitive* and *money-moving*, decided on
//! what the document shows (names, descriptions, parameters, `active`):
//!
//! - a **verification function** has a *name* with one of the words verify, verification,
//!   authenticate, authentication, pin, otp or identity, and no sensitive word; it is the
//!   gate, not a sensitive tool (a description that mentions a PIN does not make one);
//! - a **sensitive** tool is any other function rendered inactive (the agent gates it
//!   itself), or whose name or description has one of [`SENSITIVE_WORDS`] (money, funds,
//!   payment, account, balance, admin, record, delete, …), or whose name or description has
//!   one of [`MONEY_VERBS`] (transfer, wire, send, purchase, buy, order) while it declares an
//!   amount parameter (below): sensitive words win over verification words;
//! - a **money-moving** tool is a sensitive tool that declares a number or integer parameter
//!   whose name contains amount, total, sum or price (the caller's side names the amount).
//!
//! Words are split on anything but ASCII letters and digits (`_` included) and where a
//! lowercase letter or digit is followed by an uppercase one (`sendMoney` is *send money*).
//!
//! It must not send anything but the two SWML fetches (it calls no function), and never print a
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

/// Verbs of a function's name or description that make it sensitive when it also declares an
/// amount parameter (alone they are too common: `transfer_to_department` moves a call).
pub const MONEY_VERBS: [&str; 8] = [
    "transfer",
    "transfers",
    "wire",
    "send",
    "purchase",
    "buy",
    "order",
    "orders",
];

/// Words of a verification function's name.
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

/// The lowercase words of `text`: split on anything but ASCII letters and digits (`_`
/// included), and at a lowercase letter or digit followed by an uppercase one (camelCase).
fn words(text: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                all.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && previous_lower && !current.is_empty() {
            all.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        current.push(c.to_ascii_lowercase());
    }
    if !current.is_empty() {
        all.push(current);
    }
    all
}

/// The words of a function's name and description.
fn function_words(function: &Function) -> Vec<String> {
    let mut all = words(&function.name);
    all.extend(words(&function.description));
    all
}

/// Whether any of `words` is in `list`.
fn any_of(words: &[String], list: &[&str]) -> bool {
    words.iter().any(|w| list.contains(&w.as_str()))
}

/// Whether `function` is a verification function: decided on its name alone, and a name with
/// a sensitive word is not one.
pub fn is_verification(function: &Function) -> bool {
    let name = words(&function.name);
    any_of(&name, &VERIFY_WORDS) && !any_of(&name, &SENSITIVE_WORDS) && !any_of(&name, &MONEY_VERBS)
}

/// Whether `function` declares a number or integer parameter whose name names an amount.
fn has_amount(function: &Function) -> bool {
    function.properties().iter().any(|(name, schema)| {
        let numeric = matches!(
            schema.get("type").and_then(Value::as_str),
            Some("number") | Some("integer")
        );
        let lower = name.to_ascii_lowercase();
        numeric && AMOUNT_PARTS.iter().any(|part| lower.contains(part))
    })
}

/// Whether `function` is sensitive (see the module's rule).
pub fn is_sensitive(function: &Function) -> bool {
    if is_verification(function) {
        return false;
    }
    let all = function_words(function);
    !function.active
        || any_of(&all, &SENSITIVE_WORDS)
        || (any_of(&all, &MONEY_VERBS) && has_amount(function))
}

/// Whether `function` moves money (see the module's rule).
pub fn moves_money(function: &Function) -> bool {
    is_sensitive(function) && has_amount(function)
}

/// Whether `function` declares a boolean parameter whose name contains "confirm".
fn has_confirmation(function: &Function) -> bool {
    function.properties().iter().any(|(name, schema)| {
        name.to_ascii_lowercase().contains("confirm")
            && schema.get("type").and_then(Value::as_str) == Some("boolean")
    })
}

/// The webhook functions whose token is the same in `rendered` and `again` (two renders for
/// different call ids): a static token, not a per-call one.
fn static_tokens<'a>(rendered: &'a Rendered, again: &Rendered) -> Vec<&'a str> {
    rendered
        .functions
        .iter()
        .filter(|f| f.webhook.is_some())
        .filter(|f| {
            f.token.is_some()
                && again
                    .function(&f.name)
                    .is_some_and(|other| other.token == f.token)
        })
        .map(|f| f.name.as_str())
        .collect()
}

/// `tools.token`, `tools.verification`, `tools.confirmation`, `tools.rate_limits`, from
/// `rendered` and `again`, the same agent's SWML rendered for another call id (the tokens
/// must differ between them).
pub fn tools(rendered: &Rendered, again: &Rendered) -> Vec<Item> {
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
    } else if !missing.is_empty() {
        Item::fail(
            "tools.token",
            format!("without a function token in the webhook URL: {}", missing.join(", ")),
            "mint a per-call token for every function at render time and check it on every call (voxguard: Tool is secure by default; never .insecure())",
        )
    } else if !static_tokens(rendered, again).is_empty() {
        Item::fail(
            "tools.token",
            format!(
                "the same token in two renders for different calls (a static token, not per call): {}",
                static_tokens(rendered, again).join(", ")
            ),
            "mint a fresh token per call and function at render time, bound to the call id (voxguard: Tool is secure by default; never .insecure())",
        )
    } else {
        Item::pass(
            "tools.token",
            format!(
                "{} webhook function(s), each with a token in its URL that differs between two calls",
                webhooks.len()
            ),
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

/// Every plain-http URL of the live document, wherever it is (function and `data_map`
/// webhooks, SWAIG defaults, `post_prompt_url`, AI parameters, `pay` connectors, …): each
/// string that starts with `http://` (any case). Shown as scheme, host and port; one that does
/// not parse as a URL still counts, shown as its authority with any password masked.
pub fn plain_http(rendered: &Rendered) -> Vec<String> {
    let mut found = Vec::new();
    collect_http(&rendered.document, &mut found);
    let mut hosts: Vec<String> = found.iter().map(|text| show_http(text)).collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Push every string of `value` (recursively) that starts with `http://`, any case.
fn collect_http<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::String(text) => {
            let trimmed = text.trim_start();
            if trimmed
                .get(..7)
                .is_some_and(|head| head.eq_ignore_ascii_case("http://"))
            {
                found.push(trimmed);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_http(item, found)),
        Value::Object(map) => map.values().for_each(|item| collect_http(item, found)),
        _ => {}
    }
}

/// A plain-http URL as shown: `http://host[:port]`, or for one that does not parse, its
/// authority with the password masked and a note.
fn show_http(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(url) if url.scheme() == "http" && url.host_str().is_some() => {
            let mut shown = format!("http://{}", url.host_str().unwrap_or(""));
            if let Some(port) = url.port() {
                shown.push_str(&format!(":{port}"));
            }
            shown
        }
        _ => {
            let rest = text.get(7..).unwrap_or("");
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let masked = crate::agent::mask::url(&format!("http://{authority}"));
            // A user name alone may be a key: keep only what follows the last `@`.
            let shown = match masked.rsplit_once('@') {
                Some((_, host)) => format!("http://****@{host}"),
                None => masked,
            };
            format!("{} (not a valid URL)", crate::output::clean(&shown))
        }
    }
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
        let items = tools(&bank, &rendered(json!([])));
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
        let items = tools(&weak, &weak);
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

    #[test]
    fn plain_http_is_found_anywhere_and_an_unparseable_url_counts() {
        let doc = Rendered::read(json!({"sections": {"main": [
            {"pay": {"payment_connector_url": "http://pay.example/connector"}},
            {"ai": {
                "params": {"debug_webhook_url": "HTTP://debug.example/hook"},
                "post_prompt_url": "http://u:pw-secret@host:99999/post",
                "SWAIG": {"defaults": {"web_hook_url": "https://u:p@h/swaig"}, "functions": [
                    {"function": "lookup", "description": "Look up",
                     "data_map": {"webhooks": [{"url": "http://api.example/x?key=k", "method": "GET"}]}}
                ]}
            }}
        ]}}))
        .unwrap();
        let found = plain_http(&doc);
        assert_eq!(
            found,
            [
                "http://****@host:99999 (not a valid URL)",
                "http://api.example",
                "http://debug.example",
                "http://pay.example",
            ],
            "{found:?}"
        );
        assert!(!format!("{found:?}").contains("pw-secret"));
        let https_only = rendered(json!([
            {"function": "f", "description": "x", "web_hook_url": "https://u:p@h/swaig?__token=t"}
        ]));
        assert!(plain_http(&https_only).is_empty());
    }

    #[test]
    fn a_pin_in_a_description_does_not_make_a_money_tool_the_gate() {
        let doc = rendered(json!([
            {"function": "transfer_funds",
             "description": "Move money to another account; ask for the PIN first",
             "web_hook_url": "https://u:p@h/swaig?__token=t1",
             "parameters": {"type": "object", "properties": {"amount": {"type": "number"}}}},
        ]));
        let function = &doc.functions[0];
        assert!(!is_verification(function) && is_sensitive(function) && moves_money(function));
        let items = tools(&doc, &rendered(json!([])));
        let status: Vec<Status> = items.iter().map(|i| i.status).collect();
        assert_eq!(
            status[1..],
            [Status::Fail, Status::Fail, Status::Warn],
            "{items:?}"
        );
        // A name with both kinds of word is sensitive, not a gate.
        let doc = rendered(json!([
            {"function": "verify_and_pay", "description": "x", "active": true},
        ]));
        assert!(!is_verification(&doc.functions[0]) && is_sensitive(&doc.functions[0]));
    }

    #[test]
    fn a_token_that_is_the_same_in_two_renders_is_static() {
        let render = |token: &str| {
            rendered(json!([
                {"function": "lookup", "description": "x",
                 "web_hook_url": format!("https://u:p@h/swaig?__token={token}")},
                {"function": "fresh", "description": "x",
                 "web_hook_url": format!("https://u:p@h/swaig?__token={token}-{}", token.len())},
            ]))
        };
        let (first, second) = (render("same"), render("same"));
        let items = tools(&first, &second);
        assert_eq!(items[0].status, Status::Fail, "{items:?}");
        assert!(items[0].detail.contains("lookup"), "{items:?}");
        let items = tools(&render("call-1"), &render("call-22"));
        assert_eq!(items[0].status, Status::Pass, "{items:?}");
    }

    #[test]
    fn camel_case_names_are_split_and_money_verbs_need_an_amount() {
        assert_eq!(words("sendMoney"), ["send", "money"]);
        assert_eq!(words("makePayment2FA"), ["make", "payment2", "fa"]);
        assert_eq!(words("SSNLookup"), ["ssnlookup"]);
        let amount = json!({"type": "object", "properties": {"amount": {"type": "number"}}});
        let doc = rendered(json!([
            {"function": "sendMoney", "description": "x", "parameters": amount.clone()},
            {"function": "makePayment", "description": "x", "parameters": amount.clone()},
            {"function": "placeOrder", "description": "x", "parameters": amount.clone()},
            {"function": "wireTransfer", "description": "x", "parameters": amount.clone()},
            {"function": "transfer_to_department", "description": "Connect the caller"},
            {"function": "verifyPin", "description": "x"},
        ]));
        let moving: Vec<&str> = doc
            .functions
            .iter()
            .filter(|f| moves_money(f))
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(
            moving,
            ["sendMoney", "makePayment", "placeOrder", "wireTransfer"]
        );
        assert!(!is_sensitive(&doc.functions[4]));
        assert!(is_verification(&doc.functions[5]));
    }
}
