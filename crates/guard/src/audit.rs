//! Tamper-evident audit records: the event model, the hash chain, signed checkpoints and the
//! verifier.
//!
//! This module owns invariant 8 of the design on the pure side: what an [`AuditEvent`] holds, the
//! canonical bytes that are hashed ([`canonical_event`]), how records are chained
//! (`hash = SHA-256(prev_hash ‖ canonical_event(seq, event))`, see [`chain_hash`] and [`Chain`]),
//! how an [`AuditKey`] signs periodic [`Checkpoint`]s so that truncating the tail is detectable,
//! and how a stored log is checked ([`verify`], [`Verifier`]): the first bad sequence number and
//! why ([`ChainProblem`]). It must not do I/O — no files, no databases, no clock reads, no
//! environment — that is the job of the sinks in `voxguard-store` and of the CLI. It must not
//! redact or mask anything either: callers hand it events whose caller number is already masked
//! and whose arguments are already redacted. Keys are zeroized on drop and never printed.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use rand::rngs::OsRng;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::token::MIN_KEY_LEN;

/// The `prev_hash` of the first record (sequence number 1): 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain tag of the checkpoint MAC, so a checkpoint MAC can never be replayed as anything else.
const CHECKPOINT_DOMAIN: &str = "voxguard-audit-checkpoint-v1";

type HmacSha256 = Hmac<Sha256>;

/// One security-relevant thing that happened, as a caller records it.
///
/// `kind` names what happened, e.g. `auth_failed`, `token_refused`, `tool_called`,
/// `policy_refused`, `verification_succeeded`, `verification_failed`, `lockout`,
/// `rate_limited`, `emergency_toggled`, `transfer_blocked`, `payment`, `record_accessed`,
/// `record_deleted`, `config_changed`. Every other field is optional.
///
/// The audit trail stores what it is given: `caller` must **already be masked** (e.g.
/// `"***4567"`, last four digits only) and `arguments` must **already be redacted** before the
/// event is recorded. An `arguments` of `Some(Value::Null)` is treated as absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// What happened (a short snake_case name, see above).
    pub kind: String,
    /// When it happened, in milliseconds since the unix epoch.
    pub time_ms: u64,
    /// The agent (route) that handled the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The HTTP request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The platform's call id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The caller's number, already masked by the caller to its last four digits (`"***4567"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// The SWAIG function involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The function's arguments, already redacted by the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// The outcome, e.g. `ok`, `refused`, `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// A stable reason for a refusal or failure, e.g. `token_expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The source address of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl AuditEvent {
    /// An event of `kind` at `time_ms` with every optional field empty.
    pub fn new(kind: impl Into<String>, time_ms: u64) -> Self {
        Self {
            kind: kind.into(),
            time_ms,
            agent: None,
            request_id: None,
            call_id: None,
            caller: None,
            function: None,
            arguments: None,
            outcome: None,
            reason: None,
            source: None,
        }
    }

    /// The same event with `arguments: Some(Value::Null)` made `None`, so that what is stored
    /// reads back identically.
    fn normalized(mut self) -> Self {
        if matches!(self.arguments, Some(Value::Null)) {
            self.arguments = None;
        }
        self
    }
}

/// A stored event: its place in the chain and the hashes that link it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Sequence number, starting at 1, without gaps.
    pub seq: u64,
    /// The event.
    pub event: AuditEvent,
    /// The previous record's `hash` (lowercase hex); [`GENESIS_HASH`] for sequence number 1.
    pub prev_hash: String,
    /// `chain_hash(prev_hash, seq, event)` (lowercase hex).
    pub hash: String,
}

impl AuditRecord {
    /// The record as one line of canonical JSON (sorted keys, no whitespace, no newline):
    /// `{"event":{…},"hash":"…","prev_hash":"…","seq":N}`.
    pub fn to_json_line(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("{\"event\":");
        write_event(&mut out, None, &self.event);
        out.push_str(",\"hash\":");
        write_json_str(&mut out, &self.hash);
        out.push_str(",\"prev_hash\":");
        write_json_str(&mut out, &self.prev_hash);
        let _ = write!(out, ",\"seq\":{}}}", self.seq);
        out
    }

    /// Parse a line written by [`AuditRecord::to_json_line`] (without its newline).
    ///
    /// # Errors
    ///
    /// A JSON error when the line is not valid JSON, lacks a field, has an unknown one, or is
    /// not byte-for-byte in canonical form (so that no edit of the line goes unnoticed).
    pub fn from_json_line(line: &str) -> Result<Self, serde_json::Error> {
        let record: Self = serde_json::from_str(line)?;
        if record.to_json_line() != line {
            return Err(not_canonical());
        }
        Ok(record)
    }
}

