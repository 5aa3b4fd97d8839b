//! [`TestGateway`]: a deterministic, in-memory gateway for demos and tests, with Stripe's
//! well-known test cards — 4242 4242 4242 4242 is charged, 4000 0000 0000 0002 is declined,
//! 4000 0000 0000 9995 has insufficient funds, and any other valid card is charged.
//!
//! This module owns the test gateway's answers and its idempotency: one answer per key, made
//! once however many requests race for it, replayed identically after. It must not touch the
//! network or keep card data: per key it keeps the answer and what identifies the request
//! (amount, currency, description, brand, last four, expiry) — never the number or the code.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::sync::OnceCell;
use voxguard_guard::payment::{CardData, CardError, CardSummary};
use voxguard_guard::{Clock, SystemClock};

use super::{
    check_charge, check_idempotency_key, ChargeRequest, GatewayAnswer, GatewayError,
    PaymentGateway, TokenizeRequest,
};

/// Stripe's test card that is always declined.
const DECLINED_CARD: &str = "4000000000000002";
/// Stripe's test card that has insufficient funds.
const INSUFFICIENT_FUNDS_CARD: &str = "4000000000009995";

/// Which operation a key belongs to: a charge and a tokenization never share an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Operation {
    Charge,
    Tokenize,
}

/// What identifies a request besides its key: a key reused for a different request is refused,
/// as Stripe does, rather than answered with another payment's result.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    card: CardSummary,
    amount_cents: u64,
    currency: String,
    description: String,
}

/// One key's request and its answer, made once.
struct Entry {
    fingerprint: Fingerprint,
    answer: Arc<OnceCell<GatewayAnswer>>,
}

/// A deterministic in-memory [`PaymentGateway`] for demos and tests.
///
/// | card | charge | tokenize |
/// |---|---|---|
/// | 4242 4242 4242 4242, any other valid card | `Charged`, id `ch_test_` + 16 hex of SHA-256(key) | `Tokenized`, id `pm_test_` + the same hex |
/// | 4000 0000 0000 0002 | `Declined` `card_declined` | `Declined` `card_declined` |
/// | 4000 0000 0000 9995 | `Declined` `insufficient_funds` | `Tokenized` |
/// | bad check digit | `Declined` `incorrect_number` | `Declined` `incorrect_number` |
/// | expired | `Declined` `expired_card` | `Declined` `expired_card` |
///
/// Each idempotency key is answered once: concurrent and later requests with the key get the
/// same answer, and [`charges`](Self::charges) counts a charge once. Every key is kept in memory
/// for the gateway's life, so this is no production gateway.
///
/// ```
/// use voxguard::guard::payment::CardData;
/// use voxguard::payments::gateway::{ChargeRequest, GatewayAnswer, PaymentGateway, TestGateway};
///
/// # async fn run() -> Result<(), voxguard::payments::gateway::GatewayError> {
/// let gateway = TestGateway::new();
/// let card = CardData::new("4242424242424242", "123", "12", "2099", None).expect("well formed");
/// let request = ChargeRequest {
///     idempotency_key: "tx-1",
///     card: &card,
///     amount_cents: 1250,
///     currency: "usd",
///     description: "MUG-01",
/// };
/// let first = gateway.charge(&request).await?;
/// assert!(matches!(first, GatewayAnswer::Charged { .. }));
/// assert_eq!(gateway.charge(&request).await?, first);
/// assert_eq!(gateway.charges(), 1);
/// # Ok(()) }
/// ```
pub struct TestGateway {
    clock: Arc<dyn Clock>,
    delay: Duration,
    timeout_once: AtomicBool,
    entries: Mutex<HashMap<(Operation, String), Entry>>,
    charges: AtomicUsize,
    tokens: AtomicUsize,
}

impl Default for TestGateway {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for TestGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestGateway")
            .field("delay", &self.delay)
            .field("charges", &self.charges())
            .field("tokens", &self.tokens())
            .finish_non_exhaustive()
    }
}

