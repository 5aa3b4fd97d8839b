//! SWML render rate (issue 5, item 4 / scenario c): what it costs to serve the SWML document of
//! an agent with 20 tools.
//!
//! Rendering (`render::render`) is crate-private: the only public way to get a document is the
//! platform's `POST` to the agent's route. So this benchmark binds a real [`Runtime`] on
//! `127.0.0.1:0` (plain HTTP, in-memory store, no audit sink) and measures one SWML fetch over
//! a kept-alive loopback connection with `reqwest`: Basic auth, call-id extraction, rendering
//! (one function token minted per secure tool), JSON serialization and the HTTP round trip.
//!
//! - `swml_render/tools20`: an agent with 20 untyped tools with small schemas, all secure, so
//!   every fetch mints 20 tokens and embeds 20 webhook URLs (≈ 15 KB of JSON).
//! - `swml_render/tools1`: the same agent with one tool, so the difference between the two is
//!   the cost of the 19 extra tools and the rest is the fixed per-request cost.
//!
//! Run with `cargo bench -p voxguard --bench render`; figures go to `BENCHMARKS.md`.
#![forbid(unsafe_code)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use tokio::runtime::Runtime as TokioRuntime;
use voxguard::guard::{BasicCredentials, KeyRing, TokenKey};
use voxguard::prelude::*;
use voxguard::server::ServerConfig;

const USER: &str = "bench";
const PASSWORD: &str = "a-long-benchmark-password-0123456789";
const ROUTE: &str = "/agent";

/// An agent with `tools` untyped tools, each with a small schema.
fn agent(tools: usize) -> Agent {
    let mut builder = Agent::builder(format!("bench{tools}"))
        .route(ROUTE)
        .prompt_section("Role", "You are the virtual assistant of a bank.")
        .prompt_bullets(
            "Rules",
            [
                "Never read out full card numbers.",
                "Confirm before moving money.",
            ],
        );
    for i in 0..tools {
        let schema = json!({
            "type": "object",
            "properties": {
                "account": {
                    "type": "string",
                    "description": "Account number, exactly 10 digits.",
                    "pattern": "^[0-9]{10}$"
                },
                "amount": {
                    "type": "number",
                    "description": "Amount in dollars.",
                    "exclusiveMinimum": 0,
                    "maximum": 10000
                },
                "note": {"type": "string", "maxLength": 64}
            },
            "required": ["account"]
        });
        builder = builder.tool(Tool::untyped(
            format!("tool_{i:02}"),
            format!("Bench tool number {i}: look something up on an account"),
            schema,
            |_args, _ctx| async { Ok(FunctionResult::new("done")) },
        ));
    }
    builder.build().expect("a valid agent")
}

fn tokio_runtime() -> TokioRuntime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Bind a runtime serving `agent` and return its SWML URL.
fn serve(rt: &TokioRuntime, agent: Agent) -> String {
    let config = ServerConfig::new(BasicCredentials::new(USER, PASSWORD));
    let keys = KeyRing::new(TokenKey::from_bytes(vec![0x42; 32]).expect("a 32-byte token key"));
    let running = rt
        .block_on(Runtime::new(config, keys).agent(agent).bind())
        .expect("bind the runtime");
    let url = format!("http://{}{ROUTE}", running.local_addr());
    rt.spawn(running.serve());
    url
}

async fn fetch(client: &reqwest::Client, url: &str) -> usize {
    let body = json!({"call": {"call_id": "b2f7c1d4-6a1e-4c2b-9f0a-3e5d7c9b1a20",
                               "from": "+15551234567"}});
    client
        .post(url)
        .basic_auth(USER, Some(PASSWORD))
        .json(&body)
        .send()
        .await
        .expect("a response")
        .error_for_status()
        .expect("SWML served")
        .bytes()
        .await
        .expect("a body")
        .len()
}

fn render(c: &mut Criterion) {
    let rt = tokio_runtime();
    let client = reqwest::Client::new();
    let mut group = c.benchmark_group("swml_render");
    group.throughput(Throughput::Elements(1));
    for tools in [20, 1] {
        let url = serve(&rt, agent(tools));
        let size = rt.block_on(fetch(&client, &url));
        let functions = rt.block_on(async {
            let doc: serde_json::Value = client
                .post(&url)
                .basic_auth(USER, Some(PASSWORD))
                .json(&json!({"call": {"call_id": "c1"}}))
                .send()
                .await
                .expect("a response")
                .json()
                .await
                .expect("a JSON document");
            doc.to_string().matches("\"function\":").count()
        });
        assert_eq!(functions, tools, "every tool rendered");
        eprintln!("swml_render/tools{tools}: document of {size} bytes");
        group.bench_function(format!("tools{tools}"), |b| {
            b.to_async(&rt).iter(|| fetch(&client, &url));
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = render
}
criterion_main!(benches);
