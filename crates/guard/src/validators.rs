//! Reusable validators for the values voice agents collect most: phone numbers, account and
//! order numbers, dates and money amounts — as plain functions and as tool-schema fragments.
//!
//! This module owns the rules themselves ([`is_e164`], [`is_account_number`],
//! [`is_order_number`], [`is_iso_date`], [`is_currency_amount`]), their regular expressions
//! ([`patterns`]), the names under which [`ArgValidator`](crate::ArgValidator) enforces them in
//! a schema ([`formats`]: `"format": "e164"`, … and the [`CURRENCY_KEYWORD`]
//! `"x-currency": true`), and helpers that return ready-made property schemas ([`e164_schema`],
//! …). How those schemas are rendered for the platform lives in
//! [`validate`](crate::validate). This module must not do I/O, and its checks must not
//! allocate or look at anything but the value they are given.

use serde_json::{Map, Number, Value};

/// Regular expressions (ECMA 262, as JSON-schema `pattern`s) for the string validators. They
/// check the shape only: [`is_iso_date`] also checks that the date exists.
pub mod patterns {
    /// E.164 phone number: `+`, a non-zero digit, then 1 to 14 more digits.
    pub const E164: &str = r"^\+[1-9][0-9]{1,14}$";
    /// Account number: exactly 10 digits.
    pub const ACCOUNT_NUMBER: &str = r"^[0-9]{10}$";
    /// Order number such as `ORD-12345`: 2 to 5 capital letters, a dash, 4 to 10 digits.
    pub const ORDER_NUMBER: &str = r"^[A-Z]{2,5}-[0-9]{4,10}$";
    /// Calendar date `YYYY-MM-DD` (month 01–12, day 01–31).
    pub const ISO_DATE: &str = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";
}

/// Names of the custom `format`s that [`ArgValidator`](crate::ArgValidator) enforces.
pub mod formats {
    /// `"format": "e164"`: [`is_e164`](super::is_e164).
    pub const E164: &str = "e164";
    /// `"format": "account-number"`: [`is_account_number`](super::is_account_number).
    pub const ACCOUNT_NUMBER: &str = "account-number";
    /// `"format": "order-number"`: [`is_order_number`](super::is_order_number).
    pub const ORDER_NUMBER: &str = "order-number";
    /// `"format": "iso-date"`: [`is_iso_date`](super::is_iso_date).
    pub const ISO_DATE: &str = "iso-date";
}

/// The schema keyword that marks a `number`/`integer` property as an amount of money:
/// `"x-currency": true` accepts only [`is_currency_amount`] values.
pub const CURRENCY_KEYWORD: &str = "x-currency";

fn all_ascii_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` is an E.164 phone number: `+`, a digit 1–9, then 1 to 14 more digits (ASCII,
/// no spaces or punctuation).
///
/// ```
/// assert!(voxguard_guard::is_e164("+15551234567"));
/// assert!(!voxguard_guard::is_e164("+1 555 123 4567"));
/// assert!(!voxguard_guard::is_e164("+05551234567"));
/// ```
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len()) && all_ascii_digits(digits) && !digits.starts_with('0')
}

/// Whether `s` is an account number: exactly 10 ASCII digits.
pub fn is_account_number(s: &str) -> bool {
    s.len() == 10 && all_ascii_digits(s)
}

/// Whether `s` is an order number such as `ORD-12345`: 2 to 5 uppercase ASCII letters, a dash,
/// then 4 to 10 ASCII digits.
pub fn is_order_number(s: &str) -> bool {
    let Some((prefix, number)) = s.split_once('-') else {
        return false;
    };
    (2..=5).contains(&prefix.len())
        && prefix.bytes().all(|b| b.is_ascii_uppercase())
        && (4..=10).contains(&number.len())
        && all_ascii_digits(number)
}

/// Whether `s` is a date written `YYYY-MM-DD` that exists in the (proleptic Gregorian)
/// calendar: `2024-02-29` is one, `2023-02-29` and `2024-04-31` are not.
pub fn is_iso_date(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(range)?;
        if !all_ascii_digits(part) {
            return None;
        }
        part.parse().ok()
    };
    let (Some(year), Some(month), Some(day)) = (number(0..4), number(5..7), number(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days_in_month).contains(&day)
}

/// Whether `n` is an amount of money: finite, not negative, and with at most two decimal
/// places. Decimal places are counted on the number's decimal text (`100.1`, `0.07` and `1e2`
/// pass; `1.005` and `1e-3` do not), never with floating-point arithmetic, which cannot
/// represent most cents exactly.
///
/// ```
/// use serde_json::json;
/// use voxguard_guard::is_currency_amount;
///
/// let amount = |v: serde_json::Value| is_currency_amount(v.as_number().unwrap());
/// assert!(amount(json!(19.99)) && amount(json!(0.07)) && amount(json!(150)));
/// assert!(!amount(json!(1.005)) && !amount(json!(-5)));
/// ```
pub fn is_currency_amount(n: &Number) -> bool {
    match n.as_f64() {
        Some(value) if value.is_finite() && value >= 0.0 => {}
        _ => return false,
    }
    decimal_places(&n.to_string()).is_some_and(|places| places <= 2)
}

