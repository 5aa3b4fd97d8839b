//! Plumbing shared by the commands that talk to an agent (`swml`, `tools`, `exec`,
//! `simulate`, `probe`, `check`): one tokio runtime per command, the exit code and message of
//! an [`AgentError`], JSON and coloured output that respects `NO_COLOR`.
//!
//! It owns nothing a command decides; it must not print anything but what it is given.

use std::future::Future;
use std::io::IsTerminal as _;

use crate::agent::AgentError;
use crate::output::clean;
use crate::Exit;

/// Run `work` on a fresh multi-threaded runtime; a runtime that cannot start is an internal
/// error.
pub fn block_on<F: Future<Output = Exit>>(work: F) -> Exit {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(work),
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            Exit::Internal
        }
    }
}

/// Print `err` to stderr (terminal-safe: the message may quote the agent) and return its exit
/// code: usage (2) or agent (4).
pub fn agent_error(err: &AgentError) -> Exit {
    eprintln!("error: {}", clean(&err.to_string()));
    if err.is_usage() {
        Exit::Usage
    } else {
        Exit::Agent
    }
}

/// Print a usage error to stderr and return [`Exit::Usage`].
pub fn usage(message: &str) -> Exit {
    eprintln!("error: {}", clean(message));
    Exit::Usage
}

/// Print `value` as one line of JSON (`pretty`: indented) on stdout.
pub fn print_json(value: &serde_json::Value, pretty: bool) -> Exit {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    match text {
        Ok(text) => crate::print_stdout(&format!("{text}\n")),
        Err(_) => Exit::Internal,
    }
}

/// Whether stdout gets colours: a terminal, and `NO_COLOR` unset or empty (any non-empty
/// value turns colours off, <https://no-color.org>).
pub fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
        && std::io::stdout().is_terminal()
}

/// `text` in the ANSI colour `code` (31 red, 32 green, 33 yellow, 1 bold) when `on`.
pub fn paint(text: &str, code: &str, on: bool) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Whether progress bars are drawn: stderr is a terminal (indicatif hides them otherwise
/// too) and `--json` was not asked for.
pub fn progress(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}
