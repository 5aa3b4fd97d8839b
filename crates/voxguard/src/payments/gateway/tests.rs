//! Tests of the gateways: the test gateway's cards, ids and idempotency under concurrency,
//! timeouts and cancellation; the Stripe adapter against a fake Stripe started on port 0 that
//! checks the form, the Bearer key and the `Idempotency-Key`, replays stored answers, declines,
//! and sleeps past the client's timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::task::JoinSet;
use url::Url;
use voxguard_guard::payment::CardData;
use voxguard_guard::ManualClock;
use zeroize::Zeroizing;

use super::*;

const VISA: &str = "4242424242424242";
const MASTERCARD: &str = "5555555555554444";
const DECLINED: &str = "4000000000000002";
const NO_FUNDS: &str = "4000000000009995";
/// The fake Stripe echoes this card's number and code in its decline message.
const ECHOED: &str = "4000000000000127";
/// The fake Stripe asks for 3-D Secure on this card.
const NEEDS_3DS: &str = "4000002500003155";
const CVC: &str = "987";
const SECRET: &str = "sk_test_fake_secret_4f1c2d";

fn card(number: &str) -> CardData {
    CardData::new(number, CVC, "12", "2099", Some("94107")).unwrap()
}

fn charge<'a>(key: &'a str, card: &'a CardData) -> ChargeRequest<'a> {
    ChargeRequest {
        idempotency_key: key,
        card,
        amount_cents: 1250,
        currency: "USD",
        description: "Order MUG-01",
    }
}

fn declined(code: &str, message: &str) -> GatewayAnswer {
    GatewayAnswer::Declined {
        code: code.into(),
        message: message.into(),
    }
}

