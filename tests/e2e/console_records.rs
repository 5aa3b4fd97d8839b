//! The security console's records and audit pages (issue 16) over real HTTP, with the browser
//! of `console.rs` (cookies kept, redirects not followed): searching records by subject, call,
//! kind and date (bad input refused before anything is read), an auditor's pseudonyms, reading
//! a transcript only for a stated purpose, a subject's export and deletion behind the typed
//! confirmation, CSRF refusals that change nothing, the audit trail's pages, filters and
//! bound, "Verify now" on an intact and on a tampered trail, and the overview's agents, counts
//! and last checkpoint. Each check that something was (or was not) audited reads the SQLite
//! trail by the request's id.
//!
//! Records are put in place with the records kit's library handle (as the runtime stores them
//! at the end of a call); everything the test then does goes through HTTP, except tampering
//! with the audit database, which is what the verification test is about.

use std::time::Duration;

use crate::console::{
    audited, browser, desk, desk_from, events, get, operator, post, Desk, Page, CSP,
};
use crate::util::{counter, counting_tool, Call, RecordsKit, USER};
use reqwest::StatusCode;
use serde_json::{json, Value};
use voxguard::guard::{AuditEvent, AuditKey, AuditKind};
use voxguard::store::{AuditSink, RecordFilter};
use voxguard::{Actor, RecordKind};

const PATIENT: &str = "patient-7";
const OTHER: &str = "patient-9";
const PHRASE: &str = "the blue heron entrance";
const PURPOSE: &str = "billing dispute 42";

/// Store a record of `kind` for `subject` in call `call`, as the runtime does at a call's end.
async fn record(desk: &Desk, call: &str, subject: &str, kind: RecordKind, text: &str) -> String {
    desk.kit
        .records
        .store("desk", call, Some(subject), kind, &json!({ "text": text }))
        .await
        .expect("record stored")
        .id
}

/// Three records: two of [`PATIENT`] in `call-a` (a transcript and a summary), one of
/// [`OTHER`] in `call-b`.
async fn three_records(desk: &Desk) -> (String, String, String) {
    let transcript = record(
        desk,
        "call-a",
        PATIENT,
        RecordKind::Transcript,
        &format!("Caller: I am at {PHRASE}. <b>bold</b>"),
    )
    .await;
    let summary = record(desk, "call-a", PATIENT, RecordKind::Summary, "A visit.").await;
    let other = record(
        desk,
        "call-b",
        OTHER,
        RecordKind::Transcript,
        "Someone else.",
    )
    .await;
    (transcript, summary, other)
}

/// The sequence numbers of the audit page's rows, in page order.
fn seqs(body: &str) -> Vec<u64> {
    body.split("<tr><td>")
        .skip(1)
        .filter_map(|row| row.split("</td>").next()?.parse().ok())
        .collect()
}

/// The record ids the records page links to, in page order.
fn linked_ids(body: &str) -> Vec<String> {
    body.split("href=\"/console/records/rec_")
        .skip(1)
        .map(|rest| format!("rec_{}", &rest[..26]))
        .collect()
}

/// The value of the first link whose text is `text` (an `href` on the same tag).
fn link(page: &Page, text: &str) -> Option<String> {
    let end = page.body.find(&format!("\">{text}</a>"))?;
    let start = page.body[..end].rfind("href=\"")? + "href=\"".len();
    Some(page.body[start..end].replace("&amp;", "&"))
}

