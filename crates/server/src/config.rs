//! Server configuration: where to listen, how to authenticate, which limits apply, TLS and the
//! public URL.
//!
//! Owns reading and checking every server knob from the environment (names shared with the
//! official SDKs keep their `SWML_` prefix; ours use `VOXGUARD_`). A bad value is a
//! [`ConfigError`] naming the variable — never a silent default. It does not open sockets or
//! read certificate files (see `tls`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use voxguard_guard::{
    resolve_credentials, BasicCredentials, CredentialError, CredentialSource, SigningKey,
};

/// Default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Default time a request may take end to end.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a client has to send complete request headers (slow-client guard).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on simultaneously open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default cap on connections from one IP address that are waiting (sending a request head, or
/// idle between requests); connections whose request is being handled do not count.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 128;
/// Default Basic-auth user name when none is configured.
pub const DEFAULT_AUTH_USER: &str = "voxguard";

/// Everything the HTTP runtime needs to know.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: IpAddr,
    /// Port to bind (0: any free port).
    pub port: u16,
    /// Basic credentials every endpoint but `/health` and `/ready` requires.
    pub credentials: BasicCredentials,
    /// Whether the credentials were configured or generated at start.
    pub credential_source: CredentialSource,
    /// Maximum request body size in bytes.
    pub body_limit: usize,
    /// Maximum time for one request, handler included.
    pub request_timeout: Duration,
    /// Maximum time to receive complete request headers (and the TLS handshake).
    pub header_read_timeout: Duration,
    /// Maximum simultaneously open connections; further clients wait in the accept queue.
    pub max_connections: usize,
    /// Maximum connections from one IP address that are waiting — not yet done sending a
    /// request head, or idle between requests; further connections from it are closed at once,
    /// so one idle or slow host cannot occupy every slot. Connections whose request is being
    /// handled do not count, so a busy proxy is limited only by `max_connections`.
    pub max_connections_per_ip: usize,
    /// HTTPS settings; `None` serves plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Public base URL for rendered webhooks (`SWML_PROXY_URL_BASE`).
    pub proxy_url_base: Option<url::Url>,
    /// Which endpoints this process serves (`VOXGUARD_SERVE`): everything, or the agent and
    /// the payment connector on separate hosts.
    pub role: ServeRole,
    /// Public base URL of the payment connector when it runs on its own host
    /// (`VOXGUARD_PAYMENT_CONNECTOR_URL`): rendered `pay` verbs send card data there instead
    /// of to this process.
    pub payment_connector_url: Option<url::Url>,
    /// Honour `X-Forwarded-Proto` / `X-Forwarded-Host` (only behind a proxy you control).
    pub trust_proxy: bool,
    /// The proxies whose `X-Forwarded-For` names a request's source
    /// (`VOXGUARD_TRUSTED_PROXIES`): a request from one of these addresses comes from the
    /// header's last entry that is not itself one of them. Empty: the header is never read.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Production mode (`VOXGUARD_ENV=production`): strong credentials and keys are mandatory.
    pub production: bool,
    /// Credentials for the operator endpoints (`/admin/*`, `/ready/detail`); `None` disables
    /// them. Always distinct from the platform's Basic credentials.
    pub admin_credentials: Option<BasicCredentials>,
    /// Credentials for `GET /metrics`; `None` disables the endpoint.
    pub metrics_credentials: Option<BasicCredentials>,
    /// The platform's signing key (`SIGNALWIRE_SIGNING_KEY`, the official SDK's name). When set,
    /// the SWML route requires a valid `X-SignalWire-Signature` and the other webhooks check it
    /// whenever it is present; `None` checks nothing.
    pub signing_key: Option<SigningKey>,
}

/// Certificate and key for HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_path: PathBuf,
    /// PEM private key.
    pub key_path: PathBuf,
}

