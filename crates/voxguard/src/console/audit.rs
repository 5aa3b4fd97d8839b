//! The console's audit trail page and its "Verify now" button.
//!
//! This module owns which records one page shows: newest first, [`PAGE_ROWS`] at a time,
//! filtered by event kind, outcome and reason, found by scanning the trail from the page's
//! cursor (`before`: older records, `after`: newer ones) until the page is full, the trail ends
//! or [`SCAN_BOUND`] records were read, whichever comes first; the newer and older links carry
//! the cursor on. Each view is one `record_accessed` event (function `console_audit`) written
//! before anything is read. "Verify now" runs the sink's own verification of the whole chain —
//! the check `voxguard audit verify` runs — one at a time per process, and shows the verdict
//! only once the run is on record. It must not write markup (`pages` does) nor show more of an
//! event than the trail holds (callers are masked there, subjects pseudonymous).

use serde_json::json;
use voxguard_guard::records::Permission;
use voxguard_guard::{AuditEvent, AuditKind, AuditRecord, Outcome, VerifyReport};
use voxguard_server::{ConsoleReply, ConsoleRequest};

use super::pages::{self, AuditPage, AuditRow, Verdict, Who};
use super::{page, query, unavailable, Console};
use crate::records::{RecordsError, TrailReader};

/// Records shown per page.
pub(super) const PAGE_ROWS: usize = 50;

/// The most audit records one page view reads to fill a filtered page.
pub(super) const SCAN_BOUND: u64 = 5_000;

/// Records read per query while scanning.
const CHUNK: u64 = 1_000;

/// The longest reason accepted in the filter.
const MAX_REASON: usize = 64;

/// The filter of the audit page, validated.
#[derive(Default)]
struct Filter {
    kind: Option<AuditKind>,
    outcome: Option<Outcome>,
    reason: Option<String>,
}

impl Filter {
    fn matches(&self, event: &AuditEvent) -> bool {
        self.kind.is_none_or(|kind| event.kind == kind)
            && self
                .outcome
                .is_none_or(|outcome| event.outcome == Some(outcome))
            && self
                .reason
                .as_deref()
                .is_none_or(|reason| event.reason.as_deref() == Some(reason))
    }
}

/// Where a page starts.
#[derive(Clone, Copy)]
enum Cursor {
    /// The newest records.
    Newest,
    /// Records with a sequence number below this one, newest first.
    Before(u64),
    /// Records with a sequence number above this one (the page just newer).
    After(u64),
}

/// The filter and cursor of a request, or the sentence of its 400 page.
fn parse(request: &ConsoleRequest) -> Result<(Filter, Cursor), &'static str> {
    let text = |name: &str| query(request, name).filter(|value| !value.is_empty());
    let kind = match text("kind") {
        None => None,
        Some(name) => Some(AuditKind::parse(name).ok_or("Choose an event kind from the list.")?),
    };
    let outcome = match text("outcome") {
        None => None,
        Some(name) => Some(Outcome::parse(name).ok_or("Choose an outcome from the list.")?),
    };
    let reason = match text("reason") {
        None => None,
        Some(reason)
            if reason.len() <= MAX_REASON
                && reason
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            Some(reason.to_string())
        }
        Some(_) => {
            return Err(
                "A reason is at most 64 lowercase letters, digits and '_', e.g. token_invalid.",
            )
        }
    };
    // `before` names a record (1 or more); `after=0` is the page of the oldest records.
    let number = |name: &str, least: u64| -> Result<Option<u64>, &'static str> {
        text(name)
            .map(|value| {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n >= least)
                    .ok_or("The page link is not valid; open the audit trail again.")
            })
            .transpose()
    };
    let cursor = match (number("before", 1)?, number("after", 0)?) {
        (None, None) => Cursor::Newest,
        (Some(before), None) => Cursor::Before(before),
        (None, Some(after)) => Cursor::After(after),
        (Some(_), Some(_)) => {
            return Err("The page link is not valid; open the audit trail again.")
        }
    };
    Ok((
        Filter {
            kind,
            outcome,
            reason,
        },
        cursor,
    ))
}

/// One page of the scan: the matching records (newest first) and what was read.
struct Scan {
    rows: Vec<AuditRecord>,
    /// Lowest and highest sequence numbers read.
    read: Option<(u64, u64)>,
    /// The bound stopped the scan before the page was full or the trail ended.
    bounded: bool,
    /// Where the next older page starts (`before`), if there may be older records.
    older: Option<u64>,
    /// Where the next newer page starts (`after`), if there may be newer records.
    newer: Option<u64>,
}