#[tokio::test]
async fn records_are_searched_by_subject_call_kind_and_date_and_bad_input_reads_nothing() {
    let desk = desk().await;
    let (transcript, summary, other) = three_records(&desk).await;
    let supervisor = operator(&desk, "sue", "supervisor").await;

    // The page alone reads nothing.
    let form = get(&supervisor, &desk, "/console/records").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    for id in ["subject", "call_id", "kind", "from", "to"] {
        assert!(
            form.body.contains(&format!("for=\"{id}\"")),
            "a label for {id}"
        );
    }
    assert!(form.body.contains("type=\"date\""));
    assert!(!form.body.contains("Results"));
    assert!(audited(&desk, &form, "record_accessed").await.is_empty());

    let by_subject = get(
        &supervisor,
        &desk,
        &format!("/console/records?search=1&subject={PATIENT}"),
    )
    .await;
    assert_eq!(by_subject.status, StatusCode::OK, "{}", by_subject.body);
    let mut found = linked_ids(&by_subject.body);
    found.sort();
    let mut expected = vec![transcript.clone(), summary.clone()];
    expected.sort();
    assert_eq!(found, expected);
    // A supervisor may read content, so the subject is shown as it is.
    assert!(by_subject
        .body
        .contains(&format!("<td><code>{PATIENT}</code></td>")));
    let listed = audited(&desk, &by_subject, "record_accessed").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].function.as_deref(), Some("list"));
    assert_eq!(
        listed[0].subject.as_deref(),
        Some(desk.kit.masked(PATIENT).as_str())
    );
    assert_eq!(listed[0].operator.as_deref(), Some("sue"));

    let by_call = get(
        &supervisor,
        &desk,
        "/console/records?search=1&call_id=call-b",
    )
    .await;
    assert_eq!(linked_ids(&by_call.body), [other.as_str()]);
    let by_kind = get(&supervisor, &desk, "/console/records?search=1&kind=summary").await;
    assert_eq!(linked_ids(&by_kind.body), [summary.as_str()]);
    let wide = get(
        &supervisor,
        &desk,
        "/console/records?search=1&from=2000-01-01&to=2999-12-31",
    )
    .await;
    assert_eq!(linked_ids(&wide.body).len(), 3);
    let before = get(
        &supervisor,
        &desk,
        "/console/records?search=1&to=2000-01-01",
    )
    .await;
    assert_eq!(before.status, StatusCode::OK);
    assert!(linked_ids(&before.body).is_empty());
    assert!(before.body.contains("No records match"));

    // Bad input: a 400 page that says why, and nothing read or audited as read.
    for (query, words) in [
        ("from=2024-13-01", "is not a date"),
        ("to=yesterday", "is not a date"),
        ("from=2024-05-02&to=2024-05-01", "is after"),
        ("kind=voicemail", "Choose a kind"),
        ("subject=%07bell", "subject id must be"),
        (
            "after=not-a-record-cursor-because-it-is-far-too-long-to-be-one-at-all-really",
            "page link",
        ),
    ] {
        let bad = get(
            &supervisor,
            &desk,
            &format!("/console/records?search=1&{query}"),
        )
        .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{query}: {}", bad.body);
        assert!(bad.body.contains(words), "{query}: {}", bad.body);
        assert!(bad.body.contains("Nothing was read"), "{query}");
        assert!(
            desk.kit.events_of(&bad.request_id()).await.is_empty(),
            "{query}: nothing is audited as read"
        );
    }
}

#[tokio::test]
async fn search_results_are_paged_with_the_after_cursor() {
    let desk = desk().await;
    let mut stored = Vec::new();
    for i in 0..55 {
        stored.push(
            record(
                &desk,
                "call-many",
                "patient-many",
                RecordKind::ToolLog,
                &format!("step {i}"),
            )
            .await,
        );
    }
    let supervisor = operator(&desk, "sue", "supervisor").await;
    let first = get(
        &supervisor,
        &desk,
        "/console/records?search=1&subject=patient-many",
    )
    .await;
    let page_one = linked_ids(&first.body);
    assert_eq!(page_one.len(), 50);
    let next = link(&first, "Next page").expect("a next page link");
    assert!(next.contains("after=rec_"), "{next}");
    assert!(next.contains("subject=patient-many"), "{next}");
    let second = get(&supervisor, &desk, &next).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    let page_two = linked_ids(&second.body);
    assert_eq!(page_two.len(), 5);
    assert!(link(&second, "Next page").is_none());
    let mut all: Vec<String> = page_one.into_iter().chain(page_two).collect();
    all.sort();
    stored.sort();
    assert_eq!(all, stored, "every record once");
}

