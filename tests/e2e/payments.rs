//! End-to-end payments (issue 11) with the reference shop agent (`examples/shop_agent.rs`) over
//! real HTTP and the deterministic `TestGateway`: the whole flow (cart → checkout's `pay` action
//! → the platform's POST to the connector → `confirm_payment` reading server state), every
//! refusal of the connector (amount tampering, replay, bad cards, missing and foreign tokens,
//! declines), idempotency under 50 concurrent retries and after a gateway timeout, the PCI
//! recording pause, the status endpoint, and the card scan: the shop agent as a child process
//! with debug logs, whose every log byte and data file is searched for the cards sent.

#[allow(dead_code)]
#[path = "../../examples/shop_agent.rs"]
mod example;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use voxguard::guard::{AuditEvent, AuditKind, Outcome};
use voxguard::payments::gateway::{PaymentGateway, TestGateway};
use voxguard::store::{SqliteStore, DEFAULT_SESSION_TTL};
use voxguard_swml::conformance::SchemaChecker;

use crate::util::bank_process::{self, ChildGuard};
use crate::util::{swml_schema_path, Call, RecordsKit, TestServer, CLINIC_AUDIT_KEY, RECORDS_KEY};

const CALLER: &str = "+15551234567";
const GOOD: &str = "4242424242424242";
const DECLINED: &str = "4000000000000002";
const NO_FUNDS: &str = "4000000000009995";

/// A shop agent on a fresh data directory with records and an audit trail, charging through a
/// test gateway.
struct Shop {
    server: Arc<TestServer>,
    kit: RecordsKit,
    gateway: Arc<TestGateway>,
    emergency: Arc<voxguard::guard::EmergencySwitch>,
}

impl Shop {
    async fn start(gateway: TestGateway) -> Self {
        Self::start_with(gateway, |builder| builder).await
    }

    async fn start_with(
        gateway: TestGateway,
        adjust: impl FnOnce(voxguard::AgentBuilder) -> voxguard::AgentBuilder,
    ) -> Self {
        let kit = RecordsKit::new().await;
        let gateway = Arc::new(gateway);
        let dyn_gateway: Arc<dyn PaymentGateway> = gateway.clone();
        let agent = adjust(example::agent_builder(
            Arc::new(example::Shop::demo()),
            dyn_gateway,
        ))
        .build()
        .expect("shop agent builds");
        let sessions = Arc::new(
            SqliteStore::open_in_dir(kit.dir.path(), DEFAULT_SESSION_TTL)
                .await
                .expect("session store"),
        );
        let sink = kit.sink();
        let config = kit.config();
        let slot: Arc<std::sync::Mutex<Option<Arc<voxguard::guard::EmergencySwitch>>>> =
            Arc::default();
        let keep = slot.clone();
        let server = TestServer::start_with(
            vec![agent],
            |_| {},
            move |runtime| {
                *keep.lock().unwrap() = Some(runtime.emergency());
                runtime.store(sessions).audit(sink).records(config)
            },
            reqwest::Client::builder(),
        )
        .await;
        let emergency = slot.lock().unwrap().clone().expect("emergency switch");
        Self {
            server: Arc::new(server),
            kit,
            gateway,
            emergency,
        }
    }

    async fn call(&self, call_id: &str) -> Call {
        Call::start(&self.server, "/", call_id, CALLER).await
    }

    /// Every audit event of `kind`.
    async fn events(&self, kind: AuditKind) -> Vec<AuditEvent> {
        self.kit
            .trail()
            .await
            .into_iter()
            .map(|r| r.event)
            .filter(|e| e.kind == kind)
            .collect()
    }
}

/// The `pay` verb a checkout answered, after checking the answer against the official schema.
fn pay_verb(reply: &Value) -> Value {
    SchemaChecker::from_path(swml_schema_path())
        .expect("schema loads")
        .check_response(reply)
        .expect("the checkout answer conforms to the official schema");
    reply["action"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|action| action["SWML"]["sections"]["main"].as_array())
        .flatten()
        .find_map(|verb| verb.get("pay").cloned())
        .unwrap_or_else(|| panic!("a pay verb in {reply}"))
}

/// Put `items` in the call's cart and check out; the `pay` verb.
async fn checkout(call: &Call, items: &[(&str, u32)]) -> Value {
    for (sku, qty) in items {
        call.say("add_to_cart", json!({"sku": sku, "qty": qty}))
            .await;
    }
    let reply = call.ok("checkout", json!({})).await;
    pay_verb(&reply)
}

/// A URL the platform calls back: (path and query, user, password).
fn callback(url: &str) -> (String, String, String) {
    let url = reqwest::Url::parse(url).expect("callback URL");
    let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    (
        path,
        url.username().to_string(),
        url.password().unwrap_or_default().to_string(),
    )
}

/// The token in a callback URL.
fn token_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .expect("URL")
        .query_pairs()
        .find(|(k, _)| k == "__token")
        .map(|(_, v)| v.into_owned())
        .expect("a __token")
}

/// A card as the platform posts it to the connector.
#[derive(Clone, Copy)]
struct Card<'a> {
    number: &'a str,
    cvv: &'a str,
    month: &'a str,
    year: &'a str,
}

const fn card(number: &str) -> Card<'_> {
    Card {
        number,
        cvv: "123",
        month: "12",
        year: "2030",
    }
}

/// The platform's connector request body.
fn connector_body(transaction: &str, card: Card<'_>, amount: &str, currency: &str) -> Value {
    json!({
        "transaction_id": transaction,
        "method": "credit-card",
        "cardnumber": card.number,
        "cvv": card.cvv,
        "expiry_month": card.month,
        "expiry_year": card.year,
        "postal_code": "94107",
        "chargeAmount": amount,
        "currency_code": currency,
        "token_type": "one-time",
        "description": "Example Shop order",
    })
}

