//! The operator records API (`RecordsApi::handle`) against a real SQLite records database and
//! audit trail in a temporary directory, with a manual clock: what an operator's request may
//! make the service write, spend or change.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{json, Value};
use voxguard_guard::{Clock, ManualClock, PinVault};
use voxguard_server::{OperatorRequest, RecordsService};
use voxguard_store::{AuditSink, Durability, SqliteAuditLog, SqliteRecordStore};

use super::*;
use crate::audit::Auditor;
use crate::records::{Compliance, RecordKind, RecordsConfig};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Basic credentials of an operator that does not exist: `ghost:not-the-password`.
const GHOST_LOGIN: &str = "Basic Z2hvc3Q6bm90LXRoZS1wYXNzd29yZA==";

struct Harness {
    _dir: tempfile::TempDir,
    audit: Arc<SqliteAuditLog>,
    records: Records,
    api: RecordsApi,
    clock: Arc<ManualClock>,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let audit = Arc::new(
            SqliteAuditLog::open_in_dir(dir.path(), Durability::Normal, None, 100)
                .await
                .expect("audit"),
        );
        let store = Arc::new(
            SqliteRecordStore::open_in_dir(dir.path())
                .await
                .expect("records store"),
        );
        let manual = Arc::new(ManualClock::new(1_800_000_000));
        let clock: Arc<dyn Clock> = manual.clone();
        let auditor = Auditor::new(
            Some(audit.clone() as Arc<dyn AuditSink>),
            clock.clone(),
            voxguard_server::Metrics::new(),
            None,
            None,
        );
        let config = RecordsConfig::new(store, KEY, None).expect("config");
        let records = Records::with_auditor(config, auditor.clone(), Compliance::NONE, None);
        // The cheapest argon2 parameters: these tests count checks, they do not time them.
        let vault = PinVault::with_params(8, 1, 1).expect("vault");
        let api = RecordsApi::new(
            records.clone(),
            vault,
            Hashers::new(2),
            Arc::new(AuthEvents::new(auditor)),
            clock,
            Arc::new(voxguard_store::MemoryStore::default()),
        );
        Self {
            _dir: dir,
            audit,
            records,
            api,
            clock: manual,
        }
    }

    /// A new operator with `role` and a bearer token; returns the `Authorization` value.
    async fn operator(&self, name: &str, role: &str) -> String {
        let (_, token) = self
            .records
            .add_operator(&Actor::cli("test"), name, role, false)
            .await
            .expect("operator added");
        format!("Bearer {}", token.as_str())
    }

    async fn send(&self, auth: &str, method: &str, path: &str, query: &[(&str, &str)]) -> Reply {
        self.send_from(
            auth,
            method,
            path,
            query,
            "127.0.0.1:4000".parse().expect("addr"),
        )
        .await
    }

    async fn send_from(
        &self,
        auth: &str,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        client: SocketAddr,
    ) -> Reply {
        self.api
            .handle(OperatorRequest {
                request_id: "reqtest".into(),
                client,
                method: method.into(),
                path: path.into(),
                query: query
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                authorization: Some(auth.to_string()),
                platform_credentials: false,
                body: None,
            })
            .await
    }

    /// The whole audit trail as text.
    async fn trail(&self) -> String {
        self.audit
            .records(0)
            .await
            .expect("audit read back")
            .iter()
            .map(|r| serde_json::to_string(&r.event).expect("event json"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn error(reply: &Reply) -> &str {
    reply.body["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_path_that_is_not_a_record_id_is_never_written_to_the_audit_trail() {
    let h = Harness::new().await;
    let auditor = h.operator("aud", "auditor").await;
    let supervisor = h.operator("sup", "supervisor").await;
    let long = "z".repeat(5000);
    // Where the id of a record belongs, an operator can type anything: a card number, a
    // patient's id, a date of birth, kilobytes of text.
    for (auth, method, path) in [
        (&auditor, "GET", "/4111111111111111"),
        (&auditor, "GET", "/Maria%201984-03-12/export"),
        (&supervisor, "DELETE", "/pat_001"),
        (&auditor, "GET", &format!("/{long}") as &str),
    ] {
        let reply = h.send(auth, method, path, &[("purpose", "audit")]).await;
        assert_eq!(
            (reply.status, error(&reply)),
            (404, "record_not_found"),
            "{method} {path}: {}",
            reply.body
        );
    }
    let trail = h.trail().await;
    for leaked in ["4111111111111111", "1984-03-12", "pat_001", "zzzzzzzz"] {
        assert!(
            !trail.contains(leaked),
            "{leaked} in the audit trail:\n{trail}"
        );
    }
    // A real record id is still refused by role, and that refusal is on record.
    let meta = h
        .records
        .store(
            "clinic",
            "call-1",
            Some("pat_001"),
            RecordKind::Summary,
            &json!({"s": "x"}),
        )
        .await
        .expect("stored");
    let reply = h
        .send(
            &auditor,
            "GET",
            &format!("/{}", meta.id),
            &[("purpose", "audit")],
        )
        .await;
    assert_eq!((reply.status, error(&reply)), (403, "access_denied"));
    let last = h
        .audit
        .records(0)
        .await
        .expect("trail")
        .pop()
        .expect("an event");
    assert_eq!(last.event.record.as_deref(), Some(meta.id.as_str()));
    let _: Value = reply.body;
}

/// Basic credentials of the operator `ghost{i}`, who does not exist.
fn ghost(i: u32) -> String {
    format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("ghost{i}:not-the-password")
        )
    )
}

/// The `i`th of many IPv4 source addresses.
fn spread(i: u32) -> SocketAddr {
    format!("10.0.{}.{}:5000", i / 250, i % 250 + 1)
        .parse()
        .expect("addr")
}

#[tokio::test]
async fn password_checks_are_capped_for_all_sources_together() {
    let h = Harness::new().await;
    let bearer = h.operator("comp", "compliance").await;
    // One wrong login from each of many addresses (a botnet, or one host's IPv6 /48): each
    // address stays under its own limit, yet every attempt would cost an argon2 check on the
    // workers that also verify callers.
    let mut checked = 0;
    let mut limited = 0;
    for i in 0..(LOGINS_PER_MIN_TOTAL + 80) {
        // A different unknown name each time: the per-name lock (OPERATOR_FAILURES) is not
        // what this test is about.
        let reply = h.send_from(&ghost(i), "GET", "", &[], spread(i)).await;
        match error(&reply) {
            "operator_auth_invalid" => checked += 1,
            "rate_limited" => limited += 1,
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert_eq!(
        checked, LOGINS_PER_MIN_TOTAL,
        "password checks in one minute"
    );
    assert_eq!(limited, 80);
    // Bearer tokens cost no password check and are not limited.
    let reply = h.send(&bearer, "GET", "", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn spent_total_budget_still_lets_an_operator_sign_in_where_they_did_before() {
    let (h, password) = Harness::with_vic().await;
    let office: SocketAddr = "10.2.0.1:5000".parse().expect("addr");
    let reply = h.send_from(&basic(&password), "GET", "", &[], office).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Past the login cache: the next sign-in is a password check again.
    h.clock.advance(std::time::Duration::from_secs(6 * 60));
    // Many addresses, each under its own limit, spend the total budget of the minute.
    for i in 0..=LOGINS_PER_MIN_TOTAL {
        let reply = h.send_from(&ghost(i), "GET", "", &[], spread(i)).await;
        let expected = if i < LOGINS_PER_MIN_TOTAL {
            "operator_auth_invalid"
        } else {
            "rate_limited"
        };
        assert_eq!(error(&reply), expected, "ghost {i}: {}", reply.body);
    }
    // From a new address the operator is refused by the spent total; from the office, where
    // they signed in before, their password is checked.
    let elsewhere: SocketAddr = "10.3.0.1:5000".parse().expect("addr");
    let reply = h
        .send_from(&basic(&password), "GET", "", &[], elsewhere)
        .await;
    assert_eq!(error(&reply), "rate_limited", "{}", reply.body);
    assert!(
        reply.body["response"]
            .as_str()
            .is_some_and(|s| s.contains("right now")),
        "the total's refusal: {}",
        reply.body
    );
    let reply = h.send_from(&basic(&password), "GET", "", &[], office).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn at_a_known_source_an_operator_retrying_past_the_cache_is_not_charged() {
    let (h, password) = Harness::with_vic().await;
    let office: SocketAddr = "10.2.0.1:5000".parse().expect("addr");
    let reply = h.send_from(&basic(&password), "GET", "", &[], office).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Past the login cache, with the office's own limit for known names spent (by other
    // operators' sign-ins there, say).
    h.clock.advance(std::time::Duration::from_secs(6 * 60));
    let known = format!("known/{}", lock_source(office.ip()));
    while h.api.logins.check_local("login", &known).is_ok() {}
    // vic's right password is refused by the limit, within the minute, and charged nothing:
    // nothing of vic's is remembered, so no refusal here is an oracle.
    for i in 0..(2 * OPERATOR_FAILURES) {
        let reply = h.send_from(&basic(&password), "GET", "", &[], office).await;
        assert_eq!(error(&reply), "rate_limited", "retry {i}: {}", reply.body);
        assert!(lock_wait(&reply) <= 60, "the minute's limit, not a lock");
    }
    assert_eq!(h.source_failures("vic", office).await, 0);
    h.clock.advance(std::time::Duration::from_secs(61));
    let reply = h.send_from(&basic(&password), "GET", "", &[], office).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// The `Retry-After` of a 429, checked to lie within one lock.
fn lock_wait(reply: &Reply) -> u64 {
    assert_eq!(error(reply), "rate_limited", "{}", reply.body);
    let wait: u64 = reply
        .headers
        .iter()
        .find(|(name, _)| *name == "retry-after")
        .map(|(_, v)| v.parse().expect("seconds"))
        .expect("Retry-After");
    assert!((1..=OPERATOR_LOCK_SECS).contains(&wait), "{wait}");
    wait
}

impl Harness {
    /// A harness with the auditor `vic`; returns it and vic's password.
    async fn with_vic() -> (Self, String) {
        let h = Self::new().await;
        let (_, password) = h
            .records
            .add_operator(&Actor::cli("test"), "vic", "auditor", true)
            .await
            .expect("operator");
        (h, password.to_string())
    }
}

/// `Authorization` for vic with `password`.
fn basic(password: &str) -> String {
    format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("vic:{password}")
        )
    )
}

#[tokio::test]
async fn guessing_from_one_address_locks_the_name_there_and_not_for_the_operator_elsewhere() {
    let (h, password) = Harness::with_vic().await;
    let attacker: SocketAddr = "10.1.0.1:5000".parse().expect("addr");
    // The operator works from another address.
    let office: SocketAddr = "10.2.0.1:5000".parse().expect("addr");
    // The right password is remembered (the login cache) before the guessing starts.
    let reply = h
        .send_from(&basic(&password), "GET", "", &[], attacker)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    for i in 0..OPERATOR_FAILURES {
        let reply = h.send_from(&basic("guess"), "GET", "", &[], attacker).await;
        assert_eq!(error(&reply), "operator_auth_invalid", "guess {i}");
    }
    // Locked from that address: the same answer for a wrong and a right (even remembered)
    // password, so the lock is no oracle.
    for auth in [basic("guess"), basic(&password)] {
        lock_wait(&h.send_from(&auth, "GET", "", &[], attacker).await);
    }
    // The operator, elsewhere, still signs in; a wrong guess there is an ordinary failure.
    let reply = h.send_from(&basic(&password), "GET", "", &[], office).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The lock ends after OPERATOR_LOCK_SECS.
    h.clock
        .advance(std::time::Duration::from_secs(OPERATOR_LOCK_SECS + 1));
    let reply = h
        .send_from(&basic(&password), "GET", "", &[], attacker)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Spend what is left of the login budget of `client`'s source on names that do not exist.
async fn spend_budget(h: &Harness, client: SocketAddr) {
    for i in 0..=LOGINS_PER_MIN {
        let reply = h.send_from(&ghost(i), "GET", "", &[], client).await;
        match error(&reply) {
            "operator_auth_invalid" => {}
            "rate_limited" => return,
            other => panic!("ghost {i}: {other}"),
        }
    }
    panic!("the budget of {client} was never spent");
}

impl Harness {
    /// The failures counted against `name` from `client`'s source.
    async fn source_failures(&self, name: &str, client: SocketAddr) -> u32 {
        let from = operator_token_hash(&format!("{name}\0{}", lock_source(client.ip())));
        self.api
            .attempts
            .attempt_status(
                &format!("operator-password-source/{from}"),
                self.clock.now_unix(),
            )
            .await
            .expect("status")
            .failures
    }

    /// The failures counted against `name` from everywhere.
    async fn name_failures(&self, name: &str) -> u32 {
        self.api
            .attempts
            .attempt_status(
                &format!("operator-password/{}", operator_token_hash(name)),
                self.clock.now_unix(),
            )
            .await
            .expect("status")
            .failures
    }
}

#[tokio::test]
async fn a_rate_limited_source_gets_no_oracle_of_a_remembered_password() {
    let (h, password) = Harness::with_vic().await;
    let attacker: SocketAddr = "10.1.0.1:5000".parse().expect("addr");
    let office: SocketAddr = "10.2.0.1:5000".parse().expect("addr");
    // The operator signs in at the office: the right password is in the login cache.
    let reply = h.send_from(&basic(&password), "GET", "", &[], office).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The attacker spends its address's budget on names that do not exist.
    spend_budget(&h, attacker).await;
    // Now every attempt there gets the limit's refusal, the remembered right password too (the
    // cache would otherwise tell it from the wrong ones at the rate of requests), a real name
    // and a made-up one alike (no lock either, which would tell which names exist).
    let mut answers = Vec::new();
    for auth in [basic("guess"), basic(&password), GHOST_LOGIN.to_string()] {
        for _ in 0..(OPERATOR_FAILURES + 1) {
            let reply = h.send_from(&auth, "GET", "", &[], attacker).await;
            assert_eq!(reply.status, 429, "{}", reply.body);
            answers.push((reply.body.clone(), reply.headers.clone()));
        }
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(h.name_failures("vic").await, 0, "nothing counted");
    // The operator at the office is not affected.
    let reply = h.send_from(&basic(&password), "GET", "", &[], office).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn at_a_known_source_refusals_of_its_limit_count_while_the_password_is_remembered() {
    let (h, password) = Harness::with_vic().await;
    let office: SocketAddr = "10.2.0.1:5000".parse().expect("addr");
    let reply = h.send_from(&basic(&password), "GET", "", &[], office).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The office's limit for names known there is spent (by someone sharing the address,
    // guessing at other known names, say), then vic's password is guessed there: the cache
    // answers the right one, so each refused guess counts.
    let known = format!("known/{}", lock_source(office.ip()));
    while h.api.logins.check_local("login", &known).is_ok() {}
    for i in 0..OPERATOR_FAILURES {
        let reply = h.send_from(&basic("guess"), "GET", "", &[], office).await;
        assert_eq!(error(&reply), "rate_limited", "guess {i}: {}", reply.body);
    }
    let reply = h.send_from(&basic(&password), "GET", "", &[], office).await;
    assert_eq!(reply.status, 429, "locked at that address: {}", reply.body);
    assert!(lock_wait(&reply) > 60, "a lock, not the minute's limit");
}

#[tokio::test]
async fn refusals_of_the_limit_count_nothing_against_an_operator_retrying() {
    let (h, password) = Harness::with_vic().await;
    let office: SocketAddr = "10.2.0.1:5000".parse().expect("addr");
    // Someone else at the operator's address spends its budget on names that do not exist.
    spend_budget(&h, office).await;
    // The operator retries with their right password while the limit refuses: none of it is
    // charged to them.
    for i in 0..(2 * OPERATOR_FAILURES) {
        let reply = h.send_from(&basic(&password), "GET", "", &[], office).await;
        assert_eq!(error(&reply), "rate_limited", "retry {i}: {}", reply.body);
    }
    assert_eq!(
        h.name_failures("vic").await,
        0,
        "nothing counted against the name"
    );
    // Once the minute has passed, they sign in.
    h.clock.advance(std::time::Duration::from_secs(61));
    let reply = h.send_from(&basic(&password), "GET", "", &[], office).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn one_ipv6_host_is_one_source_for_the_lock_whichever_64_it_uses() {
    let (h, password) = Harness::with_vic().await;
    // Each guess from another /64 of one /48.
    let from =
        |i: u32| -> SocketAddr { format!("[2001:db8:7:{i:x}::1]:5000").parse().expect("addr") };
    for i in 0..OPERATOR_FAILURES {
        let reply = h.send_from(&basic("guess"), "GET", "", &[], from(i)).await;
        assert_eq!(error(&reply), "operator_auth_invalid", "guess {i}");
    }
    lock_wait(
        &h.send_from(&basic(&password), "GET", "", &[], from(99))
            .await,
    );
    // Another /48 is another source.
    let elsewhere: SocketAddr = "[2001:db8:8::1]:5000".parse().expect("addr");
    let reply = h
        .send_from(&basic(&password), "GET", "", &[], elsewhere)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn another_operators_many_sign_ins_do_not_evict_an_operators_known_source() {
    let (h, password) = Harness::with_vic().await;
    let (_, eve_password) = h
        .records
        .add_operator(&Actor::cli("test"), "eve", "auditor", true)
        .await
        .expect("operator");
    let eve = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("eve:{}", eve_password.as_str())
        )
    );
    let home: SocketAddr = "10.7.0.1:5000".parse().expect("addr");
    let reply = h.send_from(&basic(&password), "GET", "", &[], home).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // eve signs in from many places (cached: no argon2 check each).
    for i in 0..50u32 {
        let from: SocketAddr = format!("10.8.{i}.1:5000").parse().expect("addr");
        let reply = h.send_from(&eve, "GET", "", &[], from).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    // (A first sign-in at a source spends the minute's login budget, cached or not.)
    h.clock.advance(std::time::Duration::from_secs(61));
    // Guessing at vic spread over many addresses locks vic's name...
    for i in 0..OPERATOR_FAILURES_TOTAL {
        let from: SocketAddr = format!("10.9.{}.{}:5000", i / 9, i % 9 + 1)
            .parse()
            .expect("addr");
        let reply = h.send_from(&basic("guess"), "GET", "", &[], from).await;
        assert_eq!(error(&reply), "operator_auth_invalid", "guess {i}");
    }
    lock_wait(
        &h.send_from(
            &basic(&password),
            "GET",
            "",
            &[],
            "10.10.0.1:5000".parse().expect("addr"),
        )
        .await,
    );
    // ...but not at home: eve's sign-ins did not push it out.
    let reply = h.send_from(&basic(&password), "GET", "", &[], home).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn one_name_is_locked_everywhere_after_its_failures_from_many_addresses() {
    let (h, password) = Harness::with_vic().await;
    let from = |i: u32| -> SocketAddr { format!("10.1.{i}.1:5000").parse().expect("addr") };
    let reply = h
        .send_from(&basic(&password), "GET", "", &[], from(240))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Spread under every address's own lock (and under the per-source and global login
    // limits: fewer than OPERATOR_FAILURES per address, within one minute).
    let per_address = OPERATOR_FAILURES - 1;
    let addresses = OPERATOR_FAILURES_TOTAL.div_ceil(per_address);
    const { assert!(OPERATOR_FAILURES_TOTAL < LOGINS_PER_MIN_TOTAL) };
    let mut failures = 0;
    'guessing: for a in 0..addresses {
        for _ in 0..per_address {
            if failures == OPERATOR_FAILURES_TOTAL {
                break 'guessing;
            }
            let reply = h.send_from(&basic("guess"), "GET", "", &[], from(a)).await;
            assert_eq!(error(&reply), "operator_auth_invalid", "guess {failures}");
            failures += 1;
        }
    }
    // Locked everywhere, a fresh address and a right password included...
    for auth in [basic("guess"), basic(&password)] {
        lock_wait(&h.send_from(&auth, "GET", "", &[], from(200)).await);
    }
    // ...but where the operator signed in before: guessing spread over many addresses does not
    // lock them out of their own.
    let reply = h
        .send_from(&basic(&password), "GET", "", &[], from(240))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Another name is not locked; the lock ends after OPERATOR_LOCK_SECS.
    let reply = h.send_from(GHOST_LOGIN, "GET", "", &[], from(201)).await;
    assert_eq!(error(&reply), "operator_auth_invalid");
    h.clock
        .advance(std::time::Duration::from_secs(OPERATOR_LOCK_SECS + 1));
    let reply = h
        .send_from(&basic(&password), "GET", "", &[], from(202))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn an_auditor_lists_subjects_as_pseudonyms_and_a_supervisor_sees_them() {
    let h = Harness::new().await;
    h.records
        .store(
            "clinic",
            "call-1",
            Some("pat_001"),
            RecordKind::Summary,
            &json!("x"),
        )
        .await
        .expect("stored");
    let auditor = h.operator("aud", "auditor").await;
    let supervisor = h.operator("sup", "supervisor").await;
    let listed = h.send(&auditor, "GET", "", &[("subject", "pat_001")]).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let subject = listed.body["records"][0]["subject"]
        .as_str()
        .expect("a record");
    assert_eq!(subject, h.records.subject_ref("pat_001"));
    assert!(
        !listed.body.to_string().contains("pat_001"),
        "{}",
        listed.body
    );
    let listed = h.send(&supervisor, "GET", "", &[]).await;
    assert_eq!(listed.body["records"][0]["subject"], "pat_001");
}

#[test]
fn the_shared_filter_and_purpose_rules() {
    let lookup = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    };
    let filter = record_filter(lookup(&[
        ("subject", "pat_001"),
        ("kind", "transcript"),
        ("from", "10"),
        ("to", "20"),
    ]))
    .expect("valid");
    assert_eq!(filter.subject.as_deref(), Some("pat_001"));
    assert_eq!((filter.from, filter.to), (Some(10), Some(20)));
    assert_eq!(filter.limit, Some(DEFAULT_PAGE));
    for (pairs, bad) in [
        (&[("subject", "")][..], "subject"),
        (&[("kind", "voicemail")][..], "kind"),
        (&[("call_id", "")][..], "call_id"),
        (&[("from", "-1")][..], "from"),
        (&[("to", "tomorrow")][..], "to"),
        (&[("limit", "0")][..], "limit"),
        (&[("limit", "1001")][..], "limit"),
    ] {
        let pairs: &'static [(&'static str, &'static str)] = pairs;
        assert_eq!(record_filter(lookup(pairs)).unwrap_err(), bad);
    }
    assert_eq!(valid_purpose("  audit  "), Some("audit"));
    assert_eq!(valid_purpose("   "), None);
    assert_eq!(valid_purpose(&"é".repeat(200)).map(str::len), Some(400));
    assert_eq!(valid_purpose(&"é".repeat(201)), None);
}
