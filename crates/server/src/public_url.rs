//! The public base URL that rendered webhooks point at.
//!
//! Owns one decision with security weight: where the platform will send its callbacks (and the
//! Basic credentials embedded in them). `SWML_PROXY_URL_BASE` wins; otherwise the `Host` header
//! (syntax-checked) with the scheme this server speaks. `X-Forwarded-Proto` and
//! `X-Forwarded-Host` are honoured only with `VOXGUARD_TRUST_PROXY=true` — otherwise any client
//! could redirect the platform's webhooks, credentials included, to a host of its choosing.
//! Parsed bases are remembered by their text (a bounded map), because parsing a URL is a
//! visible share of every request's CPU and the same few hosts arrive again and again.
//!
//! It also owns the other proxy header with security weight, `X-Forwarded-For`
//! ([`client_addr`]): who a request came from, for per-source limits, locks and the audit
//! trail. Read only on requests whose peer is one of `VOXGUARD_TRUSTED_PROXIES` (a separate
//! setting: a proxy trusted for the public URL may still pass a client's own header through),
//! and only from the right: the first entry that is not a trusted proxy is the client.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use axum::http::{header, HeaderMap, Uri};

use crate::config::ServerConfig;

/// How many distinct base texts are remembered; past it the map is emptied (a client sending a
/// new `Host` on every request only costs what parsing cost before).
const MAX_PARSED: usize = 256;

/// `"scheme://host/"` texts and what `url::Url::parse` made of them.
static PARSED: LazyLock<Mutex<HashMap<String, Option<url::Url>>>> = LazyLock::new(Mutex::default);

/// `url::Url::parse(text).ok()`, remembered.
fn parse(text: String) -> Option<url::Url> {
    // The map only ever holds finished entries; a panic elsewhere cannot leave it half-written.
    if let Some(parsed) = PARSED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&text)
    {
        return parsed.clone();
    }
    let parsed = url::Url::parse(&text).ok();
    let mut map = PARSED.lock().unwrap_or_else(PoisonError::into_inner);
    if map.len() >= MAX_PARSED {
        map.clear();
    }
    map.insert(text, parsed.clone());
    parsed
}

/// The address a request came from: the connection's `peer`, or — when the peer is one of the
/// `trusted` proxies ([`ServerConfig::trusted_proxies`]) — the last entry of `X-Forwarded-For`
/// (all its headers, in order) that is not itself a trusted proxy, with port 0. Entries to the
/// left of it are the client's own words and never read; an unreadable entry met first leaves
/// the peer, so such requests share one source rather than choose their own.
pub fn client_addr(
    trusted: &[ipnet::IpNet],
    headers: &HeaderMap,
    peer: std::net::SocketAddr,
) -> std::net::SocketAddr {
    if !is_trusted_proxy(trusted, peer.ip()) {
        return peer;
    }
    // The entries from the right, across headers (bounded by the request head's size); an
    // unreadable header reads as one unreadable entry.
    let entries = headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .flat_map(|value| value.to_str().unwrap_or("").rsplit(',').map(str::trim));
    for entry in entries {
        // A bare address (nginx, Caddy), or one written with a port (`[v6]:p`, `v4:p`).
        let ip = entry
            .parse::<std::net::IpAddr>()
            .ok()
            .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()));
        match ip.map(|ip| ip.to_canonical()) {
            Some(ip) if is_trusted_proxy(trusted, ip) => continue,
            Some(ip) => return std::net::SocketAddr::new(ip, 0),
            None => return peer,
        }
    }
    peer
}

/// Whether a request from `peer` carries an `X-Forwarded-For` that [`client_addr`] ignores
/// because `peer` is not a listed proxy: behind a proxy left out of `VOXGUARD_TRUSTED_PROXIES`,
/// every client would be the proxy.
pub(crate) fn forwarding_ignored(
    trusted: &[ipnet::IpNet],
    headers: &HeaderMap,
    peer: std::net::SocketAddr,
) -> bool {
    headers.contains_key("x-forwarded-for") && !is_trusted_proxy(trusted, peer.ip())
}

