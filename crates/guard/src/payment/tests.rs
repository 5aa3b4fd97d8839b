//! Tests of the card and amount checks: Luhn vectors, brands, form checks, the expiry boundary,
//! amounts and currencies, and that no `Debug` or `Display` shows a number or security code.

use super::*;
use proptest::prelude::*;

/// 2030-12-31T23:59:59Z and the second after it.
const LAST_SECOND_OF_DEC_2030: u64 = 1_924_991_999;
const FIRST_SECOND_OF_2031: u64 = 1_924_992_000;

fn card(number: &str) -> CardData {
    CardData::new(number, "123", "12", "2030", Some("94107")).unwrap()
}

#[test]
fn known_luhn_vectors() {
    for valid in [
        "4242424242424242",
        "4000000000000002",
        "4000000000009995",
        "378282246310005",
        "5555555555554444",
        "6011111111111117",
        "2223003122003222",
        "0",
        "18",
    ] {
        assert!(luhn_valid(valid), "{valid} should pass");
    }
    for invalid in [
        "4242424242424241",
        "4000000000000001",
        "378282246310006",
        "5555555555554440",
        "1",
        "",
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "42424242424242a2",
        "٤٢",
    ] {
        assert!(!luhn_valid(invalid), "{invalid:?} should fail");
    }
}

#[test]
fn one_wrong_digit_fails_luhn() {
    let good = "4242424242424242";
    for i in 0..good.len() {
        for d in b'0'..=b'9' {
            let mut bytes = good.as_bytes().to_vec();
            if bytes[i] == d {
                continue;
            }
            bytes[i] = d;
            let changed = String::from_utf8(bytes).unwrap();
            assert!(!luhn_valid(&changed), "{changed} passed");
        }
    }
}

#[test]
fn brands_by_prefix() {
    let cases = [
        ("4242424242424242", CardBrand::Visa),
        ("4000000000000002", CardBrand::Visa),
        ("378282246310005", CardBrand::Amex),
        ("371449635398431", CardBrand::Amex),
        ("5555555555554444", CardBrand::Mastercard),
        ("5105105105105100", CardBrand::Mastercard),
        ("2223003122003222", CardBrand::Mastercard),
        ("2720999999999996", CardBrand::Mastercard),
        ("2721000000000004", CardBrand::Other),
        ("6011111111111117", CardBrand::Discover),
        ("6445644564456445", CardBrand::Discover),
        ("6500000000000002", CardBrand::Discover),
        ("3566002020360505", CardBrand::Other),
        ("5600000000000000", CardBrand::Other),
    ];
    for (number, brand) in cases {
        assert_eq!(CardBrand::of(number), brand, "{number}");
    }
    assert_eq!(
        serde_json::to_value(CardBrand::Mastercard).unwrap(),
        "mastercard"
    );
    assert_eq!(CardBrand::Amex.to_string(), "amex");
}

#[test]
fn new_normalizes_the_fields() {
    let card = CardData::new(
        " 4242 4242-4242 4242 ",
        " 1234 ",
        "05",
        "31",
        Some(" 94107 "),
    )
    .unwrap();
    assert_eq!(card.number(), "4242424242424242");
    assert_eq!(card.cvv(), "1234");
    assert_eq!(card.exp_month(), 5);
    assert_eq!(card.exp_year(), 2031);
    assert_eq!(card.postal_code(), Some("94107"));

    let card = CardData::new("378282246310005", "1234", "9", "2029", Some("  ")).unwrap();
    assert_eq!((card.exp_month(), card.exp_year()), (9, 2029));
    assert_eq!(card.postal_code(), None);
    assert_eq!(
        CardData::new("378282246310005", "123", "9", "29", None)
            .unwrap()
            .postal_code(),
        None
    );
}

#[test]
fn new_refuses_malformed_numbers() {
    for number in [
        "",
        "42424242424",          // 11 digits
        "42424242424242424242", // 20 digits
        "4242.4242.4242.4242",
        "4242424242424242x",
        "４２４２４２４２４２４２４２４２",
        "4242\u{0}424242424242",
    ] {
        assert_eq!(
            CardData::new(number, "123", "12", "30", None).unwrap_err(),
            CardError::BadNumber,
            "{number:?}"
        );
    }
    // Twelve and nineteen digits are the bounds; Luhn is `check`'s business, not `new`'s.
    assert!(CardData::new("424242424242", "123", "12", "30", None).is_ok());
    assert!(CardData::new("4242424242424242424", "123", "12", "30", None).is_ok());
    assert!(CardData::new("4242424242424241", "123", "12", "30", None).is_ok());
}

