//! Fetching the SWML document an agent renders for a call, and reading its AI functions.
//!
//! It owns the call data sent with the fetch (as the platform sends it: `call_id`, `call.from`,
//! `call.to`, `call.type`), the checks that an answer is an SWML document at all, and the
//! reading of the `ai` verb: functions, their effective webhook URL (`web_hook_url`, else
//! `SWAIG.defaults.web_hook_url`), their token (`__token` or `token` query parameter), whether
//! they are active, and the conversation's `global_data`. It reads leniently — any agent's
//! document — and must not judge it (that is `probe`'s and `check`'s).

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::target::{unauthorized_hint, AgentError, Auth, Target};

/// The call a command plays: who calls whom, under which call id.
#[derive(Debug, Clone, clap::Args)]
pub struct CallArgs {
    /// The call id (default: a fresh random one). Function tokens are bound to it.
    #[arg(long, value_name = "ID")]
    pub call_id: Option<String>,
    /// The caller's number.
    #[arg(long, default_value = DEFAULT_FROM, value_name = "NUM")]
    pub from: String,
    /// The number called.
    #[arg(long, default_value = DEFAULT_TO, value_name = "NUM")]
    pub to: String,
    /// The call type the platform reports (phone, sip, webrtc).
    #[arg(long, default_value = "phone", value_name = "TYPE")]
    pub call_type: String,
    /// Fetch the SWML with GET (no call data) instead of POST.
    #[arg(long)]
    pub get: bool,
}

impl CallArgs {
    /// The call these arguments describe.
    pub fn spec(&self) -> CallSpec {
        CallSpec {
            call_id: self.call_id.clone().unwrap_or_else(fresh_call_id),
            from: self.from.clone(),
            to: self.to.clone(),
            call_type: self.call_type.clone(),
            get: self.get,
        }
    }
}

/// The caller's number when none is given.
pub const DEFAULT_FROM: &str = "+15555550100";

/// The number called when none is given.
pub const DEFAULT_TO: &str = "+15555550199";

/// A fresh call id: `voxguard-cli-` and 16 random hex digits.
pub fn fresh_call_id() -> String {
    format!("voxguard-cli-{:016x}", rand::random::<u64>())
}

/// One call's data.
#[derive(Debug, Clone)]
pub struct CallSpec {
    /// The call id.
    pub call_id: String,
    /// Caller number.
    pub from: String,
    /// Called number.
    pub to: String,
    /// Call type.
    pub call_type: String,
    /// Fetch with GET.
    pub get: bool,
}

impl CallSpec {
    /// A phone call from [`DEFAULT_FROM`] to [`DEFAULT_TO`] under a fresh call id.
    pub fn fresh() -> Self {
        Self {
            call_id: fresh_call_id(),
            from: DEFAULT_FROM.into(),
            to: DEFAULT_TO.into(),
            call_type: "phone".into(),
            get: false,
        }
    }

    /// The same call data under a fresh call id (another call of the same caller).
    pub fn another(&self) -> Self {
        Self {
            call_id: fresh_call_id(),
            ..self.clone()
        }
    }

    /// The POST body of an SWML fetch, shaped like the platform's.
    pub fn body(&self) -> Value {
        json!({
            "call_id": self.call_id,
            "call": {
                "call_id": self.call_id,
                "from": self.from,
                "to": self.to,
                "type": self.call_type,
                "direction": "inbound",
            },
            "vars": {},
        })
    }
}

/// One AI function of a rendered document.
#[derive(Debug, Clone)]
pub struct Function {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its declared parameters schema (`{}` when absent).
    pub parameters: Value,
    /// The URL the platform would call (function's own, else the defaults'); `None` for a
    /// function without one (e.g. a `data_map` function the platform runs itself).
    pub webhook: Option<String>,
    /// The function token in the webhook URL, if any.
    pub token: Option<String>,
    /// `meta_data_token`, if rendered.
    pub meta_data_token: Option<String>,
    /// Whether the function is active (`active` is not `false`).
    pub active: bool,
    /// The definition as rendered.
    pub definition: Value,
}