fn widen(read: &mut Option<(u64, u64)>, seq: u64) {
    *read = Some(match *read {
        None => (seq, seq),
        Some((low, high)) => (low.min(seq), high.max(seq)),
    });
}

/// Scan down from `top` (inclusive).
async fn scan_older(
    reader: &TrailReader,
    filter: &Filter,
    mut top: u64,
) -> Result<Scan, RecordsError> {
    let mut rows = Vec::new();
    let mut read = None;
    let mut budget = SCAN_BOUND;
    let mut low = top.saturating_add(1);
    while top >= 1 && rows.len() < PAGE_ROWS && budget > 0 {
        let count = CHUNK.min(budget).min(top);
        low = top - count + 1;
        budget -= count;
        let page = reader.page(low, count as u32).await?;
        for record in page.into_iter().rev().filter(|r| r.seq <= top) {
            widen(&mut read, record.seq);
            if filter.matches(&record.event) {
                rows.push(record);
                if rows.len() == PAGE_ROWS {
                    break;
                }
            }
        }
        top = low - 1;
    }
    let full = rows.len() == PAGE_ROWS;
    let older = if full {
        rows.last().map(|r| r.seq).filter(|seq| *seq > 1)
    } else {
        (low > 1).then_some(low)
    };
    Ok(Scan {
        bounded: !full && low > 1 && budget == 0,
        rows,
        read,
        older,
        newer: None,
    })
}

/// Scan up from `after` (exclusive).
async fn scan_newer(
    reader: &TrailReader,
    filter: &Filter,
    after: u64,
) -> Result<Scan, RecordsError> {
    let mut rows = Vec::new();
    let mut read = None;
    let mut budget = SCAN_BOUND;
    let mut from = after.saturating_add(1);
    let mut ended = false;
    while rows.len() < PAGE_ROWS && budget > 0 {
        let count = CHUNK.min(budget);
        budget -= count;
        let page = reader.page(from, count as u32).await?;
        let short = (page.len() as u64) < count;
        for record in page {
            from = record.seq.saturating_add(1);
            widen(&mut read, record.seq);
            if filter.matches(&record.event) {
                rows.push(record);
                if rows.len() == PAGE_ROWS {
                    break;
                }
            }
        }
        if short {
            ended = true;
            break;
        }
    }
    let full = rows.len() == PAGE_ROWS;
    // From the newest view's side: the last record read (or `after`) is where newer ones start.
    let newer = (!ended || full).then(|| from.saturating_sub(1));
    let older = rows
        .first()
        .map(|r| r.seq)
        .unwrap_or(after.saturating_add(1));
    rows.reverse();
    Ok(Scan {
        bounded: !full && !ended && budget == 0,
        rows,
        read,
        older: (older > 1).then_some(older),
        newer,
    })
}

fn row(record: &AuditRecord) -> AuditRow {
    let event = &record.event;
    let who = match (&event.operator, &event.caller, &event.source) {
        (Some(operator), _, _) => match &event.role {
            Some(role) => format!("{operator} ({role})"),
            None => operator.clone(),
        },
        (None, Some(caller), _) => caller.clone(),
        (None, None, Some(source)) => source.clone(),
        (None, None, None) => String::new(),
    };
    let mut detail = Vec::new();
    if let Some(id) = &event.record {
        detail.push(format!("record {id}"));
    }
    if let Some(subject) = &event.subject {
        detail.push(format!("subject {subject}"));
    }
    if let Some(purpose) = &event.purpose {
        detail.push(format!("purpose “{purpose}”"));
    }
    AuditRow {
        seq: record.seq,
        time_ms: event.time_ms,
        kind: event.kind.as_str(),
        outcome: event.outcome.map_or("", |o| o.as_str()),
        reason: event.reason.clone().unwrap_or_default(),
        tool: event.function.clone().unwrap_or_default(),
        who,
        detail: detail.join("; "),
        hash: record.hash.clone(),
    }
}

/// The address of the audit page with the same filter and `cursor`.
fn link(filter: &Filter, cursor: (&str, u64)) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(kind) = filter.kind {
        query.append_pair("kind", kind.as_str());
    }
    if let Some(outcome) = filter.outcome {
        query.append_pair("outcome", outcome.as_str());
    }
    if let Some(reason) = &filter.reason {
        query.append_pair("reason", reason);
    }
    query.append_pair(cursor.0, &cursor.1.to_string());
    format!("/console/audit?{}", query.finish())
}

