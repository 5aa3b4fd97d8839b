//! Card and amount checks for the payment connector: [`CardData`] (a card as the platform posts
//! it, held only in zeroizing strings), the Luhn check ([`luhn_valid`], the one implementation
//! in the crate — redaction uses it too), brand and expiry, the [`CardSummary`] that is all
//! anyone may keep, and the parsing of amounts ([`parse_amount_cents`]) and currency codes
//! ([`normalize_currency`]).
//!
//! This module owns what a well-formed card and amount are. It must not do I/O, read the clock
//! (callers pass `now`), or decide whether a payment is allowed — the connector compares the
//! amount with the pending payment and the gateway charges. No error, `Debug` or `Display` here
//! may contain a card number or a security code: errors carry no digits at all, and `Debug` of a
//! card shows its brand and last four only.

use std::fmt;

use serde::Serialize;
use zeroize::Zeroizing;

/// Fewest digits accepted in a card number.
pub const CARD_NUMBER_MIN_DIGITS: usize = 12;
/// Most digits accepted in a card number (ISO/IEC 7812).
pub const CARD_NUMBER_MAX_DIGITS: usize = 19;
/// The largest amount [`parse_amount_cents`] accepts, in cents (ten million units).
pub const MAX_AMOUNT_CENTS: u64 = 1_000_000_000;

/// Seconds in a day.
const DAY_SECS: u64 = 86_400;

/// The Luhn (mod 10) check: `true` when `digits` is a non-empty run of ASCII digits whose check
/// digit is right. Anything else (separators, letters, an empty string) is `false`.
///
/// ```
/// use voxguard_guard::payment::luhn_valid;
///
/// assert!(luhn_valid("4242424242424242"));
/// assert!(!luhn_valid("4242424242424241"));
/// assert!(!luhn_valid("4242 4242 4242 4242"));
/// ```
pub fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let d = u32::from(b - b'0');
        // Every second digit from the right is doubled; a two-digit result counts its digits.
        sum += if i % 2 == 1 {
            if d > 4 {
                2 * d - 9
            } else {
                2 * d
            }
        } else {
            d
        };
    }
    sum % 10 == 0
}

/// A card network, told by the number's issuer identification prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardBrand {
    /// Prefix 4.
    Visa,
    /// Prefixes 51–55 and 2221–2720.
    Mastercard,
    /// Prefixes 34 and 37.
    Amex,
    /// Prefixes 6011, 644–649 and 65.
    Discover,
    /// Any other prefix.
    Other,
}

impl CardBrand {
    /// The brand of a card number (ASCII digits).
    pub fn of(number: &str) -> Self {
        let prefix = |len: usize| number.get(..len).and_then(|p| p.parse::<u32>().ok());
        if number.starts_with('4') {
            Self::Visa
        } else if matches!(prefix(2), Some(34 | 37)) {
            Self::Amex
        } else if matches!(prefix(2), Some(51..=55)) || matches!(prefix(4), Some(2221..=2720)) {
            Self::Mastercard
        } else if number.starts_with("6011")
            || number.starts_with("65")
            || matches!(prefix(3), Some(644..=649))
        {
            Self::Discover
        } else {
            Self::Other
        }
    }

    /// The brand's stable lowercase name (`visa`, `mastercard`, `amex`, `discover`, `other`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visa => "visa",
            Self::Mastercard => "mastercard",
            Self::Amex => "amex",
            Self::Discover => "discover",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for CardBrand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What may be kept about a card: brand, last four digits and expiry. Nothing else ever is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardSummary {
    /// The card network.
    pub brand: CardBrand,
    /// The last four digits of the number.
    pub last4: String,
    /// Expiry month, 1–12.
    pub exp_month: u8,
    /// Expiry year, four digits.
    pub exp_year: u16,
}

/// Why card data was refused. `Display` never contains a digit, let alone the card's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// The number is not twelve to nineteen digits (spaces and dashes aside).
    #[error("the card number has the wrong length or characters")]
    BadNumber,
    /// The number's check digit is wrong.
    #[error("the card number fails its check digit")]
    LuhnFailed,
    /// The card's expiry month is over.
    #[error("the card has expired")]
    Expired,
    /// The expiry month or year is not a month or a year.
    #[error("the card expiry month or year is invalid")]
    BadExpiry,
    /// The security code is not three or four digits.
    #[error("the card security code must be three or four digits")]
    BadCvv,
}