/// Which endpoints a process serves (`VOXGUARD_SERVE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServeRole {
    /// Everything: SWML, SWAIG, summaries, the payment connector, the records API.
    #[default]
    All,
    /// Everything but the payment connector (`{route}/pay` and `{route}/pay/status` answer
    /// 404): card data never reaches this host. Needs `VOXGUARD_PAYMENT_CONNECTOR_URL`.
    Agent,
    /// Only the payment connector (plus `/health`, `/ready` and the operator endpoints): the
    /// host in PCI scope, with the gateway's secret and nothing else.
    Connector,
}

impl ServeRole {
    /// Whether this process serves the payment connector's endpoints.
    pub fn serves_connector(self) -> bool {
        self != ServeRole::Agent
    }

    /// Whether this process serves SWML, SWAIG, summaries and the records API.
    pub fn serves_agent(self) -> bool {
        self != ServeRole::Connector
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable holds a value of the wrong form.
    #[error("{name}={value:?} is not valid: {expected}")]
    Invalid {
        /// Variable name.
        name: &'static str,
        /// The value found (never a secret).
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A variable that the current settings require is missing.
    #[error("{name} must be set when {because}")]
    Missing {
        /// Variable name.
        name: &'static str,
        /// Why it is required.
        because: &'static str,
    },
    /// The Basic-auth credentials are unusable.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
}

impl ServerConfig {
    /// A development configuration on `127.0.0.1:0` with the given credentials and defaults
    /// for everything else. Handy for tests and embedding.
    pub fn new(credentials: BasicCredentials) -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            credentials,
            credential_source: CredentialSource::Configured,
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            tls: None,
            proxy_url_base: None,
            role: ServeRole::All,
            payment_connector_url: None,
            trust_proxy: false,
            trusted_proxies: Vec::new(),
            production: false,
            admin_credentials: None,
            metrics_credentials: None,
            signing_key: None,
        }
    }

