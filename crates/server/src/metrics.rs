//! Prometheus metrics: what the runtime counts and how `/metrics` renders it.
//!
//! Owns the registry and its families: HTTP requests by route and status, request latency,
//! tool calls by function and outcome, refusals by reason, audit write latency and anomalies.
//! The HTTP layer records requests; the agent runtime (`voxguard`) records the rest through the
//! shared [`Metrics`] handle. Label values are bounded sets (known routes, declared tools,
//! stable reasons) — never raw client input — so a client cannot blow up the cardinality.
//! `/metrics` is served only with its own credentials (`VOXGUARD_METRICS_USER/PASSWORD`).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

fn latency_histogram() -> Histogram {
    // 0.1 ms … ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The runtime's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    tool_calls: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    audit_latency: Histogram,
    anomalies: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// An empty registry with every voxguard family registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("voxguard");
        let requests = Family::<Labels, Counter>::default();
        let latency = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let tool_calls = Family::<Labels, Counter>::default();
        let refusals = Family::<Labels, Counter>::default();
        let audit_latency = latency_histogram();
        let anomalies = Family::<Labels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "tool_calls",
            "SWAIG tool calls by function and outcome",
            tool_calls.clone(),
        );
        registry.register(
            "refusals",
            "Refused requests by stable reason",
            refusals.clone(),
        );
        registry.register(
            "audit_write_duration_seconds",
            "Time to make one audit event durable",
            audit_latency.clone(),
        );
        registry.register("anomalies", "Anomalies detected by rule", anomalies.clone());
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                tool_calls,
                refusals,
                audit_latency,
                anomalies,
            }),
        }
    }

    /// Count one HTTP request. `route` must come from a bounded set (a known route, or
    /// `"other"`).
    pub fn request(&self, route: &str, status: u16, duration: Duration) {
        let route = route.to_string();
        self.inner
            .requests
            .get_or_create(&vec![
                ("route", route.clone()),
                ("status", status.to_string()),
            ])
            .inc();
        self.inner
            .latency
            .get_or_create(&vec![("route", route)])
            .observe(duration.as_secs_f64());
    }

    /// Count one tool call that reached its handler, by outcome (`ok`, `failed`, `refused`).
    pub fn tool_call(&self, function: &str, outcome: &str) {
        self.inner
            .tool_calls
            .get_or_create(&vec![
                ("function", function.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    /// Count one refusal by its stable reason.
    pub fn refusal(&self, reason: &str) {
        self.inner
            .refusals
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    /// Record how long an audit write took.
    pub fn audit_write(&self, duration: Duration) {
        self.inner.audit_latency.observe(duration.as_secs_f64());
    }

    /// Count one anomaly by rule.
    pub fn anomaly(&self, rule: &str) {
        self.inner
            .anomalies
            .get_or_create(&vec![("rule", rule.to_string())])
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }
}
