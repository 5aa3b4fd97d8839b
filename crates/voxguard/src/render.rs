//! SWML rendering: the document the platform fetches at the start of a call.
//!
//! Owns turning an [`Agent`] declaration into a [`Document`] for one call: `answer`, optional
//! `record_call`, and the `ai` verb whose SWAIG functions carry the platform subset of each
//! tool schema, webhook URLs with the Basic credentials embedded, and — for every secure tool
//! and for `post_prompt_url` — a function token minted for this call. Where a token is minted:
//! [`render`].

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
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RenderOptions {
    /// Records are on: ask for the end-of-call summary even without a handler.
    pub(crate) records: bool,
    /// HIPAA mode: add the privacy prompt section.
    pub(crate) hipaa: bool,
}

/// The summary prompt used when records are on and the agent sets none.
pub(crate) const DEFAULT_POST_PROMPT: &str =
    "Summarize the call in a few sentences: why the caller called, what was done, and what is still open.";

/// Render the SWML document for `call_id`, minting tokens that expire one token lifetime after
/// `now_unix` (the runtime clock's reading).
pub(crate) fn render(
    agent: &Agent,
    keys: &KeyRing,
    info: &RequestInfo,
    call_id: &str,
    now_unix: u64,
    options: RenderOptions,
) -> Document {
    let def = &agent.inner;
    let routes = AgentRoutes::new(&def.route);
    // One id per render: the tokens of this document share a server-side session that a later
    // render for the same call cannot reach (see pipeline::session_scope).
    let render_id = {
        use rand::Rng;
        format!("{:032x}", rand::thread_rng().gen::<u128>())
    };
    let swaig_hook = info.webhook_base(routes.swaig());
    let functions = def
        .tools
        .iter()
        .filter_map(|tool| {
            let compiled = tool.compiled.as_ref().ok()?;
            let web_hook_url = tool.secure.then(|| {
                let token = keys.mint_with_session_at(call_id, &tool.name, &render_id, now_unix);
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
        let token = keys.mint_with_session_at(call_id, POST_PROMPT_FUNCTION, &render_id, now_unix);
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
