//! Start-up configuration the runtime reads from the environment, and why start-up fails.
//!
//! Owns [`RuntimeError`] and the readers of `VOXGUARD_TOKEN_KEY` (and previous keys for
//! rotation, and the token lifetime), the audit trail settings (`VOXGUARD_AUDIT_*`) and the
//! emergency switch's initial state (`VOXGUARD_EMERGENCY_*`): every value is checked here, and a
//! bad one stops start-up with a message naming the variable. It must not serve or decide
//! anything per request. Server settings (listener, TLS, limits, credentials) are read by
//! `voxguard_server::ServerConfig`.

use std::time::Duration;

use voxguard_guard::{AuditKey, EmergencyState, KeyError, KeyRing, RateLimit, TokenKey};
use voxguard_server::{ConfigError, ServeError};
use voxguard_store::{Durability, SqliteAuditLog};

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Server configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A token key is invalid.
    #[error("{name}: {source}")]
    Key {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        source: KeyError,
    },
    /// Production mode needs a configured token key.
    #[error("VOXGUARD_ENV=production requires VOXGUARD_TOKEN_KEY (base64, at least 32 bytes; e.g. `openssl rand -base64 32`) so that every replica accepts the same tokens")]
    MissingKeyInProduction,
    /// Two agents share a name (names scope sessions and logs).
    #[error("two agents are named {0:?}; give each agent its own name")]
    DuplicateAgent(String),
    /// The audit trail cannot be configured or opened.
    #[error("{0}")]
    Audit(String),
    /// Invalid emergency mode value.
    #[error("VOXGUARD_EMERGENCY_MODE={0:?} is not valid: true or false")]
    InvalidEmergency(String),
    /// Invalid security console setting (`VOXGUARD_CONSOLE_*`).
    #[error("{0}")]
    InvalidConsole(String),
    /// Invalid token lifetime.
    #[error("VOXGUARD_TOKEN_TTL_SECS={0:?} is not valid: a whole number of seconds between 60 and 86400")]
    InvalidTtl(String),
    /// Invalid number of secret checks at once.
    #[error("VOXGUARD_SECRET_CHECKS={0:?} is not valid: a whole number of argon2 checks (PINs, operator passwords) that may run at once, from 1 to 1024")]
    InvalidSecretChecks(String),
    /// Invalid SWML render limit.
    #[error("VOXGUARD_SWML_RENDERS_PER_MIN={0:?} is not valid: a whole number of renders per minute per source address (0 turns the limit off)")]
    InvalidRenderLimit(String),
    /// The server could not start.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// An agent or the runtime breaks its compliance mode (or `VOXGUARD_COMPLIANCE` is not
    /// valid).
    #[error(transparent)]
    Compliance(#[from] crate::records::ComplianceError),
    /// Conversation records cannot be configured.
    #[error(transparent)]
    Records(#[from] crate::records::RecordsConfigError),
    /// The state backend (PostgreSQL, Redis or the SQLite files) cannot be configured or
    /// reached. The message never holds a URL.
    #[error("{0}")]
    State(String),
    /// The gateway configuration (`gateway.toml` or its environment overrides) is not valid.
    #[error("gateway configuration: {0}")]
    Gateway(#[from] crate::gateway::GatewayConfigError),
    /// The gateway's agent could not be declared (e.g. a bad route or rate limit).
    #[error("gateway: {0}")]
    GatewayAgent(#[from] crate::agent::AgentError),
}

/// The value of `name` through `lookup`, trimmed; unset and blank both read as `None`, the
/// way every variable here is read.
fn setting(lookup: impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Setting `name` read through `lookup` as a whole number within `range`: `Ok(None)` when
/// unset or blank, `Err` with the value as given for anything else.
fn number_in<T: std::str::FromStr + PartialOrd>(
    lookup: impl Fn(&str) -> Option<String>,
    name: &str,
    range: std::ops::RangeInclusive<T>,
) -> Result<Option<T>, String> {
    let Some(text) = setting(lookup, name) else {
        return Ok(None);
    };
    match text.parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(text),
    }
}

/// Token keys resolved from the environment.
pub(crate) struct KeySettings {
    /// The key ring.
    pub(crate) keys: KeyRing,
    /// Whether the current key was generated because none was configured.
    pub(crate) generated: bool,
}

/// Read `VOXGUARD_TOKEN_KEY`, `VOXGUARD_TOKEN_KEYS_PREVIOUS` (comma-separated) and
/// `VOXGUARD_TOKEN_TTL_SECS` through `lookup`.
pub(crate) fn keys_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
    production: bool,
) -> Result<KeySettings, RuntimeError> {
    let get = |name: &str| setting(&lookup, name);
    let (current, generated) = match get("VOXGUARD_TOKEN_KEY") {
        Some(text) => (
            TokenKey::from_base64(&text).map_err(|source| RuntimeError::Key {
                name: "VOXGUARD_TOKEN_KEY",
                source,
            })?,
            false,
        ),
        None if production => return Err(RuntimeError::MissingKeyInProduction),
        None => (TokenKey::generate(), true),
    };
    let mut previous = Vec::new();
    for text in get("VOXGUARD_TOKEN_KEYS_PREVIOUS")
        .iter()
        .flat_map(|v| v.split(','))
    {
        let text = text.trim();
        if !text.is_empty() {
            previous.push(
                TokenKey::from_base64(text).map_err(|source| RuntimeError::Key {
                    name: "VOXGUARD_TOKEN_KEYS_PREVIOUS",
                    source,
                })?,
            );
        }
    }
    let mut keys = KeyRing::new(current).with_previous(previous);
    if let Some(ttl) = token_ttl_from_lookup(&lookup)? {
        keys = keys.with_ttl(ttl);
    }
    Ok(KeySettings { keys, generated })
}

/// Read `VOXGUARD_TOKEN_TTL_SECS` through `lookup` as the runtime does at start-up: `None`
/// when unset or blank (the key ring's default lifetime), else a whole number of seconds
/// between 60 and 86400. Public so inspection tools (`voxguard check`) agree with start-up.
///
/// # Errors
///
/// [`RuntimeError::InvalidTtl`] for any other value.
pub fn token_ttl_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<Duration>, RuntimeError> {
    number_in(lookup, "VOXGUARD_TOKEN_TTL_SECS", 60..=86_400)
        .map(|secs| secs.map(Duration::from_secs))
        .map_err(RuntimeError::InvalidTtl)
}

/// The most argon2 checks a runtime lets run at once, however configured.
pub(crate) const MAX_SECRET_CHECKS: usize = 1024;

/// Read `VOXGUARD_SECRET_CHECKS` through `lookup`: how many argon2 checks (caller PINs and
/// secrets, operator passwords) may run at once. `None` when unset or blank: half the cores
/// this process may use (its CPU quota where one is set), at least one — so on more than one
/// core a flood of attempts never takes them all. Each running check holds a
/// core and, with the default cost, 19 MiB. Public so inspection tools (`voxguard check`)
/// agree with start-up.
///
/// # Errors
///
/// [`RuntimeError::InvalidSecretChecks`] for anything but a whole number from 1 to 1024.
pub fn secret_checks_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<usize>, RuntimeError> {
    number_in(lookup, "VOXGUARD_SECRET_CHECKS", 1..=MAX_SECRET_CHECKS)
        .map_err(RuntimeError::InvalidSecretChecks)
}

/// SWML renders allowed per minute from one source address by default. A render mints fresh
/// tokens for a fresh server-side session (and so a fresh per-call rate budget); holders of
/// the Basic credentials must not be able to mint them at will.
pub(crate) const DEFAULT_SWML_RENDERS_PER_MIN: u32 = 120;

/// Read `VOXGUARD_SWML_RENDERS_PER_MIN` through `lookup`: SWML renders per minute per source
/// address (default 120; `0` turns the limit off). Behind a trusted
/// proxy (`VOXGUARD_TRUST_PROXY`) every request's source is the proxy, so the limit is off unless
/// the variable sets it. Public so inspection tools (`voxguard check`) agree with start-up.
///
/// # Errors
///
/// [`RuntimeError::InvalidRenderLimit`] when the value is not a whole number of renders.
pub fn render_limit_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
    behind_proxy: bool,
) -> Result<Option<RateLimit>, RuntimeError> {
    let per_minute = match number_in(lookup, "VOXGUARD_SWML_RENDERS_PER_MIN", 0..=u32::MAX)
        .map_err(RuntimeError::InvalidRenderLimit)?
    {
        None if behind_proxy => 0,
        None => DEFAULT_SWML_RENDERS_PER_MIN,
        Some(per_minute) => per_minute,
    };
    if per_minute == 0 {
        return Ok(None);
    }
    RateLimit::new(per_minute, Duration::from_secs(60))
        .map(Some)
        .map_err(|_| RuntimeError::InvalidRenderLimit(per_minute.to_string()))
}

/// Open the SQLite audit trail in `dir` (`dir/audit.db`, a database of its own so its
/// durability setting does not slow call sessions), configured by `VOXGUARD_AUDIT_DURABILITY`
/// (`normal`: survives a process crash or `kill -9`; `fsync`: also a power loss, with group
/// commit), `VOXGUARD_AUDIT_KEY` (base64 HMAC key, ≥ 32 bytes, for signed checkpoints that make
/// truncation detectable; required in production) and `VOXGUARD_AUDIT_CHECKPOINT_EVERY`
/// (records between checkpoints, default 100).
pub async fn open_audit_log_from_env(
    dir: impl AsRef<std::path::Path>,
    production: bool,
) -> Result<SqliteAuditLog, RuntimeError> {
    let settings = AuditSettings::from_env(production)?;
    SqliteAuditLog::open_in_dir(dir, settings.durability, settings.key, settings.every)
        .await
        .map_err(|e| RuntimeError::Audit(format!("the audit trail cannot be opened: {e}")))
}

/// Read `VOXGUARD_AUDIT_DURABILITY` through `lookup` as the runtime does at start-up: unset,
/// blank or `normal` is [`Durability::Normal`], `fsync` is [`Durability::Fsync`] (any case).
/// Public so inspection tools (`voxguard check`) agree with start-up.
///
/// # Errors
///
/// [`RuntimeError::Audit`] for any other value.
pub fn audit_durability_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Durability, RuntimeError> {
    match setting(&lookup, "VOXGUARD_AUDIT_DURABILITY")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("normal") => Ok(Durability::Normal),
        Some("fsync") => Ok(Durability::Fsync),
        Some(other) => Err(RuntimeError::Audit(format!(
            "VOXGUARD_AUDIT_DURABILITY={other:?} is not valid: normal or fsync"
        ))),
    }
}

