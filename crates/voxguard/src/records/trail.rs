//! Reading the audit trail back for operators: the records API's pages (`GET /records/audit`),
//! the security console's overview window, its paged audit view and its "verify now".
//!
//! This module owns how an operator's read of the trail is put on record before anything is
//! read (one `record_accessed` event per view, however many pages the view reads), how the end
//! of the trail and the start of a time window are found without reading the trail (binary
//! searches on sequence numbers, O(log n) one-record reads), and how a verification is run
//! (the sink's own check, the one `voxguard audit verify` runs) and recorded with its verdict.
//! It must not decide who may read the trail (the API and the console check roles) and must not
//! write anything but audit events.

use std::sync::Arc;

use serde_json::{json, Value};
use voxguard_guard::audit::{Checkpoint, VerifyReport};
use voxguard_guard::{AuditKind, AuditRecord, Outcome};
use voxguard_store::AuditSink;

use super::{Actor, Records, RecordsError};

/// A view of the audit trail an operator opened, already on record: read as many pages as the
/// view needs (each read is bounded by its caller).
pub(crate) struct TrailReader {
    sink: Arc<dyn AuditSink>,
}

impl TrailReader {
    /// Up to `limit` (at most 1,000) records from sequence number `from` on, in order.
    pub(crate) async fn page(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, RecordsError> {
        Ok(self.sink.read_page(from, limit).await?.unwrap_or_default())
    }

    /// The newest sequence number (`None` for an empty trail), found in O(log n) one-record
    /// reads.
    pub(crate) async fn end(&self) -> Result<Option<u64>, RecordsError> {
        trail_end(&self.sink).await
    }
}

/// The time of record `seq`, if it exists.
async fn time_at(sink: &Arc<dyn AuditSink>, seq: u64) -> Result<Option<u64>, RecordsError> {
    Ok(sink
        .read_page(seq, 1)
        .await?
        .and_then(|page| page.into_iter().next())
        .map(|record| record.event.time_ms))
}

/// The newest sequence number of the trail (`None` when empty): the first power of two past
/// the end, then a binary search below it (sequence numbers have no gaps in an intact trail;
/// in a damaged one this finds some record near the end).
async fn trail_end(sink: &Arc<dyn AuditSink>) -> Result<Option<u64>, RecordsError> {
    if time_at(sink, 1).await?.is_none() {
        return Ok(None);
    }
    let mut high = 2u64;
    while time_at(sink, high).await?.is_some() {
        if high == u64::MAX {
            return Ok(Some(high));
        }
        high = high.saturating_mul(2);
    }
    // `low` exists, `high` does not.
    let mut low = high / 2;
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if time_at(sink, mid).await?.is_some() {
            low = mid;
        } else {
            high = mid;
        }
    }
    Ok(Some(low))
}

impl Records {
    fn sink(&self) -> Option<Arc<dyn AuditSink>> {
        self.inner.auditor.sink().cloned()
    }

    /// Up to `limit` audit records from sequence number `from` (the auditor's view of the
    /// trail), itself audited as `record_accessed` with function `audit_trail`. `Ok(None)` when
    /// the trail cannot be read back (no sink, or a JSON-lines file).
    pub async fn audit_page(
        &self,
        actor: &Actor,
        from: u64,
        limit: u32,
    ) -> Result<Option<Vec<AuditRecord>>, RecordsError> {
        let mut event = self.event(AuditKind::RecordAccessed, Outcome::Ok, actor);
        event.function = Some("audit_trail".into());
        event.arguments = Some(json!({ "from": from, "limit": limit }));
        self.write(event).await?;
        let Some(sink) = self.inner.auditor.sink() else {
            return Ok(None);
        };
        Ok(sink.read_page(from, limit).await?)
    }

