//! [`StripeGateway`]: an adapter for a Stripe-compatible HTTP API. A charge is a form-encoded
//! `POST {base}/v1/payment_intents` with `confirm=true`; storing a card is `POST
//! {base}/v1/payment_methods`. Each carries the secret key as a Bearer token and the request's
//! idempotency key in the `Idempotency-Key` header, so a retry after a timeout returns the first
//! charge instead of making a second one.
//!
//! This module owns the wire format of those two calls and the mapping of every answer — a
//! success, a card error, an HTTP failure, a timeout — onto [`GatewayAnswer`] and
//! [`GatewayError`]. It must not let the secret key reach a `Debug`, a log or an error, and it
//! must not echo card data: decline messages from the gateway lose their digits, errors name an
//! HTTP status or a fixed phrase only, and nothing here logs a request body.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use url::{Host, Url};
use zeroize::Zeroizing;

use super::{
    check_charge, check_idempotency_key, ChargeRequest, GatewayAnswer, GatewayError,
    PaymentGateway, TokenizeRequest,
};

/// Where Stripe's API is when `VOXGUARD_STRIPE_API_BASE` is not set.
pub const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com";
/// How long [`StripeGateway::from_env`] waits for an answer, body included.
pub const DEFAULT_STRIPE_TIMEOUT: Duration = Duration::from_secs(20);

/// The environment variable holding the secret key.
const SECRET_KEY_VAR: &str = "VOXGUARD_STRIPE_SECRET_KEY";
/// The environment variable holding the API base URL.
const API_BASE_VAR: &str = "VOXGUARD_STRIPE_API_BASE";
/// Most bytes read from an answer; Stripe's are a few kilobytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Most characters kept of a decline message, and of a decline code.
const MAX_MESSAGE_CHARS: usize = 200;
const MAX_CODE_CHARS: usize = 64;
/// Most characters in an id the gateway returns.
const MAX_ID_CHARS: usize = 255;

