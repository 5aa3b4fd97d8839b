//! The public base URL that rendered webhooks point at.
//!
//! Owns one decision with security weight: where the platform will send its callbacks (and the
//! Basic credentials embedded in them). `SWML_PROXY_URL_BASE` wins; otherwise the `Host` header
//! (syntax-checked) with the scheme this server speaks. `X-Forwarded-Proto` and
//! `X-Forwarded-Host` are honoured only with `VOXGUARD_TRUST_PROXY=true` — otherwise any client
//! could redirect the platform's webhooks, credentials included, to a host of its choosing.

use axum::http::{header, HeaderMap};

use crate::config::ServerConfig;

/// The base URL (no credentials, path ending in `/` or the proxy base's path) for `headers`.
pub fn public_base(config: &ServerConfig, headers: &HeaderMap) -> url::Url {
    if let Some(base) = &config.proxy_url_base {
        return base.clone();
    }
    let header_str = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let mut scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut host = header_str(header::HOST.as_str()).and_then(valid_host);
    if config.trust_proxy {
        if let Some(proto) =
            header_str("x-forwarded-proto").map(|p| p.split(',').next().unwrap_or("").trim())
        {
            match proto {
                "https" => scheme = "https",
                "http" => scheme = "http",
                _ => {}
            }
        }
        if let Some(forwarded) = header_str("x-forwarded-host")
            .and_then(|h| h.split(',').next())
            .and_then(|h| valid_host(h.trim()))
        {
            host = Some(forwarded);
        }
    }
    let fallback = std::net::SocketAddr::new(config.host, config.port).to_string();
    let host = host.unwrap_or(&fallback);
    url::Url::parse(&format!("{scheme}://{host}/")).unwrap_or_else(|_| {
        url::Url::parse("http://127.0.0.1/").unwrap_or_else(|_| unreachable_url())
    })
}

/// `host` or `host:port` made only of characters a host name, IPv4/IPv6 literal and port use.
fn valid_host(host: &str) -> Option<&str> {
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        && url::Url::parse(&format!("http://{host}/"))
            .is_ok_and(|u| u.path() == "/" && u.username().is_empty());
    ok.then_some(host)
}

fn unreachable_url() -> url::Url {
    // "http://localhost/" always parses; this keeps the function total without a panic path.
    url::Url::parse("http://localhost/").unwrap_or_else(|_| unreachable_url())
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxguard_guard::BasicCredentials;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    fn config() -> ServerConfig {
        ServerConfig::new(BasicCredentials::new("u", "p"))
    }

    #[test]
    fn forwarded_headers_are_ignored_unless_trusted() {
        let h = headers(&[
            ("host", "agent.local:3000"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
        ]);
        let mut c = config();
        assert_eq!(public_base(&c, &h).as_str(), "http://agent.local:3000/");
        c.trust_proxy = true;
        assert_eq!(public_base(&c, &h).as_str(), "https://evil.example/");
    }

    #[test]
    fn proxy_base_wins_and_bad_hosts_fall_back() {
        let mut c = config();
        let h = headers(&[("host", "evil.example/x?y@z")]);
        assert_eq!(public_base(&c, &h).as_str(), "http://127.0.0.1:0/");
        c.proxy_url_base = Some(url::Url::parse("https://agents.example.com/bank/").unwrap());
        assert_eq!(
            public_base(&c, &h).as_str(),
            "https://agents.example.com/bank/"
        );
    }
}