    /// The audit records written at or after `since_ms` (unix milliseconds), at most `cap` of
    /// them (the oldest first), for the security console's overview; itself audited as
    /// `record_accessed` with function `console_overview`. The first such record is found by
    /// a binary search on the sequence numbers (O(log n) small reads), not by reading the trail.
    /// `Ok(None)` when the trail cannot be read back (no sink, or a JSON-lines file).
    pub(crate) async fn audit_since(
        &self,
        actor: &Actor,
        since_ms: u64,
        cap: u32,
    ) -> Result<Option<Vec<AuditRecord>>, RecordsError> {
        let mut event = self.event(AuditKind::RecordAccessed, Outcome::Ok, actor);
        event.function = Some("console_overview".into());
        event.arguments = Some(json!({ "since_ms": since_ms }));
        self.write(event).await?;
        let Some(sink) = self.inner.auditor.sink() else {
            return Ok(None);
        };
        if sink.read_page(1, 1).await?.is_none() {
            return Ok(None);
        }
        // The end of the trail: the first power of two past it.
        let mut high = 1u64;
        while time_at(sink, high).await?.is_some() {
            high = high.saturating_mul(2);
        }
        // The first sequence number whose time is at or after `since_ms` (times grow with seq).
        let mut low = 1u64;
        while low < high {
            let mid = low + (high - low) / 2;
            match time_at(sink, mid).await? {
                Some(time) if time < since_ms => low = mid + 1,
                _ => high = mid,
            }
        }
        let mut out = Vec::new();
        let mut from = low;
        while (out.len() as u32) < cap {
            let want = (cap - out.len() as u32).min(1000);
            let Some(page) = sink.read_page(from, want).await? else {
                break;
            };
            let Some(last) = page.last() else {
                break;
            };
            from = last.seq + 1;
            let short = (page.len() as u32) < want;
            out.extend(page);
            if short {
                break;
            }
        }
        Ok(Some(out))
    }

    /// Open a view of the audit trail for the security console's audit page: audited first as
    /// one `record_accessed` event (function `console_audit`, `arguments` saying which page and
    /// filter), then readable page by page. `Ok(None)` when the trail cannot be read back (no
    /// sink, or a JSON-lines file).
    pub(crate) async fn audit_reader(
        &self,
        actor: &Actor,
        arguments: Value,
    ) -> Result<Option<TrailReader>, RecordsError> {
        let mut event = self.event(AuditKind::RecordAccessed, Outcome::Ok, actor);
        event.function = Some("console_audit".into());
        event.arguments = Some(arguments);
        self.write(event).await?;
        let Some(sink) = self.sink() else {
            return Ok(None);
        };
        if sink.read_page(1, 1).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(TrailReader { sink }))
    }

    /// Verify the whole stored chain with the sink's own check — the one `voxguard audit
    /// verify` runs on the same storage, checkpoints included when the runtime has the audit
    /// key — and put the run and its verdict on record: a `console_session` event with function
    /// `console_audit_verify`, outcome `ok` (intact) or `failed` (broken, with the sequence
    /// number and problem). The verdict is returned only once it is on record. `Ok(None)` when
    /// the sink cannot be verified here (none, or a JSON-lines file).
    pub(crate) async fn verify_trail(
        &self,
        actor: &Actor,
    ) -> Result<Option<VerifyReport>, RecordsError> {
        let Some(sink) = self.sink() else {
            return Ok(None);
        };
        let Some(report) = sink.verify_stored(1).await? else {
            return Ok(None);
        };
        let (outcome, arguments) = match &report {
            VerifyReport::Ok {
                records,
                last_seq,
                checkpoints_checked,
            } => (
                Outcome::Ok,
                json!({
                    "records": records,
                    "last_seq": last_seq,
                    "checkpoints_checked": checkpoints_checked,
                }),
            ),
            VerifyReport::Broken { seq, problem } => (
                Outcome::Failed,
                json!({ "broken_at": seq, "problem": problem.as_str() }),
            ),
        };
        let mut event = self.console_event(actor, outcome, "console_audit_verify");
        if outcome == Outcome::Failed {
            event.reason = Some("audit_chain_broken".into());
        }
        event.arguments = Some(arguments);
        self.write(event).await?;
        Ok(Some(report))
    }

    /// The newest signed checkpoint of the trail and whether its signature is valid under the
    /// runtime's audit key, for the overview (whose view is already on record). `Ok(None)`
    /// when there is none or the trail cannot be read back.
    pub(crate) async fn last_checkpoint(&self) -> Result<Option<(Checkpoint, bool)>, RecordsError> {
        match self.sink() {
            Some(sink) => Ok(sink.last_checkpoint().await?),
            None => Ok(None),
        }
    }
}
