//! Prometheus metrics: what the runtime counts and how `/metrics` renders it.
//!
//! Owns the registry and its families: HTTP requests by route and status, request latency,
//! tool calls by function and outcome, refusals by reason, audit write latency and anomalies.
//! The HTTP layer records requests; the agent runtime (`voxguard`) records the rest through the
//! shared [`Metrics`] handle. Label values are bounded sets (known routes, the first
//! [`MAX_FUNCTION_LABELS`] function names, stable reasons) — never raw client input — so
//! neither a client nor a gateway's upstream can blow up the cardinality.
//! `/metrics` is served only with its own credentials (`VOXGUARD_METRICS_USER/PASSWORD`).

use std::collections::HashMap;
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

/// The `function` label of calls past [`MAX_FUNCTION_LABELS`] names. Neither a tool nor a
/// gateway's function may be named with a leading `__`, so no real function shares it.
pub const OTHER_FUNCTION: &str = "__other";

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
    /// Each route's handles into `requests` and `latency`, so that counting a request of a
    /// route and status seen before allocates nothing and hashes no label set. Routes come
    /// from a bounded set (the caller's promise) and statuses are three digits.
    routes: RwLock<HashMap<String, Arc<Handles>>>,
    /// The function names `tool_calls` is labelled with so far (at most
    /// [`MAX_FUNCTION_LABELS`]), each with its handles into `tool_calls` by outcome.
    functions: RwLock<HashMap<String, Arc<Handles>>>,
    /// The handles of [`OTHER_FUNCTION`].
    other_function: Handles,
}

/// The metrics of one route (or one function): a histogram, and counters keyed by a second
/// label (the status, or the outcome), found by a short linear search.
struct Handles {
    latency: Option<Histogram>,
    counters: RwLock<Vec<(String, Counter)>>,
}

impl Handles {
    fn new(latency: Option<Histogram>) -> Self {
        Self {
            latency,
            counters: RwLock::new(Vec::new()),
        }
    }

    /// Add one to the counter kept under `key`, made by `make` the first time `key` is seen.
    fn inc(&self, key: &str, make: impl FnOnce() -> Counter) {
        let find = |list: &[(String, Counter)]| list.iter().position(|(k, _)| k == key);
        if let Ok(list) = self.counters.read() {
            if let Some(at) = find(&list) {
                list[at].1.inc();
                return;
            }
        }
        let Ok(mut list) = self.counters.write() else {
            make().inc();
            return;
        };
        match find(&list) {
            Some(at) => {
                list[at].1.inc();
            }
            None => {
                let counter = make();
                counter.inc();
                list.push((key.to_string(), counter));
            }
        }
    }
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
                routes: RwLock::new(HashMap::new()),
                functions: RwLock::new(HashMap::new()),
                other_function: Handles::new(None),
            }),
        }
    }

    /// Count one HTTP request. `route` must come from a bounded set (a known route, or
    /// `"other"`).
    pub fn request(&self, route: &str, status: u16, duration: Duration) {
        let inner = &self.inner;
        let handles = cached(&inner.routes, route, usize::MAX, || {
            Handles::new(Some(
                inner
                    .latency
                    .get_or_create(&vec![("route", route.to_string())])
                    .clone(),
            ))
        });
        let Some(handles) = handles else { return };
        if let Some(latency) = &handles.latency {
            latency.observe(duration.as_secs_f64());
        }
        let mut digits = [0u8; 5];
        let status_label = status_digits(status, &mut digits);
        handles.inc(status_label, || {
            inner
                .requests
                .get_or_create(&vec![
                    ("route", route.to_string()),
                    ("status", status_label.to_string()),
                ])
                .clone()
        });
    }

    /// Count one tool call that reached its handler, by outcome (`ok`, `failed`, `refused`).
    /// The first [`MAX_FUNCTION_LABELS`] function names are labels of their own; later ones are
    /// counted as [`OTHER_FUNCTION`].
    pub fn tool_call(&self, function: &str, outcome: &str) {
        let inner = &self.inner;
        let own = cached(&inner.functions, function, MAX_FUNCTION_LABELS, || {
            Handles::new(None)
        });
        let (handles, function) = match &own {
            Some(handles) => (handles.as_ref(), function),
            None => (&inner.other_function, OTHER_FUNCTION),
        };
        handles.inc(outcome, || {
            inner
                .tool_calls
                .get_or_create(&vec![
                    ("function", function.to_string()),
                    ("outcome", outcome.to_string()),
                ])
                .clone()
        });
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

/// The handles kept under `key` in `map`, made by `make` the first time `key` is asked while
/// the map holds fewer than `limit` keys; `None` once it is full and `key` is not in it.
fn cached(
    map: &RwLock<HashMap<String, Arc<Handles>>>,
    key: &str,
    limit: usize,
    make: impl FnOnce() -> Handles,
) -> Option<Arc<Handles>> {
    if let Some(handles) = map.read().ok().and_then(|m| m.get(key).cloned()) {
        return Some(handles);
    }
    let mut map = map.write().ok()?;
    if let Some(handles) = map.get(key) {
        return Some(handles.clone());
    }
    if map.len() >= limit {
        return None;
    }
    let handles = Arc::new(make());
    map.insert(key.to_string(), handles.clone());
    Some(handles)
}

/// `status` in decimal, written into `buf` (a status is at most five digits as a `u16`).
fn status_digits(status: u16, buf: &mut [u8; 5]) -> &str {
    let mut at = buf.len();
    let mut rest = status;
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[at..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_and_status_through_the_cached_handles() {
        let metrics = Metrics::new();
        for _ in 0..3 {
            metrics.request("/swaig", 200, Duration::from_micros(300));
        }
        metrics.request("/swaig", 401, Duration::from_millis(2));
        metrics.request("other", 404, Duration::from_millis(1));
        metrics.tool_call("get_balance", "ok");
        metrics.tool_call("get_balance", "ok");
        metrics.tool_call("get_balance", "refused");
        let text = metrics.render();
        for line in [
            "voxguard_http_requests_total{route=\"/swaig\",status=\"200\"} 3",
            "voxguard_http_requests_total{route=\"/swaig\",status=\"401\"} 1",
            "voxguard_http_requests_total{route=\"other\",status=\"404\"} 1",
            "voxguard_http_request_duration_seconds_count{route=\"/swaig\"} 4",
            "voxguard_http_request_duration_seconds_count{route=\"other\"} 1",
            "voxguard_tool_calls_total{function=\"get_balance\",outcome=\"ok\"} 2",
            "voxguard_tool_calls_total{function=\"get_balance\",outcome=\"refused\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        let mut digits = [0u8; 5];
        assert_eq!(status_digits(7, &mut digits), "7");
        assert_eq!(status_digits(503, &mut digits), "503");
        assert_eq!(status_digits(u16::MAX, &mut digits), "65535");
    }

    #[test]
    fn tool_call_labels_stay_bounded_whatever_functions_are_called() {
        let metrics = Metrics::new();
        // A real function named `other` keeps its own series beside the overflow's.
        metrics.tool_call("other", "ok");
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
                .any(|l| l.contains("function=\"__other\"") && l.ends_with(" 501")),
            "{series:?}"
        );
        assert!(
            series
                .iter()
                .any(|l| l.contains("function=\"other\"") && l.ends_with(" 1")),
            "{series:?}"
        );
        assert!(series
            .iter()
            .any(|l| l.contains("function=\"lookup_0\"") && l.ends_with(" 2")));
    }
}