    /// Read the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read the configuration through `lookup` (a variable name → its value). Empty values
    /// count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let production = match get("VOXGUARD_ENV").as_deref() {
            None | Some("development") | Some("dev") | Some("test") => false,
            Some("production") | Some("prod") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "VOXGUARD_ENV",
                    value: other.to_string(),
                    expected: "`production` or `development`",
                })
            }
        };
        let (credentials, credential_source) = resolve_credentials(
            lookup("SWML_BASIC_AUTH_USER").filter(|v| !v.is_empty()),
            lookup("SWML_BASIC_AUTH_PASSWORD").filter(|v| !v.is_empty()),
            DEFAULT_AUTH_USER,
            production,
        )?;
        let host = match get("VOXGUARD_HOST") {
            None => IpAddr::from([127, 0, 0, 1]),
            Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                name: "VOXGUARD_HOST",
                value: v,
                expected: "an IP address such as 127.0.0.1 or 0.0.0.0",
            })?,
        };
        let port = parse_or(&get, "VOXGUARD_PORT", 3000u16, "a port number 0-65535")?;
        let body_limit = parse_or(
            &get,
            "VOXGUARD_BODY_LIMIT",
            DEFAULT_BODY_LIMIT,
            "a size in bytes",
        )?;
        if body_limit == 0 {
            return Err(ConfigError::Invalid {
                name: "VOXGUARD_BODY_LIMIT",
                value: "0".into(),
                expected: "a size in bytes greater than 0",
            });
        }
        let request_timeout = secs_or(
            &get,
            "VOXGUARD_REQUEST_TIMEOUT_SECS",
            DEFAULT_REQUEST_TIMEOUT,
        )?;
        let header_read_timeout = secs_or(
            &get,
            "VOXGUARD_HEADER_TIMEOUT_SECS",
            DEFAULT_HEADER_READ_TIMEOUT,
        )?;
        let max_connections = parse_or(
            &get,
            "VOXGUARD_MAX_CONNECTIONS",
            DEFAULT_MAX_CONNECTIONS,
            "a whole number of connections greater than 0",
        )?;
        if max_connections == 0 {
            return Err(ConfigError::Invalid {
                name: "VOXGUARD_MAX_CONNECTIONS",
                value: "0".into(),
                expected: "a whole number of connections greater than 0",
            });
        }
        let max_connections_per_ip = parse_or(
            &get,
            "VOXGUARD_MAX_CONNECTIONS_PER_IP",
            DEFAULT_MAX_CONNECTIONS_PER_IP,
            "a whole number of connections greater than 0",
        )?;
        if max_connections_per_ip == 0 {
            return Err(ConfigError::Invalid {
                name: "VOXGUARD_MAX_CONNECTIONS_PER_IP",
                value: "0".into(),
                expected: "a whole number of connections greater than 0",
            });
        }
        let tls = if parse_bool(&get, "SWML_SSL_ENABLED")? {
            let because = "SWML_SSL_ENABLED=true";
            Some(TlsConfig {
                cert_path: get("SWML_SSL_CERT_PATH")
                    .ok_or(ConfigError::Missing {
                        name: "SWML_SSL_CERT_PATH",
                        because,
                    })?
                    .into(),
                key_path: get("SWML_SSL_KEY_PATH")
                    .ok_or(ConfigError::Missing {
                        name: "SWML_SSL_KEY_PATH",
                        because,
                    })?
                    .into(),
            })
        } else {
            None
        };
        let proxy_url_base = match get("SWML_PROXY_URL_BASE") {
            None => None,
            Some(v) => Some(parse_base_url(&v).ok_or(ConfigError::Invalid {
                name: "SWML_PROXY_URL_BASE",
                // The value may carry credentials: never echo it.
                value: "[not shown]".into(),
                expected: "an absolute http(s) URL without credentials, query or fragment",
            })?),
        };
        let role = match get("VOXGUARD_SERVE").map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("all") => ServeRole::All,
            Some("agent") => ServeRole::Agent,
            Some("connector") => ServeRole::Connector,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "VOXGUARD_SERVE",
                    value: other.to_string(),
                    expected: "all, agent (everything but the payment connector) or connector (only the payment connector)",
                })
            }
        };
        let payment_connector_url = match get("VOXGUARD_PAYMENT_CONNECTOR_URL") {
            None => None,
            Some(v) => Some(parse_base_url(&v).ok_or(ConfigError::Invalid {
                name: "VOXGUARD_PAYMENT_CONNECTOR_URL",
                value: "[not shown]".into(),
                expected: "an absolute http(s) URL without credentials, query or fragment",
            })?),
        };
        if production
            && payment_connector_url
                .as_ref()
                .is_some_and(|u| u.scheme() != "https")
        {
            return Err(ConfigError::Invalid {
                name: "VOXGUARD_PAYMENT_CONNECTOR_URL",
                value: "[not shown]".into(),
                expected: "an https URL in production (card numbers are posted to it)",
            });
        }
        if role == ServeRole::Agent && payment_connector_url.is_none() {
            return Err(ConfigError::Missing {
                name: "VOXGUARD_PAYMENT_CONNECTOR_URL",
                because: "VOXGUARD_SERVE=agent (the pay verb must send card data to the connector's host)",
            });
        }
        let admin_credentials = optional_credentials(
            &lookup,
            ("VOXGUARD_ADMIN_USER", "VOXGUARD_ADMIN_PASSWORD"),
            "at least 32 characters (the admin endpoints can switch tools off)",
        )?;
        if let Some(admin) = &admin_credentials {
            if admin.user() == credentials.user()
                && admin.expose_password() == credentials.expose_password()
            {
                return Err(ConfigError::Invalid {
                    name: "VOXGUARD_ADMIN_PASSWORD",
                    value: "[redacted]".into(),
                    expected: "credentials different from SWML_BASIC_AUTH_USER/PASSWORD",
                });
            }
        }
        let metrics_credentials = optional_credentials(
            &lookup,
            ("VOXGUARD_METRICS_USER", "VOXGUARD_METRICS_PASSWORD"),
            "at least 32 characters",
        )?;
        let trust_proxy = parse_bool(&get, "VOXGUARD_TRUST_PROXY")?;
        let trusted_proxies = parse_networks(&get, "VOXGUARD_TRUSTED_PROXIES")?;
        // Taken verbatim (not trimmed): the key is the dashboard's text, byte for byte.
        let signing_key = match lookup("SIGNALWIRE_SIGNING_KEY") {
            None => None,
            // Set but blank is a mistake, not a choice: checking nothing must be said by
            // leaving the variable unset.
            Some(v) if v.trim().is_empty() => {
                return Err(ConfigError::Invalid {
                    name: "SIGNALWIRE_SIGNING_KEY",
                    value: String::new(),
                    expected:
                        "the project's signing key; unset the variable to check no signatures",
                })
            }
            Some(v) => SigningKey::new(v).ok(),
        };
        let https_webhooks = tls.is_some()
            || proxy_url_base
                .as_ref()
                .is_some_and(|u| u.scheme() == "https")
            || trust_proxy;
        if production && !https_webhooks {
            return Err(ConfigError::Missing {
                name: "SWML_SSL_ENABLED or an https SWML_PROXY_URL_BASE",
                because: "VOXGUARD_ENV=production (webhook URLs carry the Basic credentials and function tokens, so they must be https)",
            });
        }
        Ok(Self {
            host,
            port,
            credentials,
            credential_source,
            body_limit,
            request_timeout,
            header_read_timeout,
            max_connections,
            max_connections_per_ip,
            tls,
            proxy_url_base,
            role,
            payment_connector_url,
            trust_proxy,
            trusted_proxies,
            production,
            admin_credentials,
            metrics_credentials,
            signing_key,
        })
    }
}

