//! The payment connector, `POST {route}/pay`, and the platform's payment status events,
//! `POST {route}/pay/status`.
//!
//! **Where a card is charged.** The steps: a token minted for this payment
//! (`payments::PAY_FUNCTION`, bound to call, render and payment id) → the body parsed straight
//! into a zeroizing request → the pending payment from the call's session → amount and
//! currency equal to the server's (`payment_amount_mismatch`, a security event) → an answer
//! already given to this transaction (idempotent) or a payment already charged (a replay) →
//! the card's checks (Luhn, expiry, CVV) → one request at a time charges (the session's
//! `open` key, taken atomically; concurrent retries wait for its answer) → the gateway, with an
//! idempotency key per payment and transaction, so a retry after a timeout never charges
//! twice → the answer kept for retries, the outcome kept for `payment_outcome`, audited with
//! brand, last four and expiry only. It must never log, audit, store or echo a card number or
//! CVV, and every answer has the platform's shape: HTTP 200 with `charge_id`/`token_id`, or a
//! non-200 with `error_code` and `error_message`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use voxguard_guard::payment::{normalize_currency, parse_amount_cents, CardData, CardSummary};
use voxguard_guard::{AuditEvent, AuditKind, Outcome};
use voxguard_server::{Bytes, Reply, RequestInfo};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{session_scope, Pipeline};
use crate::payments::gateway::{ChargeRequest, GatewayAnswer, GatewayError, TokenizeRequest};
use crate::payments::{
    answer_key, attempt_key, declined_key, done_key, failures_key, open_key, pending_key,
    PaymentOutcome, PaymentStatus, Pending, PAY_FUNCTION,
};
use crate::records::RecordKind;

/// How long a retry waits for the request that is charging its payment.
const WAIT_FOR_CHARGE: Duration = Duration::from_secs(20);

/// How often a waiting retry looks for the answer: first after [`FIRST_POLL`], doubling up to
/// this (a charge takes milliseconds with a fast gateway, seconds with a slow one).
const POLL_EVERY: Duration = Duration::from_millis(100);

/// The first wait of a retry for the request that is charging.
const FIRST_POLL: Duration = Duration::from_millis(5);

/// The platform's connector request. Card fields are wiped when it is dropped; it is parsed
/// straight from the body bytes (no JSON tree holds the card).
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct ConnectorRequest {
    #[serde(default, deserialize_with = "text")]
    transaction_id: String,
    #[serde(default, deserialize_with = "text")]
    cardnumber: String,
    #[serde(default, deserialize_with = "text")]
    cvv: String,
    #[serde(default, deserialize_with = "text")]
    expiry_month: String,
    #[serde(default, deserialize_with = "text")]
    expiry_year: String,
    #[serde(default, deserialize_with = "text")]
    postal_code: String,
    #[serde(default, rename = "chargeAmount", deserialize_with = "text")]
    charge_amount: String,
    #[serde(default, deserialize_with = "text")]
    currency_code: String,
}

/// A field the platform may send as a string or a number, as text.
fn text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        S(String),
        N(serde_json::Number),
        Null(()),
    }
    Ok(match Text::deserialize(deserializer)? {
        Text::S(s) => s,
        Text::N(n) => n.to_string(),
        Text::Null(()) => String::new(),
    })
}

/// A connector answer in the platform's shape.
fn answer(
    status: u16,
    charge_id: Option<&str>,
    token_id: Option<&str>,
    error: Option<(&str, &str)>,
) -> Reply {
    let mut body = json!({
        "charge_id": charge_id,
        "error_code": error.map(|(code, _)| code),
        "error_message": error.map(|(_, message)| message),
    });
    if let Some(token_id) = token_id {
        body["token_id"] = json!(token_id);
    }
    Reply {
        status,
        ..Reply::ok(body)
    }
}

pub(super) fn refused(status: u16, code: &str, message: &str) -> Reply {
    answer(status, None, None, Some((code, message)))
}

/// The name the emergency switch knows payments by: with no tool list it stops them, as it
/// stops every sensitive tool (charging a card is one); with a list, when the list names it.
pub(crate) const PAY_SWITCH_NAME: &str = "__pay";

