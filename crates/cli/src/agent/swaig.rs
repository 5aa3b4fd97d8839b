//! Playing a SWAIG function call the way the platform does, and reading the answer: the
//! refusal (status, stable reason, sentence), the text for the AI, and every action decoded
//! into one line a person can check (connect → destination, pay → amount, toggles, hangup,
//! global data).
//!
//! It owns the request body (`function`, `argument.parsed[0]` and `argument.raw`, `call_id`,
//! `caller_id_num`, `global_data`, `meta_data_token`, …) and the call's evolving state: global
//! data changed by `set_global_data`/`unset_global_data`, functions toggled. It must not decide
//! whether an answer is right (`exec` shows it, `simulate` compares it, `probe` judges it).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::render::{CallSpec, Function, Rendered};
use super::target::{AgentError, Answer, Target};

/// A call in progress: its data, and what the answers so far changed.
#[derive(Debug, Clone)]
pub struct CallState {
    /// The call's data.
    pub call: CallSpec,
    /// The conversation's global data (from the SWML, then the actions).
    pub global_data: Map<String, Value>,
    /// The call's meta data (`set_meta_data` / `unset_meta_data`).
    pub meta_data: Map<String, Value>,
    /// Functions toggled by `toggle_functions` actions.
    pub toggled: BTreeMap<String, bool>,
}

impl CallState {
    /// The state at the start of `call`, with the rendered global data and `extra` merged
    /// over it.
    pub fn new(call: CallSpec, rendered: &Rendered, extra: Option<&Map<String, Value>>) -> Self {
        let mut global_data = rendered.global_data.clone();
        if let Some(extra) = extra {
            for (key, value) in extra {
                global_data.insert(key.clone(), value.clone());
            }
        }
        Self {
            call,
            global_data,
            meta_data: Map::new(),
            toggled: BTreeMap::new(),
        }
    }

    /// Whether `function` is active now: as toggled by an answer, else as rendered.
    pub fn active(&self, function: &Function) -> bool {
        self.toggled
            .get(&function.name)
            .copied()
            .unwrap_or(function.active)
    }

    /// The SWAIG request body for `function` with `args`.
    pub fn request_body(&self, function: &Function, args: &Value) -> Value {
        let mut body = json!({
            "function": function.name,
            "argument": {"parsed": [args], "raw": args.to_string(), "substituted": ""},
            "argument_desc": function.parameters,
            "purpose": function.description,
            "call_id": self.call.call_id,
            "ai_session_id": format!("{}-ai", self.call.call_id),
            "caller_id_num": self.call.from,
            "caller_id_name": self.call.from,
            "global_data": self.global_data,
            "meta_data": self.meta_data,
            "project_id": "voxguard-cli",
            "space_id": "voxguard-cli",
            "app_name": "voxguard-cli",
            "version": "2.0",
            "content_type": "text/swaig",
        });
        if let Some(token) = &function.meta_data_token {
            body["meta_data_token"] = Value::String(token.clone());
        }
        body
    }

