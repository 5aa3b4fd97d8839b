//! The console's records pages: searching record metadata, one record's page, reading its
//! content for a stated purpose, and a data subject's export and deletion behind a typed
//! confirmation.
//!
//! This module owns the decisions of those pages: which permission each needs (the records
//! permission table, denials audited), how the search form becomes a [`RecordFilter`] (through
//! the records API's own validation, `record_filter`, after the form's dates are turned into
//! unix seconds), that nothing is read or audited as read when the input is not valid, that a
//! role without `read_content` sees subjects only as pseudonyms, and that an export or deletion
//! happens only when the operator typed the subject id again exactly. Every read and deletion
//! goes through [`Records`](crate::Records), which puts it on record first. It must not write
//! markup (`pages` does) and never puts a subject id or content in a URL it makes (purposes
//! and confirmations travel in POST bodies; a search by subject is the operator's own GET).

use url::form_urlencoded;
use voxguard_guard::records::Permission;
use voxguard_guard::utc::{date_start, DAY_SECS};
use voxguard_server::{Bytes, ConsoleReply, ConsoleRequest};
use voxguard_store::{RecordFilter, StoreError};

use super::pages::{self, RecordPage, RecordsPage, SearchForm, SubjectActions, Who};
use super::{page, query, unavailable, Console, Signed};
use crate::records::api::{mask_subjects, record_filter, subject_export, valid_purpose};
use crate::records::{valid_record_id, valid_subject, RecordsError};

/// Records per page of search results.
pub(super) const PAGE_SIZE: u32 = 50;

/// The file name of a subject export download.
const EXPORT_FILE: &str = "subject-export.json";

/// What the search form's fields must hold, by the name `record_filter` reports.
fn bad_field(name: &str) -> &'static str {
    match name {
        "subject" => "The subject id must be 1 to 128 characters without control characters.",
        "call_id" => "The call id must be 1 to 128 characters.",
        "kind" => "Choose a kind from the list.",
        "after" => "The page link is not valid; start the search again.",
        _ => "The search is not valid; start it again from the form.",
    }
}

impl Console {
    /// `GET /console/records`: the form, and the results when it was sent.
    pub(super) async fn records_search(&self, request: &ConsoleRequest) -> ConsoleReply {
        let signed = match self.allowed(request, Permission::ListRecords).await {
            Ok(signed) => signed,
            Err(reply) => return reply,
        };
        let who = self.who(&signed);
        let text = |name: &str| query(request, name).unwrap_or_default();
        let form = SearchForm {
            subject: text("subject"),
            call_id: text("call_id"),
            kind: text("kind"),
            from: text("from"),
            to: text("to"),
        };
        let pseudonyms = !self.may(&signed.operator, Permission::ReadContent);
        if request.query.is_empty() {
            let empty = RecordsPage {
                form,
                results: None,
                next: None,
                pseudonyms,
                actions: None,
            };
            return page(200, pages::search(&who, &empty));
        }
        let filter = match search_filter(request, &form) {
            Ok(filter) => filter,
            Err(sentence) => return not_searched(&who, sentence),
        };
        let actor = self.actor(request, &signed.operator);
        let mut found = match self.api.records.list(&actor, &filter).await {
            Ok(found) => found,
            Err(error) => return failure(&who, error),
        };
        let next = (found.len() as u32 == PAGE_SIZE)
            .then(|| found.last().map(|meta| next_page(&form, &meta.id)))
            .flatten();
        mask_subjects(&self.api.records, &signed.operator.role, &mut found);
        let export = self.may(&signed.operator, Permission::Export);
        let delete = self.may(&signed.operator, Permission::Delete);
        let actions = (!form.subject.is_empty() && (export || delete)).then_some(SubjectActions {
            subject: form.subject,
            export,
            delete,
        });
        let results = RecordsPage {
            form,
            results: Some(&found),
            next,
            pseudonyms,
            actions,
        };
        page(200, pages::search(&who, &results))
    }

    /// `GET /console/records/<id>`: one record's metadata (audited), and the purpose form.
    pub(super) async fn record_page(&self, request: &ConsoleRequest, id: &str) -> ConsoleReply {
        let signed = match self.require(request).await {
            Ok(signed) => signed,
            Err(reply) => return reply,
        };
        let who = self.who(&signed);
        if !valid_record_id(id) {
            // Not a record id: answered like an unknown one, and never audited as one.
            return failure(&who, RecordsError::NotFound);
        }
        if let Err(reply) = self
            .check_role(request, &signed, Permission::ListRecords)
            .await
        {
            return reply;
        }
        let actor = self.actor(request, &signed.operator);
        let mut meta = match self.api.records.describe(&actor, id).await {
            Ok(meta) => meta,
            Err(error) => return failure(&who, error),
        };
        mask_subjects(
            &self.api.records,
            &signed.operator.role,
            std::slice::from_mut(&mut meta),
        );
        let view = RecordPage {
            meta: &meta,
            can_read: self.may(&signed.operator, Permission::ReadContent),
            content: None,
        };
        page(200, pages::record(&who, &view))
    }

