//! `voxguard bench URL`: a load generator that plays realistic calls against a running agent.
//!
//! This module owns the load model, the measurement and the report. Each of `--concurrency`
//! workers plays one phone call after another on its own keep-alive HTTP/1.1 connection, the
//! way the platform drives an agent: it fetches the SWML document by POST (a fresh call id),
//! takes the per-function `web_hook_url`s with their tokens from it, verifies the demo caller
//! when the agent offers the verification function (`--verify`, default `verify_pin` with PIN
//! 4321), then makes `--calls` SWAIG calls drawn in turn from the `--call` mix. Requests that
//! complete during the warm-up are not counted; the rest are recorded, per step, in
//! HdrHistograms (microsecond resolution, 3 significant figures).
//!
//! Refusals are errors to a load test: a non-2xx status, or a 200 SWAIG reply carrying an
//! `error` reason, is counted under `"<status> <reason>"` so that `429 rate_limited` or
//! `200 verification_required` tell at once what went wrong. `--pid` samples the target's
//! resident set from `/proc`. `--baseline` replays the same flows against a bare axum server
//! (see [`crate::baseline`]) started as a child process, in the same run, and reports the ratio.
//!
//! Loads go to loopback addresses only unless `--allow-remote` is given: a load generator
//! pointed at a production agent by mistake is a denial of service.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::Exit;

/// Highest latency the histograms hold (longer requests are clamped to it).
const MAX_LATENCY_US: u64 = 120_000_000;

/// `voxguard bench` arguments.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The agent's SWML route, e.g. http://127.0.0.1:3000/ or http://user:pass@127.0.0.1:3000/fast.
    pub url: String,
    /// Basic-auth user (default: from the URL, or SWML_BASIC_AUTH_USER).
    #[arg(long, env = "SWML_BASIC_AUTH_USER", hide_env_values = true)]
    pub user: Option<String>,
    /// Basic-auth password (default: from the URL, or SWML_BASIC_AUTH_PASSWORD).
    #[arg(long, env = "SWML_BASIC_AUTH_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Simulated calls in flight at once (one connection each).
    #[arg(short, long, default_value_t = 32)]
    pub concurrency: usize,
    /// How long to measure, after the warm-up: 10s, 500ms, 2m.
    #[arg(short, long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// How long to run before measuring (connections, caches, verifications).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// SWAIG calls per simulated call after the SWML fetch (and the verification): a number,
    /// 0 to measure SWML rendering alone, or `unlimited` to keep one call per worker for the
    /// whole run (the tool fast path).
    #[arg(long, default_value = "5", value_parser = parse_calls)]
    pub calls: Calls,
    /// A function in the mix, as NAME or NAME:JSON-ARGUMENTS; repeat it to weight it.
    /// Default: every rendered function that has no required argument (bar the verifier).
    #[arg(long = "call", value_name = "NAME[:JSON]", value_parser = parse_call)]
    pub mix: Vec<CallSpec>,
    /// The verification call made once per simulated call when the agent renders it.
    #[arg(long, value_name = "NAME:JSON", default_value = r#"verify_pin:{"pin":"4321"}"#, value_parser = parse_call)]
    pub verify: CallSpec,
    /// Do not verify the caller, even when the agent offers the verification function.
    #[arg(long)]
    pub no_verify: bool,
    /// The first caller's number (`call.from` and `caller_id_num`).
    #[arg(long, default_value = "+15551234567")]
    pub caller: String,
    /// Spread the simulated calls over this many consecutive numbers from --caller, in turn
    /// (default: one per worker, as real traffic has a different caller on each call). Use 1 to load a single customer: the attempt counter is per customer, so more
    /// parallel verifications of one customer than its attempt limit start a lockout.
    #[arg(long)]
    pub callers: Option<u64>,
    /// Sample the resident memory of this process (the agent) during the run.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Also run the same flows against a bare axum server (parses the same JSON, answers a
    /// fixed body) in this run, and report voxguard ÷ bare.
    #[arg(long)]
    pub baseline: bool,
    /// The latency the handler is known to wait (e.g. 50 for a 50 ms backend): the report
    /// adds the Little's-law limit, concurrency ÷ latency, and the share of it reached.
    #[arg(long, value_name = "MS")]
    pub little_ms: Option<f64>,
    /// Per-request timeout.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Load-generator worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How many SWAIG calls each simulated call makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calls {
    /// This many, then the next call starts.
    Count(u32),
    /// One call per worker for the whole run.
    Unlimited,
}

