//! `kill -9` in the middle of a load: after a restart, every request the bank agent had
//! acknowledged has its audit event, and the audit chain (with signed checkpoints) verifies.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::bank_process::*;
use crate::util::token_for;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use voxguard::guard::AuditKey;
use voxguard::store::{Durability, SqliteAuditLog, AUDIT_DB_FILE_NAME};

pub(crate) const CUSTOMERS: [(&str, &str); 2] =
    [("+15551234567", "4321"), ("+15559876543", "8765")];

/// One simulated call after another: fetch SWML, verify the PIN, read the balance. Every
/// SWAIG answer received in full is recorded as acknowledged (its `X-Request-Id`).
pub(crate) async fn caller_loop(
    base: reqwest::Url,
    worker: usize,
    caller: &'static str,
    pin: &'static str,
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<String>>>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let url = |path: &str| base.join(path).expect("url").to_string();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let call_id = format!("crash-{worker}-{n}");
        let Ok(response) = client
            .post(url("/"))
            .basic_auth(BANK_USER, Some(BANK_PASSWORD))
            .json(&json!({ "call_id": call_id }))
            .send()
            .await
        else {
            return;
        };
        let Ok(swml) = response.json::<Value>().await else {
            return;
        };
        for (function, args) in [
            ("verify_pin", json!({ "pin": pin })),
            ("get_balance", json!({})),
        ] {
            let Some(token) = token_for(&swml, function) else {
                return;
            };
            let body = json!({
                "function": function,
                "call_id": call_id,
                "caller_id_num": caller,
                "argument": { "parsed": [args] },
            });
            let Ok(response) = client
                .post(url(&format!("/swaig?__token={token}")))
                .basic_auth(BANK_USER, Some(BANK_PASSWORD))
                .json(&body)
                .send()
                .await
            else {
                return;
            };
            let status = response.status();
            let request_id = response
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            // Acknowledged = the whole answer arrived.
            if let (true, Some(id), Ok(_)) =
                (status.is_success(), request_id, response.bytes().await)
            {
                acknowledged.lock().expect("lock").push(id);
            } else {
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_audit_events_survive_kill_9_and_the_chain_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = BASE64.encode([9u8; 32]);
    let vars = [
        ("SWML_BASIC_AUTH_USER", BANK_USER),
        ("SWML_BASIC_AUTH_PASSWORD", BANK_PASSWORD),
        ("VOXGUARD_AUDIT_KEY", key.as_str()),
        ("VOXGUARD_AUDIT_CHECKPOINT_EVERY", "10"),
        ("BANK_CALLER_LIMIT_PER_MIN", "100000"),
        ("BANK_GLOBAL_LIMIT_PER_MIN", "100000"),
    ];
    let bank = start_bank_agent_in(dir.path(), &vars).await;

    // Two calls at a time per customer (more would make verifications of the same customer
    // contend for its three attempts), four callers in all.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (caller, pin) = CUSTOMERS[worker % 2];
        workers.push(tokio::spawn(caller_loop(
            bank.base.clone(),
            worker,
            caller,
            pin,
            stop.clone(),
            acknowledged.clone(),
        )));
    }
    // Let the load build up, then kill the process while requests are in flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().expect("lock").len() < 40 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = bank.kill9().await;
    assert!(!status.success(), "killed, not exited: {status:?}");
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        let _ = worker.await;
    }
    let acknowledged: Vec<String> = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 40,
        "the load produced {} answers",
        acknowledged.len()
    );

    // Restart on the same data and stop cleanly: the audit trail is recovered and resumed.
    let restarted = start_bank_agent_in(dir.path(), &vars).await;
    let (status, stderr) = restarted.terminate().await;
    assert!(status.success(), "restart: {status:?}\n{stderr}");

    let path = dir.path().join(AUDIT_DB_FILE_NAME);
    let key = AuditKey::from_base64(&key).expect("key");
    let report = SqliteAuditLog::verify_path(&path, Some(&key), 1)
        .await
        .expect("verify");
    assert!(report.is_ok(), "the chain verifies after kill -9: {report}");
    let log = SqliteAuditLog::open(&path, Durability::Normal, None, 10)
        .await
        .expect("open");
    let recorded: HashSet<String> = log
        .records(1)
        .await
        .expect("records")
        .into_iter()
        .filter_map(|r| r.event.request_id)
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !recorded.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged requests have no audit event: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
}
