//! The security console's HTML: one function per page, rendered with `maud` (every
//! interpolated value is escaped). This module owns markup only: labels on every form field,
//! the CSRF field in every POST form, the shared layout and its navigation. The operators and
//! live pages have submodules of their own. It must not decide who may see a page, read any
//! store or clock, or carry an inline script or style: the console's Content-Security-Policy
//! allows neither (only the live page loads the one embedded script, `live.js`).

pub(crate) mod live;
pub(crate) mod operators;

mod audit;
mod records;

use std::collections::BTreeMap;

use maud::{html, Markup, DOCTYPE};
use voxguard_guard::EmergencyState;

pub(crate) use audit::{audit_trail, verified, AuditPage, AuditRow, Verdict};
pub(crate) use records::{
    deletion_report, record, search, RecordPage, RecordsPage, SearchForm, SubjectActions,
};

/// The signed-in operator, as the layout shows them.
pub(crate) struct Who<'a> {
    /// The operator's name.
    pub(crate) name: &'a str,
    /// The operator's role.
    pub(crate) role: &'a str,
    /// The session's CSRF token, put in every POST form.
    pub(crate) csrf: &'a str,
    /// Whether the role may use the emergency page (the navigation links it only then).
    pub(crate) emergency: bool,
    /// Whether the role may list records (`list_records`).
    pub(crate) records: bool,
    /// Whether the role may read the audit trail (`read_audit`).
    pub(crate) audit: bool,
    /// Whether the role may manage operators (the operators page).
    pub(crate) operators: bool,
}

/// One tool as the overview lists it.
pub(crate) struct ToolView {
    /// The tool's name.
    pub(crate) name: String,
    /// Needs a per-call function token.
    pub(crate) secure: bool,
    /// Covered by the emergency switch.
    pub(crate) sensitive: bool,
    /// Handles protected health information.
    pub(crate) phi: bool,
    /// Offered to the AI at the start of a call.
    pub(crate) active: bool,
    /// Session flags that must be set (`requires`).
    pub(crate) requires: Vec<String>,
    /// Caller roles, one of which is needed (`requires_role`).
    pub(crate) roles: Vec<String>,
    /// Two-step confirmation.
    pub(crate) confirm: bool,
    /// Per-caller limit on this tool: (calls, seconds).
    pub(crate) rate_limit: Option<(u32, u64)>,
}

/// One agent as the overview lists it.
pub(crate) struct AgentView {
    /// The agent's name.
    pub(crate) name: String,
    /// The path it is served on.
    pub(crate) route: String,
    /// Served in front of another agent (gateway mode): its tools come from the upstream.
    pub(crate) gateway: bool,
    /// Per-caller limit over every tool: (calls, seconds).
    pub(crate) caller_limit: Option<(u32, u64)>,
    /// Limit over every caller and tool: (calls, seconds).
    pub(crate) global_limit: Option<(u32, u64)>,
    /// Its tools, in declaration order.
    pub(crate) tools: Vec<ToolView>,
}

/// The newest signed checkpoint of the audit trail.
pub(crate) struct CheckpointView {
    /// The sequence number of the record it attests.
    pub(crate) seq: u64,
    /// When it was signed (unix milliseconds).
    pub(crate) time_ms: u64,
    /// The attested record's hash.
    pub(crate) hash: String,
    /// Whether its signature is valid under the runtime's audit key.
    pub(crate) valid: bool,
}