/// A signed statement "record `seq` has hash `hash`", made at `time_ms`.
///
/// Checkpoints are written every so many records; a verifier holding the key then notices when
/// records up to a checkpoint are missing (the tail was cut off) or were rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The sequence number of the record this checkpoint attests.
    pub seq: u64,
    /// That record's hash (lowercase hex).
    pub hash: String,
    /// When the checkpoint was signed, in milliseconds since the unix epoch.
    pub time_ms: u64,
    /// HMAC-SHA256 (lowercase hex) over `["voxguard-audit-checkpoint-v1",seq,hash,time_ms]`
    /// encoded as canonical JSON.
    pub mac: String,
}

impl Checkpoint {
    /// The checkpoint as one line of canonical JSON (sorted keys, no whitespace, no newline).
    pub fn to_json_line(&self) -> String {
        let mut out = String::with_capacity(192);
        out.push_str("{\"hash\":");
        write_json_str(&mut out, &self.hash);
        out.push_str(",\"mac\":");
        write_json_str(&mut out, &self.mac);
        let _ = write!(out, ",\"seq\":{},\"time_ms\":{}}}", self.seq, self.time_ms);
        out
    }

    /// Parse a line written by [`Checkpoint::to_json_line`] (without its newline).
    ///
    /// # Errors
    ///
    /// A JSON error when the line is not valid JSON, lacks a field, has an unknown one, or is
    /// not byte-for-byte in canonical form.
    pub fn from_json_line(line: &str) -> Result<Self, serde_json::Error> {
        let checkpoint: Self = serde_json::from_str(line)?;
        if checkpoint.to_json_line() != line {
            return Err(not_canonical());
        }
        Ok(checkpoint)
    }
}

/// The canonical bytes of `event` at sequence number `seq`: a JSON object with the event's
/// fields plus `"seq"`, keys sorted bytewise, no whitespace, absent fields (and null
/// `arguments`) omitted, nested objects in `arguments` sorted too. The same event always yields
/// the same bytes, whatever `serde_json` features the build enables.
pub fn canonical_event(seq: u64, event: &AuditEvent) -> Vec<u8> {
    canonical_event_string(seq, event).into_bytes()
}

/// [`canonical_event`] as text (it is always valid UTF-8).
pub fn canonical_event_string(seq: u64, event: &AuditEvent) -> String {
    let mut out = String::with_capacity(192);
    write_event(&mut out, Some(seq), event);
    out
}

/// Parse text produced by [`canonical_event_string`] back into its sequence number and event.
///
/// # Errors
///
/// A JSON error when the text is not valid JSON, is not an object, lacks `seq`, `kind` or
/// `time_ms`, has an unknown field, or is not byte-for-byte in canonical form.
pub fn parse_canonical_event(text: &str) -> Result<(u64, AuditEvent), serde_json::Error> {
    let mut object: serde_json::Map<String, Value> = serde_json::from_str(text)?;
    let seq = object
        .remove("seq")
        .and_then(|seq| seq.as_u64())
        .ok_or_else(|| <serde_json::Error as serde::de::Error>::missing_field("seq"))?;
    let event: AuditEvent = serde_json::from_value(Value::Object(object))?;
    if canonical_event_string(seq, &event) != text {
        return Err(not_canonical());
    }
    Ok((seq, event))
}

/// Canonical JSON for any value: object keys sorted bytewise at every level, no whitespace,
/// strings escaped minimally (quote, backslash and control characters only).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// The hash of the record at `seq` holding `event` after a record whose hash is `prev_hash`:
/// lowercase hex of SHA-256 over the ASCII bytes of `prev_hash` (as stored, 64 hex characters)
/// followed by [`canonical_event`]`(seq, event)`.
///
/// This can be recomputed with standard tools: `printf '%s%s' "$prev_hash" "$event" | sha256sum`.
pub fn chain_hash(prev_hash: &str, seq: u64, event: &AuditEvent) -> String {
    let digest = Sha256::new()
        .chain_update(prev_hash.as_bytes())
        .chain_update(canonical_event_string(seq, event).as_bytes())
        .finalize();
    to_hex(&digest)
}

fn not_canonical() -> serde_json::Error {
    <serde_json::Error as serde::de::Error>::custom("audit data is not in canonical form")
}

