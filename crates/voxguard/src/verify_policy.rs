//! How verification behaves for an agent: [`VerificationPolicy`] (attempts, escalating
//! lockouts, the daily cap, the key attempt counters are stored under, the session flag a
//! success sets, tools it activates) and the [`CallerAllowList`] that maps caller numbers to
//! names and roles.
//!
//! Owns the *declaration* only: the policy is checked by `Agent::build` and read by the
//! verification kit (`verification`) and the pipeline. It must not verify anything, read a
//! store or a clock. Caller ID alone never unlocks anything: a role from the allow-list takes
//! effect only after a secret was verified on the call.

use std::collections::HashMap;
use std::time::Duration;

use voxguard_guard::{KeyRing, SecretKey};
use voxguard_store::AttemptLimits;

/// The purpose the attempt-subject key is derived for from the token key
/// ([`KeyRing::derive`]) when the policy configures none.
pub(crate) const SUBJECT_KEY_PURPOSE: &str = "voxguard-attempt-subjects";

/// What happens when a subject is locked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockoutAction {
    /// End the call after the AI says the lockout sentence.
    Hangup,
    /// Transfer the caller to a security line (added to the transfer allow-list).
    Transfer(String),
}

/// A caller on the allow-list: who they are and which role verification grants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerEntry {
    /// The verification subject (e.g. customer id) that must be verified for the role.
    pub subject: String,
    /// Display name.
    pub name: String,
    /// Role granted after a successful verification on a call from this number.
    pub role: String,
}

/// Caller numbers mapped to names and roles.
#[derive(Debug, Clone, Default)]
pub struct CallerAllowList {
    entries: HashMap<String, CallerEntry>,
}

impl CallerAllowList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `number` (any punctuation is ignored): a call from it whose verified subject is
    /// `subject` gets `role`. Both must hold — the number alone is spoofable, and a secret
    /// verified for someone else must not borrow this number's role.
    pub fn caller(
        mut self,
        number: &str,
        subject: impl Into<String>,
        name: impl Into<String>,
        role: impl Into<String>,
    ) -> Self {
        self.entries.insert(
            canonical_number(number),
            CallerEntry {
                subject: subject.into(),
                name: name.into(),
                role: role.into(),
            },
        );
        self
    }

    /// The entry for `number`, if listed.
    pub fn get(&self, number: &str) -> Option<&CallerEntry> {
        self.entries.get(&canonical_number(number))
    }
}

fn canonical_number(number: &str) -> String {
    number
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect()
}

/// How verification behaves for an agent.
#[derive(Debug, Clone)]
pub struct VerificationPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) lockout: Duration,
    pub(crate) max_lockout: Duration,
    pub(crate) daily_cap: u32,
    pub(crate) cap_window: Duration,
    pub(crate) subject_key: Option<SecretKey>,
    pub(crate) flag: String,
    pub(crate) activate: Vec<String>,
    pub(crate) on_lockout: LockoutAction,
    pub(crate) callers: CallerAllowList,
}

impl Default for VerificationPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            lockout: Duration::from_secs(15 * 60),
            max_lockout: Duration::from_secs(24 * 3600),
            daily_cap: 10,
            cap_window: Duration::from_secs(24 * 3600),
            subject_key: None,
            flag: "pin_verified".into(),
            activate: Vec::new(),
            on_lockout: LockoutAction::Hangup,
            callers: CallerAllowList::default(),
        }
    }
}

impl VerificationPolicy {
    /// Defaults: 3 attempts, a 15-minute lockout that doubles with each consecutive lockout up
    /// to 24 hours, at most 10 failed attempts per subject per 24 hours, attempt counters keyed
    /// by a key derived from the token key, flag `pin_verified`, hang up on lockout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Failed attempts allowed before the lockout (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// How long the first lockout lasts (default 15 minutes). Each consecutive lockout lasts
    /// twice as long as the one before, up to [`max_lockout`](Self::max_lockout); a success
    /// starts over.
    pub fn lockout(mut self, lockout: Duration) -> Self {
        self.lockout = lockout;
        self
    }

    /// The longest an escalated lockout lasts (default 24 hours). Set it to the
    /// [`lockout`](Self::lockout) to turn escalation off.
    pub fn max_lockout(mut self, max_lockout: Duration) -> Self {
        self.max_lockout = max_lockout;
        self
    }

    /// Failed attempts allowed per subject within [`cap_window`](Self::cap_window) (default 10,
    /// at least 1). The failure that reaches the cap locks the subject until the window ends,
    /// whatever the lockout.
    pub fn daily_cap(mut self, failures: u32) -> Self {
        self.daily_cap = failures.max(1);
        self
    }

    /// The window of the daily cap (default 24 hours, at least one minute). It opens at a
    /// subject's first failure; when it ends with no lockout active the subject's failures and
    /// escalation are forgotten, and its row is purged.
    pub fn cap_window(mut self, window: Duration) -> Self {
        self.cap_window = window.max(Duration::from_secs(60));
        self
    }

    /// Store attempt counters under HMAC-SHA256(`key`, agent and subject), so the database
    /// never holds a subject (often a caller's number) in clear. Default: a key derived from the
    /// current token key, which changes when the token key is rotated (and with it every
    /// counter restarts); set a dedicated key to keep counters across token-key rotations.
    pub fn subject_key(mut self, key: SecretKey) -> Self {
        self.subject_key = Some(key);
        self
    }

    /// The key under which `agent`'s attempt counter for `subject` is stored: what an operator
    /// passes to `AttemptStore::reset_attempts` to unlock a customer. `keys` are the runtime's
    /// token keys (used when no [`subject_key`](Self::subject_key) is set). `None` only if
    /// HMAC fails, which it does not.
    pub fn attempt_key(&self, keys: &KeyRing, agent: &str, subject: &str) -> Option<String> {
        match &self.subject_key {
            Some(key) => attempt_row_key(key, agent, subject),
            None => attempt_row_key(&keys.derive(SUBJECT_KEY_PURPOSE), agent, subject),
        }
    }

    /// The limits the attempt store applies.
    pub(crate) fn limits(&self) -> AttemptLimits {
        AttemptLimits {
            max_failures: self.max_attempts,
            lockout_secs: self.lockout.as_secs(),
            max_lockout_secs: self.max_lockout.as_secs(),
            window_cap: self.daily_cap,
            window_secs: self.cap_window.as_secs(),
        }
    }

    /// The session flag a success sets (what `Tool::requires` checks).
    pub fn flag(mut self, flag: impl Into<String>) -> Self {
        self.flag = flag.into();
        self
    }

    /// Tools to switch on (`toggle_functions`) after a success; render them with
    /// `Tool::inactive()`.
    pub fn activate<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.activate.extend(tools.into_iter().map(Into::into));
        self
    }

    /// What a lockout does to the call.
    pub fn on_lockout(mut self, action: LockoutAction) -> Self {
        self.on_lockout = action;
        self
    }

    /// Callers whose successful verification grants a role.
    pub fn callers(mut self, callers: CallerAllowList) -> Self {
        self.callers = callers;
        self
    }
}

/// The stored key of `agent`'s counter for `subject`: hex HMAC-SHA256 under `key` of the JSON
/// array `[agent, subject]` (unambiguous whatever characters either holds).
pub(crate) fn attempt_row_key(key: &SecretKey, agent: &str, subject: &str) -> Option<String> {
    key.mac_hex(serde_json::json!([agent, subject]).to_string().as_bytes())
}