/// `VOXGUARD_AUDIT_CHECKPOINT_EVERY` read through `lookup`: unset or blank is 100, else a whole
/// number greater than 0. Public so inspection tools (`voxguard check`) agree with start-up.
///
/// # Errors
///
/// [`RuntimeError::Audit`] for any other value.
pub fn checkpoint_every_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<u64, RuntimeError> {
    number_in(lookup, "VOXGUARD_AUDIT_CHECKPOINT_EVERY", 1..=u64::MAX)
        .map(|every| every.unwrap_or(100))
        .map_err(|v| {
            RuntimeError::Audit(format!(
                "VOXGUARD_AUDIT_CHECKPOINT_EVERY={v:?} is not valid: a whole number greater than 0"
            ))
        })
}

/// The audit trail's settings from `VOXGUARD_AUDIT_DURABILITY`, `VOXGUARD_AUDIT_KEY` and
/// `VOXGUARD_AUDIT_CHECKPOINT_EVERY`, whichever backend keeps the trail.
pub(crate) struct AuditSettings {
    pub(crate) durability: Durability,
    pub(crate) key: Option<AuditKey>,
    pub(crate) every: u64,
}

impl AuditSettings {
    /// Read and check the variables (see [`open_audit_log_from_env`]).
    pub(crate) fn from_env(production: bool) -> Result<Self, RuntimeError> {
        let get = |name: &str| setting(|name| std::env::var(name).ok(), name);
        let durability = audit_durability_from_lookup(|name| std::env::var(name).ok())?;
        let key = match get("VOXGUARD_AUDIT_KEY") {
            Some(text) => Some(
                AuditKey::from_base64(&text)
                    .map_err(|e| RuntimeError::Audit(format!("VOXGUARD_AUDIT_KEY: {e}")))?,
            ),
            None if production => {
                return Err(RuntimeError::Audit(
                    "VOXGUARD_ENV=production requires VOXGUARD_AUDIT_KEY (base64, at least 32 bytes) so that truncating the audit trail is detectable".into(),
                ))
            }
            None => {
                tracing::warn!("VOXGUARD_AUDIT_KEY is not set: audit checkpoints are not signed, so deleting the newest audit records would go unnoticed");
                None
            }
        };
        let every = checkpoint_every_from_lookup(|name| std::env::var(name).ok())?;
        Ok(Self {
            durability,
            key,
            every,
        })
    }
}

