//! The report: the figures of a run, as text for people and as JSON for scripts.
//!
//! This module owns the report's types (serialized as `--json` prints them), the percentiles
//! of a histogram, and the human-readable rendering. Both outputs
//! are read by people and scripts alike: their shape is stable. It must not measure anything.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The target's memory over the run, in MiB.
#[derive(Debug, Clone, Serialize)]
pub struct Rss {
    /// The sampled process.
    pub pid: u32,
    /// Before the load.
    pub start_mib: f64,
    /// Highest sample during the run.
    pub peak_mib: f64,
    /// After the load.
    pub end_mib: f64,
}

/// Bytes in MiB, to one decimal.
pub(super) fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Slowest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// The percentiles of `histogram` (microseconds), in milliseconds to two decimals.
    pub(super) fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
        Self {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p99_9: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
            mean: (histogram.mean() / 10.0).round() / 100.0,
        }
    }
}

/// One step's figures.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Requests completed in the measured window.
    pub requests: u64,
    /// Of which refused or failed.
    pub errors: u64,
    /// Requests per second.
    pub rps: f64,
    /// Latency.
    pub latency_ms: Latency,
}

/// The figures of one run against one server.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The SWML URL (no credentials).
    pub target: String,
    /// Requests completed in the measured window.
    pub requests: u64,
    /// Of which refused or failed.
    pub errors: u64,
    /// Requests per second over the measured window.
    pub rps: f64,
    /// Simulated calls completed in the measured window.
    pub calls_completed: u64,
    /// Latency of all requests.
    pub latency_ms: Latency,
    /// Per step: `swml`, `<verifier> (verify)`, each function.
    pub steps: BTreeMap<String, StepReport>,
    /// Errors by `"<status> <reason>"` or `"transport: <kind>"`.
    pub errors_by: BTreeMap<String, u64>,
    /// The measured window, seconds.
    pub measured_secs: f64,
    /// The server's CPU time over the measured window ÷ requests, microseconds (with the
    /// server's pid: `--pid`, or the baseline's own process). Unlike requests/s, this does not
    /// depend on how much of the machine the load generator takes.
    pub server_cpu_us_per_request: Option<f64>,
    /// The server's CPU time over the measured window ÷ the window: cores kept busy.
    pub server_cpu_cores: Option<f64>,
}

/// Little's law for a handler that waits a known time.
#[derive(Debug, Clone, Serialize)]
pub struct Little {
    /// The handler's wait, ms.
    pub latency_ms: f64,
    /// concurrency ÷ latency, requests/s.
    pub limit_rps: f64,
    /// Share of the limit reached by the SWAIG calls.
    pub reached: f64,
}

/// The bare-axum baseline of the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// Its figures.
    pub run: RunReport,
    /// voxguard requests/s ÷ bare requests/s.
    pub ratio: f64,
}

/// Everything `voxguard bench` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Simulated calls in flight.
    pub concurrency: usize,
    /// With `--rate`: the requests per second asked for (`null`: back to back).
    pub rate: Option<f64>,
    /// Warm-up, seconds.
    pub warmup_secs: f64,
    /// Measured window asked for, seconds.
    pub duration_secs: f64,
    /// SWAIG calls per simulated call (`null`: unlimited).
    pub calls_per_call: Option<u32>,
    /// The mix, by function name (repeats weight).
    pub mix: Vec<String>,
    /// The verification function used, when the agent renders it.
    pub verify: Option<String>,
    /// The agent's figures.
    pub run: RunReport,
    /// The target's memory, with `--pid`.
    pub rss: Option<Rss>,
    /// With `--little-ms`.
    pub little: Option<Little>,
    /// With `--baseline`.
    pub baseline: Option<Baseline>,
}

impl RunReport {
    /// Append this run's lines to `out`.
    fn render_into(&self, out: &mut String) {
        use std::fmt::Write as _;
        let l = &self.latency_ms;
        let _ = writeln!(
            out,
            "  requests  {} in {:.1} s = {:.0} req/s, {} errors; {} simulated calls completed",
            self.requests, self.measured_secs, self.rps, self.errors, self.calls_completed
        );
        let _ = writeln!(
            out,
            "  latency   p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
            l.p50, l.p90, l.p99, l.p99_9, l.max
        );
        let _ = writeln!(
            out,
            "  {:<28} {:>9} {:>10} {:>9} {:>9} {:>9}",
            "step", "requests", "req/s", "p50 ms", "p99 ms", "errors"
        );
        for (name, step) in &self.steps {
            let _ = writeln!(
                out,
                "  {:<28} {:>9} {:>10.0} {:>9.2} {:>9.2} {:>9}",
                name,
                step.requests,
                step.rps,
                step.latency_ms.p50,
                step.latency_ms.p99,
                step.errors
            );
        }
        if let (Some(cores), Some(per_request)) =
            (self.server_cpu_cores, self.server_cpu_us_per_request)
        {
            let _ = writeln!(
                out,
                "  server CPU {cores:.2} cores busy = {per_request:.1} µs of CPU per request"
            );
        }
        if self.errors_by.is_empty() {
            let _ = writeln!(out, "  errors    none");
        } else {
            let _ = writeln!(out, "  errors by status and reason:");
            for (key, count) in &self.errors_by {
                let _ = writeln!(out, "    {count:>9}  {key}");
            }
        }
    }
}

impl Report {
    /// The human-readable report.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let calls = match self.calls_per_call {
            Some(0) => "SWML only".to_string(),
            Some(n) => format!("{n} SWAIG calls per call"),
            None => "SWAIG calls until the end (one call per worker)".to_string(),
        };
        let _ = writeln!(out, "voxguard bench {}", self.run.target);
        let _ = writeln!(
            out,
            "  {} concurrent calls, {:.1} s warm-up, {:.1} s measured; {calls}",
            self.concurrency, self.warmup_secs, self.duration_secs
        );
        if let Some(rate) = self.rate {
            let _ = writeln!(out, "  paced     at most {rate:.0} requests/s in all");
        }
        if !self.mix.is_empty() {
            let _ = writeln!(out, "  mix       {}", self.mix.join(", "));
        }
        if let Some(verify) = &self.verify {
            let _ = writeln!(out, "  verify    {verify} once per call");
        }
        self.run.render_into(&mut out);
        if let Some(rss) = &self.rss {
            let _ = writeln!(
                out,
                "  target RSS (pid {}): {:.1} MiB before, {:.1} MiB peak, {:.1} MiB after",
                rss.pid, rss.start_mib, rss.peak_mib, rss.end_mib
            );
        }
        if let Some(little) = &self.little {
            let _ = writeln!(
                out,
                "  Little's law: {} ÷ {} ms = {:.0} req/s; SWAIG calls reached {:.1}% of it",
                self.concurrency,
                little.latency_ms,
                little.limit_rps,
                little.reached * 100.0
            );
        }
        if let Some(baseline) = &self.baseline {
            let _ = writeln!(out, "baseline {}", baseline.run.target);
            baseline.run.render_into(&mut out);
            let _ = writeln!(
                out,
                "voxguard ÷ bare axum: {:.1}% of the baseline's requests/s",
                baseline.ratio * 100.0
            );
            if let (Some(ours), Some(bare)) = (
                self.run.server_cpu_us_per_request,
                baseline.run.server_cpu_us_per_request,
            ) {
                let _ = writeln!(
                    out,
                    "CPU per request: voxguard {ours:.1} µs, bare axum {bare:.1} µs ({:.1}×)",
                    ours / bare.max(0.1)
                );
            }
        }
        out
    }
}
