//! Checking a stored audit log: [`verify`] and its incremental form [`Verifier`], with the
//! verdict ([`VerifyReport`]) and what is wrong at the first bad record ([`ChainProblem`]).
//!
//! Owns the rules that tell a modified record from a missing, reordered or truncated one, and
//! how signed checkpoints are matched. It must not do I/O (sinks read the records and hand them
//! over in storage order) and must not define what is hashed or signed: that is
//! [`chain_hash`] and [`Checkpoint`] in the parent module.

use std::collections::BTreeMap;
use std::fmt;

use super::{chain_hash, AuditRecord, Checkpoint, GENESIS_HASH};
use crate::key::SecretKey;

/// What is wrong at the first bad sequence number. [`ChainProblem::as_str`] is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChainProblem {
    /// The record's content does not match its hash, or it cannot be read.
    #[error("the record was modified: its content does not match its hash")]
    Modified,
    /// The sequence has a gap: this record is absent.
    #[error("the record is missing: the sequence has a gap")]
    Missing,
    /// The sequence goes backwards, or the record links to another predecessor than the
    /// record before it (a record was moved, or its predecessor was rewritten and re-hashed).
    #[error(
        "records are out of order: the sequence goes backwards or the record links to a different predecessor"
    )]
    Reordered,
    /// A valid signed checkpoint attests records beyond the end of the log.
    #[error(
        "the log was truncated: records covered by signed checkpoint {checkpoint_seq} are missing"
    )]
    TruncatedAfterCheckpoint {
        /// The highest validly signed checkpoint beyond the end of the log.
        checkpoint_seq: u64,
    },
    /// A checkpoint's MAC is wrong: it was forged, altered or signed with another key.
    #[error(
        "a checkpoint's signature is invalid: it was forged, altered or signed with another key"
    )]
    CheckpointForged,
    /// The record's hash differs from the one a validly signed checkpoint attests.
    #[error("the record differs from what its signed checkpoint attests: the log was rewritten")]
    CheckpointMismatch,
}

impl ChainProblem {
    /// Stable machine-readable name: `modified`, `missing`, `reordered`, `truncated`,
    /// `checkpoint_forged` or `checkpoint_mismatch`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChainProblem::Modified => "modified",
            ChainProblem::Missing => "missing",
            ChainProblem::Reordered => "reordered",
            ChainProblem::TruncatedAfterCheckpoint { .. } => "truncated",
            ChainProblem::CheckpointForged => "checkpoint_forged",
            ChainProblem::CheckpointMismatch => "checkpoint_mismatch",
        }
    }
}

/// The verdict on a stored log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyReport {
    /// Every record from the starting point on links and hashes correctly, and every signed
    /// checkpoint in range matches.
    Ok {
        /// How many records were verified.
        records: u64,
        /// The last verified sequence number (`None` when no record was in range).
        last_seq: Option<u64>,
        /// How many checkpoints were authenticated and matched.
        checkpoints_checked: u64,
    },
    /// The first bad sequence number and what is wrong there.
    Broken {
        /// The first sequence number that could not be verified.
        seq: u64,
        /// What is wrong.
        problem: ChainProblem,
    },
}

impl VerifyReport {
    /// Whether the log verified.
    pub fn is_ok(&self) -> bool {
        matches!(self, VerifyReport::Ok { .. })
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyReport::Ok {
                records,
                last_seq,
                checkpoints_checked,
            } => {
                write!(f, "OK: {records} records verified")?;
                if let Some(last) = last_seq {
                    write!(f, " (last sequence number {last})")?;
                }
                write!(f, ", {checkpoints_checked} signed checkpoints checked")
            }
            VerifyReport::Broken { seq, problem } => {
                write!(
                    f,
                    "BROKEN at sequence number {seq} ({}): {problem}",
                    problem.as_str()
                )
            }
        }
    }
}

/// Verifier state.
#[derive(Debug, Clone)]
enum State {
    /// Records so far are fine.
    Checking,
    /// `missing` was skipped; looking for it further on to tell a reorder from a gap.
    Gap { missing: u64 },
    /// Settled.
    Broken { seq: u64, problem: ChainProblem },
}