impl Pipeline {
    /// The connector's refusal while the emergency switch stops payments (audited), else
    /// `None`. Checked after the payment token, before anything is charged or relayed.
    pub(super) async fn payments_stopped(
        &self,
        info: &RequestInfo,
        call_id: &str,
        function: &str,
    ) -> Option<Reply> {
        if !self.emergency.blocks(PAY_SWITCH_NAME, true) {
            return None;
        }
        let mut event = self.pay_event(
            AuditKind::PolicyRefused,
            Outcome::Refused,
            info,
            Some(call_id),
        );
        event.function = Some(function.into());
        event.reason = Some(voxguard_guard::Reason::EmergencyDisabled.as_str().into());
        let _ = self.services.auditor.record(event).await;
        Some(refused(
            503,
            "emergency_disabled",
            "Payments are temporarily unavailable.",
        ))
    }

    /// Handle `POST {route}/pay`.
    pub(crate) async fn pay(&self, info: &RequestInfo, body: Bytes) -> Reply {
        let Some(gateway) = self.agent.inner.payments.clone() else {
            return refused(
                404,
                "payments_not_configured",
                "This agent does not take payments.",
            );
        };
        let now = self.services.clock.now_unix();
        let claims = match info
            .token
            .as_deref()
            .ok_or(voxguard_guard::TokenError::Missing)
            .and_then(|token| self.keys.claims_at(token, PAY_FUNCTION, now))
        {
            Ok(claims) => claims,
            Err(error) => {
                self.pay_token_refused(info, PAY_FUNCTION, error).await;
                return refused(
                    403,
                    "payment_token_invalid",
                    "The payment link is not valid.",
                );
            }
        };
        let Some((render, payment_id)) = claims.session.split_once('|') else {
            return refused(
                403,
                "payment_token_invalid",
                "The payment link is not valid.",
            );
        };
        let call_id = claims.call_id.clone();
        if let Some(stopped) = self.payments_stopped(info, &call_id, PAY_FUNCTION).await {
            return stopped;
        }
        let scope = session_scope(self.agent.name(), &call_id, render);
        // The card goes straight from the body into wiped fields; the body is not kept.
        let request: ConnectorRequest = match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(_) => {
                return refused(
                    400,
                    "invalid_request",
                    "The payment request is not valid JSON.",
                )
            }
        };
        drop(body);
        let store = &self.store;
        let pending: Pending = match store.get(&scope, &pending_key(payment_id), now).await {
            Ok(Some(value)) => match serde_json::from_value(value) {
                Ok(pending) => pending,
                Err(_) => return refused(500, "internal_error", "The payment could not be read."),
            },
            Ok(None) => return refused(404, "payment_not_found", "There is no such payment."),
            Err(_) => {
                return refused(
                    503,
                    "payment-connector-error",
                    "The payment service is unavailable.",
                )
            }
        };
        // The amount and currency are the server's; anything else is tampering.
        let amount = parse_amount_cents(&request.charge_amount).ok();
        let currency = if request.currency_code.is_empty() {
            Some(pending.currency.clone())
        } else {
            normalize_currency(&request.currency_code).ok()
        };
        let books = self.books(info, &call_id, &scope, &pending);
        if amount != Some(pending.amount_cents)
            || currency.as_deref() != Some(pending.currency.as_str())
        {
            tracing::warn!(target: "voxguard::security", event = "payment_amount_mismatch", agent = self.agent.name(), call_id = %call_id, payment = %pending.id, "connector request amount or currency differs from the pending payment; refused");
            books
                .audit(
                    AuditKind::PaymentAmountMismatch,
                    Outcome::Refused,
                    Some("payment_amount_mismatch"),
                    None,
                    None,
                )
                .await;
            return refused(
                400,
                "payment_amount_mismatch",
                "The amount does not match the payment requested.",
            );
        }
        if request.transaction_id.is_empty() || request.transaction_id.len() > 128 {
            return refused(
                400,
                "invalid_request",
                "The payment request has no valid transaction id.",
            );
        }
        let txn_key = answer_key(&pending.id, &request.transaction_id);
        // A charged payment stays charged, even past its window: a retry of the charging
        // transaction gets its answer, any other transaction is a replay.
        if let Some(reply) = books.stored_answer(&txn_key).await {
            return reply;
        }
        if books.get(&done_key(&pending.id)).await.is_some() {
            // The charging request writes its answer before `done`: read it again, or a
            // retry racing that write would be taken for a replay.
            if let Some(reply) = books.stored_answer(&txn_key).await {
                return reply;
            }
            books
                .audit(
                    AuditKind::PaymentDeclined,
                    Outcome::Refused,
                    Some("payment_already_processed"),
                    None,
                    None,
                )
                .await;
            return refused(
                409,
                "payment_already_processed",
                "This payment was already completed.",
            );
        }
        if pending.expires_at <= now {
            return refused(
                410,
                "payment_expired",
                "This payment has expired; please start again.",
            );
        }
        if books.failures().await >= MAX_FAILURES {
            return refused(
                429,
                "too_many_attempts",
                "Too many card attempts for this payment.",
            );
        }
        let checked = CardData::new(
            &request.cardnumber,
            &request.cvv,
            &request.expiry_month,
            &request.expiry_year,
            (!request.postal_code.is_empty()).then_some(request.postal_code.as_str()),
        )
        .and_then(|card| card.check(now).map(|summary| (card, summary)));
        drop(request);
        let (card, summary) = match checked {
            Ok(checked) => checked,
            Err(error) => {
                books.count_failure().await;
                books
                    .audit(
                        AuditKind::PaymentDeclined,
                        Outcome::Refused,
                        Some(error.as_str()),
                        None,
                        None,
                    )
                    .await;
                return refused(402, error.as_str(), "The card details are not valid.");
            }
        };
        // One request charges at a time. Another arriving meanwhile waits for its answer, for
        // the payment to be done, or for it to be open again (after a decline or an error).
        let started = std::time::Instant::now();
        let mut pause = FIRST_POLL;
        loop {
            match self.store.take(&scope, &open_key(&pending.id), now).await {
                Ok(Some(_)) => break,
                Ok(None) => {}
                Err(_) => {
                    return refused(
                        503,
                        "payment-connector-error",
                        "The payment service is unavailable.",
                    )
                }
            }
            if started.elapsed() >= WAIT_FOR_CHARGE {
                return refused(
                    409,
                    "payment_in_progress",
                    "This payment is being processed; please wait.",
                );
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(POLL_EVERY);
            if let Some(reply) = books.stored_answer(&txn_key).await {
                return reply;
            }
            if books.get(&done_key(&pending.id)).await.is_some() {
                if let Some(reply) = books.stored_answer(&txn_key).await {
                    return reply;
                }
                return refused(
                    409,
                    "payment_already_processed",
                    "This payment was already completed.",
                );
            }
        }
        // The gateway's idempotency key is the payment's attempt, not the platform's
        // transaction id: after a timeout (the charge may have happened, its answer lost),
        // every later attempt — whatever its transaction id — asks the gateway under the same
        // key and gets that first charge back. Only a definite decline moves to a new key.
        let attempt = books.attempt().await;
        let idempotency = format!("{}:{attempt}", pending.id);
        // The charge and its bookkeeping run in their own task: a request dropped mid-charge
        // (the request timeout, a platform that hangs up) cannot lose a charge that was made.
        let job = tokio::spawn(async move {
            let outcome = if books.pending.reusable {
                gateway
                    .tokenize(&TokenizeRequest {
                        idempotency_key: &idempotency,
                        card: &card,
                    })
                    .await
            } else {
                gateway
                    .charge(&ChargeRequest {
                        idempotency_key: &idempotency,
                        card: &card,
                        amount_cents: books.pending.amount_cents,
                        currency: &books.pending.currency,
                        description: &books.pending.description,
                    })
                    .await
            };
            drop(card);
            books.settle(outcome, &txn_key, &summary, attempt).await
        });
        match job.await {
            Ok(reply) => reply,
            Err(_) => refused(
                500,
                "payment-connector-error",
                "The payment could not be completed.",
            ),
        }
    }

