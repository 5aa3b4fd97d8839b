//! The markup of the console's records pages: the search form and its results, one record's
//! metadata and (after a purpose was given) its content, the subject export and deletion forms
//! with their typed confirmations, and the deletion report. It must not decide who sees a
//! subject id or a form (the handlers pass only what the role may see) nor read any store.

use maud::{html, Markup};
use voxguard_guard::utc::rfc3339;
use voxguard_store::RecordMeta;

use super::{layout, Who};
use crate::records::{DeletionReport, RecordKind};

/// What the search form shows again (as typed; never a value the operator did not send).
#[derive(Default)]
pub(crate) struct SearchForm<'a> {
    /// The subject id typed.
    pub(crate) subject: &'a str,
    /// The call id typed.
    pub(crate) call_id: &'a str,
    /// The kind chosen (empty: any).
    pub(crate) kind: &'a str,
    /// The first day (`YYYY-MM-DD`).
    pub(crate) from: &'a str,
    /// The last day, whole (`YYYY-MM-DD`).
    pub(crate) to: &'a str,
}

/// The export and deletion forms of the subject searched for, as the role allows them.
pub(crate) struct SubjectActions<'a> {
    /// The subject searched for, as typed.
    pub(crate) subject: &'a str,
    /// Whether the role may export (`export`).
    pub(crate) export: bool,
    /// Whether the role may delete (`delete`).
    pub(crate) delete: bool,
}

/// The records page.
pub(crate) struct RecordsPage<'a> {
    /// The form, filled as sent.
    pub(crate) form: SearchForm<'a>,
    /// `None` before a search; the records found (subjects already masked where they must be).
    pub(crate) results: Option<&'a [RecordMeta]>,
    /// The address of the next page of results, if there may be one.
    pub(crate) next: Option<String>,
    /// Whether subjects are shown as pseudonyms (the role may not read content).
    pub(crate) pseudonyms: bool,
    /// The subject's export and deletion forms, when a subject was searched for and the role
    /// may use one.
    pub(crate) actions: Option<SubjectActions<'a>>,
}

/// One record's page.
pub(crate) struct RecordPage<'a> {
    /// Its metadata (the subject already masked where it must be).
    pub(crate) meta: &'a RecordMeta,
    /// Whether the role may read content (the purpose form is shown only then).
    pub(crate) can_read: bool,
    /// The content, pretty-printed, once read for `purpose`.
    pub(crate) content: Option<(&'a str, String)>,
}

fn search_form(form: &SearchForm<'_>) -> Markup {
    html! {
        form method="get" action="/console/records" {
            input type="hidden" name="search" value="1";
            div.grid {
                div {
                    label for="subject" { "Subject id" }
                    input #subject type="text" name="subject" value=(form.subject) maxlength="128" autocomplete="off";
                }
                div {
                    label for="call_id" { "Call id" }
                    input #call_id type="text" name="call_id" value=(form.call_id) maxlength="128" autocomplete="off";
                }
                div {
                    label for="kind" { "Kind" }
                    select #kind name="kind" {
                        option value="" selected[form.kind.is_empty()] { "any" }
                        @for kind in RecordKind::ALL {
                            option value=(kind.as_str()) selected[form.kind == kind.as_str()] { (kind.as_str()) }
                        }
                    }
                }
                div {
                    label for="from" { "Created from (UTC)" }
                    input #from type="date" name="from" value=(form.from);
                }
                div {
                    label for="to" { "Created until (UTC, whole day)" }
                    input #to type="date" name="to" value=(form.to);
                }
            }
            div { button type="submit" { "Search" } }
        }
    }
}

fn results_table(records: &[RecordMeta], pseudonyms: bool) -> Markup {
    html! {
        div.scroll {
            table {
                caption { "Records found" @if pseudonyms { " (subjects as pseudonyms)" } }
                thead { tr {
                    th scope="col" { "Id" }
                    th scope="col" { "Kind" }
                    th scope="col" { "Subject" }
                    th scope="col" { "Call id" }
                    th scope="col" { "Created (UTC)" }
                } }
                tbody {
                    @for meta in records {
                        tr {
                            td { a href={ "/console/records/" (meta.id) } { code { (meta.id) } } }
                            td { (meta.kind) }
                            td { code { (meta.subject) } }
                            td { code { (meta.call_id) } }
                            td { (rfc3339(meta.created_at)) }
                        }
                    }
                }
            }
        }
    }
}

