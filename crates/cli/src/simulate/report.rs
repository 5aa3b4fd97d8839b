//! How a run of `voxguard simulate` reads: one line per call (PASS, FAIL or ERROR), the
//! failed step of a failed call as an expected/got diff with what came back, every step
//! with `--verbose`, a closing summary, and the same as one JSON document with `--json`.
//!
//! It owns the text and the JSON shape. It must not run calls or decide the exit code, and
//! it prints only what the player recorded (already masked), through
//! [`crate::output::clean`] so that an agent's answer cannot drive the terminal.

use serde_json::{json, Value};

use super::outcome::{CallOutcome, StepOutcome, Totals, Verdict};
use crate::cmd;
use crate::output::clean;

/// The text block of one call.
pub fn call_text(call: &CallOutcome, verbose: bool, color: bool) -> String {
    let title = format!("{} › {}", call.file, call.name);
    let (label, code) = if call.passed() {
        ("PASS ", "32")
    } else if call.error.is_some() {
        ("ERROR", "31")
    } else {
        ("FAIL ", "31")
    };
    let progress = match call.steps.iter().find(|s| s.verdict == Verdict::Failed) {
        Some(failed) => format!("step {} of {} failed", failed.number, call.steps.len()),
        None if call.error.is_some() => {
            format!("{} steps not played", call.count(Verdict::Skipped))
        }
        None => format!("{} steps", call.steps.len()),
    };
    let mut out = format!(
        "{} {}  ({progress}, call {})\n",
        cmd::paint(label, code, color),
        clean(&title),
        clean(&call.call_id),
    );
    if let Some(error) = &call.error {
        out.push_str(&format!("      {}\n", clean(error)));
    }
    for step in &call.steps {
        let show = verbose || step.verdict == Verdict::Failed;
        if show {
            out.push_str(&step_text(step, color));
        }
    }
    let skipped = call.count(Verdict::Skipped);
    if skipped > 0 && !verbose && call.error.is_none() {
        out.push_str(&format!(
            "      {skipped} later step{} skipped\n",
            if skipped == 1 { "" } else { "s" }
        ));
    }
    out
}

/// `n steps`, or `1 step`.
fn steps(n: usize) -> String {
    format!("{n} step{}", if n == 1 { "" } else { "s" })
}

/// One step: its line, its mismatches as `- expected` / `+ got`, and what came back.
fn step_text(step: &StepOutcome, color: bool) -> String {
    let verdict = match step.verdict {
        Verdict::Passed => cmd::paint("ok", "32", color),
        Verdict::Failed => cmd::paint("failed", "31", color),
        Verdict::Skipped => "skipped".into(),
    };
    let label = if step.label == step.function {
        step.function.clone()
    } else {
        format!("{} ({})", step.label, step.function)
    };
    let mut out = format!(
        "      step {}  {} {}  {verdict}\n",
        step.number,
        clean(&label),
        clean(&step.arguments.to_string())
    );
    if let Some(note) = &step.note {
        out.push_str(&format!("        note: {}\n", clean(note)));
    }
    for mismatch in &step.mismatches {
        out.push_str(&format!(
            "        {} expected: {}\n        {} got:      {}\n",
            cmd::paint("-", "31", color),
            clean(&mismatch.expected),
            cmd::paint("+", "32", color),
            clean(&mismatch.actual)
        ));
    }
    if let Some(back) = came_back(step) {
        out.push_str(&format!(
            "        came back: HTTP {}, {}\n          response: {}\n          actions: {}\n",
            back.status,
            clean(&back.refusal),
            clean(&back.response),
            clean(&back.actions)
        ));
    }
    out
}

/// What came back for a played step, in words (not yet cleaned or escaped; every part
/// was masked by the player).
pub struct CameBack {
    /// The HTTP status.
    pub status: u16,
    /// `not refused`, `refused: REASON`, `refused (unreadable reason)`, `refused (no
    /// reason)`, `not a SWAIG answer (not JSON, 15 bytes)`.
    pub refusal: String,
    /// The response quoted, `(not JSON, 15 bytes)`, or `none`.
    pub response: String,
    /// The actions, `; `-separated, or `none`.
    pub actions: String,
}

/// What came back for `step`, when it was played.
pub fn came_back(step: &StepOutcome) -> Option<CameBack> {
    let status = step.status?;
    let refusal = match &step.refusal {
        Some(refusal) => refusal.words(),
        None if !(200..300).contains(&status) => "refused (no reason)".into(),
        None => match &step.body {
            Some(body) => format!("not a SWAIG answer ({body})"),
            None => "not refused".into(),
        },
    };
    let response = match (&step.response, &step.body) {
        (Some(text), _) => format!("{text:?}"),
        (None, Some(body)) => format!("({body})"),
        (None, None) => "none".into(),
    };
    let actions = if step.actions.is_empty() {
        "none".into()
    } else {
        step.actions
            .iter()
            .map(|a| a.detail.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    Some(CameBack {
        status,
        refusal,
        response,
        actions,
    })
}

/// The closing summary line.
pub fn summary_text(totals: &Totals, color: bool) -> String {
    let calls = format!(
        "{} call{}: {} passed, {} failed",
        totals.calls,
        if totals.calls == 1 { "" } else { "s" },
        totals.calls_passed,
        totals.calls_failed
    );
    let code = if totals.calls_failed == 0 { "32" } else { "31" };
    format!(
        "\n{} · {}: {} passed, {} failed, {} skipped\n",
        cmd::paint(&calls, code, color),
        steps(totals.steps),
        totals.steps_passed,
        totals.steps_failed,
        totals.steps_skipped
    )
}

/// The whole run as one JSON document.
pub fn json(target: &str, calls: &[CallOutcome], totals: &Totals) -> Value {
    json!({
        "ok": totals.calls_failed == 0,
        "target": target,
        "totals": totals,
        "calls": calls.iter().map(|call| {
            let mut value = serde_json::to_value(call).unwrap_or(Value::Null);
            value["ok"] = Value::Bool(call.passed());
            value
        }).collect::<Vec<_>>(),
    })
}