impl Console {
    /// `GET /console/audit`: one page of the trail.
    pub(super) async fn audit_trail(&self, request: &ConsoleRequest) -> ConsoleReply {
        let signed = match self.allowed(request, Permission::ReadAudit).await {
            Ok(signed) => signed,
            Err(reply) => return reply,
        };
        let who = self.who(&signed);
        let (filter, cursor) = match parse(request) {
            Ok(parsed) => parsed,
            Err(sentence) => {
                return page(
                    400,
                    pages::problem(
                        Some(&who),
                        "Not shown",
                        &format!("{sentence} Nothing was read."),
                    ),
                )
            }
        };
        let arguments = json!({
            "kind": filter.kind.map(|k| k.as_str()),
            "outcome": filter.outcome.map(|o| o.as_str()),
            "reason": filter.reason,
            "before": match cursor { Cursor::Before(n) => Some(n), _ => None },
            "after": match cursor { Cursor::After(n) => Some(n), _ => None },
        });
        let actor = self.actor(request, &signed.operator);
        let reader = match self
            .api
            .records
            .audit_reader(&actor, "console_audit", arguments)
            .await
        {
            Ok(Some(reader)) => reader,
            Ok(None) => return unreadable(&who),
            Err(error) => return trail_failure(error),
        };
        let scanned = match cursor {
            Cursor::Newest => match reader.end().await {
                Ok(end) => scan_older(&reader, &filter, end).await,
                Err(error) => Err(error),
            },
            Cursor::Before(before) => scan_older(&reader, &filter, before - 1).await,
            Cursor::After(after) => scan_newer(&reader, &filter, after).await,
        };
        let scan = match scanned {
            Ok(scan) => scan,
            Err(error) => return trail_failure(error),
        };
        let newer = match cursor {
            Cursor::Newest => None,
            Cursor::Before(before) => Some(before - 1),
            Cursor::After(_) => scan.newer,
        };
        let view = AuditPage {
            kind: filter.kind.map_or("", |k| k.as_str()),
            outcome: filter.outcome.map_or("", |o| o.as_str()),
            reason: filter.reason.as_deref().unwrap_or_default(),
            rows: scan.rows.iter().map(row).collect(),
            newer: newer.map(|after| link(&filter, ("after", after))),
            older: scan.older.map(|before| link(&filter, ("before", before))),
            scanned: scan.read,
            bounded: scan.bounded,
            bound: SCAN_BOUND,
        };
        page(200, pages::audit_trail(&who, &view))
    }

    /// `POST /console/audit/verify`: verify the whole chain and show the verdict.
    pub(super) async fn audit_verify(&self, request: &ConsoleRequest) -> ConsoleReply {
        let signed = match self.allowed(request, Permission::ReadAudit).await {
            Ok(signed) => signed,
            Err(reply) => return reply,
        };
        let who = self.who(&signed);
        // The whole trail is read: one run at a time in this process.
        let Ok(_running) = self.verifying.try_lock() else {
            let mut reply = page(
                429,
                pages::problem(
                    Some(&who),
                    "Already running",
                    "A verification of the audit trail is already running; wait for it to finish and try again.",
                ),
            );
            reply.headers.push(("retry-after", "5".into()));
            return reply;
        };
        let actor = self.actor(request, &signed.operator);
        let report = match self.api.records.verify_trail(&actor).await {
            Ok(Some(report)) => report,
            Ok(None) => return unreadable(&who),
            Err(error) => return trail_failure(error),
        };
        let verdict = match report {
            VerifyReport::Ok {
                records,
                last_seq,
                checkpoints_checked,
            } => Verdict::Intact {
                records,
                last_seq,
                checkpoints: checkpoints_checked,
            },
            VerifyReport::Broken { seq, problem } => Verdict::Broken {
                seq,
                problem: problem.as_str(),
                sentence: problem.to_string(),
            },
        };
        page(200, pages::verified(&who, &verdict))
    }
}

fn unreadable(who: &Who<'_>) -> ConsoleReply {
    page(
        404,
        pages::problem(
            Some(who),
            "Not readable here",
            "This runtime's audit trail cannot be read or verified from the console (no SQLite or PostgreSQL trail); use voxguard audit verify on its file.",
        ),
    )
}

fn trail_failure(error: RecordsError) -> ConsoleReply {
    if !matches!(error, RecordsError::AuditUnavailable) {
        tracing::error!(%error, "the audit trail could not be read");
    }
    unavailable()
}
