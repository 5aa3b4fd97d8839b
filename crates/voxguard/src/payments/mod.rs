//! Payments: the `pay` flow done right — the amount comes from server state, the card goes
//! from the platform to the payment connector and on to a gateway, and only brand, last four,
//! expiry and the gateway's id are ever kept.
//!
//! This module owns what a payment *is* on the server: the [`PaymentRequest`] a tool makes
//! (`CallContext::request_payment`), the pending payment kept in the call's server-side session
//! (amount, currency, description — the LLM never supplies them), the outcome the connector
//! leaves there for `CallContext::payment_outcome`, the session keys they live under, and the
//! gateways (`gateway`). The connector endpoint itself is `pipeline::pay`. It must not let a
//! card number or CVV reach a log line, an audit event, a record, an error body or a metric
//! label, and must never take an amount from the LLM.

pub mod gateway;

use serde::{Deserialize, Serialize};
use voxguard_guard::payment::{format_cents, normalize_currency, AmountError};
use voxguard_swml::{Pay, TokenType};

/// The function name connector tokens are minted for (never a tool's name: tools cannot
/// start with `__`).
pub const PAY_FUNCTION: &str = "__pay";

/// How long a requested payment can be collected: 15 minutes.
pub const PAYMENT_WINDOW_SECS: u64 = 15 * 60;

/// The largest amount one payment may request: $1,000,000.00 (in cents).
pub const MAX_PAYMENT_CENTS: u64 = 100_000_000;

/// A payment a tool asks the platform to collect. The amount, currency and description come
/// from the tool's own (server-side) state — a cart, an invoice — never from the LLM's
/// arguments: a caller can talk a model into any amount.
#[derive(Clone)]
pub struct PaymentRequest {
    pub(crate) amount_cents: u64,
    pub(crate) currency: String,
    pub(crate) description: String,
    pub(crate) reusable: bool,
    pub(crate) customize: Option<std::sync::Arc<dyn Fn(Pay) -> Pay + Send + Sync>>,
}

impl std::fmt::Debug for PaymentRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentRequest")
            .field("amount_cents", &self.amount_cents)
            .field("currency", &self.currency)
            .field("reusable", &self.reusable)
            .finish_non_exhaustive()
    }
}

/// Why a payment cannot be requested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentRequestError {
    /// Zero, or over [`MAX_PAYMENT_CENTS`].
    #[error("a payment amount must be between 1 cent and {MAX_PAYMENT_CENTS} cents")]
    Amount,
    /// Not an ISO 4217 alphabetic code.
    #[error("the currency must be a three-letter ISO 4217 code")]
    Currency(#[from] AmountError),
}

impl PaymentRequest {
    /// Charge `amount_cents` of `currency` (`"usd"`) for `description`.
    pub fn new(
        amount_cents: u64,
        currency: &str,
        description: impl Into<String>,
    ) -> Result<Self, PaymentRequestError> {
        if amount_cents == 0 || amount_cents > MAX_PAYMENT_CENTS {
            return Err(PaymentRequestError::Amount);
        }
        Ok(Self {
            amount_cents,
            currency: normalize_currency(currency)?,
            description: description.into().chars().take(200).collect(),
            reusable: false,
            customize: None,
        })
    }

    /// Store the card for later charges (the gateway tokenizes it) instead of charging now.
    pub fn reusable(mut self) -> Self {
        self.reusable = true;
        self
    }

    /// Adjust the rendered `pay` verb (prompts, attempts, timeout, …). The connector URL,
    /// amount, currency and description are set by the runtime after this runs.
    pub fn customize(mut self, f: impl Fn(Pay) -> Pay + Send + Sync + 'static) -> Self {
        self.customize = Some(std::sync::Arc::new(f));
        self
    }

    /// The amount in cents.
    pub fn amount_cents(&self) -> u64 {
        self.amount_cents
    }

    /// The `pay` verb for `connector_url`.
    pub(crate) fn verb(&self, connector_url: String, status_url: String) -> Pay {
        let mut pay = Pay::new(String::new());
        if let Some(customize) = &self.customize {
            pay = customize(pay);
        }
        pay.payment_connector_url = connector_url;
        pay.status_url = Some(status_url);
        pay.charge_amount = Some(format_cents(self.amount_cents));
        pay.currency = Some(self.currency.clone());
        pay.description = Some(self.description.clone());
        pay.token_type = Some(if self.reusable {
            TokenType::Reusable
        } else {
            TokenType::OneTime
        });
        pay
    }
}