/// What the overview shows of the audit trail of the last 24 hours.
pub(crate) struct AuditSummary {
    /// Records read.
    pub(crate) records: usize,
    /// Whether `records` stopped at the cap (counts are then lower bounds).
    pub(crate) capped: bool,
    /// Refusals by reason.
    pub(crate) refusals: BTreeMap<String, u64>,
    /// `None`: every record read has its hash and link intact; `Some(seq)`: the first that
    /// does not.
    pub(crate) broken_at: Option<u64>,
    /// The first and last sequence numbers read.
    pub(crate) span: Option<(u64, u64)>,
    /// `tool_called` events by outcome.
    pub(crate) tool_calls: BTreeMap<String, u64>,
    /// Distinct (agent, call id) pairs among the events an agent wrote.
    pub(crate) calls: u64,
    /// `lockout` events that locked a caller's verification (`verification_lockout`).
    pub(crate) lockouts: u64,
    /// `lockout` events refused because verification was already locked.
    pub(crate) locked_attempts: u64,
    /// Anomalies the runtime's rules find when the records read are replayed, by rule.
    pub(crate) anomalies: BTreeMap<&'static str, u64>,
    /// The newest signed checkpoint, if any.
    pub(crate) checkpoint: Option<CheckpointView>,
}

/// The overview's audit section.
pub(crate) enum AuditView {
    /// The role lacks `read_audit`.
    NotAllowed,
    /// The trail cannot be read back (no SQLite or PostgreSQL trail).
    Unreadable,
    /// The summary.
    Summary(AuditSummary),
}

fn layout(title: &str, who: Option<&Who<'_>>, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · voxguard console" }
                link rel="stylesheet" href="/console/static/console.css";
            }
            body {
                header {
                    span.brand { "voxguard console" }
                    @if let Some(who) = who {
                        nav aria-label="Console pages" {
                            a href="/console/overview" { "Overview" }
                            @if who.records {
                                a href="/console/records" { "Records" }
                            }
                            @if who.audit {
                                a href="/console/audit" { "Audit trail" }
                            }
                            @if who.emergency {
                                a href="/console/emergency" { "Emergency switch" }
                            }
                            @if who.audit {
                                a href="/console/live" { "Live events" }
                            }
                            @if who.operators {
                                a href="/console/operators" { "Operators" }
                            }
                        }
                        span { (who.name) " (" (who.role) ")" }
                        form method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(who.csrf);
                            button.secondary type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
    .into_string()
}

/// The sign-in page. `login_csrf` is the value of the sign-in cookie (double submit).
pub(crate) fn sign_in(login_csrf: &str, notice: Option<&str>, name: &str) -> String {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(notice) = notice {
                p.notice.error role="alert" { (notice) }
            }
            section {
                form method="post" action="/console/login" {
                    input type="hidden" name="csrf" value=(login_csrf);
                    label for="name" { "Operator name" }
                    input #name type="text" name="name" value=(name) autocomplete="username" required autofocus;
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required;
                    div { button type="submit" { "Sign in" } }
                }
                p.hint { "Operators are managed with " code { "voxguard users" } " or the records API." }
            }
        },
    )
}

fn emergency_words(state: &EmergencyState) -> Markup {
    html! {
        @if state.enabled {
            span.state-on { "ON" }
            " — "
            @match &state.tools {
                None => "every sensitive tool is refused.",
                Some(tools) => { "refused tools: " (tools.iter().cloned().collect::<Vec<_>>().join(", ")) "." }
            }
        } @else {
            span.state-off { "off" }
            " — tools run normally."
        }
    }
}

/// `ms` (unix milliseconds) as RFC 3339 UTC, to the second.
pub(crate) fn utc_ms(ms: u64) -> String {
    voxguard_guard::utc::rfc3339(ms / 1000)
}

/// "N per S s" of a rate limit.
fn limit_words(limit: Option<(u32, u64)>) -> String {
    match limit {
        Some((max, secs)) => format!("{max} per {secs} s"),
        None => "none".into(),
    }
}

/// A tool's policies as a short list.
fn policy_words(tool: &ToolView) -> Markup {
    html! {
        ul.plain {
            @if tool.secure { li { "function token" } }
            @if !tool.requires.is_empty() { li { "requires: " (tool.requires.join(", ")) } }
            @if !tool.roles.is_empty() { li { "caller roles: " (tool.roles.join(", ")) } }
            @if tool.confirm { li { "confirmation" } }
            @if let Some(limit) = tool.rate_limit { li { "rate limit: " (limit_words(Some(limit))) " per caller" } }
            @if tool.phi { li { "PHI" } }
            @if !tool.active { li { "inactive at call start" } }
        }
    }
}