/// Why a [`StripeGateway`] could not be configured. `Display` never shows the key.
#[derive(Debug, thiserror::Error)]
pub enum StripeConfigError {
    /// `VOXGUARD_STRIPE_SECRET_KEY` is not set.
    #[error("VOXGUARD_STRIPE_SECRET_KEY is not set")]
    MissingSecretKey,
    /// The secret key is empty or has characters an HTTP header cannot carry.
    #[error("the Stripe secret key is empty or not printable ASCII")]
    BadSecretKey,
    /// The API base URL is unusable; the text says why.
    #[error("the Stripe API base URL is unusable: {0}")]
    BadBaseUrl(&'static str),
    /// The HTTP client could not be built (no TLS backend).
    #[error("the HTTP client for the payment gateway could not be built")]
    Client(#[source] reqwest::Error),
}

/// A [`PaymentGateway`] speaking a Stripe-compatible HTTP API.
///
/// A charge creates and confirms a PaymentIntent from the card (`payment_method_types[]=card`,
/// so no redirect-based method is involved and no `return_url` is needed); `succeeded` is
/// [`GatewayAnswer::Charged`] with the PaymentIntent's id, a card error (HTTP 402, or
/// `error.type` `card_error`) is [`GatewayAnswer::Declined`] with `error.code` and the message
/// without its digits, and `requires_action` (3-D Secure, which a phone keypad cannot complete)
/// is declined as `authentication_required`. A timeout is [`GatewayError::Timeout`]; any other
/// answer is [`GatewayError::Unavailable`] with the HTTP status only.
///
/// The secret key is zeroized on drop and never shown by `Debug`. The request body, built by
/// the HTTP client, is not zeroized: it lives in the client's buffers for the length of the
/// call.
pub struct StripeGateway {
    client: reqwest::Client,
    base_url: Url,
    payment_intents: Url,
    payment_methods: Url,
    secret_key: Zeroizing<String>,
    timeout: Duration,
}

impl fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeGateway")
            .field("base_url", &self.base_url.as_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl StripeGateway {
    /// A gateway for the API at `base_url` (`https://api.stripe.com`, or a path prefix on a
    /// proxy) with `secret_key`, giving up on a call after `timeout`.
    ///
    /// The base URL must be `https`, or `http` to a loopback address (a local fake or proxy):
    /// the secret key is never sent in clear across a network. It must carry no credentials,
    /// query or fragment.
    ///
    /// # Errors
    ///
    /// [`StripeConfigError::BadSecretKey`], [`StripeConfigError::BadBaseUrl`] or
    /// [`StripeConfigError::Client`].
    pub fn new(
        base_url: Url,
        secret_key: Zeroizing<String>,
        timeout: Duration,
    ) -> Result<Self, StripeConfigError> {
        if secret_key.is_empty() || !secret_key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(StripeConfigError::BadSecretKey);
        }
        check_base_url(&base_url)?;
        let endpoint = |path: &str| {
            Url::parse(&format!(
                "{}{path}",
                base_url.as_str().trim_end_matches('/')
            ))
            .map_err(|_| StripeConfigError::BadBaseUrl("it cannot be extended with a path"))
        };
        let payment_intents = endpoint("/v1/payment_intents")?;
        let payment_methods = endpoint("/v1/payment_methods")?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // A redirect would carry the card elsewhere; a payment API never needs one.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(StripeConfigError::Client)?;
        Ok(Self {
            client,
            base_url,
            payment_intents,
            payment_methods,
            secret_key,
            timeout,
        })
    }

    /// A gateway configured from the environment: `VOXGUARD_STRIPE_SECRET_KEY` (required) and
    /// `VOXGUARD_STRIPE_API_BASE` (default [`DEFAULT_STRIPE_API_BASE`]), with
    /// [`DEFAULT_STRIPE_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// [`StripeConfigError::MissingSecretKey`] and those of [`new`](Self::new).
    pub fn from_env() -> Result<Self, StripeConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables.
    pub(super) fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, StripeConfigError> {
        let secret_key =
            Zeroizing::new(var(SECRET_KEY_VAR).ok_or(StripeConfigError::MissingSecretKey)?);
        let base = var(API_BASE_VAR).filter(|base| !base.trim().is_empty());
        let base_url = Url::parse(base.as_deref().unwrap_or(DEFAULT_STRIPE_API_BASE).trim())
            .map_err(|_| StripeConfigError::BadBaseUrl("it is not a URL"))?;
        Self::new(base_url, secret_key, DEFAULT_STRIPE_TIMEOUT)
    }

    /// POST `form` to `url` with the key headers; the status and body of the answer.
    async fn post(
        &self,
        url: &Url,
        idempotency_key: &str,
        form: &[(&str, &str)],
    ) -> Result<(StatusCode, Vec<u8>), GatewayError> {
        let mut response = self
            .client
            .post(url.clone())
            .bearer_auth(self.secret_key.as_str())
            .header("Idempotency-Key", idempotency_key)
            .form(form)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(unavailable("the answer is too large"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

#[async_trait::async_trait]
impl PaymentGateway for StripeGateway {
    async fn charge(&self, request: &ChargeRequest<'_>) -> Result<GatewayAnswer, GatewayError> {
        let currency = check_charge(request)?;
        let card = request.card;
        let amount = request.amount_cents.to_string();
        let (exp_month, exp_year) = (card.exp_month().to_string(), card.exp_year().to_string());
        let mut form = vec![
            ("amount", amount.as_str()),
            ("currency", currency.as_str()),
            ("confirm", "true"),
            ("description", request.description),
            ("payment_method_types[]", "card"),
            ("payment_method_data[type]", "card"),
            ("payment_method_data[card][number]", card.number()),
            ("payment_method_data[card][exp_month]", exp_month.as_str()),
            ("payment_method_data[card][exp_year]", exp_year.as_str()),
            ("payment_method_data[card][cvc]", card.cvv()),
        ];
        if let Some(postal_code) = card.postal_code() {
            form.push((
                "payment_method_data[billing_details][address][postal_code]",
                postal_code,
            ));
        }
        let (status, body) = self
            .post(&self.payment_intents, request.idempotency_key, &form)
            .await?;
        if !status.is_success() {
            return failure(status, &body);
        }
        let intent: Object = parse(&body)?;
        match intent.status.as_deref() {
            Some("succeeded") => Ok(GatewayAnswer::Charged {
                charge_id: checked_id(intent.id)?,
            }),
            Some("requires_action") => Ok(GatewayAnswer::Declined {
                code: "authentication_required".into(),
                message: "The card needs authentication, which a phone payment cannot give.".into(),
            }),
            Some("requires_payment_method") => {
                let error = intent.last_payment_error.unwrap_or_default();
                Ok(decline(error))
            }
            _ => Err(unavailable("the payment did not complete")),
        }
    }

    async fn tokenize(&self, request: &TokenizeRequest<'_>) -> Result<GatewayAnswer, GatewayError> {
        check_idempotency_key(request.idempotency_key)?;
        let card = request.card;
        let (exp_month, exp_year) = (card.exp_month().to_string(), card.exp_year().to_string());
        let mut form = vec![
            ("type", "card"),
            ("card[number]", card.number()),
            ("card[exp_month]", exp_month.as_str()),
            ("card[exp_year]", exp_year.as_str()),
            ("card[cvc]", card.cvv()),
        ];
        if let Some(postal_code) = card.postal_code() {
            form.push(("billing_details[address][postal_code]", postal_code));
        }
        let (status, body) = self
            .post(&self.payment_methods, request.idempotency_key, &form)
            .await?;
        if !status.is_success() {
            return failure(status, &body);
        }
        let method: Object = parse(&body)?;
        Ok(GatewayAnswer::Tokenized {
            token_id: checked_id(method.id)?,
        })
    }

    fn name(&self) -> &'static str {
        "stripe"
    }
}

/// The fields read from a PaymentIntent or PaymentMethod.
#[derive(Deserialize)]
struct Object {
    id: Option<String>,
    status: Option<String>,
    last_payment_error: Option<ApiError>,
}

/// `{"error": {...}}`, the body of a failed call.
#[derive(Deserialize)]
struct ErrorBody {
    error: ApiError,
}

/// The fields read from an API error.
#[derive(Deserialize, Default)]
struct ApiError {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
}

fn unavailable(why: &str) -> GatewayError {
    GatewayError::Unavailable(why.to_owned())
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    serde_json::from_slice(body).map_err(|_| unavailable("the answer is not the expected JSON"))
}

/// A non-2xx answer: a decline for a card error, `Unavailable` with the status otherwise.
fn failure(status: StatusCode, body: &[u8]) -> Result<GatewayAnswer, GatewayError> {
    let error = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let kind = error.as_ref().and_then(|e| e.kind.as_deref());
    if status == StatusCode::PAYMENT_REQUIRED || kind == Some("card_error") {
        return Ok(decline(error.unwrap_or_default()));
    }
    if kind == Some("idempotency_error") {
        return Err(unavailable(
            "the idempotency key was used for a different request",
        ));
    }
    Err(GatewayError::Unavailable(format!(
        "HTTP {}",
        status.as_u16()
    )))
}

/// A decline from an API error: its code (made safe) and its message without digits.
fn decline(error: ApiError) -> GatewayAnswer {
    let code: String = error
        .code
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(MAX_CODE_CHARS)
        .collect::<String>()
        .to_ascii_lowercase();
    let message = error.message.map(|m| scrub_message(&m)).unwrap_or_default();
    GatewayAnswer::Declined {
        code: if code.is_empty() {
            "card_declined".into()
        } else {
            code
        },
        message: if message.is_empty() {
            "The card was declined.".into()
        } else {
            message
        },
    }
}

/// A gateway's message made safe to keep: every ASCII digit becomes `*` (a message may echo
/// the number or the code, in any grouping, and card data is only ever ASCII digits), control
/// characters go, and it is clipped.
fn scrub_message(message: &str) -> String {
    let scrubbed: String = message
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c.is_ascii_digit() { '*' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect();
    scrubbed.trim().to_owned()
}

/// A gateway id made safe to keep and log: 1–255 of `[A-Za-z0-9_]`.
fn checked_id(id: Option<String>) -> Result<String, GatewayError> {
    match id {
        Some(id)
            if !id.is_empty()
                && id.len() <= MAX_ID_CHARS
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            Ok(id)
        }
        _ => Err(unavailable("the answer has no usable id")),
    }
}

/// A transport failure as a [`GatewayError`], without the client's text (it names the URL).
fn transport_error(error: reqwest::Error) -> GatewayError {
    if error.is_timeout() {
        GatewayError::Timeout
    } else if error.is_connect() {
        unavailable("could not connect")
    } else {
        unavailable("the call failed")
    }
}

/// The rules for the base URL: https (or http to loopback), no credentials, query or fragment.
fn check_base_url(url: &Url) -> Result<(), StripeConfigError> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(StripeConfigError::BadBaseUrl("it carries credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(StripeConfigError::BadBaseUrl("it has a query or fragment"));
    }
    let loopback = match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => return Err(StripeConfigError::BadBaseUrl("it has no host")),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(StripeConfigError::BadBaseUrl(
            "plain http is allowed to loopback only",
        )),
        _ => Err(StripeConfigError::BadBaseUrl("the scheme is not https")),
    }
}
