//! SWML rendering: the document the platform fetches at the start of a call.
//!
//! Owns turning an [`Agent`] declaration into a [`Document`] for one call: `answer`, optional
//! `record_call`, and the `ai` verb whose SWAIG functions carry the platform subset of each
//! tool schema, webhook URLs with the Basic credentials embedded, and — for every secure tool
//! and for `post_prompt_url` — a function token minted for this call. Where a token is minted:
//! [`Templates::render`] (through `minter`).

use std::sync::Arc;

use serde_json::Value;
use voxguard_guard::KeyRing;
use voxguard_server::{with_query, AgentRoutes, RequestInfo};
use voxguard_swml::{
    Ai, Answer, Document, PostPrompt, Prompt, Swaig, SwaigDefaults, SwaigFunction, SwmlRequest,
    Verb,
};

use crate::agent::{Agent, PromptDef, POST_PROMPT_FUNCTION};
use crate::records::compliance::privacy_section;

/// What the runtime adds to every agent's document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RenderOptions {
    /// Records are on: ask for the end-of-call summary even without a handler.
    pub(crate) records: bool,
    /// HIPAA mode: add the privacy prompt section.
    pub(crate) hipaa: bool,
}

/// The summary prompt used when records are on and the agent sets none.
pub(crate) const DEFAULT_POST_PROMPT: &str =
    "Summarize the call in a few sentences: why the caller called, what was done, and what is still open.";

/// Where a render's tokens come from: one new render id (the tokens of one document share a
/// server-side session that a later render for the same call cannot reach, see
/// pipeline::session_scope), then a token for each function named.
fn minter<'a>(
    keys: &'a KeyRing,
    call_id: &'a str,
    now_unix: u64,
) -> impl FnMut(&str) -> String + 'a {
    let render_id = {
        use rand::Rng;
        format!("{:032x}", rand::thread_rng().gen::<u128>())
    };
    move |function| keys.mint_with_session_at(call_id, function, &render_id, now_unix)
}

/// The document for one call with the tokens from `mint` (called with each function's name,
/// in document order).
fn render_with(
    agent: &Agent,
    info: &RequestInfo,
    options: RenderOptions,
    mint: &mut dyn FnMut(&str) -> String,
) -> Document {
    let def = &agent.inner;
    let routes = AgentRoutes::new(&def.route);
    let swaig_hook = info.webhook_base(routes.swaig());
    let functions = def
        .tools
        .iter()
        .filter_map(|tool| {
            let compiled = tool.compiled.as_ref().ok()?;
            let web_hook_url = tool.secure.then(|| {
                let token = mint(&tool.name);
                with_query(swaig_hook.clone(), &[("__token", &token)])
            });
            Some(SwaigFunction {
                function: tool.name.clone(),
                description: tool.description.clone(),
                parameters: rendered_parameters(
                    &compiled.parameters,
                    tool.policy.confirm.is_some(),
                ),
                web_hook_url,
                fillers: tool.fillers.clone(),
                wait_file: tool.wait_file.clone(),
                meta_data: None,
                meta_data_token: None,
                active: (!tool.active).then_some(false),
            })
        })
        .collect::<Vec<_>>();
    let swaig = (!functions.is_empty()).then(|| Swaig {
        defaults: Some(SwaigDefaults {
            web_hook_url: Some(with_query(swaig_hook, &[])),
        }),
        functions,
    });
    let prompt = match &def.prompt {
        PromptDef::Pom(sections) => {
            let mut pom = sections.clone();
            if options.hipaa {
                pom.push(privacy_section());
            }
            Prompt::Pom {
                pom,
                temperature: def.temperature,
            }
        }
        PromptDef::Text(text) => Prompt::Text {
            text: if options.hipaa {
                let privacy = privacy_section();
                format!(
                    "{text}\n\n{}: {}",
                    privacy.title.unwrap_or_default(),
                    privacy.body.unwrap_or_default()
                )
            } else {
                text.clone()
            },
            temperature: def.temperature,
        },
    };
    // With records on, the runtime takes the summary itself, handler or not.
    let wants_summary = def.on_summary.is_some() || options.records;
    let post_prompt_url = wants_summary.then(|| {
        let token = mint(POST_PROMPT_FUNCTION);
        info.webhook_url(routes.post_prompt(), &[("__token", &token)])
    });
    let ai = Ai {
        prompt,
        post_prompt: def
            .post_prompt
            .clone()
            .or_else(|| options.records.then(|| DEFAULT_POST_PROMPT.to_string()))
            .map(|text| PostPrompt { text }),
        post_prompt_url,
        params: def.params.clone(),
        languages: def.languages.clone(),
        hints: def.hints.clone(),
        global_data: def.global_data.clone(),
        swaig,
    };
    let mut verbs = vec![Verb::Answer(Answer::default())];
    if let Some(record) = &def.record_call {
        verbs.push(Verb::RecordCall(record.clone()));
    }
    verbs.push(Verb::Ai(Box::new(ai)));
    Document::new(verbs)
}

