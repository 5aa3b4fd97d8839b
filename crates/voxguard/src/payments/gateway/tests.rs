//! Tests of the gateways: the test gateway's cards, ids and idempotency under concurrency,
//! timeouts and cancellation.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use voxguard_guard::payment::CardData;
use voxguard_guard::ManualClock;

use super::*;

const VISA: &str = "4242424242424242";
const MASTERCARD: &str = "5555555555554444";
const DECLINED: &str = "4000000000000002";
const NO_FUNDS: &str = "4000000000009995";
const CVC: &str = "987";

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