impl CardError {
    /// A stable machine-readable reason, for error bodies and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadNumber => "card_number_invalid",
            Self::LuhnFailed => "card_luhn_failed",
            Self::Expired => "card_expired",
            Self::BadExpiry => "card_expiry_invalid",
            Self::BadCvv => "card_cvv_invalid",
        }
    }
}

/// Card data as the platform posts it to the payment connector.
///
/// The number, security code and postal code live in zeroizing strings and are wiped when the
/// value is dropped; hold one only for the length of the gateway call. `Debug` shows the brand
/// and last four digits only, and there is no `Clone`, so no copy outlives the original.
///
/// ```
/// use voxguard_guard::payment::{CardBrand, CardData, CardError};
///
/// let card = CardData::new("4242 4242 4242 4242", "123", "12", "30", None).unwrap();
/// assert_eq!(card.number(), "4242424242424242");
/// assert_eq!(card.exp_year(), 2030);
/// assert_eq!(card.summary().brand, CardBrand::Visa);
/// assert!(!format!("{card:?}").contains("4242424242424242"));
///
/// let expired = CardData::new("4242424242424242", "123", "1", "2020", None).unwrap();
/// assert_eq!(expired.check(1_700_000_000), Err(CardError::Expired));
/// ```
pub struct CardData {
    number: Zeroizing<String>,
    cvv: Zeroizing<String>,
    exp_month: u8,
    exp_year: u16,
    postal_code: Option<Zeroizing<String>>,
}

impl CardData {
    /// Card data from the platform's fields, checked for form (not for Luhn or expiry: see
    /// [`check`](Self::check)).
    ///
    /// Surrounding whitespace is ignored in every field. Spaces and dashes inside the number are
    /// dropped; it must then be 12–19 ASCII digits. The month is 1–12 (`"05"` or `"5"`); the year
    /// is two digits (meaning 20xx) or four digits from 2000 to 2099; the security code is 3–4
    /// digits. An empty postal code counts as none.
    ///
    /// # Errors
    ///
    /// [`CardError::BadNumber`], [`CardError::BadExpiry`] or [`CardError::BadCvv`].
    pub fn new(
        number: &str,
        cvv: &str,
        exp_month: &str,
        exp_year: &str,
        postal_code: Option<&str>,
    ) -> Result<Self, CardError> {
        let number = compact_number(number)?;
        let cvv = cvv.trim();
        if !(3..=4).contains(&cvv.len()) || !cvv.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CardError::BadCvv);
        }
        let exp_month = parse_month(exp_month)?;
        let exp_year = parse_year(exp_year)?;
        let postal_code = postal_code
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| Zeroizing::new(p.to_owned()));
        Ok(Self {
            number,
            cvv: Zeroizing::new(cvv.to_owned()),
            exp_month,
            exp_year,
            postal_code,
        })
    }

    /// The card number: ASCII digits only. Hand it to a gateway, nowhere else.
    pub fn number(&self) -> &str {
        &self.number
    }

    /// The security code (CVV/CVC): three or four ASCII digits. Hand it to a gateway only.
    pub fn cvv(&self) -> &str {
        &self.cvv
    }

    /// Expiry month, 1–12.
    pub fn exp_month(&self) -> u8 {
        self.exp_month
    }

    /// Expiry year, four digits.
    pub fn exp_year(&self) -> u16 {
        self.exp_year
    }

    /// The billing postal code, if one was given.
    pub fn postal_code(&self) -> Option<&str> {
        self.postal_code.as_deref().map(String::as_str)
    }

    /// The card's brand.
    pub fn brand(&self) -> CardBrand {
        CardBrand::of(&self.number)
    }

    /// Brand, last four digits and expiry: the only things about this card that may be kept.
    pub fn summary(&self) -> CardSummary {
        CardSummary {
            brand: self.brand(),
            last4: self.last4().to_owned(),
            exp_month: self.exp_month,
            exp_year: self.exp_year,
        }
    }

    /// Whether the card may be charged at `now_unix` (seconds since the unix epoch): the number
    /// passes Luhn and the card has not expired. A card is valid through the last second of
    /// its expiry month, UTC.
    ///
    /// # Errors
    ///
    /// [`CardError::LuhnFailed`], then [`CardError::Expired`].
    pub fn check(&self, now_unix: u64) -> Result<CardSummary, CardError> {
        if !luhn_valid(&self.number) {
            return Err(CardError::LuhnFailed);
        }
        if now_unix >= self.expires_at() {
            return Err(CardError::Expired);
        }
        Ok(self.summary())
    }

    /// The first second (unix) at which the card is expired: midnight UTC at the start of the
    /// month after its expiry month.
    pub fn expires_at(&self) -> u64 {
        let (year, month) = if self.exp_month == 12 {
            (u32::from(self.exp_year) + 1, 1)
        } else {
            (u32::from(self.exp_year), u32::from(self.exp_month) + 1)
        };
        days_from_civil(year, month) * DAY_SECS
    }

    fn last4(&self) -> &str {
        // `new` guarantees at least twelve ASCII digits, so this slice is on char boundaries.
        &self.number[self.number.len() - 4..]
    }
}