fn subject_forms(who: &Who<'_>, actions: &SubjectActions<'_>) -> Markup {
    html! {
        section aria-labelledby="subject-h" {
            h2 #subject-h { "This subject" }
            p { "Subject " code { (actions.subject) } ". To confirm, type the subject id again, exactly as above." }
            @if actions.export {
                form method="post" action="/console/subjects/export" {
                    input type="hidden" name="csrf" value=(who.csrf);
                    input type="hidden" name="subject" value=(actions.subject);
                    h3 { "Export everything of this subject" }
                    label for="export-purpose" { "Purpose" }
                    input #export-purpose type="text" name="purpose" maxlength="200" required aria-describedby="export-hint";
                    label for="export-confirm" { "Type the subject id again" }
                    input #export-confirm type="text" name="confirm" autocomplete="off" required;
                    p.hint #export-hint { "1 to 200 characters; recorded in the audit trail with your name. The export is a JSON file with the content of every record." }
                    div { button type="submit" { "Download the export" } }
                }
            }
            @if actions.delete {
                form method="post" action="/console/subjects/delete" {
                    input type="hidden" name="csrf" value=(who.csrf);
                    input type="hidden" name="subject" value=(actions.subject);
                    h3 { "Delete everything of this subject" }
                    p.notice.error { "This deletes every record of the subject and its data key (no copy, backups included, can be read again), the sessions of its calls and its verification counters. It cannot be undone." }
                    label for="delete-confirm" { "Type the subject id again" }
                    input #delete-confirm type="text" name="confirm" autocomplete="off" required;
                    div { button.danger type="submit" { "Delete this subject" } }
                }
            }
        }
    }
}

/// The records page: the search form, and the results of a search.
pub(crate) fn search(who: &Who<'_>, page: &RecordsPage<'_>) -> String {
    layout(
        "Records",
        Some(who),
        html! {
            h1 { "Records" }
            section aria-labelledby="search-h" {
                h2 #search-h { "Search" }
                p.hint { "Every search is recorded in the audit trail. Leave a field empty to match any value." }
                (search_form(&page.form))
            }
            @if let Some(records) = page.results {
                section aria-labelledby="results-h" {
                    h2 #results-h { "Results" }
                    @if records.is_empty() {
                        p { "No records match." }
                    } @else {
                        (results_table(records, page.pseudonyms))
                    }
                    @if let Some(next) = &page.next {
                        p { a href=(next) { "Next page" } }
                    }
                }
            }
            @if let Some(actions) = &page.actions {
                (subject_forms(who, actions))
            }
        },
    )
}

/// One record: its metadata, the purpose form and, once read, its content.
pub(crate) fn record(who: &Who<'_>, page: &RecordPage<'_>) -> String {
    let meta = page.meta;
    layout(
        "Record",
        Some(who),
        html! {
            h1 { "Record " code { (meta.id) } }
            section aria-labelledby="meta-h" {
                h2 #meta-h { "Metadata" }
                dl {
                    dt { "Kind" } dd { (meta.kind) }
                    dt { "Agent" } dd { (meta.agent) }
                    dt { "Call id" } dd { code { (meta.call_id) } }
                    dt { "Subject" } dd { code { (meta.subject) } }
                    dt { "Created (UTC)" } dd { (rfc3339(meta.created_at)) }
                    dt { "Deleted after (UTC)" } dd { (rfc3339(meta.expires_at)) }
                    dt { "Size" } dd { (meta.size) " bytes" }
                    dt { "Key id" } dd { code { (meta.key_id) } }
                }
            }
            @if let Some((purpose, content)) = &page.content {
                section aria-labelledby="content-h" {
                    h2 #content-h { "Content" }
                    p.notice.ok role="status" { "Read for the purpose “" (purpose) "”; this view is recorded in the audit trail under your name." }
                    pre { (content) }
                }
            } @else if page.can_read {
                section aria-labelledby="read-h" {
                    h2 #read-h { "Read the content" }
                    form method="post" action={ "/console/records/" (meta.id) "/content" } {
                        input type="hidden" name="csrf" value=(who.csrf);
                        label for="purpose" { "Purpose" }
                        input #purpose type="text" name="purpose" maxlength="200" required aria-describedby="purpose-hint";
                        p.hint #purpose-hint { "Why you need the content: 1 to 200 characters, recorded in the audit trail with your name." }
                        div { button type="submit" { "Show the content" } }
                    }
                }
            }
            p { a href="/console/records" { "Back to the search" } }
        },
    )
}

/// What a subject deletion removed.
pub(crate) fn deletion_report(who: &Who<'_>, report: &DeletionReport) -> String {
    let total: u64 = report.records.values().sum();
    layout(
        "Subject deleted",
        Some(who),
        html! {
            h1 { "Subject deleted" }
            p.notice.ok role="status" { "Done: the subject's records and data key are deleted, and the deletion is recorded in the audit trail under your name." }
            section {
                table {
                    caption { "What was deleted" }
                    thead { tr { th scope="col" { "What" } th scope="col" { "Count" } } }
                    tbody {
                        tr { td { "Records" } td { (total) } }
                        @for (kind, count) in &report.records {
                            tr { td { "Records: " (kind) } td { (count) } }
                        }
                        tr { td { "Data keys" } td { (report.keys) } }
                        tr { td { "Call sessions" } td { (report.sessions) } }
                        tr { td { "Verification counters" } td { (report.attempt_counters) } }
                    }
                }
            }
            p { a href="/console/records" { "Back to the search" } }
        },
    )
}
