//! The SWML document: `{"version": "1.0.0", "sections": {"main": [verb, …]}}`.
//!
//! Owns the document envelope and the call-control verbs voxguard emits (`answer`,
//! `record_call`, `stop_record_call`, `ai`, `connect`, `transfer`, `pay`, `hangup`). Field
//! names follow the official schema exactly; optional fields are omitted when unset so that
//! every rendered document validates (the `pay` verb's parameters live in their own module,
//! `pay`). It does not decide *which* verbs an agent may emit.
//!
//! Reading is tolerant of what voxguard does not model, so that a document rendered by another
//! SWML producer (another SDK's agent, read by `voxguard bench`) parses: unknown fields are
//! ignored, a missing `version` reads as [`SWML_VERSION`], and a verb voxguard does not emit
//! reads as an [`OtherVerb`] that writes back as it came. A verb voxguard *does* model must take
//! the form it models: a malformed `connect` is an error, never an [`OtherVerb`], so nothing
//! that reads connect and transfer targets through [`Verb`] can miss one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ai::Ai;
use crate::pay::Pay;

/// The SWML version string every document carries.
pub const SWML_VERSION: &str = "1.0.0";

/// A whole SWML document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Always [`SWML_VERSION`] (the schema lets a document omit it; it then reads as that).
    #[serde(default = "swml_version")]
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

    /// The first `ai` verb of the `main` section: the agent the platform runs.
    pub fn ai(&self) -> Option<&Ai> {
        self.main().iter().find_map(|verb| match verb {
            Verb::Ai(ai) => Some(&**ai),
            _ => None,
        })
    }
}

fn swml_version() -> String {
    SWML_VERSION.to_string()
}

/// One SWML verb (method). Serialized as a single-key object, e.g. `{"answer": {}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "snake_case",
    expecting = "a SWML verb: an object with one key, the verb, in the form voxguard models if it models the verb"
)]
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
    /// A verb voxguard does not model, read from a document another producer rendered.
    #[serde(untagged)]
    Other(OtherVerb),
}

/// The verbs [`Verb`] models, by their wire name: an [`OtherVerb`] never carries one of these.
const MODELED_VERBS: &[&str] = &[
    "answer",
    "record_call",
    "stop_record_call",
    "ai",
    "connect",
    "transfer",
    "pay",
    "hangup",
];

/// A verb voxguard does not model (`play`, `set`, `sleep`, …), kept whole: it serializes back
/// to the object it was read from. It can only be read, never built, and its name is never one
/// of the verbs [`Verb`] models (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct OtherVerb {
    name: String,
    params: Value,
}

impl OtherVerb {
    /// The verb's name, the object's only key (e.g. `play`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verb's parameters, the value under its name, unread.
    pub fn params(&self) -> &Value {
        &self.params
    }
}

impl Serialize for OtherVerb {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(&self.name, &self.params)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for OtherVerb {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let object = Map::<String, Value>::deserialize(deserializer)?;
        let mut entries = object.into_iter();
        let (Some((name, params)), None) = (entries.next(), entries.next()) else {
            return Err(D::Error::custom(
                "a SWML verb is an object with exactly one key",
            ));
        };
        if MODELED_VERBS.contains(&name.as_str()) {
            return Err(D::Error::custom(format!(
                "the `{name}` verb is not in the form voxguard models"
            )));
        }
        Ok(Self { name, params })
    }
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

/// Parameters of `hangup`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hangup {
    /// `hangup`, `busy` or `decline`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests;
