//! Tamper-evident audit records: the event model, the hash chain, signed checkpoints and the
//! verifier.
//!
//! This module owns invariant 8 of the design on the pure side: what an [`AuditEvent`] holds, the
//! canonical bytes that are hashed ([`canonical_event`]), how records are chained
//! (`hash = SHA-256(prev_hash ‖ canonical_event(seq, event))`, see [`chain_hash`] and [`Chain`]),
//! how a [`SecretKey`] signs periodic [`Checkpoint`]s so that truncating the tail is detectable,
//! and how a stored log is checked ([`verify`], [`Verifier`]): the first bad sequence number and
//! why ([`ChainProblem`]). What happened and how it ended are typed ([`AuditKind`], [`Outcome`]);
//! the bytes are written by the crate's one canonical-JSON writer ([`crate::canonical`]). It
//! must not do I/O — no files, no databases, no clock reads, no environment — that is the job
//! of the sinks in `voxguard-store` and of the CLI. It must not redact or mask anything either:
//! callers hand it events whose caller number is already masked and whose arguments are
//! already redacted. Keys live in [`crate::key`].

use std::fmt::Write as _;

use hmac::Mac as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::canonical::{from_hex, to_hex, write_json_str, write_value};
use crate::key::{HmacSha256, KeyError, SecretKey};

mod kind;
mod verify;

#[cfg(test)]
mod tests;

pub use kind::{AuditKind, Outcome};
pub use verify::{verify, ChainProblem, Verifier, VerifyReport};

/// The key that signs audit checkpoints: the crate's one [`SecretKey`] type, under the name
/// callers used before keys were unified (read from `VOXGUARD_AUDIT_KEY` by the caller).
pub type AuditKey = SecretKey;

/// Why an audit key was refused: the one [`KeyError`], under its former name.
pub type AuditKeyError = KeyError;

/// The `prev_hash` of the first record (sequence number 1): 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain tag of the checkpoint MAC, so a checkpoint MAC can never be replayed as anything else.
const CHECKPOINT_DOMAIN: &str = "voxguard-audit-checkpoint-v1";

/// One security-relevant thing that happened, as a caller records it.
///
/// `kind` names what happened ([`AuditKind`]); every other field is optional.
///
/// The audit trail stores what it is given: `caller` must **already be masked** (e.g.
/// `"***4567"`, last four digits only) and `arguments` must **already be redacted** before the
/// event is recorded. An `arguments` of `Some(Value::Null)` is treated as absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// What happened (stored as its snake_case name, e.g. `tool_called`).
    pub kind: AuditKind,
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
    /// How it ended, e.g. `ok`, `refused`, `failed` (see [`Outcome`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// A stable reason for a refusal or failure, e.g. `token_expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The source address of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The operator who accessed conversation records (records API and CLI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// The operator's role at the time of the access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The conversation record involved (its id, never its content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// The data subject involved, masked (`sub_` + a keyed pseudonym, never the id itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The purpose the operator gave for reading content (HIPAA minimum necessary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