#[tokio::test]
async fn an_auditor_sees_pseudonyms_and_no_way_to_content() {
    let desk = desk().await;
    let (transcript, _, _) = three_records(&desk).await;
    let auditor = operator(&desk, "ann", "auditor").await;
    let masked = desk.kit.masked(PATIENT);

    let found = get(
        &auditor,
        &desk,
        &format!("/console/records?search=1&subject={PATIENT}"),
    )
    .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert_eq!(linked_ids(&found.body).len(), 2);
    assert!(found
        .body
        .contains(&format!("<td><code>{masked}</code></td>")));
    assert!(!found
        .body
        .contains(&format!("<td><code>{PATIENT}</code></td>")));
    assert!(
        !found.body.contains("/console/subjects/"),
        "no export or deletion"
    );
    assert!(
        found.body.contains("href=\"/console/audit\""),
        "the audit link"
    );

    let page = get(&auditor, &desk, &format!("/console/records/{transcript}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(&masked));
    assert!(!page.body.contains(PATIENT));
    assert!(!page.body.contains("/content\""), "no purpose form");
    assert!(!page.body.contains(PHRASE));
    let described = audited(&desk, &page, "record_accessed").await;
    assert_eq!(described.len(), 1);
    assert_eq!(described[0].function.as_deref(), Some("metadata"));
    assert_eq!(described[0].record.as_deref(), Some(transcript.as_str()));

    // Posting the form anyway (with a valid token) is refused and audited.
    let refused = post(
        &auditor,
        &desk,
        &format!("/console/records/{transcript}/content"),
        &[("csrf", &page.csrf()), ("purpose", PURPOSE)],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(!refused.body.contains(PHRASE));
    let denied = audited(&desk, &refused, "access_denied").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].reason.as_deref(), Some("access_denied"));
    assert!(audited(&desk, &refused, "record_accessed").await.is_empty());
}

#[tokio::test]
async fn content_opens_only_for_a_purpose_and_the_read_is_audited_with_it() {
    let desk = desk().await;
    let (transcript, _, _) = three_records(&desk).await;
    let supervisor = operator(&desk, "sue", "supervisor").await;
    let page = get(
        &supervisor,
        &desk,
        &format!("/console/records/{transcript}"),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<label for=\"purpose\">"));
    assert!(!page.body.contains(PHRASE), "no content before a purpose");
    let csrf = page.csrf();
    let path = format!("/console/records/{transcript}/content");

    let long = "x".repeat(201);
    for purpose in [None, Some("   "), Some(long.as_str())] {
        let mut form = vec![("csrf", csrf.as_str())];
        if let Some(purpose) = purpose {
            form.push(("purpose", purpose));
        }
        let refused = post(&supervisor, &desk, &path, &form).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{purpose:?}");
        assert!(refused.body.contains("needs a purpose"), "{}", refused.body);
        assert!(!refused.body.contains(PHRASE));
        let denied = audited(&desk, &refused, "access_denied").await;
        assert_eq!(denied.len(), 1, "{purpose:?}");
        assert_eq!(denied[0].reason.as_deref(), Some("purpose_required"));
        assert_eq!(denied[0].record.as_deref(), Some(transcript.as_str()));
        assert!(audited(&desk, &refused, "record_accessed").await.is_empty());
    }
    // Without the form's token: refused, nothing read.
    let forged = post(&supervisor, &desk, &path, &[("purpose", PURPOSE)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!forged.body.contains(PHRASE));
    assert!(audited(&desk, &forged, "record_accessed").await.is_empty());

    let read = post(
        &supervisor,
        &desk,
        &path,
        &[("csrf", &csrf), ("purpose", PURPOSE)],
    )
    .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert!(read.body.contains(PHRASE), "{}", read.body);
    assert!(read.body.contains("<pre>"));
    // Stored markup is shown as text, never as markup.
    assert!(
        read.body.contains("&lt;b&gt;bold&lt;/b&gt;"),
        "{}",
        read.body
    );
    assert!(!read.body.contains("<b>bold</b>"));
    let reads = audited(&desk, &read, "record_accessed").await;
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0].record.as_deref(), Some(transcript.as_str()));
    assert_eq!(reads[0].purpose.as_deref(), Some(PURPOSE));
    assert_eq!(reads[0].operator.as_deref(), Some("sue"));
    assert_eq!(reads[0].role.as_deref(), Some("supervisor"));
    assert_eq!(reads[0].function.as_deref(), Some("transcript"));

    // An auditor finds the read, with its purpose, on the console's audit page.
    let auditor = operator(&desk, "ann", "auditor").await;
    let trail = get(&auditor, &desk, "/console/audit?kind=record_accessed").await;
    assert_eq!(trail.status, StatusCode::OK, "{}", trail.body);
    assert!(trail.body.contains(PURPOSE), "{}", trail.body);
    assert!(trail.body.contains(&transcript));
    assert!(trail.body.contains("sue (supervisor)"));
}