impl fmt::Debug for CardData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardData")
            .field("brand", &self.brand())
            .field("last4", &self.last4())
            .finish_non_exhaustive()
    }
}

/// The number without spaces and dashes, in a zeroizing string that never reallocates.
fn compact_number(number: &str) -> Result<Zeroizing<String>, CardError> {
    let number = number.trim();
    let mut digits = Zeroizing::new(String::with_capacity(number.len()));
    for c in number.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' => {}
            _ => return Err(CardError::BadNumber),
        }
    }
    if (CARD_NUMBER_MIN_DIGITS..=CARD_NUMBER_MAX_DIGITS).contains(&digits.len()) {
        Ok(digits)
    } else {
        Err(CardError::BadNumber)
    }
}

fn parse_month(text: &str) -> Result<u8, CardError> {
    let text = text.trim();
    if !(1..=2).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardError::BadExpiry);
    }
    match text.parse::<u8>() {
        Ok(month @ 1..=12) => Ok(month),
        _ => Err(CardError::BadExpiry),
    }
}

fn parse_year(text: &str) -> Result<u16, CardError> {
    let text = text.trim();
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardError::BadExpiry);
    }
    match (text.len(), text.parse::<u16>()) {
        (2, Ok(year)) => Ok(2000 + year),
        (4, Ok(year @ 2000..=2099)) => Ok(year),
        _ => Err(CardError::BadExpiry),
    }
}

/// Days from 1970-01-01 to the first day of `month` of `year` (proleptic Gregorian, years from
/// 1970 on — card expiries are 2000–2100).
fn days_from_civil(year: u32, month: u32) -> u64 {
    // Count from 1 March so the leap day is the year's last; January and February belong to
    // the year before.
    let year = u64::from(if month <= 2 { year - 1 } else { year });
    let month_from_march = u64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5;
    let days_before_year = year * 365 + year / 4 - year / 100 + year / 400;
    // 719_468 days separate 0000-03-01, where this count starts, from 1970-01-01.
    days_before_year + day_of_year - 719_468
}