#[test]
fn new_refuses_bad_expiry_and_cvv() {
    for (month, year) in [
        ("0", "30"),
        ("13", "30"),
        ("", "30"),
        ("1a", "30"),
        ("+1", "30"),
        ("001", "30"),
        ("12", ""),
        ("12", "3"),
        ("12", "030"),
        ("12", "1999"),
        ("12", "2100"),
        ("12", "20300"),
        ("12", "-30"),
    ] {
        assert_eq!(
            CardData::new("4242424242424242", "123", month, year, None).unwrap_err(),
            CardError::BadExpiry,
            "{month:?}/{year:?}"
        );
    }
    for cvv in ["", "12", "12345", "12a", "1 23", "-12"] {
        assert_eq!(
            CardData::new("4242424242424242", cvv, "12", "30", None).unwrap_err(),
            CardError::BadCvv,
            "{cvv:?}"
        );
    }
}

#[test]
fn check_refuses_a_bad_check_digit() {
    assert_eq!(
        card("4242424242424241").check(0),
        Err(CardError::LuhnFailed)
    );
    let summary = card("4242424242424242").check(0).unwrap();
    assert_eq!(
        summary,
        CardSummary {
            brand: CardBrand::Visa,
            last4: "4242".into(),
            exp_month: 12,
            exp_year: 2030,
        }
    );
}

#[test]
fn a_card_is_valid_through_the_end_of_its_expiry_month() {
    let december = card("4242424242424242");
    assert_eq!(december.expires_at(), FIRST_SECOND_OF_2031);
    assert!(december.check(LAST_SECOND_OF_DEC_2030).is_ok());
    assert_eq!(
        december.check(FIRST_SECOND_OF_2031),
        Err(CardError::Expired)
    );

    // February of a leap year ends on the 29th: 2028-02-29T23:59:59Z is still valid.
    let february = CardData::new("4242424242424242", "123", "2", "28", None).unwrap();
    let march_first_2028 = 1_835_481_600;
    assert_eq!(february.expires_at(), march_first_2028);
    assert!(february.check(march_first_2028 - 1).is_ok());
    assert_eq!(february.check(march_first_2028), Err(CardError::Expired));

    // A Luhn failure is reported before expiry.
    let both = CardData::new("4242424242424241", "123", "1", "2020", None).unwrap();
    assert_eq!(both.check(FIRST_SECOND_OF_2031), Err(CardError::LuhnFailed));
}

