//! SWML rendering: the document the platform fetches at the start of a call.
//!
//! Owns turning an [`Agent`] declaration into a [`Document`] for one call: `answer`, optional
//! `record_call`, and the `ai` verb whose SWAIG functions carry the platform subset of each
//! tool schema, webhook URLs with the Basic credentials embedded, and — for every secure tool
//! and for `post_prompt_url` — a function token minted for this call. Where a token is minted:
//! [`render`].

use serde_json::Value;
use voxguard_guard::KeyRing;
use voxguard_server::{AgentRoutes, RequestInfo};
use voxguard_swml::{
    Ai, Answer, Document, PostPrompt, Prompt, Swaig, SwaigDefaults, SwaigFunction, SwmlRequest,
    Verb,
};

use crate::agent::{Agent, PromptDef, POST_PROMPT_FUNCTION};

/// Render the SWML document for `call_id`, minting tokens that expire one token lifetime after
/// `now_unix` (the runtime clock's reading).
pub(crate) fn render(
    agent: &Agent,
    keys: &KeyRing,
    info: &RequestInfo,
    call_id: &str,
    now_unix: u64,
) -> Document {
    let def = &agent.inner;
    let routes = AgentRoutes::new(&def.route);
    // One id per render: the tokens of this document share a server-side session that a later
    // render for the same call cannot reach (see pipeline::session_scope).
    let render_id = {
        use rand::Rng;
        format!("{:032x}", rand::thread_rng().gen::<u128>())
    };
    let swaig_path = routes.swaig();
    let functions = def
        .tools
        .iter()
        .filter_map(|tool| {
            let compiled = tool.compiled.as_ref().ok()?;
            let web_hook_url = tool.secure.then(|| {
                let token = keys.mint_with_session_at(call_id, &tool.name, &render_id, now_unix);
                info.webhook_url(swaig_path, &[("__token", &token)])
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
            web_hook_url: Some(info.webhook_url(swaig_path, &[])),
        }),
        functions,
    });
    let prompt = match &def.prompt {
        PromptDef::Pom(sections) => Prompt::Pom {
            pom: sections.clone(),
            temperature: def.temperature,
        },
        PromptDef::Text(text) => Prompt::Text {
            text: text.clone(),
            temperature: def.temperature,
        },
    };
    let post_prompt_url = def.on_summary.as_ref().map(|_| {
        let token = keys.mint_with_session_at(call_id, POST_PROMPT_FUNCTION, &render_id, now_unix);
        info.webhook_url(routes.post_prompt(), &[("__token", &token)])
    });
    let ai = Ai {
        prompt,
        post_prompt: def.post_prompt.clone().map(|text| PostPrompt { text }),
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