/// Read `VOXGUARD_EMERGENCY_MODE` (true/false) and `VOXGUARD_EMERGENCY_TOOLS` (comma-separated
/// tool names; unset = every sensitive tool) through `lookup`. Public so inspection tools
/// (`voxguard check`) agree with start-up.
///
/// # Errors
///
/// [`RuntimeError::InvalidEmergency`] for a mode that is not true or false.
pub fn emergency_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<EmergencyState, RuntimeError> {
    let enabled = match lookup("VOXGUARD_EMERGENCY_MODE")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("false") | Some("0") | Some("off") | Some("no") => false,
        Some("true") | Some("1") | Some("on") | Some("yes") => true,
        Some(other) => return Err(RuntimeError::InvalidEmergency(other.to_string())),
    };
    let tools = lookup("VOXGUARD_EMERGENCY_TOOLS")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect::<std::collections::BTreeSet<_>>()
        })
        .filter(|set| !set.is_empty());
    Ok(EmergencyState { enabled, tools })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    }

    #[test]
    fn the_render_limit_defaults_on_and_can_be_turned_off() {
        let limit = render_limit_from_lookup(lookup(&[]), false).expect("default");
        assert_eq!(limit.map(|l| l.max()), Some(DEFAULT_SWML_RENDERS_PER_MIN));
        let set = [("VOXGUARD_SWML_RENDERS_PER_MIN", "30")];
        assert!(
            render_limit_from_lookup(lookup(&[]), true)
                .expect("proxy")
                .is_none(),
            "behind a proxy every source is the proxy: off by default"
        );
        let limit = render_limit_from_lookup(lookup(&set), true).expect("explicit");
        assert_eq!(limit.map(|l| l.max()), Some(30));
        let off = [("VOXGUARD_SWML_RENDERS_PER_MIN", "0")];
        assert!(render_limit_from_lookup(lookup(&off), false)
            .expect("off")
            .is_none());
        let bad = [("VOXGUARD_SWML_RENDERS_PER_MIN", "lots")];
        let error = render_limit_from_lookup(lookup(&bad), false).expect_err("refused");
        assert!(
            error.to_string().contains("VOXGUARD_SWML_RENDERS_PER_MIN"),
            "{error}"
        );
    }

    #[test]
    fn secret_checks_at_once_are_read_and_bad_values_name_the_variable() {
        assert_eq!(secret_checks_from_lookup(lookup(&[])).unwrap(), None);
        let blank = [("VOXGUARD_SECRET_CHECKS", " ")];
        assert_eq!(secret_checks_from_lookup(lookup(&blank)).unwrap(), None);
        for (value, want) in [("1", 1), (" 4 ", 4), ("1024", 1024)] {
            let vars = [("VOXGUARD_SECRET_CHECKS", value)];
            assert_eq!(
                secret_checks_from_lookup(lookup(&vars)).unwrap(),
                Some(want)
            );
        }
        for value in ["0", "-1", "1025", "two", "1.5"] {
            let vars = [("VOXGUARD_SECRET_CHECKS", value)];
            let error = secret_checks_from_lookup(lookup(&vars)).expect_err(value);
            assert!(
                error.to_string().contains("VOXGUARD_SECRET_CHECKS"),
                "{error}"
            );
        }
    }

    #[test]
    fn emergency_mode_from_the_environment_is_parsed() {
        let off = EmergencyState::default();
        for vars in [
            vec![],
            vec![("VOXGUARD_EMERGENCY_MODE", "")],
            vec![("VOXGUARD_EMERGENCY_MODE", "false")],
            vec![("VOXGUARD_EMERGENCY_MODE", " Off ")],
            vec![("VOXGUARD_EMERGENCY_MODE", "0")],
            vec![("VOXGUARD_EMERGENCY_MODE", "no")],
        ] {
            assert_eq!(
                emergency_from_lookup(lookup(&vars)).expect("valid"),
                off,
                "{vars:?}"
            );
        }
        for value in ["true", "TRUE", " yes", "1", "on"] {
            let vars = [("VOXGUARD_EMERGENCY_MODE", value)];
            assert_eq!(
                emergency_from_lookup(lookup(&vars)).expect("valid"),
                EmergencyState {
                    enabled: true,
                    tools: None
                },
                "{value:?}"
            );
        }
        for value in ["maybe", "enabled", "2"] {
            let vars = [("VOXGUARD_EMERGENCY_MODE", value)];
            let error = emergency_from_lookup(lookup(&vars)).expect_err(value);
            assert!(
                matches!(error, RuntimeError::InvalidEmergency(_)),
                "{error:?}"
            );
            assert!(
                error.to_string().contains("VOXGUARD_EMERGENCY_MODE"),
                "{error}"
            );
        }
        let vars = [
            ("VOXGUARD_EMERGENCY_MODE", "true"),
            ("VOXGUARD_EMERGENCY_TOOLS", " pay, opening_hours,,pay "),
        ];
        let named = emergency_from_lookup(lookup(&vars)).expect("valid");
        assert_eq!(
            named,
            EmergencyState {
                enabled: true,
                tools: Some(["opening_hours".to_string(), "pay".to_string()].into()),
            }
        );
        let vars = [
            ("VOXGUARD_EMERGENCY_MODE", "true"),
            ("VOXGUARD_EMERGENCY_TOOLS", " , "),
        ];
        assert_eq!(
            emergency_from_lookup(lookup(&vars)).expect("valid").tools,
            None,
            "an empty list means every sensitive tool"
        );
    }
}
