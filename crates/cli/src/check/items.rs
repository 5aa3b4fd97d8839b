//! The checklist items read from the environment alone: production mode, the runtime's own
//! start-up checks, HTTPS, the platform's Basic credentials, the keys, the emergency and
//! metrics credentials, retention and compliance modes.
//!
//! Each function turns a few variables into one [`Item`] with a fix for anything short of a
//! pass. Validation is the runtime's wherever it is public (`ServerConfig::from_lookup`,
//! `token_ttl_from_lookup`, `render_limit_from_lookup`, `audit_durability_from_lookup`,
//! `secret_checks_from_lookup`,
//! `SecretKey::from_base64`, `RecordsKeyring::from_text`, `BasicCredentials::check_strength`,
//! `Retention::from_lookup`, `Compliance::parse`), so `check` and start-up agree. It must
//! never put a value into a detail (only variable names, lengths and non-secret settings).

use voxguard::guard::{BasicCredentials, RecordsKeyring, SecretKey};
use voxguard::records::RecordKind;
use voxguard::{Compliance, Retention};

use super::env::Env;
use super::{Item, Status};

/// Whether `VOXGUARD_ENV` says production (`Err`: it holds something else).
pub fn production_mode(env: &Env) -> Result<bool, String> {
    match env.get("VOXGUARD_ENV") {
        None | Some("development") | Some("dev") | Some("test") => Ok(false),
        Some("production") | Some("prod") => Ok(true),
        Some(other) => Err(other.to_string()),
    }
}

/// Whether conversation records are on (`VOXGUARD_RECORDS` unset, on, true, 1).
pub fn records_on(env: &Env) -> bool {
    !matches!(
        env.get("VOXGUARD_RECORDS")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("off") | Some("false") | Some("0")
    )
}

/// A boolean variable as the server reads it (`None`: not a boolean).
fn flag(env: &Env, name: &str) -> Option<bool> {
    match env.get(name).map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") | Some("0") | Some("no") | Some("off") => Some(false),
        Some("true") | Some("1") | Some("yes") | Some("on") => Some(true),
        Some(_) => None,
    }
}

/// `production`: `VOXGUARD_ENV=production`.
pub fn production(env: &Env) -> Item {
    match production_mode(env) {
        Ok(true) => Item::pass("production", "VOXGUARD_ENV=production: the runtime refuses to start with weak credentials, missing keys or plain-http webhooks"),
        Ok(false) => Item::fail(
            "production",
            "VOXGUARD_ENV is not production: the runtime generates missing keys and credentials and accepts weak ones",
            "set VOXGUARD_ENV=production",
        ),
        Err(other) => Item::fail(
            "production",
            format!("VOXGUARD_ENV={other:?} is neither production nor development: the runtime refuses to start"),
            "set VOXGUARD_ENV=production",
        ),
    }
}

/// `server_config`: the runtime's own start-up checks of the server settings
/// (`ServerConfig::from_lookup`), the token lifetime, the SWML render limit, the audit
/// durability and checkpoint interval, the emergency mode and the secret checks at once.
pub fn server_config(env: &Env) -> Item {
    let checked = voxguard::server::ServerConfig::from_lookup(env.lookup())
        .map_err(|err| err.to_string())
        .and_then(|config| {
            voxguard::token_ttl_from_lookup(env.lookup()).map_err(|err| err.to_string())?;
            voxguard::render_limit_from_lookup(env.lookup(), config.trust_proxy)
                .map_err(|err| err.to_string())?;
            voxguard::checkpoint_every_from_lookup(env.lookup()).map_err(|err| err.to_string())?;
            voxguard::emergency_from_lookup(env.lookup()).map_err(|err| err.to_string())?;
            voxguard::secret_checks_from_lookup(env.lookup()).map_err(|err| err.to_string())?;
            voxguard::audit_durability_from_lookup(env.lookup()).map_err(|err| err.to_string())
        });
    match checked {
        Ok(_) => Item::pass(
            "server_config",
            "the runtime's start-up checks (ServerConfig, token lifetime, SWML render limit, audit durability and checkpoints, emergency mode, secret checks at once) accept these settings",
        ),
        Err(err) => Item::fail(
            "server_config",
            format!("the runtime would refuse to start: {err}"),
            "correct the variable named above (docs/configuration.md lists every one)",
        ),
    }
}

