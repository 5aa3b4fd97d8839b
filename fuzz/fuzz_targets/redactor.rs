//! Fuzz target: the redactor on arbitrary text (lossy UTF-8) and on whatever parses as JSON,
//! and its one promise checked on fuzzer-placed data: a 16-digit Luhn-valid card number set
//! between separators anywhere in a text never survives `redact_text` or `redact_json`.
//! It owns no redaction rules of its own.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use voxguard_guard::Redactor;

/// Characters that end a digit run (never a digit, letter or `_`, which would make the card
/// part of a longer word or number the redactor rightly reads as something else).
const SEPARATORS: &[&str] = &[
    " ", "\n", "\t", ",", ".", ":", ";", "(", ")", "\"", "'", "=", "#", "/", "-", "[", "]", "{",
    "}", "*", "+", "?", "!", "<", ">", "\u{a0}", "\u{2014}", "\u{3000}",
];

/// A 16-digit Luhn-valid number built from the first 15 digits drawn from `seed`.
fn card(seed: &[u8]) -> String {
    let mut digits: Vec<u8> = (0..15)
        .map(|i| seed.get(i).copied().unwrap_or(7) % 10)
        .collect();
    digits[0] = 3 + digits[0] % 3; // 3, 4 or 5: the card brands the platform takes.
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    digits.push(((10 - sum % 10) % 10) as u8);
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

fuzz_target!(|data: &[u8]| {
    let redactor = Redactor::new();
    let text = String::from_utf8_lossy(data);
    let _ = redactor.redact_text(&text);
    if let Ok(mut value) = serde_json::from_slice::<Value>(data) {
        redactor.redact_json(&mut value);
    }

    // The card check: [sep-before][sep-after][15 seed digits][text...], card placed at a
    // fuzzer-chosen char boundary of the text.
    if data.len() < 17 {
        return;
    }
    let card = card(&data[2..17]);
    let before = SEPARATORS[usize::from(data[0]) % SEPARATORS.len()];
    let after = SEPARATORS[usize::from(data[1]) % SEPARATORS.len()];
    let rest = String::from_utf8_lossy(&data[17..]);
    if rest.contains(card.as_str()) {
        return; // the text already holds these digits, perhaps inside a longer number
    }
    let boundaries: Vec<usize> = rest
        .char_indices()
        .map(|(i, _)| i)
        .chain([rest.len()])
        .collect();
    let at = boundaries[usize::from(data[16]) % boundaries.len()];
    let embedded = format!("{}{before}{card}{after}{}", &rest[..at], &rest[at..]);
    let masked = redactor.redact_text(&embedded);
    assert!(
        !masked.contains(card.as_str()),
        "card {card} survived in {masked:?}"
    );
    let mut value = Value::String(embedded);
    redactor.redact_json(&mut value);
    assert!(!value.to_string().contains(card.as_str()));
});