    /// Everything the bookkeeping of one connector request needs, owned (it outlives the request).
    fn books(&self, info: &RequestInfo, call_id: &str, scope: &str, pending: &Pending) -> Books {
        Books {
            store: self.store.clone(),
            services: self.services.clone(),
            agent: self.agent.name().to_string(),
            info: info.clone(),
            call_id: call_id.to_string(),
            scope: scope.to_string(),
            pending: pending.clone(),
        }
    }

    /// Record a payment webhook refused for its token: counted per source and reason, like
    /// every refusal before a token is verified.
    pub(super) async fn pay_token_refused(
        &self,
        info: &RequestInfo,
        function: &str,
        error: voxguard_guard::TokenError,
    ) {
        let mut event = self.pay_event(AuditKind::TokenRefused, Outcome::Refused, info, None);
        event.function = Some(function.into());
        let reason = voxguard_guard::Reason::from(error);
        event.reason = Some(reason.as_str().into());
        // As before aggregation: a refusal whose record is lost is still refused.
        let _ = self
            .services
            .failures
            .refused_unverified(info.client, reason, &event)
            .await;
    }

    /// An audit event about a payment connector request.
    pub(super) fn pay_event(
        &self,
        kind: AuditKind,
        outcome: Outcome,
        info: &RequestInfo,
        call_id: Option<&str>,
    ) -> AuditEvent {
        let mut event = self.services.auditor.event(kind, outcome);
        event.agent = Some(self.agent.name().to_string());
        event.request_id = Some(info.request_id.clone());
        event.call_id = call_id.map(str::to_string);
        event.source = Some(info.client.ip().to_string());
        event
    }

