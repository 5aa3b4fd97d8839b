//! What playing a scripted call produced: per step the verdict (passed, failed, skipped),
//! what came back (status, refusal, response text, actions) and the expectations that did
//! not hold; per call the steps and the error that stopped it, if any.
//!
//! It owns these result types and their counts. Every text in them is already masked by
//! the player ([`super::play`]); it must not hold a secret or decide an exit code.

use serde::Serialize;
use serde_json::Value;

use super::check::Mismatch;
use crate::agent::AgentError;

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every expectation held.
    Passed,
    /// At least one expectation did not hold, or the step could not be played.
    Failed,
    /// Not played: an earlier step of the call failed, or the call stopped.
    Skipped,
}

/// One action that came back: its kind and a line for a person.
#[derive(Debug, Clone, Serialize)]
pub struct ActionSeen {
    /// `connect`, `pay`, `toggle_functions`, … (see [`crate::agent::Decoded::kind`]).
    pub kind: String,
    /// `connect → +15550100002`, … (masked).
    pub detail: String,
}

/// A refusal as shown (masked).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RefusalSeen {
    /// The stable reason (`error`), or `null` when it is not one (free text, control
    /// characters, not text at all): see `problem`.
    pub reason: Option<String>,
    /// The human sentence (`response` or `message`), if any.
    pub sentence: Option<String>,
    /// `unreadable reason` or `malformed error` when `reason` is `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl RefusalSeen {
    /// `refused: verification_required`, `refused (unreadable reason)`.
    pub fn words(&self) -> String {
        match (&self.reason, &self.problem) {
            (Some(reason), _) => format!("refused: {reason}"),
            (None, Some(problem)) => format!("refused ({problem})"),
            (None, None) => "refused".into(),
        }
    }
}

/// One step's result.
#[derive(Debug, Clone, Serialize)]
pub struct StepOutcome {
    /// 1-based position in the call.
    pub number: usize,
    /// The step's label (its `name:`, else the function).
    pub label: String,
    /// The function called.
    pub function: String,
    /// The arguments sent.
    pub arguments: Value,
    /// How it went.
    pub verdict: Verdict,
    /// The HTTP status, when the function was called.
    pub status: Option<u16>,
    /// The refusal, when the answer carried an `error`.
    pub refusal: Option<RefusalSeen>,
    /// The response text (or the refusal's sentence); never a body that is not JSON.
    pub response: Option<String>,
    /// What the body was when it is not JSON (`not JSON, 15 bytes`), or why a 2xx answer
    /// without `error` is not a SWAIG answer; the body itself is never recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The actions that came back.
    pub actions: Vec<ActionSeen>,
    /// The expectations that did not hold.
    pub mismatches: Vec<Mismatch>,
    /// A remark (e.g. the function was rendered inactive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Seconds the exchange took (reported, never judged).
    pub seconds: f64,
}

impl StepOutcome {
    /// A step that was not played.
    pub fn skipped(number: usize, label: String, function: String, arguments: Value) -> Self {
        Self {
            number,
            label,
            function,
            arguments,
            verdict: Verdict::Skipped,
            status: None,
            refusal: None,
            response: None,
            body: None,
            actions: Vec::new(),
            mismatches: Vec::new(),
            note: None,
            seconds: 0.0,
        }
    }
}

/// One call's result.
#[derive(Debug, Serialize)]
pub struct CallOutcome {
    /// The script file, as given on the command line.
    pub file: String,
    /// The call's name.
    pub name: String,
    /// The call id used.
    pub call_id: String,
    /// The caller's number.
    pub caller: String,
    /// The steps, in script order.
    pub steps: Vec<StepOutcome>,
    /// What stopped the call (the agent could not be used, or the call was not run).
    pub error: Option<String>,
    /// The agent error behind `error`, for the exit code and message.
    #[serde(skip)]
    pub agent_error: Option<AgentError>,
    /// Seconds the call took.
    pub seconds: f64,
}

impl CallOutcome {
    /// Every step passed and nothing stopped the call.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.steps.iter().all(|s| s.verdict == Verdict::Passed)
    }

    /// How many steps have `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.steps.iter().filter(|s| s.verdict == verdict).count()
    }
}

/// Totals over a run.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Totals {
    /// Calls.
    pub calls: usize,
    /// Calls that passed.
    pub calls_passed: usize,
    /// Calls that failed or errored.
    pub calls_failed: usize,
    /// Steps.
    pub steps: usize,
    /// Steps that passed.
    pub steps_passed: usize,
    /// Steps that failed.
    pub steps_failed: usize,
    /// Steps not played.
    pub steps_skipped: usize,
}

impl Totals {
    /// The totals of `calls`.
    pub fn of(calls: &[CallOutcome]) -> Self {
        let mut totals = Self::default();
        for call in calls {
            totals.calls += 1;
            if call.passed() {
                totals.calls_passed += 1;
            } else {
                totals.calls_failed += 1;
            }
            totals.steps += call.steps.len();
            totals.steps_passed += call.count(Verdict::Passed);
            totals.steps_failed += call.count(Verdict::Failed);
            totals.steps_skipped += call.count(Verdict::Skipped);
        }
        totals
    }
}
