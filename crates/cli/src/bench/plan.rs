//! The load plan: what the agent's SWML document offers and who calls it.
//!
//! This module owns reading the rendered document — through the `voxguard_swml` types, never
//! by indexing untyped JSON — for each function's webhook path (its per-call token included)
//! and for the functions callable without arguments (the default mix), and the callers'
//! numbers. It must not send requests or measure anything.

use std::collections::HashMap;
use std::time::Duration;

use voxguard_swml::{Ai, Document, SwaigFunction};

use super::args::{CallSpec, Calls, Usage};

/// The load plan shared by the workers.
pub(super) struct Plan {
    /// Workers, one simulated call in flight each.
    pub(super) concurrency: usize,
    /// SWAIG calls per simulated call.
    pub(super) calls: Calls,
    /// The functions called, in turn.
    pub(super) mix: Vec<CallSpec>,
    /// The verification made once per simulated call, when the agent renders it.
    pub(super) verify: Option<CallSpec>,
    /// The callers' numbers, used in turn.
    pub(super) callers: Vec<String>,
    /// Per-request timeout.
    pub(super) timeout: Duration,
    /// With `--rate`: the time between two requests of one worker.
    pub(super) pace: Option<Duration>,
    /// Makes this run's call ids unique.
    pub(super) run_id: String,
}

/// `count` consecutive E.164 numbers from `first`.
pub(super) fn callers(first: &str, count: u64) -> Result<Vec<String>, Usage> {
    let digits = first
        .strip_prefix('+')
        .filter(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            Usage(format!(
                "--caller {first:?} is not an E.164 number like +15551234567"
            ))
        })?;
    let start: u64 = digits.parse()?;
    if count == 0 {
        return Err(Usage("--callers must be at least 1".into()));
    }
    let last = start.checked_add(count - 1);
    if last.is_none_or(|last| last.to_string().len() != digits.len()) || count > 1_000_000 {
        return Err(Usage(format!(
            "{count} numbers from {first} run past {} digits (or past a million callers)",
            digits.len()
        )));
    }
    (0..count)
        .map(|i| {
            let number = (start + i).to_string();
            if number.len() == digits.len() {
                Ok(format!("+{number}"))
            } else {
                Err(Usage(format!(
                    "{count} numbers from {first} run past {} digits",
                    digits.len()
                )))
            }
        })
        .collect()
}

/// Per-function webhook paths (path and query, token included) of a rendered SWML document:
/// the function's own `web_hook_url`, else the SWAIG default. A function whose URL does not
/// parse is left out.
pub(super) fn webhooks(swml: &Document) -> HashMap<String, String> {
    let Some(ai) = swml.ai() else {
        return HashMap::new();
    };
    let default = ai
        .swaig
        .as_ref()
        .and_then(|swaig| swaig.defaults.as_ref())
        .and_then(|defaults| defaults.web_hook_url.as_deref());
    rendered_functions(ai)
        .filter_map(|f| {
            let url = f.web_hook_url.as_deref().or(default)?;
            let url = url::Url::parse(url).ok()?;
            let path = match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_string(),
            };
            Some((f.function.clone(), path))
        })
        .collect()
}

/// The functions of a SWML document with no required argument.
pub(super) fn callable_without_arguments(swml: &Document) -> Vec<String> {
    swml.ai()
        .into_iter()
        .flat_map(rendered_functions)
        .filter(|f| {
            f.parameters["required"]
                .as_array()
                .is_none_or(|r| r.is_empty())
        })
        .map(|f| f.function.clone())
        .collect()
}

/// The SWAIG functions of an `ai` verb.
fn rendered_functions(ai: &Ai) -> impl Iterator<Item = &SwaigFunction> {
    ai.swaig.iter().flat_map(|swaig| &swaig.functions)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn webhooks_keep_path_and_token() {
        let swml = json!({"sections": {"main": [{"answer": {}}, {"ai": {"prompt": {"text": "Help."}, "SWAIG": {
            "defaults": {"web_hook_url": "https://u:p@example.com/agent/swaig"},
            "functions": [
                {"function": "a", "description": "A", "web_hook_url": "https://u:p@example.com/agent/swaig?__token=abc", "parameters": {"type": "object", "properties": {}}},
                {"function": "b", "description": "B", "parameters": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}},
            ]
        }}}]}});
        let swml: Document = serde_json::from_value(swml).expect("a SWML document");
        let hooks = webhooks(&swml);
        assert_eq!(hooks["a"], "/agent/swaig?__token=abc");
        assert_eq!(hooks["b"], "/agent/swaig");
        assert_eq!(callable_without_arguments(&swml), vec!["a".to_string()]);
    }

    #[test]
    fn another_sdks_document_offers_its_functions() {
        // Verbs and fields voxguard does not model, no `version`, a function without
        // `parameters` and one with a URL that does not parse.
        let swml = json!({"sections": {"main": [
            {"play": {"url": "say:Hello"}},
            {"ai": {
                "prompt": {"pom": [{"title": "Role", "body": "Help.", "numbered": true}]},
                "pronounce": [],
                "SWAIG": {
                    "native_functions": ["check_time"],
                    "functions": [
                        {"function": "status", "description": "Status", "fillers": {"en-US": ["One moment"]},
                         "web_hook_url": "https://sdk.example.com/swaig/?token=t1"},
                        {"function": "broken", "description": "Broken", "web_hook_url": "not a url"},
                    ]
                }
            }},
        ]}});
        let swml: Document = serde_json::from_value(swml).expect("a SWML document");
        let hooks = webhooks(&swml);
        assert_eq!(hooks.len(), 1, "{hooks:?}");
        assert_eq!(hooks["status"], "/swaig/?token=t1");
        assert_eq!(
            callable_without_arguments(&swml),
            vec!["status".to_string(), "broken".to_string()]
        );
    }

    #[test]
    fn callers_are_consecutive_numbers() {
        assert_eq!(
            callers("+15551234567", 3).expect("callers"),
            ["+15551234567", "+15551234568", "+15551234569"]
        );
        assert!(callers("15551234567", 1).is_err());
        assert!(callers("+1555-123", 1).is_err());
        assert!(callers("+99999999", 2).is_err());
        assert!(callers("+15551234567", 0).is_err());
    }
}