/// Log once per process that a request's `X-Forwarded-For` was ignored
/// ([`forwarding_ignored`]): a reverse proxy missing from `VOXGUARD_TRUSTED_PROXIES` makes every
/// client one source for the limits, the locks and the audit trail. The header's value is never
/// logged (the client writes it).
pub(crate) fn warn_if_forwarding_ignored(
    trusted: &[ipnet::IpNet],
    headers: &HeaderMap,
    peer: std::net::SocketAddr,
) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    use std::sync::atomic::Ordering::Relaxed;
    if !WARNED.load(Relaxed)
        && forwarding_ignored(trusted, headers, peer)
        && !WARNED.swap(true, Relaxed)
    {
        tracing::warn!(
            peer = %peer.ip(),
            "a request came with X-Forwarded-For from an address not listed in VOXGUARD_TRUSTED_PROXIES: the header is ignored, and limits, locks and the audit trail take that address as the client; behind a reverse proxy, list the proxy there (docs/configuration.md; logged once)"
        );
    }
}

/// Whether `ip` is one of the `trusted` proxies ([`ServerConfig::trusted_proxies`]).
fn is_trusted_proxy(trusted: &[ipnet::IpNet], ip: std::net::IpAddr) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

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
    let mut forwarded_host = None;
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
        forwarded_host = header_str("x-forwarded-host")
            .and_then(|h| h.split(',').next())
            .map(str::trim);
    }
    // The forwarded host when trusted and valid, else the `Host` header when valid: each is
    // parsed once, as the base itself.
    forwarded_host
        .and_then(|host| base_at(scheme, host))
        .or_else(|| header_str(header::HOST.as_str()).and_then(|host| base_at(scheme, host)))
        .or_else(|| {
            parse(format!(
                "{scheme}://{}/",
                std::net::SocketAddr::new(config.host, config.port)
            ))
        })
        .unwrap_or_else(|| {
            url::Url::parse("http://127.0.0.1/").unwrap_or_else(|_| unreachable_url())
        })
}

/// The absolute URL the platform called for a request to `uri`, as it signed it: the public
/// base (same rules as [`public_base`]) joined with the request's path, and its query string
/// byte for byte. No credentials.
pub fn request_url(config: &ServerConfig, headers: &HeaderMap, uri: &Uri) -> String {
    let mut url = public_base(config, headers);
    let joined = format!(
        "{}/{}",
        url.path().trim_end_matches('/'),
        uri.path().trim_start_matches('/')
    );
    url.set_path(&joined);
    url.set_query(None);
    let mut text: String = url.into();
    if let Some(query) = uri.query() {
        text.push('?');
        text.push_str(query);
    }
    text
}

