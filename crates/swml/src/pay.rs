//! The `pay` verb: every field of the official schema's `$defs/Pay`, typed as the schema types it.
//!
//! Owns [`Pay`] and the types of its fields: the custom connector [`PayParameter`]s, the
//! per-step audio [`PayPrompt`]s with their say/play [`PayPromptAction`]s, and the closed value
//! sets the schema lists ([`PayStep`], [`CardType`], [`PayErrorType`], [`TokenType`],
//! [`PostalCode`], [`PayInput`], [`PaymentMethod`]). Counts and flags are numbers and booleans
//! on the wire, never strings: a `"3"` for `max_attempts` fails the official schema, so these
//! types cannot render one. Space-separated lists on the wire (`valid_card_types`, a prompt's
//! `attempts`, `card_type` and `error_type`) are typed lists here, joined when written.
//!
//! It is pure data plus serde. It does not decide the amount to charge, hold card data, or talk
//! to a payment connector; the amount must come from the server (see the payments module of
//! `voxguard`), never from what the AI was told.
//!
//! Reading is tolerant in the crate's usual way (unknown fields are ignored, absent optional
//! fields read as unset) but not loose: a field in a form voxguard does not model, such as a
//! string `max_attempts`, a `${var}` reference in a numeric field, or a word outside the
//! schema's lists, makes the `pay` verb fail to read.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Parameters of `pay`: collect a card by DTMF and post it to a payment connector. The card
/// never reaches the AI, which only ever sees `${pay_result}`.
///
/// ```
/// use voxguard_swml::{CardType, Pay, PayPrompt, PayStep, PostalCode};
///
/// let pay = Pay::new("https://agent.example.com/pay")
///     .charge_amount("12.50")
///     .currency("usd")
///     .max_attempts(3)
///     .security_code(true)
///     .postal_code(PostalCode::Ask)
///     .valid_card_types([CardType::Visa, CardType::Mastercard])
///     .prompt(PayPrompt::new(PayStep::PaymentCardNumber).say("Please key in your card number."));
/// let json = serde_json::to_value(&pay).unwrap();
/// assert_eq!(json["max_attempts"], 3);
/// assert_eq!(json["valid_card_types"], "visa mastercard");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pay {
    /// Where the platform POSTs the gathered payment details; the connector charges the card
    /// and answers with the result.
    pub payment_connector_url: String,
    /// The amount to charge, a decimal number written as a string with no currency sign
    /// (`"29.99"`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub charge_amount: Option<String>,
    /// ISO 4217 code of the amount's currency; the platform assumes `usd` when unset.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub currency: Option<String>,
    /// A free-text description of the payment, passed to the connector.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    /// How the card details are collected; keypad tones are the only method.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub input: Option<PayInput>,
    /// Language of the prompts played to the caller (`en-US` when unset).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub language: Option<String>,
    /// How many times the platform tries to collect the card details (1 when unset).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_attempts: Option<u32>,
    /// The fewest digits the caller must key in for the postal code (0 when unset).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub min_postal_code_length: Option<u32>,
    /// Merchant-defined name/value pairs passed to the connector.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub parameters: Vec<PayParameter>,
    /// The kind of payment; credit cards are the only kind.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payment_method: Option<PaymentMethod>,
    /// Whether to ask for the postal code, or the code itself when it is already known (the
    /// platform asks when unset).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub postal_code: Option<PostalCode>,
    /// Custom audio for the steps of the collection; the platform's own prompts otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub prompts: Vec<PayPrompt>,
    /// Whether to ask for the card's security code (the platform asks when unset).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub security_code: Option<bool>,
    /// Where the platform POSTs an event at each status change of the payment.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status_url: Option<String>,
    /// Seconds the platform waits for the next digit before it checks what was keyed in (5
    /// when unset).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub timeout: Option<u32>,
    /// Whether the connector should charge once or keep a reusable token (`reusable` when
    /// unset).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub token_type: Option<TokenType>,
    /// The card brands accepted (visa, mastercard and amex when unset).
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        with = "space_separated"
    )]
    pub valid_card_types: Option<Vec<CardType>>,
    /// The text-to-speech voice of the prompts (`woman` when unset).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub voice: Option<String>,
}

