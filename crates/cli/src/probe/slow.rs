//! Slow-client starvation, bounded: up to N connections (at most 64) that send a partial
//! request head and then one more header line a second, never finishing it; meanwhile one
//! normal SWML fetch must still be served, and the agent must close every slow connection
//! before the bound (`--slow-secs`).
//!
//! It owns those connections and their verdicts (`slow.starvation`, `slow.headers`). It must
//! never open more than N connections nor keep any past the bound: every connection is
//! dropped when the check ends.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{tls, Ctx, Severity};
use crate::agent::mask;

/// A connection, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How often a slow client sends one more header line.
const DRIP: Duration = Duration::from_secs(1);

/// Open one slow connection to the target and send the start of a request head.
async fn open(
    ctx: &Ctx,
    config: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
) -> Option<Box<dyn Io>> {
    let url = &ctx.target.url;
    let host = url.host_str()?.to_string();
    let mut stream: Box<dyn Io> = match config {
        Some(config) => Box::new(
            tls::connect(url, config, Duration::from_secs(5))
                .await
                .ok()?,
        ),
        None => {
            let port = url.port_or_known_default()?;
            let host = host.trim_matches(['[', ']']).to_string();
            let tcp = tokio::time::timeout(
                Duration::from_secs(5),
                TcpStream::connect((host.as_str(), port)),
            )
            .await
            .ok()?
            .ok()?;
            Box::new(tcp)
        }
    };
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n",
        url.path(),
        url.host_str().unwrap_or_default()
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    Some(stream)
}

/// Keep `stream` slow until `deadline`; whether the agent closed it (or answered) first.
async fn dribble(mut stream: Box<dyn Io>, deadline: Instant) -> bool {
    let mut buf = [0u8; 512];
    let mut line = 0u32;
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => {
                // Closed (0 or an error) or answered (e.g. 408): either way, not held.
                let _ = read;
                return true;
            }
            _ = tokio::time::sleep(DRIP) => {
                if Instant::now() >= deadline {
                    return false;
                }
                line += 1;
                if stream.write_all(format!("X-Voxguard-Probe-{line}: 1\r\n").as_bytes()).await.is_err() {
                    return true;
                }
            }
        }
    }
}

/// Open `count` slow clients for at most `bound`.
pub async fn check(ctx: &mut Ctx, count: usize, bound: Duration) {
    let config = if ctx.target.url.scheme() == "https" {
        match tls::config(ctx.ca_cert.as_deref()) {
            Ok(config) => Some(config),
            Err(why) => {
                ctx.note(format!("the slow-client check did not run: {why}"));
                return;
            }
        }
    } else {
        None
    };
    let started = Instant::now();
    let deadline = started + bound;
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        if Instant::now() >= deadline {
            break;
        }
        ctx.report.requests += 1;
        if let Some(stream) = open(ctx, config.clone()).await {
            tasks.push(tokio::spawn(dribble(stream, deadline)));
        }
    }
    let opened = tasks.len();
    let shown = mask::url(ctx.target.url.as_str());
    if opened == 0 {
        ctx.note(format!(
            "the slow-client check could open no connection to {shown} (refused at once: fine)"
        ));
        return;
    }
    // A normal request while the slow clients hold their connections.
    let call = ctx.call.another();
    ctx.report.requests += 1;
    let starved = ctx.target.render(&call).await.err();
    if let Some(err) = &starved {
        ctx.finding(
            "slow.starvation",
            Severity::High,
            format!("a normal SWML fetch fails while {opened} slow clients are connected"),
            &shown,
            &format!(
                "{opened} connections sending a request head slowly; then POST {shown} → {err}"
            ),
        );
    }
    let mut held = 0;
    for task in tasks {
        if let Ok(false) = task.await {
            held += 1;
        }
    }
    if held > 0 {
        // Without starvation, a slow header timeout is common behind proxies (nginx waits
        // 60 s by default): low. With starvation it adds to the high slow.starvation finding.
        let severity = if starved.is_some() {
            Severity::Medium
        } else {
            Severity::Low
        };
        ctx.finding(
            "slow.headers",
            severity,
            format!(
                "{held} of {opened} slow clients are still connected after {} s",
                bound.as_secs()
            ),
            &shown,
            &format!(
                "{opened} connections each sending one header line a second without finishing \
                 the request head; {held} were not closed by the agent within {} s",
                bound.as_secs()
            ),
        );
    } else {
        ctx.note(format!(
            "slow clients: all {opened} were closed by the agent within {} s",
            bound.as_secs()
        ));
    }
}
