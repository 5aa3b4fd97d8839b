//! Micro-benchmarks of the per-request security work (issue 5, item 4), in time per operation:
//!
//! - `token/mint`, `token/verify`: [`KeyRing::mint_at`] and [`KeyRing::verify_at`] of a
//!   function token at a fixed time, so the token never expires during the run (target:
//!   verify ≤ 2 µs).
//! - `validate/valid`, `validate/invalid`: [`ArgValidator::validate`] of the bank agent's
//!   `transfer_funds` arguments (`amount`: number, `exclusiveMinimum` 0, `x-currency`;
//!   `to_account`: `^[0-9]{10}$`), once accepted and once refused.
//! - `redact/transcript_2k`: [`Redactor::redact_text`] of a ≈2 KB call transcript with a card
//!   number, a spoken PIN, an e-mail address and a phone number, reported in bytes per second
//!   (target: ≥ 50 MB/s).
//! - `input_guard/screen`: [`InputGuard::screen`] (normalization, length and injection checks)
//!   of a small arguments object.
//! - `injection/<input>/<size>`: [`InjectionDetector::detect`] of clean but adversarial text
//!   (near-miss phrases at every word, unclosed tags, base64 runs, CJK) at 1 KB, 16 KB and
//!   256 KB, in bytes per second: the rate stays flat as the input grows (linear time).
//!
//! Run with `cargo bench -p voxguard-guard --bench guard`; figures go to `BENCHMARKS.md`.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Value};
use voxguard_guard::{ArgValidator, InjectionDetector, InputGuard, KeyRing, Redactor, TokenKey};

/// A fixed "now" (unix seconds), well inside the token's lifetime.
const NOW: u64 = 1_700_000_000;
const CALL_ID: &str = "b2f7c1d4-6a1e-4c2b-9f0a-3e5d7c9b1a20";
const FUNCTION: &str = "transfer_funds";

fn keys() -> KeyRing {
    KeyRing::new(TokenKey::from_bytes(vec![0x42; 32]).expect("a 32-byte token key"))
}

fn tokens(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("token");
    group.bench_function("mint", |b| {
        b.iter(|| keys.mint_at(black_box(CALL_ID), black_box(FUNCTION), black_box(NOW)));
    });
    let token = keys.mint_at(CALL_ID, FUNCTION, NOW);
    keys.verify_at(&token, CALL_ID, FUNCTION, NOW + 1)
        .expect("a fresh token verifies");
    group.bench_function("verify", |b| {
        b.iter(|| {
            keys.verify_at(
                black_box(&token),
                black_box(CALL_ID),
                black_box(FUNCTION),
                black_box(NOW + 1),
            )
        });
    });
    group.finish();
}

/// The bank agent's `transfer_funds` schema, as schemars renders it.
fn transfer_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "TransferFunds",
        "type": "object",
        "properties": {
            "amount": {
                "description": "Amount in dollars, more than 0, at most two decimal places.",
                "type": "number",
                "format": "double",
                "exclusiveMinimum": 0,
                "x-currency": true
            },
            "to_account": {
                "description": "Destination account number, exactly 10 digits.",
                "type": "string",
                "pattern": "^[0-9]{10}$"
            }
        },
        "required": ["amount", "to_account"]
    })
}

fn validation(c: &mut Criterion) {
    let validator = ArgValidator::new(&transfer_schema()).expect("a valid schema");
    let valid = json!({"amount": 150.25, "to_account": "9876543210"});
    let invalid = json!({"amount": 150.255, "to_account": "98765-4321"});
    validator.validate(&valid).expect("valid arguments pass");
    validator
        .validate(&invalid)
        .expect_err("invalid arguments fail");
    let mut group = c.benchmark_group("validate");
    group.bench_function("valid", |b| {
        b.iter(|| validator.validate(black_box(&valid)))
    });
    group.bench_function("invalid", |b| {
        b.iter(|| validator.validate(black_box(&invalid)));
    });
    group.finish();
}