/// POST `body` to the callback URL `url` exactly as rendered (its credentials as Basic auth).
async fn post_to(
    client: &reqwest::Client,
    base: &str,
    url: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let (path, user, password) = callback(url);
    let response = client
        .post(format!("{base}{path}"))
        .basic_auth(user, Some(password))
        .json(body)
        .send()
        .await
        .expect("connector request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

impl Shop {
    fn base(&self) -> String {
        self.server.url("")
    }

    /// POST a card to the connector of `pay`.
    async fn pay(&self, pay: &Value, transaction: &str, card: Card<'_>) -> (StatusCode, Value) {
        let amount = pay["charge_amount"].as_str().expect("charge_amount");
        let url = pay["payment_connector_url"]
            .as_str()
            .expect("connector URL");
        let body = connector_body(transaction, card, amount, "usd");
        post_to(&self.server.client, &self.base(), url, &body).await
    }

    /// POST `body` to the connector of `pay`.
    async fn pay_raw(&self, pay: &Value, body: &Value) -> (StatusCode, Value) {
        let url = pay["payment_connector_url"]
            .as_str()
            .expect("connector URL");
        post_to(&self.server.client, &self.base(), url, body).await
    }

    /// POST `body` to `/pay` with `query` (none: no token).
    async fn pay_with_query(&self, query: &str, body: &Value) -> (StatusCode, Value) {
        let url = format!("{}{query}", self.server.url("/pay"));
        let response = self
            .server
            .client
            .post(url)
            .basic_auth(crate::util::USER, Some(crate::util::PASSWORD))
            .json(body)
            .send()
            .await
            .expect("connector request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// A connector refusal: `status`, no charge id, the code and a message.
fn assert_connector_refusal(status: StatusCode, reply: &Value, expected: u16, code: &str) {
    assert_eq!(status.as_u16(), expected, "{reply}");
    assert_eq!(reply["charge_id"], Value::Null, "{reply}");
    assert_eq!(reply["error_code"], code, "{reply}");
    assert!(
        reply["error_message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{reply}"
    );
}

/// A successful charge; its id.
fn assert_charged(status: StatusCode, reply: &Value) -> String {
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["error_code"], Value::Null, "{reply}");
    assert_eq!(reply["error_message"], Value::Null, "{reply}");
    let id = reply["charge_id"]
        .as_str()
        .expect("a charge id")
        .to_string();
    assert!(id.starts_with("ch_test_"), "{reply}");
    id
}

// ---------------------------------------------------------------------------------------------
// The whole flow
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_from_cart_to_a_paid_order() {
    let shop = Shop::start(TestGateway::new()).await;
    let call = shop.call("call-flow").await;
    let added = call
        .say("add_to_cart", json!({"sku": "MUG-01", "qty": 1}))
        .await;
    assert!(added.contains("$12.50"), "{added}");
    let added = call
        .say("add_to_cart", json!({"sku": "TEE-02", "qty": 1}))
        .await;
    assert!(added.contains("$37.50"), "{added}");
    let reply = call.ok("checkout", json!({})).await;
    let pay = pay_verb(&reply);
    assert_eq!(pay["charge_amount"], "37.50", "{pay}");
    assert_eq!(pay["currency"], "usd", "{pay}");
    assert_eq!(pay["token_type"], "one-time", "{pay}");
    assert!(
        pay["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Example Shop order ORD-")),
        "{pay}"
    );
    let connector = pay["payment_connector_url"]
        .as_str()
        .expect("connector URL");
    let (path, user, password) = callback(connector);
    assert!(path.starts_with("/pay?__token="), "{connector}");
    assert_eq!(
        (user.as_str(), password.as_str()),
        (crate::util::USER, crate::util::PASSWORD),
        "the platform calls the connector with the agent's Basic credentials"
    );
    let status_url = pay["status_url"].as_str().expect("a status_url");
    assert!(callback(status_url).0.starts_with("/pay/status?__token="));

    // Before the card is collected nothing is paid, whatever the LLM believes.
    let early = call.say("confirm_payment", json!({})).await;
    assert!(early.contains("has not gone through"), "{early}");

    let (status, reply) = shop.pay(&pay, "txn-flow-1", card(GOOD)).await;
    let charge_id = assert_charged(status, &reply);

    let confirmed = call.say("confirm_payment", json!({})).await;
    assert!(
        confirmed.starts_with("Payment received: order ORD-"),
        "{confirmed}"
    );
    assert!(confirmed.contains("$37.50"), "{confirmed}");
    assert!(confirmed.contains("visa ending 4242"), "{confirmed}");
    let order_id = confirmed
        .split_whitespace()
        .find(|w| w.starts_with("ORD-"))
        .expect("an order id")
        .to_string();
    let status_line = call
        .say("order_status", json!({"order_id": order_id}))
        .await;
    assert!(status_line.contains("is paid"), "{status_line}");
    // Another call cannot read this order.
    let other = shop.call("call-other").await;
    let foreign = other
        .say("order_status", json!({"order_id": order_id}))
        .await;
    assert!(foreign.contains("can't find"), "{foreign}");
    assert_eq!(shop.gateway.charges(), 1);

    // The trail: requested with the server's amount, charged with brand and last four only.
    let requested = shop.events(AuditKind::PaymentRequested).await;
    assert_eq!(requested.len(), 1, "{requested:?}");
    let charged = shop.events(AuditKind::PaymentCharged).await;
    assert_eq!(charged.len(), 1, "{charged:?}");
    let args = charged[0].arguments.clone().expect("arguments");
    assert_eq!(args["amount_cents"], 3750);
    assert_eq!(args["brand"], "visa");
    assert_eq!(args["last4"], "4242");
    assert_eq!(args["gateway_id"], charge_id.as_str());
    assert_eq!(charged[0].call_id.as_deref(), Some("call-flow"));
    assert!(!shop.kit.trail_text().await.contains(GOOD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_cart_is_not_checked_out() {
    let shop = Shop::start(TestGateway::new()).await;
    let call = shop.call("call-empty").await;
    call.refused("checkout", json!({}), "cart_empty").await;
    for args in [
        json!({"sku": "MUG-01", "qty": 0}),
        json!({"sku": "MUG-01", "qty": 11}),
        json!({"sku": "MUG-01"}),
    ] {
        let (status, reply) = call.invoke("add_to_cart", args.clone()).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        assert!(reply["error"].is_string(), "{args} refused: {reply}");
    }
    call.refused("checkout", json!({}), "cart_empty").await;
    assert!(shop.events(AuditKind::PaymentRequested).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_amount_or_currency_is_refused_and_audited() {
    let shop = Shop::start(TestGateway::new()).await;
    let call = shop.call("call-tamper").await;
    let pay = checkout(&call, &[("MUG-01", 1), ("TEE-02", 1)]).await;
    for (amount, currency) in [
        ("0.01", "usd"),
        ("37.49", "usd"),
        ("3750", "usd"),
        ("37.50", "eur"),
    ] {
        let body = connector_body("txn-tamper", card(GOOD), amount, currency);
        let (status, reply) = shop.pay_raw(&pay, &body).await;
        assert_connector_refusal(status, &reply, 400, "payment_amount_mismatch");
    }
    assert_eq!(shop.gateway.charges(), 0);
    let mismatches = shop.events(AuditKind::PaymentAmountMismatch).await;
    assert_eq!(mismatches.len(), 4, "{mismatches:?}");
    assert!(mismatches
        .iter()
        .all(|e| e.outcome == Some(Outcome::Refused)
            && e.reason.as_deref() == Some("payment_amount_mismatch")
            && e.arguments
                .as_ref()
                .is_some_and(|a| a["amount_cents"] == 3750)));
    // The server's amount still goes through.
    let (status, reply) = shop.pay(&pay, "txn-tamper-ok", card(GOOD)).await;
    assert_charged(status, &reply);
    assert_eq!(shop.gateway.charges(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_transaction_after_success_is_a_replay() {
    let shop = Shop::start(TestGateway::new()).await;
    let call = shop.call("call-replay").await;
    let pay = checkout(&call, &[("CAP-03", 2)]).await;
    assert_eq!(pay["charge_amount"], "36.00");
    let (status, reply) = shop.pay(&pay, "txn-replay-1", card(GOOD)).await;
    let first = assert_charged(status, &reply);
    let (status, reply) = shop.pay(&pay, "txn-replay-2", card(GOOD)).await;
    assert_connector_refusal(status, &reply, 409, "payment_already_processed");
    // A retry of the first transaction is the same answer, not a new charge.
    let (status, reply) = shop.pay(&pay, "txn-replay-1", card(GOOD)).await;
    assert_eq!(assert_charged(status, &reply), first);
    assert_eq!(shop.gateway.charges(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cards_are_refused_before_the_gateway() {
    let shop = Shop::start(TestGateway::new()).await;
    let call = shop.call("call-bad-cards").await;
    let pay = checkout(&call, &[("MUG-01", 2)]).await;
    let cases = [
        (
            Card {
                month: "01",
                year: "2020",
                ..card(GOOD)
            },
            "card_expired",
        ),
        (card("4242424242424241"), "card_luhn_failed"),
        (card("4242"), "card_number_invalid"),
        (
            Card {
                cvv: "12",
                ..card(GOOD)
            },
            "card_cvv_invalid",
        ),
        (
            Card {
                cvv: "12345",
                ..card(GOOD)
            },
            "card_cvv_invalid",
        ),
        (
            Card {
                cvv: "12a",
                ..card(GOOD)
            },
            "card_cvv_invalid",
        ),
        (
            Card {
                month: "13",
                ..card(GOOD)
            },
            "card_expiry_invalid",
        ),
    ];
    // Five bad cards per payment at most (the connector is not a card-testing oracle): the
    // first five answer their codes, the rest `too_many_attempts`.
    const MAX_FAILURES: usize = 5;
    for (i, (bad, code)) in cases.into_iter().enumerate() {
        let (status, reply) = shop.pay(&pay, &format!("txn-bad-{i}"), bad).await;
        if i < MAX_FAILURES {
            assert_connector_refusal(status, &reply, 402, code);
        } else {
            assert_connector_refusal(status, &reply, 429, "too_many_attempts");
        }
    }
    assert_eq!(shop.gateway.charges(), 0);
    let declined = shop.events(AuditKind::PaymentDeclined).await;
    assert_eq!(declined.len(), MAX_FAILURES, "{declined:?}");
    let confirm = call.say("confirm_payment", json!({})).await;
    assert!(confirm.contains("has not gone through"), "{confirm}");
    // Even a good card is refused on this payment now; a new checkout takes it.
    let (status, reply) = shop.pay(&pay, "txn-good", card(GOOD)).await;
    assert_connector_refusal(status, &reply, 429, "too_many_attempts");
    let again = checkout(&call, &[]).await;
    let (status, reply) = shop.pay(&again, "txn-good-2", card(GOOD)).await;
    assert_charged(status, &reply);
    assert_eq!(shop.gateway.charges(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_foreign_tokens_are_refused() {
    let shop = Shop::start(TestGateway::new()).await;
    let call = shop.call("call-tokens").await;
    let pay = checkout(&call, &[("MUG-01", 1)]).await;
    let body = connector_body("txn-token", card(GOOD), "12.50", "usd");
    let token = token_of(pay["payment_connector_url"].as_str().expect("url"));

    // No token; a garbled one; a tool's token (another function).
    for query in [
        String::new(),
        "?__token=".to_string(),
        format!("?__token={}x", token),
        format!("?__token={}", call.token("checkout")),
    ] {
        let (status, reply) = shop.pay_with_query(&query, &body).await;
        assert_connector_refusal(status, &reply, 403, "payment_token_invalid");
    }
    let refused = shop.events(AuditKind::TokenRefused).await;
    assert!(!refused.is_empty(), "token refusals are audited");

    // Validly signed tokens (as a replica would mint them) bound to another call, or to another
    // payment of this call, charge nothing.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // The shop agent's (on `/`) ring, as a replica derives it.
    let keys = shop.server.keys.for_agent("/");
    let claims = keys
        .claims_at(&token, "__pay", now)
        .expect("the rendered token is a pay token");
    let (render, _payment) = claims.session.split_once('|').expect("render|payment");
    let other_call = keys.mint_with_session_at("call-someone-else", "__pay", &claims.session, now);
    let other_payment = keys.mint_with_session_at(
        "call-tokens",
        "__pay",
        &format!("{render}|pay_abcdefghijklmnopqrstuvwx"),
        now,
    );
    let other_render = keys.mint_with_session_at(
        "call-tokens",
        "__pay",
        &format!("another-render|{}", _payment),
        now,
    );
    for forged in [other_call, other_payment, other_render] {
        let (status, reply) = shop
            .pay_with_query(&format!("?__token={forged}"), &body)
            .await;
        assert!(
            status.is_client_error() && reply["charge_id"].is_null(),
            "{status} {reply}"
        );
        assert_eq!(reply["error_code"], "payment_not_found", "{reply}");
    }
    assert_eq!(shop.gateway.charges(), 0);
    // The real token still works.
    let (status, reply) = shop.pay(&pay, "txn-token", card(GOOD)).await;
    assert_charged(status, &reply);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declines_answer_their_codes_and_a_good_card_then_pays() {
    let shop = Shop::start(TestGateway::new()).await;
    let call = shop.call("call-declines").await;
    let pay = checkout(&call, &[("TEE-02", 1)]).await;
    let (status, reply) = shop.pay(&pay, "txn-d1", card(DECLINED)).await;
    assert_connector_refusal(status, &reply, 402, "card_declined");
    let (status, reply) = shop.pay(&pay, "txn-d2", card(NO_FUNDS)).await;
    assert_connector_refusal(status, &reply, 402, "insufficient_funds");
    // A retried declined transaction gets the same decline.
    let (status, reply) = shop.pay(&pay, "txn-d1", card(DECLINED)).await;
    assert_connector_refusal(status, &reply, 402, "card_declined");
    let confirm = call.say("confirm_payment", json!({})).await;
    assert!(confirm.contains("has not gone through"), "{confirm}");
    let (status, reply) = shop.pay(&pay, "txn-d3", card(GOOD)).await;
    assert_charged(status, &reply);
    let confirm = call.say("confirm_payment", json!({})).await;
    assert!(confirm.contains("is paid"), "{confirm}");
    assert_eq!(shop.gateway.charges(), 1);
    let declined = shop.events(AuditKind::PaymentDeclined).await;
    let last4: Vec<Value> = declined
        .iter()
        .filter_map(|e| e.arguments.as_ref().map(|a| a["last4"].clone()))
        .collect();
    assert!(
        last4.contains(&json!("0002")) && last4.contains(&json!("9995")),
        "{declined:?}"
    );
    let reasons: Vec<Option<String>> = declined.iter().map(|e| e.reason.clone()).collect();
    assert!(
        reasons.contains(&Some("card_declined".into())),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&Some("insufficient_funds".into())),
        "{reasons:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_retries_of_one_transaction_charge_once() {
    let shop = Shop::start(TestGateway::new().with_delay(Duration::from_millis(300))).await;
    let call = shop.call("call-retries").await;
    let pay = checkout(&call, &[("MUG-01", 3)]).await;
    let shop = Arc::new(shop);
    let pay = Arc::new(pay);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let shop = shop.clone();
            let pay = pay.clone();
            tokio::spawn(async move { shop.pay(&pay, "txn-storm", card(GOOD)).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    let (status, first) = answers[0].clone();
    assert_charged(status, &first);
    assert!(
        answers
            .iter()
            .all(|(s, body)| *s == status && *body == first),
        "identical answers: {answers:?}"
    );
    assert_eq!(shop.gateway.charges(), 1);
    assert_eq!(shop.events(AuditKind::PaymentCharged).await.len(), 1);
}

/// The emergency switch stops the connector too: a payment requested before it was turned on
/// charges nothing while it is on (with no tool list, or a list naming `__pay`), and goes
/// through once it is off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emergency_switch_stops_a_requested_payment() {
    let shop = Shop::start(TestGateway::new()).await;
    let call = shop.call("call-emergency-pay").await;
    let pay = checkout(&call, &[("MUG-01", 1)]).await;
    for tools in [None, Some(["__pay".to_string()].into())] {
        shop.emergency.set(voxguard::guard::EmergencyState {
            enabled: true,
            tools,
        });
        let (status, reply) = shop.pay(&pay, "txn-emergency", card(GOOD)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
        assert_eq!(shop.gateway.charges(), 0);
    }
    let refused = shop.events(AuditKind::PolicyRefused).await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused
        .iter()
        .all(|e| e.reason.as_deref() == Some("emergency_disabled")));
    // A list naming only tools leaves payments alone; off, the same payment goes through.
    shop.emergency.set(voxguard::guard::EmergencyState {
        enabled: true,
        tools: Some(["checkout".to_string()].into()),
    });
    let (status, reply) = shop.pay(&pay, "txn-emergency", card(GOOD)).await;
    assert_charged(status, &reply);
    assert_eq!(shop.gateway.charges(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_timeout_answers_connector_error_and_the_retry_charges_once() {
    let shop = Shop::start(TestGateway::new().failing_with_timeout_once()).await;
    let call = shop.call("call-timeout").await;
    let pay = checkout(&call, &[("CAP-03", 1)]).await;
    let (status, reply) = shop.pay(&pay, "txn-timeout", card(GOOD)).await;
    assert_connector_refusal(status, &reply, 502, "payment-connector-error");
    let errors = shop.events(AuditKind::PaymentError).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].reason.as_deref(), Some("gateway_timeout"));
    // The gateway did charge; the retry finds that charge instead of making another.
    assert_eq!(shop.gateway.charges(), 1);
    let (status, reply) = shop.pay(&pay, "txn-timeout", card(GOOD)).await;
    assert_charged(status, &reply);
    assert_eq!(shop.gateway.charges(), 1);
    let confirm = call.say("confirm_payment", json!({})).await;
    assert!(confirm.contains("is paid"), "{confirm}");
}

/// The gateway made the charge but its answer was lost (a timeout); the platform then tries again
/// with a *new* `transaction_id` (e.g. the caller keys the card in again). The connector's
/// gateway idempotency key is per payment and transaction, so the second attempt is a new key
/// and the card is charged twice for one payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_transaction_after_a_gateway_timeout_charges_again() {
    let shop = Shop::start(TestGateway::new().failing_with_timeout_once()).await;
    let call = shop.call("call-timeout-new-txn").await;
    let pay = checkout(&call, &[("CAP-03", 1)]).await;
    let (status, reply) = shop.pay(&pay, "txn-first", card(GOOD)).await;
    assert_connector_refusal(status, &reply, 502, "payment-connector-error");
    assert_eq!(shop.gateway.charges(), 1, "the lost answer was a charge");
    let (status, reply) = shop.pay(&pay, "txn-second", card(GOOD)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(
        shop.gateway.charges(),
        1,
        "one payment, one charge, whatever transaction id the retry carries"
    );
}

// ---------------------------------------------------------------------------------------------
// PCI recording pause, the status endpoint
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pci_mode_pauses_the_call_recording_around_card_collection() {
    let recording = voxguard_swml::RecordCall {
        control_id: Some("shop-recording".into()),
        format: Some("mp3".into()),
        ..Default::default()
    };
    let shop = Shop::start_with(TestGateway::new(), move |builder| {
        builder.record_call(recording)
    })
    .await;
    let call = shop.call("call-recorded").await;
    call.say("add_to_cart", json!({"sku": "MUG-01", "qty": 1}))
        .await;
    let reply = call.ok("checkout", json!({})).await;
    let pay = pay_verb(&reply);
    let main = reply["action"][0]["SWML"]["sections"]["main"]
        .as_array()
        .expect("SWML action");
    let verbs: Vec<&str> = main
        .iter()
        .filter_map(|v| v.as_object()?.keys().next().map(String::as_str))
        .collect();
    assert_eq!(verbs, ["stop_record_call", "pay", "record_call"], "{reply}");
    assert_eq!(main[0]["stop_record_call"]["control_id"], "shop-recording");
    assert_eq!(main[2]["record_call"]["control_id"], "shop-recording");
    assert_eq!(main[2]["record_call"]["format"], "mp3");
    let (status, reply) = shop.pay(&pay, "txn-rec", card(GOOD)).await;
    assert_charged(status, &reply);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_status_is_token_protected_audited_and_masks_a_full_card_number() {
    let shop = Shop::start(TestGateway::new()).await;
    let call = shop.call("call-status").await;
    let pay = checkout(&call, &[("MUG-01", 1)]).await;
    let status_url = pay["status_url"].as_str().expect("status_url");
    let masked = json!({"event_type": "calling.call.pay", "params": {
        "state": "finished", "payment_method": "credit-card",
        "payment_card_number": "************4242", "payment_card_type": "visa"}});
    // Without a token: refused, nothing audited as a status.
    let (status, reply) = shop.pay_with_query("", &masked).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reply}");
    let no_token = format!("{}/status", shop.server.url("/pay"));
    let response = shop
        .server
        .client
        .post(no_token)
        .basic_auth(crate::util::USER, Some(crate::util::PASSWORD))
        .json(&masked)
        .send()
        .await
        .expect("status");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let (status, reply) = post_to(&shop.server.client, &shop.base(), status_url, &masked).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let leaky = json!({"event_type": "calling.call.pay", "params": {
        "state": "collecting", "payment_card_number": "4111111111111111",
        "note": "card 4242 4242 4242 4242 entered"}});
    let (status, reply) = post_to(&shop.server.client, &shop.base(), status_url, &leaky).await;
    assert_eq!(status, StatusCode::OK, "{reply}");

    let statuses: Vec<AuditEvent> = shop
        .events(AuditKind::Payment)
        .await
        .into_iter()
        .filter(|e| e.function.as_deref() == Some("pay_status"))
        .collect();
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert_eq!(statuses[0].call_id.as_deref(), Some("call-status"));
    let second = statuses[1].arguments.clone().expect("arguments");
    assert_eq!(second["sensitive_data_redacted"], true, "{second}");
    let text = shop.kit.trail_text().await;
    for pan in ["4111111111111111", "4242 4242 4242 4242", GOOD] {
        assert!(!text.contains(pan), "{pan} in the trail: {text}");
    }
}

/// A status event whose card number is already masked the way the platform masks it carries no
/// card data and is not flagged `sensitive_data_redacted` (nor logged as a security warning).
/// Before the fix the flag meant "the redactor changed something", and the key
/// `payment_card_number` is always redacted, so every normal status event raised the alarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masked_status_event_is_not_flagged_as_card_data() {
    let shop = Shop::start(TestGateway::new()).await;
    let call = shop.call("call-status-masked").await;
    let pay = checkout(&call, &[("MUG-01", 1)]).await;
    let masked = json!({"event_type": "calling.call.pay", "params": {
        "state": "finished", "payment_method": "credit-card",
        "payment_card_number": "************4242", "payment_card_type": "visa"}});
    let status_url = pay["status_url"].as_str().expect("status_url");
    let (status, reply) = post_to(&shop.server.client, &shop.base(), status_url, &masked).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let event = shop
        .events(AuditKind::Payment)
        .await
        .into_iter()
        .find(|e| e.function.as_deref() == Some("pay_status"))
        .expect("the status is audited");
    let args = event.arguments.expect("arguments");
    assert_eq!(args["sensitive_data_redacted"], false, "{args}");
}

/// A typed tool without arguments (`struct NoArgs {}`) accepts undeclared arguments: its
/// schemars schema has no `properties`, so `close_objects` never adds
/// `additionalProperties: false`. `Tool::allow_undeclared_args` documents that typed tools
/// refuse them by default. (The handler never sees them: serde drops unknown fields.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_without_arguments_refuses_undeclared_ones() {
    let shop = Shop::start(TestGateway::new()).await;
    let call = shop.call("call-undeclared").await;
    let (status, reply) = call
        .invoke("confirm_payment", json!({"pay_result": "success"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(
        reply["error"].is_string(),
        "undeclared argument refused: {reply}"
    );
}

// ---------------------------------------------------------------------------------------------
// The card scan: the shop agent as a child process, logs at debug, every data file
// ---------------------------------------------------------------------------------------------

/// Basic-auth user the shop agent child is started with.
const SHOP_USER: &str = "shop-platform";
/// Basic-auth password the shop agent child is started with.
const SHOP_PASSWORD: &str = "s3cure-shop-agent-password-0123456789";

/// The shop agent child: its process, URL, and threads collecting stdout and stderr.
struct ShopProcess {
    child: ChildGuard,
    base: String,
    client: reqwest::Client,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl ShopProcess {
    async fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[]).await
    }

    /// Start with `vars` on top of the defaults below.
    async fn start_with(dir: &Path, vars: &[(&str, &str)]) -> Self {
        let mut command = bank_process::example_command("shop_agent", dir);
        command
            .env("SWML_BASIC_AUTH_USER", SHOP_USER)
            .env("SWML_BASIC_AUTH_PASSWORD", SHOP_PASSWORD)
            .env("VOXGUARD_RECORDS_KEY", RECORDS_KEY)
            .env("VOXGUARD_AUDIT_KEY", CLINIC_AUDIT_KEY)
            .env("VOXGUARD_PAYMENT_GATEWAY", "test")
            .env("RUST_LOG", "debug")
            .envs(vars.iter().copied());
        let agent = bank_process::spawn_announced(command, "shop agent").await;
        Self {
            child: agent.child,
            base: agent.base.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            stdout: agent.stdout,
            stderr: agent.stderr,
        }
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .basic_auth(SHOP_USER, Some(SHOP_PASSWORD))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn swml(&self, call_id: &str) -> Value {
        let (status, swml) = self
            .post("/", &json!({"call_id": call_id, "call": {"from": CALLER}}))
            .await;
        assert_eq!(status, StatusCode::OK, "{swml}");
        swml
    }

    async fn invoke(&self, swml: &Value, call_id: &str, function: &str, args: Value) -> Value {
        let token = crate::util::token_for(swml, function).expect("token");
        let body = json!({
            "function": function, "call_id": call_id, "caller_id_num": CALLER,
            "argument": {"parsed": [args], "raw": ""},
        });
        let (status, reply) = self
            .post(&crate::util::swaig_path("/", Some(&token)), &body)
            .await;
        assert_eq!(status, StatusCode::OK, "{function}: {reply}");
        assert!(reply.get("error").is_none(), "{function}: {reply}");
        reply
    }

    /// SIGTERM, wait, and return (stdout, stderr).
    async fn terminate(mut self) -> (String, String) {
        let pid = self.child.0.id().to_string();
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(kill.success());
        let status = bank_process::wait_for_exit(&mut self.child.0)
            .await
            .expect("the shop agent exits after SIGTERM");
        assert!(status.success(), "exit status {status}");
        (
            self.stdout.join().unwrap_or_default(),
            self.stderr.join().unwrap_or_default(),
        )
    }
}

/// Every file under `dir`, recursively: (path, bytes).
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                files.push((path, bytes));
            }
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The CVV `cvv` within 12 bytes after a `cvv`/`cvc`/`security_code` label (any case).
fn cvv_in_context(haystack: &[u8], cvv: &str) -> bool {
    let lower = haystack.to_ascii_lowercase();
    ["cvv", "cvc", "security_code"].iter().any(|label| {
        lower
            .windows(label.len())
            .enumerate()
            .filter(|(_, w)| *w == label.as_bytes())
            .any(|(at, _)| {
                let from = at + label.len();
                let to = (from + 12 + cvv.len()).min(lower.len());
                contains(&lower[from..to], cvv.as_bytes())
            })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_card_number_or_cvv_reaches_a_log_line_or_a_data_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = ShopProcess::start(dir.path()).await;
    // (number as sent, cvv, month, year, what the connector answers)
    let cards: [(&str, &str, &str, &str, u16); 7] = [
        ("4000 0000 0000 0002", "321", "11", "2031", 402),
        ("4000000000009995", "4567", "10", "2032", 402),
        ("4242424242424241", "999", "09", "2033", 402),
        ("5555555555554444", "876", "01", "2020", 402),
        ("6011111111111117", "7531", "12", "2030", 400),
        ("378282246310005", "2468", "08", "2034", 200),
        ("5105105105105100", "135", "07", "2035", 200),
    ];
    let mut sent_cvvs = Vec::new();
    let mut call_no = 0;
    let mut swml = agent.swml("scan-call-0").await;
    let mut call_id = "scan-call-0".to_string();
    let mut pay = Value::Null;
    for (i, (number, cvv, month, year, expected)) in cards.iter().enumerate() {
        if pay.is_null() {
            agent
                .invoke(
                    &swml,
                    &call_id,
                    "add_to_cart",
                    json!({"sku": "TEE-02", "qty": 1}),
                )
                .await;
            let reply = agent.invoke(&swml, &call_id, "checkout", json!({})).await;
            pay = pay_verb(&reply);
        }
        let amount = if *expected == 400 { "1.00" } else { "25.00" };
        let body = connector_body(
            &format!("scan-txn-{i}"),
            Card {
                number,
                cvv,
                month,
                year,
            },
            amount,
            "usd",
        );
        let (status, reply) = post_to(
            &agent.client,
            &agent.base,
            pay["payment_connector_url"].as_str().expect("url"),
            &body,
        )
        .await;
        assert_eq!(status.as_u16(), *expected, "{number}: {reply}");
        sent_cvvs.push(*cvv);
        if status == StatusCode::OK {
            let confirmed = agent
                .invoke(&swml, &call_id, "confirm_payment", json!({}))
                .await;
            assert!(
                confirmed["response"]
                    .as_str()
                    .is_some_and(|r| r.contains("is paid")),
                "{confirmed}"
            );
            // The next card pays in a new call.
            call_no += 1;
            call_id = format!("scan-call-{call_no}");
            swml = agent.swml(&call_id).await;
            pay = Value::Null;
        }
    }
    // A status event leaking a full number, masked by the connector.
    let reply = agent
        .invoke(
            &swml,
            &call_id,
            "add_to_cart",
            json!({"sku": "MUG-01", "qty": 1}),
        )
        .await;
    assert!(reply["response"].is_string());
    let reply = agent.invoke(&swml, &call_id, "checkout", json!({})).await;
    let pay = pay_verb(&reply);
    let (status, _) = post_to(
        &agent.client,
        &agent.base,
        pay["status_url"].as_str().expect("status_url"),
        &json!({"params": {"payment_card_number": "4000056655665556", "cvv": "909"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (stdout, stderr) = agent.terminate().await;
    assert!(
        stderr.contains("DEBUG"),
        "logs were captured at debug level"
    );
    let mut pans: Vec<String> = cards.iter().map(|(n, ..)| n.replace(' ', "")).collect();
    pans.push("4000056655665556".into());
    sent_cvvs.push("909");
    let spaced = |pan: &str| {
        pan.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut haystacks: Vec<(String, Vec<u8>)> = vec![
        ("stdout".into(), stdout.into_bytes()),
        ("stderr".into(), stderr.into_bytes()),
    ];
    let files = files_under(dir.path());
    assert!(
        files.iter().any(|(p, _)| p.ends_with("audit.db")),
        "the data dir holds the audit trail: {:?}",
        files.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    haystacks.extend(files.into_iter().map(|(p, b)| (p.display().to_string(), b)));
    for (name, bytes) in &haystacks {
        for pan in &pans {
            assert!(!contains(bytes, pan.as_bytes()), "{pan} found in {name}");
            assert!(
                !contains(bytes, spaced(pan).as_bytes()),
                "{pan} (spaced) found in {name}"
            );
        }
        for cvv in &sent_cvvs {
            assert!(
                !cvv_in_context(bytes, cvv),
                "CVV {cvv} found in context in {name}"
            );
        }
    }

    // The trail: charges and declines with brand, last four and expiry only.
    use voxguard::store::{Durability, SqliteAuditLog};
    let key = voxguard::guard::AuditKey::from_base64(CLINIC_AUDIT_KEY).expect("audit key");
    let audit = SqliteAuditLog::open_in_dir(dir.path(), Durability::Normal, Some(key), 100)
        .await
        .expect("audit log");
    let events: Vec<AuditEvent> = audit
        .records(1)
        .await
        .expect("trail")
        .into_iter()
        .map(|r| r.event)
        .collect();
    let charged: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| e.kind == AuditKind::PaymentCharged)
        .collect();
    let declined: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| e.kind == AuditKind::PaymentDeclined)
        .collect();
    assert_eq!(charged.len(), 2, "{charged:?}");
    assert_eq!(declined.len(), 4, "{declined:?}");
    let allowed = [
        "amount_cents",
        "currency",
        "brand",
        "last4",
        "exp_month",
        "exp_year",
        "gateway_id",
    ];
    for event in charged.iter().chain(declined.iter()) {
        let args = event
            .arguments
            .as_ref()
            .and_then(Value::as_object)
            .expect("arguments");
        assert!(
            args.keys().all(|k| allowed.contains(&k.as_str())),
            "{args:?}"
        );
    }
    let brands: Vec<(&str, &str)> = charged
        .iter()
        .filter_map(|e| {
            let a = e.arguments.as_ref()?;
            Some((a["brand"].as_str()?, a["last4"].as_str()?))
        })
        .collect();
    assert_eq!(brands, [("amex", "0005"), ("mastercard", "5100")]);
    let declined_reasons: Vec<&str> = declined
        .iter()
        .filter_map(|e| e.reason.as_deref())
        .collect();
    assert_eq!(
        declined_reasons,
        [
            "card_declined",
            "insufficient_funds",
            "card_luhn_failed",
            "card_expired"
        ]
    );
}

/// The connector on its own host (docs/payments.md, "The connector on its own host"): the agent
/// host renders the pay verb towards the connector host, never serves `/pay` itself and holds no
/// gateway; the connector host serves nothing but `/pay` and `/pay/status`; the pending payment
/// and its outcome travel through the shared PostgreSQL state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_on_its_own_host_charges_what_the_agent_host_recorded() {
    let Some(postgres) = std::env::var("VOXGUARD_TEST_POSTGRES_URL")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        eprintln!("skipped payments::connector_host: VOXGUARD_TEST_POSTGRES_URL is not set (bash .ci/run sets it when PostgreSQL answers)");
        return;
    };
    let schema = voxguard::store::postgres::testing::unique_schema("connector_host");
    let token_key = "c2hhcmVkLXRva2VuLWtleS1mb3ItdGhlLXR3by1ob3N0cyE=";
    let shared = [
        ("VOXGUARD_DATABASE_URL", postgres.as_str()),
        ("VOXGUARD_DATABASE_SCHEMA", schema.as_str()),
        ("VOXGUARD_TOKEN_KEY", token_key),
    ];
    let connector_dir = tempfile::tempdir().expect("tempdir");
    let mut vars = shared.to_vec();
    vars.push(("VOXGUARD_SERVE", "connector"));
    let connector = ShopProcess::start_with(connector_dir.path(), &vars).await;
    let agent_dir = tempfile::tempdir().expect("tempdir");
    let mut vars = shared.to_vec();
    vars.push(("VOXGUARD_SERVE", "agent"));
    vars.push(("VOXGUARD_PAYMENT_CONNECTOR_URL", connector.base.as_str()));
    // The agent host has no gateway secret to leak: were Stripe chosen, it still never charges.
    vars.push(("VOXGUARD_PAYMENT_GATEWAY", "stripe"));
    let agent = ShopProcess::start_with(agent_dir.path(), &vars).await;

    // Each host serves only its half.
    let (status, _) = agent.post("/pay", &json!({})).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the agent host has no connector"
    );
    let (status, _) = agent.post("/pay/status", &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = connector.post("/", &json!({"call_id": "x"})).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the connector host renders no SWML"
    );
    let (status, _) = connector
        .post("/swaig", &json!({"function": "checkout"}))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the connector host runs no tools"
    );

    let call_id = "call-two-hosts";
    let swml = agent.swml(call_id).await;
    agent
        .invoke(
            &swml,
            call_id,
            "add_to_cart",
            json!({"sku": "CAP-03", "qty": 2}),
        )
        .await;
    let reply = agent.invoke(&swml, call_id, "checkout", json!({})).await;
    let pay = pay_verb(&reply);
    assert_eq!(pay["charge_amount"], "36.00", "{pay}");
    let url = pay["payment_connector_url"]
        .as_str()
        .expect("connector URL");
    assert!(
        url.contains(connector.base.trim_start_matches("http://")),
        "the card goes to the connector host: {url}"
    );
    let status_url = pay["status_url"].as_str().expect("status URL");
    assert!(
        status_url.contains(connector.base.trim_start_matches("http://")),
        "{status_url}"
    );
    // The platform posts the card to the connector host, as rendered.
    let body = connector_body("txn-two-hosts", card(GOOD), "36.00", "usd");
    let (status, answer) = post_to(&connector.client, &connector.base, url, &body).await;
    let charge_id = assert_charged(status, &answer);
    assert!(!charge_id.is_empty());
    // A tampered amount is refused by the connector host too.
    let tampered = connector_body("txn-two-hosts-2", card(GOOD), "1.00", "usd");
    let (status, answer) = post_to(&connector.client, &connector.base, url, &tampered).await;
    assert!(!status.is_success(), "{answer}");
    // The agent host reads the outcome the connector host recorded.
    let confirmed = agent
        .invoke(&swml, call_id, "confirm_payment", json!({}))
        .await;
    let text = confirmed["response"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("Payment received: order ORD-"),
        "{confirmed}"
    );
    assert!(text.contains("$36.00"), "{confirmed}");

    let (_, agent_log) = agent.terminate().await;
    let (_, connector_log) = connector.terminate().await;
    for log in [&agent_log, &connector_log] {
        assert!(!log.contains(GOOD), "a card number reached a log");
    }
    if let Ok(database) =
        voxguard::store::postgres::PgDatabase::connect(&postgres, &schema, 1).await
    {
        let _ = database.drop_schema().await;
    }
}
