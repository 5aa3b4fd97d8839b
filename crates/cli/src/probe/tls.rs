//! The TLS check of an https agent: one verified handshake (the Mozilla roots the rest of the
//! CLI trusts, plus `--ca-cert`), whose failure is a `tls.certificate` (untrusted, expired,
//! wrong name) or `tls.protocol` finding, and whose success reports the negotiated version as
//! a note. It also opens the TLS connections of the slow-client check.
//!
//! It owns the rustls client configuration of the probe's own connections. It must not accept
//! an unverified certificate, and it speaks only what rustls speaks (TLS 1.2 and 1.3).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::{client::TlsStream, TlsConnector};

use super::report::{Report, Severity};
use crate::agent::mask;

/// The client configuration: Mozilla roots plus the certificates of `ca_cert`.
///
/// # Errors
///
/// A sentence when `ca_cert` cannot be read or holds no certificate.
pub fn config(ca_cert: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path)
            .map_err(|err| format!("cannot read --ca-cert {}: {err}", path.display()))?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert =
                cert.map_err(|err| format!("--ca-cert {} is not PEM: {err}", path.display()))?;
            if roots.add(cert).is_ok() {
                added += 1;
            }
        }
        if added == 0 {
            return Err(format!(
                "--ca-cert {} holds no usable certificate",
                path.display()
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("cannot set up TLS: {err}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Why a connection failed.
pub enum Failure {
    /// No TCP connection (the agent is down or the address is wrong).
    Connect,
    /// The TLS handshake failed.
    Handshake(String),
}

/// A verified TLS connection to `url`'s host and port.
///
/// # Errors
///
/// [`Failure`] with the reason.
pub async fn connect(
    url: &Url,
    config: Arc<ClientConfig>,
    wait: Duration,
) -> Result<TlsStream<TcpStream>, Failure> {
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let name = ServerName::try_from(host.clone()).map_err(|err| {
        Failure::Handshake(format!("{host} is not a valid TLS server name: {err}"))
    })?;
    let tcp = tokio::time::timeout(wait, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| Failure::Connect)?
        .map_err(|_| Failure::Connect)?;
    tokio::time::timeout(wait, TlsConnector::from(config).connect(name, tcp))
        .await
        .map_err(|_| {
            Failure::Handshake(format!(
                "no TLS handshake within {} s (--timeout)",
                wait.as_secs()
            ))
        })?
        .map_err(|err| Failure::Handshake(err.to_string()))
}

/// Check TLS on `url`, waiting at most `wait` for the connection and for the handshake;
/// `false` when the rest of the probe cannot go on (a finding or a note says why).
pub async fn check(url: &Url, ca_cert: Option<&Path>, wait: Duration, report: &mut Report) -> bool {
    let shown = mask::url(url.as_str());
    let config = match config(ca_cert) {
        Ok(config) => config,
        Err(why) => {
            report.note(format!("the TLS check did not run: {why}"));
            return true;
        }
    };
    report.requests += 1;
    match connect(url, config, wait).await {
        Ok(stream) => {
            let version = stream
                .get_ref()
                .1
                .protocol_version()
                .map_or_else(|| "an unknown version".to_string(), |v| format!("{v:?}"))
                .replace("TLSv1_", "TLS 1.");
            report.note(format!(
                "TLS: {version} negotiated with {shown}, certificate verified{}",
                if ca_cert.is_some() {
                    " (system roots and --ca-cert)"
                } else {
                    " (system roots)"
                }
            ));
            true
        }
        // Unreachable: let the SWML fetch say so with its own advice.
        Err(Failure::Connect) => true,
        Err(Failure::Handshake(why)) => {
            let lower = why.to_ascii_lowercase();
            let (id, title) = if lower.contains("certificate")
                || lower.contains("issuer")
                || lower.contains("name")
            {
                (
                    "tls.certificate",
                    "the certificate is not trusted for this host",
                )
            } else {
                (
                    "tls.protocol",
                    "no TLS 1.2 or 1.3 connection could be negotiated",
                )
            };
            report.add(
                id,
                Severity::High,
                title.to_string(),
                shown.clone(),
                format!("TLS handshake with {shown}: {why}"),
            );
            report.note(
                "the other checks need a verified TLS connection and did not run; for a \
                 private or test CA give --ca-cert FILE"
                    .to_string(),
            );
            false
        }
    }
}