impl AuditEvent {
    /// An event of `kind` at `time_ms` with every optional field empty.
    pub fn new(kind: AuditKind, time_ms: u64) -> Self {
        Self {
            kind,
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
            operator: None,
            role: None,
            record: None,
            subject: None,
            purpose: None,
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
    /// Sign "record `seq` has hash `hash`" at `time_ms` with `key`.
    pub fn sign(key: &SecretKey, seq: u64, hash: &str, time_ms: u64) -> Self {
        // An empty MAC never verifies, so the impossible HMAC-init failure fails closed.
        let mac = checkpoint_mac(key, seq, hash, time_ms)
            .map(|mac| to_hex(&mac.finalize().into_bytes()))
            .unwrap_or_default();
        Self {
            seq,
            hash: hash.to_owned(),
            time_ms,
            mac,
        }
    }

    /// Whether this checkpoint was signed by `key` and not altered since. The MAC is compared
    /// in constant time.
    pub fn verify(&self, key: &SecretKey) -> bool {
        let Some(given) = from_hex(&self.mac) else {
            return false;
        };
        checkpoint_mac(key, self.seq, &self.hash, self.time_ms)
            .is_some_and(|mac| mac.verify_slice(&given).is_ok())
    }

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
    // A tool call's event (agent, ids, source, function, arguments) is 300–500 bytes.
    let mut out = String::with_capacity(512);
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

/// The most bytes of (already redacted) arguments an audit event keeps whole; see
/// [`bounded_arguments`].
pub const MAX_AUDITED_ARGUMENT_BYTES: usize = 2_048;

/// How many bytes of an oversized argument object an audit event keeps as a prefix.
const AUDITED_PREFIX_BYTES: usize = 512;

/// `arguments` as an audit event stores them: whole when their canonical JSON is at most
/// `max_bytes`, otherwise `{"truncated": true, "bytes": n, "sha256": …, "prefix": …}` — the
/// first bytes (cut on a character boundary) and the SHA-256 of the whole canonical JSON, so an
/// attacker-sized argument costs a bounded record while the record still pins what was sent.
/// The caller must pass *redacted* arguments: the hash of a clear PIN would be guessable.
pub fn bounded_arguments(arguments: Value, max_bytes: usize) -> Value {
    let text = crate::canonical::canonical_json(&arguments);
    if text.len() <= max_bytes {
        return arguments;
    }
    let kept = crate::redact::prefix(&text, AUDITED_PREFIX_BYTES.min(max_bytes));
    serde_json::json!({
        "truncated": true,
        "bytes": text.len(),
        "sha256": to_hex(&Sha256::digest(text.as_bytes())),
        "prefix": kept,
    })
}

/// The hash of the record at `seq` holding `event` after a record whose hash is `prev_hash`:
/// lowercase hex of SHA-256 over the ASCII bytes of `prev_hash` (as stored, 64 hex characters)
/// followed by [`canonical_event`]`(seq, event)`.
///
/// This can be recomputed with standard tools: `printf '%s%s' "$prev_hash" "$event" | sha256sum`.
pub fn chain_hash(prev_hash: &str, seq: u64, event: &AuditEvent) -> String {
    chain_hash_canonical(prev_hash, &canonical_event_string(seq, event))
}

/// [`chain_hash`] of an event already in canonical form (`canonical_event_string(seq, event)`).
fn chain_hash_canonical(prev_hash: &str, canonical: &str) -> String {
    let digest = Sha256::new()
        .chain_update(prev_hash.as_bytes())
        .chain_update(canonical.as_bytes())
        .finalize();
    to_hex(&digest)
}

/// The HMAC of the checkpoint message `["voxguard-audit-checkpoint-v1",seq,hash,time_ms]`.
fn checkpoint_mac(key: &SecretKey, seq: u64, hash: &str, time_ms: u64) -> Option<HmacSha256> {
    let mut message = String::with_capacity(128);
    message.push('[');
    write_json_str(&mut message, CHECKPOINT_DOMAIN);
    let _ = write!(message, ",{seq},");
    write_json_str(&mut message, hash);
    let _ = write!(message, ",{time_ms}]");
    key.mac(message.as_bytes())
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
    let mut fields: Vec<(&'static str, Field<'_>)> = Vec::with_capacity(17);
    let optional = [
        ("agent", &event.agent),
        ("call_id", &event.call_id),
        ("caller", &event.caller),
        ("function", &event.function),
        ("reason", &event.reason),
        ("request_id", &event.request_id),
        ("source", &event.source),
        ("operator", &event.operator),
        ("role", &event.role),
        ("record", &event.record),
        ("subject", &event.subject),
        ("purpose", &event.purpose),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            fields.push((name, Field::Str(value)));
        }
    }
    if let Some(outcome) = event.outcome {
        fields.push(("outcome", Field::Str(outcome.as_str())));
    }
    if let Some(arguments) = event.arguments.as_ref().filter(|a| !a.is_null()) {
        fields.push(("arguments", Field::Json(arguments)));
    }
    fields.push(("kind", Field::Str(event.kind.as_str())));
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
        self.append_canonical(event).0
    }

    /// [`append`](Self::append), also handing back the text that was hashed,
    /// [`canonical_event_string`]`(seq, event)`, for a sink that stores it (encoded once).
    pub fn append_canonical(&mut self, event: AuditEvent) -> (AuditRecord, String) {
        let event = event.normalized();
        let seq = self.next_seq;
        let prev_hash = std::mem::take(&mut self.last_hash);
        let canonical = canonical_event_string(seq, &event);
        let hash = chain_hash_canonical(&prev_hash, &canonical);
        self.last_hash.clone_from(&hash);
        self.next_seq = seq.saturating_add(1);
        let record = AuditRecord {
            seq,
            event,
            prev_hash,
            hash,
        };
        (record, canonical)
    }
}

impl Default for Chain {
    fn default() -> Self {
        Self::genesis()
    }
}