/// Digits after the decimal point that matter (trailing zeros do not), for the text of a JSON
/// number: `"1.50"` → 1, `"2.5e-3"` → 4, `"1.005e2"` → 1, `"7e3"` → 0.
fn decimal_places(text: &str) -> Option<u64> {
    let text = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    let fraction = match mantissa.split_once('.') {
        Some((_, fraction)) => fraction.trim_end_matches('0'),
        None => "",
    };
    let places = i64::try_from(fraction.len()).ok()?.checked_sub(exponent)?;
    Some(u64::try_from(places.max(0)).unwrap_or(0))
}

fn string_schema(format: &str, pattern: &str, description: &str) -> Value {
    let mut schema = Map::new();
    schema.insert("type".into(), Value::from("string"));
    schema.insert("format".into(), Value::from(format));
    schema.insert("pattern".into(), Value::from(pattern));
    if !description.trim().is_empty() {
        schema.insert("description".into(), Value::from(description));
    }
    Value::Object(schema)
}

/// A property schema for an E.164 phone number (`"format": "e164"` plus its `pattern`).
///
/// ```
/// use serde_json::json;
///
/// assert_eq!(
///     voxguard_guard::e164_schema("Number to text"),
///     json!({"type": "string", "format": "e164", "pattern": "^\\+[1-9][0-9]{1,14}$",
///            "description": "Number to text"})
/// );
/// ```
pub fn e164_schema(description: &str) -> Value {
    string_schema(formats::E164, patterns::E164, description)
}

/// A property schema for a 10-digit account number (`"format": "account-number"`).
pub fn account_number_schema(description: &str) -> Value {
    string_schema(
        formats::ACCOUNT_NUMBER,
        patterns::ACCOUNT_NUMBER,
        description,
    )
}

/// A property schema for an order number such as `ORD-12345` (`"format": "order-number"`).
pub fn order_number_schema(description: &str) -> Value {
    string_schema(formats::ORDER_NUMBER, patterns::ORDER_NUMBER, description)
}

/// A property schema for a calendar date `YYYY-MM-DD` (`"format": "iso-date"`).
pub fn iso_date_schema(description: &str) -> Value {
    string_schema(formats::ISO_DATE, patterns::ISO_DATE, description)
}