/// One field of an event, borrowed for encoding.
enum Field<'a> {
    Str(&'a str),
    Num(u64),
    Json(&'a Value),
}

fn write_event(out: &mut String, seq: Option<u64>, event: &AuditEvent) {
    let mut fields: Vec<(&'static str, Field<'_>)> = Vec::with_capacity(12);
    let optional = [
        ("agent", &event.agent),
        ("call_id", &event.call_id),
        ("caller", &event.caller),
        ("function", &event.function),
        ("outcome", &event.outcome),
        ("reason", &event.reason),
        ("request_id", &event.request_id),
        ("source", &event.source),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            fields.push((name, Field::Str(value)));
        }
    }
    if let Some(arguments) = event.arguments.as_ref().filter(|a| !a.is_null()) {
        fields.push(("arguments", Field::Json(arguments)));
    }
    fields.push(("kind", Field::Str(&event.kind)));
    fields.push(("time_ms", Field::Num(event.time_ms)));
    if let Some(seq) = seq {
        fields.push(("seq", Field::Num(seq)));
    }
    fields.sort_by(|a, b| a.0.cmp(b.0));

    out.push('{');
    for (i, (name, field)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(out, name);
        out.push(':');
        match field {
            Field::Str(s) => write_json_str(out, s),
            Field::Num(n) => {
                let _ = write!(out, "{n}");
            }
            Field::Json(v) => write_value(out, v),
        }
    }
    out.push('}');
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_json_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_str(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn to_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

/// The secret key that signs audit checkpoints (from `VOXGUARD_AUDIT_KEY`, read by the caller).
///
/// At least 32 bytes. The secret is zeroized on drop; `Debug` prints nothing of it.
#[derive(Clone)]
pub struct AuditKey {
    secret: Zeroizing<Vec<u8>>,
}

impl AuditKey {
    /// A key from raw bytes (at least 32).
    ///
    /// # Errors
    ///
    /// [`AuditKeyError::TooShort`] (the bytes are zeroized either way).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, AuditKeyError> {
        let secret = Zeroizing::new(bytes);
        if secret.len() < MIN_KEY_LEN {
            return Err(AuditKeyError::TooShort { len: secret.len() });
        }
        Ok(Self { secret })
    }

    /// A key from base64 text: standard or URL-safe alphabet, padded or not; whitespace is
    /// ignored.
    ///
    /// # Errors
    ///
    /// [`AuditKeyError::NotBase64`] or [`AuditKeyError::TooShort`].
    pub fn from_base64(text: &str) -> Result<Self, AuditKeyError> {
        let compact: Zeroizing<String> =
            Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
        let decoded = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .into_iter()
            .find_map(|engine| engine.decode(compact.as_bytes()).ok())
            .ok_or(AuditKeyError::NotBase64)?;
        Self::from_bytes(decoded)
    }

    /// A fresh random 32-byte key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut secret = Zeroizing::new(vec![0u8; MIN_KEY_LEN]);
        OsRng.fill_bytes(&mut secret);
        Self { secret }
    }

    /// Sign "record `seq` has hash `hash`" at `time_ms`.
    pub fn sign_checkpoint(&self, seq: u64, hash: &str, time_ms: u64) -> Checkpoint {
        // An empty MAC never verifies, so the impossible HMAC-init failure fails closed.
        let mac = self
            .checkpoint_mac(seq, hash, time_ms)
            .map(|mac| to_hex(&mac.finalize().into_bytes()))
            .unwrap_or_default();
        Checkpoint {
            seq,
            hash: hash.to_owned(),
            time_ms,
            mac,
        }
    }

    /// Whether `checkpoint` was signed by this key and not altered since. The MAC is compared
    /// in constant time.
    pub fn verify_checkpoint(&self, checkpoint: &Checkpoint) -> bool {
        let Some(given) = from_hex(&checkpoint.mac) else {
            return false;
        };
        self.checkpoint_mac(checkpoint.seq, &checkpoint.hash, checkpoint.time_ms)
            .is_some_and(|mac| mac.verify_slice(&given).is_ok())
    }

    fn checkpoint_mac(&self, seq: u64, hash: &str, time_ms: u64) -> Option<HmacSha256> {
        let mut message = String::with_capacity(128);
        message.push('[');
        write_json_str(&mut message, CHECKPOINT_DOMAIN);
        let _ = write!(message, ",{seq},");
        write_json_str(&mut message, hash);
        let _ = write!(message, ",{time_ms}]");
        // HMAC accepts keys of any length, so this never fails in practice.
        let mut mac = HmacSha256::new_from_slice(&self.secret).ok()?;
        mac.update(message.as_bytes());
        Some(mac)
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

/// Why an audit key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditKeyError {
    /// The text is not base64 (standard or URL-safe, padded or not).
    #[error("audit key is not valid base64; make one with `openssl rand -base64 32`")]
    NotBase64,
    /// The key is shorter than 32 bytes.
    #[error(
        "audit key is {len} bytes; at least 32 bytes are needed (make one with `openssl rand -base64 32`)"
    )]
    TooShort {
        /// Length of the key that was given, in bytes.
        len: usize,
    },
}

/// Builds the chain: hands out sequence numbers and links each record to the previous one.
///
/// Sinks own exactly one `Chain`, resumed from the last stored record when they start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    next_seq: u64,
    last_hash: String,
}