    /// `POST /console/records/<id>/content`: the content, read for the purpose in the form.
    pub(super) async fn record_content(&self, request: &ConsoleRequest, id: &str) -> ConsoleReply {
        let signed = match self.require(request).await {
            Ok(signed) => signed,
            Err(reply) => return reply,
        };
        if let Err(reply) = self.check_csrf(request, &signed).await {
            return reply;
        }
        let who = self.who(&signed);
        if !valid_record_id(id) {
            return failure(&who, RecordsError::NotFound);
        }
        if let Err(reply) = self
            .check_role(request, &signed, Permission::ReadContent)
            .await
        {
            return reply;
        }
        let actor = self.actor(request, &signed.operator);
        let Some(purpose) = request.field("purpose").and_then(valid_purpose) else {
            self.api
                .records
                .denied(&actor, "purpose_required", Some(id), None)
                .await;
            return page(
                400,
                pages::problem(
                    Some(&who),
                    "Not read",
                    "Reading a record's content needs a purpose of 1 to 200 characters; nothing was read.",
                ),
            );
        };
        let (meta, content) = match self.api.records.read(&actor, id, purpose, false).await {
            Ok(read) => read,
            Err(error) => return failure(&who, error),
        };
        let pretty = serde_json::to_string_pretty(&content).unwrap_or_default();
        let view = RecordPage {
            meta: &meta,
            can_read: true,
            content: Some((purpose, pretty)),
        };
        page(200, pages::record(&who, &view))
    }

    /// The subject of an export or deletion form, once the operator typed it again exactly.
    /// `Err`: the 400 page (nothing done).
    async fn confirmed_subject<'r>(
        &self,
        request: &'r ConsoleRequest,
        signed: &Signed,
        who: &Who<'_>,
        what: &str,
    ) -> Result<&'r str, ConsoleReply> {
        let subject = request.field("subject").unwrap_or_default();
        if !valid_subject(subject) {
            return Err(page(
                400,
                pages::problem(Some(who), what, bad_field("subject")),
            ));
        }
        // Exactly as typed: no trimming, no case folding.
        if request.field("confirm") != Some(subject) {
            // On record, with the subject as the trail names it (a pseudonym).
            self.api
                .records
                .denied(
                    &self.actor(request, &signed.operator),
                    "confirmation_mismatch",
                    None,
                    Some(subject),
                )
                .await;
            return Err(page(
                400,
                pages::problem(
                    Some(who),
                    what,
                    "The confirmation does not match: type the subject id again, exactly as shown. Nothing was done.",
                ),
            ));
        }
        Ok(subject)
    }

    /// `POST /console/subjects/export`: every record of a subject with its content, as a
    /// download.
    pub(super) async fn subject_export(&self, request: &ConsoleRequest) -> ConsoleReply {
        let signed = match self.allowed(request, Permission::Export).await {
            Ok(signed) => signed,
            Err(reply) => return reply,
        };
        let who = self.who(&signed);
        let subject = match self
            .confirmed_subject(request, &signed, &who, "Not exported")
            .await
        {
            Ok(subject) => subject,
            Err(reply) => return reply,
        };
        let actor = self.actor(request, &signed.operator);
        let Some(purpose) = request.field("purpose").and_then(valid_purpose) else {
            self.api
                .records
                .denied(&actor, "purpose_required", None, Some(subject))
                .await;
            return page(
                400,
                pages::problem(
                    Some(&who),
                    "Not exported",
                    "An export needs a purpose of 1 to 200 characters; nothing was exported.",
                ),
            );
        };
        match self
            .api
            .records
            .export_subject(&actor, subject, purpose)
            .await
        {
            Ok(records) => {
                let document = subject_export(subject, self.clock.now_unix(), records);
                let body = serde_json::to_vec_pretty(&document).unwrap_or_default();
                ConsoleReply {
                    status: 200,
                    content_type: "application/json",
                    body: Bytes::from(body),
                    headers: vec![(
                        "content-disposition",
                        format!("attachment; filename=\"{EXPORT_FILE}\""),
                    )],
                    stream: None,
                }
            }
            Err(error) => failure(&who, error),
        }
    }

    /// `POST /console/subjects/delete`: everything of a subject, and the report.
    pub(super) async fn subject_delete(&self, request: &ConsoleRequest) -> ConsoleReply {
        let signed = match self.allowed(request, Permission::Delete).await {
            Ok(signed) => signed,
            Err(reply) => return reply,
        };
        let who = self.who(&signed);
        let subject = match self
            .confirmed_subject(request, &signed, &who, "Not deleted")
            .await
        {
            Ok(subject) => subject,
            Err(reply) => return reply,
        };
        let actor = self.actor(request, &signed.operator);
        match self.api.records.delete_subject(&actor, subject).await {
            Ok(report) => page(200, pages::deletion_report(&who, &report)),
            Err(error) => failure(&who, error),
        }
    }
}