impl Pay {
    /// A DTMF payment posting to `payment_connector_url`, every other field unset.
    pub fn new(payment_connector_url: impl Into<String>) -> Self {
        Self {
            payment_connector_url: payment_connector_url.into(),
            charge_amount: None,
            currency: None,
            description: None,
            input: Some(PayInput::Dtmf),
            language: None,
            max_attempts: None,
            min_postal_code_length: None,
            parameters: Vec::new(),
            payment_method: None,
            postal_code: None,
            prompts: Vec::new(),
            security_code: None,
            status_url: None,
            timeout: None,
            token_type: None,
            valid_card_types: None,
            voice: None,
        }
    }

    /// Charge `amount`, a decimal string without currency sign (`"12.50"`).
    pub fn charge_amount(mut self, amount: impl Into<String>) -> Self {
        self.charge_amount = Some(amount.into());
        self
    }

    /// The ISO 4217 currency code of the amount (`"usd"`).
    pub fn currency(mut self, currency: impl Into<String>) -> Self {
        self.currency = Some(currency.into());
        self
    }

    /// A description of the payment for the connector.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The language of the prompts (`"en-US"`).
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// Try to collect the card details up to `attempts` times.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Require at least `digits` digits of postal code.
    pub fn min_postal_code_length(mut self, digits: u32) -> Self {
        self.min_postal_code_length = Some(digits);
        self
    }

    /// Pass one more name/value pair to the connector.
    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.push(PayParameter {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// Say explicitly that the payment is by credit card (the only method).
    pub fn payment_method_credit_card(mut self) -> Self {
        self.payment_method = Some(PaymentMethod::CreditCard);
        self
    }

    /// Whether and how to collect the postal code.
    pub fn postal_code(mut self, postal_code: PostalCode) -> Self {
        self.postal_code = Some(postal_code);
        self
    }

    /// Add custom audio for one step of the collection.
    pub fn prompt(mut self, prompt: PayPrompt) -> Self {
        self.prompts.push(prompt);
        self
    }

    /// Ask (`true`) or do not ask (`false`) for the card's security code.
    pub fn security_code(mut self, ask: bool) -> Self {
        self.security_code = Some(ask);
        self
    }

    /// Where the platform POSTs the payment's status changes.
    pub fn status_url(mut self, url: impl Into<String>) -> Self {
        self.status_url = Some(url.into());
        self
    }

    /// Wait up to `seconds` for the next digit.
    pub fn timeout(mut self, seconds: u32) -> Self {
        self.timeout = Some(seconds);
        self
    }

    /// A one-off charge or a reusable token.
    pub fn token_type(mut self, token_type: TokenType) -> Self {
        self.token_type = Some(token_type);
        self
    }

    /// Accept only these card brands. An empty list leaves the field unset (the platform's
    /// default brands), since an empty string would accept no card at all.
    pub fn valid_card_types(mut self, types: impl IntoIterator<Item = CardType>) -> Self {
        self.valid_card_types = non_empty(types);
        self
    }

    /// The text-to-speech voice of the prompts.
    pub fn voice(mut self, voice: impl Into<String>) -> Self {
        self.voice = Some(voice.into());
        self
    }
}

/// A merchant-defined name/value pair passed to the payment connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayParameter {
    /// The pair's name, its key in the connector's parameters.
    pub name: String,
    /// The pair's value.
    pub value: String,
}

/// How `pay` collects the card: the schema allows only keypad tones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayInput {
    /// DTMF, keypad tones (`dtmf`).
    Dtmf,
}

/// The kind of payment: the schema allows only credit cards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PaymentMethod {
    /// A payment card (`credit-card`).
    CreditCard,
}

/// What the connector is asked for: a single charge or a token for later charges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenType {
    /// A one-off payment (`one-time`).
    OneTime,
    /// A recurring payment: the connector keeps a token (`reusable`).
    Reusable,
}

/// Whether `pay` collects the postal code. On the wire: `true`, `false`, or the code itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostalCode {
    /// Ask the caller for it (`true`).
    Ask,
    /// Do not ask for it (`false`).
    Skip,
    /// Do not ask: it is already known and is this (`"94107"`).
    Known(String),
}

impl Serialize for PostalCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Ask => serializer.serialize_bool(true),
            Self::Skip => serializer.serialize_bool(false),
            Self::Known(code) => serializer.serialize_str(code),
        }
    }
}