#[tokio::test]
async fn export_and_deletion_need_the_subject_typed_again() {
    let desk = desk().await;
    let (transcript, summary, other) = three_records(&desk).await;
    let compliance = operator(&desk, "cora", "compliance").await;
    let search = get(
        &compliance,
        &desk,
        &format!("/console/records?search=1&subject={PATIENT}"),
    )
    .await;
    assert_eq!(search.status, StatusCode::OK);
    for id in ["export-purpose", "export-confirm", "delete-confirm"] {
        assert!(
            search.body.contains(&format!("<label for=\"{id}\">")),
            "{id}"
        );
    }
    assert!(search.body.contains("type the subject id again"));
    let csrf = search.csrf();

    // Export: a wrong or approximate confirmation, or no purpose, exports nothing.
    for (confirm, purpose, words) in [
        ("patient-8", PURPOSE, "does not match"),
        ("patient-7 ", PURPOSE, "does not match"),
        ("PATIENT-7", PURPOSE, "does not match"),
        (PATIENT, "", "needs a purpose"),
    ] {
        let refused = post(
            &compliance,
            &desk,
            "/console/subjects/export",
            &[
                ("csrf", &csrf),
                ("subject", PATIENT),
                ("confirm", confirm),
                ("purpose", purpose),
            ],
        )
        .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{confirm:?}");
        assert!(refused.body.contains(words), "{}", refused.body);
        assert!(!refused.body.contains(PHRASE));
        assert!(audited(&desk, &refused, "record_exported").await.is_empty());
    }
    let exported = compliance
        .post(desk.server.url("/console/subjects/export"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("subject", PATIENT),
            ("confirm", PATIENT),
            ("purpose", PURPOSE),
        ])
        .send()
        .await
        .expect("export");
    assert_eq!(exported.status(), StatusCode::OK);
    let header = |name: &str| {
        exported.headers()[name]
            .to_str()
            .expect("ascii")
            .to_string()
    };
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(
        header("content-disposition"),
        "attachment; filename=\"subject-export.json\""
    );
    assert_eq!(header("content-security-policy"), CSP);
    let request_id = header("x-request-id");
    let document: Value = exported.json().await.expect("json");
    assert_eq!(document["subject"], PATIENT);
    let records = document["records"].as_array().expect("records");
    assert_eq!(records.len(), 2);
    assert!(document.to_string().contains(PHRASE));
    let events = desk.kit.events_of(&request_id).await;
    let export = events
        .iter()
        .find(|e| e.kind.as_str() == "record_exported")
        .expect("the export is audited");
    assert_eq!(export.function.as_deref(), Some("subject_export"));
    assert_eq!(export.purpose.as_deref(), Some(PURPOSE));
    assert_eq!(
        export.subject.as_deref(),
        Some(desk.kit.masked(PATIENT).as_str())
    );

    // Deletion: a wrong confirmation, or no token, deletes nothing.
    for form in [
        vec![
            ("csrf", csrf.as_str()),
            ("subject", PATIENT),
            ("confirm", "DELETE"),
        ],
        vec![("csrf", csrf.as_str()), ("subject", PATIENT)],
        vec![("subject", PATIENT), ("confirm", PATIENT)],
    ] {
        let refused = post(&compliance, &desk, "/console/subjects/delete", &form).await;
        assert!(
            [StatusCode::BAD_REQUEST, StatusCode::FORBIDDEN].contains(&refused.status),
            "{form:?}: {}",
            refused.status
        );
        assert!(refused.body.contains("othing was"), "{}", refused.body);
        assert!(audited(&desk, &refused, "subject_deleted").await.is_empty());
    }
    let still = get(
        &compliance,
        &desk,
        &format!("/console/records/{transcript}"),
    )
    .await;
    assert_eq!(still.status, StatusCode::OK, "nothing was deleted");

    let deleted = post(
        &compliance,
        &desk,
        "/console/subjects/delete",
        &[("csrf", &csrf), ("subject", PATIENT), ("confirm", PATIENT)],
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert!(deleted.body.contains("Subject deleted"));
    assert!(
        deleted.body.contains("<td>Records</td><td>2</td>"),
        "{}",
        deleted.body
    );
    assert!(
        deleted.body.contains("<td>Data keys</td><td>1</td>"),
        "{}",
        deleted.body
    );
    let tombstones = audited(&desk, &deleted, "subject_deleted").await;
    assert_eq!(tombstones.len(), 2, "requested, then done: {tombstones:?}");
    for id in [&transcript, &summary] {
        let gone = get(&compliance, &desk, &format!("/console/records/{id}")).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND, "{id}");
    }
    let empty = get(
        &compliance,
        &desk,
        &format!("/console/records?search=1&subject={PATIENT}"),
    )
    .await;
    assert!(linked_ids(&empty.body).is_empty());
    // The other subject is untouched.
    let kept = get(&compliance, &desk, &format!("/console/records/{other}")).await;
    assert_eq!(kept.status, StatusCode::OK);

    // A role without export and delete gets neither the forms nor the actions.
    let supervisor = operator(&desk, "sue", "supervisor").await;
    let page = get(
        &supervisor,
        &desk,
        &format!("/console/records?search=1&subject={OTHER}"),
    )
    .await;
    assert!(!page.body.contains("/console/subjects/"));
    for path in ["/console/subjects/export", "/console/subjects/delete"] {
        let refused = post(
            &supervisor,
            &desk,
            path,
            &[
                ("csrf", &page.csrf()),
                ("subject", OTHER),
                ("confirm", OTHER),
                ("purpose", PURPOSE),
            ],
        )
        .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
        let denied = audited(&desk, &refused, "access_denied").await;
        assert_eq!(denied.len(), 1, "{path}");
    }
    let kept = get(&compliance, &desk, &format!("/console/records/{other}")).await;
    assert_eq!(kept.status, StatusCode::OK);
}