/// `https`: TLS on with readable files, an https public base, or a trusted proxy; with
/// `--url`, an https URL; and no plain-http webhook in the live document.
pub fn https(env: &Env, url_https: Option<bool>, live_http: &[String]) -> Item {
    const FIX: &str = "set SWML_SSL_ENABLED=true with SWML_SSL_CERT_PATH and SWML_SSL_KEY_PATH, or terminate TLS at a proxy and set SWML_PROXY_URL_BASE=https://your-public-host";
    if !live_http.is_empty() {
        return Item::fail(
            "https",
            format!(
                "the live agent renders plain-http webhook URLs ({}): the platform would send the Basic credentials and function tokens in clear",
                live_http.join(", ")
            ),
            FIX,
        );
    }
    let mut problems = Vec::new();
    let mut warn = None;
    let tls = match flag(env, "SWML_SSL_ENABLED") {
        None => {
            problems.push("SWML_SSL_ENABLED is not true or false".to_string());
            false
        }
        Some(false) => false,
        Some(true) => {
            let mut usable = true;
            for var in ["SWML_SSL_CERT_PATH", "SWML_SSL_KEY_PATH"] {
                match env.get(var) {
                    None => {
                        problems.push(format!("SWML_SSL_ENABLED=true but {var} is not set"));
                        usable = false;
                    }
                    Some(path) => match std::fs::File::open(path).and_then(|f| f.metadata()) {
                        Ok(meta) if meta.is_file() => {
                            if var == "SWML_SSL_KEY_PATH" && world_or_group_readable(&meta) {
                                warn = Some(format!(
                                    "the TLS private key {path} can be read by other users (chmod 600 it)"
                                ));
                            }
                        }
                        Ok(_) => {
                            problems.push(format!("{var} ({path}) is not a file"));
                            usable = false;
                        }
                        Err(err) => {
                            problems.push(format!("{var} ({path}) cannot be read: {err}"));
                            usable = false;
                        }
                    },
                }
            }
            usable
        }
    };
    let proxy = env.get("SWML_PROXY_URL_BASE");
    let proxy_https = proxy.is_some_and(|base| {
        voxguard::server::config::parse_base_url(base).is_some_and(|url| url.scheme() == "https")
    });
    if proxy.is_some() && !proxy_https {
        problems.push("SWML_PROXY_URL_BASE is not an https URL without credentials".into());
    }
    let trust_proxy = flag(env, "VOXGUARD_TRUST_PROXY") == Some(true);
    if !problems.is_empty() && !proxy_https && url_https != Some(true) {
        return Item::fail("https", problems.join("; "), FIX);
    }
    let how = if tls {
        "TLS is served by the agent (SWML_SSL_ENABLED)"
    } else if proxy_https {
        "webhooks use the https public base SWML_PROXY_URL_BASE"
    } else if url_https == Some(true) {
        "the agent answers on an https URL (--url)"
    } else if trust_proxy {
        return Item::warn(
            "https",
            "only VOXGUARD_TRUST_PROXY=true: webhook URLs are https only if the proxy sends X-Forwarded-Proto: https, and the agent must be reachable by nothing but the proxy",
            "pin the public URL with SWML_PROXY_URL_BASE=https://your-public-host",
        );
    } else {
        return Item::fail(
            "https",
            "no TLS, no https SWML_PROXY_URL_BASE and no trusted proxy: webhook URLs (which carry the Basic credentials) would be plain http",
            FIX,
        );
    };
    match warn {
        Some(warning) => Item::warn(
            "https",
            format!("{how}, but {warning}"),
            "chmod 600 the key file",
        ),
        None => Item::pass("https", how),
    }
}

/// Whether group or others may read a file (always false off unix).
pub fn world_or_group_readable(meta: &std::fs::Metadata) -> bool {
    mode(meta) & 0o077 != 0
}

