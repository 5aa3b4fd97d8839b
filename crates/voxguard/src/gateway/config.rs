//! `gateway.toml` and its environment overrides: what the gateway stands in front of and the
//! rules it enforces there.
//!
//! Owns reading the file (unknown keys refused), applying the `VOXGUARD_UPSTREAM_*` /
//! `VOXGUARD_GATEWAY_*` overrides, and checking every value once, with an error that names
//! the key. It must not open connections or touch the server's own settings (listener, TLS,
//! Basic credentials: `ServerConfig`), except to hand over `public_url` and `body_limit`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use voxguard_guard::RateLimit;

/// Default time the gateway waits for the upstream to answer one request.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// The gateway's configuration: one upstream SWML agent and the rules enforced in front of it.
#[derive(Clone)]
pub struct GatewayConfig {
    /// The name used in logs, metrics and audit events (`gateway` by default).
    pub name: String,
    /// The route the platform fetches SWML from on the gateway (`/` by default).
    pub route: String,
    /// The upstream's SWML URL, without credentials.
    pub upstream: url::Url,
    /// Basic credentials toward the upstream (from the URL, the file or the environment).
    pub upstream_credentials: Option<UpstreamCredentials>,
    /// How long one request to the upstream may take.
    pub upstream_timeout: Duration,
    /// The public URL the platform reaches the gateway at (`SWML_PROXY_URL_BASE` wins).
    pub public_url: Option<url::Url>,
    /// The largest request body accepted (`VOXGUARD_BODY_LIMIT` wins).
    pub body_limit: Option<usize>,
    /// Refuse arguments a function's schema does not declare (on by default).
    pub strict: bool,
    /// The official SWML schema file; the upstream's documents are checked against it.
    pub swml_schema: Option<PathBuf>,
    /// Argument names masked in audit records and logs, on top of the redactor's defaults.
    pub sensitive_args: Vec<String>,
    /// Functions the emergency switch turns off when it is on "for sensitive tools".
    pub emergency_tools: Vec<String>,
    /// Destinations a function's result may connect or transfer the call to.
    pub allow_transfers_to: Vec<String>,
    /// Calls per caller across all functions.
    pub per_caller: Option<RateLimit>,
    /// Calls of all callers together.
    pub global: Option<RateLimit>,
    /// Per-function limits, per caller.
    pub function_limits: Vec<(String, RateLimit)>,
}

/// Basic credentials toward the upstream. The password never appears in `Debug` output.
#[derive(Clone)]
pub struct UpstreamCredentials {
    /// User name.
    pub user: String,
    pub(crate) password: String,
}

impl UpstreamCredentials {
    /// Credentials `user:password`.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }
}

impl std::fmt::Debug for UpstreamCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamCredentials")
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .finish()
    }
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("name", &self.name)
            .field("route", &self.route)
            .field("upstream", &self.upstream.as_str())
            .field("upstream_credentials", &self.upstream_credentials)
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}