#[tokio::test]
async fn forms_without_their_csrf_token_are_refused_and_change_nothing() {
    let desk = desk().await;
    let (transcript, _, _) = three_records(&desk).await;
    let compliance = operator(&desk, "cora", "compliance").await;
    let auditor = operator(&desk, "ann", "auditor").await;
    let content = format!("/console/records/{transcript}/content");
    for (client, path, form) in [
        (&compliance, content.as_str(), vec![("purpose", PURPOSE)]),
        (
            &compliance,
            "/console/subjects/export",
            vec![
                ("subject", PATIENT),
                ("confirm", PATIENT),
                ("purpose", PURPOSE),
            ],
        ),
        (
            &compliance,
            "/console/subjects/delete",
            vec![
                ("subject", PATIENT),
                ("confirm", PATIENT),
                ("csrf", "wrong"),
            ],
        ),
        (&auditor, "/console/audit/verify", vec![]),
    ] {
        let refused = post(client, &desk, path, &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
        assert!(refused.body.contains("nothing was changed"), "{path}");
        let events = desk.kit.events_of(&refused.request_id()).await;
        assert_eq!(events.len(), 1, "{path}: {events:?}");
        assert_eq!(events[0].kind.as_str(), "access_denied");
        assert_eq!(events[0].reason.as_deref(), Some("csrf_invalid"));
    }
    let still = get(
        &compliance,
        &desk,
        &format!("/console/records/{transcript}"),
    )
    .await;
    assert_eq!(still.status, StatusCode::OK);
    assert!(!events(&desk).await.iter().any(|e| {
        e.kind == AuditKind::SubjectDeleted
            || e.kind == AuditKind::RecordExported
            || e.function.as_deref() == Some("console_audit_verify")
    }));
}

#[tokio::test]
async fn roles_without_read_audit_get_403_on_the_audit_pages_and_it_is_audited() {
    let desk = desk().await;
    for (name, role) in [
        ("sue", "supervisor"),
        ("cora", "compliance"),
        ("ada", "admin"),
    ] {
        let client = operator(&desk, name, role).await;
        let overview = get(&client, &desk, "/console/overview").await;
        assert!(
            !overview.body.contains("href=\"/console/audit\""),
            "{role}: no link"
        );
        let denied = get(&client, &desk, "/console/audit").await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN, "{role}");
        assert!(denied.body.contains("read_audit"), "{}", denied.body);
        let events = audited(&desk, &denied, "access_denied").await;
        assert_eq!(events.len(), 1, "{role}");
        assert_eq!(events[0].operator.as_deref(), Some(name));
        assert_eq!(events[0].role.as_deref(), Some(role));
        let verify = post(
            &client,
            &desk,
            "/console/audit/verify",
            &[("csrf", &overview.csrf())],
        )
        .await;
        assert_eq!(verify.status, StatusCode::FORBIDDEN, "{role}");
        assert_eq!(audited(&desk, &verify, "access_denied").await.len(), 1);
    }
    // An admin may not list records either.
    let admin = operator(&desk, "adm", "admin").await;
    assert_eq!(
        get(&admin, &desk, "/console/records").await.status,
        StatusCode::FORBIDDEN
    );
    assert!(!events(&desk)
        .await
        .iter()
        .any(|e| e.function.as_deref() == Some("console_audit_verify")));
}