fn agents_section(agents: &[AgentView]) -> Markup {
    html! {
        section aria-labelledby="agents-h" {
            h2 #agents-h { "Agents and tools" }
            @if agents.is_empty() {
                p { "No agents." }
            }
            @for agent in agents {
                h3 { (agent.name) " " span.hint { "(route " code { (agent.route) } @if agent.gateway { ", gateway" } ")" } }
                p.hint {
                    "Limits: per caller " (limit_words(agent.caller_limit))
                    ", all callers " (limit_words(agent.global_limit)) "."
                }
                @if agent.tools.is_empty() {
                    p { "No tools." }
                } @else {
                    div.scroll {
                        table {
                            thead { tr {
                                th scope="col" { "Tool" }
                                th scope="col" { "Sensitive" }
                                th scope="col" { "Policies" }
                            } }
                            tbody {
                                @for tool in &agent.tools {
                                    tr {
                                        td { code { (tool.name) } }
                                        td { @if tool.sensitive { strong { "sensitive" } } @else { "no" } }
                                        td { (policy_words(tool)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn counts_table(caption: &str, rows: &[(String, u64)]) -> Markup {
    html! {
        table {
            caption { (caption) }
            thead { tr { th scope="col" { "What" } th scope="col" { "Count" } } }
            tbody {
                @for (what, count) in rows {
                    tr { td { (what) } td { (count) } }
                }
            }
        }
    }
}

fn summary_section(summary: &AuditSummary) -> Markup {
    let tool_calls: u64 = summary.tool_calls.values().sum();
    let mut activity = vec![
        ("Calls with audited activity".to_string(), summary.calls),
        ("Tool calls".to_string(), tool_calls),
    ];
    for (outcome, count) in &summary.tool_calls {
        activity.push((format!("Tool calls: {outcome}"), *count));
    }
    activity.push(("Verification lockouts".to_string(), summary.lockouts));
    activity.push((
        "Attempts refused while locked".to_string(),
        summary.locked_attempts,
    ));
    let anomalies: Vec<(String, u64)> = summary
        .anomalies
        .iter()
        .map(|(rule, count)| (rule.to_string(), *count))
        .collect();
    html! {
        p {
            @match summary.broken_at {
                None => { "Chain: " strong { "intact" } " over the " (summary.records) " records read" }
                Some(seq) => { "Chain: " strong.state-on { "BROKEN at record " (seq) } }
            }
            @if let Some((first, last)) = summary.span { " (records " (first) "–" (last) ")" }
            "."
        }
        @match &summary.checkpoint {
            None => p { "Last signed checkpoint: none (checkpoints are signed only with " code { "VOXGUARD_AUDIT_KEY" } ")." },
            Some(checkpoint) => p {
                "Last signed checkpoint: record " (checkpoint.seq) " at " (utc_ms(checkpoint.time_ms))
                ", hash " code { (short_hash(&checkpoint.hash)) } ", signature "
                @if checkpoint.valid { strong { "valid" } " under this runtime's key." }
                @else { strong.state-on { "NOT valid" } " under this runtime's key." }
            },
        }
        @if summary.capped {
            p.hint { "Only the oldest records of the window were read: counts are lower bounds." }
        }
        p.hint { "Verify the whole chain and its checkpoints on the audit trail page, or with " code { "voxguard audit verify" } "." }
        h3 { "Activity" }
        (counts_table("Activity in the last 24 hours", &activity))
        h3 { "Anomalies" }
        @if anomalies.is_empty() {
            p { "No anomalies." }
        } @else {
            (counts_table("Anomalies by rule", &anomalies))
        }
        p.hint { "The runtime's anomaly rules, replayed over the records read; an alert as it happened is a log line and the voxguard_anomalies_total metric." }
        h3 { "Refusals by reason" }
        @if summary.refusals.is_empty() {
            p { "No refusals." }
        } @else {
            table {
                thead { tr { th scope="col" { "Reason" } th scope="col" { "Count" } } }
                tbody {
                    @for (reason, count) in &summary.refusals {
                        tr { td { (reason) } td { (count) } }
                    }
                }
            }
        }
    }
}

/// The first 12 characters of a hash.
pub(crate) fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// The overview.
pub(crate) fn overview(
    who: &Who<'_>,
    emergency: &EmergencyState,
    agents: &[AgentView],
    audit: &AuditView,
) -> String {
    layout(
        "Overview",
        Some(who),
        html! {
            h1 { "Overview" }
            section aria-labelledby="emergency-h" {
                h2 #emergency-h { "Emergency switch" }
                p { (emergency_words(emergency)) }
            }
            (agents_section(agents))
            section aria-labelledby="audit-h" {
                h2 #audit-h { "Audit trail, last 24 hours" }
                @match audit {
                    AuditView::NotAllowed => p.hint { "Your role does not include read_audit." },
                    AuditView::Unreadable => p.hint { "This runtime's audit trail cannot be read here (no SQLite or PostgreSQL trail). Use " code { "voxguard audit verify" } "." },
                    AuditView::Summary(summary) => (summary_section(summary)),
                }
            }
        },
    )
}

/// The emergency page: the current state and the form of a change.
pub(crate) fn emergency(who: &Who<'_>, state: &EmergencyState, notice: Option<&str>) -> String {
    layout(
        "Emergency switch",
        Some(who),
        html! {
            h1 { "Emergency switch" }
            @if let Some(notice) = notice {
                p.notice.ok role="status" { (notice) }
            }
            section {
                p { "Now: " (emergency_words(state)) }
                form method="post" action="/console/emergency" {
                    input type="hidden" name="csrf" value=(who.csrf);
                    fieldset {
                        legend { "Turn the switch" }
                        input #on type="radio" name="action" value="on" checked[!state.enabled];
                        label for="on" { "On (refuse tools)" }
                        input #off type="radio" name="action" value="off" checked[state.enabled];
                        label for="off" { "Off (tools run)" }
                    }
                    label for="tools" { "Tools (optional)" }
                    input #tools type="text" name="tools" aria-describedby="tools-hint";
                    p.hint #tools-hint { "Names separated by commas. Empty: every sensitive tool." }
                    div { button type="submit" { "Review the change" } }
                }
            }
        },
    )
}

/// The confirmation step of an emergency change.
pub(crate) fn emergency_confirm(who: &Who<'_>, next: &EmergencyState, tools: &str) -> String {
    layout(
        "Confirm the emergency change",
        Some(who),
        html! {
            h1 { "Confirm the change" }
            section {
                p { "After this change the switch will be " (emergency_words(next)) }
                p { "The change is recorded in the audit trail under your name." }
                form method="post" action="/console/emergency" {
                    input type="hidden" name="csrf" value=(who.csrf);
                    input type="hidden" name="action" value=(if next.enabled { "on" } else { "off" });
                    input type="hidden" name="tools" value=(tools);
                    input type="hidden" name="confirm" value="yes";
                    button type="submit" { "Confirm" }
                }
                p { a href="/console/emergency" { "Cancel" } }
            }
        },
    )
}

/// A page that explains a refusal or failure; `who` adds the navigation when signed in.
pub(crate) fn problem(who: Option<&Who<'_>>, title: &str, sentence: &str) -> String {
    layout(
        title,
        who,
        html! {
            h1 { (title) }
            p.notice.error role="alert" { (sentence) }
            p { a href="/console/overview" { "Back to the overview" } }
        },
    )
}

/// The body of a redirect (for clients that do not follow it).
pub(crate) fn moved(to: &str) -> String {
    html! { p { "See " a href=(to) { (to) } "." } }.into_string()
}
