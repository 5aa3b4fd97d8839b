//! The gateway benchmark's trivial upstream (`examples/plain_agent.rs`) over real HTTP: both of
//! its documents conform to the official SWML schema and declare the bench agent's functions,
//! and `/slow`'s webhook really waits for its backend — so what `scripts/bench-gateway`
//! compares is what BENCHMARKS.md says it is.

#[allow(dead_code)]
#[path = "../../examples/plain_agent.rs"]
mod example;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use voxguard_swml::conformance::SchemaChecker;

use crate::util::{functions, swml_schema_path};

const BACKEND: Duration = Duration::from_millis(40);

/// The plain agent on 127.0.0.1:0; its base URL.
async fn plain_agent() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, example::app(addr, BACKEND))
            .await
            .unwrap();
    });
    format!("http://{addr}")
}

async fn post(url: &str, body: &Value) -> Value {
    let response = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_documents_conform_and_declare_the_bench_agents_functions() {
    let base = plain_agent().await;
    let checker = SchemaChecker::from_path(swml_schema_path()).expect("schema loads");
    for (route, expected) in [
        ("/", vec!["verify_pin", "check_order"]),
        ("/slow", vec!["backend_lookup"]),
    ] {
        let swml = post(&format!("{base}{route}"), &json!({"call_id": "c-1"})).await;
        checker
            .check_document(&swml)
            .unwrap_or_else(|e| panic!("{route} SWML conforms: {e:?}"));
        let declared = functions(&swml);
        let names: Vec<&str> = declared
            .iter()
            .filter_map(|f| f["function"].as_str())
            .collect();
        assert_eq!(names, expected, "{route}");
        for function in &declared {
            let hook = function["web_hook_url"].as_str().unwrap();
            assert!(hook.starts_with(&base), "{route}: {hook}");
            assert!(hook.contains("__token=plain-c-1-"), "{route}: {hook}");
            assert!(function["parameters"]["required"].is_array(), "{route}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slow_function_waits_for_its_backend_and_the_fast_ones_answer() {
    let base = plain_agent().await;
    let started = Instant::now();
    let answer = post(
        &format!("{base}/slow/swaig"),
        &json!({"function": "backend_lookup", "argument": {"parsed": [{"customer_ref": "C1234"}]}}),
    )
    .await;
    assert!(started.elapsed() >= BACKEND, "answered before its backend");
    assert_eq!(answer["response"], "The customer has no open tickets.");
    let answer = post(
        &format!("{base}/swaig"),
        &json!({"function": "check_order"}),
    )
    .await;
    assert_eq!(answer["response"], "The order shipped yesterday.");
}