/// Why the gateway configuration was refused: the key, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum GatewayConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        error: String,
    },
    /// The file is not valid TOML, or has an unknown key or a value of the wrong type.
    #[error("{path}: {error}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message with its line (it names the key, never the value).
        error: String,
    },
    /// A value is not valid.
    #[error("{key}: {message}")]
    Invalid {
        /// The key (`upstream.url`) or environment variable.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

fn invalid(key: &str, message: impl Into<String>) -> GatewayConfigError {
    GatewayConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<String>,
    route: Option<String>,
    public_url: Option<String>,
    body_limit: Option<usize>,
    strict: Option<bool>,
    swml_schema: Option<PathBuf>,
    #[serde(default)]
    sensitive_args: Vec<String>,
    #[serde(default)]
    emergency_tools: Vec<String>,
    #[serde(default)]
    allow_transfers_to: Vec<String>,
    #[serde(default)]
    upstream: UpstreamFile,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    functions: std::collections::BTreeMap<String, FunctionFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UpstreamFile {
    url: Option<String>,
    user: Option<String>,
    password: Option<String>,
    timeout_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    per_caller: Option<LimitFile>,
    global: Option<LimitFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionFile {
    rate_limit: Option<LimitFile>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct LimitFile {
    max: u32,
    per_secs: u64,
}

impl LimitFile {
    fn limit(self, key: &str) -> Result<RateLimit, GatewayConfigError> {
        RateLimit::new(self.max, Duration::from_secs(self.per_secs))
            .map_err(|error| invalid(key, error.to_string()))
    }
}

impl GatewayConfig {
    /// Read `path` (if given) and apply the environment overrides; `upstream` (the command
    /// line's `--upstream`) wins over both.
    pub fn load(path: Option<&Path>, upstream: Option<&str>) -> Result<Self, GatewayConfigError> {
        let text =
            match path {
                Some(path) => Some(std::fs::read_to_string(path).map_err(|error| {
                    GatewayConfigError::Read {
                        path: path.display().to_string(),
                        error: error.to_string(),
                    }
                })?),
                None => None,
            };
        let shown = path.map(|p| p.display().to_string()).unwrap_or_default();
        Self::from_parts(text.as_deref(), &shown, upstream, |name| {
            std::env::var(name).ok()
        })
    }

    /// The configuration from the text of a `gateway.toml` (`None`: no file), the environment
    /// as `lookup`, and the command line's upstream URL. `path` only names the file in errors.
    pub fn from_parts(
        text: Option<&str>,
        path: &str,
        upstream: Option<&str>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, GatewayConfigError> {
        let file: File = match text {
            Some(text) => toml::from_str(text).map_err(|error| GatewayConfigError::Parse {
                path: path.to_string(),
                error: toml_error(text, &error),
            })?,
            None => File::default(),
        };
        let env = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let (url_key, url_text) = match (upstream, env("VOXGUARD_UPSTREAM_URL"), file.upstream.url)
        {
            (Some(url), _, _) => ("--upstream", url.to_string()),
            (None, Some(url), _) => ("VOXGUARD_UPSTREAM_URL", url),
            (None, None, Some(url)) => ("upstream.url", url),
            (None, None, None) => {
                return Err(invalid(
                    "upstream.url",
                    "no upstream: give --upstream URL, VOXGUARD_UPSTREAM_URL or upstream.url in gateway.toml (the SWML URL of the agent to guard)",
                ))
            }
        };
        let mut url = url::Url::parse(&url_text).map_err(|error| {
            invalid(
                url_key,
                format!("not a URL ({error}); expected e.g. http://127.0.0.1:5000/"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid(
                url_key,
                "must be an http:// or https:// URL with a host",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(url_key, "must not carry a query or fragment"));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        // Each part from the environment, else the file, else the URL: a user in the URL and
        // the password in VOXGUARD_UPSTREAM_PASSWORD (out of `ps`) is the usual split.
        let url_user = (!url.username().is_empty()).then(|| decode(url.username()));
        let url_password = url.password().map(decode);
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let user = env("VOXGUARD_UPSTREAM_USER").or(file.upstream.user);
        let password = env("VOXGUARD_UPSTREAM_PASSWORD").or(file.upstream.password);
        let from_url_only = user.is_none() && password.is_none();
        let upstream_credentials = match (user.or(url_user), password.or(url_password)) {
            (Some(user), Some(password)) => Some(UpstreamCredentials::new(user, password)),
            (None, None) => None,
            // A bare user in the URL (`http://agent@host/`) is an empty password.
            (Some(user), None) if from_url_only => Some(UpstreamCredentials::new(user, "")),
            (Some(_), None) => {
                return Err(invalid(
                    "upstream.password",
                    "upstream.user is set without a password (or VOXGUARD_UPSTREAM_PASSWORD)",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "upstream.user",
                    "upstream.password is set without a user (or VOXGUARD_UPSTREAM_USER)",
                ))
            }
        };
        let timeout_secs = match env("VOXGUARD_UPSTREAM_TIMEOUT_SECS") {
            Some(text) => text.parse::<u64>().map_err(|_| {
                invalid(
                    "VOXGUARD_UPSTREAM_TIMEOUT_SECS",
                    "expected whole seconds, 1-300",
                )
            })?,
            None => file
                .upstream
                .timeout_secs
                .unwrap_or(DEFAULT_UPSTREAM_TIMEOUT.as_secs()),
        };
        if !(1..=300).contains(&timeout_secs) {
            return Err(invalid(
                "upstream.timeout_secs",
                "expected whole seconds, 1-300",
            ));
        }
        let strict = match env("VOXGUARD_GATEWAY_STRICT") {
            Some(text) => match text.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return Err(invalid("VOXGUARD_GATEWAY_STRICT", "expected true or false")),
            },
            None => file.strict.unwrap_or(true),
        };
        let public_url = match file.public_url {
            Some(text) => {
                let url = url::Url::parse(&text)
                    .map_err(|error| invalid("public_url", format!("not a URL ({error})")))?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(invalid(
                        "public_url",
                        "must be an http:// or https:// URL with a host",
                    ));
                }
                Some(url)
            }
            None => None,
        };
        if let Some(limit) = file.body_limit {
            if !(1024..=64 * 1024 * 1024).contains(&limit) {
                return Err(invalid("body_limit", "expected bytes, 1024 to 67108864"));
            }
        }
        let name = file.name.unwrap_or_else(|| "gateway".to_string());
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid("name", "1-64 characters: letters, digits, - and _"));
        }
        let swml_schema = env("VOXGUARD_SWML_SCHEMA")
            .map(PathBuf::from)
            .or(file.swml_schema);
        let per_caller = file
            .limits
            .per_caller
            .map(|l| l.limit("limits.per_caller"))
            .transpose()?;
        let global = file
            .limits
            .global
            .map(|l| l.limit("limits.global"))
            .transpose()?;
        let mut function_limits = Vec::new();
        for (function, settings) in file.functions {
            let valid = !function.is_empty()
                && function.len() <= 64
                && !function.starts_with("__")
                && function
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
            if !valid {
                return Err(invalid(
                    &format!("functions.{function}"),
                    "not a function name (1-64 letters, digits, _ - ., not starting with __)",
                ));
            }
            if let Some(limit) = settings.rate_limit {
                function_limits.push((
                    function.clone(),
                    limit.limit(&format!("functions.{function}.rate_limit"))?,
                ));
            }
        }
        for (key, list) in [
            ("sensitive_args", &file.sensitive_args),
            ("emergency_tools", &file.emergency_tools),
            ("allow_transfers_to", &file.allow_transfers_to),
        ] {
            if list.iter().any(|item| item.trim().is_empty()) {
                return Err(invalid(key, "contains an empty entry"));
            }
        }
        // The server reads these two itself; a value in its environment wins over the file.
        let public_url = public_url.filter(|_| env("SWML_PROXY_URL_BASE").is_none());
        let body_limit = file
            .body_limit
            .filter(|_| env("VOXGUARD_BODY_LIMIT").is_none());
        Ok(Self {
            name,
            route: file.route.unwrap_or_else(|| "/".to_string()),
            upstream: url,
            upstream_credentials,
            upstream_timeout: Duration::from_secs(timeout_secs),
            public_url,
            body_limit,
            strict,
            swml_schema,
            sensitive_args: file.sensitive_args,
            emergency_tools: file.emergency_tools,
            allow_transfers_to: file.allow_transfers_to,
            per_caller,
            global,
            function_limits,
        })
    }

    /// A configuration for `upstream` with every default (tests, embedding).
    pub fn new(upstream: url::Url) -> Self {
        Self {
            name: "gateway".into(),
            route: "/".into(),
            upstream,
            upstream_credentials: None,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            public_url: None,
            body_limit: None,
            strict: true,
            swml_schema: None,
            sensitive_args: Vec::new(),
            emergency_tools: Vec::new(),
            allow_transfers_to: Vec::new(),
            per_caller: None,
            global: None,
            function_limits: Vec::new(),
        }
    }
}

/// A `gateway.toml` error as `line N: message`, never quoting the value: toml's own `Display`
/// prints the offending line and serde's "invalid type" messages quote the value, and either
/// could be the upstream's password.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message();
    let message = match message.split_once(": ") {
        Some((kind, rest)) if kind.starts_with("invalid") => match rest.rfind(", expected ") {
            Some(at) => format!("{kind} (value not shown){}", &rest[at..]),
            None => format!("{kind} (value not shown)"),
        },
        _ => message.trim_end().to_string(),
    };
    let line = error
        .span()
        .and_then(|span| text.get(..span.start))
        .map(|before| before.matches('\n').count() + 1);
    match line {
        Some(line) => format!("line {line}: {message}"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<GatewayConfig, GatewayConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        GatewayConfig::from_parts(Some(text), "gateway.toml", None, |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn a_full_file_is_read() {
        let config = parse(
            r#"
            name = "sales"
            route = "/sales"
            public_url = "https://gw.example.com"
            body_limit = 65536
            strict = false
            sensitive_args = ["account_number"]
            emergency_tools = ["transfer_funds"]
            allow_transfers_to = ["+15551230000"]
            [upstream]
            url = "http://agent:secret@127.0.0.1:5000/agent"
            timeout_secs = 5
            [limits]
            per_caller = { max = 20, per_secs = 60 }
            [functions.transfer_funds]
            rate_limit = { max = 3, per_secs = 3600 }
            "#,
            &[],
        )
        .unwrap();
        assert_eq!(config.name, "sales");
        assert_eq!(config.upstream.as_str(), "http://127.0.0.1:5000/agent");
        let creds = config.upstream_credentials.unwrap();
        assert_eq!(
            (creds.user.as_str(), creds.password.as_str()),
            ("agent", "secret")
        );
        assert_eq!(config.upstream_timeout, Duration::from_secs(5));
        assert!(!config.strict);
        assert_eq!(config.function_limits.len(), 1);
        assert_eq!(config.function_limits[0].0, "transfer_funds");
        assert!(config.per_caller.is_some() && config.global.is_none());
        assert_eq!(config.body_limit, Some(65536));
    }

    #[test]
    fn environment_overrides_the_file() {
        let config = parse(
            "[upstream]\nurl = \"http://127.0.0.1:5000/\"\nuser = \"a\"\npassword = \"b\"\n",
            &[
                ("VOXGUARD_UPSTREAM_URL", "https://up.example.com/x"),
                ("VOXGUARD_UPSTREAM_PASSWORD", "from-env"),
                ("VOXGUARD_GATEWAY_STRICT", "off"),
                ("VOXGUARD_UPSTREAM_TIMEOUT_SECS", "30"),
            ],
        )
        .unwrap();
        assert_eq!(config.upstream.as_str(), "https://up.example.com/x");
        assert_eq!(config.upstream_credentials.unwrap().password, "from-env");
        assert!(!config.strict);
        assert_eq!(config.upstream_timeout, Duration::from_secs(30));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("", "upstream.url"),
            ("[upstream]\nurl = \"ftp://x/\"", "upstream.url"),
            ("[upstream]\nurl = \"http://x/\"\ntimeout_secs = 0", "upstream.timeout_secs"),
            ("[upstream]\nurl = \"http://x/\"\nuser = \"u\"", "upstream.password"),
            ("body_limit = 10\n[upstream]\nurl = \"http://x/\"", "body_limit"),
            (
                "[upstream]\nurl = \"http://x/\"\n[functions.f]\nrate_limit = { max = 0, per_secs = 60 }",
                "functions.f.rate_limit",
            ),
            ("stirct = true\n[upstream]\nurl = \"http://x/\"", "stirct"),
            ("[upstream]\nurl = \"http://x/\"\npasword = \"p\"", "pasword"),
            ("name = \"a b\"\n[upstream]\nurl = \"http://x/\"", "name"),
            (
                "[upstream]\nurl = \"http://x/\"\n[functions.\"__x\"]\nrate_limit = { max = 1, per_secs = 60 }",
                "functions.__x",
            ),
        ];
        for (text, key) in cases {
            let error = parse(text, &[])
                .err()
                .unwrap_or_else(|| panic!("{text} was accepted"));
            assert!(error.to_string().contains(key), "{text}: {error}");
        }
    }

    #[test]
    fn a_file_error_names_the_line_and_never_shows_the_value() {
        let cases = [
            // A value of the wrong type: serde's message quotes it.
            "[upstream]\nurl = \"http://x/\"\npassword = 31415926535\n",
            // An unknown key: toml's own message prints the whole line.
            "[upstream]\nurl = \"http://x/\"\npasword = \"s3cret-typo-value\"\n",
            // Not TOML at all.
            "[upstream]\nurl = \"http://x/\"\npassword = s3cret-bare-value\n",
        ];
        for text in cases {
            let error = parse(text, &[]).expect_err("refused").to_string();
            for secret in ["31415926535", "s3cret"] {
                assert!(!error.contains(secret), "{text}: {error}");
            }
            assert!(error.contains("line 3"), "{text}: {error}");
        }
        let typo = parse(cases[1], &[]).expect_err("refused").to_string();
        assert!(typo.contains("pasword"), "the key is still named: {typo}");
    }

    #[test]
    fn the_user_may_come_from_the_url_and_the_password_from_the_environment() {
        let config = parse(
            "[upstream]\nurl = \"http://agent@127.0.0.1:5000/\"\n",
            &[("VOXGUARD_UPSTREAM_PASSWORD", "from-env")],
        )
        .unwrap();
        let creds = config.upstream_credentials.unwrap();
        assert_eq!(
            (creds.user.as_str(), creds.password.as_str()),
            ("agent", "from-env")
        );
        let bare = parse("[upstream]\nurl = \"http://agent@127.0.0.1:5000/\"\n", &[]).unwrap();
        assert_eq!(bare.upstream_credentials.unwrap().password, "");
        let none = parse("[upstream]\nurl = \"http://127.0.0.1:5000/\"\n", &[]).unwrap();
        assert!(none.upstream_credentials.is_none());
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let config = parse("[upstream]\nurl = \"http://u:hunter22@x/\"", &[]).unwrap();
        assert!(!format!("{config:?}").contains("hunter22"));
    }
}
