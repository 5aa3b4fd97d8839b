//! Payment gateways: what the payment connector charges a card through. [`PaymentGateway`] is
//! the seam — charge an amount, or store a card and get a token — with two implementations:
//! [`TestGateway`], deterministic and in memory, for demos and tests, and [`StripeGateway`], an
//! adapter for a Stripe-compatible HTTP API — and [`RemoteConnector`] for an agent whose
//! connector runs on another host.
//!
//! This module owns the gateway contract: the request and answer types, the one error type,
//! the idempotency rule (one key, one charge, however many retries) and the checks every
//! gateway makes on a request before it charges. It must not decide what to charge — the
//! amount and currency come from the connector, which takes them from the server-side pending
//! payment, never from the LLM — and it must not keep, log or put in an error anything of a card
//! but what [`CardSummary`](voxguard_guard::payment::CardSummary) holds: a gateway sees the card
//! for the length of one call.

use voxguard_guard::payment::{normalize_currency, CardData, MAX_AMOUNT_CENTS};

mod stripe;
mod test;

pub use stripe::{
    StripeConfigError, StripeGateway, DEFAULT_STRIPE_API_BASE, DEFAULT_STRIPE_TIMEOUT,
};
pub use test::TestGateway;

/// The gateway of an agent whose payment connector runs on another host
/// (`VOXGUARD_SERVE=agent` with `VOXGUARD_PAYMENT_CONNECTOR_URL`): it lets the agent request
/// payments — the amount stays server-side, in the shared state — while this host never sees a
/// card and holds no gateway secret. It never charges: were a card ever posted here, the
/// charge is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoteConnector;

#[async_trait::async_trait]
impl PaymentGateway for RemoteConnector {
    async fn charge(&self, _request: &ChargeRequest<'_>) -> Result<GatewayAnswer, GatewayError> {
        Err(GatewayError::Unavailable(
            "cards are charged on the payment connector's host, not here".into(),
        ))
    }

    async fn tokenize(
        &self,
        _request: &TokenizeRequest<'_>,
    ) -> Result<GatewayAnswer, GatewayError> {
        Err(GatewayError::Unavailable(
            "cards are stored on the payment connector's host, not here".into(),
        ))
    }

    fn name(&self) -> &'static str {
        "remote"
    }
}

/// Longest idempotency key a gateway accepts (Stripe's own limit).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// A payment gateway: charges cards and stores them for later use.
///
/// Both operations are idempotent on the request's `idempotency_key`: a gateway that sees a key
/// again must not charge (or store) again but return the first result. The connector passes the
/// platform's `transaction_id`, so a retried or duplicated connector request charges once. A
/// [`GatewayError::Timeout`] means the charge may or may not have happened; retrying with the
/// same key finds out without charging twice.
#[async_trait::async_trait]
pub trait PaymentGateway: Send + Sync + 'static {
    /// Charge `amount_cents` of `currency` to `card`. `idempotency_key` is the same for every
    /// retry of one payment: a gateway that sees it again must not charge again (it returns the
    /// first result).
    ///
    /// # Errors
    ///
    /// [`GatewayError::Timeout`] when the gateway did not answer in time (the charge may have
    /// happened: retry with the same key), [`GatewayError::Unavailable`] when it could not be
    /// reached, refused the request or answered something unusable. A declined card is not an
    /// error: it is [`GatewayAnswer::Declined`].
    async fn charge(&self, request: &ChargeRequest<'_>) -> Result<GatewayAnswer, GatewayError>;

    /// Store the card for later use (the pay verb's `token_type` "reusable") and return a token
    /// id; the same idempotency rule applies.
    ///
    /// # Errors
    ///
    /// As for [`charge`](Self::charge).
    async fn tokenize(&self, request: &TokenizeRequest<'_>) -> Result<GatewayAnswer, GatewayError>;

    /// A short stable name for logs and audit events (`"test"`, `"stripe"`).
    fn name(&self) -> &'static str;
}

/// One charge: who pays (the card), how much, and the key that makes retries safe.
///
/// `Debug` shows the card's brand and last four only.
#[derive(Debug)]
pub struct ChargeRequest<'a> {
    /// The same for every retry of one payment (the platform's `transaction_id`).
    pub idempotency_key: &'a str,
    /// The card, as the platform posted it.
    pub card: &'a CardData,
    /// The amount in cents (minor units), from the server-side pending payment.
    pub amount_cents: u64,
    /// ISO 4217 code, any case (`"usd"`).
    pub currency: &'a str,
    /// What the payment is for, shown on the merchant's dashboard.
    pub description: &'a str,
}

/// Storing a card for later charges.
///
/// `Debug` shows the card's brand and last four only.
#[derive(Debug)]
pub struct TokenizeRequest<'a> {
    /// The same for every retry of one request (the platform's `transaction_id`).
    pub idempotency_key: &'a str,
    /// The card, as the platform posted it.
    pub card: &'a CardData,
}

/// What a gateway said. Every field is safe to keep and log: ids are the gateway's, codes and
/// messages are checked to carry no card data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayAnswer {
    /// The card was charged; `charge_id` is the gateway's id of the charge.
    Charged {
        /// The gateway's id of the charge.
        charge_id: String,
    },
    /// The card was stored; `token_id` charges it later.
    Tokenized {
        /// The gateway's id of the stored card.
        token_id: String,
    },
    /// The card was refused (declined, insufficient funds, expired, wrong number…).
    Declined {
        /// A short machine-readable reason (`card_declined`, `insufficient_funds`, …).
        code: String,
        /// A human-readable reason, without digits from the card.
        message: String,
    },
}

/// Why a gateway gave no answer. `Display` never contains card data or the gateway's secret.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The gateway did not answer in time; the charge may have happened. Retry with the same
    /// idempotency key.
    #[error("the payment gateway did not answer in time")]
    Timeout,
    /// The gateway could not be reached, refused the request as malformed or unauthorized, or
    /// answered something unusable. The text is a fixed phrase or an HTTP status, never card
    /// data.
    #[error("the payment gateway is unavailable: {0}")]
    Unavailable(String),
}

/// Refuse an idempotency key no gateway could carry: empty, longer than
/// [`MAX_IDEMPOTENCY_KEY_LEN`], or not printable ASCII (it travels in an HTTP header).
fn check_idempotency_key(key: &str) -> Result<(), GatewayError> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(GatewayError::Unavailable(
            "the idempotency key is empty, too long or not printable ASCII".into(),
        ));
    }
    Ok(())
}

/// The checks every gateway makes before a charge; the lowercased currency on success.
fn check_charge(request: &ChargeRequest<'_>) -> Result<String, GatewayError> {
    check_idempotency_key(request.idempotency_key)?;
    if request.amount_cents == 0 || request.amount_cents > MAX_AMOUNT_CENTS {
        return Err(GatewayError::Unavailable(
            "the amount is zero or too large".into(),
        ));
    }
    normalize_currency(request.currency)
        .map_err(|_| GatewayError::Unavailable("the currency is not an ISO 4217 code".into()))
}

#[cfg(test)]
mod tests;