/// The platform parameters, plus the runtime's `confirmed` flag for tools with confirmation.
fn rendered_parameters(parameters: &Value, confirm: bool) -> Value {
    let mut parameters = parameters.clone();
    if confirm {
        if let Some(props) = parameters
            .get_mut("properties")
            .and_then(Value::as_object_mut)
        {
            props.insert(
                voxguard_guard::CONFIRMED_ARG.to_string(),
                serde_json::json!({
                    "type": "boolean",
                    "description": "Set to true only after reading the summary back to the caller and hearing them clearly confirm it."
                }),
            );
        }
    }
    parameters
}

/// The call id of a SWML fetch, or a fresh random one when the platform sent none (tokens
/// minted for it then match no real call: fail closed).
pub(crate) fn call_id_for(body: Option<&Value>) -> String {
    body.and_then(|b| serde_json::from_value::<SwmlRequest>(b.clone()).ok())
        .and_then(|req| req.call_id().map(str::to_string))
        .unwrap_or_else(|| {
            use rand::Rng;
            format!("vg-{:032x}", rand::thread_rng().gen::<u128>())
        })
}

/// The rendered documents of one agent as bytes, from one template per public base URL.
///
/// Between two renders for the same public base URL only the function tokens differ. The
/// document is therefore serialized once with a placeholder for each token and cut at the
/// placeholders; a render then mints its tokens and joins the pieces, instead of building,
/// cloning, serializing and dropping the whole typed document again. A token is base64url and
/// dots, which neither the URL's query encoding nor JSON string escaping changes, so the
/// joined bytes are exactly what serializing the typed document with those tokens gives (a
/// test compares the two).
#[derive(Default)]
pub(crate) struct Templates {
    cache: std::sync::Mutex<std::collections::HashMap<String, Arc<Template>>>,
}

/// At most this many public base URLs keep a template (behind a proxy that passes the Host
/// header on, one per name the agent is reached at); past it, a render is serialized whole.
const MAX_TEMPLATES: usize = 16;

/// One agent's document for one public base URL, cut where its tokens go.
struct Template {
    options: RenderOptions,
    /// The bytes before each token, in document order, then the bytes after the last one.
    pieces: Vec<Vec<u8>>,
    /// The function each token is minted for, in document order.
    functions: Vec<String>,
}