/// A payment waiting for the platform's connector request, as kept in the call's session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub(crate) id: String,
    pub(crate) amount_cents: u64,
    pub(crate) currency: String,
    pub(crate) description: String,
    pub(crate) reusable: bool,
    pub(crate) expires_at: u64,
}

/// How a payment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The card was charged.
    Charged,
    /// The card was stored (a reusable token).
    Tokenized,
    /// The card or the gateway refused.
    Declined,
}

/// What the connector did with a payment: what `CallContext::payment_outcome` reads, and
/// everything kept about the card (brand, last four, expiry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentOutcome {
    /// The payment's id.
    pub payment_id: String,
    /// How it ended.
    pub status: PaymentStatus,
    /// The gateway's charge id (charged) or token id (tokenized).
    pub gateway_id: Option<String>,
    /// The stable reason of a decline (`card_declined`, `card_luhn_failed`, …).
    pub error_code: Option<String>,
    /// The amount, from server state.
    pub amount_cents: u64,
    /// The currency, from server state.
    pub currency: String,
    /// Card brand (`visa`, …), when a card was read.
    pub brand: Option<String>,
    /// The card's last four digits.
    pub last4: Option<String>,
    /// Expiry month.
    pub exp_month: Option<u8>,
    /// Expiry year.
    pub exp_year: Option<u16>,
}

/// Session key of the pending payment `id`.
pub(crate) fn pending_key(id: &str) -> String {
    format!("__vg.pay.{id}")
}

/// Session key whose presence means nobody is charging payment `id` right now (taken
/// atomically by the request that charges).
pub(crate) fn open_key(id: &str) -> String {
    format!("__vg.pay_open.{id}")
}

/// Session key of payment `id`'s final outcome (set once it is charged or tokenized).
pub(crate) fn done_key(id: &str) -> String {
    format!("__vg.pay_done.{id}")
}

/// Session key of the answer to transaction `transaction` of payment `id` (the transaction id
/// is the platform's and of any length: it is hashed).
pub(crate) fn answer_key(id: &str, transaction: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(transaction.as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("__vg.pay_txn.{id}.{hex}")
}

/// Session key of payment `id`'s latest decline (what `payment_outcome` reports until a
/// charge succeeds).
pub(crate) fn declined_key(id: &str) -> String {
    format!("__vg.pay_declined.{id}")
}

/// Session key of payment `id`'s gateway attempt number (its idempotency key's suffix).
pub(crate) fn attempt_key(id: &str) -> String {
    format!("__vg.pay_attempt.{id}")
}

/// Session key of payment `id`'s count of declines and failed card checks.
pub(crate) fn failures_key(id: &str) -> String {
    format!("__vg.pay_failures.{id}")
}

/// Session key naming the call's latest payment.
pub(crate) const LAST_PAYMENT_KEY: &str = "__vg.pay_last";

/// A new payment id: `pay_` + 24 lowercase letters.
pub(crate) fn new_payment_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let tail: String = (0..24)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("pay_{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_renders_the_servers_amount_and_refuses_nonsense() {
        let request = PaymentRequest::new(5550, "USD", "Order ORD-1")
            .unwrap()
            .customize(|pay| pay.max_attempts(3).charge_amount("0.01"));
        let pay = request.verb("https://x/pay".into(), "https://x/pay/status".into());
        // The customizer cannot change the amount: the server's is set after it runs.
        assert_eq!(pay.charge_amount.as_deref(), Some("55.50"));
        assert_eq!(pay.currency.as_deref(), Some("usd"));
        assert_eq!(pay.max_attempts, Some(3));
        assert!(PaymentRequest::new(0, "usd", "x").is_err());
        assert!(PaymentRequest::new(1, "dollars", "x").is_err());
        assert!(PaymentRequest::new(MAX_PAYMENT_CENTS + 1, "usd", "x").is_err());
        assert_ne!(answer_key("p", "t1"), answer_key("p", "t2"));
    }
}