/// One function call of the mix: the name and the arguments sent (`{}` when not given).
#[derive(Debug, Clone, PartialEq)]
pub struct CallSpec {
    /// Function name.
    pub function: String,
    /// Arguments, an object.
    pub args: Value,
}

/// Parse `10s`, `500ms`, `2m` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        other => return Err(format!("unknown unit {other:?}: use ms, s or m")),
    };
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("{text:?} is out of range (0 to 24 hours)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_calls(text: &str) -> Result<Calls, String> {
    match text.trim() {
        "unlimited" => Ok(Calls::Unlimited),
        n => n
            .parse()
            .map(Calls::Count)
            .map_err(|_| format!("{text:?} is neither a number of calls nor `unlimited`")),
    }
}

fn parse_call(text: &str) -> Result<CallSpec, String> {
    let (function, args) = match text.split_once(':') {
        Some((name, json)) => {
            let args: Value = serde_json::from_str(json)
                .map_err(|e| format!("the arguments of {name:?} are not JSON: {e}"))?;
            if !args.is_object() {
                return Err(format!("the arguments of {name:?} must be a JSON object"));
            }
            (name, args)
        }
        None => (text, json!({})),
    };
    let function = function.trim();
    if function.is_empty() {
        return Err("a function name is required".into());
    }
    Ok(CallSpec {
        function: function.to_string(),
        args,
    })
}

/// A usage or setup problem: printed, exit code 2.
#[derive(Debug)]
struct Usage(String);

impl<E: std::fmt::Display> From<E> for Usage {
    fn from(e: E) -> Self {
        Usage(e.to_string())
    }
}

/// Run `voxguard bench`.
pub fn bench(args: &BenchArgs) -> Exit {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("voxguard bench: cannot start the runtime: {e}");
            return Exit::Internal;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(report) => {
            let text = if args.json {
                let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
                text.push('\n');
                text
            } else {
                report.render()
            };
            crate::print_stdout(&text)
        }
        Err(Usage(message)) => {
            eprintln!("voxguard bench: {message}");
            Exit::Usage
        }
    }
}

/// Where the requests go and how they are authenticated.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    addr: SocketAddr,
    host: HeaderValue,
    authorization: Option<HeaderValue>,
    swml_path: String,
    /// The URL as shown in the report (no credentials).
    shown: String,
}

