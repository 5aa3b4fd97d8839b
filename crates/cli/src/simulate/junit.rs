//! The JUnit XML report of `voxguard simulate --junit FILE`, the format CI systems (GitLab,
//! Jenkins, GitHub test reporters) read: one `<testsuite>` per scripted call, one
//! `<testcase>` per step, a `<failure>` per failed step with its expected/got diff, an
//! `<error>` where the agent could not be used, `<skipped>` for steps not played.
//!
//! It owns the document and the escaping of text into XML (the five special characters,
//! and characters XML 1.0 cannot carry dropped). It must not run anything; what it writes
//! was recorded by the player, already masked.

use std::fmt::Write as _;

use super::outcome::{CallOutcome, Totals, Verdict};

/// `text` safe inside XML text or a double-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            // Not allowed in XML 1.0 at all, even escaped.
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// The report of `calls`.
pub fn report(calls: &[CallOutcome], totals: &Totals) -> String {
    let errors = calls.iter().filter(|c| c.agent_error.is_some()).count();
    let time: f64 = calls.iter().map(|c| c.seconds).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"voxguard simulate\" tests=\"{}\" failures=\"{}\" errors=\"{errors}\" skipped=\"{}\" time=\"{time:.3}\">",
        totals.steps,
        totals.steps_failed,
        totals.steps_skipped.saturating_sub(errors),
    );
    for call in calls {
        suite(&mut out, call);
    }
    out.push_str("</testsuites>\n");
    out
}

/// One call as a `<testsuite>`.
fn suite(out: &mut String, call: &CallOutcome) {
    let errored = usize::from(call.agent_error.is_some());
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{errored}\" skipped=\"{}\" time=\"{:.3}\">",
        escape(&format!("{}: {}", call.file, call.name)),
        call.steps.len(),
        call.count(Verdict::Failed),
        call.count(Verdict::Skipped).saturating_sub(errored),
        call.seconds,
    );
    let _ = writeln!(
        out,
        "    <properties>\n      <property name=\"call_id\" value=\"{}\"/>\n      <property name=\"caller\" value=\"{}\"/>\n    </properties>",
        escape(&call.call_id),
        escape(&call.caller)
    );
    let classname = escape(&format!("{}.{}", call.file, call.name));
    // The step the agent error stopped: the first one not played.
    let errored_step = call
        .agent_error
        .as_ref()
        .and_then(|_| call.steps.iter().find(|s| s.verdict == Verdict::Skipped))
        .map(|s| s.number);
    for step in &call.steps {
        let name = if step.label == step.function {
            format!("step {}: {}", step.number, step.function)
        } else {
            format!("step {}: {} ({})", step.number, step.label, step.function)
        };
        let _ = write!(
            out,
            "    <testcase name=\"{}\" classname=\"{classname}\" time=\"{:.3}\"",
            escape(&name),
            step.seconds
        );
        let error = call.error.as_deref().unwrap_or("");
        match step.verdict {
            Verdict::Passed => out.push_str("/>\n"),
            Verdict::Skipped if errored_step == Some(step.number) => {
                let _ = writeln!(
                    out,
                    ">\n      <error message=\"{}\" type=\"agent\"/>\n    </testcase>",
                    escape(error)
                );
            }
            Verdict::Skipped => {
                let why = if call.error.is_some() && errored_step.is_none() {
                    error
                } else {
                    "not played: an earlier step of the call failed"
                };
                let _ = writeln!(
                    out,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    escape(why)
                );
            }
            Verdict::Failed => {
                let message: Vec<String> = step
                    .mismatches
                    .iter()
                    .map(|m| {
                        format!(
                            "{}: expected {}, got {}",
                            m.expectation, m.expected, m.actual
                        )
                    })
                    .collect();
                let mut detail = String::new();
                for m in &step.mismatches {
                    let _ = writeln!(
                        detail,
                        "- expected: {}\n+ got:      {}",
                        m.expected, m.actual
                    );
                }
                if let Some(back) = super::report::came_back(step) {
                    let _ = writeln!(
                        detail,
                        "came back: HTTP {}, {}, response: {}, actions: {}",
                        back.status, back.refusal, back.response, back.actions
                    );
                }
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\" type=\"expectation\">{}</failure>\n    </testcase>",
                    escape(&message.join("; ")),
                    escape(&detail)
                );
            }
        }
    }
    out.push_str("  </testsuite>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_quotes_and_forbidden_characters() {
        assert_eq!(
            escape("a<b>&\"c\" 'd'\u{1}\n"),
            "a&lt;b&gt;&amp;&quot;c&quot; &apos;d&apos;?&#10;"
        );
        assert_eq!(escape("plain $150.00 → ok"), "plain $150.00 → ok");
    }
}
