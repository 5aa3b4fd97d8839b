//! The load itself: workers playing simulated calls, step by step, measured into tallies.
//!
//! This module owns the run loop of one server (the agent, or the bare baseline): it starts
//! `--concurrency` workers, each playing one simulated call after another on its own
//! connection — the SWML fetch, the verification, then the SWAIG calls of the mix — and
//! records every request that completes inside the measured window into per-step
//! HdrHistograms; meanwhile it drives the progress bar and samples the target process. It
//! must not print the report: [`super::report`] owns its shape and its text.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use voxguard_swml::Document;

use super::args::{BenchArgs, CallSpec, Calls};
use super::http::{refusal, Connection, Failure, Target};
use super::plan::{webhooks, Plan};
use super::report::{Latency, RunReport, StepReport};
use super::sample::{cpu_ns, rss_bytes};

/// Highest latency the histograms hold (longer requests are clamped to it).
const MAX_LATENCY_US: u64 = 120_000_000;

/// Run the workers against `target`; the report and the peak RSS seen (bytes).
pub(super) async fn load(
    target: Arc<Target>,
    plan: Arc<Plan>,
    args: &BenchArgs,
    pid: Option<u32>,
    progress: Option<&str>,
) -> (RunReport, u64) {
    let phases = Phases::new(args.warmup, args.duration);
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..plan.concurrency)
        .map(|i| {
            tokio::spawn(worker(
                i,
                target.clone(),
                plan.clone(),
                phases,
                done.clone(),
            ))
        })
        .collect();

    let bar = match progress {
        Some(label) => {
            let total = (args.warmup + args.duration).as_millis() as u64;
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>10} [{bar:30}] {elapsed:>4} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar
        }
        None => indicatif::ProgressBar::hidden(),
    };
    let mut peak = 0u64;
    let mut cpu_from = None;
    let mut last = (Instant::now(), 0u64);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while Instant::now() < phases.deadline {
        tick.tick().await;
        let now = Instant::now();
        if cpu_from.is_none() && now >= phases.measure_from {
            cpu_from = pid.and_then(cpu_ns).map(|ns| (now, ns));
        }
        if let Some(rss) = pid.and_then(rss_bytes) {
            peak = peak.max(rss);
        }
        let count = done.load(Ordering::Relaxed);
        let rate = (count - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-3);
        last = (now, count);
        let phase = if now < phases.measure_from {
            "warm-up"
        } else {
            "measuring"
        };
        bar.set_position((now - phases.start).as_millis() as u64);
        bar.set_message(format!("{phase}, {rate:.0} req/s"));
    }
    // At the deadline, before waiting for the requests still in flight.
    let cpu_to = pid.and_then(cpu_ns).map(|ns| (Instant::now(), ns));
    let mut tally = Tally::new();
    for handle in workers {
        if let Ok(worker) = handle.await {
            tally.merge(worker);
        }
    }
    bar.finish_and_clear();
    let mut report = report_of(&target.shown, tally, phases);
    if let (Some((from, ns_from)), Some((to, ns_to))) = (cpu_from, cpu_to) {
        let secs = ns_to.saturating_sub(ns_from) as f64 / 1e9;
        let window = (to - from).as_secs_f64().max(1e-3);
        report.server_cpu_cores = Some((secs / window * 100.0).round() / 100.0);
        if report.rps > 0.0 {
            // CPU per second of the sampled window ÷ requests per second of the measured one.
            let per_request = secs / window / report.rps * 1e6;
            report.server_cpu_us_per_request = Some((per_request * 10.0).round() / 10.0);
        }
    }
    (report, peak)
}

/// The figures of one run: `tally` over the measured window of `phases`, against `target`.
fn report_of(target: &str, tally: Tally, phases: Phases) -> RunReport {
    let window = (phases.deadline - phases.measure_from).as_secs_f64();
    let mut all = Step::new();
    let mut steps = BTreeMap::new();
    for (name, step) in &tally.steps {
        let _ = all.latency.add(&step.latency);
        all.errors += step.errors;
        steps.insert(
            name.clone(),
            StepReport {
                requests: step.latency.len(),
                errors: step.errors,
                rps: step.latency.len() as f64 / window,
                latency_ms: Latency::of(&step.latency),
            },
        );
    }
    RunReport {
        target: target.to_string(),
        requests: all.latency.len(),
        errors: all.errors,
        rps: all.latency.len() as f64 / window,
        calls_completed: tally.flows,
        latency_ms: Latency::of(&all.latency),
        steps,
        errors_by: tally.errors,
        measured_secs: window,
        server_cpu_us_per_request: None,
        server_cpu_cores: None,
    }
}

