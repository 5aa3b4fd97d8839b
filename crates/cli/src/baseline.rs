//! The bare-axum baseline of `voxguard bench --baseline`.
//!
//! This module owns the yardstick voxguard's overhead is measured against: an axum server with
//! none of voxguard's layers that does the least a SWAIG endpoint must do — parse the same JSON
//! body into the same request types ([`SwaigRequest`], [`SwmlRequest`]) and answer a fixed body.
//! SWML fetches get the document the real agent rendered (read from stdin at start), so the
//! load generator plays exactly the same flows against it. It runs as a child process of the
//! bench (`voxguard bench-baseline-server`, a hidden command) on a port chosen by the kernel,
//! with a multi-threaded runtime like the agent's, so both compete for the same cores with the
//! load generator in the same way. It listens on 127.0.0.1 only.

use std::io::Read as _;
use std::net::SocketAddr;
use std::process::Stdio;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use voxguard_swml::{SwaigRequest, SwmlRequest};

use crate::Exit;

/// The fixed SWAIG answer.
const SWAIG_REPLY: &str = r#"{"response":"OK."}"#;
/// The line the server prints once it listens, before the URL.
const LISTENING: &str = "bench baseline listening on http://";

/// `voxguard bench-baseline-server`: read the SWML document from stdin (its length in bytes
/// on a line, then the bytes), serve until stdin closes — which happens when the bench exits
/// however it exits, so the server never outlives it.
pub fn serve() -> Exit {
    let mut stdin = std::io::stdin().lock();
    let mut length = String::new();
    let swml = std::io::BufRead::read_line(&mut stdin, &mut length)
        .ok()
        .and_then(|_| length.trim().parse::<usize>().ok())
        .and_then(|length| {
            let mut swml = vec![0; length];
            stdin.read_exact(&mut swml).ok().map(|()| swml)
        });
    drop(stdin);
    let Some(swml) = swml else {
        eprintln!("bench baseline: stdin must carry the SWML document's length, a newline, then the document");
        return Exit::Usage;
    };
    std::thread::spawn(|| {
        // Returns at end of file (or error): the bench is gone.
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    if serde_json::from_slice::<serde_json::Value>(&swml).is_err() {
        eprintln!("bench baseline: stdin is not a JSON SWML document");
        return Exit::Usage;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bench baseline: cannot start the runtime: {e}");
            return Exit::Internal;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", 0)).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("bench baseline: cannot listen on 127.0.0.1: {e}");
                return Exit::Internal;
            }
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(e) => {
                eprintln!("bench baseline: {e}");
                return Exit::Internal;
            }
        };
        if crate::print_stdout(&format!("{LISTENING}{addr}/\n")) != Exit::Ok {
            return Exit::Internal;
        }
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(Bytes::from(swml));
        match axum::serve(listener, app).await {
            Ok(()) => Exit::Ok,
            Err(e) => {
                eprintln!("bench baseline: {e}");
                Exit::Internal
            }
        }
    })
}

/// Parse the body as the real endpoint would, answer a fixed body.
async fn answer(State(swml): State<Bytes>, uri: Uri, body: Bytes) -> Response {
    let json = [(header::CONTENT_TYPE, "application/json")];
    if uri.path().trim_end_matches('/').ends_with("/swaig") {
        match serde_json::from_slice::<SwaigRequest>(&body) {
            Ok(request) if !request.function.is_empty() => (json, SWAIG_REPLY).into_response(),
            _ => (
                StatusCode::BAD_REQUEST,
                json,
                r#"{"error":"invalid_request"}"#,
            )
                .into_response(),
        }
    } else if body.is_empty() || serde_json::from_slice::<SwmlRequest>(&body).is_ok() {
        (json, swml).into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            json,
            r#"{"error":"malformed_json"}"#,
        )
            .into_response()
    }
}

/// A running baseline server; killed when dropped.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process id.
    pub pid: u32,
    _child: tokio::process::Child,
    /// Held open: the server exits when it closes.
    _stdin: tokio::process::ChildStdin,
}

/// Start the baseline server as a child process serving `swml`.
pub async fn spawn(swml: &[u8]) -> std::io::Result<Server> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("bench-baseline-server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin"))?;
    stdin
        .write_all(format!("{}\n", swml.len()).as_bytes())
        .await?;
    stdin.write_all(swml).await?;
    stdin.flush().await?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(stdout);
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reader.read_line(&mut line),
    )
    .await
    .map_err(|_| std::io::Error::other("it did not announce itself within 10 s"))??;
    let addr = line
        .trim()
        .strip_prefix(LISTENING)
        .and_then(|rest| rest.trim_end_matches('/').parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("unexpected first line {line:?}")))?;
    Ok(Server {
        addr,
        pid: child
            .id()
            .ok_or_else(|| std::io::Error::other("the baseline server exited at once"))?,
        _child: child,
        _stdin: stdin,
    })
}
