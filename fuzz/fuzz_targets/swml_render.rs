//! Fuzz target: SWML rendering of arbitrary agent declarations. It builds the document the way
//! `voxguard`'s renderer does (answer + ai verb; POM or text prompt; SWAIG functions with the
//! platform subset of a schema from a fixed set, webhook URLs, fillers, `active`), from pieces
//! the `voxguard` builder accepts (tool names it allows, filler languages it allows, normalized
//! POM sections, temperatures in range), and checks the serialized result against the official
//! SWML schema: a document that fails it is a finding. The full runtime is not linked (too
//! heavy for a fuzz build); keep this in step with crates/voxguard/src/render.rs.

#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use voxguard_guard::{currency_schema, e164_schema, iso_date_schema, platform_parameters};
use voxguard_swml::conformance::SchemaChecker;
use voxguard_swml::{
    Ai, Answer, Document, Hint, Language, PomSection, PostPrompt, Prompt, Swaig, SwaigDefaults,
    SwaigFunction, Verb, FILLER_LANGUAGES,
};

/// The official schema, relative to this crate (override with `VOXGUARD_SWML_SCHEMA`).
const SCHEMA: &str = "../../shared/reference/swml-schema.json";

fn checker() -> &'static SchemaChecker {
    static CHECKER: OnceLock<SchemaChecker> = OnceLock::new();
    CHECKER.get_or_init(|| {
        let path = std::env::var("VOXGUARD_SWML_SCHEMA")
            .unwrap_or_else(|_| format!("{}/{SCHEMA}", env!("CARGO_MANIFEST_DIR")));
        SchemaChecker::from_path(&path).expect("the official SWML schema loads")
    })
}

fn schemas(i: u8) -> Value {
    match i % 6 {
        0 => json!({"type": "object", "properties": {}}),
        1 => json!({
            "type": "object",
            "properties": {"to": e164_schema("Phone"), "amount": currency_schema("USD", None)},
            "required": ["to"]
        }),
        2 => json!({
            "type": "object",
            "properties": {
                "address": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}]},
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 16}}
            },
            "$defs": {"Address": {"type": "object", "properties": {"zip": {"type": "string"}}}}
        }),
        3 => json!({
            "type": "object",
            "properties": {
                "when": iso_date_schema("Date"),
                "kind": {"type": "string", "enum": ["a", "b"]},
                "count": {"type": "integer", "minimum": 1, "maximum": 9}
            }
        }),
        4 => json!({
            "type": "object",
            "properties": {"confirmed": {"type": "boolean"}, "note": {"type": ["string", "null"]}}
        }),
        _ => json!({
            "type": "object",
            "properties": {"items": {"type": "array", "prefixItems": [{"type": "string"}]}}
        }),
    }
}

#[derive(Debug, Arbitrary)]
struct Section {
    title: Option<String>,
    body: Option<String>,
    bullets: Vec<String>,
    subsections: Vec<(Option<String>, Option<String>, Vec<String>)>,
}

#[derive(Debug, Arbitrary)]
struct ToolDecl {
    name: String,
    description: String,
    schema: u8,
    secure: bool,
    active: bool,
    confirm: bool,
    fillers: Option<(u8, Vec<String>)>,
    wait_file: Option<String>,
}

#[derive(Debug, Arbitrary)]
struct Decl {
    text_prompt: Option<String>,
    sections: Vec<Section>,
    /// Hundredths, kept in the documented 0–1.5 range.
    temperature: Option<u8>,
    post_prompt: Option<String>,
    summary: bool,
    hints: Vec<String>,
    pattern_hint: Option<(String, String, String, Option<bool>)>,
    languages: Vec<(String, String, String)>,
    tools: Vec<ToolDecl>,
    global_data: Vec<(String, String)>,
}

/// The tool-name rule of `voxguard::AgentBuilder::build`.
fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with("__")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn section(title: Option<String>, body: Option<String>, bullets: Vec<String>) -> PomSection {
    let mut s = PomSection::default();
    s.title = title;
    s.body = body;
    s.bullets(bullets)
}

