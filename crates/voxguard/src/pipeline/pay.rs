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
    answer_key, done_key, open_key, pending_key, PaymentOutcome, PaymentStatus, Pending,
    PAY_FUNCTION,
};
use crate::records::RecordKind;

/// How long a retry waits for the request that is charging its payment.
const WAIT_FOR_CHARGE: Duration = Duration::from_secs(20);

/// How often a waiting retry looks for the answer.
const POLL_EVERY: Duration = Duration::from_millis(100);

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

fn refused(status: u16, code: &str, message: &str) -> Reply {
    answer(status, None, None, Some((code, message)))
}

impl Pipeline {
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
                let mut event =
                    self.pay_event(AuditKind::TokenRefused, Outcome::Refused, info, None);
                event.function = Some(PAY_FUNCTION.into());
                event.reason = Some(voxguard_guard::Reason::from(error).as_str().into());
                let _ = self.services.auditor.record(event).await;
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
        let trail = PayTrail {
            info,
            call_id: &call_id,
            pending: &pending,
        };
        if pending.expires_at <= now {
            return refused(
                410,
                "payment_expired",
                "This payment has expired; please start again.",
            );
        }
        // The amount and currency are the server's; anything else is tampering.
        let amount = parse_amount_cents(&request.charge_amount).ok();
        let currency = if request.currency_code.is_empty() {
            Some(pending.currency.clone())
        } else {
            normalize_currency(&request.currency_code).ok()
        };
        if amount != Some(pending.amount_cents)
            || currency.as_deref() != Some(pending.currency.as_str())
        {
            tracing::warn!(target: "voxguard::security", event = "payment_amount_mismatch", agent = self.agent.name(), call_id = %call_id, payment = %pending.id, "connector request amount or currency differs from the pending payment; refused");
            trail
                .audit(
                    self,
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
        // A retry of an answered transaction gets the same answer; once paid, another
        // transaction is a replay.
        if let Some(reply) = self.stored_answer(&scope, &txn_key, now).await {
            return reply;
        }
        if let Ok(Some(_)) = store.get(&scope, &done_key(&pending.id), now).await {
            trail
                .audit(
                    self,
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
        let card = match CardData::new(
            &request.cardnumber,
            &request.cvv,
            &request.expiry_month,
            &request.expiry_year,
            (!request.postal_code.is_empty()).then_some(request.postal_code.as_str()),
        )
        .and_then(|card| card.check(now).map(|summary| (card, summary)))
        {
            Ok(checked) => checked,
            Err(error) => {
                trail
                    .audit(
                        self,
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
        drop(request);
        let (card, summary) = card;
        // One request charges at a time; concurrent retries of the same transaction wait for
        // its answer.
        match store.take(&scope, &open_key(&pending.id), now).await {
            Ok(Some(_)) => {}
            Ok(None) => return self.wait_for_answer(&scope, &txn_key).await,
            Err(_) => {
                return refused(
                    503,
                    "payment-connector-error",
                    "The payment service is unavailable.",
                )
            }
        }
        // One key per payment and transaction: retries of a transaction share it (the gateway
        // answers them with the first charge); another card is another transaction.
        let idempotency = format!("{}:{}", pending.id, request_id_of(&txn_key));
        let outcome = if pending.reusable {
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
                    amount_cents: pending.amount_cents,
                    currency: &pending.currency,
                    description: &pending.description,
                })
                .await
        };
        drop(card);
        let reply = match outcome {
            Ok(GatewayAnswer::Charged { charge_id }) => {
                self.finish(
                    &scope,
                    &trail,
                    &txn_key,
                    PaymentStatus::Charged,
                    Some(&charge_id),
                    None,
                    &summary,
                    now,
                )
                .await;
                answer(200, Some(&charge_id), None, None)
            }
            Ok(GatewayAnswer::Tokenized { token_id }) => {
                self.finish(
                    &scope,
                    &trail,
                    &txn_key,
                    PaymentStatus::Tokenized,
                    Some(&token_id),
                    None,
                    &summary,
                    now,
                )
                .await;
                answer(200, None, Some(&token_id), None)
            }
            Ok(GatewayAnswer::Declined { code, message: _ }) => {
                self.finish(
                    &scope,
                    &trail,
                    &txn_key,
                    PaymentStatus::Declined,
                    None,
                    Some(&code),
                    &summary,
                    now,
                )
                .await;
                refused(402, &code, "The card was declined.")
            }
            Err(error) => {
                // Nothing is kept for the transaction: a retry charges again with the same
                // idempotency key, which the gateway answers with the first charge if there was one.
                let _ = store
                    .set(&scope, &open_key(&pending.id), &json!(true), now)
                    .await;
                let reason = match error {
                    GatewayError::Timeout => "gateway_timeout",
                    _ => "gateway_unavailable",
                };
                trail
                    .audit(
                        self,
                        AuditKind::PaymentError,
                        Outcome::Failed,
                        Some(reason),
                        Some(&summary),
                        None,
                    )
                    .await;
                refused(
                    502,
                    "payment-connector-error",
                    "The payment service did not answer; please try again.",
                )
            }
        };
        reply
    }

    /// Keep a finished transaction's answer (for retries), and for a charge or a token the
    /// payment's outcome (for `payment_outcome`); reopen the payment after a decline so the
    /// caller can try another card; audit and record it, card reduced to its summary.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        scope: &str,
        trail: &PayTrail<'_>,
        txn_key: &str,
        status: PaymentStatus,
        gateway_id: Option<&str>,
        error_code: Option<&str>,
        summary: &CardSummary,
        now: u64,
    ) {
        let pending = trail.pending;
        let outcome = PaymentOutcome {
            payment_id: pending.id.clone(),
            status,
            gateway_id: gateway_id.map(str::to_string),
            error_code: error_code.map(str::to_string),
            amount_cents: pending.amount_cents,
            currency: pending.currency.clone(),
            brand: Some(summary.brand.as_str().to_string()),
            last4: Some(summary.last4.clone()),
            exp_month: Some(summary.exp_month),
            exp_year: Some(summary.exp_year),
        };
        let value = serde_json::to_value(&outcome).unwrap_or(Value::Null);
        let store = &self.store;
        let _ = store.set(scope, txn_key, &value, now).await;
        match status {
            PaymentStatus::Declined => {
                let _ = store
                    .set(scope, &open_key(&pending.id), &json!(true), now)
                    .await;
            }
            _ => {
                let _ = store.set(scope, &done_key(&pending.id), &value, now).await;
            }
        }
        let kind = match status {
            PaymentStatus::Declined => AuditKind::PaymentDeclined,
            _ => AuditKind::PaymentCharged,
        };
        let outcome_kind = if status == PaymentStatus::Declined {
            Outcome::Refused
        } else {
            Outcome::Ok
        };
        trail
            .audit(
                self,
                kind,
                outcome_kind,
                error_code,
                Some(summary),
                gateway_id,
            )
            .await;
        if let Some(records) = &self.services.records {
            let subject = store
                .get(scope, crate::context::SUBJECT_KEY, now)
                .await
                .ok()
                .flatten()
                .and_then(|v| v.as_str().map(str::to_string));
            if let Err(error) = records
                .store(
                    self.agent.name(),
                    trail.call_id,
                    subject.as_deref(),
                    RecordKind::Payment,
                    &value,
                )
                .await
            {
                tracing::error!(%error, "payment record could not be stored");
            }
        }
    }

    /// The kept answer of a transaction, in the connector's shape.
    async fn stored_answer(&self, scope: &str, txn_key: &str, now: u64) -> Option<Reply> {
        let value = self.store.get(scope, txn_key, now).await.ok()??;
        let outcome: PaymentOutcome = serde_json::from_value(value).ok()?;
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

    /// A retry arriving while another request charges its payment: wait for that answer.
    async fn wait_for_answer(&self, scope: &str, txn_key: &str) -> Reply {
        let started = std::time::Instant::now();
        while started.elapsed() < WAIT_FOR_CHARGE {
            tokio::time::sleep(POLL_EVERY).await;
            let now = self.services.clock.now_unix();
            if let Some(reply) = self.stored_answer(scope, txn_key, now).await {
                return reply;
            }
        }
        refused(
            409,
            "payment_in_progress",
            "This payment is being processed; please wait.",
        )
    }

    /// An audit event about a payment connector request.
    fn pay_event(
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

/// The hashed-transaction part of an answer key, reused in the gateway idempotency key.
fn request_id_of(txn_key: &str) -> String {
    txn_key.rsplit('.').next().unwrap_or_default().to_string()
}

/// What every audit event of one connector request shares.
struct PayTrail<'a> {
    info: &'a RequestInfo,
    call_id: &'a str,
    pending: &'a Pending,
}

impl PayTrail<'_> {
    /// Write a payment event: amount and currency from server state, the card as brand, last
    /// four and expiry, the gateway's id. If the trail cannot be written the answer still
    /// goes out — money may already have moved — and the failure is logged.
    async fn audit(
        &self,
        pipeline: &Pipeline,
        kind: AuditKind,
        outcome: Outcome,
        reason: Option<&str>,
        summary: Option<&CardSummary>,
        gateway_id: Option<&str>,
    ) {
        let mut event = pipeline.pay_event(kind, outcome, self.info, Some(self.call_id));
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
        if pipeline.services.auditor.record(event).await.is_err() {
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
