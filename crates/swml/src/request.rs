//! What the platform sends us: the SWML fetch body, the SWAIG function call and the
//! end-of-call summary.
//!
//! All three are tolerant readers — unknown keys are ignored, missing optional keys default —
//! because the platform adds fields over time. They are *untrusted input*: nothing here is
//! authoritative for authorization (see DESIGN.md invariant 4).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Body of a SWML fetch (POST on the agent route). Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SwmlRequest {
    /// Top-level call id, when the platform sends one.
    pub call_id: Option<String>,
    /// The call object (`call.call_id`, `call.from`, `call.to`, …).
    pub call: Option<Map<String, Value>>,
    /// SWML variables.
    pub vars: Option<Map<String, Value>>,
}

impl SwmlRequest {
    /// The call id from `call_id` or `call.call_id`, if either is a non-empty string.
    pub fn call_id(&self) -> Option<&str> {
        self.call_id
            .as_deref()
            .or_else(|| self.call_field("call_id"))
            .filter(|id| !id.is_empty())
    }

    /// The caller's number (`call.from`).
    pub fn from(&self) -> Option<&str> {
        self.call_field("from")
    }

    /// The dialled number (`call.to`).
    pub fn to(&self) -> Option<&str> {
        self.call_field("to")
    }

    fn call_field(&self, key: &str) -> Option<&str> {
        self.call.as_ref()?.get(key)?.as_str()
    }
}

/// A SWAIG function call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SwaigRequest {
    /// Name of the function the AI called.
    pub function: String,
    /// The arguments: `parsed[0]` is the object, `raw` the JSON text.
    pub argument: Option<SwaigArgument>,
    /// The call this request belongs to.
    pub call_id: Option<String>,
    /// The AI session id.
    pub ai_session_id: Option<String>,
    /// Caller's number as the platform saw it (spoofable: never proof of identity).
    pub caller_id_num: Option<String>,
    /// Caller's name as the platform saw it.
    pub caller_id_name: Option<String>,
    /// Conversation context (influenced by the caller and the LLM; never authoritative).
    pub global_data: Option<Map<String, Value>>,
    /// Function-scoped metadata.
    pub meta_data: Option<Map<String, Value>>,
    /// Metadata scope token.
    pub meta_data_token: Option<String>,
    /// Project id.
    pub project_id: Option<String>,
    /// Space id.
    pub space_id: Option<String>,
    /// Application name.
    pub app_name: Option<String>,
    /// Wire version.
    pub version: Option<String>,
    /// Content type of the request.
    pub content_type: Option<String>,
}

/// SWAIG `argument` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SwaigArgument {
    /// Parsed arguments; the first element is the argument object.
    pub parsed: Option<Vec<Value>>,
    /// The arguments as JSON text.
    pub raw: Option<String>,
}

impl SwaigRequest {
    /// The argument object: `argument.parsed[0]`, else `argument.raw` parsed as JSON, else `{}`.
    /// A `raw` that is not JSON yields `Value::String(raw)` so validation can refuse it.
    pub fn arguments(&self) -> Value {
        let Some(argument) = &self.argument else {
            return Value::Object(Map::new());
        };
        if let Some(first) = argument.parsed.as_ref().and_then(|parsed| parsed.first()) {
            return first.clone();
        }
        raw_arguments(argument.raw.as_deref())
    }

    /// The call id, if present and non-empty.
    pub fn call_id(&self) -> Option<&str> {
        self.call_id.as_deref().filter(|id| !id.is_empty())
    }
}

impl SwaigArgument {
    /// The argument object, moved out rather than copied: `parsed[0]`, else `raw` parsed as
    /// JSON, else `{}` (as [`SwaigRequest::arguments`]).
    pub fn into_arguments(self) -> Value {
        match self.parsed.and_then(|parsed| parsed.into_iter().next()) {
            Some(first) => first,
            None => raw_arguments(self.raw.as_deref()),
        }
    }
}

/// The arguments `argument.raw` holds: `{}` when it is missing or blank, the raw text as a
/// string when it is not JSON.
fn raw_arguments(raw: Option<&str>) -> Value {
    match raw.map(str::trim) {
        None | Some("") => Value::Object(Map::new()),
        Some(raw) => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string())),
    }
}

/// The end-of-call summary the platform posts to `post_prompt_url`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PostPromptRequest {
    /// The call the summary belongs to.
    pub call_id: Option<String>,
    /// `raw`, `parsed` and `substituted` forms of the summary.
    pub post_prompt_data: Option<Map<String, Value>>,
    /// The conversation log.
    pub call_log: Option<Vec<Value>>,
    /// Caller's number.
    pub caller_id_num: Option<String>,
    /// Final global data.
    pub global_data: Option<Map<String, Value>>,
}

impl PostPromptRequest {
    /// The summary text: `post_prompt_data.substituted`, else `raw`.
    pub fn summary(&self) -> Option<&str> {
        let data = self.post_prompt_data.as_ref()?;
        data.get("substituted")
            .or_else(|| data.get("raw"))
            .and_then(Value::as_str)
    }

    /// The parsed summary, when the post-prompt asked for JSON.
    pub fn parsed(&self) -> Option<&Value> {
        self.post_prompt_data.as_ref()?.get("parsed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn call_id_comes_from_top_level_or_call_object() {
        let top: SwmlRequest = serde_json::from_value(json!({"call_id": "a"})).unwrap();
        assert_eq!(top.call_id(), Some("a"));
        let nested: SwmlRequest =
            serde_json::from_value(json!({"call": {"call_id": "b", "from": "+1555"}})).unwrap();
        assert_eq!(nested.call_id(), Some("b"));
        assert_eq!(nested.from(), Some("+1555"));
        let none: SwmlRequest = serde_json::from_value(json!({"call_id": ""})).unwrap();
        assert_eq!(none.call_id(), None);
    }

    #[test]
    fn arguments_prefer_parsed_then_raw_then_empty() {
        let req: SwaigRequest = serde_json::from_value(json!({
            "function": "f", "argument": {"parsed": [{"a": 1}], "raw": "{\"a\":2}"}, "extra": true
        }))
        .unwrap();
        assert_eq!(req.arguments(), json!({"a": 1}));
        let req: SwaigRequest =
            serde_json::from_value(json!({"function": "f", "argument": {"raw": "{\"a\":2}"}}))
                .unwrap();
        assert_eq!(req.arguments(), json!({"a": 2}));
        let req: SwaigRequest = serde_json::from_value(json!({"function": "f"})).unwrap();
        assert_eq!(req.arguments(), json!({}));
        let req: SwaigRequest =
            serde_json::from_value(json!({"function": "f", "argument": {"raw": "not json"}}))
                .unwrap();
        assert_eq!(req.arguments(), json!("not json"));
    }

    /// Moving the arguments out reads exactly what copying them does, in every form.
    #[test]
    fn into_arguments_agrees_with_arguments() {
        for argument in [
            json!({"parsed": [{"a": 1}, {"b": 2}], "raw": "{\"a\":2}"}),
            json!({"parsed": [], "raw": "{\"a\":2}"}),
            json!({"parsed": [], "raw": "  "}),
            json!({"parsed": null, "raw": "not json"}),
            json!({"parsed": ["text"]}),
            json!({"raw": "[1, 2]"}),
            json!({}),
        ] {
            let req: SwaigRequest =
                serde_json::from_value(json!({"function": "f", "argument": argument})).unwrap();
            let copied = req.arguments();
            let moved = req.argument.clone().unwrap().into_arguments();
            assert_eq!(moved, copied, "{argument}");
        }
    }
}
