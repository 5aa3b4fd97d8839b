//! The `ai` verb: prompt (POM or text), post-prompt, params, languages, hints, global data and
//! the SWAIG function list.
//!
//! Owns the shape only. Which functions are listed, whether they carry a token and what their
//! `parameters` may contain is decided by the agent runtime (see `voxguard`), which renders the
//! platform subset of each tool schema with `voxguard-guard`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `ai` verb.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ai {
    /// The system prompt.
    pub prompt: Prompt,
    /// Instructions for the end-of-call summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_prompt: Option<PostPrompt>,
    /// Where the platform posts the end-of-call summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_prompt_url: Option<String>,
    /// AI parameters (`temperature` lives in the prompt; these are `AIParams`).
    #[serde(skip_serializing_if = "Map::is_empty", default)]
    pub params: Map<String, Value>,
    /// Languages and voices.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub languages: Vec<Language>,
    /// Speech-recognition hints.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub hints: Vec<Hint>,
    /// Conversation context shared with the AI. Never authoritative: the caller and the LLM can
    /// influence it, so authorization state lives server-side.
    #[serde(skip_serializing_if = "Map::is_empty", default)]
    pub global_data: Map<String, Value>,
    /// Tools the AI may call.
    #[serde(rename = "SWAIG", skip_serializing_if = "Option::is_none")]
    pub swaig: Option<Swaig>,
}

/// The system prompt: either structured (POM) or plain text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// Prompt Object Model sections.
    Pom {
        /// The sections, in order (at least one).
        pom: Vec<PomSection>,
        /// Sampling temperature (0–1.5).
        #[serde(skip_serializing_if = "Option::is_none")]
        temperature: Option<f64>,
    },
    /// A plain-text prompt.
    Text {
        /// The prompt text.
        text: String,
        /// Sampling temperature (0–1.5).
        #[serde(skip_serializing_if = "Option::is_none")]
        temperature: Option<f64>,
    },
}

impl Default for Prompt {
    fn default() -> Self {
        Prompt::Text {
            text: String::new(),
            temperature: None,
        }
    }
}

/// One POM section: a title with a body and/or bullets, and nested subsections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PomSection {
    /// Section title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Body text. Always present when there are no bullets (the schema needs one of the two).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Bullet points.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub bullets: Vec<String>,
    /// Nested sections.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub subsections: Vec<PomSection>,
}

impl PomSection {
    /// A section with a title and nothing else yet.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: Some(title.into()),
            ..Self::default()
        }
    }

    /// Set the body text.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Add one bullet.
    pub fn bullet(mut self, bullet: impl Into<String>) -> Self {
        self.bullets.push(bullet.into());
        self
    }

    /// Add several bullets.
    pub fn bullets<I, S>(mut self, bullets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.bullets.extend(bullets.into_iter().map(Into::into));
        self
    }

    /// Add a nested section.
    pub fn subsection(mut self, section: PomSection) -> Self {
        self.subsections.push(section);
        self
    }

    /// The section in the form the schema accepts: a section with neither body nor bullets
    /// gets an empty body, an empty title is dropped, recursively.
    pub fn normalized(mut self) -> Self {
        if self.title.as_deref() == Some("") {
            self.title = None;
        }
        if self.body.is_none() && self.bullets.is_empty() {
            self.body = Some(String::new());
        }
        self.subsections = self.subsections.into_iter().map(Self::normalized).collect();
        self
    }
}

/// The post-prompt (summary instructions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostPrompt {
    /// Instructions for the summary.
    pub text: String,
}

/// A language the agent speaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Language {
    /// Human name, e.g. `English`.
    pub name: String,
    /// ASR language code, e.g. `en-US`.
    pub code: String,
    /// TTS voice, `<engine>.<voice>`.
    pub voice: String,
}

impl Language {
    /// A language with its code and voice.
    pub fn new(name: impl Into<String>, code: impl Into<String>, voice: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            code: code.into(),
            voice: voice.into(),
        }
    }
}

/// A speech-recognition hint: a plain word, or a pattern with its replacement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Hint {
    /// A word or phrase.
    Word(String),
    /// Replace what matches `pattern` by `replace` when the hint is heard.
    Pattern {
        /// The hint to match.
        hint: String,
        /// Regular expression.
        pattern: String,
        /// Replacement text.
        replace: String,
        /// Case-insensitive match.
        #[serde(skip_serializing_if = "Option::is_none")]
        ignore_case: Option<bool>,
    },
}

impl From<&str> for Hint {
    fn from(word: &str) -> Self {
        Hint::Word(word.to_string())
    }
}

impl From<String> for Hint {
    fn from(word: String) -> Self {
        Hint::Word(word)
    }
}

/// The SWAIG block: defaults and function definitions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Swaig {
    /// Defaults for every function.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defaults: Option<SwaigDefaults>,
    /// The functions.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub functions: Vec<SwaigFunction>,
}

/// SWAIG defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SwaigDefaults {
    /// Default webhook for every function (credentials embedded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_hook_url: Option<String>,
}

/// Language codes the platform accepts as the key of a function's `fillers` object
/// (`$defs/FunctionFillers` in the official schema: exactly one of these per function).
pub const FILLER_LANGUAGES: &[&str] = &[
    "default", "bg", "ca", "zh", "zh-CN", "zh-Hans", "zh-TW", "zh-Hant", "zh-HK", "cs", "da",
    "da-DK", "nl", "en", "en-US", "en-GB", "en-NZ", "en-IN", "en-AU", "et", "fi", "nl-BE", "fr",
    "fr-CA", "de", "de-CH", "el", "hi", "hu", "id", "it", "ja", "ko", "ko-KR", "lv", "lt", "ms",
    "multi", "no", "pl", "pt", "pt-BR", "pt-PT", "ro", "ru", "sk", "es", "es-419", "sv", "sv-SE",
    "th", "th-TH", "tr", "uk", "vi",
];

/// One SWAIG function definition as the platform sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwaigFunction {
    /// Function name.
    pub function: String,
    /// When the AI should use it.
    pub description: String,
    /// Argument schema, already reduced to the subset the platform accepts. The schema lets a
    /// function omit it (a function without arguments): it then reads as, and is written back
    /// as, absent (`null`).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub parameters: Value,
    /// Function-specific webhook (carries the per-call token for secure tools).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_hook_url: Option<String>,
    /// Filler phrases: one language code (see [`FILLER_LANGUAGES`]) → phrases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fillers: Option<Map<String, Value>>,
    /// Audio to play while the function runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_file: Option<String>,
    /// Function-scoped metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<Map<String, Value>>,
    /// Scope token for `meta_data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_data_token: Option<String>,
    /// `false` renders the function inactive until a `toggle_functions` action enables it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}