/// The search form as a records filter: dates (`YYYY-MM-DD`, UTC) become unix seconds — the
/// `to` date counts whole — and the rest goes through the records API's validation. `Err` is
/// the sentence of the 400 page.
fn search_filter(
    request: &ConsoleRequest,
    form: &SearchForm<'_>,
) -> Result<RecordFilter, &'static str> {
    let date = |text: &str, sentence: &'static str| -> Result<Option<u64>, &'static str> {
        if text.is_empty() {
            return Ok(None);
        }
        date_start(text).map(Some).ok_or(sentence)
    };
    let from = date(
        form.from,
        "The date \"Created from\" is not a date: use the date picker or YYYY-MM-DD (from 1970 on).",
    )?;
    let to = date(
        form.to,
        "The date \"Created until\" is not a date: use the date picker or YYYY-MM-DD (from 1970 on).",
    )?
    .map(|start| start + DAY_SECS - 1);
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err("The date \"Created from\" is after \"Created until\".");
        }
    }
    record_filter(|name| match name {
        "from" => from.map(|secs| secs.to_string()),
        "to" => to.map(|secs| secs.to_string()),
        "limit" => Some(PAGE_SIZE.to_string()),
        "subject" | "call_id" | "kind" | "after" => query(request, name)
            .filter(|value| !value.is_empty())
            .map(str::to_string),
        _ => None,
    })
    .map_err(bad_field)
}

/// The address of the page after the record `after`, with the same search.
fn next_page(form: &SearchForm<'_>, after: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("search", "1");
    for (name, value) in [
        ("subject", form.subject),
        ("call_id", form.call_id),
        ("kind", form.kind),
        ("from", form.from),
        ("to", form.to),
    ] {
        if !value.is_empty() {
            query.append_pair(name, value);
        }
    }
    query.append_pair("after", after);
    format!("/console/records?{}", query.finish())
}

/// A search that was not run: 400, nothing read, nothing audited as read.
fn not_searched(who: &Who<'_>, sentence: &str) -> ConsoleReply {
    page(
        400,
        pages::problem(
            Some(who),
            "Not searched",
            &format!("{sentence} Nothing was read."),
        ),
    )
}

/// A records failure as the operator sees it: never content, SQL or a subject id.
fn failure(who: &Who<'_>, error: RecordsError) -> ConsoleReply {
    let (status, title, sentence) = match &error {
        RecordsError::NotFound => (
            404,
            "Not found",
            "There is no such record (it may have passed its retention or been deleted)."
                .to_string(),
        ),
        RecordsError::InvalidSubject => (400, "Not done", bad_field("subject").to_string()),
        RecordsError::Crypto(_) | RecordsError::KeyShredded | RecordsError::Corrupt => {
            tracing::error!(target: "voxguard::security", %error, "a record could not be decrypted");
            (
                500,
                "Not readable",
                format!("The record cannot be read: {error}. The failure is recorded in the audit trail."),
            )
        }
        RecordsError::AuditUnavailable => (
            503,
            "Not done",
            "The audit trail could not be written, so nothing was done. Try again shortly."
                .to_string(),
        ),
        RecordsError::Store(StoreError::UnknownCursor) => (
            400,
            "Not searched",
            "The page link names a record that no longer exists; start the search again."
                .to_string(),
        ),
        RecordsError::Store(_) => {
            tracing::error!(%error, "records store failed");
            return unavailable();
        }
        RecordsError::Operator(_) => (400, "Not done", "The request is not valid.".to_string()),
    };
    page(status, pages::problem(Some(who), title, &sentence))
}