/// Incremental form of [`verify`], for logs read in pages: [`push`](Verifier::push) records in
/// storage order until [`is_settled`](Verifier::is_settled), then [`finish`](Verifier::finish).
#[derive(Debug)]
pub struct Verifier<'k> {
    key: Option<&'k SecretKey>,
    /// Checkpoints at or after `from` still to be matched against a record.
    checkpoints: BTreeMap<u64, Vec<Checkpoint>>,
    from: u64,
    expected: u64,
    /// The `prev_hash` the next record must carry; `None` trusts it (start of a partial check).
    prev: Option<String>,
    prev_from_checkpoint: bool,
    records: u64,
    last_seq: Option<u64>,
    checkpoints_checked: u64,
    state: State,
}

impl<'k> Verifier<'k> {
    /// Start verifying at sequence number `from` (0 and 1 both mean "from the beginning").
    ///
    /// From the beginning, record 1 must link to [`GENESIS_HASH`]. From a later `from`, the
    /// first record's `prev_hash` is trusted as the anchor, unless a checkpoint exists at
    /// `from - 1`, which it must then match. Checkpoints are only used when `key` is given
    /// (without the key they cannot be authenticated); those before `from - 1` are ignored.
    pub fn new(checkpoints: &[Checkpoint], key: Option<&'k SecretKey>, from: u64) -> Self {
        let from = from.max(1);
        let mut verifier = Self {
            key,
            checkpoints: BTreeMap::new(),
            from,
            expected: from,
            prev: (from == 1).then(|| GENESIS_HASH.to_owned()),
            prev_from_checkpoint: false,
            records: 0,
            last_seq: None,
            checkpoints_checked: 0,
            state: State::Checking,
        };
        let Some(key) = key else {
            return verifier;
        };
        for checkpoint in checkpoints {
            if checkpoint.seq.saturating_add(1) >= from {
                verifier
                    .checkpoints
                    .entry(checkpoint.seq)
                    .or_default()
                    .push(checkpoint.clone());
            }
        }
        if from > 1 {
            if let Some(anchors) = verifier.checkpoints.remove(&(from - 1)) {
                for anchor in anchors {
                    if !anchor.verify(key) {
                        verifier.settle(from - 1, ChainProblem::CheckpointForged);
                        return verifier;
                    }
                    match &verifier.prev {
                        Some(prev) if *prev != anchor.hash => {
                            verifier.settle(from - 1, ChainProblem::CheckpointMismatch);
                            return verifier;
                        }
                        _ => {}
                    }
                    verifier.checkpoints_checked += 1;
                    verifier.prev = Some(anchor.hash);
                    verifier.prev_from_checkpoint = true;
                }
            }
        }
        verifier
    }

    /// Whether the verdict is settled (a problem was found): further records change nothing.
    pub fn is_settled(&self) -> bool {
        matches!(self.state, State::Broken { .. })
    }

    /// Check the next record in storage order.
    pub fn push(&mut self, record: &AuditRecord) {
        match self.state {
            State::Broken { .. } => return,
            State::Gap { missing } => {
                if record.seq == missing {
                    self.settle(missing, ChainProblem::Reordered);
                }
                return;
            }
            State::Checking => {}
        }
        if record.seq < self.from && self.records == 0 {
            // Before the range being verified.
            return;
        }
        let hash_ok = chain_hash(&record.prev_hash, record.seq, &record.event) == record.hash;
        let expected = self.expected;
        if record.seq > expected {
            if hash_ok {
                self.state = State::Gap { missing: expected };
            } else {
                self.settle(expected, ChainProblem::Modified);
            }
            return;
        }
        if record.seq < expected {
            self.settle(record.seq, ChainProblem::Reordered);
            return;
        }
        if !hash_ok {
            self.settle(expected, ChainProblem::Modified);
            return;
        }
        if let Some(prev) = &self.prev {
            if *prev != record.prev_hash {
                let problem = if self.prev_from_checkpoint {
                    ChainProblem::CheckpointMismatch
                } else {
                    ChainProblem::Reordered
                };
                self.settle(expected, problem);
                return;
            }
        }
        if let (Some(key), Some(checkpoints)) = (self.key, self.checkpoints.remove(&expected)) {
            for checkpoint in checkpoints {
                if !checkpoint.verify(key) {
                    self.settle(expected, ChainProblem::CheckpointForged);
                    return;
                }
                if checkpoint.hash != record.hash {
                    self.settle(expected, ChainProblem::CheckpointMismatch);
                    return;
                }
                self.checkpoints_checked += 1;
            }
        }
        self.prev = Some(record.hash.clone());
        self.prev_from_checkpoint = false;
        self.records += 1;
        self.last_seq = Some(expected);
        self.expected = expected.saturating_add(1);
    }

