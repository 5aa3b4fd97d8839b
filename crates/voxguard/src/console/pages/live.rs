//! The live security events page: the last security events, rendered on the server (so the
//! page works without JavaScript), and the hook for `live.js`, which adds new ones from the
//! event stream. This module owns the shape of a shown event ([`LiveEvent`], also the JSON of
//! each streamed event) and its one-line description; it must not choose which events are shown
//! or read the trail (`console::live` does), and carries no inline script.

use maud::html;

use super::{layout, utc_ms, Who};

/// One security event as the live page and its stream show it: no arguments (only the count
/// of an aggregated refusal) and the caller masked to the last four digits.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct LiveEvent {
    /// The audit record's sequence number (`None` for an anomaly, which is not a record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seq: Option<u64>,
    /// When it happened (unix milliseconds).
    pub(crate) time_ms: u64,
    /// The audit kind (`token_refused`, `lockout`, …) or `anomaly`.
    pub(crate) kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) outcome: Option<String>,
    /// The refusal's reason, or the anomaly's rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) function: Option<String>,
    /// The caller, masked (`***4567`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) caller: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) operator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) role: Option<String>,
    /// How many refusals an aggregated record stands for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) count: Option<u64>,
    /// A sentence: the anomaly's detail, or the emergency switch's tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
}

impl LiveEvent {
    /// One line: time, kind, outcome, reason, where, who; `live.js` writes the same line for
    /// streamed events.
    pub(crate) fn describe(&self) -> String {
        let mut parts = vec![utc_ms(self.time_ms), self.kind.clone()];
        parts.extend(self.outcome.clone());
        parts.extend(self.reason.clone());
        let place: Vec<&str> = [self.agent.as_deref(), self.function.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        if !place.is_empty() {
            parts.push(place.join("/"));
        }
        if let Some(caller) = &self.caller {
            parts.push(format!("caller {caller}"));
        }
        if let Some(source) = &self.source {
            parts.push(format!("from {source}"));
        }
        if let Some(operator) = &self.operator {
            parts.push(match &self.role {
                Some(role) => format!("by {operator} ({role})"),
                None => format!("by {operator}"),
            });
        }
        if let Some(count) = self.count.filter(|&count| count > 1) {
            parts.push(format!("×{count}"));
        }
        parts.extend(self.detail.clone());
        parts.join(" · ")
    }
}

/// What the live page shows below its heading.
pub(crate) enum LiveView {
    /// The trail cannot be read back here (none, or JSON lines).
    Unreadable,
    /// The last security events (newest first) among the `scanned` last records, and the
    /// trail's last sequence number (where the stream starts).
    Events {
        events: Vec<LiveEvent>,
        scanned: u64,
        end: u64,
    },
}

/// The live security events page.
pub(crate) fn page(who: &Who<'_>, view: &LiveView) -> String {
    layout(
        "Live security events",
        Some(who),
        html! {
            h1 { "Live security events" }
            @match view {
                LiveView::Unreadable => section {
                    p.notice.error role="alert" { "This runtime's audit trail cannot be read here (no SQLite or PostgreSQL trail), so there are no live events." }
                },
                LiveView::Events { events, scanned, end } => section aria-labelledby="events-h" {
                    h2 #events-h { "Refusals, lockouts, anomalies and emergency switch changes" }
                    p #live-status role="status" aria-live="polite" {
                        "The list below was read when the page loaded."
                    }
                    noscript {
                        p.notice.error { "JavaScript is off, so this list does not update by itself: reload the page to see new events." }
                    }
                    p.hint {
                        "Newest first. Caller numbers show their last four digits only. New events appear at the top while this page is open, anomalies too (those this server finds from then on; they are not in the audit trail). The updates stop when your session ends — the stream does not keep it alive: open another console page before the idle timeout, or reload this one — and then the page says so."
                    }
                    @if events.is_empty() {
                        p #live-empty { "No security events among the last " (scanned) " audit records." }
                    }
                    ul #live-events data-after=(end) {
                        @for event in events {
                            li { (event.describe()) }
                        }
                    }
                }
            }
            script src="/console/static/live.js" defer {}
        },
    )
}
