//! Call policies that decide, without I/O, whether a tool call may proceed: the emergency
//! switch, the transfer allow-list and the confirmation protocol's argument binding.
//!
//! Owns the *decisions*; the runtime (`voxguard`) owns where their state lives (server-side
//! session, process memory) and the order in which they are checked. Nothing here trusts data
//! the caller or the LLM can influence: every input is either configuration or server-side
//! state, except the arguments being judged.

use std::collections::BTreeSet;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical::{canonical_json, to_hex};

/// The emergency switch: when on, sensitive tools (or a named list) are refused at once.
#[derive(Debug, Default)]
pub struct EmergencySwitch {
    state: RwLock<EmergencyState>,
}

/// What the emergency switch currently blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyState {
    /// Whether the switch is on.
    pub enabled: bool,
    /// `None`: every sensitive tool; `Some(names)`: exactly these tools.
    pub tools: Option<BTreeSet<String>>,
}

impl EmergencySwitch {
    /// A switch in `initial` state.
    pub fn new(initial: EmergencyState) -> Self {
        Self {
            state: RwLock::new(initial),
        }
    }

    /// The current state.
    pub fn state(&self) -> EmergencyState {
        match self.state.read() {
            Ok(state) => state.clone(),
            // A poisoned lock means a writer panicked mid-update: fail closed.
            Err(_) => EmergencyState {
                enabled: true,
                tools: None,
            },
        }
    }

    /// Replace the state; returns the previous one.
    pub fn set(&self, next: EmergencyState) -> EmergencyState {
        match self.state.write() {
            Ok(mut state) => std::mem::replace(&mut *state, next),
            Err(poisoned) => {
                let mut state = poisoned.into_inner();
                std::mem::replace(&mut *state, next)
            }
        }
    }

    /// Whether `tool` (sensitive or not) is currently refused.
    pub fn blocks(&self, tool: &str, sensitive: bool) -> bool {
        let state = self.state();
        state.enabled
            && match &state.tools {
                None => sensitive,
                Some(names) => names.contains(tool),
            }
    }
}

/// Destinations an agent may connect or transfer a call to. Empty means none: a handler that
/// produces a transfer anyway is refused (fail closed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferAllowList {
    entries: BTreeSet<String>,
}

impl TransferAllowList {
    /// An allow-list of `destinations` (E.164 numbers, SIP URIs or URLs).
    pub fn new<I, S>(destinations: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            entries: destinations
                .into_iter()
                .map(|d| canonical_destination(d.as_ref()))
                .collect(),
        }
    }

    /// Add one destination.
    pub fn insert(&mut self, destination: &str) {
        self.entries.insert(canonical_destination(destination));
    }

    /// Whether `destination` is on the list (after canonicalization: trimmed; phone numbers
    /// without spaces, dashes, dots or parentheses; in SIP URIs and URLs the scheme and the
    /// host case-folded, the user part and the path kept as written — `sip:Desk@…` is
    /// another user than `sip:desk@…`).
    pub fn allows(&self, destination: &str) -> bool {
        self.entries.contains(&canonical_destination(destination))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The canonical entries.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(String::as_str)
    }
}

fn canonical_destination(destination: &str) -> String {
    let trimmed = destination.trim();
    let phone_like = trimmed
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')'));
    if phone_like {
        trimmed
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect()
    } else {
        fold_scheme_and_host(trimmed)
    }
}

/// A SIP URI or URL with its scheme and host (and what follows a SIP host: port, parameters)
/// in lower case, and its user part and path as written: only those are case-insensitive.
fn fold_scheme_and_host(destination: &str) -> String {
    let Some((scheme, rest)) = destination.split_once(':') else {
        return destination.to_ascii_lowercase();
    };
    let (slashes, rest) = match rest.strip_prefix("//") {
        Some(rest) => ("//", rest),
        None => ("", rest),
    };
    // A URL's authority ends at its path, query or fragment; a SIP URI has none of those.
    let end = if slashes.is_empty() {
        rest.len()
    } else {
        rest.find(['/', '?', '#']).unwrap_or(rest.len())
    };
    let (authority, tail) = rest.split_at(end);
    let (user, host) = authority.split_at(authority.rfind('@').map_or(0, |at| at + 1));
    format!(
        "{}:{slashes}{user}{}{tail}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    )
}

/// The argument that confirms a pending action.
pub const CONFIRMED_ARG: &str = "confirmed";

/// A confirmation waiting for the caller's "yes", kept in server-side session state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingConfirmation {
    /// The function awaiting confirmation.
    pub function: String,
    /// [`args_digest`] of the arguments that were read back.
    pub digest: String,
    /// When the confirmation was requested (unix seconds).
    pub requested_at: u64,
}

/// How a second, `confirmed: true` call relates to what is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmationCheck {
    /// Same function and arguments, within the window: run the handler (once).
    Proceed,
    /// Nothing is pending for this function: ask for confirmation.
    NothingPending,
    /// The arguments differ from what was read back.
    Mismatch,
    /// The confirmation window has passed.
    Expired,
}

