//! What the security console's live page reads of the audit trail: the trail itself, handed
//! over once the read is on record, and where the trail ends.
//!
//! One `record_accessed` event is written per page view or per stream opened, never one per
//! poll of a stream: the reads a stream makes afterwards are covered by the event of its
//! opening (issue 16 lets the live page aggregate its audit reads). This module must not
//! filter or shape events for display (the console does) and writes nothing but that event.

use std::sync::Arc;

use serde_json::Value;
use voxguard_guard::{AuditKind, Outcome};
use voxguard_store::AuditSink;

use super::{Actor, Records, RecordsError};

impl Records {
    /// The audit trail for the console's live page, once a `record_accessed` event with
    /// `function` and `arguments` is on record for `actor`. `Ok(None)` when the trail cannot be
    /// read back (no sink, or a JSON-lines file).
    pub(crate) async fn live_trail(
        &self,
        actor: &Actor,
        function: &str,
        arguments: Value,
    ) -> Result<Option<Arc<dyn AuditSink>>, RecordsError> {
        let mut event = self.event(AuditKind::RecordAccessed, Outcome::Ok, actor);
        event.function = Some(function.to_string());
        event.arguments = Some(arguments);
        self.write(event).await?;
        let Some(sink) = self.inner.auditor.sink() else {
            return Ok(None);
        };
        if sink.read_page(1, 1).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(sink.clone()))
    }
}

/// The sequence number of the last record of `sink` (0 when it is empty), found with
/// O(log n) one-record reads (sequence numbers have no gaps).
pub(crate) async fn trail_end(sink: &dyn AuditSink) -> Result<u64, RecordsError> {
    let exists = |seq: u64| async move {
        Ok::<_, RecordsError>(
            sink.read_page(seq, 1)
                .await?
                .is_some_and(|page| page.first().is_some_and(|r| r.seq == seq)),
        )
    };
    if !exists(1).await? {
        return Ok(0);
    }
    // `low` exists, `high` does not.
    let mut low = 1u64;
    let mut high = 2u64;
    while exists(high).await? {
        low = high;
        high = high.saturating_mul(2);
        if high == u64::MAX {
            break;
        }
    }
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if exists(mid).await? {
            low = mid;
        } else {
            high = mid;
        }
    }
    Ok(low)
}