impl Templates {
    /// The document for `call_id` as JSON bytes, with new tokens that expire one token lifetime
    /// after `now_unix` (the runtime clock's reading).
    pub(crate) fn render(
        &self,
        agent: &Agent,
        keys: &KeyRing,
        info: &RequestInfo,
        call_id: &str,
        now_unix: u64,
        options: RenderOptions,
    ) -> Result<Vec<u8>, serde_json::Error> {
        let base = info.public_base.as_str();
        let cached = self.lock().get(base).cloned();
        let template = match cached.filter(|t| t.options == options) {
            Some(template) => template,
            None => match Template::build(agent, info, options) {
                Some(template) => {
                    let template = Arc::new(template);
                    let mut cache = self.lock();
                    if cache.len() < MAX_TEMPLATES || cache.contains_key(base) {
                        cache.insert(base.to_string(), template.clone());
                    }
                    template
                }
                None => {
                    let mut mint = minter(keys, call_id, now_unix);
                    return serde_json::to_vec(&render_with(agent, info, options, &mut mint));
                }
            },
        };
        let mut mint = minter(keys, call_id, now_unix);
        let size = template.pieces.iter().map(Vec::len).sum::<usize>();
        let mut out = Vec::with_capacity(size + template.functions.len() * 256);
        for (piece, function) in template.pieces.iter().zip(&template.functions) {
            out.extend_from_slice(piece);
            out.extend_from_slice(mint(function).as_bytes());
        }
        if let Some(last) = template.pieces.last() {
            out.extend_from_slice(last);
        }
        Ok(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<Template>>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Template {
    /// Render with placeholder tokens and cut the bytes at them; `None` if the placeholders do
    /// not come out exactly once each, as written (then renders are serialized whole).
    fn build(agent: &Agent, info: &RequestInfo, options: RenderOptions) -> Option<Self> {
        let marker = {
            use rand::Rng;
            format!("vgtoken{:032x}n", rand::thread_rng().gen::<u128>())
        };
        let mut named = Vec::new();
        let mut placeholder = |function: &str| {
            named.push(function.to_string());
            format!("{marker}{:04}", named.len() - 1)
        };
        let document = render_with(agent, info, options, &mut placeholder);
        let bytes = serde_json::to_vec(&document).ok()?;
        let mut pieces = Vec::with_capacity(named.len() + 1);
        let mut functions = Vec::with_capacity(named.len());
        let mut seen = vec![false; named.len()];
        let mut rest = bytes.as_slice();
        while let Some(at) = find(rest, marker.as_bytes()) {
            let digits = rest.get(at + marker.len()..at + marker.len() + 4)?;
            let index: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
            if std::mem::replace(seen.get_mut(index)?, true) {
                return None;
            }
            functions.push(named.get(index)?.clone());
            pieces.push(rest.get(..at)?.to_vec());
            rest = rest.get(at + marker.len() + 4..)?;
        }
        if seen.iter().any(|seen| !seen) {
            return None;
        }
        pieces.push(rest.to_vec());
        Some(Self {
            options,
            pieces,
            functions,
        })
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use serde_json::{json, Value};
    use voxguard_guard::{BasicCredentials, KeyRing, SecretKey};
    use voxguard_server::RequestInfo;

    use super::{render_with, RenderOptions, Templates, MAX_TEMPLATES};
    use crate::agent::POST_PROMPT_FUNCTION;
    use crate::{Agent, Tool};

    const NOW: u64 = 1_700_000_000;

    fn tool(name: &str) -> Tool {
        Tool::untyped(
            name,
            "Says \"hi\" – with quotes, a dash and ünïcödé",
            json!({"type": "object", "properties": {"note": {"type": "string", "maxLength": 40}}}),
            |_args, _ctx| async move { Ok(voxguard_swml::FunctionResult::new("ok")) },
        )
    }

    fn agent() -> Agent {
        Agent::builder("unit")
            .prompt_text("You help. {\"not\": \"a token\"} \\ vgtoken")
            .post_prompt("Summarize.")
            .hints(["pin", "balance"])
            .tool(tool("first"))
            .tool(tool("open").secure(false))
            .tool(tool("quiet").inactive().fillers("en-US", ["One moment."]))
            .tool(tool("last"))
            .build()
            .expect("agent builds")
    }

    fn info(base: &str) -> RequestInfo {
        RequestInfo::new(
            "127.0.0.1:9".parse().expect("addr"),
            base.parse().expect("url"),
            Arc::new(BasicCredentials::new("user", "p@ss w/rd\"long-enough")),
            None,
        )
    }

    /// Each token of a rendered document, by the function it is for.
    fn tokens(document: &Value) -> HashMap<String, String> {
        let token = |url: &Value| {
            let url = url::Url::parse(url.as_str().expect("a URL")).expect("valid URL");
            url.query_pairs()
                .find(|(key, _)| key == "__token")
                .map(|(_, value)| value.into_owned())
        };
        let ai = &document["sections"]["main"][1]["ai"];
        let mut found = HashMap::new();
        for function in ai["SWAIG"]["functions"].as_array().expect("functions") {
            if let Some(url) = function.get("web_hook_url") {
                let name = function["function"].as_str().expect("name").to_string();
                found.insert(name, token(url).expect("a token"));
            }
        }
        if let Some(url) = ai.get("post_prompt_url") {
            found.insert(
                POST_PROMPT_FUNCTION.to_string(),
                token(url).expect("a token"),
            );
        }
        found
    }

    /// A render from the template is byte for byte what serializing the typed document with
    /// the same tokens gives — for several public base URLs, with and without records and
    /// HIPAA, past the cache's bound — and its tokens are new for each render and verify.
    #[test]
    fn template_renders_are_the_typed_document_byte_for_byte() {
        let agent = agent();
        let keys = KeyRing::new(SecretKey::from_bytes(vec![7; 32]).expect("key"));
        let templates = Templates::default();
        let mut bases: Vec<String> = vec![
            "https://agent.example.com/".into(),
            "https://agent.example.com:8443/voice/".into(),
            "http://127.0.0.1:3000/".into(),
        ];
        bases.extend((0..MAX_TEMPLATES).map(|i| format!("https://host-{i}.example/")));
        for options in [
            RenderOptions::default(),
            RenderOptions {
                records: true,
                hipaa: true,
            },
        ] {
            for base in &bases {
                let info = info(base);
                let mut previous = None;
                for call in ["call-1", "call-2"] {
                    let bytes = templates
                        .render(&agent, &keys, &info, call, NOW, options)
                        .expect("renders");
                    let document: Value = serde_json::from_slice(&bytes).expect("JSON");
                    let tokens = tokens(&document);
                    assert_eq!(tokens.len(), 3 + usize::from(options.records), "{base}");
                    assert!(
                        !tokens.contains_key("open"),
                        "an insecure tool has no token"
                    );
                    let typed = render_with(&agent, &info, options, &mut |function| {
                        tokens[function].clone()
                    });
                    assert_eq!(
                        String::from_utf8(bytes).expect("UTF-8"),
                        serde_json::to_string(&typed).expect("serializes"),
                        "{base} {options:?}"
                    );
                    let mut sessions = Vec::new();
                    for (function, token) in &tokens {
                        sessions.push(
                            keys.verify_with_session_at(token, call, function, NOW)
                                .expect("the token verifies for its function and call"),
                        );
                    }
                    sessions.sort();
                    sessions.dedup();
                    assert_eq!(sessions.len(), 1, "one render, one session");
                    assert_ne!(previous.as_ref(), Some(&tokens), "new tokens every render");
                    previous = Some(tokens);
                }
            }
        }
        assert!(templates.lock().len() <= MAX_TEMPLATES);
    }
}