/// A property schema for an amount of money: a `number` with `"minimum": 0`,
/// `"x-currency": true` (at most two decimal places) and, when given, `"maximum": max`. A `max`
/// that is not a finite number sets no maximum.
///
/// ```
/// use serde_json::json;
///
/// assert_eq!(
///     voxguard_guard::currency_schema("Amount in dollars", Some(10000.0)),
///     json!({"type": "number", "minimum": 0, "maximum": 10000, "x-currency": true,
///            "description": "Amount in dollars"})
/// );
/// ```
pub fn currency_schema(description: &str, max: Option<f64>) -> Value {
    let mut schema = Map::new();
    schema.insert("type".into(), Value::from("number"));
    schema.insert("minimum".into(), Value::from(0));
    match max {
        // Whole amounts read as such ("at most 10000", not "10000.0").
        Some(max) if max.fract() == 0.0 && max.abs() < 1e15 => {
            schema.insert("maximum".into(), Value::from(max as i64));
        }
        Some(max) => {
            if let Some(max) = Number::from_f64(max) {
                schema.insert("maximum".into(), Value::Number(max));
            }
        }
        None => {}
    }
    schema.insert(CURRENCY_KEYWORD.into(), Value::Bool(true));
    if !description.trim().is_empty() {
        schema.insert("description".into(), Value::from(description));
    }
    Value::Object(schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every pattern agrees with its function on `cases` (ISO dates: on shape only).
    fn check_pattern(pattern: &str, cases: &[(&str, bool)], shape_only: &[&str]) {
        let validator = jsonschema::validator_for(&json!({"type": "string", "pattern": pattern}))
            .expect("pattern compiles");
        for (text, valid) in cases {
            let want = *valid || shape_only.contains(text);
            assert_eq!(
                validator.is_valid(&json!(text)),
                want,
                "{pattern} on {text:?}"
            );
        }
    }

    const E164_CASES: &[(&str, bool)] = &[
        ("+15551234567", true),
        ("+442071838750", true),
        ("+12", true),
        ("+123456789012345", true),
        ("+1234567890123456", false), // 16 digits
        ("+0123456789", false),
        ("+05551234567", false),
        ("15551234567", false),
        ("+1", false),
        ("+", false),
        ("", false),
        ("+1 555 123 4567", false),
        ("+1-555-123-4567", false),
        ("+1555123456a", false),
        ("++15551234567", false),
        ("+١٢٣٤٥٦٧", false), // Arabic-Indic digits
        ("+15551234567\n", false),
    ];

    #[test]
    fn e164() {
        for (text, valid) in E164_CASES {
            assert_eq!(is_e164(text), *valid, "{text:?}");
        }
        check_pattern(patterns::E164, E164_CASES, &[]);
    }

    const ACCOUNT_CASES: &[(&str, bool)] = &[
        ("0123456789", true),
        ("9999999999", true),
        ("123456789", false),
        ("12345678901", false),
        ("12345abcde", false),
        ("１２３４５６７８９０", false),
        ("12345 6789", false),
        ("", false),
    ];

    #[test]
    fn account_number() {
        for (text, valid) in ACCOUNT_CASES {
            assert_eq!(is_account_number(text), *valid, "{text:?}");
        }
        check_pattern(patterns::ACCOUNT_NUMBER, ACCOUNT_CASES, &[]);
    }

    const ORDER_CASES: &[(&str, bool)] = &[
        ("ORD-12345", true),
        ("AB-1234", true),
        ("ABCDE-1234567890", true),
        ("ord-12345", false),
        ("O-12345", false),
        ("ABCDEF-12345", false),
        ("ORD-123", false),
        ("ORD-12345678901", false),
        ("ORD12345", false),
        ("ORD-12a45", false),
        (" ORD-12345", false),
        ("ORD-12345-1", false),
        ("ÖRD-12345", false),
        ("", false),
    ];

    #[test]
    fn order_number() {
        for (text, valid) in ORDER_CASES {
            assert_eq!(is_order_number(text), *valid, "{text:?}");
        }
        check_pattern(patterns::ORDER_NUMBER, ORDER_CASES, &[]);
    }

    const DATE_CASES: &[(&str, bool)] = &[
        ("2024-05-01", true),
        ("2024-12-31", true),
        ("2024-02-29", true),  // leap year
        ("2000-02-29", true),  // divisible by 400
        ("1900-02-29", false), // divisible by 100, not 400
        ("2023-02-29", false),
        ("2023-02-28", true),
        ("2024-04-31", false),
        ("2024-04-30", true),
        ("2024-13-01", false),
        ("2024-00-10", false),
        ("2024-01-00", false),
        ("2024-01-32", false),
        ("2024-1-01", false),
        ("24-01-01", false),
        ("2024/01/01", false),
        ("2024-01-01T00:00:00Z", false),
        ("２０２４-０１-０１", false),
        ("", false),
    ];

    #[test]
    fn iso_date() {
        for (text, valid) in DATE_CASES {
            assert_eq!(is_iso_date(text), *valid, "{text:?}");
        }
        // The pattern checks the shape; the calendar is the function's job.
        check_pattern(
            patterns::ISO_DATE,
            DATE_CASES,
            &["1900-02-29", "2023-02-29", "2024-04-31"],
        );
    }

    #[test]
    fn currency_amount() {
        let number = |text: &str| -> Number { serde_json::from_str(text).expect(text) };
        for text in [
            "0",
            "5",
            "150",
            "0.07",
            "0.1",
            "100.1",
            "19.99",
            "1250.75",
            "1.50",
            "1e3",
            "2.5e1",
            "1.005e3",
            "12345678.91",
            "-0",
            "18446744073709551615",
        ] {
            assert!(is_currency_amount(&number(text)), "{text} should pass");
        }
        for text in [
            "1.005", "0.001", "-1", "-0.01", "1e-7", "19.999", "0.125", "1.23456", "2.5e-2",
        ] {
            assert!(!is_currency_amount(&number(text)), "{text} should fail");
        }
        assert_eq!(decimal_places("1.50"), Some(1));
        assert_eq!(decimal_places("2.5e-3"), Some(4));
        assert_eq!(decimal_places("1.005e2"), Some(1));
        assert_eq!(decimal_places("7e3"), Some(0));
        assert_eq!(decimal_places("1e+2"), Some(0));
    }

    #[test]
    fn schema_helpers() {
        assert_eq!(
            account_number_schema("Account"),
            json!({"type": "string", "format": "account-number",
                   "pattern": patterns::ACCOUNT_NUMBER, "description": "Account"})
        );
        assert_eq!(order_number_schema("")["format"], "order-number");
        assert!(order_number_schema("").get("description").is_none());
        assert_eq!(iso_date_schema("When")["pattern"], patterns::ISO_DATE);
        assert_eq!(
            currency_schema("Tip", None),
            json!({"type": "number", "minimum": 0, "x-currency": true, "description": "Tip"})
        );
        assert!(currency_schema("Tip", Some(f64::NAN))
            .get("maximum")
            .is_none());
        assert!(currency_schema("Tip", Some(f64::INFINITY))
            .get("maximum")
            .is_none());
        assert_eq!(currency_schema("Tip", Some(99.5))["maximum"], json!(99.5));
    }
}
