//! The SWML document: `{"version": "1.0.0", "sections": {"main": [verb, …]}}`.
//!
//! Owns the document envelope and the call-control verbs voxguard emits (`answer`,
//! `record_call`, `stop_record_call`, `ai`, `connect`, `transfer`, `pay`, `hangup`). Field
//! names follow the official schema exactly; optional fields are omitted when unset so that
//! every rendered document validates. It does not decide *which* verbs an agent may emit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ai::Ai;

/// The SWML version string every document carries.
pub const SWML_VERSION: &str = "1.0.0";

/// A whole SWML document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Always [`SWML_VERSION`].
    pub version: String,
    /// Named sections; execution starts at `main`.
    pub sections: BTreeMap<String, Vec<Verb>>,
}

impl Document {
    /// A document whose `main` section runs `verbs` in order.
    pub fn new(verbs: Vec<Verb>) -> Self {
        let mut sections = BTreeMap::new();
        sections.insert("main".to_string(), verbs);
        Self {
            version: SWML_VERSION.to_string(),
            sections,
        }
    }

    /// The verbs of the `main` section (empty if there is none).
    pub fn main(&self) -> &[Verb] {
        self.sections.get("main").map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every verb of every section, in section order.
    pub fn verbs(&self) -> impl Iterator<Item = &Verb> {
        self.sections.values().flatten()
    }
}

/// One SWML verb (method). Serialized as a single-key object, e.g. `{"answer": {}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    /// Answer the call.
    Answer(Answer),
    /// Start a background recording.
    RecordCall(RecordCall),
    /// Stop a background recording.
    StopRecordCall(StopRecordCall),
    /// Run the AI agent.
    Ai(Box<Ai>),
    /// Dial a phone number or SIP URI and bridge the call.
    Connect(Connect),
    /// Hand the call to another SWML document or URL.
    Transfer(Transfer),
    /// Collect a card payment by DTMF.
    Pay(Box<Pay>),
    /// End the call.
    Hangup(Hangup),
}

/// Parameters of `answer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Maximum call duration in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<u32>,
}

/// Parameters of `record_call`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordCall {
    /// Identifier used to stop this recording later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_id: Option<String>,
    /// Record in stereo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stereo: Option<bool>,
    /// `wav`, `mp3` or `mp4`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// `speak`, `listen` or `both`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// Play a beep before recording.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beep: Option<bool>,
}

/// Parameters of `stop_record_call`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StopRecordCall {
    /// Which recording to stop; the latest when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_id: Option<String>,
}

/// Parameters of `connect` (single destination).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connect {
    /// Destination: an E.164 number or a SIP URI.
    pub to: String,
    /// Caller ID to present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Seconds to wait for an answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
}

/// Parameters of `transfer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    /// A section name, a URL returning SWML, or an inline SWML document as a string.
    pub dest: String,
}

/// Parameters of `pay`. The card is collected by DTMF and posted to the connector; the AI only
/// ever sees `${pay_result}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pay {
    /// Where the platform POSTs the gathered payment details.
    pub payment_connector_url: String,
    /// Amount to charge, a decimal string without currency prefix (e.g. `"29.99"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charge_amount: Option<String>,
    /// ISO 4217 currency code (`usd` by default on the platform).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Description sent to the connector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Collection method; the platform supports only `dtmf`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Retries for collecting the card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Prompt language, e.g. `en-US`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Extra name/value pairs passed to the connector.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub parameters: Vec<PayParameter>,
}

impl Pay {
    /// A DTMF payment posting to `payment_connector_url`.
    pub fn new(payment_connector_url: impl Into<String>) -> Self {
        Self {
            payment_connector_url: payment_connector_url.into(),
            charge_amount: None,
            currency: None,
            description: None,
            input: Some("dtmf".to_string()),
            max_attempts: None,
            language: None,
            parameters: Vec::new(),
        }
    }
}

/// A custom name/value pair for the payment connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayParameter {
    /// Parameter name.
    pub name: String,
    /// Parameter value.
    pub value: String,
}

/// Parameters of `hangup`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hangup {
    /// `hangup`, `busy` or `decline`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