/// `scheme://host/`, when `host` (or `host:port`) is made only of characters a host name,
/// IPv4/IPv6 literal and port use, and parses as a host alone (no path, no credentials). `http`
/// and `https` parse a host alike.
fn base_at(scheme: &str, host: &str) -> Option<url::Url> {
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !plain {
        return None;
    }
    parse([scheme, "://", host, "/"].concat())
        .filter(|url| url.path() == "/" && url.username().is_empty())
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
        // A forwarded host that is not a host alone leaves the `Host` header, in the forwarded
        // scheme; a bad one of each leaves the listening address.
        let h = headers(&[
            ("host", "agent.local:443"),
            ("x-forwarded-host", "evil.example/x"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(public_base(&c, &h).as_str(), "https://agent.local/");
        let h = headers(&[("host", "a@b"), ("x-forwarded-host", "c d")]);
        assert_eq!(public_base(&c, &h).as_str(), "http://127.0.0.1:0/");
    }

    #[test]
    fn request_urls_keep_the_query_and_the_proxy_path() {
        let mut c = config();
        let h = headers(&[("host", "agent.local:3000")]);
        let uri: Uri = "/bank/swaig?__token=a%2Bb&x=1".parse().unwrap();
        assert_eq!(
            request_url(&c, &h, &uri),
            "http://agent.local:3000/bank/swaig?__token=a%2Bb&x=1"
        );
        c.proxy_url_base = Some(url::Url::parse("https://agents.example.com/base/").unwrap());
        assert_eq!(
            request_url(&c, &h, &"/bank".parse().unwrap()),
            "https://agents.example.com/base/bank"
        );
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

    /// The remembered parses answer exactly what parsing answers, for good and bad hosts,
    /// the second time and after the map was emptied for being full.
    #[test]
    fn remembered_bases_answer_what_parsing_answers() {
        let c = config();
        let cases = [
            ("agent.local:3000", "http://agent.local:3000/"),
            ("[::1]:8080", "http://[::1]:8080/"),
            ("[::1", "http://127.0.0.1:0/"),
            ("host:99999", "http://127.0.0.1:0/"),
            ("1.2.3.4", "http://1.2.3.4/"),
        ];
        for round in 0..3 {
            for (host, want) in cases {
                let h = headers(&[("host", host)]);
                assert_eq!(public_base(&c, &h).as_str(), want, "{host} (round {round})");
            }
            // Fill the map past its bound between rounds.
            for i in 0..MAX_PARSED + 3 {
                let h = headers(&[("host", &format!("h{i}.example"))]);
                assert_eq!(
                    public_base(&c, &h).as_str(),
                    format!("http://h{i}.example/")
                );
            }
            assert!(PARSED.lock().unwrap().len() <= MAX_PARSED);
        }
    }

    #[test]
    fn forwarding_is_reported_ignored_only_from_an_unlisted_peer() {
        let proxy: std::net::SocketAddr = "10.0.0.2:40000".parse().unwrap();
        let listed: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.9")]);
        // A proxy left out of the list (or no list at all): every client would be the proxy.
        assert!(forwarding_ignored(&[], &forwarded, proxy));
        let other: Vec<ipnet::IpNet> = vec!["192.168.0.0/16".parse().unwrap()];
        assert!(forwarding_ignored(&other, &forwarded, proxy));
        // A listed proxy's header is read; a request without the header says nothing.
        assert!(!forwarding_ignored(&listed, &forwarded, proxy));
        assert!(!forwarding_ignored(&[], &headers(&[("host", "a")]), proxy));
    }

    #[test]
    fn the_client_is_the_first_untrusted_forwarded_entry_from_the_right() {
        let proxy: std::net::SocketAddr = "10.0.0.2:40000".parse().unwrap();
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |trusted: &[ipnet::IpNet], peer, pairs: &[(&'static str, &str)]| {
            client_addr(trusted, &headers(pairs), peer).to_string()
        };
        let spoofed = [("x-forwarded-for", "1.1.1.1, 203.0.113.9")];
        // No trusted proxies, or a peer that is not one: the header is the client's words.
        assert_eq!(ip(&[], proxy, &spoofed), "10.0.0.2:40000");
        let direct: std::net::SocketAddr = "198.51.100.1:5000".parse().unwrap();
        assert_eq!(ip(&trusted, direct, &spoofed), "198.51.100.1:5000");
        // From a trusted proxy: the entry it appended, never the ones the client sent first.
        assert_eq!(ip(&trusted, proxy, &spoofed), "203.0.113.9:0");
        // A chain of trusted proxies is walked from the right.
        let chain = [("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.1.2.3")];
        assert_eq!(ip(&trusted, proxy, &chain), "203.0.113.9:0");
        for (value, client) in [
            ("2001:db8::7", "[2001:db8::7]:0"),
            ("[2001:db8::7]:443", "[2001:db8::7]:0"),
            ("198.51.100.4:5060", "198.51.100.4:0"),
            ("::ffff:198.51.100.4", "198.51.100.4:0"),
        ] {
            assert_eq!(ip(&trusted, proxy, &[("x-forwarded-for", value)]), client);
        }
        // Missing or unreadable: the proxy itself (one shared source, never a chosen one).
        for pairs in [
            &[][..],
            &[("x-forwarded-for", "203.0.113.9, unknown")][..],
            &[("x-forwarded-for", "")][..],
            &[("x-forwarded-for", "203.0.113.9,")][..],
        ] {
            assert_eq!(ip(&trusted, proxy, pairs), "10.0.0.2:40000", "{pairs:?}");
        }
        // Several headers: read from the last one back.
        let mut map = HeaderMap::new();
        map.append("x-forwarded-for", "1.1.1.1".parse().unwrap());
        map.append("x-forwarded-for", "203.0.113.10, 10.9.9.9".parse().unwrap());
        assert_eq!(
            client_addr(&trusted, &map, proxy).to_string(),
            "203.0.113.10:0"
        );
    }
}