#[test]
fn expiry_agrees_with_a_day_count() {
    // Count days month by month from 1970 and compare with the closed form for every month.
    let mut days = 0u64;
    let mut year = 1970u32;
    let mut month = 1u32;
    while year < 2100 {
        assert_eq!(days_from_civil(year, month), days, "{year}-{month}");
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        days += match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        (year, month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
    }
}

#[test]
fn debug_and_errors_never_show_the_number_or_cvv() {
    let card = CardData::new("4000 0000 0000 9995", "987", "12", "30", Some("94107")).unwrap();
    let debug = format!("{card:?} {card:#?}");
    for secret in [
        "4000000000009995",
        "4000 0000 0000 9995",
        "987",
        "94107",
        "400000",
    ] {
        assert!(!debug.contains(secret), "{debug}");
    }
    assert!(debug.contains("9995") && debug.contains("Visa"), "{debug}");
    assert!(!format!("{:?}", card.summary()).contains("4000000000009995"));

    for error in [
        CardError::BadNumber,
        CardError::LuhnFailed,
        CardError::Expired,
        CardError::BadExpiry,
        CardError::BadCvv,
    ] {
        let shown = format!("{error} {error:?} {}", error.as_str());
        assert!(!shown.bytes().any(|b| b.is_ascii_digit()), "{shown}");
    }
    for error in [
        AmountError::Malformed,
        AmountError::Negative,
        AmountError::TooPrecise,
        AmountError::TooLarge,
        AmountError::BadCurrency,
    ] {
        let shown = format!("{error} {error:?} {}", error.as_str());
        assert!(!shown.bytes().any(|b| b.is_ascii_digit()), "{shown}");
    }
}

#[test]
fn card_error_reasons_are_stable() {
    assert_eq!(CardError::BadNumber.as_str(), "card_number_invalid");
    assert_eq!(CardError::LuhnFailed.as_str(), "card_luhn_failed");
    assert_eq!(CardError::Expired.as_str(), "card_expired");
    assert_eq!(CardError::BadExpiry.as_str(), "card_expiry_invalid");
    assert_eq!(CardError::BadCvv.as_str(), "card_cvv_invalid");
}

#[test]
fn amounts_in_cents() {
    for (text, cents) in [
        ("25.00", 2500),
        ("12.5", 1250),
        ("7", 700),
        ("0.07", 7),
        ("0", 0),
        ("007.10", 710),
        (" 18.00 ", 1800),
        ("10000000", MAX_AMOUNT_CENTS),
        ("10000000.00", MAX_AMOUNT_CENTS),
        ("9999999.99", MAX_AMOUNT_CENTS - 1),
    ] {
        assert_eq!(parse_amount_cents(text), Ok(cents), "{text:?}");
    }
}

#[test]
fn amounts_refused() {
    for (text, error) in [
        ("", AmountError::Malformed),
        (".", AmountError::Malformed),
        (".5", AmountError::Malformed),
        ("5.", AmountError::Malformed),
        ("+5", AmountError::Malformed),
        ("1e3", AmountError::Malformed),
        ("1E3", AmountError::Malformed),
        ("1.0e2", AmountError::Malformed),
        ("NaN", AmountError::Malformed),
        ("inf", AmountError::Malformed),
        ("1,000.00", AmountError::Malformed),
        ("1 000", AmountError::Malformed),
        ("1.2.3", AmountError::Malformed),
        ("0x10", AmountError::Malformed),
        ("٣", AmountError::Malformed),
        ("-", AmountError::Malformed),
        ("--5", AmountError::Malformed),
        ("-abc", AmountError::Malformed),
        ("-5", AmountError::Negative),
        ("-0", AmountError::Negative),
        ("-0.001", AmountError::Negative),
        ("1.001", AmountError::TooPrecise),
        ("0.125", AmountError::TooPrecise),
        ("10000000.01", AmountError::TooLarge),
        ("10000001", AmountError::TooLarge),
        ("99999999999999999999999999", AmountError::TooLarge),
    ] {
        assert_eq!(parse_amount_cents(text), Err(error), "{text:?}");
    }
}

#[test]
fn cents_formatting() {
    assert_eq!(format_cents(1250), "12.50");
    assert_eq!(format_cents(7), "0.07");
    assert_eq!(format_cents(0), "0.00");
    assert_eq!(format_cents(1800), "18.00");
    assert_eq!(format_cents(MAX_AMOUNT_CENTS), "10000000.00");
}

#[test]
fn currencies() {
    assert_eq!(normalize_currency("USD").as_deref(), Ok("usd"));
    assert_eq!(normalize_currency(" eur ").as_deref(), Ok("eur"));
    for bad in ["", "US", "USDX", "U5D", "us d", "ÜSD", "$"] {
        assert_eq!(
            normalize_currency(bad),
            Err(AmountError::BadCurrency),
            "{bad:?}"
        );
    }
}

proptest! {
    #[test]
    fn formatted_cents_parse_back(cents in 0..=MAX_AMOUNT_CENTS) {
        prop_assert_eq!(parse_amount_cents(&format_cents(cents)), Ok(cents));
    }

    #[test]
    fn a_check_digit_makes_any_number_luhn_valid(body in "[0-9]{11,18}") {
        let valid: Vec<char> = ('0'..='9')
            .filter(|d| luhn_valid(&format!("{body}{d}")))
            .collect();
        prop_assert_eq!(valid.len(), 1, "{}", body);
    }

    #[test]
    fn parsing_never_panics(text in "\\PC{0,24}") {
        let _ = parse_amount_cents(&text);
        let _ = normalize_currency(&text);
        let _ = CardData::new(&text, &text, &text, &text, Some(&text));
    }
}