#[tokio::test]
async fn the_audit_page_is_paged_newest_first_and_filtered() {
    let desk = desk().await;
    let auditor = operator(&desk, "ann", "auditor").await;
    let actor = Actor::cli("test");
    for _ in 0..120 {
        desk.kit
            .records
            .list(&actor, &RecordFilter::default())
            .await
            .expect("listed");
    }
    let newest = get(&auditor, &desk, "/console/audit").await;
    assert_eq!(newest.status, StatusCode::OK, "{}", newest.body);
    for id in ["kind", "outcome", "reason"] {
        assert!(
            newest.body.contains(&format!("<label for=\"{id}\">")),
            "{id}"
        );
    }
    let page_one = seqs(&newest.body);
    assert_eq!(page_one.len(), 50);
    assert!(
        page_one.windows(2).all(|w| w[0] == w[1] + 1),
        "{page_one:?}"
    );
    // The newest record is the view's own event: it is written before anything is read.
    let trail = desk.kit.trail().await;
    let viewed = trail
        .iter()
        .find(|r| r.event.request_id.as_deref() == Some(newest.request_id().as_str()))
        .expect("the view is audited");
    assert_eq!(viewed.event.function.as_deref(), Some("console_audit"));
    assert_eq!(page_one[0], viewed.seq);
    assert!(link(&newest, "← Newer").is_none());

    let older = get(&auditor, &desk, &link(&newest, "Older →").expect("older")).await;
    let page_two = seqs(&older.body);
    assert_eq!(page_two.len(), 50);
    assert_eq!(page_two[0], page_one[49] - 1);
    let back = get(&auditor, &desk, &link(&older, "← Newer").expect("newer")).await;
    assert_eq!(seqs(&back.body), page_one);
    // Past the oldest record: an empty page whose newer link leads to the oldest ones.
    let past = get(&auditor, &desk, "/console/audit?before=1").await;
    assert_eq!(past.status, StatusCode::OK, "{}", past.body);
    assert!(seqs(&past.body).is_empty());
    assert!(link(&past, "Older →").is_none());
    let oldest = get(&auditor, &desk, &link(&past, "← Newer").expect("newer")).await;
    assert_eq!(oldest.status, StatusCode::OK, "{}", oldest.body);
    assert_eq!(seqs(&oldest.body), (1..=50).rev().collect::<Vec<u64>>());

    // Filters: only the sign-in events, then only refusals for a reason.
    let sign_ins = get(&auditor, &desk, "/console/audit?kind=console_session").await;
    let rows = seqs(&sign_ins.body);
    assert_eq!(rows.len(), 1, "{}", sign_ins.body);
    assert!(sign_ins.body.contains("console_sign_in"));
    assert!(sign_ins.body.contains("ann (auditor)"));
    let denied = get(&auditor, &desk, "/console/emergency").await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let refusals = get(
        &auditor,
        &desk,
        "/console/audit?outcome=refused&reason=access_denied",
    )
    .await;
    assert_eq!(seqs(&refusals.body).len(), 1, "{}", refusals.body);
    assert!(refusals.body.contains("access_denied"));

    for query in [
        "kind=tool_call",
        "outcome=fine",
        "reason=Token%20Invalid",
        "before=0",
        "before=5&after=2",
        "after=x",
    ] {
        let bad = get(&auditor, &desk, &format!("/console/audit?{query}")).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(bad.body.contains("Nothing was read"), "{query}");
        assert!(
            desk.kit.events_of(&bad.request_id()).await.is_empty(),
            "{query}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_audit_page_reads_at_most_5000_records_and_links_on() {
    let desk = desk().await;
    let auditor = operator(&desk, "ann", "auditor").await;
    // 5,100 records after the sign-in, appended in parallel (group commits).
    let sink = desk.kit.sink();
    for _ in 0..51 {
        let writes = (0..100).map(|i| {
            let sink = sink.clone();
            async move {
                sink.append(AuditEvent::new(
                    AuditKind::ToolCalled,
                    1_700_000_000_000 + i,
                ))
                .await
                .expect("appended")
            }
        });
        futures_util::future::join_all(writes).await;
    }
    let bounded = get(&auditor, &desk, "/console/audit?kind=console_session").await;
    assert_eq!(bounded.status, StatusCode::OK, "{}", bounded.body);
    assert!(
        seqs(&bounded.body).is_empty(),
        "the sign-in is past the bound"
    );
    assert!(
        bounded.body.contains("5000 records read per request"),
        "{}",
        bounded.body
    );
    let on = link(&bounded, "Older →").expect("a link to search on");
    assert!(on.contains("kind=console_session"), "{on}");
    let found = get(&auditor, &desk, &on).await;
    assert_eq!(seqs(&found.body).len(), 1, "{}", found.body);
    assert!(found.body.contains("console_sign_in"));
}

#[tokio::test]
async fn verify_now_reports_an_intact_trail_and_finds_a_tampered_record() {
    let desk = desk().await;
    let auditor = operator(&desk, "ann", "auditor").await;
    let page = get(&auditor, &desk, "/console/audit").await;
    assert!(page.body.contains("Verify now"));
    let before = desk.kit.trail().await.len();

    let verified = post(
        &auditor,
        &desk,
        "/console/audit/verify",
        &[("csrf", &page.csrf())],
    )
    .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert!(
        verified
            .body
            .contains(&format!("OK</strong>: {before} records verified")),
        "{}",
        verified.body
    );
    let runs = audited(&desk, &verified, "console_session").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].function.as_deref(), Some("console_audit_verify"));
    assert_eq!(runs[0].outcome.map(|o| o.as_str()), Some("ok"));
    assert_eq!(
        runs[0].arguments.as_ref().unwrap()["records"],
        before as u64
    );

    // Someone with access to the database file rewrites record 3's hash.
    let db = rusqlite::Connection::open(desk.kit.dir.path().join("audit.db")).expect("open");
    db.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let changed = db
        .execute(
            "UPDATE audit_log SET hash = ?1 WHERE seq = 3",
            [&"ab".repeat(32)],
        )
        .expect("update");
    assert_eq!(changed, 1);
    drop(db);

    let broken = post(
        &auditor,
        &desk,
        "/console/audit/verify",
        &[("csrf", &page.csrf())],
    )
    .await;
    assert_eq!(broken.status, StatusCode::OK, "{}", broken.body);
    assert!(
        broken
            .body
            .contains("BROKEN at sequence number 3</strong> (modified)"),
        "{}",
        broken.body
    );
    let runs = audited(&desk, &broken, "console_session").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome.map(|o| o.as_str()), Some("failed"));
    assert_eq!(runs[0].arguments.as_ref().unwrap()["broken_at"], 3);
    // The overview's window sees it too.
    let overview = get(&auditor, &desk, "/console/overview").await;
    assert!(
        overview.body.contains("BROKEN at record 3"),
        "{}",
        overview.body
    );
}

