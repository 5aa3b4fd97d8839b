//! The security console's HTML: one function per page, rendered with `maud` (every
//! interpolated value is escaped). This module owns markup only: labels on every form field,
//! the CSRF field in every POST form, the shared layout and its navigation. The operators and
//! live pages have submodules of their own. It must not decide who may see a page, read any
//! store or clock, or carry an inline script or style: the console's Content-Security-Policy
//! allows neither (only the live page loads the one embedded script, `live.js`).

pub(crate) mod live;
pub(crate) mod operators;
mod time;

use std::collections::BTreeMap;

use maud::{html, Markup, DOCTYPE};
use voxguard_guard::EmergencyState;

/// The signed-in operator, as the layout shows them.
pub(crate) struct Who<'a> {
    pub(crate) name: &'a str,
    pub(crate) role: &'a str,
    pub(crate) csrf: &'a str,
    /// Whether the role may use the emergency page (the navigation links it only then).
    pub(crate) emergency: bool,
    /// Whether the role may manage operators (the operators page).
    pub(crate) operators: bool,
    /// Whether the role may read the audit trail (the live security events page).
    pub(crate) live: bool,
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
                            @if who.emergency {
                                a href="/console/emergency" { "Emergency switch" }
                            }
                            @if who.live {
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

/// The overview.
pub(crate) fn overview(who: &Who<'_>, emergency: &EmergencyState, audit: &AuditView) -> String {
    layout(
        "Overview",
        Some(who),
        html! {
            h1 { "Overview" }
            section aria-labelledby="emergency-h" {
                h2 #emergency-h { "Emergency switch" }
                p { (emergency_words(emergency)) }
            }
            section aria-labelledby="audit-h" {
                h2 #audit-h { "Audit trail, last 24 hours" }
                @match audit {
                    AuditView::NotAllowed => p.hint { "Your role does not include read_audit." },
                    AuditView::Unreadable => p.hint { "This runtime's audit trail cannot be read here (no SQLite or PostgreSQL trail). Use " code { "voxguard audit verify" } "." },
                    AuditView::Summary(summary) => {
                        p {
                            @match summary.broken_at {
                                None => { "Chain: " strong { "intact" } " over the " (summary.records) " records read" }
                                Some(seq) => { "Chain: " strong.state-on { "BROKEN at record " (seq) } }
                            }
                            @if let Some((first, last)) = summary.span { " (records " (first) "–" (last) ")" }
                            "."
                        }
                        @if summary.capped {
                            p.hint { "Only the oldest records of the window were read: counts are lower bounds." }
                        }
                        p.hint { "The whole chain and its signed checkpoints are verified by " code { "voxguard audit verify" } "." }
                        h2 { "Refusals by reason" }
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
