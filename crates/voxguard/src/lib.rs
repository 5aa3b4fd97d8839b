//! voxguard: secure-by-default voice AI agents for SignalWire SWML/SWAIG.
//!
//! Declare an [`Agent`] with a prompt and [`Tool`]s; [`Runtime`] serves it over HTTP(S) with
//! Basic auth, per-call function tokens and server-side argument validation already enforced.
//!
//! ```no_run
//! use voxguard::prelude::*;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let agent = Agent::builder("greeter")
//!     .prompt_section("Role", "You greet callers and tell them the opening hours.")
//!     .tool(Tool::untyped(
//!         "opening_hours",
//!         "Tell the caller when we are open",
//!         serde_json::json!({"type": "object", "properties": {}}),
//!         |_args, _ctx| async { Ok(FunctionResult::new("We are open 9 to 5, Monday to Friday.")) },
//!     ))
//!     .build()?;
//! Runtime::from_env()?.agent(agent).serve().await?;
//! # Ok(()) }
//! ```
//!
//! Where things happen: Basic auth — `voxguard_server::http::require_basic_auth`; function
//! tokens minted — `render` at SWML time, checked — `pipeline::check_token`; argument
//! validation — `voxguard_guard::ArgValidator`; audit events written — `audit::Auditor::record`,
//! called from the one wrapper `pipeline::Pipeline::audited`. Module dependencies point one way:
//! `runtime` → `admin`, `config`, `pipeline` → `render` → `agent` → `tool` → `context` →
//! `services` → `audit`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admin;
mod agent;
mod audit;
mod config;
pub mod console;
mod context;
pub mod gateway;
mod hashers;
mod limits;
pub mod logging;
pub mod payments;
mod pipeline;
pub mod records;
mod render;
mod runtime;
mod services;
mod state;
mod tool;
mod verification;
mod verify_policy;

pub use agent::{Agent, AgentBuilder, AgentError};
pub use config::{
    audit_durability_from_lookup, checkpoint_every_from_lookup, emergency_from_lookup,
    open_audit_log_from_env, render_limit_from_lookup, secret_checks_from_lookup,
    token_ttl_from_lookup, RuntimeError,
};
pub use context::{CallContext, Session, SessionError};
pub use gateway::{GatewayConfig, GatewayConfigError};
pub use limits::{AgentLimits, LimitsError};
pub use logging::{redacting_writer, RedactingWriter};
pub use pipeline::{CONFIRMATION_WINDOW_SECS, UNDECLARED_FIELD};
pub use records::{
    Actor, Compliance, ComplianceError, DeletionReport, RecordKind, Records, RecordsConfig,
    RecordsConfigError, RecordsError, Retention,
};
pub use runtime::{Running, Runtime};
pub use state::{State, StateConfig, DEFAULT_REDIS_PREFIX};
pub use tool::{Tool, ToolError, ToolResult};
pub use verification::{Verification, VerifyOutcome};
pub use verify_policy::{CallerAllowList, CallerEntry, LockoutAction, VerificationPolicy};
pub use voxguard_guard::{Reason, Refusal};

pub use voxguard_guard as guard;
pub use voxguard_server as server;
pub use voxguard_store as store;
pub use voxguard_swml as swml;

/// # Allocator
///
/// With the default `jemalloc` feature, linking voxguard makes jemalloc the process's global
/// allocator. A request allocates and frees many small objects on several threads (the
/// runtime's workers, the audit writer); glibc's malloc spent about a sixth of the fast path's
/// CPU there, partly waiting on its arena locks, and jemalloc cut the CPU per request by about
/// a quarter (BENCHMARKS.md, issue 13). A binary that sets its own `#[global_allocator]` turns
/// the feature off (`default-features = false`).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Logging setup for binaries: `RUST_LOG`-style filter (default `info`), JSON lines when
/// `VOXGUARD_LOG_FORMAT=json`, human-readable otherwise, on stderr. Safe to call more than once.
///
/// Every line passes through a [`RedactingWriter`] first, so no card number, PIN, password,
/// token or credential reaches the log in clear, whichever format is chosen and whoever logged
/// it. The first successful call also replaces std's panic hook with one that logs the panic
/// through `tracing` (target `panic`), because the default hook prints the message straight to
/// stderr, past the redaction; it replaces any hook set before, so set your own after this call.
///
/// The access log's lines (one per request) are written in batches, at least every
/// `VOXGUARD_LOG_FLUSH_MS` milliseconds (default 100, at most 10,000; `0` writes each line at
/// once); every other line is written at once. See [`logging::BatchedStderr`].
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("VOXGUARD_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let flush_setting = std::env::var("VOXGUARD_LOG_FLUSH_MS").ok();
    let flush_ms = match flush_setting.as_deref().map(str::trim) {
        None | Some("") => Some(logging::DEFAULT_LOG_FLUSH.as_millis() as u64),
        Some(text) => text.parse::<u64>().ok().filter(|ms| *ms <= 10_000),
    };
    let flush_every = std::time::Duration::from_millis(
        flush_ms.unwrap_or(logging::DEFAULT_LOG_FLUSH.as_millis() as u64),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a person at a terminal: a file or a log collector gets plain text,
        // which the redacting writer need not strip before it looks at a line.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(redacting_writer(logging::BatchedStderr::new(flush_every)));
    let installed = if json {
        builder.json().try_init()
    } else {
        // The same text as the default format; the access lines by a shorter path.
        builder
            .event_format(logging::TextFormat::default())
            .try_init()
    };
    if installed.is_ok() {
        logging::install_panic_hook();
        if flush_ms.is_none() {
            tracing::warn!(
                "VOXGUARD_LOG_FLUSH_MS must be a whole number of milliseconds from 0 to 10000; using {} ms",
                logging::DEFAULT_LOG_FLUSH.as_millis()
            );
        }
    }
}

/// The items most agents need.
pub mod prelude {
    pub use crate::{
        Agent, AgentLimits, CallContext, CallerAllowList, LockoutAction, Runtime, Tool, ToolError,
        ToolResult, VerificationPolicy,
    };
    pub use voxguard_swml::{FunctionResult, Language, PomSection};
}