impl<'de> Deserialize<'de> for PostalCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(
            untagged,
            expecting = "`postal_code`: true, false or the postal code as a string"
        )]
        enum Wire {
            Flag(bool),
            Code(String),
        }
        Ok(match Wire::deserialize(deserializer)? {
            Wire::Flag(true) => Self::Ask,
            Wire::Flag(false) => Self::Skip,
            Wire::Code(code) => Self::Known(code),
        })
    }
}

/// Custom audio for one step of the collection: what to say or play, optionally only on some
/// attempts, for some card brands or after some errors.
///
/// ```
/// use voxguard_swml::{PayErrorType, PayPrompt, PayStep};
///
/// let prompt = PayPrompt::new(PayStep::PaymentCardNumber)
///     .attempts([2, 3])
///     .error_types([PayErrorType::Timeout, PayErrorType::InvalidCardNumber])
///     .say("That did not work. Please key in your card number again.");
/// let json = serde_json::to_value(&prompt).unwrap();
/// assert_eq!(json["for"], "payment-card-number");
/// assert_eq!(json["attempts"], "2 3");
/// assert_eq!(json["error_type"], "timeout invalid-card-number");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayPrompt {
    /// The step of the collection this prompt replaces the audio of.
    #[serde(rename = "for")]
    pub step: PayStep,
    /// What to say or play, in order.
    pub actions: Vec<PayPromptAction>,
    /// Only on these attempts (1 is the first; a failed attempt moves to the next).
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        with = "space_separated"
    )]
    pub attempts: Option<Vec<u32>>,
    /// Only for these card brands.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        with = "space_separated"
    )]
    pub card_type: Option<Vec<CardType>>,
    /// Only after these errors.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        with = "space_separated"
    )]
    pub error_type: Option<Vec<PayErrorType>>,
}

impl PayPrompt {
    /// A prompt for `step` with no actions yet and no conditions.
    pub fn new(step: PayStep) -> Self {
        Self {
            step,
            actions: Vec::new(),
            attempts: None,
            card_type: None,
            error_type: None,
        }
    }

    /// Append an action.
    pub fn action(mut self, action: PayPromptAction) -> Self {
        self.actions.push(action);
        self
    }

    /// Append a phrase to speak.
    pub fn say(self, phrase: impl Into<String>) -> Self {
        self.action(PayPromptAction::say(phrase))
    }

    /// Append an audio file to play (an `http://` or `https://` URL).
    pub fn play(self, url: impl Into<String>) -> Self {
        self.action(PayPromptAction::play(url))
    }

    /// Apply only on these attempts (an empty list: on every attempt).
    pub fn attempts(mut self, attempts: impl IntoIterator<Item = u32>) -> Self {
        self.attempts = non_empty(attempts);
        self
    }

    /// Apply only for these card brands (an empty list: for every brand).
    pub fn card_types(mut self, types: impl IntoIterator<Item = CardType>) -> Self {
        self.card_type = non_empty(types);
        self
    }

    /// Apply only after these errors (an empty list: whatever the error).
    pub fn error_types(mut self, errors: impl IntoIterator<Item = PayErrorType>) -> Self {
        self.error_type = non_empty(errors);
        self
    }
}

/// One action of a [`PayPrompt`]: speak a phrase or play an audio file. On the wire:
/// `{"type": "Say", "phrase": "…"}` or `{"type": "Play", "phrase": "https://…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PayPromptAction {
    /// Speak `phrase` with text-to-speech.
    Say {
        /// The text to speak.
        phrase: String,
    },
    /// Play the audio file at `url`.
    Play {
        /// The file's URL; the schema accepts only `http://` and `https://` URLs.
        #[serde(rename = "phrase")]
        url: String,
    },
}

impl PayPromptAction {
    /// Speak `phrase`.
    pub fn say(phrase: impl Into<String>) -> Self {
        Self::Say {
            phrase: phrase.into(),
        }
    }

    /// Play the audio file at `url` (an `http://` or `https://` URL).
    pub fn play(url: impl Into<String>) -> Self {
        Self::Play { url: url.into() }
    }
}

/// Defines a closed set of wire words as an enum with its `ALL` list and `as_str`.
macro_rules! wire_words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $word:literal, )+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $word)] $variant, )+
        }

        impl $name {
            /// Every value, in the schema's order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The value's wire word.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Word for $name {
            const WHAT: &'static str = stringify!($name);

            fn write(&self) -> String {
                self.as_str().to_string()
            }

            fn read(word: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|value| value.as_str() == word)
            }
        }
    };
}