/// The permission bits of `meta` (0 off unix).
pub fn mode(meta: &std::fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        meta.permissions().mode() & 0o777
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

/// `basic_auth`: the platform's credentials set, the password ≥ 32 characters.
pub fn basic_auth(env: &Env) -> Item {
    const FIX: &str = "set SWML_BASIC_AUTH_USER and SWML_BASIC_AUTH_PASSWORD; make the password with `voxguard keys generate password`";
    credentials_item(
        env,
        "basic_auth",
        ("SWML_BASIC_AUTH_USER", "SWML_BASIC_AUTH_PASSWORD"),
        "the runtime would generate a password at every start (refused in production), so the platform's webhook URLs would stop working after a restart",
        FIX,
    )
}

/// `credentials.emergency`: `VOXGUARD_ADMIN_USER`/`PASSWORD` for the emergency switch.
pub fn emergency(env: &Env) -> Item {
    credentials_item(
        env,
        "credentials.emergency",
        ("VOXGUARD_ADMIN_USER", "VOXGUARD_ADMIN_PASSWORD"),
        "the emergency switch (POST /admin/emergency) and /ready/detail are off: sensitive tools cannot be switched off in an incident without a restart",
        "set VOXGUARD_ADMIN_USER and VOXGUARD_ADMIN_PASSWORD (make the password with `voxguard keys generate password`)",
    )
}

/// `credentials.metrics`: `VOXGUARD_METRICS_USER`/`PASSWORD` (unset is a warning: the
/// endpoint is then off).
pub fn metrics(env: &Env) -> Item {
    let item = credentials_item(
        env,
        "credentials.metrics",
        ("VOXGUARD_METRICS_USER", "VOXGUARD_METRICS_PASSWORD"),
        "GET /metrics is off",
        "set VOXGUARD_METRICS_USER and VOXGUARD_METRICS_PASSWORD (make the password with `voxguard keys generate password`) to monitor the agent",
    );
    if item.status == Status::Fail
        && env.get("VOXGUARD_METRICS_USER").is_none()
        && env.get("VOXGUARD_METRICS_PASSWORD").is_none()
    {
        Item {
            status: Status::Warn,
            ..item
        }
    } else {
        item
    }
}

/// One pair of credentials: both set, a user, a password of at least 32 characters.
fn credentials_item(
    env: &Env,
    id: &'static str,
    (user_var, password_var): (&str, &str),
    unset: &str,
    fix: &str,
) -> Item {
    match (
        env.get(user_var),
        env.raw(password_var).filter(|p| !p.is_empty()),
    ) {
        (None, None) => Item::fail(
            id,
            format!("{user_var} and {password_var} are not set: {unset}"),
            fix,
        ),
        (Some(_), None) => Item::fail(
            id,
            format!("{user_var} is set but {password_var} is not"),
            fix,
        ),
        (None, Some(_)) => Item::fail(
            id,
            format!("{password_var} is set but {user_var} is not"),
            fix,
        ),
        (Some(user), Some(password)) => {
            let len = password.chars().count();
            match BasicCredentials::new(user, password).check_strength() {
                Ok(()) => Item::pass(
                    id,
                    format!("{user_var} and {password_var} set; the password has {len} characters"),
                ),
                Err(_) => Item::fail(
                    id,
                    format!("{password_var} has {len} characters; at least 32 are required"),
                    fix,
                ),
            }
        }
    }
}

/// `credentials.distinct`: the platform's, the emergency and the metrics passwords differ.
pub fn distinct(env: &Env) -> Item {
    let pairs = [
        ("platform", "SWML_BASIC_AUTH_PASSWORD"),
        ("emergency", "VOXGUARD_ADMIN_PASSWORD"),
        ("metrics", "VOXGUARD_METRICS_PASSWORD"),
    ];
    let set: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(_, var)| env.raw(var).filter(|p| !p.is_empty()).map(|p| (*var, p)))
        .collect();
    let mut same = Vec::new();
    for (i, (a, pa)) in set.iter().enumerate() {
        for (b, pb) in &set[i + 1..] {
            if pa == pb {
                same.push(format!("{a} = {b}"));
            }
        }
    }
    if same.is_empty() {
        Item::pass(
            "credentials.distinct",
            format!("{} password(s) set, no two alike", set.len()),
        )
    } else {
        Item::fail(
            "credentials.distinct",
            format!(
                "the same password is used twice ({}): one leak opens both doors",
                same.join(", ")
            ),
            "give each endpoint its own password (`voxguard keys generate password` for each)",
        )
    }
}

/// The keys: `keys.token`, `keys.audit`, `keys.records`, `keys.signing`.
pub fn keys(env: &Env) -> Vec<Item> {
    let token = key_item(env, "keys.token", "VOXGUARD_TOKEN_KEY", "token", "function tokens would be signed by a key generated at each start (refused in production; replicas would refuse each other's tokens)");
    let audit = key_item(
        env,
        "keys.audit",
        "VOXGUARD_AUDIT_KEY",
        "audit",
        "audit checkpoints are not signed, so deleting the newest audit records would go unnoticed",
    );
    let mut items = vec![token, audit];
    items.push(if records_on(env) {
        records_key(env)
    } else {
        Item::pass(
            "keys.records",
            "records are off (VOXGUARD_RECORDS=off): no records key needed",
        )
    });
    items.push(signing_key(env));
    // One key for two jobs: a leak of either is a leak of both.
    let named = [
        ("keys.token", "VOXGUARD_TOKEN_KEY", "token"),
        ("keys.audit", "VOXGUARD_AUDIT_KEY", "audit"),
        ("keys.records", "VOXGUARD_RECORDS_KEY", "records"),
    ];
    for (i, (_, first, _)) in named.iter().enumerate() {
        for (id, second, kind) in &named[i + 1..] {
            let same = matches!((env.get(first), env.get(second)), (Some(a), Some(b)) if a == b);
            if let Some(item) = items.iter_mut().find(|item| same && item.id == *id) {
                *item = Item::fail(
                    id,
                    format!("{second} has the same value as {first}: each key must be its own"),
                    format!("set {second} to the output of `voxguard keys generate {kind}`"),
                );
            }
        }
    }
    items
}