impl Target {
    async fn from_args(args: &BenchArgs) -> Result<Self, Usage> {
        let url = url::Url::parse(&args.url).map_err(|e| Usage(format!("bad URL: {e}")))?;
        if url.scheme() != "http" {
            return Err(Usage(format!(
                "only http:// targets can be benchmarked (got {}://); benchmark the agent behind its TLS terminator on loopback",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| Usage("the URL has no host".into()))?
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| Usage(format!("cannot resolve {host}: {e}")))?
            .collect();
        let addr = *addrs
            .first()
            .ok_or_else(|| Usage(format!("{host} resolves to no address")))?;
        if !args.allow_remote && !addrs.iter().all(|a| a.ip().is_loopback()) {
            return Err(Usage(format!(
                "{host} is not a loopback address; a load test against a remote agent needs --allow-remote"
            )));
        }
        let user = match url.username() {
            "" => args.user.clone(),
            user => Some(decode(user)),
        };
        let password = match url.password() {
            Some(password) => Some(decode(password)),
            None => args.password.clone(),
        };
        let authorization =
            match (user, password) {
                (Some(user), Some(password)) => {
                    let token = base64::engine::general_purpose::STANDARD
                        .encode(format!("{user}:{password}"));
                    Some(HeaderValue::try_from(format!("Basic {token}"))?)
                }
                (None, None) => None,
                _ => return Err(Usage(
                    "give both a user and a password (URL, --user/--password or SWML_BASIC_AUTH_*)"
                        .into(),
                )),
            };
        let mut swml_path = url.path().to_string();
        if let Some(query) = url.query() {
            swml_path = format!("{swml_path}?{query}");
        }
        let mut shown = url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        Ok(Self {
            addr,
            host: HeaderValue::try_from(format!("{host}:{port}"))?,
            authorization,
            swml_path,
            shown: shown.to_string(),
        })
    }

    /// The same target served at `addr` (the baseline).
    fn at(&self, addr: SocketAddr, shown: String) -> Result<Self, Usage> {
        Ok(Self {
            addr,
            host: HeaderValue::try_from(addr.to_string())?,
            authorization: self.authorization.clone(),
            swml_path: self.swml_path.clone(),
            shown,
        })
    }
}

/// A percent-encoded URL user or password, decoded.
fn decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

/// What went wrong with one request.
enum Failure {
    /// No HTTP answer: connect error, reset, timeout.
    Transport(String),
    /// An answer that is a refusal: `"<status> <reason>"`.
    Refused(String),
}

/// One worker's connection.
struct Connection {
    target: Arc<Target>,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    timeout: Duration,
}

impl Connection {
    async fn connect(&mut self) -> Result<(), Failure> {
        let stream = tokio::net::TcpStream::connect(self.target.addr)
            .await
            .map_err(|e| Failure::Transport(format!("connect: {}", e.kind())))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Failure::Transport(format!("handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// POST `body` to `path`; the status and the whole body.
    async fn post(&mut self, path: &str, body: Bytes) -> Result<(StatusCode, Bytes), Failure> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await?;
        }
        let Some(sender) = self.sender.as_mut() else {
            return Err(Failure::Transport("no connection".into()));
        };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, self.target.host.clone())
            .header(CONTENT_TYPE, "application/json");
        if let Some(authorization) = &self.target.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| Failure::Transport(format!("request: {e}")))?;
        let exchange = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.sender = None;
                let kind = if e.is_incomplete_message() || e.is_closed() {
                    "connection closed"
                } else if e.is_parse() {
                    "bad response"
                } else {
                    "http error"
                };
                Err(Failure::Transport(kind.into()))
            }
            Err(_) => {
                self.sender = None;
                Err(Failure::Transport("timeout".into()))
            }
        }
    }
}

/// The `error` reason of a reply, if it has one.
#[derive(Deserialize)]
struct Reason {
    #[serde(default)]
    error: Option<String>,
}

fn refusal(status: StatusCode, body: &[u8]) -> Option<String> {
    let reason = serde_json::from_slice::<Reason>(body)
        .ok()
        .and_then(|r| r.error);
    match (status.is_success(), reason) {
        (true, None) => None,
        (_, reason) => Some(format!(
            "{} {}",
            status.as_u16(),
            reason.as_deref().unwrap_or("-")
        )),
    }
}

/// `count` consecutive E.164 numbers from `first`.
fn callers(first: &str, count: u64) -> Result<Vec<String>, Usage> {
    let digits = first
        .strip_prefix('+')
        .filter(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            Usage(format!(
                "--caller {first:?} is not an E.164 number like +15551234567"
            ))
        })?;
    let start: u64 = digits.parse()?;
    if count == 0 {
        return Err(Usage("--callers must be at least 1".into()));
    }
    let last = start.checked_add(count - 1);
    if last.is_none_or(|last| last.to_string().len() != digits.len()) || count > 1_000_000 {
        return Err(Usage(format!(
            "{count} numbers from {first} run past {} digits (or past a million callers)",
            digits.len()
        )));
    }
    (0..count)
        .map(|i| {
            let number = (start + i).to_string();
            if number.len() == digits.len() {
                Ok(format!("+{number}"))
            } else {
                Err(Usage(format!(
                    "{count} numbers from {first} run past {} digits",
                    digits.len()
                )))
            }
        })
        .collect()
}