wire_words! {
    /// The step of the collection a [`PayPrompt`] is for (its `for`).
    pub enum PayStep {
        /// Collecting the card number.
        PaymentCardNumber = "payment-card-number",
        /// Collecting the expiry date.
        ExpirationDate = "expiration-date",
        /// Collecting the security code.
        SecurityCode = "security-code",
        /// Collecting the postal code.
        PostalCode = "postal-code",
        /// While the connector processes the payment.
        PaymentProcessing = "payment-processing",
        /// The payment went through.
        PaymentCompleted = "payment-completed",
        /// The payment failed.
        PaymentFailed = "payment-failed",
        /// The payment was cancelled.
        PaymentCancelled = "payment-cancelled",
    }
}

wire_words! {
    /// A card brand, for `valid_card_types` and a prompt's `card_type`.
    pub enum CardType {
        /// Visa.
        Visa = "visa",
        /// Mastercard.
        Mastercard = "mastercard",
        /// American Express.
        Amex = "amex",
        /// Maestro.
        Maestro = "maestro",
        /// Discover.
        Discover = "discover",
        /// Optima. The schema lists it for a prompt's `card_type` only, not for
        /// `valid_card_types`.
        Optima = "optima",
        /// JCB.
        Jcb = "jcb",
        /// Diners Club.
        DinersClub = "diners-club",
    }
}

wire_words! {
    /// An error a [`PayPrompt`] can be limited to (its `error_type`).
    pub enum PayErrorType {
        /// The caller stopped keying in.
        Timeout = "timeout",
        /// The card number failed validation.
        InvalidCardNumber = "invalid-card-number",
        /// The card's brand is not accepted.
        InvalidCardType = "invalid-card-type",
        /// The expiry date is invalid.
        InvalidDate = "invalid-date",
        /// The security code is malformed.
        InvalidSecurityCode = "invalid-security-code",
        /// The postal code is malformed.
        InvalidPostalCode = "invalid-postal-code",
        /// The bank routing number is invalid.
        InvalidBankRoutingNumber = "invalid-bank-routing-number",
        /// The bank account number is invalid.
        InvalidBankAccountNumber = "invalid-bank-account-number",
        /// What was keyed in did not match.
        InputMatchingFailed = "input-matching-failed",
        /// Another payment session is already in progress.
        SessionInProgress = "session-in-progress",
        /// The card was declined.
        CardDeclined = "card-declined",
    }
}

/// A value written as one word of a space-separated list.
trait Word: Sized {
    /// What a word names, for the error when one does not read.
    const WHAT: &'static str;
    /// The value's word.
    fn write(&self) -> String;
    /// The value a word names, if any.
    fn read(word: &str) -> Option<Self>;
}

impl Word for u32 {
    const WHAT: &'static str = "attempt number";

    fn write(&self) -> String {
        self.to_string()
    }

    fn read(word: &str) -> Option<Self> {
        word.parse().ok()
    }
}

/// `Some(list)` of the values, or `None` when there are none.
fn non_empty<T>(values: impl IntoIterator<Item = T>) -> Option<Vec<T>> {
    let values: Vec<T> = values.into_iter().collect();
    (!values.is_empty()).then_some(values)
}

/// Serde for an optional list written as one space-separated string (`"visa amex"`).
mod space_separated {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Word;

    pub(super) fn serialize<S: Serializer, T: Word>(
        values: &Option<Vec<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match values {
            Some(values) => {
                let words: Vec<String> = values.iter().map(Word::write).collect();
                serializer.serialize_str(&words.join(" "))
            }
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>, T: Word>(
        deserializer: D,
    ) -> Result<Option<Vec<T>>, D::Error> {
        let Some(text) = Option::<String>::deserialize(deserializer)? else {
            return Ok(None);
        };
        text.split_whitespace()
            .map(|word| {
                T::read(word).ok_or_else(|| {
                    // The word itself is left out: a field read from elsewhere may hold anything.
                    D::Error::custom(format!(
                        "a space-separated list holds a word that is not a {}",
                        T::WHAT
                    ))
                })
            })
            .collect::<Result<Vec<T>, D::Error>>()
            .map(Some)
    }
}

#[cfg(test)]
mod tests;