    /// Handle `POST {route}/pay/status`: the platform's status events, audited with any card
    /// number found in them masked and flagged.
    pub(crate) async fn pay_status(&self, info: &RequestInfo, body: Value) -> Reply {
        let now = self.services.clock.now_unix();
        let claims = match info
            .token
            .as_deref()
            .ok_or(voxguard_guard::TokenError::Missing)
            .and_then(|token| self.keys.claims_at(token, PAY_FUNCTION, now))
        {
            Ok(claims) => claims,
            Err(_) => {
                return refused(
                    403,
                    "payment_token_invalid",
                    "The payment link is not valid.",
                )
            }
        };
        let mut redacted = body.clone();
        self.services.auditor.redactor.redact_json(&mut redacted);
        // Flag a *full* card number only: the platform's own masked number
        // (`************4242`) is redacted by its field name, and is no alarm.
        let full_card_seen = holds_card_number(&body);
        if full_card_seen {
            tracing::warn!(target: "voxguard::security", event = "pay_status_card_data", call_id = %claims.call_id, "a payment status event carried unmasked card data; redacted");
        }
        drop(body);
        let mut event =
            self.pay_event(AuditKind::Payment, Outcome::Ok, info, Some(&claims.call_id));
        event.function = Some("pay_status".into());
        event.arguments = Some(json!({
            "status": voxguard_guard::audit::bounded_arguments(
                redacted,
                voxguard_guard::audit::MAX_AUDITED_ARGUMENT_BYTES,
            ),
            "sensitive_data_redacted": full_card_seen,
        }));
        match self.services.auditor.record(event).await {
            Ok(()) => Reply::ok(json!({ "response": "Status received." })),
            Err(_) => refused(
                503,
                "audit_unavailable",
                "The status could not be recorded.",
            ),
        }
    }
}

/// Whether any string or number in `value` holds a full card number: a run of 13 to 19
/// digits (single spaces or dashes between them allowed) that passes the Luhn check.
fn holds_card_number(value: &Value) -> bool {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        let found = match value {
            Value::String(text) => text_holds_card_number(text),
            Value::Number(number) => text_holds_card_number(&number.to_string()),
            Value::Array(items) => {
                stack.extend(items);
                false
            }
            Value::Object(map) => {
                stack.extend(map.values());
                map.keys().any(|key| text_holds_card_number(key))
            }
            Value::Null | Value::Bool(_) => false,
        };
        if found {
            return true;
        }
    }
    false
}

/// Whether `text` holds a Luhn-valid run of 13 to 19 digits (separators dropped), as the
/// redactor finds card numbers in text.
fn text_holds_card_number(text: &str) -> bool {
    use voxguard_guard::payment::luhn_valid;
    let check = |digits: &str| (13..=19).contains(&digits.len()) && luhn_valid(digits);
    let mut digits = zeroize::Zeroizing::new(String::new());
    let mut last_was_separator = false;
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            last_was_separator = false;
        } else if (ch == ' ' || ch == '-') && !digits.is_empty() && !last_was_separator {
            last_was_separator = true;
        } else {
            if check(&digits) {
                return true;
            }
            digits.clear();
            last_was_separator = false;
        }
    }
    check(&digits)
}

