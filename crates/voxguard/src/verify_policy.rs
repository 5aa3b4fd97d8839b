//! How verification behaves for an agent: [`VerificationPolicy`] (attempts, lockout, the
//! session flag a success sets, tools it activates) and the [`CallerAllowList`] that maps caller
//! numbers to names and roles.
//!
//! Owns the *declaration* only: the policy is checked by `Agent::build` and read by the
//! verification kit (`verification`) and the pipeline. It must not verify anything, read a
//! store or a clock. Caller ID alone never unlocks anything: a role from the allow-list takes
//! effect only after a secret was verified on the call.

use std::collections::HashMap;
use std::time::Duration;

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
            flag: "pin_verified".into(),
            activate: Vec::new(),
            on_lockout: LockoutAction::Hangup,
            callers: CallerAllowList::default(),
        }
    }
}

impl VerificationPolicy {
    /// Defaults: 3 attempts, 15-minute lockout, flag `pin_verified`, hang up on lockout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Failed attempts allowed before the lockout (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// How long a lockout lasts.
    pub fn lockout(mut self, lockout: Duration) -> Self {
        self.lockout = lockout;
        self
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
