//! Redaction of adversarial inputs (issue 9, item 1): time per byte must stay flat from 1 KB to
//! 1 MB, i.e. [`Redactor::redact_text`] and [`Redactor::redact_json`] are linear in their input.
//!
//! Each shape is something an unauthenticated caller can put in a path or an argument:
//! `pin:` and `password=` runs (one sensitive name after another, quadratic before the
//! field-name scanner remembered where values end), runs of one-digit groups (`1-1-1-…`, every
//! start a card-number candidate), e-mail addresses, URLs with credentials, a realistic mix, and
//! a JSON object whose keys all redact to one name. Throughput is reported in bytes, so a flat
//! line across sizes is linear time.
//!
//! Run with `cargo bench -p voxguard-guard --bench redact_adversarial -- --warm-up-time 1
//! --measurement-time 3`.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use serde_json::{Map, Value};
use voxguard_guard::Redactor;

const SIZES: &[usize] = &[1 << 10, 10 << 10, 100 << 10, 1 << 20];

/// `unit` repeated to exactly `size` bytes (units are ASCII).
fn fill(unit: &str, size: usize) -> String {
    let mut text = unit.repeat(size / unit.len() + 1);
    text.truncate(size);
    text
}

fn text_shapes(c: &mut Criterion) {
    let redactor = Redactor::new();
    let shapes = [
        ("pin_colon", "pin:"),
        ("password_eq", "password="),
        ("one_digit_groups", "1-"),
        ("emails", "jane@example.com "),
        ("url_credentials", "https://u:p@h/ "),
        (
            "mixed",
            "pin:4321 card 4111 1111 1111 1111 jane@example.com token=abc password is x1 ",
        ),
    ];
    for (name, unit) in shapes {
        let mut group = c.benchmark_group(format!("redact_adversarial/{name}"));
        for &size in SIZES {
            let text = fill(unit, size);
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(BenchmarkId::from_parameter(size), &text, |b, text| {
                b.iter(|| redactor.redact_text(black_box(text)));
            });
        }
        group.finish();
    }
}

fn json_keys(c: &mut Criterion) {
    let redactor = Redactor::new();
    let mut group = c.benchmark_group("redact_adversarial/json_clashing_keys");
    for &size in SIZES {
        // Keys `pin:0`, `pin:1`, … all redact to `pin:[REDACTED]`; about 12 bytes each.
        let value = Value::Object(
            (0..size / 12)
                .map(|i| (format!("pin:{i}"), Value::from(i)))
                .collect::<Map<String, Value>>(),
        );
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &value, |b, value| {
            b.iter_batched(
                || value.clone(),
                |mut value| redactor.redact_json(&mut value),
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = text_shapes, json_keys
}
criterion_main!(benches);
