//! Several replicas on shared state: three bank agent processes on one PostgreSQL schema and
//! one Redis key prefix (or PostgreSQL alone), over real HTTP.
//!
//! Each test starts its own replicas on a fresh schema and prefix, so tests never see each
//! other's state. They need the servers named by `VOXGUARD_TEST_POSTGRES_URL` and
//! `VOXGUARD_TEST_REDIS_URL` (`.ci/run` exports them when the servers answer) and say plainly
//! on stderr when they skip. The tests that stop PostgreSQL or Redis take the gate exclusively
//! and restore the server before they end, so the other replica tests never see it down.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::bank_process::*;
use crate::util::token_for;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};
use voxguard::guard::{AuditKey, KeyRing, TokenKey};
use voxguard::store::postgres::{testing, PgDatabase};
use voxguard::store::{AttemptStore, PgAuditLog, PgStore, DEFAULT_SESSION_TTL};
use voxguard::VerificationPolicy;

const JOHN: &str = "+15551234567";
const JOHN_PIN: &str = "4321";
const ADMIN_USER: &str = "ops-admin";
const ADMIN_PASSWORD: &str = "replica-admin-password-0123456789abcdef";

/// Stopping a shared server takes this exclusively; every other replica test shares it.
pub(crate) static GATE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The test servers, or `None` after saying why the test skips.
fn servers(test: &str, redis: bool) -> Option<(String, Option<String>)> {
    let url = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(postgres) = url("VOXGUARD_TEST_POSTGRES_URL") else {
        eprintln!("skipped replicas::{test}: VOXGUARD_TEST_POSTGRES_URL is not set (bash .ci/run sets it when PostgreSQL answers on 127.0.0.1:5432)");
        return None;
    };
    if !redis {
        return Some((postgres, None));
    }
    let Some(redis) = url("VOXGUARD_TEST_REDIS_URL") else {
        eprintln!("skipped replicas::{test}: VOXGUARD_TEST_REDIS_URL is not set (bash .ci/run sets it when Redis answers on 127.0.0.1:6379)");
        return None;
    };
    Some((postgres, Some(redis)))
}