impl Function {
    /// The names of the declared required parameters.
    pub fn required(&self) -> Vec<String> {
        self.parameters
            .get("required")
            .and_then(Value::as_array)
            .map(|names| {
                names
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The declared properties, in document order.
    pub fn properties(&self) -> Vec<(String, Value)> {
        self.parameters
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| props.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
}

/// A rendered SWML document and what the CLI reads from it.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The document as answered.
    pub document: Value,
    /// Whether it has an `ai` verb.
    pub has_ai: bool,
    /// The `ai` verb's functions.
    pub functions: Vec<Function>,
    /// `SWAIG.defaults.web_hook_url`, if any.
    pub defaults_url: Option<String>,
    /// `post_prompt_url`, if any.
    pub post_prompt_url: Option<String>,
    /// The `ai` verb's `global_data` (empty when absent).
    pub global_data: Map<String, Value>,
}

impl Rendered {
    /// The function called `name`.
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|function| function.name == name)
    }

    /// Every URL the document reveals (webhooks, post-prompt), deduplicated, as rendered.
    pub fn urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let candidates = self
            .functions
            .iter()
            .filter_map(|function| function.webhook.clone())
            .chain(self.defaults_url.clone())
            .chain(self.post_prompt_url.clone());
        for url in candidates {
            if seen.insert(url.clone()) {
                urls.push(url);
            }
        }
        urls
    }

    /// Read `document`.
    ///
    /// # Errors
    ///
    /// A sentence saying why it is not an SWML document.
    pub fn read(document: Value) -> Result<Self, String> {
        let sections = document
            .get("sections")
            .and_then(Value::as_object)
            .ok_or("it has no \"sections\" object")?;
        if !sections.get("main").is_some_and(Value::is_array) {
            return Err("it has no \"sections.main\" list of verbs".into());
        }
        let ai = sections
            .values()
            .filter_map(Value::as_array)
            .flatten()
            .find_map(|verb| verb.get("ai"))
            .cloned();
        let mut rendered = Self {
            has_ai: ai.is_some(),
            document,
            functions: Vec::new(),
            defaults_url: None,
            post_prompt_url: None,
            global_data: Map::new(),
        };
        let Some(ai) = ai else {
            return Ok(rendered);
        };
        let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_string);
        rendered.defaults_url = text(ai.pointer("/SWAIG/defaults/web_hook_url"));
        rendered.post_prompt_url = text(ai.get("post_prompt_url"));
        if let Some(Value::Object(data)) = ai.get("global_data") {
            rendered.global_data = data.clone();
        }
        for definition in ai
            .pointer("/SWAIG/functions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = text(definition.get("function")) else {
                continue;
            };
            let webhook = text(definition.get("web_hook_url")).or_else(|| {
                // A data_map function runs on the platform: no webhook.
                if definition.get("data_map").is_some() {
                    None
                } else {
                    rendered.defaults_url.clone()
                }
            });
            rendered.functions.push(Function {
                description: text(definition.get("description")).unwrap_or_default(),
                parameters: definition
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| json!({})),
                token: webhook.as_deref().and_then(token_of),
                meta_data_token: text(definition.get("meta_data_token")),
                active: definition.get("active").and_then(Value::as_bool) != Some(false)
                    && definition.get("active").and_then(Value::as_str) != Some("false"),
                webhook,
                definition: definition.clone(),
                name,
            });
        }
        Ok(rendered)
    }
}

/// The function token of a webhook URL (`__token`, else `token`).
pub fn token_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    ["__token", "token"].iter().find_map(|name| {
        pairs
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.clone())
    })
}