/// Credentials for an optional endpoint from a user and a password variable: both unset means
/// off, both set must pass the strength check, one without the other is an error.
fn optional_credentials(
    lookup: &impl Fn(&str) -> Option<String>,
    (user_var, password_var): (&'static str, &'static str),
    strength: &'static str,
) -> Result<Option<BasicCredentials>, ConfigError> {
    match (
        lookup(user_var).filter(|v| !v.is_empty()),
        lookup(password_var).filter(|v| !v.is_empty()),
    ) {
        (None, None) => Ok(None),
        (Some(user), Some(password)) => {
            let credentials = BasicCredentials::new(user, password);
            credentials
                .check_strength()
                .map_err(|_| ConfigError::Invalid {
                    name: password_var,
                    value: "[redacted]".into(),
                    expected: strength,
                })?;
            Ok(Some(credentials))
        }
        (Some(_), None) => Err(ConfigError::Missing {
            name: password_var,
            because: "its user variable is set",
        }),
        (None, Some(_)) => Err(ConfigError::Missing {
            name: user_var,
            because: "its password variable is set",
        }),
    }
}

/// Parse a public base URL: absolute http(s), no credentials, query or fragment.
pub fn parse_base_url(text: &str) -> Option<url::Url> {
    let url = url::Url::parse(text).ok()?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.has_host()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none();
    ok.then_some(url)
}

fn parse_or<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    expected: &'static str,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
            name,
            value: v,
            expected,
        }),
    }
}

fn secs_or(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    const EXPECTED: &str = "a number of seconds greater than 0 (fractions allowed)";
    match get(name) {
        None => Ok(default),
        Some(v) => match v.parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => {
                Ok(Duration::from_secs_f64(secs))
            }
            _ => Err(ConfigError::Invalid {
                name,
                value: v,
                expected: EXPECTED,
            }),
        },
    }
}