impl Chain {
    /// Continue a chain whose next record gets `next_seq` (0 counts as 1) and whose last record
    /// has hash `last_hash`.
    pub fn new(next_seq: u64, last_hash: impl Into<String>) -> Self {
        Self {
            next_seq: next_seq.max(1),
            last_hash: last_hash.into(),
        }
    }

    /// An empty chain: the next record is number 1 and links to [`GENESIS_HASH`].
    pub fn genesis() -> Self {
        Self::new(1, GENESIS_HASH)
    }

    /// Continue after the last stored record, `(seq, hash)`, or from genesis when there is none.
    pub fn resume(last: Option<(u64, String)>) -> Self {
        match last {
            Some((seq, hash)) => Self::new(seq.saturating_add(1), hash),
            None => Self::genesis(),
        }
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The hash of the last record ([`GENESIS_HASH`] for an empty chain).
    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }

    /// Give `event` the next sequence number, link it and hash it.
    pub fn append(&mut self, event: AuditEvent) -> AuditRecord {
        let event = event.normalized();
        let seq = self.next_seq;
        let prev_hash = std::mem::take(&mut self.last_hash);
        let hash = chain_hash(&prev_hash, seq, &event);
        self.last_hash.clone_from(&hash);
        self.next_seq = seq.saturating_add(1);
        AuditRecord {
            seq,
            event,
            prev_hash,
            hash,
        }
    }
}