impl TestGateway {
    /// A gateway that answers at once and reads the system clock for expiry.
    pub fn new() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            delay: Duration::ZERO,
            timeout_once: AtomicBool::new(false),
            entries: Mutex::new(HashMap::new()),
            charges: AtomicUsize::new(0),
            tokens: AtomicUsize::new(0),
        }
    }

    /// Take `delay` to make each answer (once per key; replays wait for the first answer, then
    /// return at once). A caller that gives up during the delay leaves nothing charged.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The first answer this gateway makes is lost: the charge (or token) is made, but the
    /// caller gets [`GatewayError::Timeout`]. A retry with the same key then gets the answer
    /// that was made — which is how a test proves a timeout never leads to a second charge.
    pub fn failing_with_timeout_once(self) -> Self {
        self.timeout_once.store(true, Ordering::SeqCst);
        self
    }

    /// Read the time (for card expiry) from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How many distinct charges were made (declines and replays not counted).
    pub fn charges(&self) -> usize {
        self.charges.load(Ordering::SeqCst)
    }

    /// How many distinct cards were stored.
    pub fn tokens(&self) -> usize {
        self.tokens.load(Ordering::SeqCst)
    }

    /// The answer cell for `key`, created with `fingerprint` if new; an error when the key
    /// was used for a different request.
    fn entry(
        &self,
        operation: Operation,
        key: &str,
        fingerprint: Fingerprint,
    ) -> Result<Arc<OnceCell<GatewayAnswer>>, GatewayError> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries
            .entry((operation, key.to_owned()))
            .or_insert_with(|| Entry {
                fingerprint: fingerprint.clone(),
                answer: Arc::new(OnceCell::new()),
            });
        if entry.fingerprint != fingerprint {
            return Err(GatewayError::Unavailable(
                "the idempotency key was used for a different request".into(),
            ));
        }
        Ok(Arc::clone(&entry.answer))
    }

    /// The answer for `key`: made by `decide` once (after the configured delay), replayed after.
    async fn answer(
        &self,
        operation: Operation,
        key: &str,
        fingerprint: Fingerprint,
        decide: impl FnOnce() -> GatewayAnswer,
    ) -> Result<GatewayAnswer, GatewayError> {
        let cell = self.entry(operation, key, fingerprint)?;
        let mut made_here = false;
        let made = &mut made_here;
        let answer = cell
            .get_or_init(|| async move {
                // A caller cancelled during this sleep leaves the cell empty: nothing was made,
                // and the next request with the key makes the answer.
                if !self.delay.is_zero() {
                    tokio::time::sleep(self.delay).await;
                }
                let answer = decide();
                match answer {
                    GatewayAnswer::Charged { .. } => self.charges.fetch_add(1, Ordering::SeqCst),
                    GatewayAnswer::Tokenized { .. } => self.tokens.fetch_add(1, Ordering::SeqCst),
                    GatewayAnswer::Declined { .. } => 0,
                };
                *made = true;
                answer
            })
            .await
            .clone();
        if made_here && self.timeout_once.swap(false, Ordering::SeqCst) {
            return Err(GatewayError::Timeout);
        }
        Ok(answer)
    }

    /// A decline for a card that fails its checks at the gateway's time, or `None`.
    fn card_problem(&self, card: &CardData) -> Option<GatewayAnswer> {
        match card.check(self.clock.now_unix()) {
            Ok(_) => None,
            Err(CardError::Expired) => Some(declined("expired_card", "Your card has expired.")),
            Err(_) => Some(declined(
                "incorrect_number",
                "Your card number is incorrect.",
            )),
        }
    }
}

#[async_trait::async_trait]
impl PaymentGateway for TestGateway {
    async fn charge(&self, request: &ChargeRequest<'_>) -> Result<GatewayAnswer, GatewayError> {
        let currency = check_charge(request)?;
        let fingerprint = Fingerprint {
            card: request.card.summary(),
            amount_cents: request.amount_cents,
            currency,
            description: request.description.to_owned(),
        };
        let key = request.idempotency_key;
        self.answer(Operation::Charge, key, fingerprint, || {
            if let Some(problem) = self.card_problem(request.card) {
                return problem;
            }
            match request.card.number() {
                DECLINED_CARD => declined("card_declined", "Your card was declined."),
                INSUFFICIENT_FUNDS_CARD => {
                    declined("insufficient_funds", "Your card has insufficient funds.")
                }
                _ => GatewayAnswer::Charged {
                    charge_id: format!("ch_test_{}", key_hex(key)),
                },
            }
        })
        .await
    }

    async fn tokenize(&self, request: &TokenizeRequest<'_>) -> Result<GatewayAnswer, GatewayError> {
        check_idempotency_key(request.idempotency_key)?;
        let fingerprint = Fingerprint {
            card: request.card.summary(),
            amount_cents: 0,
            currency: String::new(),
            description: String::new(),
        };
        let key = request.idempotency_key;
        self.answer(Operation::Tokenize, key, fingerprint, || {
            if let Some(problem) = self.card_problem(request.card) {
                return problem;
            }
            match request.card.number() {
                DECLINED_CARD => declined("card_declined", "Your card was declined."),
                _ => GatewayAnswer::Tokenized {
                    token_id: format!("pm_test_{}", key_hex(key)),
                },
            }
        })
        .await
    }

    fn name(&self) -> &'static str {
        "test"
    }
}

fn declined(code: &str, message: &str) -> GatewayAnswer {
    GatewayAnswer::Declined {
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

/// The first 8 bytes of SHA-256(`key`) as 16 lowercase hex characters.
fn key_hex(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest[..8]
        .iter()
        .fold(String::with_capacity(16), |mut hex, b| {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{b:02x}");
            hex
        })
}
