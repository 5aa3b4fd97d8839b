//! The markup of the console's audit trail pages: the filter form, one page of records (newest
//! first) with its newer and older links, the "Verify now" form and the verdict of a
//! verification. It must not decide which records are shown or read the trail (the handler
//! does), and shows only what the trail already holds masked (callers to their last four
//! digits, subjects as pseudonyms).

use maud::{html, Markup};
use voxguard_guard::{AuditKind, Outcome};

use super::{layout, short_hash, utc_ms, Who};

/// One audit record as a row of the trail page.
pub(crate) struct AuditRow {
    /// Sequence number.
    pub(crate) seq: u64,
    /// When it happened (unix milliseconds).
    pub(crate) time_ms: u64,
    /// The event kind's stored name.
    pub(crate) kind: &'static str,
    /// The outcome's stored name (empty when none).
    pub(crate) outcome: &'static str,
    /// The stable reason, if any.
    pub(crate) reason: String,
    /// The tool or console function involved, if any.
    pub(crate) tool: String,
    /// The operator (and role), else the masked caller, else the source address.
    pub(crate) who: String,
    /// The record, masked subject and purpose of a records access, as the trail holds them.
    pub(crate) detail: String,
    /// The record's hash.
    pub(crate) hash: String,
}

/// The audit trail page.
pub(crate) struct AuditPage<'a> {
    /// The event kind filtered on (empty: any).
    pub(crate) kind: &'a str,
    /// The outcome filtered on (empty: any).
    pub(crate) outcome: &'a str,
    /// The reason filtered on (empty: any).
    pub(crate) reason: &'a str,
    /// The records shown, newest first.
    pub(crate) rows: Vec<AuditRow>,
    /// The address of the page of newer records, if any.
    pub(crate) newer: Option<String>,
    /// The address of the page of older records, if any.
    pub(crate) older: Option<String>,
    /// The sequence numbers read to fill this page (lowest, highest), if any.
    pub(crate) scanned: Option<(u64, u64)>,
    /// Whether the read bound stopped the scan before the page was full.
    pub(crate) bounded: bool,
    /// Records read per request at most.
    pub(crate) bound: u64,
}

/// The verdict of "Verify now".
pub(crate) enum Verdict {
    /// Every record links and hashes; every checkpoint in range matches.
    Intact {
        /// Records verified.
        records: u64,
        /// The last sequence number verified.
        last_seq: Option<u64>,
        /// Signed checkpoints checked.
        checkpoints: u64,
    },
    /// The first sequence number that does not verify, and why.
    Broken {
        /// The first sequence number that does not verify.
        seq: u64,
        /// The problem's stable name (`modified`, `missing`, …).
        problem: &'static str,
        /// The problem as a sentence.
        sentence: String,
    },
}

fn filter_form(page: &AuditPage<'_>) -> Markup {
    html! {
        form method="get" action="/console/audit" {
            div.grid {
                div {
                    label for="kind" { "Event kind" }
                    select #kind name="kind" {
                        option value="" selected[page.kind.is_empty()] { "any" }
                        @for kind in AuditKind::ALL {
                            option value=(kind.as_str()) selected[page.kind == kind.as_str()] { (kind.as_str()) }
                        }
                    }
                }
                div {
                    label for="outcome" { "Outcome" }
                    select #outcome name="outcome" {
                        option value="" selected[page.outcome.is_empty()] { "any" }
                        @for outcome in Outcome::ALL {
                            option value=(outcome.as_str()) selected[page.outcome == outcome.as_str()] { (outcome.as_str()) }
                        }
                    }
                }
                div {
                    label for="reason" { "Reason" }
                    input #reason type="text" name="reason" value=(page.reason) maxlength="64" autocomplete="off" aria-describedby="reason-hint";
                    p.hint #reason-hint { "Exact, e.g. token_invalid." }
                }
            }
            div { button type="submit" { "Filter" } }
        }
    }
}

fn rows_table(rows: &[AuditRow]) -> Markup {
    html! {
        div.scroll {
            table.audit {
                caption { "Audit records, newest first" }
                thead { tr {
                    th scope="col" { "Seq" }
                    th scope="col" { "Time (UTC)" }
                    th scope="col" { "Kind" }
                    th scope="col" { "Outcome" }
                    th scope="col" { "Reason" }
                    th scope="col" { "Function" }
                    th scope="col" { "Operator / caller" }
                    th scope="col" { "Details" }
                    th scope="col" { "Hash" }
                } }
                tbody {
                    @for row in rows {
                        tr {
                            td { (row.seq) }
                            td { (utc_ms(row.time_ms)) }
                            td { (row.kind) }
                            td { (row.outcome) }
                            td { (row.reason) }
                            td { (row.tool) }
                            td { (row.who) }
                            td { (row.detail) }
                            td { code { (short_hash(&row.hash)) } }
                        }
                    }
                }
            }
        }
    }
}

/// The audit trail page: filter, verify button, one page of records.
pub(crate) fn audit_trail(who: &Who<'_>, page: &AuditPage<'_>) -> String {
    layout(
        "Audit trail",
        Some(who),
        html! {
            h1 { "Audit trail" }
            section aria-labelledby="verify-h" {
                h2 #verify-h { "Verify the chain" }
                p { "Checks every record's hash and link and every signed checkpoint, from the first record to the last (the check " code { "voxguard audit verify" } " runs). The run is recorded in the audit trail." }
                form method="post" action="/console/audit/verify" {
                    input type="hidden" name="csrf" value=(who.csrf);
                    button type="submit" { "Verify now" }
                }
            }
            section aria-labelledby="filter-h" {
                h2 #filter-h { "Filter" }
                (filter_form(page))
            }
            section aria-labelledby="records-h" {
                h2 #records-h { "Records" }
                @if let Some((low, high)) = page.scanned {
                    p.hint {
                        "Read records " (low) "–" (high) "."
                        @if page.bounded { " The page stopped at " (page.bound) " records read per request; follow the older or newer link to search on." }
                    }
                }
                @if page.rows.is_empty() {
                    p { "No records match on this page." }
                } @else {
                    (rows_table(&page.rows))
                }
                nav.pager aria-label="Audit pages" {
                    @if let Some(newer) = &page.newer { a href=(newer) { "← Newer" } }
                    @if let Some(older) = &page.older { a href=(older) { "Older →" } }
                }
            }
        },
    )
}

/// The verdict of a verification.
pub(crate) fn verified(who: &Who<'_>, verdict: &Verdict) -> String {
    layout(
        "Audit chain verified",
        Some(who),
        html! {
            h1 { "Audit chain verification" }
            @match verdict {
                Verdict::Intact { records, last_seq, checkpoints } => {
                    p.notice.ok role="status" {
                        strong { "OK" } ": " (records) " records verified"
                        @if let Some(last) = last_seq { " (last sequence number " (last) ")" }
                        ", " (checkpoints) " signed checkpoints checked."
                    }
                }
                Verdict::Broken { seq, problem, sentence } => {
                    p.notice.error role="alert" {
                        strong { "BROKEN at sequence number " (seq) } " (" (problem) "): " (sentence) "."
                    }
                }
            }
            p.hint { "This verification is recorded in the audit trail under your name." }
            p { a href="/console/audit" { "Back to the audit trail" } }
        },
    )
}
