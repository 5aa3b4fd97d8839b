//! Agent-wide tool-call limits read from the environment: [`AgentLimits`].
//!
//! Owns parsing two "calls per minute" variables (per caller and for everyone) with defaults,
//! and declaring them on an [`AgentBuilder`]. A set but invalid value is an error naming the
//! variable, never a silent default. It must not enforce anything: the rate limiter does.

use std::time::Duration;

use crate::agent::AgentBuilder;

/// Why a limit variable was refused.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?} is not valid: a whole number of calls per minute greater than 0")]
pub struct LimitsError {
    /// The variable.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// Agent-wide tool-call limits (per caller and for everyone, per minute).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentLimits {
    /// Tool calls per minute per caller.
    pub per_caller_per_min: u32,
    /// Tool calls per minute for everyone.
    pub global_per_min: u32,
}

impl AgentLimits {
    /// From the variables `caller_var` and `global_var`, each defaulting to `defaults`; a set
    /// but invalid value (not a whole number greater than 0) is an error naming the variable.
    pub fn from_env(
        caller_var: &str,
        global_var: &str,
        defaults: Self,
    ) -> Result<Self, LimitsError> {
        Self::from_lookup(
            |name| std::env::var(name).ok(),
            caller_var,
            global_var,
            defaults,
        )
    }

    /// As [`AgentLimits::from_env`], reading variables through `lookup`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        caller_var: &str,
        global_var: &str,
        defaults: Self,
    ) -> Result<Self, LimitsError> {
        let read = |name: &str, default: u32| match lookup(name) {
            Some(v) if !v.trim().is_empty() => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(LimitsError {
                    name: name.to_string(),
                    value: v,
                }),
            _ => Ok(default),
        };
        Ok(Self {
            per_caller_per_min: read(caller_var, defaults.per_caller_per_min)?,
            global_per_min: read(global_var, defaults.global_per_min)?,
        })
    }

    /// Declare the limits on an agent.
    pub fn apply(self, builder: AgentBuilder) -> AgentBuilder {
        let minute = Duration::from_secs(60);
        builder
            .rate_limit_per_caller(self.per_caller_per_min, minute)
            .rate_limit_global(self.global_per_min, minute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: AgentLimits = AgentLimits {
        per_caller_per_min: 30,
        global_per_min: 600,
    };

    #[test]
    fn unset_and_blank_take_the_defaults_and_bad_values_name_the_variable() {
        let none = |_: &str| None;
        assert_eq!(
            AgentLimits::from_lookup(none, "C", "G", DEFAULTS).ok(),
            Some(DEFAULTS)
        );
        let set = |name: &str| match name {
            "C" => Some(" 5 ".to_string()),
            _ => Some(String::new()),
        };
        assert_eq!(
            AgentLimits::from_lookup(set, "C", "G", DEFAULTS).ok(),
            Some(AgentLimits {
                per_caller_per_min: 5,
                global_per_min: 600
            })
        );
        for bad in ["0", "-1", "many", "1.5"] {
            let lookup = |name: &str| (name == "G").then(|| bad.to_string());
            let error = AgentLimits::from_lookup(lookup, "C", "G", DEFAULTS)
                .expect_err("an invalid value is refused");
            assert_eq!(error.name, "G");
            assert!(error.to_string().starts_with("G="), "{error}");
        }
    }
}