/// A comma-separated list of addresses (`10.0.0.7`, `2001:db8::1`) and networks
/// (`10.0.0.0/24`, `fd00:1::/64`; none wider than a /8 or a /32); unset or blank is the
/// empty list.
fn parse_networks(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let Some(value) = get(name) else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let net = item
                .parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ConfigError::Invalid {
                    name,
                    value: item.chars().take(64).collect(),
                    expected: "comma-separated addresses or networks (10.0.0.0/8, 2001:db8::1)",
                })?;
            // An IPv4-mapped entry (::ffff:10.0.0.5) names the IPv4 peer it will be compared
            // with (peers are compared in their canonical form).
            let net = match net {
                ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
                    Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                        .map(ipnet::IpNet::V4)
                        .unwrap_or(net),
                    None => net,
                },
                other => other,
            };
            // Every host in a listed network may name its own source: a network wider than
            // any proxy fleet (a /8 of IPv4, a /32 of IPv6) is a mistake, not a choice.
            let too_wide = match net {
                ipnet::IpNet::V4(v4) => v4.prefix_len() < 8,
                ipnet::IpNet::V6(v6) => v6.prefix_len() < 32,
            };
            if too_wide {
                return Err(ConfigError::Invalid {
                    name,
                    value: item.chars().take(64).collect(),
                    expected: "your proxies' own addresses, or networks no wider than a /8 (IPv4) or a /32 (IPv6)",
                });
            }
            Ok(net)
        })
        .collect()
}