    /// The next record in storage order exists but cannot be decoded (not valid JSON, not in
    /// canonical form, or inconsistent with its storage): it counts as modified at the next
    /// expected sequence number. `seq_hint` is where storage says the record sits, if known;
    /// before the first record in range, an unreadable record that is (or may be) before
    /// `from` is skipped, since it may lie outside the range being verified.
    pub fn push_unreadable(&mut self, seq_hint: Option<u64>) {
        if !matches!(self.state, State::Checking) {
            return;
        }
        if self.records == 0 && seq_hint.map_or(self.from > 1, |seq| seq < self.from) {
            return;
        }
        self.settle(self.expected, ChainProblem::Modified);
    }

    /// The verdict, once every record was pushed (or the verdict settled).
    pub fn finish(self) -> VerifyReport {
        match self.state {
            State::Broken { seq, problem } => VerifyReport::Broken { seq, problem },
            State::Gap { missing } => VerifyReport::Broken {
                seq: missing,
                problem: ChainProblem::Missing,
            },
            State::Checking => {
                // Checkpoints left over attest records beyond the end of the log.
                let mut highest_valid = None;
                let mut first_forged = None;
                for (seq, checkpoints) in &self.checkpoints {
                    for checkpoint in checkpoints {
                        let valid = self.key.is_some_and(|key| checkpoint.verify(key));
                        if valid {
                            highest_valid = Some(*seq);
                        } else if first_forged.is_none() {
                            first_forged = Some(*seq);
                        }
                    }
                }
                match (highest_valid, first_forged) {
                    (Some(checkpoint_seq), _) => VerifyReport::Broken {
                        seq: self.expected,
                        problem: ChainProblem::TruncatedAfterCheckpoint { checkpoint_seq },
                    },
                    (None, Some(seq)) => VerifyReport::Broken {
                        seq,
                        problem: ChainProblem::CheckpointForged,
                    },
                    (None, None) => VerifyReport::Ok {
                        records: self.records,
                        last_seq: self.last_seq,
                        checkpoints_checked: self.checkpoints_checked,
                    },
                }
            }
        }
    }

    fn settle(&mut self, seq: u64, problem: ChainProblem) {
        self.state = State::Broken { seq, problem };
    }
}

/// Verify `records` (in storage order) and `checkpoints`, starting at sequence number `from`.
///
/// Reports the first sequence number that cannot be verified and why; see [`Verifier::new`]
/// for how `from` and checkpoints are used. Records before `from` are skipped.
///
/// ```
/// use voxguard_guard::audit::{
///     verify, AuditEvent, AuditKind, Chain, ChainProblem, Checkpoint, Outcome, VerifyReport,
/// };
/// use voxguard_guard::SecretKey;
///
/// let key = SecretKey::generate();
/// let mut chain = Chain::genesis();
/// let mut records: Vec<_> =
///     (0..5).map(|i| chain.append(AuditEvent::new(AuditKind::ToolCalled, i))).collect();
/// let checkpoint = Checkpoint::sign(&key, 5, &records[4].hash, 5);
/// assert!(verify(records.clone(), &[checkpoint.clone()], Some(&key), 0).is_ok());
///
/// records[2].event.outcome = Some(Outcome::Ok);
/// assert_eq!(
///     verify(records, &[checkpoint], Some(&key), 0),
///     VerifyReport::Broken { seq: 3, problem: ChainProblem::Modified }
/// );
/// ```
pub fn verify(
    records: impl IntoIterator<Item = AuditRecord>,
    checkpoints: &[Checkpoint],
    key: Option<&SecretKey>,
    from: u64,
) -> VerifyReport {
    let mut verifier = Verifier::new(checkpoints, key, from);
    for record in records {
        verifier.push(&record);
        if verifier.is_settled() {
            break;
        }
    }
    verifier.finish()
}