impl Default for Chain {
    fn default() -> Self {
        Self::genesis()
    }
}

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
    key: Option<&'k AuditKey>,
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
    pub fn new(checkpoints: &[Checkpoint], key: Option<&'k AuditKey>, from: u64) -> Self {
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
                    if !key.verify_checkpoint(&anchor) {
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
                if !key.verify_checkpoint(&checkpoint) {
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
                        let valid = self
                            .key
                            .is_some_and(|key| key.verify_checkpoint(checkpoint));
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
/// use voxguard_guard::audit::{verify, AuditEvent, AuditKey, Chain, ChainProblem, VerifyReport};
///
/// let key = AuditKey::generate();
/// let mut chain = Chain::genesis();
/// let mut records: Vec<_> = (0..5).map(|i| chain.append(AuditEvent::new("tool_called", i))).collect();
/// let checkpoint = key.sign_checkpoint(5, &records[4].hash, 5);
/// assert!(verify(records.clone(), &[checkpoint.clone()], Some(&key), 0).is_ok());
///
/// records[2].event.outcome = Some("ok".into());
/// assert_eq!(
///     verify(records, &[checkpoint], Some(&key), 0),
///     VerifyReport::Broken { seq: 3, problem: ChainProblem::Modified }
/// );
/// ```
pub fn verify(
    records: impl IntoIterator<Item = AuditRecord>,
    checkpoints: &[Checkpoint],
    key: Option<&AuditKey>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> AuditKey {
        AuditKey::from_bytes(vec![9u8; 32]).unwrap()
    }

    fn event(i: u64) -> AuditEvent {
        AuditEvent {
            agent: Some("bank".into()),
            call_id: Some(format!("call-{}", i % 7)),
            caller: Some("***4567".into()),
            function: Some("transfer_funds".into()),
            arguments: Some(json!({"to": "acct-1", "amount": i, "memo": "q\"\\\n\u{1}é"})),
            outcome: Some("ok".into()),
            ..AuditEvent::new("tool_called", 1_700_000_000_000 + i)
        }
    }

    fn chain_of(n: u64) -> Vec<AuditRecord> {
        let mut chain = Chain::genesis();
        (0..n).map(|i| chain.append(event(i))).collect()
    }

    /// Re-link every record from `start` (an index) on, as an attacker who knows the scheme
    /// (but not the key) would after rewriting a record.
    fn rehash_from(records: &mut [AuditRecord], start: usize) {
        for i in start..records.len() {
            if i > 0 {
                records[i].prev_hash = records[i - 1].hash.clone();
            }
            records[i].hash = chain_hash(&records[i].prev_hash, records[i].seq, &records[i].event);
        }
    }

    fn broken(seq: u64, problem: ChainProblem) -> VerifyReport {
        VerifyReport::Broken { seq, problem }
    }

    #[test]
    fn clean_chain_of_1000_verifies() {
        let records = chain_of(1000);
        assert_eq!(records[0].seq, 1);
        assert_eq!(records[0].prev_hash, GENESIS_HASH);
        assert_eq!(records[999].seq, 1000);
        let k = key();
        let checkpoints: Vec<_> = records
            .iter()
            .filter(|r| r.seq % 100 == 0)
            .map(|r| k.sign_checkpoint(r.seq, &r.hash, 1))
            .collect();
        assert_eq!(
            verify(records.clone(), &checkpoints, Some(&k), 0),
            VerifyReport::Ok {
                records: 1000,
                last_seq: Some(1000),
                checkpoints_checked: 10
            }
        );
        // Without the key, checkpoints cannot be authenticated and are not used.
        assert_eq!(
            verify(records, &checkpoints, None, 1),
            VerifyReport::Ok {
                records: 1000,
                last_seq: Some(1000),
                checkpoints_checked: 0
            }
        );
        assert_eq!(
            verify(Vec::new(), &[], None, 0),
            VerifyReport::Ok {
                records: 0,
                last_seq: None,
                checkpoints_checked: 0
            }
        );
    }

    #[test]
    fn hash_matches_its_definition() {
        let e = event(3);
        let canonical = canonical_event(7, &e);
        let mut h = Sha256::new();
        h.update(GENESIS_HASH.as_bytes());
        h.update(&canonical);
        assert_eq!(chain_hash(GENESIS_HASH, 7, &e), to_hex(&h.finalize()));
        assert_eq!(chain_hash(GENESIS_HASH, 7, &e).len(), 64);
        // The sequence number and the previous hash are both bound.
        assert_ne!(
            chain_hash(GENESIS_HASH, 8, &e),
            chain_hash(GENESIS_HASH, 7, &e)
        );
        let other_prev = "1".repeat(64);
        assert_ne!(
            chain_hash(&other_prev, 7, &e),
            chain_hash(GENESIS_HASH, 7, &e)
        );
    }

    #[test]
    fn canonical_form_is_sorted_and_stable() {
        let mut e = AuditEvent::new("auth_failed", 5);
        e.source = Some("10.0.0.1".into());
        e.arguments = Some(json!({"b": [1, {"z": 1, "a": null}], "a": "x\ty"}));
        let text = canonical_event_string(2, &e);
        assert_eq!(
            text,
            r#"{"arguments":{"a":"x\ty","b":[1,{"a":null,"z":1}]},"kind":"auth_failed","seq":2,"source":"10.0.0.1","time_ms":5}"#
        );
        // Null arguments count as absent, so what is stored reads back identically.
        let mut null_args = AuditEvent::new("lockout", 1);
        null_args.arguments = Some(Value::Null);
        assert_eq!(
            canonical_event(1, &null_args),
            canonical_event(1, &AuditEvent::new("lockout", 1))
        );
        let mut chain = Chain::genesis();
        assert_eq!(chain.append(null_args).event.arguments, None);
        // canonical_json sorts any value.
        assert_eq!(
            canonical_json(&json!({"b": 1, "a": {"d": "\u{7f}", "c": "\u{1f}"}})),
            "{\"a\":{\"c\":\"\\u001f\",\"d\":\"\u{7f}\"},\"b\":1}"
        );
    }

    #[test]
    fn canonical_round_trips_exactly() {
        for record in chain_of(20) {
            let text = canonical_event_string(record.seq, &record.event);
            // Same bytes whatever order serde_json would use for maps.
            let reparsed: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(canonical_json(&reparsed), text);
            let (seq, back) = parse_canonical_event(&text).unwrap();
            assert_eq!((seq, &back), (record.seq, &record.event));

            let line = record.to_json_line();
            assert!(!line.contains('\n'));
            assert_eq!(AuditRecord::from_json_line(&line).unwrap(), record);
            let reparsed: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(canonical_json(&reparsed), line);
        }
        let cp = key().sign_checkpoint(4, &"a".repeat(64), 99);
        assert_eq!(Checkpoint::from_json_line(&cp.to_json_line()).unwrap(), cp);
    }

    #[test]
    fn awkward_numbers_and_text_round_trip() {
        let mut e = AuditEvent::new("payment", u64::MAX);
        e.arguments = Some(json!({
            "floats": [0.1 + 0.2, 1e300, -0.0, 5e-324, 150.0, -1.5e-7],
            "ints": [u64::MAX, i64::MIN, 0],
            "text": "\u{2028}\u{7f}\u{0}\u{1b}😀 \\ \"",
            "": {"": null},
        }));
        let mut chain = Chain::new(u64::MAX - 1, GENESIS_HASH);
        let record = chain.append(e);
        let text = canonical_event_string(record.seq, &record.event);
        let (seq, back) = parse_canonical_event(&text).unwrap();
        assert_eq!(seq, record.seq);
        assert_eq!(canonical_event_string(seq, &back), text);
        assert_eq!(chain_hash(&record.prev_hash, seq, &back), record.hash);
        let line = record.to_json_line();
        let back = AuditRecord::from_json_line(&line).unwrap();
        assert_eq!(back.to_json_line(), line);
        assert!(verify([back], &[], None, record.seq).is_ok());
    }

    #[test]
    fn non_canonical_text_is_refused() {
        let record = chain_of(1).remove(0);
        let text = canonical_event_string(1, &record.event);
        let line = record.to_json_line();
        for bad in [
            text.replacen(':', ": ", 1),
            text.replacen("{", "{\"agent\":null,", 1)
                .replacen(",\"agent\":\"bank\"", "", 1),
            format!("{text} "),
            text.replacen("\"seq\":1,", "", 1),
            text.replacen("\"kind\"", "\"extra\":1,\"kind\"", 1),
            "[]".to_owned(),
            "not json".to_owned(),
        ] {
            assert!(parse_canonical_event(&bad).is_err(), "{bad}");
        }
        for bad in [
            line.replacen(':', ": ", 1),
            format!("{line}\n"),
            line.replacen("\"seq\":1", "\"seq\":1,\"x\":2", 1),
            line.replacen("}", ",\"outcome\":\"ok\"}", 1),
        ] {
            assert!(AuditRecord::from_json_line(&bad).is_err(), "{bad}");
        }
        let cp = key().sign_checkpoint(4, &"a".repeat(64), 99).to_json_line();
        assert!(Checkpoint::from_json_line(&cp.replacen(',', " ,", 1)).is_err());
    }

    #[test]
    fn edited_field_is_modified_at_its_seq() {
        let clean = chain_of(50);
        let edits: [fn(&mut AuditEvent); 5] = [
            |e| e.outcome = Some("refused".into()),
            |e| e.time_ms += 1,
            |e| e.kind = "payment".into(),
            |e| e.caller = None,
            |e| e.arguments = Some(json!({"to": "acct-666"})),
        ];
        for edit in edits {
            let mut records = clean.clone();
            edit(&mut records[19].event);
            assert_eq!(
                verify(records, &[], None, 0),
                broken(20, ChainProblem::Modified)
            );
        }
        // Editing the stored hash or the sequence number is caught too.
        let mut records = clean.clone();
        records[9].hash = "f".repeat(64);
        assert_eq!(
            verify(records, &[], None, 0),
            broken(10, ChainProblem::Modified)
        );
        let mut records = clean.clone();
        records[9].seq = 40;
        assert_eq!(
            verify(records, &[], None, 0),
            broken(10, ChainProblem::Modified)
        );
        let mut records = clean;
        records[0].event.agent = None;
        assert_eq!(
            verify(records, &[], None, 0),
            broken(1, ChainProblem::Modified)
        );
    }

    #[test]
    fn deleted_record_is_missing() {
        let mut records = chain_of(30);
        records.remove(11);
        assert_eq!(
            verify(records, &[], None, 0),
            broken(12, ChainProblem::Missing)
        );
        let mut records = chain_of(30);
        records.remove(0);
        assert_eq!(
            verify(records, &[], None, 0),
            broken(1, ChainProblem::Missing)
        );
        // Deleting and re-linking the next record is no better: the seq gap remains.
        let mut records = chain_of(30);
        records.remove(11);
        rehash_from(&mut records, 11);
        assert_eq!(
            verify(records, &[], None, 0),
            broken(12, ChainProblem::Missing)
        );
    }

    #[test]
    fn swapped_records_are_reordered() {
        let mut records = chain_of(30);
        records.swap(14, 15);
        assert_eq!(
            verify(records, &[], None, 0),
            broken(15, ChainProblem::Reordered)
        );
        let mut records = chain_of(30);
        records.swap(3, 20);
        assert_eq!(
            verify(records, &[], None, 0),
            broken(4, ChainProblem::Reordered)
        );
        // A duplicated record makes the sequence go backwards.
        let mut records = chain_of(30);
        let dup = records[6].clone();
        records.insert(7, dup);
        assert_eq!(
            verify(records, &[], None, 0),
            broken(7, ChainProblem::Reordered)
        );
        // A rewritten and re-hashed record breaks its successor's link.
        let mut records = chain_of(30);
        records[5].event.outcome = Some("refused".into());
        rehash_from(&mut records[5..6], 0);
        assert_eq!(
            verify(records, &[], None, 0),
            broken(7, ChainProblem::Reordered)
        );
        // Record 1 must link to the genesis hash.
        let mut records = chain_of(3);
        records[0].prev_hash = "1".repeat(64);
        rehash_from(&mut records, 0);
        records[0].hash = chain_hash(&records[0].prev_hash, 1, &records[0].event);
        rehash_from(&mut records, 1);
        assert_eq!(
            verify(records, &[], None, 0),
            broken(1, ChainProblem::Reordered)
        );
    }

    #[test]
    fn truncated_tail_after_checkpoint() {
        let k = key();
        let mut records = chain_of(30);
        let checkpoints: Vec<_> = [10, 20]
            .iter()
            .map(|&s: &u64| k.sign_checkpoint(s, &records[s as usize - 1].hash, 1))
            .collect();
        records.truncate(15);
        assert_eq!(
            verify(records.clone(), &checkpoints, Some(&k), 0),
            broken(
                16,
                ChainProblem::TruncatedAfterCheckpoint { checkpoint_seq: 20 }
            )
        );
        // Everything gone.
        assert_eq!(
            verify(Vec::new(), &checkpoints, Some(&k), 0),
            broken(
                1,
                ChainProblem::TruncatedAfterCheckpoint { checkpoint_seq: 20 }
            )
        );
        // Records after the last checkpoint are beyond what checkpoints can attest.
        let mut records = chain_of(30);
        records.truncate(20);
        assert!(verify(records, &checkpoints, Some(&k), 0).is_ok());
    }

    #[test]
    fn forged_checkpoint_is_detected() {
        let k = key();
        let records = chain_of(30);
        let mut cp = k.sign_checkpoint(10, &records[9].hash, 1);
        cp.mac = cp.mac.replacen(
            &cp.mac[..2],
            if &cp.mac[..2] == "00" { "01" } else { "00" },
            1,
        );
        assert_eq!(
            verify(records.clone(), &[cp], Some(&k), 0),
            broken(10, ChainProblem::CheckpointForged)
        );
        // Signed by another key.
        let other = AuditKey::generate().sign_checkpoint(10, &records[9].hash, 1);
        assert_eq!(
            verify(records.clone(), &[other], Some(&k), 0),
            broken(10, ChainProblem::CheckpointForged)
        );
        // Altered time or hash; garbage MAC.
        let mut altered = k.sign_checkpoint(10, &records[9].hash, 1);
        altered.time_ms = 2;
        assert_eq!(
            verify(records.clone(), &[altered], Some(&k), 0),
            broken(10, ChainProblem::CheckpointForged)
        );
        let mut garbage = k.sign_checkpoint(10, &records[9].hash, 1);
        garbage.mac = "zz".into();
        assert_eq!(
            verify(records.clone(), &[garbage], Some(&k), 0),
            broken(10, ChainProblem::CheckpointForged)
        );
        // A forged checkpoint beyond the end is forged, not a truncation.
        let beyond = AuditKey::generate().sign_checkpoint(40, &"a".repeat(64), 1);
        assert_eq!(
            verify(records, &[beyond], Some(&k), 0),
            broken(40, ChainProblem::CheckpointForged)
        );
    }

    #[test]
    fn rewritten_and_rehashed_chain_is_caught_by_checkpoint() {
        let k = key();
        let clean = chain_of(30);
        let checkpoints: Vec<_> = [10, 20, 30]
            .iter()
            .map(|&s: &u64| k.sign_checkpoint(s, &clean[s as usize - 1].hash, 1))
            .collect();
        let mut records = clean.clone();
        records[13].event.outcome = Some("refused".into());
        rehash_from(&mut records, 13);
        // Without the key the rewrite is consistent...
        assert!(verify(records.clone(), &checkpoints, None, 0).is_ok());
        // ...the next signed checkpoint catches it.
        assert_eq!(
            verify(records, &checkpoints, Some(&k), 0),
            broken(20, ChainProblem::CheckpointMismatch)
        );
        // Rewriting the checkpointed record itself.
        let mut records = clean;
        records[9].event.reason = Some("x".into());
        rehash_from(&mut records, 9);
        assert_eq!(
            verify(records, &checkpoints, Some(&k), 0),
            broken(10, ChainProblem::CheckpointMismatch)
        );
    }

    #[test]
    fn from_starts_in_the_middle() {
        let k = key();
        let records = chain_of(40);
        let cp10 = k.sign_checkpoint(10, &records[9].hash, 1);
        let cp30 = k.sign_checkpoint(30, &records[29].hash, 1);
        let all = [cp10.clone(), cp30.clone()];
        assert_eq!(
            verify(records.clone(), &all, Some(&k), 11),
            VerifyReport::Ok {
                records: 30,
                last_seq: Some(40),
                checkpoints_checked: 2
            }
        );
        // Only the records from `from` on need to be given.
        assert_eq!(
            verify(records[20..].to_vec(), &all, Some(&k), 21),
            VerifyReport::Ok {
                records: 20,
                last_seq: Some(40),
                checkpoints_checked: 1
            }
        );
        // Problems before `from` are out of range.
        let mut early = records.clone();
        early[3].event.kind = "x".into();
        assert!(verify(early.clone(), &[], None, 5).is_ok());
        assert_eq!(
            verify(early, &[], None, 4),
            broken(4, ChainProblem::Modified)
        );
        // The anchor checkpoint at from-1 binds the first record's link.
        let mut rewritten = records.clone();
        rewritten[10].prev_hash = "e".repeat(64);
        rehash_from(&mut rewritten[10..11], 0);
        rehash_from(&mut rewritten, 11);
        assert_eq!(
            verify(
                rewritten[10..].to_vec(),
                std::slice::from_ref(&cp10),
                Some(&k),
                11
            ),
            broken(11, ChainProblem::CheckpointMismatch)
        );
        // Without an anchor checkpoint the first link is trusted.
        assert!(verify(rewritten[10..].to_vec(), &[], Some(&k), 11).is_ok());
        // A forged anchor.
        let mut forged = cp10;
        forged.time_ms += 1;
        assert_eq!(
            verify(records[10..].to_vec(), &[forged], Some(&k), 11),
            broken(10, ChainProblem::CheckpointForged)
        );
        // Missing first record of the range.
        assert_eq!(
            verify(records[12..].to_vec(), &[], None, 12),
            broken(12, ChainProblem::Missing)
        );
        // Beyond the end: nothing to check, unless a checkpoint says otherwise.
        assert!(verify(records.clone(), &[], Some(&k), 100).is_ok());
        assert_eq!(
            verify(records[..25].to_vec(), &[cp30], Some(&k), 21),
            broken(
                26,
                ChainProblem::TruncatedAfterCheckpoint { checkpoint_seq: 30 }
            )
        );
    }

    #[test]
    fn unreadable_record_is_modified() {
        let records = chain_of(5);
        let mut v = Verifier::new(&[], None, 0);
        v.push(&records[0]);
        v.push(&records[1]);
        v.push_unreadable(None);
        assert!(v.is_settled());
        v.push(&records[3]);
        assert_eq!(v.finish(), broken(3, ChainProblem::Modified));
        // Before the range, an unreadable record is out of scope; inside it, it is modified.
        let mut v = Verifier::new(&[], None, 3);
        v.push_unreadable(Some(2));
        v.push_unreadable(None);
        v.push(&records[2]);
        v.push_unreadable(None);
        assert_eq!(v.finish(), broken(4, ChainProblem::Modified));
        let mut v = Verifier::new(&[], None, 3);
        v.push_unreadable(Some(3));
        assert_eq!(v.finish(), broken(3, ChainProblem::Modified));
    }

    #[test]
    fn chain_resumes() {
        let records = chain_of(10);
        let mut chain = Chain::resume(Some((5, records[4].hash.clone())));
        assert_eq!(chain.next_seq(), 6);
        assert_eq!(chain.last_hash(), records[4].hash);
        assert_eq!(chain.append(event(5)), records[5]);
        assert_eq!(Chain::resume(None), Chain::default());
        assert_eq!(Chain::new(0, GENESIS_HASH), Chain::genesis());
    }

    #[test]
    fn problem_names_and_sentences() {
        let all = [
            (ChainProblem::Modified, "modified"),
            (ChainProblem::Missing, "missing"),
            (ChainProblem::Reordered, "reordered"),
            (
                ChainProblem::TruncatedAfterCheckpoint { checkpoint_seq: 7 },
                "truncated",
            ),
            (ChainProblem::CheckpointForged, "checkpoint_forged"),
            (ChainProblem::CheckpointMismatch, "checkpoint_mismatch"),
        ];
        for (problem, name) in all {
            assert_eq!(problem.as_str(), name);
            assert!(problem.to_string().len() > 20);
        }
        assert!(ChainProblem::TruncatedAfterCheckpoint { checkpoint_seq: 7 }
            .to_string()
            .contains('7'));
        let report = broken(12, ChainProblem::Missing).to_string();
        assert!(report.contains("12") && report.contains("missing"));
        assert!(verify(chain_of(3), &[], None, 0)
            .to_string()
            .starts_with("OK: 3 records"));
    }

    #[test]
    fn keys() {
        assert_eq!(
            AuditKey::from_bytes(vec![1; 31]).unwrap_err(),
            AuditKeyError::TooShort { len: 31 }
        );
        assert_eq!(
            AuditKey::from_base64("not base64!").unwrap_err(),
            AuditKeyError::NotBase64
        );
        assert_eq!(
            AuditKey::from_base64(&STANDARD.encode([0u8; 16])).unwrap_err(),
            AuditKeyError::TooShort { len: 16 }
        );
        let bytes = vec![0xABu8; 48];
        let a = AuditKey::from_base64(&format!(" {}\n", STANDARD.encode(&bytes))).unwrap();
        let b = AuditKey::from_base64(&URL_SAFE_NO_PAD.encode(&bytes)).unwrap();
        let cp = a.sign_checkpoint(3, "abc", 4);
        assert_eq!(cp.mac.len(), 64);
        assert!(b.verify_checkpoint(&cp));
        assert!(!AuditKey::generate().verify_checkpoint(&cp));
        assert_ne!(
            AuditKey::generate().sign_checkpoint(3, "abc", 4),
            AuditKey::generate().sign_checkpoint(3, "abc", 4)
        );
        let dbg = format!("{a:?}");
        assert!(
            !dbg.contains("171") && !dbg.to_lowercase().contains("abab"),
            "{dbg}"
        );
        assert!(AuditKeyError::TooShort { len: 3 }
            .to_string()
            .contains("openssl rand"));
    }
}