impl Target {
    /// Fetch the SWML document rendered for `call`.
    ///
    /// # Errors
    ///
    /// [`AgentError::Unauthorized`] on 401; [`AgentError::Unusable`] when the answer is an
    /// error status or not an SWML document; transport errors as [`Target::send`].
    pub async fn render(&self, call: &CallSpec) -> Result<Rendered, AgentError> {
        let answer = if call.get {
            self.send(Method::GET, &self.url, &Auth::Target, &[], None)
                .await?
        } else {
            self.post_json(&self.url, &Auth::Target, &call.body())
                .await?
        };
        let shown = self.shown();
        if answer.status == 401 {
            return Err(AgentError::Unauthorized {
                url: shown,
                hint: unauthorized_hint(self.credentials().is_some()),
            });
        }
        if (300..400).contains(&answer.status) {
            let location = answer
                .header("location")
                .map(|to| crate::output::clean(&super::mask::text(to)))
                .unwrap_or_else(|| "nowhere".into());
            return Err(AgentError::Unusable(format!(
                "{shown} answered HTTP {} redirecting to {location}; the CLI does not follow \
                 redirects: give the URL it points to",
                answer.status
            )));
        }
        if !(200..300).contains(&answer.status) {
            // Only a reason shaped like a stable machine reason is quoted: the body is the
            // agent's, and may hold anything.
            let reason = answer
                .json()
                .and_then(|body| {
                    body.get("error")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .filter(|reason| super::swaig::is_stable_reason(reason))
                .map(|reason| format!(" ({reason})"))
                .unwrap_or_default();
            return Err(AgentError::Unusable(format!(
                "{shown} answered HTTP {}{reason} to the SWML fetch. Is this the agent's SWML \
                 route (not its /swaig webhook), and does it accept {}?",
                answer.status,
                if call.get {
                    "GET (try without --get)"
                } else {
                    "POST (try --get)"
                }
            )));
        }
        let not_swml = |why: &str| {
            AgentError::Unusable(format!(
                "{shown} answered, but not with an SWML document: {why}. Is this the agent's \
                 SWML route?"
            ))
        };
        if answer.truncated {
            return Err(not_swml("the answer is larger than 4 MiB"));
        }
        let document: Value = serde_json::from_slice(&answer.body)
            .map_err(|err| not_swml(&format!("the body is not JSON ({err})")))?;
        Rendered::read(document).map_err(|why| not_swml(&why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_are_read_with_their_webhooks_and_tokens() {
        let doc = json!({"version": "1.0.0", "sections": {"main": [{"answer": {}}, {"ai": {
            "global_data": {"shop": "x"},
            "post_prompt_url": "http://u:p@h/post",
            "SWAIG": {
                "defaults": {"web_hook_url": "http://u:p@h/swaig"},
                "functions": [
                    {"function": "a", "description": "A", "web_hook_url": "http://u:p@h/swaig?__token=T1",
                     "parameters": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}},
                    {"function": "b", "description": "B", "active": false},
                    {"function": "c", "description": "C", "data_map": {"webhooks": []}},
                ]
            }
        }}]}});
        let rendered = Rendered::read(doc).unwrap();
        assert!(rendered.has_ai);
        let a = rendered.function("a").unwrap();
        assert_eq!(a.token.as_deref(), Some("T1"));
        assert_eq!(a.required(), vec!["x".to_string()]);
        assert!(a.active);
        let b = rendered.function("b").unwrap();
        assert_eq!(b.webhook.as_deref(), Some("http://u:p@h/swaig"));
        assert!(b.token.is_none() && !b.active);
        assert!(rendered.function("c").unwrap().webhook.is_none());
        assert_eq!(rendered.global_data["shop"], "x");
        assert_eq!(rendered.urls().len(), 3);
    }

    #[test]
    fn non_swml_is_explained() {
        assert!(Rendered::read(json!({"hello": 1}))
            .unwrap_err()
            .contains("sections"));
        assert!(Rendered::read(json!({"sections": {}}))
            .unwrap_err()
            .contains("main"));
        let plain = Rendered::read(json!({"sections": {"main": [{"hangup": {}}]}})).unwrap();
        assert!(!plain.has_ai && plain.functions.is_empty());
    }
}