/// One base64 key and its `_KEYS_PREVIOUS` list, as the runtime reads them.
fn key_item(env: &Env, id: &'static str, var: &str, kind: &str, unset: &str) -> Item {
    let fix = format!("set {var} to the output of `voxguard keys generate {kind}`");
    let Some(text) = env.get(var) else {
        return Item::fail(id, format!("{var} is not set: {unset}"), fix);
    };
    if let Err(err) = SecretKey::from_base64(text) {
        return Item::fail(id, format!("{var} is malformed: {err}"), fix);
    }
    let previous = var.replace("_KEY", "_KEYS_PREVIOUS");
    if let Some(list) = env.get(&previous) {
        for (i, part) in list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            if let Err(err) = SecretKey::from_base64(part) {
                return Item::fail(
                    id,
                    format!("{previous}: item {} is malformed: {err}", i + 1),
                    format!("correct or remove that item of {previous}"),
                );
            }
        }
    }
    Item::pass(
        id,
        format!("{var} is set and valid (base64, at least 32 bytes)"),
    )
}

/// `keys.records` with records on.
fn records_key(env: &Env) -> Item {
    const FIX: &str = "set VOXGUARD_RECORDS_KEY to the output of `voxguard keys generate records`";
    let Some(text) = env.get("VOXGUARD_RECORDS_KEY") else {
        return Item::fail(
            "keys.records",
            "records are on but VOXGUARD_RECORDS_KEY is not set: the development key kept in the data directory protects nothing at rest (refused in production and HIPAA mode)",
            FIX,
        );
    };
    match RecordsKeyring::from_text(text, env.get("VOXGUARD_RECORDS_KEYS_PREVIOUS")) {
        Ok(_) => Item::pass(
            "keys.records",
            "VOXGUARD_RECORDS_KEY is set and valid (base64, at least 32 bytes)",
        ),
        Err(err) => Item::fail(
            "keys.records",
            format!("VOXGUARD_RECORDS_KEY or VOXGUARD_RECORDS_KEYS_PREVIOUS is malformed: {err}"),
            FIX,
        ),
    }
}

/// `keys.signing`: `SIGNALWIRE_SIGNING_KEY`.
fn signing_key(env: &Env) -> Item {
    const FIX: &str =
        "copy the project's signing key from the SignalWire dashboard into SIGNALWIRE_SIGNING_KEY";
    match env.raw("SIGNALWIRE_SIGNING_KEY") {
        None => Item::fail(
            "keys.signing",
            "SIGNALWIRE_SIGNING_KEY is not set: webhook signatures are not checked, so anyone holding the Basic credentials can fetch SWML and mint function tokens",
            FIX,
        ),
        Some(value) if value.trim().is_empty() => Item::fail(
            "keys.signing",
            "SIGNALWIRE_SIGNING_KEY is set but blank: the runtime refuses to start",
            FIX,
        ),
        Some(_) => Item::pass("keys.signing", "SIGNALWIRE_SIGNING_KEY is set: webhook signatures are checked"),
    }
}

/// `retention`: with records on, `VOXGUARD_RETENTION_*_DAYS` within 1–36500 (defaults count)
/// and `VOXGUARD_RECORDS_PURGE_EVERY_SECS` within 60–86400.
pub fn retention(env: &Env) -> Item {
    const FIX: &str = "set VOXGUARD_RETENTION_<KIND>_DAYS to whole days from 1 to 36500 (or unset it for the default)";
    match env
        .get("VOXGUARD_RECORDS")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("on") | Some("true") | Some("1") => {}
        Some("off") | Some("false") | Some("0") => {
            return Item::pass(
                "retention",
                "records are off (VOXGUARD_RECORDS=off): nothing is kept",
            )
        }
        Some(other) => {
            return Item::fail(
                "retention",
                format!(
                    "VOXGUARD_RECORDS={other:?} is not on or off: the runtime refuses to start"
                ),
                "set VOXGUARD_RECORDS=on or off",
            )
        }
    }
    let retention = match Retention::from_lookup(env.lookup()) {
        Ok(retention) => retention,
        Err(err) => return Item::fail("retention", err.to_string(), FIX),
    };
    if let Some(every) = env.get("VOXGUARD_RECORDS_PURGE_EVERY_SECS") {
        if !every
            .parse::<u64>()
            .is_ok_and(|s| (60..=86_400).contains(&s))
        {
            return Item::fail(
                "retention",
                format!("VOXGUARD_RECORDS_PURGE_EVERY_SECS={every:?} is not a whole number of seconds from 60 to 86400"),
                "set VOXGUARD_RECORDS_PURGE_EVERY_SECS within 60-86400 (or unset it: hourly)",
            );
        }
    }
    let days: Vec<String> = RecordKind::ALL
        .iter()
        .map(|kind| format!("{} {}d", kind.as_str(), retention.days(*kind)))
        .collect();
    Item::pass("retention", format!("records kept: {}", days.join(", ")))
}