/// A ≈2 KB transcript of a bank call: mostly ordinary speech, with a card number, a spoken
/// PIN, an e-mail address and a phone number in it.
fn transcript() -> String {
    let mut text = String::from(
        "assistant: Thank you for calling First Example Bank, this is the virtual assistant. \
         How can I help you today?\n\
         user: Hi, I'd like to check my balance and then move some money to my savings account.\n\
         assistant: Of course. Before I can share any account details I need to verify your \
         identity. Could you tell me your four-digit PIN, please?\n\
         user: Sure, my PIN is 8765.\n\
         assistant: Thank you, you're verified. Your checking balance is two thousand five \
         hundred dollars. How much would you like to transfer, and to which account?\n\
         user: Let's do one hundred and fifty dollars to account nine eight seven six five four \
         three two one zero.\n\
         assistant: To confirm: one hundred and fifty dollars to the account ending in three two \
         one zero. Shall I go ahead?\n\
         user: Yes, please. Oh, and the card I used last week, 4111 1111 1111 1111, was \
         declined at a shop, can you look into that?\n\
         assistant: I've completed the transfer. About the declined card, I can open a ticket \
         with our card services team. Where should they contact you?\n\
         user: Email me at jane.doe@example.com or call me back on +1 555 987 6543 after five.\n\
         assistant: Noted. The card services team will reach out within one business day. Is \
         there anything else I can help you with?\n\
         user: No, that's all, thanks.\n",
    );
    while text.len() < 2048 {
        text.push_str(
            "assistant: You're welcome. Thank you for banking with us, and have a good evening. \
             Remember that we will never ask for your full card number by e-mail.\n",
        );
    }
    text
}

fn redaction(c: &mut Criterion) {
    let redactor = Redactor::new();
    let text = transcript();
    let redacted = redactor.redact_text(&text);
    for secret in ["4111 1111 1111 1111", "8765", "jane.doe@example.com"] {
        assert!(!redacted.contains(secret), "{secret} left in: {redacted}");
    }
    let mut group = c.benchmark_group("redact");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("transcript_2k", |b| {
        b.iter(|| redactor.redact_text(black_box(&text)));
    });
    group.finish();
}

fn input_guard(c: &mut Criterion) {
    let guard = InputGuard::new();
    let args = json!({
        "amount": 150.25,
        "to_account": "9876543210",
        "memo": "Rent for March, flat 4B",
    });
    let no_schema_limits = |_: &str| None;
    guard
        .screen(&mut args.clone(), &no_schema_limits)
        .expect("ordinary arguments pass");
    let mut group = c.benchmark_group("input_guard");
    group.bench_function("screen", |b| {
        b.iter_batched_ref(
            || args.clone(),
            |args| guard.screen(args, &no_schema_limits),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// Clean text built to make the detector work hard: every word starts a phrase that never
/// completes, brackets that never close into a tag, base64 runs that decode to clean text.
fn adversarial(kind: &str, size: usize) -> String {
    let unit = match kind {
        "near_miss" => "ignore all your previous pretend act as from now show me your i am the ",
        "tags" => "<|<[{system ",
        "base64" => "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ= ",
        _ => "请忽略背景噪音我是公司的系统管理员从现在开始",
    };
    unit.repeat(size / unit.len() + 1)
}

fn injection(c: &mut Criterion) {
    let detector = InjectionDetector::default();
    let mut group = c.benchmark_group("injection");
    for kind in ["near_miss", "tags", "base64", "cjk"] {
        for size in [1 << 10, 1 << 14, 1 << 18] {
            let text = adversarial(kind, size);
            assert_eq!(detector.detect(&text), None, "{kind} must stay clean");
            group.throughput(Throughput::Bytes(text.len() as u64));
            group.bench_function(format!("{kind}/{size}"), |b| {
                b.iter(|| detector.detect(black_box(&text)));
            });
        }
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = tokens, validation, redaction, input_guard, injection
}
criterion_main!(benches);