impl PendingConfirmation {
    /// A confirmation for `function` with `args` requested at `now`.
    pub fn new(function: &str, args: &Value, now: u64) -> Self {
        Self {
            function: function.to_string(),
            digest: args_digest(args),
            requested_at: now,
        }
    }

    /// Judge a confirming call.
    pub fn check(
        &self,
        function: &str,
        args: &Value,
        now: u64,
        window_secs: u64,
    ) -> ConfirmationCheck {
        if self.function != function {
            ConfirmationCheck::NothingPending
        } else if now.saturating_sub(self.requested_at) > window_secs {
            ConfirmationCheck::Expired
        } else if self.digest != args_digest(args) {
            ConfirmationCheck::Mismatch
        } else {
            ConfirmationCheck::Proceed
        }
    }
}

/// SHA-256 of the [`canonical_json`] of `args` with the [`CONFIRMED_ARG`] flag removed at the
/// top level, hex-encoded.
pub fn args_digest(args: &Value) -> String {
    let canonical = canonical_json(&strip_confirmed(args));
    to_hex(&Sha256::digest(canonical.as_bytes()))
}

/// `args` without the top-level [`CONFIRMED_ARG`] flag.
pub fn strip_confirmed(args: &Value) -> Value {
    match args {
        Value::Object(map) => {
            let mut map = map.clone();
            map.remove(CONFIRMED_ARG);
            Value::Object(map)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emergency_blocks_sensitive_tools_or_a_named_list() {
        let switch = EmergencySwitch::default();
        assert!(!switch.blocks("transfer_funds", true));
        switch.set(EmergencyState {
            enabled: true,
            tools: None,
        });
        assert!(switch.blocks("transfer_funds", true));
        assert!(!switch.blocks("opening_hours", false));
        let previous = switch.set(EmergencyState {
            enabled: true,
            tools: Some(["opening_hours".to_string()].into()),
        });
        assert!(previous.enabled);
        assert!(switch.blocks("opening_hours", false));
        assert!(!switch.blocks("transfer_funds", true));
        switch.set(EmergencyState::default());
        assert!(!switch.blocks("opening_hours", false));
    }

    #[test]
    fn allow_list_canonicalizes_numbers_and_uris() {
        let list = TransferAllowList::new([
            "+1 (555) 010-0001",
            "SIP:desk@Example.com",
            "https://Example.com/Next.swml",
        ]);
        assert!(list.allows("+15550100001"));
        assert!(list.allows(" +1-555-010-0001 "));
        assert!(list.allows("sip:desk@example.com"));
        assert!(list.allows("sip:desk@EXAMPLE.COM"));
        assert!(list.allows("HTTPS://example.com/Next.swml"));
        // The user part of a SIP URI and a URL's path are case-sensitive: another user, another
        // document.
        assert!(!list.allows("sip:DESK@example.com"));
        assert!(!list.allows("sip:Desk@example.com"));
        assert!(!list.allows("https://example.com/next.swml"));
        assert!(!list.allows("+15550100002"));
        assert!(!list.allows("+155501000011"));
        assert!(!list.allows("sip:desk@example.com.evil"));
        assert!(!TransferAllowList::default().allows("+15550100001"));
    }

    #[test]
    fn digest_ignores_key_order_and_the_confirmed_flag_only() {
        let a = json!({"amount": 100, "to": {"b": 1, "a": 2}});
        let b = json!({"to": {"a": 2, "b": 1}, "amount": 100, "confirmed": true});
        assert_eq!(args_digest(&a), args_digest(&b));
        assert_ne!(
            args_digest(&a),
            args_digest(&json!({"amount": 100.5, "to": {"a": 2, "b": 1}}))
        );
        assert_ne!(
            args_digest(&a),
            args_digest(&json!({"amount": 100, "to": {"a": 2, "b": 1, "confirmed": true}}))
        );
    }

    #[test]
    fn digest_known_answer() {
        // SHA-256 of `{"amount":100,"memo":"\"q\"","to":{"a":"x\ny\u0001é","b":1}}`,
        // computed independently (Python `json.dumps(sort_keys=True)` and `hashlib`).
        let args = json!({
            "to": {"b": 1, "a": "x\ny\u{1}é"},
            "memo": "\"q\"",
            "amount": 100,
            "confirmed": true
        });
        assert_eq!(
            args_digest(&args),
            "e404ffd317f71b76a2bcd07d38c15595161f21ba2045dba5f25299b39b22a5ff"
        );
    }

    #[test]
    fn confirmation_checks_function_window_and_arguments() {
        let args = json!({"amount": 100});
        let pending = PendingConfirmation::new("transfer_funds", &args, 1_000);
        assert_eq!(
            pending.check("transfer_funds", &args, 1_100, 300),
            ConfirmationCheck::Proceed
        );
        assert_eq!(
            pending.check("transfer_funds", &json!({"amount": 101}), 1_100, 300),
            ConfirmationCheck::Mismatch
        );
        assert_eq!(
            pending.check("transfer_funds", &args, 1_301, 300),
            ConfirmationCheck::Expired
        );
        assert_eq!(
            pending.check("other", &args, 1_100, 300),
            ConfirmationCheck::NothingPending
        );
    }
}