/// Why an amount or currency was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not a plain decimal: empty, a sign other than minus, an exponent, `NaN`, separators.
    #[error("the amount is not a plain decimal number")]
    Malformed,
    /// Below zero.
    #[error("the amount is negative")]
    Negative,
    /// More than two digits after the decimal point.
    #[error("the amount has more than two decimal places")]
    TooPrecise,
    /// More than [`MAX_AMOUNT_CENTS`].
    #[error("the amount is too large")]
    TooLarge,
    /// Not three ASCII letters.
    #[error("the currency is not a three-letter ISO code")]
    BadCurrency,
}

impl AmountError {
    /// A stable machine-readable reason, for error bodies and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "amount_invalid",
            Self::Negative => "amount_negative",
            Self::TooPrecise => "amount_too_precise",
            Self::TooLarge => "amount_too_large",
            Self::BadCurrency => "currency_invalid",
        }
    }
}

/// An amount as the platform sends it (`"25.00"`, `"12.5"`, `"7"`) in cents.
///
/// The grammar is digits, optionally followed by a point and one or two digits; surrounding
/// whitespace is ignored. Refused: negatives, more than two decimals, exponents, `NaN` and
/// infinities, a leading `+`, thousands separators, and more than [`MAX_AMOUNT_CENTS`].
///
/// ```
/// use voxguard_guard::payment::{format_cents, parse_amount_cents, AmountError};
///
/// assert_eq!(parse_amount_cents("12.5"), Ok(1250));
/// assert_eq!(format_cents(1250), "12.50");
/// assert_eq!(parse_amount_cents("1e3"), Err(AmountError::Malformed));
/// assert_eq!(parse_amount_cents("-1"), Err(AmountError::Negative));
/// ```
///
/// # Errors
///
/// [`AmountError::Malformed`], [`AmountError::Negative`], [`AmountError::TooPrecise`] or
/// [`AmountError::TooLarge`].
pub fn parse_amount_cents(text: &str) -> Result<u64, AmountError> {
    let text = text.trim();
    match text.strip_prefix('-') {
        // A minus sign has no business in an amount, "-0" included; only an otherwise
        // well-formed number is called negative.
        Some(rest) => Err(match parse_unsigned_cents(rest) {
            Err(AmountError::Malformed) => AmountError::Malformed,
            _ => AmountError::Negative,
        }),
        None => parse_unsigned_cents(text),
    }
}

fn parse_unsigned_cents(text: &str) -> Result<u64, AmountError> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !is_digits(whole) || fraction.is_some_and(|f| !is_digits(f)) {
        return Err(AmountError::Malformed);
    }
    let fraction = fraction.unwrap_or("");
    if fraction.len() > 2 {
        return Err(AmountError::TooPrecise);
    }
    let mut cents = 0u64;
    // The whole units' digits, then exactly two decimal places (".5" is 50 cents, ".05" is 5).
    // Each prefix is at most the final value, so stopping at the first one over the limit is
    // both right and overflow-free.
    let padding = &"00"[fraction.len()..];
    for b in whole.bytes().chain(fraction.bytes()).chain(padding.bytes()) {
        cents = cents
            .checked_mul(10)
            .and_then(|c| c.checked_add(u64::from(b - b'0')))
            .filter(|&c| c <= MAX_AMOUNT_CENTS)
            .ok_or(AmountError::TooLarge)?;
    }
    Ok(cents)
}

/// Cents as a decimal with two places: `1250` → `"12.50"`, `7` → `"0.07"`.
pub fn format_cents(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// An ISO 4217 alphabetic currency code, lowercased: three ASCII letters (`"USD"` → `"usd"`).
/// Surrounding whitespace is ignored. Whether the code is assigned is the gateway's business.
///
/// # Errors
///
/// [`AmountError::BadCurrency`].
pub fn normalize_currency(code: &str) -> Result<String, AmountError> {
    let code = code.trim();
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(code.to_ascii_lowercase())
    } else {
        Err(AmountError::BadCurrency)
    }
}

#[cfg(test)]
mod tests;
