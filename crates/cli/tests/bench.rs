//! `voxguard bench` end to end: the real binary loads a real voxguard agent served over HTTP on
//! port 0 in this process, with the bare-axum baseline in the same run; refusals are counted by
//! reason; setup problems are clear errors with exit code 2 before any load is sent.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use voxguard::guard::{BasicCredentials, KeyRing, PinVault, TokenKey};
use voxguard::prelude::*;
use voxguard::server::ServerConfig;

const USER: &str = "bench-user";
const PASSWORD: &str = "bench-password-0123456789-abcdefghij";
const CALLER: &str = "+15551230000";

#[derive(Deserialize, JsonSchema)]
struct Pin {
    #[schemars(regex(pattern = r"^[0-9]{4}$"))]
    pin: String,
}

#[derive(Deserialize, JsonSchema)]
struct Lookup {
    #[schemars(regex(pattern = r"^ORD-[0-9]{5}$"))]
    order: String,
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

/// An agent with a verifier, a tool behind it, one anyone may call, and one with a required
/// argument; `calls` counts handler runs.
fn agent(calls: Arc<AtomicU64>) -> Agent {
    let hash = Arc::new(
        PinVault::with_params(8, 1, 1)
            .unwrap()
            .hash("4321")
            .unwrap(),
    );
    let vault_calls = calls.clone();
    let lookup_calls = calls.clone();
    Agent::builder("shop")
        .route("/shop")
        .prompt_text("You are a test agent.")
        .verification(VerificationPolicy::new().flag("pin_verified"))
        .tool(Tool::typed(
            "verify_pin",
            "Verify the caller",
            move |args: Pin, ctx: CallContext| {
                let hash = hash.clone();
                async move {
                    let subject = ctx.caller_number().unwrap_or("").to_string();
                    Ok(ctx
                        .verify_secret(&subject, &args.pin, Some(&hash))
                        .await?
                        .into_result())
                }
            },
        ))
        .tool(
            Tool::typed(
                "balance",
                "Verified only",
                move |_: NoArgs, _ctx: CallContext| {
                    let calls = vault_calls.clone();
                    async move {
                        calls.fetch_add(1, Ordering::Relaxed);
                        Ok(FunctionResult::new("You have $1.00."))
                    }
                },
            )
            .requires("pin_verified"),
        )
        .tool(Tool::typed(
            "lookup",
            "Look up an order",
            move |args: Lookup, _ctx: CallContext| {
                let calls = lookup_calls.clone();
                async move {
                    calls.fetch_add(1, Ordering::Relaxed);
                    Ok(FunctionResult::new(format!(
                        "{} is on its way.",
                        args.order
                    )))
                }
            },
        ))
        .build()
        .unwrap()
}

/// Serve the agent on 127.0.0.1:0 until the returned sender is dropped; the base URL.
async fn serve(calls: Arc<AtomicU64>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let mut config = ServerConfig::new(BasicCredentials::new(USER, PASSWORD));
    config.port = 0;
    let running = Runtime::new(config, KeyRing::new(TokenKey::generate()))
        // The load generator renders many calls from one address.
        .swml_render_limit(None)
        .agent(agent(calls))
        .bind()
        .await
        .unwrap();
    let base = format!("http://{}", running.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(running.serve_until(async move {
        let _ = rx.await;
    }));
    (base, tx)
}

/// Run the binary off the async threads (it is a blocking child process).
async fn bench(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_voxguard"))
            .arg("bench")
            .args(args)
            .env_remove("SWML_BASIC_AUTH_USER")
            .env_remove("SWML_BASIC_AUTH_PASSWORD")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn report(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_plays_whole_calls_and_compares_with_the_bare_baseline() {
    let calls = Arc::new(AtomicU64::new(0));
    let (base, _stop) = serve(calls.clone()).await;
    let pid = std::process::id().to_string();
    let url = format!("{base}/shop");
    let output = bench(args(&[
        &url,
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--caller",
        CALLER,
        "-c",
        "4",
        "--warmup",
        "200ms",
        "-d",
        "1s",
        "--calls",
        "3",
        "--call",
        "balance",
        "--call",
        r#"lookup:{"order":"ORD-12345"}"#,
        "--pid",
        &pid,
        "--baseline",
        "--json",
    ]))
    .await;
    let report = report(&output);
    let run = &report["run"];
    assert_eq!(run["errors"], 0, "{report:#}");
    assert!(run["requests"].as_u64().unwrap() > 0, "{report:#}");
    assert!(run["calls_completed"].as_u64().unwrap() > 0, "{report:#}");
    assert_eq!(report["verify"], "verify_pin", "{report:#}");
    assert_eq!(report["mix"], serde_json::json!(["balance", "lookup"]));
    // Every simulated call: one SWML fetch, one verification, three tool calls (in turn).
    let steps = &run["steps"];
    for step in ["swml", "verify_pin (verify)", "balance", "lookup"] {
        assert!(
            steps[step]["requests"].as_u64().unwrap() > 0,
            "{step}: {report:#}"
        );
        assert_eq!(steps[step]["errors"], 0, "{step}: {report:#}");
    }
    let swml = steps["swml"]["requests"].as_u64().unwrap();
    let tools = steps["balance"]["requests"].as_u64().unwrap()
        + steps["lookup"]["requests"].as_u64().unwrap();
    // Three tool calls per SWML fetch, give or take the calls that the window's edges cut
    // (at most one call in progress per worker at each edge).
    let edge = 3 * 4;
    assert!(
        3 * swml <= tools + edge && tools <= 3 * swml + edge,
        "three tool calls per SWML fetch: {report:#}"
    );
    let latency = &run["latency_ms"];
    let p50 = latency["p50"].as_f64().unwrap();
    assert!(
        p50 > 0.0 && p50 <= latency["p99"].as_f64().unwrap(),
        "{report:#}"
    );
    assert!(latency["p99"].as_f64().unwrap() <= latency["max"].as_f64().unwrap());
    // The handlers really ran, for the measured requests and more (the warm-up).
    assert!(calls.load(Ordering::Relaxed) >= tools, "{report:#}");
    // The sampled process is this test (the server runs in it).
    assert!(
        report["rss"]["peak_mib"].as_f64().unwrap() > 1.0,
        "{report:#}"
    );
    assert!(
        run["server_cpu_us_per_request"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );
    assert!(
        run["server_cpu_cores"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );
    let baseline = &report["baseline"];
    assert!(
        baseline["run"]["server_cpu_us_per_request"]
            .as_f64()
            .unwrap()
            > 0.0,
        "the baseline's own process is sampled: {report:#}"
    );
    assert_eq!(baseline["run"]["errors"], 0, "{report:#}");
    assert!(
        baseline["run"]["requests"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert!(baseline["ratio"].as_f64().unwrap() > 0.0, "{report:#}");
    assert!(
        baseline["run"]["steps"]["verify_pin (verify)"]["requests"]
            .as_u64()
            .unwrap()
            > 0,
        "the baseline plays the same flows: {report:#}"
    );

    // The text report says the same.
    let output = bench(args(&[
        &format!("http://{USER}:{PASSWORD}@{}/shop", &base["http://".len()..]),
        "--caller",
        CALLER,
        "-c",
        "2",
        "--warmup",
        "0s",
        "-d",
        "300ms",
        "--call",
        r#"lookup:{"order":"ORD-12345"}"#,
    ]))
    .await;
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "voxguard bench http://127.0.0.1:",
        "p99.9",
        "lookup",
        "errors    none",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
    assert!(
        !text.contains(PASSWORD),
        "credentials are never printed:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_by_status_and_reason() {
    let (base, _stop) = serve(Arc::new(AtomicU64::new(0))).await;
    let url = format!("{base}/shop");
    let output = bench(args(&[
        &url,
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--no-verify",
        "-c",
        "2",
        "--warmup",
        "0s",
        "-d",
        "500ms",
        "--call",
        "balance",
        "--call",
        r#"lookup:{"order":"nope"}"#,
        "--json",
    ]))
    .await;
    let report = report(&output);
    let errors = &report["run"]["errors_by"];
    assert!(
        errors["200 verification_required"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert!(
        errors["200 invalid_argument"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert_eq!(report["verify"], Value::Null, "{report:#}");
    let total: u64 = errors
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        report["run"]["errors"].as_u64().unwrap(),
        total,
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_problems_are_usage_errors_before_any_load() {
    let calls = Arc::new(AtomicU64::new(0));
    let (base, _stop) = serve(calls.clone()).await;
    let url = format!("{base}/shop");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            args(&[&url, "--user", USER, "--password", "wrong"]),
            "401 auth_invalid",
        ),
        (args(&[&url]), "401 auth_required"),
        (
            args(&[&url, "--user", USER, "--password", PASSWORD, "--call", "transfer"]),
            "\"transfer\" is not a function of this agent (it renders: balance, lookup, verify_pin)",
        ),
        (
            args(&[&url, "--user", USER, "--password", PASSWORD, "--call", "x:[1]"]),
            "must be a JSON object",
        ),
        (args(&["http://192.0.2.1:9/shop"]), "not a loopback address"),
        (args(&["https://127.0.0.1:1/"]), "only http:// targets"),
        (args(&["http://127.0.0.1:1/"]), "cannot reach"),
        (
            args(&[&url, "--user", USER, "--password", PASSWORD, "-c", "0"]),
            "--concurrency must be at least 1",
        ),
        (
            args(&[&url, "--user", USER, "--password", PASSWORD, "--pid", "4000000000"]),
            "no process 4000000000",
        ),
        (
            args(&[&url, "--user", USER, "--password", PASSWORD, "--caller", "5551234"]),
            "is not an E.164 number",
        ),
    ];
    for (args, expected) in cases {
        let output = bench(args.clone()).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: {expected:?} not in {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    assert_eq!(calls.load(Ordering::Relaxed), 0, "no tool ran");
}

#[test]
fn the_baseline_server_serves_the_document_and_leaves_with_its_bench() {
    use std::io::{BufRead as _, Write as _};
    let swml = br#"{"version":"1.0.0","sections":{"main":[{"answer":{}}]}}"#;
    let mut child = Command::new(env!("CARGO_BIN_EXE_voxguard"))
        .arg("bench-baseline-server")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", swml.len()).unwrap();
    stdin.write_all(swml).unwrap();
    stdin.flush().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("bench baseline listening on http://")
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();
    // It answers SWML fetches with the document, SWAIG calls with a fixed body.
    let request = |path: &str, body: &str| {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
        answer
    };
    assert!(request("/agent", "{}").ends_with(std::str::from_utf8(swml).unwrap()));
    assert!(request("/agent/swaig", r#"{"function":"f"}"#).ends_with(r#"{"response":"OK."}"#));
    assert!(request("/agent/swaig", "{").starts_with("HTTP/1.1 400"));
    // The bench goes away (its end of stdin closes): so does the server.
    drop(stdin);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the baseline server outlived its bench"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