/// Per-function webhook paths (path and query, token included) of a rendered SWML document.
fn webhooks(swml: &Value) -> HashMap<String, String> {
    let Some(ai) = ai_verb(swml) else {
        return HashMap::new();
    };
    let default = ai["SWAIG"]["defaults"]["web_hook_url"].as_str();
    rendered_functions(ai)
        .filter_map(|f| {
            let name = f["function"].as_str()?;
            let url = f["web_hook_url"].as_str().or(default)?;
            let url = url::Url::parse(url).ok()?;
            let path = match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_string(),
            };
            Some((name.to_string(), path))
        })
        .collect()
}

/// The functions of a SWML document with no required argument.
fn callable_without_arguments(swml: &Value) -> Vec<String> {
    ai_verb(swml)
        .into_iter()
        .flat_map(rendered_functions)
        .filter(|f| {
            f["parameters"]["required"]
                .as_array()
                .is_none_or(|r| r.is_empty())
        })
        .filter_map(|f| f["function"].as_str().map(str::to_string))
        .collect()
}

/// The `ai` verb of a SWML document's main section.
fn ai_verb(swml: &Value) -> Option<&Value> {
    swml["sections"]["main"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|verb| verb.get("ai"))
}

/// The SWAIG functions of an `ai` verb.
fn rendered_functions(ai: &Value) -> impl Iterator<Item = &Value> {
    ai["SWAIG"]["functions"].as_array().into_iter().flatten()
}

/// The load plan shared by the workers.
struct Plan {
    concurrency: usize,
    calls: Calls,
    mix: Vec<CallSpec>,
    verify: Option<CallSpec>,
    callers: Vec<String>,
    timeout: Duration,
    run_id: String,
}

/// When the phases start and end.
#[derive(Clone, Copy)]
struct Phases {
    start: Instant,
    measure_from: Instant,
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
    latency: Histogram<u64>,
    errors: u64,
}