/// When the phases start and end.
#[derive(Clone, Copy)]
struct Phases {
    /// The run starts (the warm-up with it).
    start: Instant,
    /// Requests that complete from here on are counted.
    measure_from: Instant,
    /// No request starts after this; requests that complete after it are not counted.
    deadline: Instant,
}

impl Phases {
    fn new(warmup: Duration, duration: Duration) -> Self {
        let start = Instant::now();
        Self {
            start,
            measure_from: start + warmup,
            deadline: start + warmup + duration,
        }
    }
}

/// Counts and latencies of one step (the SWML fetch, the verification, or one function).
struct Step {
    /// Latencies of the counted requests, microseconds.
    latency: Histogram<u64>,
    /// Of which refused or failed.
    errors: u64,
}

impl Step {
    /// No request yet.
    fn new() -> Self {
        Self {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("static histogram bounds are valid"),
            errors: 0,
        }
    }
}

/// What one worker (or, merged, the whole run) measured.
struct Tally {
    /// Per step: `swml`, `<verifier> (verify)`, each function.
    steps: BTreeMap<String, Step>,
    /// Errors by `"<status> <reason>"` or `"transport: <kind>"`.
    errors: BTreeMap<String, u64>,
    /// Simulated calls completed in the measured window.
    flows: u64,
}

impl Tally {
    fn new() -> Self {
        Self {
            steps: BTreeMap::new(),
            errors: BTreeMap::new(),
            flows: 0,
        }
    }

    fn merge(&mut self, other: Tally) {
        for (name, step) in other.steps {
            let mine = self.steps.entry(name).or_insert_with(Step::new);
            // Same bounds on both sides: adding cannot fail.
            let _ = mine.latency.add(&step.latency);
            mine.errors += step.errors;
        }
        for (key, count) in other.errors {
            *self.errors.entry(key).or_default() += count;
        }
        self.flows += other.flows;
    }
}

/// With `--rate`, when a worker sends next: every `pace`, the workers staggered over one
/// pace so that the requests spread evenly. A worker that falls behind (the target slower than
/// the rate) sends at once; it never bunches requests to catch up.
struct Pacer {
    pace: Option<Duration>,
    next: Instant,
}

impl Pacer {
    fn new(pace: Option<Duration>, index: usize, workers: usize) -> Self {
        let offset = pace
            .map(|pace| pace.mul_f64(index as f64 / workers.max(1) as f64))
            .unwrap_or_default();
        Self {
            pace,
            next: Instant::now() + offset,
        }
    }

    async fn wait(&mut self) {
        let Some(pace) = self.pace else {
            return;
        };
        let now = Instant::now();
        if self.next > now {
            tokio::time::sleep_until(self.next.into()).await;
            self.next += pace;
        } else {
            self.next = now + pace;
        }
    }
}

/// One worker: simulated calls back to back (or paced, with `--rate`) until the deadline.
async fn worker(
    index: usize,
    target: Arc<Target>,
    plan: Arc<Plan>,
    phases: Phases,
    done: Arc<AtomicU64>,
) -> Tally {
    let mut tally = Tally::new();
    let mut connection = Connection::new(target.clone(), plan.timeout);
    let mut pacer = Pacer::new(plan.pace, index, plan.concurrency);
    let mut turn = index;
    let mut flow = 0u64;
    while Instant::now() < phases.deadline {
        flow += 1;
        let call_id = format!("bench-{}-{index}-{flow}", plan.run_id);
        // Worker by worker, then on to the next numbers with each new call, so that every
        // number is used even when there are more numbers than workers.
        let seat = index + usize::try_from(flow - 1).unwrap_or(0) * plan.concurrency;
        let caller = &plan.callers[seat % plan.callers.len()];
        let swml_body = json!({
            "call_id": call_id,
            "call": {
                "call_id": call_id,
                "from": caller,
                "to": "+15550000000",
                "direction": "inbound",
                "type": "phone",
            },
            "vars": {},
        });
        pacer.wait().await;
        let Some(swml) = step(
            &mut connection,
            &mut tally,
            phases,
            &done,
            "swml",
            &target.swml_path,
            &swml_body,
        )
        .await
        else {
            continue;
        };
        // An answer that is not a document renders no function: the mix counts as not rendered.
        let webhooks = serde_json::from_slice::<Document>(&swml)
            .map(|swml| webhooks(&swml))
            .unwrap_or_default();
        if let Some(verify) = &plan.verify {
            if let Some(path) = webhooks.get(&verify.function) {
                let name = format!("{} (verify)", verify.function);
                let body = swaig_body(caller, &call_id, verify);
                pacer.wait().await;
                step(
                    &mut connection,
                    &mut tally,
                    phases,
                    &done,
                    &name,
                    path,
                    &body,
                )
                .await;
            }
        }
        let mut made = 0u32;
        while Instant::now() < phases.deadline {
            if let Calls::Count(n) = plan.calls {
                if made >= n {
                    break;
                }
            }
            made += 1;
            let spec = &plan.mix[turn % plan.mix.len()];
            turn += 1;
            let Some(path) = webhooks.get(&spec.function) else {
                *tally
                    .errors
                    .entry(format!("{} not rendered", spec.function))
                    .or_default() += 1;
                break;
            };
            let body = swaig_body(caller, &call_id, spec);
            pacer.wait().await;
            step(
                &mut connection,
                &mut tally,
                phases,
                &done,
                &spec.function,
                path,
                &body,
            )
            .await;
        }
        let now = Instant::now();
        if now >= phases.measure_from && now <= phases.deadline {
            tally.flows += 1;
        }
    }
    tally
}

