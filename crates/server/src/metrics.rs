//! Prometheus metrics: what the runtime counts and how `/metrics` renders it.
//!
//! Owns the registry and its families: HTTP requests by route and status, request latency,
//! tool calls by function and outcome, refusals by reason, audit write latency and anomalies.
//! The HTTP layer records requests; the agent runtime (`voxguard`) records the rest through the
//! shared [`Metrics`] handle. Label values are bounded sets (known routes, the first
//! [`MAX_FUNCTION_LABELS`] function names, stable reasons) — never raw client input — so
//! neither a client nor a gateway's upstream can blow up the cardinality.
//! `/metrics` is served only with its own credentials (`VOXGUARD_METRICS_USER/PASSWORD`).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// The most function names `tool_calls` is labelled with; calls of any other function are
/// counted under [`OTHER_FUNCTION`]. An agent's tools are its own bounded set, but a gateway's
/// come from each upstream render, which may name new functions for ever.
pub const MAX_FUNCTION_LABELS: usize = 1024;

/// The `function` label of calls past [`MAX_FUNCTION_LABELS`] names.
pub const OTHER_FUNCTION: &str = "other";

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
    /// The function names `tool_calls` is labelled with so far (at most
    /// [`MAX_FUNCTION_LABELS`]).
    functions: RwLock<HashSet<String>>,
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
                functions: RwLock::new(HashSet::new()),
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
    /// The first [`MAX_FUNCTION_LABELS`] function names are labels of their own; later ones are
    /// counted as [`OTHER_FUNCTION`].
    pub fn tool_call(&self, function: &str, outcome: &str) {
        let function = if self.function_label(function) {
            function
        } else {
            OTHER_FUNCTION
        };
        self.inner
            .tool_calls
            .get_or_create(&vec![
                ("function", function.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    /// Whether `function` is (or now becomes) a label of its own.
    fn function_label(&self, function: &str) -> bool {
        let known = |set: &HashSet<String>| set.contains(function);
        if self.inner.functions.read().is_ok_and(|set| known(&set)) {
            return true;
        }
        let Ok(mut set) = self.inner.functions.write() else {
            return false;
        };
        if known(&set) {
            return true;
        }
        if set.len() >= MAX_FUNCTION_LABELS {
            return false;
        }
        set.insert(function.to_string());
        true
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_call_labels_stay_bounded_whatever_functions_are_called() {
        let metrics = Metrics::new();
        for i in 0..MAX_FUNCTION_LABELS + 500 {
            metrics.tool_call(&format!("lookup_{i}"), "ok");
        }
        metrics.tool_call("lookup_0", "ok");
        let text = metrics.render();
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("voxguard_tool_calls_total{"))
            .collect();
        assert_eq!(series.len(), MAX_FUNCTION_LABELS + 1, "{}", series.len());
        assert!(
            series
                .iter()
                .any(|l| l.contains("function=\"other\"") && l.ends_with(" 500")),
            "{series:?}"
        );
        assert!(series
            .iter()
            .any(|l| l.contains("function=\"lookup_0\"") && l.ends_with(" 2")));
    }
}