/// `compliance`: `VOXGUARD_COMPLIANCE` valid, and what each mode needs (HIPAA: records on
/// with `VOXGUARD_RECORDS_KEY`; with `--url`, no recording or conversation export in the live
/// document — `live` are those findings).
pub fn compliance(env: &Env, live: &[String]) -> Item {
    let modes = match Compliance::parse(env.get("VOXGUARD_COMPLIANCE").unwrap_or("")) {
        Ok(modes) => modes,
        Err(err) => {
            return Item::fail(
                "compliance",
                err.to_string(),
                "set VOXGUARD_COMPLIANCE to none, hipaa, pci or hipaa,pci",
            )
        }
    };
    if modes.hipaa() {
        if !records_on(env) {
            return Item::fail(
                "compliance",
                "HIPAA mode with VOXGUARD_RECORDS=off: the runtime refuses to start",
                "turn records on (unset VOXGUARD_RECORDS) and set VOXGUARD_RECORDS_KEY",
            );
        }
        if env.get("VOXGUARD_RECORDS_KEY").is_none() {
            return Item::fail(
                "compliance",
                "HIPAA mode without VOXGUARD_RECORDS_KEY: the development key is refused",
                "set VOXGUARD_RECORDS_KEY to the output of `voxguard keys generate records`",
            );
        }
        if !live.is_empty() {
            return Item::fail(
                "compliance",
                format!("HIPAA mode, but the live document {}", live.join("; ")),
                "remove call recording and the debug_webhook_url/save_conversation AI parameters",
            );
        }
    }
    let detail = match (modes.hipaa(), modes.pci()) {
        (false, false) => "no compliance mode (VOXGUARD_COMPLIANCE unset or none); agents may still set one in code".to_string(),
        _ => format!(
            "VOXGUARD_COMPLIANCE={modes}: start-up requirements met{}",
            if modes.pci() { "; PCI pauses recording around pay by itself" } else { "" }
        ),
    };
    Item::pass("compliance", detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_config_checks_the_runtimes_other_start_up_values() {
        assert_eq!(server_config(&Env::of(&[])).status, Status::Pass);
        for (name, value) in [
            ("VOXGUARD_TOKEN_TTL_SECS", "5"),
            ("VOXGUARD_TOKEN_TTL_SECS", "soon"),
            ("VOXGUARD_AUDIT_DURABILITY", "paranoid"),
            ("VOXGUARD_SWML_RENDERS_PER_MIN", "lots"),
            ("VOXGUARD_AUDIT_CHECKPOINT_EVERY", "0"),
            ("VOXGUARD_EMERGENCY_MODE", "maybe"),
            ("VOXGUARD_SECRET_CHECKS", "0"),
            ("VOXGUARD_SECRET_CHECKS", "all"),
            ("VOXGUARD_SECRET_CHECKS", "5000"),
        ] {
            let item = server_config(&Env::of(&[(name, value)]));
            assert_eq!(item.status, Status::Fail, "{name}={value}: {item:?}");
            assert!(item.detail.contains(name), "{item:?}");
        }
        let good = Env::of(&[
            ("VOXGUARD_TOKEN_TTL_SECS", "600"),
            ("VOXGUARD_AUDIT_DURABILITY", "FSYNC"),
            ("VOXGUARD_SWML_RENDERS_PER_MIN", "0"),
            ("VOXGUARD_AUDIT_CHECKPOINT_EVERY", "50"),
            ("VOXGUARD_EMERGENCY_MODE", "on"),
            ("VOXGUARD_SECRET_CHECKS", "4"),
        ]);
        assert_eq!(server_config(&good).status, Status::Pass);
    }
}
