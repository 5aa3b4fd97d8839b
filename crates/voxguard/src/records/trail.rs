//! Reading the audit trail back for operators: the records API's pages (`GET /records/audit`),
//! the security console's overview window, its paged audit view, its live security events and
//! its "verify now".
//!
//! This module owns how an operator's read of the trail is put on record before anything is
//! read (one `record_accessed` event per view or per live stream opened, however many pages it
//! reads afterwards, never one per poll), how the end of the trail and the start of a time
//! window are found without reading the trail (binary searches on sequence numbers, O(log n)
//! one-record reads), how a range is read in bounded pages, and how a verification is run (the
//! sink's own check, the one `voxguard audit verify` runs) and recorded with its verdict. It
//! must not decide who may read the trail (the API and the console check roles), must not
//! filter or shape events for display (the console does) and must not write anything but
//! audit events.

use std::sync::Arc;

use serde_json::{json, Value};
use voxguard_guard::audit::{Checkpoint, VerifyReport};
use voxguard_guard::{AuditKind, AuditRecord, Outcome};
use voxguard_store::AuditSink;

use super::{Actor, Records, RecordsError};

/// The most records one read of the trail asks for (what the sinks serve at once).
const PAGE_MAX: u64 = 1_000;

/// A view of the audit trail an operator opened, already on record: read as many pages as the
/// view needs (each read is bounded by its caller). A live stream keeps its reader for as long
/// as it is open.
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

    /// Up to `count` records from sequence number `from` on, in order, read [`PAGE_MAX`] at a
    /// time until `count` or the end of the trail is reached.
    pub(crate) async fn read(
        &self,
        mut from: u64,
        count: u64,
    ) -> Result<Vec<AuditRecord>, RecordsError> {
        let mut out = Vec::new();
        while (out.len() as u64) < count {
            let want = (count - out.len() as u64).min(PAGE_MAX) as u32;
            let page = self.page(from, want).await?;
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
        Ok(out)
    }

    /// The newest sequence number (0 for an empty trail), found in O(log n) one-record reads:
    /// the first power of two past the end, then a binary search below it.
    pub(crate) async fn end(&self) -> Result<u64, RecordsError> {
        let mut high = self.past_end().await?;
        // A record at or after `low`, none at or after `high`.
        let mut low = high / 2;
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if self.time_from(mid).await?.is_some() {
                low = mid;
            } else {
                high = mid;
            }
        }
        Ok(low)
    }

    /// The first sequence number whose record was written at or after `since_ms` (unix
    /// milliseconds; times grow with sequence numbers), or one past the end when none was,
    /// found in O(log n) one-record reads.
    async fn first_since(&self, since_ms: u64) -> Result<u64, RecordsError> {
        let mut high = self.past_end().await?;
        let mut low = 1u64;
        while low < high {
            let mid = low + (high - low) / 2;
            match self.time_from(mid).await? {
                Some(time) if time < since_ms => low = mid + 1,
                _ => high = mid,
            }
        }
        Ok(low)
    }

    /// The first power of two with no record at or after it (1 for an empty trail).
    async fn past_end(&self) -> Result<u64, RecordsError> {
        let mut high = 1u64;
        while high < u64::MAX && self.time_from(high).await?.is_some() {
            high = high.saturating_mul(2);
        }
        Ok(high)
    }

    /// The time of the first record at or after sequence number `seq`, if there is one (asking
    /// for the first record at or after a number, not for that record, keeps the searches
    /// exact where records are missing).
    async fn time_from(&self, seq: u64) -> Result<Option<u64>, RecordsError> {
        Ok(self
            .page(seq, 1)
            .await?
            .into_iter()
            .next()
            .map(|record| record.event.time_ms))
    }
}

impl Records {
    fn sink(&self) -> Option<Arc<dyn AuditSink>> {
        self.inner.auditor.sink().cloned()
    }

    /// Open a view of the audit trail: audited first as one `record_accessed` event with
    /// `function` (`console_audit`, `console_live`, …) and `arguments` (which page, filter or
    /// resumption point), then readable page by page. `Ok(None)` when the trail cannot be read
    /// back (no sink, or a JSON-lines file).
    pub(crate) async fn audit_reader(
        &self,
        actor: &Actor,
        function: &str,
        arguments: Value,
    ) -> Result<Option<TrailReader>, RecordsError> {
        let mut event = self.event(AuditKind::RecordAccessed, Outcome::Ok, actor);
        event.function = Some(function.to_string());
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

    /// Up to `limit` audit records from sequence number `from` (the auditor's view of the
    /// trail), itself audited as `record_accessed` with function `audit_trail`. `Ok(None)` when
    /// the trail cannot be read back (no sink, or a JSON-lines file).
    pub async fn audit_page(
        &self,
        actor: &Actor,
        from: u64,
        limit: u32,
    ) -> Result<Option<Vec<AuditRecord>>, RecordsError> {
        let arguments = json!({ "from": from, "limit": limit });
        match self.audit_reader(actor, "audit_trail", arguments).await? {
            Some(reader) => Ok(Some(reader.page(from, limit).await?)),
            None => Ok(None),
        }
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
        let arguments = json!({ "since_ms": since_ms });
        let Some(reader) = self
            .audit_reader(actor, "console_overview", arguments)
            .await?
        else {
            return Ok(None);
        };
        let first = reader.first_since(since_ms).await?;
        Ok(Some(reader.read(first, u64::from(cap)).await?))
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