/// The most card attempts (declines and failed checks) one payment takes before it closes:
/// the connector is not a card-testing oracle.
const MAX_FAILURES: u32 = 5;

/// The bookkeeping of one connector request: the session it reads and writes, and the audit
/// events and records it leaves. Owned, so that the charge's task can outlive the request.
struct Books {
    store: std::sync::Arc<dyn voxguard_store::SessionStore>,
    services: std::sync::Arc<crate::services::Services>,
    agent: String,
    info: RequestInfo,
    call_id: String,
    scope: String,
    pending: Pending,
}

impl Books {
    fn now(&self) -> u64 {
        self.services.clock.now_unix()
    }

    async fn get(&self, key: &str) -> Option<Value> {
        self.store.get(&self.scope, key, self.now()).await.ok()?
    }

    async fn set(&self, key: &str, value: &Value) {
        if let Err(error) = self.store.set(&self.scope, key, value, self.now()).await {
            tracing::error!(%error, payment = %self.pending.id, "payment state could not be written");
        }
    }

    /// Declines and failed card checks so far.
    async fn failures(&self) -> u32 {
        self.get(&failures_key(&self.pending.id))
            .await
            .and_then(|v| v.as_u64())
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn count_failure(&self) {
        let next = self.failures().await.saturating_add(1);
        self.set(&failures_key(&self.pending.id), &json!(next))
            .await;
    }

    /// The gateway attempt the next charge is made under.
    async fn attempt(&self) -> u64 {
        self.get(&attempt_key(&self.pending.id))
            .await
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    }

    /// The kept answer of a charging transaction, in the connector's shape.
    async fn stored_answer(&self, txn_key: &str) -> Option<Reply> {
        let outcome: PaymentOutcome = serde_json::from_value(self.get(txn_key).await?).ok()?;
        Some(match outcome.status {
            PaymentStatus::Charged => answer(200, outcome.gateway_id.as_deref(), None, None),
            PaymentStatus::Tokenized => answer(200, None, outcome.gateway_id.as_deref(), None),
            PaymentStatus::Declined => refused(
                402,
                outcome.error_code.as_deref().unwrap_or("card_declined"),
                "The card was declined.",
            ),
        })
    }

    /// Record the gateway's answer and give the connector's. A charge or token is kept for
    /// the transaction's retries and as the payment's outcome; a decline is kept as the
    /// latest decline (`payment_outcome`), moves the payment to a new gateway attempt and
    /// reopens it for another card (up to [`MAX_FAILURES`]); an error reopens it under the
    /// same attempt, so the retry asks the gateway for the charge it may have made.
    async fn settle(
        self,
        outcome: Result<GatewayAnswer, GatewayError>,
        txn_key: &str,
        summary: &CardSummary,
        attempt: u64,
    ) -> Reply {
        let id = self.pending.id.clone();
        let (status, gateway_id, error_code) = match outcome {
            Ok(GatewayAnswer::Charged { charge_id }) => {
                (PaymentStatus::Charged, Some(charge_id), None)
            }
            Ok(GatewayAnswer::Tokenized { token_id }) => {
                (PaymentStatus::Tokenized, Some(token_id), None)
            }
            Ok(GatewayAnswer::Declined { code, message: _ }) => {
                (PaymentStatus::Declined, None, Some(code))
            }
            Err(error) => {
                self.set(&open_key(&id), &json!(true)).await;
                let reason = match error {
                    GatewayError::Timeout => "gateway_timeout",
                    _ => "gateway_unavailable",
                };
                self.audit(
                    AuditKind::PaymentError,
                    Outcome::Failed,
                    Some(reason),
                    Some(summary),
                    None,
                )
                .await;
                return refused(
                    502,
                    "payment-connector-error",
                    "The payment service did not answer; please try again.",
                );
            }
        };
        let outcome = PaymentOutcome {
            payment_id: id.clone(),
            status,
            gateway_id: gateway_id.clone(),
            error_code: error_code.clone(),
            amount_cents: self.pending.amount_cents,
            currency: self.pending.currency.clone(),
            brand: Some(summary.brand.as_str().to_string()),
            last4: Some(summary.last4.clone()),
            exp_month: Some(summary.exp_month),
            exp_year: Some(summary.exp_year),
        };
        let value = serde_json::to_value(&outcome).unwrap_or(Value::Null);
        if status == PaymentStatus::Declined {
            self.set(&declined_key(&id), &value).await;
            self.set(&attempt_key(&id), &json!(attempt + 1)).await;
            self.count_failure().await;
            if self.failures().await < MAX_FAILURES {
                self.set(&open_key(&id), &json!(true)).await;
            }
        } else {
            self.set(txn_key, &value).await;
            self.set(&done_key(&id), &value).await;
        }
        let (kind, audited) = match status {
            PaymentStatus::Declined => (AuditKind::PaymentDeclined, Outcome::Refused),
            _ => (AuditKind::PaymentCharged, Outcome::Ok),
        };
        self.audit(
            kind,
            audited,
            error_code.as_deref(),
            Some(summary),
            gateway_id.as_deref(),
        )
        .await;
        if let Some(records) = &self.services.records {
            let subject = self
                .get(crate::context::SUBJECT_KEY)
                .await
                .and_then(|v| v.as_str().map(str::to_string));
            if let Err(error) = records
                .store(
                    &self.agent,
                    &self.call_id,
                    subject.as_deref(),
                    RecordKind::Payment,
                    &value,
                )
                .await
            {
                tracing::error!(%error, "payment record could not be stored");
            }
        }
        match status {
            PaymentStatus::Charged => answer(200, gateway_id.as_deref(), None, None),
            PaymentStatus::Tokenized => answer(200, None, gateway_id.as_deref(), None),
            PaymentStatus::Declined => refused(
                402,
                error_code.as_deref().unwrap_or("card_declined"),
                "The card was declined.",
            ),
        }
    }

    /// Write a payment event: amount and currency from server state, the card as brand, last
    /// four and expiry, the gateway's id. If the trail cannot be written the answer still
    /// goes out — money may already have moved — and the failure is logged.
    async fn audit(
        &self,
        kind: AuditKind,
        outcome: Outcome,
        reason: Option<&str>,
        summary: Option<&CardSummary>,
        gateway_id: Option<&str>,
    ) {
        let auditor = &self.services.auditor;
        let mut event = auditor.event(kind, outcome);
        event.agent = Some(self.agent.clone());
        event.request_id = Some(self.info.request_id.clone());
        event.call_id = Some(self.call_id.clone());
        event.source = Some(self.info.client.ip().to_string());
        event.function = Some(PAY_FUNCTION.into());
        event.reason = reason.map(str::to_string);
        event.record = Some(self.pending.id.clone());
        event.arguments = Some(json!({
            "amount_cents": self.pending.amount_cents,
            "currency": self.pending.currency,
            "brand": summary.map(|s| s.brand.as_str()),
            "last4": summary.map(|s| s.last4.as_str()),
            "exp_month": summary.map(|s| s.exp_month),
            "exp_year": summary.map(|s| s.exp_year),
            "gateway_id": gateway_id,
        }));
        if auditor.record(event).await.is_err() {
            tracing::error!(target: "voxguard::security", payment = %self.pending.id, "a payment audit event could not be written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::holds_card_number;
    use serde_json::json;

    #[test]
    fn only_a_full_card_number_is_flagged() {
        assert!(!holds_card_number(
            &json!({"payment_card_number": "************4242"})
        ));
        assert!(!holds_card_number(
            &json!({"state": "finished", "amount": "37.50", "n": 42})
        ));
        assert!(
            !holds_card_number(&json!({"n": "4242424242424241"})),
            "Luhn fails"
        );
        assert!(holds_card_number(&json!({"p": {"n": "4242424242424242"}})));
        assert!(holds_card_number(&json!([
            "card 4242 4242 4242 4242 entered"
        ])));
        assert!(holds_card_number(&json!({"n": 4242424242424242u64})));
        assert!(holds_card_number(&json!({"4111-1111-1111-1111": true})));
    }
}