const BASE: &str = "https://user:pass@agent.example.com/swaig";

/// The document for `decl`, or `None` where `AgentBuilder::build` refuses the declaration
/// (no prompt at all: `AgentError::NoPrompt`).
fn render(decl: Decl) -> Option<Document> {
    if decl.text_prompt.is_none() && decl.sections.is_empty() {
        return None;
    }
    let temperature = decl.temperature.map(|t| f64::from(t % 151) / 100.0);
    let prompt = match decl.text_prompt {
        Some(text) => Prompt::Text { text, temperature },
        None => Prompt::Pom {
            pom: decl
                .sections
                .into_iter()
                .map(|s| {
                    let mut top = section(s.title, s.body, s.bullets);
                    for (title, body, bullets) in s.subsections {
                        top = top.subsection(section(title, body, bullets));
                    }
                    top.normalized()
                })
                .collect(),
            temperature,
        },
    };
    let mut seen = std::collections::BTreeSet::new();
    let functions: Vec<SwaigFunction> = decl
        .tools
        .into_iter()
        .filter(|t| valid_tool_name(&t.name) && seen.insert(t.name.clone()))
        .filter_map(|t| {
            let mut parameters = platform_parameters(&schemas(t.schema)).ok()?;
            if t.confirm {
                if let Some(props) = parameters
                    .get_mut("properties")
                    .and_then(Value::as_object_mut)
                {
                    props.insert(
                        "confirmed".into(),
                        json!({"type": "boolean", "description": "Set to true only after…"}),
                    );
                }
            }
            let fillers = t.fillers.map(|(lang, phrases)| {
                let code = FILLER_LANGUAGES[usize::from(lang) % FILLER_LANGUAGES.len()];
                let mut map = Map::new();
                map.insert(code.to_string(), json!(phrases));
                map
            });
            Some(SwaigFunction {
                function: t.name,
                description: t.description,
                parameters,
                web_hook_url: t.secure.then(|| format!("{BASE}?__token=kid.payload.mac")),
                fillers,
                wait_file: t.wait_file,
                meta_data: None,
                meta_data_token: None,
                active: (!t.active).then_some(false),
            })
        })
        .collect();
    let swaig = (!functions.is_empty()).then(|| Swaig {
        defaults: Some(SwaigDefaults {
            web_hook_url: Some(BASE.to_string()),
        }),
        functions,
    });
    let mut hints: Vec<Hint> = decl.hints.into_iter().map(Hint::from).collect();
    if let Some((hint, pattern, replace, ignore_case)) = decl.pattern_hint {
        hints.push(Hint::Pattern {
            hint,
            pattern,
            replace,
            ignore_case,
        });
    }
    let ai = Ai {
        prompt,
        post_prompt: decl.post_prompt.map(|text| PostPrompt { text }),
        post_prompt_url: decl
            .summary
            .then(|| format!("{BASE}/post_prompt?__token=kid.payload.mac")),
        params: Map::new(),
        languages: decl
            .languages
            .into_iter()
            .map(|(name, code, voice)| Language::new(name, code, voice))
            .collect(),
        hints,
        global_data: decl
            .global_data
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
        swaig,
    };
    Some(Document::new(vec![
        Verb::Answer(Answer::default()),
        Verb::Ai(Box::new(ai)),
    ]))
}

fuzz_target!(|decl: Decl| {
    let Some(document) = render(decl) else {
        return;
    };
    let value = serde_json::to_value(&document).expect("a document serializes");
    // Timing aid (docs/fuzzing.md): how much of an input's time is the schema check itself.
    if std::env::var_os("VOXGUARD_FUZZ_SKIP_SCHEMA").is_some() {
        return;
    }
    if let Err(error) = checker().check_document(&value) {
        panic!("rendered SWML fails the official schema: {error}\n{value:#}");
    }
    // What the platform reads back is what we rendered.
    let back: Document = serde_json::from_value(value).expect("a rendered document reads back");
    assert_eq!(back, document);
});