impl Step {
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
    steps: BTreeMap<String, Step>,
    errors: BTreeMap<String, u64>,
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

/// One worker: simulated calls back to back until the deadline.
async fn worker(
    index: usize,
    target: Arc<Target>,
    plan: Arc<Plan>,
    phases: Phases,
    done: Arc<AtomicU64>,
) -> Tally {
    let mut tally = Tally::new();
    let mut connection = Connection {
        target: target.clone(),
        sender: None,
        timeout: plan.timeout,
    };
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
        let webhooks = webhooks(&serde_json::from_slice(&swml).unwrap_or(Value::Null));
        if let Some(verify) = &plan.verify {
            if let Some(path) = webhooks.get(&verify.function) {
                let name = format!("{} (verify)", verify.function);
                let body = swaig_body(caller, &call_id, verify);
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

/// Resident set size of `pid` in bytes, from `/proc/<pid>/status`.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time of `pid` so far (user + system, every thread, including threads that have
/// exited), nanoseconds, from `/proc/<pid>/stat`. Its unit is USER_HZ, which Linux fixes at
/// 100 per second for user space on every architecture.
fn cpu_ns(pid: u32) -> Option<u64> {
    const NS_PER_TICK: u64 = 10_000_000;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: count from after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: state (3), …, utime (14) and stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * NS_PER_TICK)
}

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

fn mib(bytes: u64) -> f64 {
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
    fn of(histogram: &Histogram<u64>) -> Self {
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

async fn run(args: &BenchArgs) -> Result<Report, Usage> {
    if args.concurrency == 0 {
        return Err(Usage("--concurrency must be at least 1".into()));
    }
    if args.duration.is_zero() {
        return Err(Usage("--duration must be more than 0".into()));
    }
    if let Some(pid) = args.pid {
        if rss_bytes(pid).is_none() {
            return Err(Usage(format!(
                "no process {pid} to sample (--pid; /proc/{pid}/status)"
            )));
        }
    }
    let target = Arc::new(Target::from_args(args).await?);

    // A first SWML fetch checks the target and the mix before any load.
    let mut probe = Connection {
        target: target.clone(),
        sender: None,
        timeout: args.timeout,
    };
    let body = Bytes::from(
        json!({"call_id": "bench-probe", "call": {"call_id": "bench-probe", "from": args.caller}})
            .to_string(),
    );
    let (status, swml_bytes) = probe.post(&target.swml_path, body).await.map_err(|f| {
        Usage(match f {
            Failure::Transport(kind) => format!("cannot reach {}: {kind}", target.shown),
            Failure::Refused(reason) => reason,
        })
    })?;
    if !status.is_success() {
        let reason = refusal(status, &swml_bytes).unwrap_or_default();
        let hint = if status == StatusCode::UNAUTHORIZED {
            " (check the credentials: URL, --user/--password or SWML_BASIC_AUTH_*)"
        } else {
            ""
        };
        return Err(Usage(format!(
            "the SWML fetch answered {reason}{hint}: {}",
            target.shown
        )));
    }
    let swml: Value = serde_json::from_slice(&swml_bytes)
        .map_err(|e| Usage(format!("the SWML answer is not JSON: {e}")))?;
    let rendered = webhooks(&swml);
    let verify = (!args.no_verify && rendered.contains_key(&args.verify.function))
        .then(|| args.verify.clone());
    let mix = if args.mix.is_empty() {
        callable_without_arguments(&swml)
            .into_iter()
            .filter(|name| Some(name) != verify.as_ref().map(|v| &v.function))
            .map(|function| CallSpec {
                function,
                args: json!({}),
            })
            .collect()
    } else {
        args.mix.clone()
    };
    if args.calls != Calls::Count(0) {
        if mix.is_empty() {
            return Err(Usage(
                "no rendered function can be called without arguments; give the mix with --call NAME:JSON"
                    .into(),
            ));
        }
        let mut names: Vec<&String> = rendered.keys().collect();
        names.sort();
        for spec in &mix {
            if !rendered.contains_key(&spec.function) {
                return Err(Usage(format!(
                    "{:?} is not a function of this agent (it renders: {})",
                    spec.function,
                    names
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let plan = Arc::new(Plan {
        concurrency: args.concurrency,
        calls: args.calls,
        mix: mix.clone(),
        verify: verify.clone(),
        callers: callers(
            &args.caller,
            args.callers.unwrap_or(args.concurrency as u64),
        )?,
        timeout: args.timeout,
        run_id,
    });

    let progress = !args.json;
    let rss_start = args.pid.and_then(rss_bytes);
    let (run, peak) = load(
        target.clone(),
        plan.clone(),
        args,
        args.pid,
        progress.then_some("voxguard"),
    )
    .await;
    let rss = args.pid.map(|pid| Rss {
        pid,
        start_mib: mib(rss_start.unwrap_or(0)),
        peak_mib: mib(peak.max(rss_start.unwrap_or(0))),
        end_mib: mib(rss_bytes(pid).unwrap_or(0)),
    });
    let little = args.little_ms.filter(|ms| *ms > 0.0).map(|ms| {
        let limit = args.concurrency as f64 / (ms / 1000.0);
        let swaig_rps: f64 = run
            .steps
            .iter()
            .filter(|(name, _)| name.as_str() != "swml" && !name.ends_with("(verify)"))
            .map(|(_, s)| s.rps)
            .sum();
        Little {
            latency_ms: ms,
            limit_rps: limit,
            reached: swaig_rps / limit,
        }
    });
    let baseline = if args.baseline {
        let server = crate::baseline::spawn(&swml_bytes)
            .await
            .map_err(|e| Usage(format!("cannot start the baseline server: {e}")))?;
        let bare =
            Arc::new(target.at(server.addr, format!("http://{}/ (bare axum)", server.addr))?);
        let (bare_run, _) = load(
            bare,
            plan,
            args,
            Some(server.pid),
            progress.then_some("bare axum"),
        )
        .await;
        drop(server);
        let ratio = if bare_run.rps > 0.0 {
            run.rps / bare_run.rps
        } else {
            0.0
        };
        Some(Baseline {
            run: bare_run,
            ratio,
        })
    } else {
        None
    };
    Ok(Report {
        concurrency: args.concurrency,
        warmup_secs: args.warmup.as_secs_f64(),
        duration_secs: args.duration.as_secs_f64(),
        calls_per_call: match args.calls {
            Calls::Count(n) => Some(n),
            Calls::Unlimited => None,
        },
        mix: if args.calls == Calls::Count(0) {
            Vec::new()
        } else {
            mix.iter().map(|s| s.function.clone()).collect()
        },
        verify: verify.map(|v| v.function),
        run,
        rss,
        little,
        baseline,
    })
}

/// Run the workers against `target`; the report and the peak RSS seen (bytes).
async fn load(
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

impl RunReport {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn calls_and_mix_parse() {
        assert_eq!(parse_calls("unlimited"), Ok(Calls::Unlimited));
        assert_eq!(parse_calls("0"), Ok(Calls::Count(0)));
        assert!(parse_calls("many").is_err());
        let spec = parse_call(r#"check_order:{"order_number":"ORD-12345"}"#).expect("spec");
        assert_eq!(spec.function, "check_order");
        assert_eq!(spec.args["order_number"], "ORD-12345");
        assert_eq!(parse_call("get_balance").expect("spec").args, json!({}));
        assert!(parse_call("x:[1]").is_err());
        assert!(parse_call("x:{").is_err());
        assert!(parse_call(":{}").is_err());
    }

    #[test]
    fn refusals_are_keyed_by_status_and_reason() {
        assert_eq!(refusal(StatusCode::OK, br#"{"response":"fine"}"#), None);
        assert_eq!(
            refusal(
                StatusCode::OK,
                br#"{"response":"no","error":"verification_required"}"#
            ),
            Some("200 verification_required".into())
        );
        assert_eq!(
            refusal(
                StatusCode::TOO_MANY_REQUESTS,
                br#"{"error":"rate_limited"}"#
            ),
            Some("429 rate_limited".into())
        );
        assert_eq!(
            refusal(StatusCode::BAD_GATEWAY, b"<html>"),
            Some("502 -".into())
        );
    }

    #[test]
    fn webhooks_keep_path_and_token() {
        let swml = json!({"sections": {"main": [{"answer": {}}, {"ai": {"SWAIG": {
            "defaults": {"web_hook_url": "https://u:p@example.com/agent/swaig"},
            "functions": [
                {"function": "a", "web_hook_url": "https://u:p@example.com/agent/swaig?__token=abc", "parameters": {"type": "object", "properties": {}}},
                {"function": "b", "parameters": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}},
            ]
        }}}]}});
        let hooks = webhooks(&swml);
        assert_eq!(hooks["a"], "/agent/swaig?__token=abc");
        assert_eq!(hooks["b"], "/agent/swaig");
        assert_eq!(callable_without_arguments(&swml), vec!["a".to_string()]);
    }

    #[test]
    fn callers_are_consecutive_numbers() {
        assert_eq!(
            callers("+15551234567", 3).expect("callers"),
            ["+15551234567", "+15551234568", "+15551234569"]
        );
        assert!(callers("15551234567", 1).is_err());
        assert!(callers("+1555-123", 1).is_err());
        assert!(callers("+99999999", 2).is_err());
        assert!(callers("+15551234567", 0).is_err());
    }

    #[test]
    fn url_credentials_are_percent_decoded() {
        assert_eq!(decode("p%40ss%3Aword"), "p@ss:word");
        assert_eq!(decode("plain"), "plain");
        assert_eq!(decode("a+b"), "a+b");
    }
}