/// Three (or `n`) bank agents sharing one schema and one Redis prefix.
struct Cluster {
    replicas: Vec<BankAgent>,
    schema: String,
    postgres: String,
    token_key: String,
    audit_key: String,
    client: reqwest::Client,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    async fn start(
        label: &str,
        n: usize,
        postgres: &str,
        redis: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Self {
        let schema = testing::unique_schema(label);
        let prefix = format!("vgtest:{schema}:");
        let token_key = BASE64.encode([0x5a; 32]);
        let records_key = BASE64.encode([0x3c; 32]);
        let audit_key = BASE64.encode([0x77; 32]);
        let mut vars: Vec<(&str, &str)> = vec![
            ("SWML_BASIC_AUTH_USER", BANK_USER),
            ("SWML_BASIC_AUTH_PASSWORD", BANK_PASSWORD),
            ("VOXGUARD_ADMIN_USER", ADMIN_USER),
            ("VOXGUARD_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("VOXGUARD_TOKEN_KEY", &token_key),
            ("VOXGUARD_RECORDS_KEY", &records_key),
            ("VOXGUARD_AUDIT_KEY", &audit_key),
            ("VOXGUARD_AUDIT_CHECKPOINT_EVERY", "10"),
            ("VOXGUARD_DATABASE_URL", postgres),
            ("VOXGUARD_DATABASE_SCHEMA", &schema),
            ("VOXGUARD_DATABASE_MAX_CONNECTIONS", "4"),
            ("VOXGUARD_SWML_RENDERS_PER_MIN", "0"),
        ];
        if let Some(redis) = redis {
            vars.push(("VOXGUARD_REDIS_URL", redis));
            vars.push(("VOXGUARD_REDIS_PREFIX", &prefix));
        }
        vars.extend_from_slice(extra);
        let mut replicas = Vec::new();
        let mut dirs = Vec::new();
        for _ in 0..n {
            let dir = tempfile::tempdir().expect("tempdir");
            replicas.push(start_bank_agent_in(dir.path(), &vars).await);
            dirs.push(dir);
        }
        Self {
            replicas,
            schema,
            postgres: postgres.to_string(),
            token_key,
            audit_key,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("client"),
            _dirs: dirs,
        }
    }

    /// The SWML of a fresh call rendered by replica `i`.
    async fn render(&self, i: usize, call_id: &str) -> Value {
        let response = self
            .client
            .post(self.replicas[i].url("/"))
            .basic_auth(BANK_USER, Some(BANK_PASSWORD))
            .json(&json!({ "call_id": call_id }))
            .send()
            .await
            .expect("swml request");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("swml json")
    }

    /// Call `function` on replica `i` with the token of `swml`.
    async fn invoke(
        &self,
        i: usize,
        swml: &Value,
        call_id: &str,
        function: &str,
        args: Value,
    ) -> (StatusCode, Value) {
        let token = token_for(swml, function).expect("a token for the function");
        let response = self
            .client
            .post(self.replicas[i].url(&format!("/swaig?__token={token}")))
            .basic_auth(BANK_USER, Some(BANK_PASSWORD))
            .json(&json!({
                "function": function,
                "call_id": call_id,
                "caller_id_num": JOHN,
                "argument": { "parsed": [args] },
            }))
            .send()
            .await
            .expect("swaig request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The shared database, for looking at what the replicas left.
    async fn database(&self) -> PgDatabase {
        PgDatabase::connect(&self.postgres, &self.schema, 2)
            .await
            .expect("connect to the test schema")
    }

    async fn stop(self) {
        let database = self.database().await;
        for replica in self.replicas {
            let (status, stderr) = replica.terminate().await;
            assert!(status.success(), "a replica failed: {status:?}\n{stderr}");
        }
        let _ = database.drop_schema().await;
    }
}

/// The sentence of an answer (empty when there is none).
fn response(reply: &Value) -> &str {
    reply["response"].as_str().unwrap_or_default()
}

fn is_mismatch(reply: &Value) -> bool {
    response(reply).starts_with("That didn't match our records.")
}

fn is_locked(reply: &Value) -> bool {
    response(reply).contains("locked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_wrong_pins_round_robin_reach_the_hash_three_times_and_lock_every_replica() {
    let Some((postgres, redis)) = servers("wrong_pins", true) else {
        return;
    };
    let _gate = GATE.read().await;
    let cluster = Arc::new(
        Cluster::start(
            "wrong_pins",
            3,
            &postgres,
            redis.as_deref(),
            &[
                ("BANK_CALLER_LIMIT_PER_MIN", "100000"),
                ("BANK_GLOBAL_LIMIT_PER_MIN", "100000"),
            ],
        )
        .await,
    );
    // Thirty calls of the same customer, each rendered and guessed on the next replica.
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let cluster = cluster.clone();
            tokio::spawn(async move {
                let replica = i % 3;
                let call_id = format!("guess-{i:02}");
                let swml = cluster.render(replica, &call_id).await;
                cluster
                    .invoke(
                        replica,
                        &swml,
                        &call_id,
                        "verify_pin",
                        json!({ "pin": format!("9{i:03}") }),
                    )
                    .await
            })
        })
        .collect();
    let (mut mismatches, mut locked) = (0, 0);
    for task in tasks {
        let (status, reply) = task.await.expect("guess");
        assert_eq!(status, StatusCode::OK, "{reply}");
        if is_mismatch(&reply) {
            mismatches += 1;
        } else {
            assert!(is_locked(&reply), "{reply}");
            locked += 1;
        }
    }
    assert_eq!(mismatches + locked, 30);
    assert!(mismatches <= 2, "{mismatches} guesses heard 'didn't match'");
    // Every guess that reached the hash was counted first: the shared counter holds 3.
    let keys = KeyRing::new(TokenKey::from_base64(&cluster.token_key).expect("token key"));
    let subject = VerificationPolicy::new()
        .attempt_key(&keys, "bank", "cust_001")
        .expect("attempt key");
    let store = PgStore::new(cluster.database().await, DEFAULT_SESSION_TTL);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let status = store.attempt_status(&subject, now).await.expect("status");
    assert_eq!(status.failures, 3, "{status:?}");
    assert!(status.locked_until.is_some(), "{status:?}");
    // The right PIN is refused on every replica now.
    for replica in 0..3 {
        let call_id = format!("after-{replica}");
        let swml = cluster.render(replica, &call_id).await;
        let (status, reply) = cluster
            .invoke(
                replica,
                &swml,
                &call_id,
                "verify_pin",
                json!({ "pin": JOHN_PIN }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(is_locked(&reply), "replica {replica}: {reply}");
    }
    Arc::into_inner(cluster).expect("one owner").stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_verified_on_one_replica_continues_on_the_others_and_confirms_once() {
    let Some((postgres, redis)) = servers("continues", true) else {
        return;
    };
    let _gate = GATE.read().await;
    let cluster = Cluster::start("continues", 3, &postgres, redis.as_deref(), &[]).await;
    let call_id = "call-across-replicas";
    let swml = cluster.render(0, call_id).await;
    let (status, reply) = cluster
        .invoke(0, &swml, call_id, "verify_pin", json!({ "pin": JOHN_PIN }))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(response(&reply).contains("verified"), "{reply}");
    // The same render's tokens work on B and C, and they see the verification at once.
    for replica in [1, 2] {
        let (status, reply) = cluster
            .invoke(replica, &swml, call_id, "get_balance", json!({}))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            response(&reply).contains("balance"),
            "replica {replica}: {reply}"
        );
    }
    // A read-back on A, confirmed on B: the transfer runs once.
    let transfer = json!({ "amount": 5.0, "to_account": "9876543210" });
    let (_, reply) = cluster
        .invoke(0, &swml, call_id, "transfer_funds", transfer.clone())
        .await;
    assert!(response(&reply).contains("Please say confirm"), "{reply}");
    let mut confirmed = transfer.clone();
    confirmed["confirmed"] = json!(true);
    let (_, reply) = cluster
        .invoke(1, &swml, call_id, "transfer_funds", confirmed.clone())
        .await;
    assert!(response(&reply).starts_with("Transferred"), "{reply}");
    // The confirmation was used up: confirming again on C is refused.
    let (_, reply) = cluster
        .invoke(2, &swml, call_id, "transfer_funds", confirmed.clone())
        .await;
    assert!(
        !response(&reply).starts_with("Transferred"),
        "a used confirmation ran again: {reply}"
    );
    // A new read-back, then concurrent confirmations on A and B: exactly one runs.
    let (_, reply) = cluster
        .invoke(2, &swml, call_id, "transfer_funds", transfer.clone())
        .await;
    assert!(response(&reply).contains("Please say confirm"), "{reply}");
    let (a, b) = tokio::join!(
        cluster.invoke(0, &swml, call_id, "transfer_funds", confirmed.clone()),
        cluster.invoke(1, &swml, call_id, "transfer_funds", confirmed.clone()),
    );
    let ran = [a.1, b.1]
        .iter()
        .filter(|reply| response(reply).starts_with("Transferred"))
        .count();
    assert_eq!(
        ran, 1,
        "concurrent confirmations on two replicas ran {ran} times"
    );
    cluster.stop().await;
}

/// Turn the emergency switch on at replica `i`.
async fn emergency(cluster: &Cluster, i: usize, enabled: bool) {
    let response = cluster
        .client
        .post(cluster.replicas[i].url("/admin/emergency"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .json(&json!({ "enabled": enabled }))
        .send()
        .await
        .expect("emergency request");
    assert_eq!(response.status(), StatusCode::OK);
}

/// The emergency switch set on one replica refuses sensitive tools on the others; measured
/// from the moment the switch answered.
async fn emergency_reaches_every_replica(label: &str, redis: bool) {
    let Some((postgres, redis)) = servers(label, redis) else {
        return;
    };
    let _gate = GATE.read().await;
    let cluster = Cluster::start(label, 3, &postgres, redis.as_deref(), &[]).await;
    let call_id = "emergency-call";
    let swml = cluster.render(0, call_id).await;
    emergency(&cluster, 0, true).await;
    let switched = Instant::now();
    for replica in [1, 2] {
        loop {
            // A malformed PIN: until the switch arrives it is refused by validation, cheaply
            // (no hash), so the polling measures the switch, not argon2.
            let (_, reply) = cluster
                .invoke(replica, &swml, call_id, "verify_pin", json!({ "pin": "x" }))
                .await;
            if reply["error"] == "emergency_disabled" {
                break;
            }
            assert!(
                switched.elapsed() < EVENTUALLY,
                "replica {replica} still serves verify_pin: {reply}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let took = switched.elapsed();
    eprintln!("replicas::{label}: the emergency switch reached both other replicas in {took:?}");
    // Within a second when notifications flow (the periodic reload is the slow fallback).
    assert!(
        took < Duration::from_secs(1),
        "the switch took {took:?} to reach the other replicas"
    );
    // And off again everywhere.
    emergency(&cluster, 2, false).await;
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let (_, reply) = cluster
            .invoke(0, &swml, call_id, "verify_pin", json!({ "pin": JOHN_PIN }))
            .await;
        if response(&reply).contains("verified") {
            break;
        }
        assert!(Instant::now() < deadline, "still disabled on A: {reply}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emergency_switch_set_on_one_replica_holds_on_all_within_a_second_with_redis() {
    emergency_reaches_every_replica("emergency_redis", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emergency_switch_set_on_one_replica_holds_on_all_with_postgres_alone() {
    emergency_reaches_every_replica("emergency_pg", false).await;
}

/// A global limit of `LIMIT` per minute, hammered round-robin on three replicas.
async fn global_limit_holds(label: &str, redis: bool) {
    const LIMIT: usize = 60;
    let Some((postgres, redis)) = servers(label, redis) else {
        return;
    };
    let _gate = GATE.read().await;
    let limit = LIMIT.to_string();
    let cluster = Arc::new(
        Cluster::start(
            label,
            3,
            &postgres,
            redis.as_deref(),
            &[
                ("BANK_GLOBAL_LIMIT_PER_MIN", &limit),
                ("BANK_CALLER_LIMIT_PER_MIN", "100000"),
            ],
        )
        .await,
    );
    let swml = cluster.render(0, "limit-call").await;
    let swml = Arc::new(swml);
    let allowed = Arc::new(AtomicUsize::new(0));
    let limited = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..3 * LIMIT)
        .map(|i| {
            let (cluster, swml) = (cluster.clone(), swml.clone());
            let (allowed, limited) = (allowed.clone(), limited.clone());
            tokio::spawn(async move {
                let (status, reply) = cluster
                    .invoke(i % 3, &swml, "limit-call", "get_balance", json!({}))
                    .await;
                match status {
                    StatusCode::TOO_MANY_REQUESTS => limited.fetch_add(1, Ordering::SeqCst),
                    StatusCode::OK => allowed.fetch_add(1, Ordering::SeqCst),
                    other => panic!("unexpected {other}: {reply}"),
                };
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("request");
    }
    let elapsed = started.elapsed();
    let allowed = allowed.load(Ordering::SeqCst);
    // The bucket refills one call per second while the burst runs.
    let refill = usize::try_from(elapsed.as_secs()).unwrap_or(usize::MAX) + 1;
    eprintln!("replicas::{label}: {allowed} of {} allowed in {elapsed:?} with a limit of {LIMIT}/min on 3 replicas", 3 * LIMIT);
    assert!(allowed >= LIMIT, "only {allowed} allowed");
    assert!(
        allowed <= LIMIT + LIMIT / 20 + refill,
        "{allowed} allowed for a limit of {LIMIT} (3 replicas would give {} if each kept its own)",
        3 * LIMIT
    );
    assert_eq!(allowed + limited.load(Ordering::SeqCst), 3 * LIMIT);
    Arc::into_inner(cluster).expect("one owner").stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_limit_holds_across_replicas_with_redis() {
    global_limit_holds("limit_redis", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_limit_holds_across_replicas_with_postgres_alone() {
    global_limit_holds("limit_pg", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_replica_under_load_loses_no_acknowledged_event_and_the_chain_verifies() {
    let Some((postgres, redis)) = servers("kill9", true) else {
        return;
    };
    let _gate = GATE.read().await;
    let mut cluster = Cluster::start(
        "kill9",
        3,
        &postgres,
        redis.as_deref(),
        &[
            ("BANK_CALLER_LIMIT_PER_MIN", "100000"),
            ("BANK_GLOBAL_LIMIT_PER_MIN", "100000"),
        ],
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for worker in 0..6 {
        // The crash test's callers: SWML, verify_pin, get_balance, again and again.
        workers.push(tokio::spawn(crate::crash_durability::caller_loop(
            cluster.replicas[worker % 3].base.clone(),
            worker,
            crate::crash_durability::CUSTOMERS[worker % 2].0,
            crate::crash_durability::CUSTOMERS[worker % 2].1,
            stop.clone(),
            acknowledged.clone(),
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().expect("lock").len() < 60 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let victim = cluster.replicas.remove(0);
    let status = victim.kill9().await;
    assert!(!status.success(), "killed, not exited: {status:?}");
    // The others keep serving a little longer, then stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        let _ = worker.await;
    }
    let acknowledged: Vec<String> = acknowledged.lock().expect("lock").clone();
    assert!(acknowledged.len() >= 60, "{} answers", acknowledged.len());
    let database = cluster.database().await;
    let key = AuditKey::from_base64(&cluster.audit_key).expect("audit key");
    let log = PgAuditLog::open(database.clone(), Default::default(), Some(key.clone()), 10)
        .await
        .expect("open the shared trail");
    let records = log.records(1).await.expect("records");
    let stored: HashSet<String> = records
        .iter()
        .filter_map(|record| record.event.request_id.clone())
        .collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged requests have no audit event: {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(5)]
    );
    let seqs: Vec<u64> = records.iter().map(|record| record.seq).collect();
    let expected: Vec<u64> = (1..=records.len() as u64).collect();
    assert_eq!(seqs, expected, "one chain, no gaps and no forks");
    let report = log.verify(Some(&key), 1).await.expect("verify");
    assert!(
        matches!(report, voxguard::guard::audit::VerifyReport::Ok { records, .. } if records == seqs.len() as u64),
        "{report:?}"
    );
    cluster.stop().await;
}

/// Runs `restart` when dropped, so a failing test still brings the server back.
struct Restore(fn());

impl Drop for Restore {
    fn drop(&mut self) {
        (self.0)();
    }
}

fn run(program: &str, args: &[&str]) {
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(status.success(), "{program} {args:?}: {status:?}");
}

/// The local PostgreSQL cluster's version and name (`pg_lsclusters`), if this machine manages
/// it with the Debian tools.
fn pg_cluster() -> Option<(String, String)> {
    let output = std::process::Command::new("pg_lsclusters")
        .arg("--no-header")
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let mut fields = text.lines().next()?.split_whitespace();
    Some((fields.next()?.to_string(), fields.next()?.to_string()))
}

fn start_postgres() {
    if let Some((version, name)) = pg_cluster() {
        let _ = std::process::Command::new("pg_ctlcluster")
            .args([version.as_str(), name.as_str(), "start"])
            .status();
    }
}

fn start_redis() {
    let _ = std::process::Command::new("redis-server")
        .args(["--daemonize", "yes", "--port", "6379", "--save", ""])
        .status();
}

/// A call whose verification is done, on replica 0: each later `get_balance` is 200 when the
/// state answers.
async fn verified_call(cluster: &Cluster, call_id: &str) -> Value {
    let swml = cluster.render(0, call_id).await;
    let (status, reply) = cluster
        .invoke(0, &swml, call_id, "verify_pin", json!({ "pin": JOHN_PIN }))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    swml
}

/// Poll `GET /ready` on replica `i` until it answers `status`.
async fn ready_becomes(cluster: &Cluster, i: usize, status: StatusCode) {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let ready = cluster
            .client
            .get(cluster.replicas[i].url("/ready"))
            .send()
            .await
            .expect("ready");
        if ready.status() == status {
            return;
        }
        assert!(Instant::now() < deadline, "/ready stays {}", ready.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Poll `get_balance` on both replicas until it answers 200 again.
async fn recovers(cluster: &Cluster, swml: &Value, call_id: &str) {
    let deadline = Instant::now() + EVENTUALLY * 2;
    for replica in 0..cluster.replicas.len() {
        loop {
            let (status, reply) = cluster
                .invoke(replica, swml, call_id, "get_balance", json!({}))
                .await;
            if status == StatusCode::OK {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica {replica} did not recover: {status} {reply}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_fails_closed_and_recovers_without_restarting_replicas() {
    let Some((postgres, redis)) = servers("pg_restart", true) else {
        return;
    };
    let Some((version, name)) = pg_cluster() else {
        eprintln!(
            "skipped replicas::pg_restart: pg_lsclusters is not available to restart PostgreSQL"
        );
        return;
    };
    let _gate = GATE.write().await;
    let cluster = Cluster::start("pg_restart", 2, &postgres, redis.as_deref(), &[]).await;
    let call_id = "pg-restart";
    let swml = verified_call(&cluster, call_id).await;
    let _restore = Restore(start_postgres);
    run("pg_ctlcluster", &[&version, &name, "stop", "-m", "fast"]);
    for replica in 0..2 {
        let (status, reply) = cluster
            .invoke(replica, &swml, call_id, "get_balance", json!({}))
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
        let reason = reply["error"].as_str().unwrap_or_default();
        assert!(
            ["store_unavailable", "audit_unavailable"].contains(&reason),
            "fails closed with a stable reason: {reply}"
        );
    }
    ready_becomes(&cluster, 0, StatusCode::SERVICE_UNAVAILABLE).await;
    run("pg_ctlcluster", &[&version, &name, "start"]);
    recovers(&cluster, &swml, call_id).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_makes_limits_fail_closed_and_they_recover() {
    let Some((postgres, redis)) = servers("redis_restart", true) else {
        return;
    };
    let _gate = GATE.write().await;
    let cluster = Cluster::start("redis_restart", 2, &postgres, redis.as_deref(), &[]).await;
    let call_id = "redis-restart";
    let swml = verified_call(&cluster, call_id).await;
    let _restore = Restore(start_redis);
    // SHUTDOWN closes the connection without a reply; its status does not matter.
    let _ = std::process::Command::new("redis-cli")
        .args(["-p", "6379", "shutdown", "nosave"])
        .status();
    let deadline = Instant::now() + EVENTUALLY;
    for replica in 0..2 {
        loop {
            let (status, reply) = cluster
                .invoke(replica, &swml, call_id, "get_balance", json!({}))
                .await;
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(reply["error"], "store_unavailable", "{reply}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica {replica} still answers without Redis: {status} {reply}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Readiness says so (answers are reused for a second), and the detail says which server
    // is missing.
    ready_becomes(&cluster, 1, StatusCode::SERVICE_UNAVAILABLE).await;
    let detail = cluster
        .client
        .get(cluster.replicas[1].url("/ready/detail"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("ready detail");
    assert_eq!(detail.status(), StatusCode::SERVICE_UNAVAILABLE);
    let detail: Value = detail.json().await.expect("detail json");
    assert_eq!(
        detail["runtime"]["state"]["redis"]["ready"], false,
        "{detail}"
    );
    assert_eq!(
        detail["runtime"]["state"]["postgres"]["ready"], true,
        "{detail}"
    );
    start_redis();
    recovers(&cluster, &swml, call_id).await;
    ready_becomes(&cluster, 1, StatusCode::OK).await;
    cluster.stop().await;
}