    /// Apply an answer's actions as the platform would: global and meta data set and unset
    /// (an empty object resets), functions toggled. A refused answer (error status) changes
    /// nothing.
    pub fn apply(&mut self, reply: &Reply) {
        if !(200..300).contains(&reply.status) {
            return;
        }
        for action in &reply.actions {
            match action.kind.as_str() {
                "set_global_data" => merge(&mut self.global_data, &action.raw),
                "unset_global_data" => unset(&mut self.global_data, &action.raw),
                "set_meta_data" => merge(&mut self.meta_data, &action.raw),
                "unset_meta_data" => unset(&mut self.meta_data, &action.raw),
                "toggle_functions" => {
                    for toggle in action.raw.as_array().into_iter().flatten() {
                        // `active` may be a SWML variable: its value is unknown here.
                        let Some(active) = toggle.get("active").and_then(Value::as_bool) else {
                            continue;
                        };
                        let names: Vec<&str> = match toggle.get("function") {
                            Some(Value::String(name)) => vec![name.as_str()],
                            Some(Value::Array(names)) => {
                                names.iter().filter_map(Value::as_str).collect()
                            }
                            _ => Vec::new(),
                        };
                        for name in names {
                            self.toggled.insert(name.to_string(), active);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Merge the object `data` into `into`.
fn merge(into: &mut Map<String, Value>, data: &Value) {
    if let Value::Object(data) = data {
        for (key, value) in data {
            into.insert(key.clone(), value.clone());
        }
    }
}

/// Remove the key(s) `keys` from `from`: a name, a list of names, or an empty object (all).
fn unset(from: &mut Map<String, Value>, keys: &Value) {
    match keys {
        Value::String(key) => {
            from.remove(key);
        }
        Value::Array(keys) => {
            for key in keys.iter().filter_map(Value::as_str) {
                from.remove(key);
            }
        }
        Value::Object(keys) if keys.is_empty() => from.clear(),
        Value::Object(keys) => {
            for key in keys.keys() {
                from.remove(key);
            }
        }
        _ => {}
    }
}

/// Whether `reason` reads as a stable machine reason (`verification_required`), not free text:
/// 1 to 64 ASCII letters, digits, `_`, `.` or `-`. Only such a reason is quoted from an agent's
/// answer; anything else may hold escapes, secrets or pages of text.
pub fn is_stable_reason(reason: &str) -> bool {
    (1..=64).contains(&reason.len())
        && reason
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// A refusal: the stable reason and the sentence.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Refusal {
    /// The machine-readable reason (`error`).
    pub reason: String,
    /// The human sentence (`response` or `message`), if any.
    pub sentence: Option<String>,
}

/// One action of an answer, decoded.
#[derive(Debug, Clone, Serialize)]
pub struct Decoded {
    /// What it does: `connect`, `pay`, `record_call`, `stop_record_call`, `hangup`,
    /// `toggle_functions`, `set_global_data`, `unset_global_data`, `say`, `stop`,
    /// `set_meta_data`, `user_input`, another SWML verb's name, or the action's own key.
    pub kind: String,
    /// One line for a person: `connect → +15551230000`, `pay → 25.50 USD`, …
    pub detail: String,
    /// The action's (or the SWML verb's) value.
    pub raw: Value,
}

/// A SWAIG answer, read.
#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON (`null` when it is not JSON).
    pub body: Value,
    /// The body as text when it is not JSON (at most 2,000 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The refusal, when the body has an `error` reason.
    pub refusal: Option<Refusal>,
    /// The `response` text for the AI.
    pub response: Option<String>,
    /// The actions, decoded.
    pub actions: Vec<Decoded>,
}

impl Reply {
    /// Read `answer`.
    pub fn read(answer: &Answer) -> Self {
        let body = answer.json().unwrap_or(Value::Null);
        let text = if body.is_null() {
            Some(answer.text().chars().take(2000).collect())
        } else {
            None
        };
        let refusal = body
            .get("error")
            .and_then(Value::as_str)
            .map(|reason| Refusal {
                reason: reason.to_string(),
                sentence: ["response", "message"]
                    .iter()
                    .find_map(|key| body.get(*key).and_then(Value::as_str))
                    .map(str::to_string),
            });
        let response = body
            .get("response")
            .and_then(Value::as_str)
            .map(str::to_string);
        Self {
            status: answer.status,
            actions: decode_actions(&body),
            body,
            text,
            refusal,
            response,
        }
    }

    /// Whether the call was refused: an error status or a refusal reason.
    pub fn refused(&self) -> bool {
        !(200..300).contains(&self.status) || self.refusal.is_some()
    }
}

/// The decoded actions of a SWAIG answer body.
pub fn decode_actions(body: &Value) -> Vec<Decoded> {
    let mut out = Vec::new();
    let actions = match body.get("action") {
        Some(Value::Array(actions)) => actions.clone(),
        Some(Value::Object(action)) => vec![Value::Object(action.clone())],
        _ => return out,
    };
    for action in actions {
        let Value::Object(action) = action else {
            continue;
        };
        for (key, value) in &action {
            if key == "SWML" {
                decode_swml(value, &action, &mut out);
            } else if key != "transfer" {
                out.push(Decoded {
                    kind: key.clone(),
                    detail: describe(key, value),
                    raw: value.clone(),
                });
            }
        }
    }
    out
}

/// The verbs of an `SWML` action, one decoded line each.
fn decode_swml(document: &Value, action: &Map<String, Value>, out: &mut Vec<Decoded>) {
    // The document may arrive as an object or as JSON text.
    let parsed;
    let document = match document {
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
            &parsed
        }
        other => other,
    };
    let transfer = matches!(action.get("transfer"), Some(Value::String(t)) if t == "true")
        || action.get("transfer") == Some(&Value::Bool(true));
    let verbs: Vec<&Value> = document
        .get("sections")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|sections| sections.values())
        .filter_map(Value::as_array)
        .flatten()
        .collect();
    if verbs.is_empty() {
        out.push(Decoded {
            kind: "SWML".into(),
            detail: "SWML document without verbs".into(),
            raw: document.clone(),
        });
    }
    for verb in verbs {
        let Some(verb) = verb.as_object() else {
            continue;
        };
        for (name, value) in verb {
            let mut detail = describe(name, value);
            if transfer && name == "connect" {
                detail.push_str(" (transfer)");
            }
            out.push(Decoded {
                kind: name.clone(),
                detail,
                raw: value.clone(),
            });
        }
    }
}

/// One line describing an action or SWML verb.
fn describe(kind: &str, value: &Value) -> String {
    let text = |pointer: &str| {
        value.pointer(pointer).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    match kind {
        "connect" => {
            let to = text("/to")
                .or_else(|| text("/parallel/0/to"))
                .or_else(|| text("/serial/0/to"))
                .or_else(|| text("/serial_parallel/0/0/to"))
                .unwrap_or_else(|| "?".into());
            format!("connect → {to}")
        }
        "pay" => {
            let amount = text("/charge_amount").unwrap_or_else(|| "?".into());
            let currency = text("/currency").unwrap_or_else(|| "".into());
            format!("pay → {amount} {currency}").trim_end().to_string()
        }
        "toggle_functions" => {
            let toggles: Vec<String> = value
                .as_array()
                .into_iter()
                .flatten()
                .map(|toggle| {
                    let name = match toggle.get("function") {
                        Some(Value::String(name)) => name.clone(),
                        Some(Value::Array(names)) => names
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" "),
                        _ => "?".to_string(),
                    };
                    let state = match toggle.get("active") {
                        Some(Value::Bool(true)) => "on".to_string(),
                        Some(Value::Bool(false)) => "off".to_string(),
                        Some(other) => format!("= {}", compact(other)),
                        None => "?".to_string(),
                    };
                    format!("{name} {state}")
                })
                .collect();
            format!("toggle_functions → {}", toggles.join(", "))
        }
        "set_global_data" | "set_meta_data" => {
            let keys: Vec<&str> = value
                .as_object()
                .map(|map| map.keys().map(String::as_str).collect())
                .unwrap_or_default();
            format!("{kind} → {}", keys.join(", "))
        }
        "unset_global_data" => format!("unset_global_data → {}", compact(value)),
        "hangup" => "hangup".into(),
        "stop" => "stop".into(),
        "say" | "user_input" => format!("{kind} → {}", text("").unwrap_or_default()),
        "record_call" => "record_call (recording starts)".into(),
        "stop_record_call" => "stop_record_call (recording stops)".into(),
        other => format!("{other} → {}", compact(value)),
    }
}

/// `value` as compact JSON, at most 120 characters.
fn compact(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 120 {
        let cut: String = text.chars().take(117).collect();
        format!("{cut}...")
    } else {
        text
    }
}

impl Target {
    /// Call `function` with `args` in the call of `state`, the way the platform would: a POST
    /// to its rendered webhook URL, with the credentials and token in it.
    ///
    /// # Errors
    ///
    /// [`AgentError::NoWebhook`] for a function without a webhook URL; transport errors as
    /// [`Target::send`]. Refusals are [`Reply`]s.
    pub async fn invoke(
        &self,
        function: &Function,
        args: &Value,
        state: &CallState,
    ) -> Result<Reply, AgentError> {
        let webhook = function
            .webhook
            .as_deref()
            .ok_or_else(|| AgentError::NoWebhook(function.name.clone()))?;
        let (url, auth) = self.webhook(webhook)?;
        let answer = self
            .post_json(&url, &auth, &state.request_body(function, args))
            .await?;
        Ok(Reply::read(&answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_decoded() {
        let body = json!({"response": "ok", "action": [
            {"SWML": {"version": "1.0.0", "sections": {"main": [{"connect": {"to": "+15551230000"}}]}}, "transfer": "true"},
            {"SWML": {"sections": {"main": [{"pay": {"charge_amount": "25.50", "currency": "usd"}}]}}},
            {"toggle_functions": [{"function": "get_balance", "active": true}]},
            {"set_global_data": {"verified": true}},
            {"unset_global_data": ["a"]},
            {"hangup": true},
            {"say": "bye"},
        ]});
        let details: Vec<String> = decode_actions(&body)
            .into_iter()
            .map(|a| a.detail)
            .collect();
        assert_eq!(
            details,
            [
                "connect → +15551230000 (transfer)",
                "pay → 25.50 usd",
                "toggle_functions → get_balance on",
                "set_global_data → verified",
                "unset_global_data → [\"a\"]",
                "hangup",
                "say → bye",
            ]
        );
    }

    #[test]
    fn global_data_and_toggles_follow_the_answers() {
        let rendered = Rendered::read(
            json!({"sections": {"main": [{"ai": {"global_data": {"a": 1, "b": 2}}}]}}),
        )
        .unwrap();
        let call = CallSpec {
            call_id: "c".into(),
            from: "+1".into(),
            to: "+2".into(),
            call_type: "phone".into(),
            get: false,
        };
        let extra: Map<String, Value> = serde_json::from_value(json!({"c": 3})).unwrap();
        let mut state = CallState::new(call, &rendered, Some(&extra));
        let reply = Reply {
            status: 200,
            body: Value::Null,
            text: None,
            refusal: None,
            response: None,
            actions: decode_actions(&json!({"action": [
                {"set_global_data": {"d": 4}}, {"unset_global_data": "a"},
                {"toggle_functions": [{"function": "f", "active": true}]}
            ]})),
        };
        state.apply(&reply);
        assert_eq!(
            Value::Object(state.global_data.clone()),
            json!({"b": 2, "c": 3, "d": 4})
        );
        assert_eq!(state.toggled.get("f"), Some(&true));

        let answer = |status: u16, actions: Value| Reply {
            status,
            body: Value::Null,
            text: None,
            refusal: None,
            response: None,
            actions: decode_actions(&json!({ "action": actions })),
        };
        // Lists of functions, variables as `active`, meta data, and the `{}` reset.
        state.apply(&answer(
            200,
            json!([
                {"toggle_functions": [{"function": ["g", "h"], "active": true},
                                      {"function": "f", "active": false},
                                      {"function": "k", "active": "${x}"}]},
                {"set_meta_data": {"step": 1}},
                {"unset_global_data": {}}
            ]),
        ));
        assert_eq!(state.toggled.get("g"), Some(&true));
        assert_eq!(state.toggled.get("h"), Some(&true));
        assert_eq!(state.toggled.get("f"), Some(&false));
        assert!(!state.toggled.contains_key("k"));
        assert!(state.global_data.is_empty());
        assert_eq!(state.meta_data["step"], 1);
        // A refused answer changes nothing.
        state.apply(&answer(403, json!([{"set_global_data": {"z": 1}}])));
        assert!(state.global_data.is_empty());
    }
}
