//! What kinds of conversation records exist and how long each is kept by default.
//!
//! Owns [`RecordKind`] (the closed list, with its stored spelling and its environment name) and
//! [`Retention`] (days per kind, read from `VOXGUARD_RETENTION_<KIND>_DAYS` or set in code). It
//! must not store, encrypt or delete anything: the purge in `records` applies these numbers.

use std::collections::BTreeMap;
use std::fmt;

/// One day, in seconds.
const DAY_SECS: u64 = 24 * 60 * 60;

/// The kinds of record a call leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    /// The end-of-call summary (`post_prompt_data`).
    Summary,
    /// The conversation transcript (`call_log`).
    Transcript,
    /// One tool call: declared arguments (redacted) and the outcome.
    ToolLog,
    /// A reference to a call recording (URL and metadata, never the audio).
    Recording,
    /// A payment result, masked (never a card number or CVV).
    Payment,
}

impl RecordKind {
    /// Every kind, in a stable order.
    pub const ALL: [RecordKind; 5] = [
        RecordKind::Summary,
        RecordKind::Transcript,
        RecordKind::ToolLog,
        RecordKind::Recording,
        RecordKind::Payment,
    ];

    /// The stored name: `summary`, `transcript`, `tool_log`, `recording`, `payment`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RecordKind::Summary => "summary",
            RecordKind::Transcript => "transcript",
            RecordKind::ToolLog => "tool_log",
            RecordKind::Recording => "recording",
            RecordKind::Payment => "payment",
        }
    }

    /// The kind stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The retention variable: `VOXGUARD_RETENTION_SUMMARY_DAYS`, ….
    pub fn retention_env(&self) -> String {
        format!(
            "VOXGUARD_RETENTION_{}_DAYS",
            self.as_str().to_ascii_uppercase()
        )
    }

    /// The default retention in days: transcripts 30, tool logs 90, recording references 30,
    /// summaries 365, payment results 90.
    pub fn default_days(&self) -> u32 {
        match self {
            RecordKind::Summary => 365,
            RecordKind::Transcript => 30,
            RecordKind::ToolLog => 90,
            RecordKind::Recording => 30,
            RecordKind::Payment => 90,
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long each kind of record is kept, in whole days (1 to 36,500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    days: BTreeMap<RecordKind, u32>,
}

impl Default for Retention {
    /// The minimal defaults of [`RecordKind::default_days`].
    fn default() -> Self {
        Self {
            days: RecordKind::ALL
                .into_iter()
                .map(|kind| (kind, kind.default_days()))
                .collect(),
        }
    }
}

/// A retention setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?} is not valid: a whole number of days from 1 to 36500")]
pub struct RetentionError {
    /// The variable (or `code` for a value set in code).
    pub name: String,
    /// The value given.
    pub value: String,
}

/// The longest retention accepted: 100 years.
const MAX_DAYS: u32 = 36_500;

impl Retention {
    /// Keep `kind` for `days` days.
    pub fn set(mut self, kind: RecordKind, days: u32) -> Result<Self, RetentionError> {
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(RetentionError {
                name: kind.retention_env(),
                value: days.to_string(),
            });
        }
        self.days.insert(kind, days);
        Ok(self)
    }

    /// The defaults, overridden by `VOXGUARD_RETENTION_<KIND>_DAYS` read through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, RetentionError> {
        let mut retention = Self::default();
        for kind in RecordKind::ALL {
            let name = kind.retention_env();
            let Some(value) = lookup(&name).map(|v| v.trim().to_string()) else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            let days = value
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=MAX_DAYS).contains(d))
                .ok_or_else(|| RetentionError {
                    name: name.clone(),
                    value: value.clone(),
                })?;
            retention.days.insert(kind, days);
        }
        Ok(retention)
    }

    /// Days `kind` is kept.
    pub fn days(&self, kind: RecordKind) -> u32 {
        self.days
            .get(&kind)
            .copied()
            .unwrap_or_else(|| kind.default_days())
    }

    /// The unix second at which a record of `kind` made at `now` expires.
    pub fn expires_at(&self, kind: RecordKind, now: u64) -> u64 {
        now.saturating_add(u64::from(self.days(kind)) * DAY_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_defaults_are_minimal() {
        for kind in RecordKind::ALL {
            assert_eq!(RecordKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(RecordKind::parse("Summary"), None);
        let r = Retention::default();
        assert_eq!(
            (
                r.days(RecordKind::Transcript),
                r.days(RecordKind::ToolLog),
                r.days(RecordKind::Recording),
                r.days(RecordKind::Summary)
            ),
            (30, 90, 30, 365)
        );
        assert_eq!(
            r.expires_at(RecordKind::Transcript, 100),
            100 + 30 * DAY_SECS
        );
    }

    #[test]
    fn env_overrides_and_bad_values_name_the_variable() {
        let r = Retention::from_lookup(|name| {
            (name == "VOXGUARD_RETENTION_TRANSCRIPT_DAYS").then(|| "7".to_string())
        })
        .unwrap();
        assert_eq!(r.days(RecordKind::Transcript), 7);
        assert_eq!(r.days(RecordKind::Summary), 365);
        for bad in ["0", "-1", "abc", "36501"] {
            let error = Retention::from_lookup(|name| {
                (name == "VOXGUARD_RETENTION_TOOL_LOG_DAYS").then(|| bad.to_string())
            })
            .unwrap_err();
            assert_eq!(error.name, "VOXGUARD_RETENTION_TOOL_LOG_DAYS");
        }
        assert!(Retention::default().set(RecordKind::Payment, 0).is_err());
    }
}
