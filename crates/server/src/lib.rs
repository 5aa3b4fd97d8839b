//! The voxguard HTTP runtime.
//!
//! This crate owns everything that needs the network: binding and accepting ([`serve`]), TLS
//! ([`tls`]), Basic authentication, body limits, timeouts, JSON errors and security headers
//! ([`http`]), and the public URL used in rendered webhooks ([`public_url`]). Agents plug in
//! through the [`AgentService`] trait and receive only authenticated, size-checked,
//! syntactically valid requests. Where a SWAIG request is authenticated:
//! `http::require_basic_auth`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod http;
pub mod metrics;
mod per_ip;
pub mod public_url;
mod raw_errors;
pub mod serve;
pub mod service;
pub mod tls;

pub use axum::body::Bytes;
pub use config::{ConfigError, ServeRole, ServerConfig, TlsConfig};
pub use metrics::Metrics;
pub use serve::{shutdown_signal, BoundServer, ServeError, Server};
pub use service::{
    is_console_path, is_records_path, malformed_json, with_query, AccessHooks, AccessRecord,
    AdminService, AgentRoutes, AgentService, ConsoleReply, ConsoleRequest, ConsoleService,
    ConsoleStream, OperatorRequest, RecordsService, Reply, RequestInfo, SecurityEvents,
    CONSOLE_BODY_LIMIT, CONSOLE_PREFIX, MAX_CONSOLE_FORM_PAIRS, MAX_OPERATOR_QUERY_PAIRS,
    RECORDS_PREFIX,
};