/// The body the platform sends for a SWAIG call.
fn swaig_body(caller: &str, call_id: &str, spec: &CallSpec) -> Value {
    json!({
        "app_name": "swml app",
        "function": spec.function,
        "purpose": "bench",
        "argument": {
            "parsed": [spec.args],
            "raw": spec.args.to_string(),
            "substituted": "",
        },
        "call_id": call_id,
        "ai_session_id": format!("ai-{call_id}"),
        "caller_id_name": "Bench Caller",
        "caller_id_num": caller,
        "content_type": "text/swaig",
        "content_disposition": "SWAIG Function",
        "version": "2.0",
        "project_id": "00000000-0000-0000-0000-000000000000",
        "space_id": "00000000-0000-0000-0000-000000000000",
        "meta_data_token": "bench",
        "meta_data": {},
        "global_data": {"caller_id_number": caller},
    })
}

/// Make one request, record it (after the warm-up), return the body when it succeeded.
async fn step(
    connection: &mut Connection,
    tally: &mut Tally,
    phases: Phases,
    done: &AtomicU64,
    name: &str,
    path: &str,
    body: &Value,
) -> Option<Bytes> {
    let body = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    let started = Instant::now();
    let outcome = match connection.post(path, body).await {
        Ok((status, body)) => match refusal(status, &body) {
            None => Ok(body),
            Some(reason) => Err(Failure::Refused(reason)),
        },
        Err(failure) => Err(failure),
    };
    let finished = Instant::now();
    done.fetch_add(1, Ordering::Relaxed);
    let counted = finished >= phases.measure_from && finished <= phases.deadline;
    if counted {
        let entry = tally
            .steps
            .entry(name.to_string())
            .or_insert_with(Step::new);
        let micros = u64::try_from((finished - started).as_micros()).unwrap_or(u64::MAX);
        entry
            .latency
            .saturating_record(micros.clamp(1, MAX_LATENCY_US));
        if outcome.is_err() {
            entry.errors += 1;
        }
    }
    match outcome {
        Ok(body) => Some(body),
        Err(failure) => {
            let (key, transport) = match failure {
                Failure::Transport(kind) => (format!("transport: {kind}"), true),
                Failure::Refused(reason) => (reason, false),
            };
            if counted {
                *tally.errors.entry(key).or_default() += 1;
            }
            if transport {
                // Do not spin on a dead target.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_paced_worker_waits_its_pace_between_requests_and_an_unpaced_one_never_waits() {
        let pace = Duration::from_millis(20);
        let mut pacer = Pacer::new(Some(pace), 0, 4);
        let started = Instant::now();
        for _ in 0..4 {
            pacer.wait().await;
        }
        // Four sends, the first at once: at least three paces apart in all.
        assert!(started.elapsed() >= pace * 3, "{:?}", started.elapsed());
        // The last of four workers starts three quarters of a pace late.
        let late = Pacer::new(Some(pace), 3, 4);
        assert!(late.next >= started + pace.mul_f64(0.75));
        let mut free = Pacer::new(None, 0, 4);
        free.wait().await;
        assert!(free.pace.is_none());
    }
}
