//! Payments: the `pay` flow done right — the amount comes from server state, the card goes
//! from the platform to the payment connector and on to a gateway, and only brand, last four,
//! expiry and the gateway's id are ever kept.
//!
//! This module owns the payment connector and the gateways it charges through. It must not
//! let a card number or CVV reach a log line, an audit event, a record, an error body or a
//! metric label, and must never take an amount from the LLM.

pub mod gateway;