#[tokio::test]
async fn the_overview_shows_the_tools_the_counts_and_the_last_checkpoint() {
    let key = AuditKey::from_base64("ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=").expect("key");
    let kit = RecordsKit::with_audit_key(Some(key)).await;
    let transfers = counter();
    let tools = vec![counting_tool("transfer", &transfers)
        .requires("verified")
        .rate_limit(3, Duration::from_secs(60))
        .confirm(|_: &Value| "Shall I?".to_string())];
    let desk = desk_from(kit, tools, |_| {}).await;
    let server = desk.server.clone();
    let first = Call::start(&server, "/", "call-1", "+15550001111").await;
    first.ok("hours", json!({})).await;
    first.ok("wire", json!({})).await;
    let second = Call::start(&server, "/", "call-2", "+15550002222").await;
    second.ok("hours", json!({})).await;
    second
        .refused("transfer", json!({}), "verification_required")
        .await;
    // A burst of wrong platform credentials from one address: more than 10 in a minute.
    for _ in 0..12 {
        let response = server
            .client
            .get(server.url("/"))
            .basic_auth(USER, Some("not-the-password"))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // The counted failures are written when the next window opens.
    desk.clock.advance(Duration::from_secs(61));
    let response = server
        .client
        .get(server.url("/"))
        .basic_auth(USER, Some("still-not-it"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    desk.kit.audit.flush().await.expect("a checkpoint");

    let auditor = operator(&desk, "ann", "auditor").await;
    let overview = get(&auditor, &desk, "/console/overview").await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    let body = &overview.body;
    // Agents and tools, with their policies.
    assert!(body.contains("Agents and tools"), "{body}");
    for tool in ["hours", "wire", "transfer"] {
        assert!(
            body.contains(&format!("<td><code>{tool}</code></td>")),
            "{tool}: {body}"
        );
    }
    assert!(body.contains("requires: verified"), "{body}");
    assert!(body.contains("rate limit: 3 per 60 s per caller"), "{body}");
    assert!(body.contains("confirmation"), "{body}");
    assert!(
        body.contains("<td><code>wire</code></td><td><strong>sensitive</strong></td>"),
        "{body}"
    );
    assert!(
        body.contains("<td><code>hours</code></td><td>no</td>"),
        "{body}"
    );
    // The counts of the last 24 hours.
    assert!(
        body.contains("<td>Calls with audited activity</td><td>2</td>"),
        "{body}"
    );
    assert!(body.contains("<td>Tool calls</td><td>3</td>"), "{body}");
    assert!(body.contains("<td>Tool calls: ok</td><td>3</td>"), "{body}");
    assert!(
        body.contains("<td>Verification lockouts</td><td>0</td>"),
        "{body}"
    );
    assert!(
        body.contains("<td>failed_auth_burst</td><td>1</td>"),
        "{body}"
    );
    // Refusals count the failures an aggregated record stands for: 13, in 3 records.
    assert!(body.contains("<td>auth_invalid</td><td>13</td>"), "{body}");
    assert!(
        body.contains("<td>verification_required</td><td>1</td>"),
        "{body}"
    );
    // The last checkpoint, signed under the runtime's key.
    let trail = desk.kit.trail().await;
    let checkpoints = desk.kit.audit.checkpoints().await.expect("checkpoints");
    let last = checkpoints.last().expect("a checkpoint");
    assert!(
        body.contains(&format!("Last signed checkpoint: record {}", last.seq)),
        "{body}"
    );
    assert!(body.contains(&last.hash[..12]));
    assert!(body.contains("<strong>valid</strong>"), "{body}");
    assert!(last.seq <= trail.last().expect("records").seq);

    // Verify now checks the checkpoints too.
    let page = get(&auditor, &desk, "/console/audit").await;
    let verified = post(
        &auditor,
        &desk,
        "/console/audit/verify",
        &[("csrf", &page.csrf())],
    )
    .await;
    assert!(verified.body.contains("OK</strong>"), "{}", verified.body);
    assert!(
        !verified.body.contains(", 0 signed checkpoints checked"),
        "{}",
        verified.body
    );

    // Every page of this issue keeps the strict headers and carries no script.
    let supervisor = operator(&desk, "sue", "supervisor").await;
    for (client, path) in [
        (&auditor, "/console/overview"),
        (&auditor, "/console/audit"),
        (&supervisor, "/console/records"),
        (&supervisor, "/console/records?search=1"),
    ] {
        let page = get(client, &desk, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(page.headers["content-security-policy"], CSP, "{path}");
        assert!(!page.body.contains("<script"), "{path}");
        assert!(!page.body.contains("style="), "{path}");
    }
}

#[tokio::test]
async fn the_new_addresses_answer_405_and_404_like_the_others() {
    let desk = desk().await;
    let supervisor = operator(&desk, "sue", "supervisor").await;
    for path in ["/console/records", "/console/audit"] {
        let page = post(&supervisor, &desk, path, &[]).await;
        assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    for path in [
        "/console/subjects/export",
        "/console/subjects/delete",
        "/console/audit/verify",
        "/console/records/rec_abcdefghijklmnopqrstuvwxyz/content",
    ] {
        let page = get(&supervisor, &desk, path).await;
        assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    let page = post(
        &supervisor,
        &desk,
        "/console/records/rec_abcdefghijklmnopqrstuvwxyz",
        &[],
    )
    .await;
    assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED);
    for path in [
        "/console/records/rec_abcdefghijklmnopqrstuvwxyz/export",
        "/console/subjects",
        "/console/audit/x",
    ] {
        let page = get(&supervisor, &desk, path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
    }
    // Not a record id, or no such record: 404, and only a real id is audited.
    let shapeless = get(&supervisor, &desk, "/console/records/4111111111111111").await;
    assert_eq!(shapeless.status, StatusCode::NOT_FOUND);
    assert!(desk.kit.events_of(&shapeless.request_id()).await.is_empty());
    let unknown = get(
        &supervisor,
        &desk,
        "/console/records/rec_abcdefghijklmnopqrstuvwxyz",
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    // Signed out: every new page sends the browser to the sign-in page.
    let anonymous = browser();
    for path in [
        "/console/records",
        "/console/audit",
        "/console/records/rec_abcdefghijklmnopqrstuvwxyz",
    ] {
        let page = get(&anonymous, &desk, path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location(), "/console/login");
    }
}