fn parse_bool(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<bool, ConfigError> {
    match get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("false") | Some("0") | Some("no") | Some("off") => Ok(false),
        Some("true") | Some("1") | Some("yes") | Some("on") => Ok(true),
        Some(other) => Err(ConfigError::Invalid {
            name,
            value: other.to_string(),
            expected: "true or false",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<ServerConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ServerConfig::from_lookup(|k| map.get(k).cloned())
    }

    const STRONG: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults_generate_credentials_in_development() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.credential_source, CredentialSource::Generated);
        assert_eq!(c.credentials.expose_password().len(), 32);
        assert_eq!(c.body_limit, DEFAULT_BODY_LIMIT);
        assert!(c.tls.is_none());
    }

    #[test]
    fn production_refuses_missing_or_weak_credentials() {
        let err = config(&[("VOXGUARD_ENV", "production")]).unwrap_err();
        assert!(
            err.to_string().contains("SWML_BASIC_AUTH_PASSWORD"),
            "{err}"
        );
        let err = config(&[
            ("VOXGUARD_ENV", "production"),
            ("SWML_BASIC_AUTH_USER", "u"),
            ("SWML_BASIC_AUTH_PASSWORD", "short"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("32"), "{err}");
        let err = config(&[
            ("VOXGUARD_ENV", "production"),
            ("SWML_BASIC_AUTH_USER", "u"),
            ("SWML_BASIC_AUTH_PASSWORD", STRONG),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("https"),
            "plain-HTTP webhooks refused: {err}"
        );
        let ok = config(&[
            ("VOXGUARD_ENV", "production"),
            ("SWML_BASIC_AUTH_USER", "u"),
            ("SWML_BASIC_AUTH_PASSWORD", STRONG),
            ("SWML_PROXY_URL_BASE", "https://agents.example.com/bank"),
        ])
        .unwrap();
        assert!(ok.production);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("VOXGUARD_PORT", "http"),
            ("VOXGUARD_HOST", "localhost:80"),
            ("VOXGUARD_BODY_LIMIT", "0"),
            ("VOXGUARD_REQUEST_TIMEOUT_SECS", "-1"),
            ("VOXGUARD_TRUST_PROXY", "maybe"),
            ("VOXGUARD_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("VOXGUARD_TRUSTED_PROXIES", "10.0.0.1, proxy.internal"),
            ("VOXGUARD_TRUSTED_PROXIES", "0.0.0.0/0"),
            ("VOXGUARD_TRUSTED_PROXIES", "::ffff:0:0/96"),
            ("VOXGUARD_TRUSTED_PROXIES", "2000::/3"),
            ("SWML_PROXY_URL_BASE", "https://user:pw@example.com"),
            ("VOXGUARD_ENV", "staging"),
        ] {
            let err = config(&[(name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn trusted_proxies_are_addresses_and_networks() {
        assert!(config(&[]).unwrap().trusted_proxies.is_empty());
        let proxies = config(&[("VOXGUARD_TRUSTED_PROXIES", " 10.0.0.0/8, 2001:db8::1 ,")])
            .unwrap()
            .trusted_proxies;
        let shown: Vec<String> = proxies.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "2001:db8::1/128"]);
        let mapped = config(&[("VOXGUARD_TRUSTED_PROXIES", "::ffff:10.0.0.5")])
            .unwrap()
            .trusted_proxies;
        assert_eq!(mapped[0].to_string(), "10.0.0.5/32");
    }

    #[test]
    fn admin_credentials_are_optional_strong_and_distinct() {
        assert!(config(&[]).unwrap().admin_credentials.is_none());
        let err = config(&[("VOXGUARD_ADMIN_USER", "ops")]).unwrap_err();
        assert!(err.to_string().contains("VOXGUARD_ADMIN_PASSWORD"), "{err}");
        let err = config(&[
            ("VOXGUARD_ADMIN_USER", "ops"),
            ("VOXGUARD_ADMIN_PASSWORD", "short"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("32"), "{err}");
        assert!(
            !err.to_string().contains("short"),
            "never echo a password: {err}"
        );
        let err = config(&[
            ("SWML_BASIC_AUTH_USER", "ops"),
            ("SWML_BASIC_AUTH_PASSWORD", STRONG),
            ("VOXGUARD_ADMIN_USER", "ops"),
            ("VOXGUARD_ADMIN_PASSWORD", STRONG),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("different"), "{err}");
        let ok = config(&[
            ("VOXGUARD_ADMIN_USER", "ops"),
            ("VOXGUARD_ADMIN_PASSWORD", STRONG),
        ])
        .unwrap();
        assert_eq!(ok.admin_credentials.unwrap().user(), "ops");
    }

    #[test]
    fn a_bad_proxy_url_is_refused_without_echoing_it() {
        let err = config(&[(
            "SWML_PROXY_URL_BASE",
            "https://user:s3cretpw@example.com/?x",
        )])
        .unwrap_err();
        assert!(err.to_string().contains("SWML_PROXY_URL_BASE"), "{err}");
        assert!(!err.to_string().contains("s3cretpw"), "{err}");
    }

    #[test]
    fn the_signing_key_comes_from_the_sdk_variable() {
        assert!(config(&[]).unwrap().signing_key.is_none());
        for blank in ["", "  "] {
            let error = config(&[("SIGNALWIRE_SIGNING_KEY", blank)]).expect_err("blank refused");
            assert!(
                error.to_string().contains("SIGNALWIRE_SIGNING_KEY"),
                "{error}"
            );
        }
        let c = config(&[("SIGNALWIRE_SIGNING_KEY", "PSKtest1234567890abcdef")]).unwrap();
        let key = c.signing_key.clone().expect("key set");
        assert_eq!(
            key.sign_json("https://example.ngrok.io/webhook", b""),
            voxguard_guard::SigningKey::new("PSKtest1234567890abcdef")
                .unwrap()
                .sign_json("https://example.ngrok.io/webhook", b"")
        );
        assert!(!format!("{c:?}").contains("PSKtest"), "never printed");
    }

    #[test]
    fn tls_needs_both_paths() {
        let err = config(&[
            ("SWML_SSL_ENABLED", "true"),
            ("SWML_SSL_CERT_PATH", "/c.pem"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("SWML_SSL_KEY_PATH"));
        let c = config(&[
            ("SWML_SSL_ENABLED", "true"),
            ("SWML_SSL_CERT_PATH", "/c.pem"),
            ("SWML_SSL_KEY_PATH", "/k.pem"),
        ])
        .unwrap();
        assert_eq!(c.tls.unwrap().key_path, PathBuf::from("/k.pem"));
    }
}