fn unavailable_text(result: Result<GatewayAnswer, GatewayError>) -> String {
    match result {
        Err(GatewayError::Unavailable(text)) => text,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

// ---------------------------------------------------------------- the test gateway

#[tokio::test]
async fn test_gateway_answers_the_test_cards() {
    let gateway = TestGateway::new();
    let (visa, mastercard) = (card(VISA), card(MASTERCARD));
    assert_eq!(
        gateway.charge(&charge("tx-visa", &visa)).await.unwrap(),
        GatewayAnswer::Charged {
            charge_id: "ch_test_e21ef96c13fb6ab0".into()
        }
    );
    assert_eq!(
        gateway.charge(&charge("tx-mc", &mastercard)).await.unwrap(),
        GatewayAnswer::Charged {
            charge_id: "ch_test_28381185b0028bc3".into()
        }
    );
    assert_eq!(
        gateway
            .charge(&charge("tx-2", &card(DECLINED)))
            .await
            .unwrap(),
        declined("card_declined", "Your card was declined.")
    );
    assert_eq!(
        gateway
            .charge(&charge("tx-3", &card(NO_FUNDS)))
            .await
            .unwrap(),
        declined("insufficient_funds", "Your card has insufficient funds.")
    );
    assert_eq!(
        gateway
            .charge(&charge("tx-4", &card("4242424242424241")))
            .await
            .unwrap(),
        declined("incorrect_number", "Your card number is incorrect.")
    );
    assert_eq!(gateway.charges(), 2, "declines are not charges");
    assert_eq!(gateway.name(), "test");
}

#[tokio::test]
async fn test_gateway_declines_an_expired_card_by_its_clock() {
    // 2031-01-01T00:00:00Z: a card expiring 12/2030 has just expired, 01/2031 has not.
    let clock = Arc::new(ManualClock::new(1_924_992_000));
    let gateway = TestGateway::new().with_clock(clock);
    let expired = CardData::new(VISA, CVC, "12", "2030", None).unwrap();
    let current = CardData::new(VISA, CVC, "1", "2031", None).unwrap();
    assert_eq!(
        gateway.charge(&charge("tx-old", &expired)).await.unwrap(),
        declined("expired_card", "Your card has expired.")
    );
    assert!(matches!(
        gateway.charge(&charge("tx-new", &current)).await.unwrap(),
        GatewayAnswer::Charged { .. }
    ));
    assert_eq!(gateway.charges(), 1);
}

#[tokio::test]
async fn test_gateway_replays_the_first_answer_for_a_key() {
    let gateway = TestGateway::new();
    let visa = card(VISA);
    let first = gateway.charge(&charge("tx-1", &visa)).await.unwrap();
    for _ in 0..3 {
        assert_eq!(gateway.charge(&charge("tx-1", &visa)).await.unwrap(), first);
    }
    assert_eq!(gateway.charges(), 1);

    // A decline is replayed too, and never turns into a charge.
    let refused = card(DECLINED);
    let decline = gateway.charge(&charge("tx-d", &refused)).await.unwrap();
    assert_eq!(
        gateway.charge(&charge("tx-d", &refused)).await.unwrap(),
        decline
    );

    // Another key is another payment.
    let second = gateway.charge(&charge("tx-2", &visa)).await.unwrap();
    assert_ne!(second, first);
    assert_eq!(gateway.charges(), 2);
}

#[tokio::test]
async fn test_gateway_refuses_a_key_reused_for_another_request() {
    let gateway = TestGateway::new();
    let visa = card(VISA);
    gateway.charge(&charge("tx-1", &visa)).await.unwrap();
    let dearer = ChargeRequest {
        amount_cents: 99_999,
        ..charge("tx-1", &visa)
    };
    let text = unavailable_text(gateway.charge(&dearer).await);
    assert!(text.contains("different request"), "{text}");
    let other_card = card(MASTERCARD);
    assert!(gateway.charge(&charge("tx-1", &other_card)).await.is_err());
    assert_eq!(gateway.charges(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_charges_with_one_key_charge_once() {
    // The delay keeps the first charge in flight while the other 49 arrive.
    let gateway = Arc::new(TestGateway::new().with_delay(Duration::from_millis(50)));
    let visa = Arc::new(card(VISA));
    let mut tasks = JoinSet::new();
    for _ in 0..50 {
        let (gateway, visa) = (Arc::clone(&gateway), Arc::clone(&visa));
        tasks.spawn(async move { gateway.charge(&charge("tx-race", &visa)).await });
    }
    let answers: Vec<GatewayAnswer> = tasks
        .join_all()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(answers.len(), 50);
    assert!(matches!(answers[0], GatewayAnswer::Charged { .. }));
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(gateway.charges(), 1);
}

#[tokio::test]
async fn a_lost_answer_is_found_by_the_retry_without_a_second_charge() {
    let gateway = TestGateway::new().failing_with_timeout_once();
    let visa = card(VISA);
    assert!(matches!(
        gateway.charge(&charge("tx-1", &visa)).await,
        Err(GatewayError::Timeout)
    ));
    assert_eq!(
        gateway.charges(),
        1,
        "the charge happened; its answer was lost"
    );
    assert_eq!(
        gateway.charge(&charge("tx-1", &visa)).await.unwrap(),
        GatewayAnswer::Charged {
            charge_id: "ch_test_045ef594d81d2f21".into()
        }
    );
    assert_eq!(gateway.charges(), 1);
}

#[tokio::test]
async fn a_caller_that_gives_up_during_the_delay_leaves_nothing_charged() {
    let gateway = TestGateway::new().with_delay(Duration::from_millis(300));
    let visa = card(VISA);
    let gave_up = tokio::time::timeout(
        Duration::from_millis(10),
        gateway.charge(&charge("tx-1", &visa)),
    )
    .await;
    assert!(gave_up.is_err());
    assert_eq!(gateway.charges(), 0);
    assert!(matches!(
        gateway.charge(&charge("tx-1", &visa)).await.unwrap(),
        GatewayAnswer::Charged { .. }
    ));
    assert_eq!(gateway.charges(), 1);
}

#[tokio::test]
async fn test_gateway_tokenizes_once_per_key() {
    let gateway = TestGateway::new();
    let visa = card(VISA);
    let request = TokenizeRequest {
        idempotency_key: "tx-token",
        card: &visa,
    };
    let token = GatewayAnswer::Tokenized {
        token_id: "pm_test_040e1126ec42142b".into(),
    };
    assert_eq!(gateway.tokenize(&request).await.unwrap(), token);
    assert_eq!(gateway.tokenize(&request).await.unwrap(), token);
    assert_eq!((gateway.tokens(), gateway.charges()), (1, 0));

    let refused = card(DECLINED);
    let request = TokenizeRequest {
        idempotency_key: "tx-token-2",
        card: &refused,
    };
    assert_eq!(
        gateway.tokenize(&request).await.unwrap(),
        declined("card_declined", "Your card was declined.")
    );
    // A charge and a tokenization never share an answer, even under one key.
    assert!(matches!(
        gateway.charge(&charge("tx-token", &visa)).await.unwrap(),
        GatewayAnswer::Charged { .. }
    ));
    assert_eq!(gateway.tokens(), 1);
}

#[tokio::test]
async fn requests_no_gateway_could_carry_are_refused_before_anything_happens() {
    let gateway = TestGateway::new();
    let visa = card(VISA);
    let long_key = "k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1);
    for request in [
        charge("", &visa),
        charge(&long_key, &visa),
        charge("tx 1", &visa),
        charge("tx\n1", &visa),
        ChargeRequest {
            amount_cents: 0,
            ..charge("tx-1", &visa)
        },
        ChargeRequest {
            amount_cents: voxguard_guard::payment::MAX_AMOUNT_CENTS + 1,
            ..charge("tx-1", &visa)
        },
        ChargeRequest {
            currency: "US$",
            ..charge("tx-1", &visa)
        },
    ] {
        assert!(gateway.charge(&request).await.is_err(), "{request:?}");
    }
    assert!(gateway
        .tokenize(&TokenizeRequest {
            idempotency_key: "",
            card: &visa
        })
        .await
        .is_err());
    assert_eq!((gateway.charges(), gateway.tokens()), (0, 0));
    // Refusals made no entry: the key still works for a proper request.
    assert!(gateway.charge(&charge("tx-1", &visa)).await.is_ok());
}

#[test]
fn requests_and_errors_never_show_card_data() {
    let visa = card(NO_FUNDS);
    let shown = format!(
        "{:?} {:?}",
        charge("tx-1", &visa),
        TokenizeRequest {
            idempotency_key: "tx-1",
            card: &visa
        }
    );
    assert!(!shown.contains(NO_FUNDS) && !shown.contains(CVC), "{shown}");
    assert!(shown.contains("9995"), "{shown}");
    assert_eq!(
        GatewayError::Timeout.to_string(),
        "the payment gateway did not answer in time"
    );
}

// ---------------------------------------------------------------- a fake Stripe

/// One request the fake received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    idempotency_key: String,
    form: Vec<(String, String)>,
}

/// A stored answer, replayed to a request with the same key and the same form.
struct Stored {
    path: String,
    form: Vec<(String, String)>,
    status: StatusCode,
    body: String,
}

#[derive(Default)]
struct FakeState {
    stored: HashMap<String, Stored>,
    charges: usize,
    methods: usize,
    seen: Vec<Seen>,
    /// Sleep this long after making (and storing) the next answer.
    sleep_once: Option<Duration>,
    /// Answer every request with this status and raw body.
    forced: Option<(StatusCode, String)>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<FakeState>>);

impl Fake {
    /// Start the fake on 127.0.0.1:0; its base URL.
    async fn start() -> (Self, Url) {
        let fake = Self::default();
        let routes = Router::new()
            .route("/v1/payment_intents", post(intents))
            .route("/v1/payment_methods", post(methods))
            .route("/proxy/v1/payment_intents", post(intents));
        let app = routes.with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (fake, Url::parse(&format!("http://{address}")).unwrap())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn charges(&self) -> usize {
        self.state().charges
    }

    fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }
}

async fn intents(
    State(fake): State<Fake>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    handle(fake, uri.path().to_owned(), headers, body, payment_intent).await
}

async fn methods(
    State(fake): State<Fake>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    handle(fake, uri.path().to_owned(), headers, body, payment_method).await
}

fn api_error(status: StatusCode, error: Value) -> (StatusCode, String) {
    (status, json!({ "error": error }).to_string())
}

/// What Stripe does on every call: check the key and the encoding, replay a stored answer for a
/// known idempotency key (or refuse the key if the request differs), else answer and store.
async fn handle(
    fake: Fake,
    path: String,
    headers: HeaderMap,
    body: String,
    answer: fn(&mut FakeState, &Form) -> (StatusCode, String),
) -> (StatusCode, String) {
    let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let bearer = format!("Bearer {SECRET}");
    if get(header::AUTHORIZATION) != Some(bearer.as_str()) {
        return api_error(
            StatusCode::UNAUTHORIZED,
            json!({"type": "invalid_request_error", "message": "Invalid API Key provided"}),
        );
    }
    if get(header::CONTENT_TYPE) != Some("application/x-www-form-urlencoded") {
        return api_error(
            StatusCode::BAD_REQUEST,
            json!({"type": "invalid_request_error", "message": "form encoding expected"}),
        );
    }
    let Some(key) = get(header::HeaderName::from_static("idempotency-key")) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            json!({"type": "invalid_request_error", "message": "this fake wants an Idempotency-Key"}),
        );
    };
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let (sleep, status, body) = {
        let mut state = fake.state();
        state.seen.push(Seen {
            path: path.clone(),
            idempotency_key: key.to_owned(),
            form: form.clone(),
        });
        if let Some(forced) = state.forced.clone() {
            return forced;
        }
        if let Some(stored) = state.stored.get(key) {
            return if stored.path == path && stored.form == form {
                (stored.status, stored.body.clone())
            } else {
                api_error(
                    StatusCode::BAD_REQUEST,
                    json!({"type": "idempotency_error", "message": "Keys for idempotent requests can only be used with the same parameters"}),
                )
            };
        }
        let (status, body) = answer(&mut state, &Form(form.clone()));
        state.stored.insert(
            key.to_owned(),
            Stored {
                path,
                form,
                status,
                body: body.clone(),
            },
        );
        (state.sleep_once.take(), status, body)
    };
    if let Some(sleep) = sleep {
        tokio::time::sleep(sleep).await;
    }
    (status, body)
}

struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The names of required fields that are missing or wrong.
    fn problems(&self, expected: &[(&str, Option<&str>)]) -> Vec<String> {
        expected
            .iter()
            .filter(|(name, value)| match (self.get(name), value) {
                (None, _) => true,
                (Some(got), Some(want)) => got != *want,
                (Some(got), None) => got.is_empty(),
            })
            .map(|(name, _)| (*name).to_owned())
            .collect()
    }
}

fn payment_intent(state: &mut FakeState, form: &Form) -> (StatusCode, String) {
    let problems = form.problems(&[
        ("amount", None),
        ("currency", None),
        ("confirm", Some("true")),
        ("payment_method_types[]", Some("card")),
        ("payment_method_data[type]", Some("card")),
        ("payment_method_data[card][number]", None),
        ("payment_method_data[card][exp_month]", None),
        ("payment_method_data[card][exp_year]", None),
        ("payment_method_data[card][cvc]", None),
    ]);
    let amount = form.get("amount").and_then(|a| a.parse::<u64>().ok());
    if !problems.is_empty() || amount.is_none() {
        return api_error(
            StatusCode::BAD_REQUEST,
            json!({"type": "invalid_request_error", "message": format!("bad fields {problems:?}")}),
        );
    }
    let number = form.get("payment_method_data[card][number]").unwrap_or("");
    let cvc = form.get("payment_method_data[card][cvc]").unwrap_or("");
    let card_error = |code: &str, decline_code: &str, message: String| {
        api_error(
            StatusCode::PAYMENT_REQUIRED,
            json!({"type": "card_error", "code": code, "decline_code": decline_code, "message": message}),
        )
    };
    match number {
        DECLINED => card_error(
            "card_declined",
            "generic_decline",
            "Your card was declined.".into(),
        ),
        NO_FUNDS => card_error(
            "card_declined",
            "insufficient_funds",
            "Your card has insufficient funds.".into(),
        ),
        ECHOED => card_error(
            "incorrect_cvc",
            "incorrect_cvc",
            format!("Code {cvc} is wrong for card {number} (4000 0000 0000 0127)."),
        ),
        NEEDS_3DS => (
            StatusCode::OK,
            json!({"id": "pi_fake_3ds", "object": "payment_intent", "status": "requires_action"})
                .to_string(),
        ),
        _ => {
            state.charges += 1;
            (
                StatusCode::OK,
                json!({
                    "id": format!("pi_fake_{}", state.charges),
                    "object": "payment_intent",
                    "amount": amount,
                    "status": "succeeded",
                })
                .to_string(),
            )
        }
    }
}

fn payment_method(state: &mut FakeState, form: &Form) -> (StatusCode, String) {
    let problems = form.problems(&[
        ("type", Some("card")),
        ("card[number]", None),
        ("card[exp_month]", None),
        ("card[exp_year]", None),
        ("card[cvc]", None),
    ]);
    if !problems.is_empty() {
        return api_error(
            StatusCode::BAD_REQUEST,
            json!({"type": "invalid_request_error", "message": format!("bad fields {problems:?}")}),
        );
    }
    state.methods += 1;
    (
        StatusCode::OK,
        json!({"id": format!("pm_fake_{}", state.methods), "object": "payment_method"}).to_string(),
    )
}

fn stripe(base: &Url, timeout: Duration) -> StripeGateway {
    StripeGateway::new(base.clone(), Zeroizing::new(SECRET.into()), timeout).unwrap()
}

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

// ---------------------------------------------------------------- the Stripe adapter

#[tokio::test]
async fn stripe_charge_sends_the_documented_form_and_headers() {
    let (fake, base) = Fake::start().await;
    let gateway = stripe(&base, Duration::from_secs(10));
    let visa = card(VISA);
    assert_eq!(
        gateway.charge(&charge("tx-1", &visa)).await.unwrap(),
        GatewayAnswer::Charged {
            charge_id: "pi_fake_1".into()
        }
    );
    assert_eq!(gateway.name(), "stripe");
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/payment_intents");
    assert_eq!(seen[0].idempotency_key, "tx-1");
    assert_eq!(
        seen[0].form,
        pairs(&[
            ("amount", "1250"),
            ("currency", "usd"),
            ("confirm", "true"),
            ("description", "Order MUG-01"),
            ("payment_method_types[]", "card"),
            ("payment_method_data[type]", "card"),
            ("payment_method_data[card][number]", VISA),
            ("payment_method_data[card][exp_month]", "12"),
            ("payment_method_data[card][exp_year]", "2099"),
            ("payment_method_data[card][cvc]", CVC),
            (
                "payment_method_data[billing_details][address][postal_code]",
                "94107"
            ),
        ])
    );
}

#[tokio::test]
async fn stripe_replays_answer_the_first_charge() {
    let (fake, base) = Fake::start().await;
    let gateway = stripe(&base, Duration::from_secs(10));
    let visa = card(VISA);
    let first = gateway.charge(&charge("tx-1", &visa)).await.unwrap();
    assert_eq!(gateway.charge(&charge("tx-1", &visa)).await.unwrap(), first);
    assert_eq!(fake.charges(), 1);
    assert!(fake.seen().iter().all(|s| s.idempotency_key == "tx-1"));

    // The same key for a different amount is the gateway's idempotency error, not a charge.
    let dearer = ChargeRequest {
        amount_cents: 5000,
        ..charge("tx-1", &visa)
    };
    let text = unavailable_text(gateway.charge(&dearer).await);
    assert!(text.contains("different request"), "{text}");
    assert_eq!(fake.charges(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_stripe_charges_with_one_key_charge_once() {
    let (fake, base) = Fake::start().await;
    let gateway = Arc::new(stripe(&base, Duration::from_secs(30)));
    let visa = Arc::new(card(VISA));
    let mut tasks = JoinSet::new();
    for _ in 0..50 {
        let (gateway, visa) = (Arc::clone(&gateway), Arc::clone(&visa));
        tasks.spawn(async move { gateway.charge(&charge("tx-race", &visa)).await });
    }
    let answers: Vec<GatewayAnswer> = tasks
        .join_all()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let first = GatewayAnswer::Charged {
        charge_id: "pi_fake_1".into(),
    };
    assert!(answers.iter().all(|a| *a == first), "{answers:?}");
    assert_eq!(
        (answers.len(), fake.charges(), fake.seen().len()),
        (50, 1, 50)
    );
}

#[tokio::test]
async fn stripe_declines_carry_the_code_and_no_card_data() {
    let (fake, base) = Fake::start().await;
    let gateway = stripe(&base, Duration::from_secs(10));
    assert_eq!(
        gateway
            .charge(&charge("tx-1", &card(DECLINED)))
            .await
            .unwrap(),
        declined("card_declined", "Your card was declined.")
    );
    assert_eq!(
        gateway
            .charge(&charge("tx-2", &card(NO_FUNDS)))
            .await
            .unwrap(),
        declined("card_declined", "Your card has insufficient funds.")
    );
    let echoed = gateway
        .charge(&charge("tx-3", &card(ECHOED)))
        .await
        .unwrap();
    let GatewayAnswer::Declined { code, message } = &echoed else {
        panic!("{echoed:?}");
    };
    assert_eq!(code, "incorrect_cvc");
    assert!(
        message.starts_with("Code *** is wrong for card"),
        "{message}"
    );
    assert!(!message.bytes().any(|b| b.is_ascii_digit()), "{message}");
    assert_eq!(
        gateway
            .charge(&charge("tx-4", &card(NEEDS_3DS)))
            .await
            .unwrap(),
        GatewayAnswer::Declined {
            code: "authentication_required".into(),
            message: "The card needs authentication, which a phone payment cannot give.".into(),
        }
    );
    assert_eq!(fake.charges(), 0);
}

#[tokio::test]
async fn stripe_timeout_then_retry_finds_the_one_charge() {
    let (fake, base) = Fake::start().await;
    // The fake makes the charge, then sleeps far past the client's timeout before answering.
    fake.state().sleep_once = Some(Duration::from_secs(30));
    let gateway = stripe(&base, Duration::from_millis(300));
    let visa = card(VISA);
    assert!(matches!(
        gateway.charge(&charge("tx-1", &visa)).await,
        Err(GatewayError::Timeout)
    ));
    assert_eq!(fake.charges(), 1);
    assert_eq!(
        gateway.charge(&charge("tx-1", &visa)).await.unwrap(),
        GatewayAnswer::Charged {
            charge_id: "pi_fake_1".into()
        }
    );
    assert_eq!(fake.charges(), 1);
    assert_eq!(fake.seen().len(), 2);
}

#[tokio::test]
async fn stripe_tokenize_stores_the_card() {
    let (fake, base) = Fake::start().await;
    let gateway = stripe(&base, Duration::from_secs(10));
    let visa = card(VISA);
    let request = TokenizeRequest {
        idempotency_key: "tx-token",
        card: &visa,
    };
    let token = GatewayAnswer::Tokenized {
        token_id: "pm_fake_1".into(),
    };
    assert_eq!(gateway.tokenize(&request).await.unwrap(), token);
    assert_eq!(gateway.tokenize(&request).await.unwrap(), token);
    let seen = fake.seen();
    assert_eq!(seen[0].path, "/v1/payment_methods");
    assert_eq!(seen[0].idempotency_key, "tx-token");
    assert_eq!(
        seen[0].form,
        pairs(&[
            ("type", "card"),
            ("card[number]", VISA),
            ("card[exp_month]", "12"),
            ("card[exp_year]", "2099"),
            ("card[cvc]", CVC),
            ("billing_details[address][postal_code]", "94107"),
        ])
    );
    assert_eq!(fake.state().methods, 1);
}

#[tokio::test]
async fn stripe_failures_are_unavailable_with_the_status_only() {
    let (fake, base) = Fake::start().await;
    let visa = card(VISA);

    let wrong_key = StripeGateway::new(
        base.clone(),
        Zeroizing::new("sk_test_wrong".into()),
        Duration::from_secs(10),
    )
    .unwrap();
    let text = unavailable_text(wrong_key.charge(&charge("tx-1", &visa)).await);
    assert_eq!(text, "HTTP 401");

    let gateway = stripe(&base, Duration::from_secs(10));
    let cases = [
        (
            (StatusCode::INTERNAL_SERVER_ERROR, "oops".to_owned()),
            "HTTP 500",
        ),
        (
            (
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": {"type": "rate_limit_error"}}).to_string(),
            ),
            "HTTP 429",
        ),
        (
            (StatusCode::OK, "not json".to_owned()),
            "the answer is not the expected JSON",
        ),
        (
            (
                StatusCode::OK,
                json!({"id": "pi_<b>", "status": "succeeded"}).to_string(),
            ),
            "the answer has no usable id",
        ),
        (
            (
                StatusCode::OK,
                json!({"id": "pi_1", "status": "processing"}).to_string(),
            ),
            "the payment did not complete",
        ),
        (
            (StatusCode::OK, "x".repeat(100_000)),
            "the answer is too large",
        ),
    ];
    for (i, (forced, expected)) in cases.into_iter().enumerate() {
        fake.state().forced = Some(forced);
        let key = format!("tx-f{i}");
        let result = gateway.charge(&charge(&key, &visa)).await;
        let shown = format!("{result:?}");
        assert!(!shown.contains(SECRET) && !shown.contains(VISA), "{shown}");
        assert_eq!(unavailable_text(result), expected);
    }
    assert_eq!(fake.charges(), 0);

    // Nobody listening: a closed port.
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let nobody = stripe(
        &Url::parse(&format!("http://{closed}")).unwrap(),
        Duration::from_secs(10),
    );
    assert_eq!(
        unavailable_text(nobody.charge(&charge("tx-1", &visa)).await),
        "could not connect"
    );
}

#[tokio::test]
async fn stripe_refuses_bad_requests_before_sending() {
    let (fake, base) = Fake::start().await;
    let gateway = stripe(&base, Duration::from_secs(10));
    let visa = card(VISA);
    assert!(gateway.charge(&charge("", &visa)).await.is_err());
    assert!(gateway
        .charge(&ChargeRequest {
            currency: "dollars",
            ..charge("tx-1", &visa)
        })
        .await
        .is_err());
    assert!(fake.seen().is_empty());
}

#[tokio::test]
async fn stripe_base_url_may_carry_a_path_prefix() {
    let (fake, base) = Fake::start().await;
    for prefix in ["proxy", "proxy/"] {
        let gateway = stripe(&base.join(prefix).unwrap(), Duration::from_secs(10));
        let key = format!("tx-{prefix}");
        assert!(matches!(
            gateway.charge(&charge(&key, &card(VISA))).await.unwrap(),
            GatewayAnswer::Charged { .. }
        ));
    }
    assert!(fake
        .seen()
        .iter()
        .all(|s| s.path == "/proxy/v1/payment_intents"));
}

#[test]
fn stripe_configuration_rules() {
    let key = || Zeroizing::new(SECRET.to_owned());
    let url = |text: &str| Url::parse(text).unwrap();
    let timeout = Duration::from_secs(1);
    for good in [
        "https://api.stripe.com",
        "https://proxy.example/stripe/",
        "http://127.0.0.1:12111",
        "http://localhost:12111",
        "http://[::1]:12111",
    ] {
        assert!(
            StripeGateway::new(url(good), key(), timeout).is_ok(),
            "{good}"
        );
    }
    for bad in [
        "http://api.stripe.com",
        "http://10.0.0.1",
        "ftp://127.0.0.1",
        "https://user:pass@api.stripe.com",
        "https://api.stripe.com/?x=1",
        "https://api.stripe.com/#f",
        "unix:/run/stripe.sock",
    ] {
        assert!(
            matches!(
                StripeGateway::new(url(bad), key(), timeout),
                Err(StripeConfigError::BadBaseUrl(_))
            ),
            "{bad}"
        );
    }
    for bad_key in ["", "sk_test with space", "sk_test\n"] {
        assert!(matches!(
            StripeGateway::new(
                url("https://api.stripe.com"),
                Zeroizing::new(bad_key.into()),
                timeout
            ),
            Err(StripeConfigError::BadSecretKey)
        ));
    }
}

#[test]
fn stripe_from_the_environment() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    assert!(matches!(
        StripeGateway::from_vars(vars(&[])),
        Err(StripeConfigError::MissingSecretKey)
    ));
    let gateway =
        StripeGateway::from_vars(vars(&[("VOXGUARD_STRIPE_SECRET_KEY", SECRET)])).unwrap();
    let shown = format!("{gateway:?}");
    assert!(shown.contains("https://api.stripe.com/"), "{shown}");
    assert!(
        !shown.contains(SECRET) && !shown.contains("4f1c2d"),
        "{shown}"
    );

    let gateway = StripeGateway::from_vars(vars(&[
        ("VOXGUARD_STRIPE_SECRET_KEY", SECRET),
        ("VOXGUARD_STRIPE_API_BASE", "http://127.0.0.1:12111"),
    ]))
    .unwrap();
    assert!(format!("{gateway:?}").contains("127.0.0.1:12111"));
    assert!(matches!(
        StripeGateway::from_vars(vars(&[
            ("VOXGUARD_STRIPE_SECRET_KEY", SECRET),
            ("VOXGUARD_STRIPE_API_BASE", "not a url"),
        ])),
        Err(StripeConfigError::BadBaseUrl(_))
    ));
    let missing = StripeConfigError::MissingSecretKey.to_string();
    assert_eq!(missing, "VOXGUARD_STRIPE_SECRET_KEY is not set");
}
