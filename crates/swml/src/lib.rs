//! SignalWire wire formats as Rust types.
//!
//! This crate owns the *shapes* that cross the wire between a telephony platform and a voxguard
//! agent: the SWML document the platform fetches ([`Document`], the [`Ai`] verb with its POM
//! prompt and SWAIG function list), the SWAIG webhook request ([`SwaigRequest`]) and the tool
//! answer ([`FunctionResult`] with its [`Action`]s), including the card-collecting [`Pay`] verb
//! with every field the schema gives it. It is pure data plus serde: no I/O, no
//! crypto, no policy. Deciding whether something is allowed belongs to `voxguard-guard`.
//!
//! Every document and action these types produce validates against the official SWML JSON
//! schema; `tests/schema.rs` and `tests/pay_schema.rs` in this crate prove it for every
//! builder.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ai;
mod document;
mod pay;
mod request;
mod result;

pub use ai::{
    Ai, Hint, Language, PomSection, PostPrompt, Prompt, Swaig, SwaigDefaults, SwaigFunction,
    FILLER_LANGUAGES,
};
pub use document::{
    Answer, Connect, Document, Hangup, OtherVerb, RecordCall, StopRecordCall, Transfer, Verb,
    SWML_VERSION,
};
pub use pay::{
    CardType, Pay, PayErrorType, PayInput, PayParameter, PayPrompt, PayPromptAction, PayStep,
    PaymentMethod, PostalCode, TokenType,
};
pub use request::{PostPromptRequest, SwaigArgument, SwaigRequest, SwmlRequest};
pub use result::{Action, FunctionResult, Toggle};

#[cfg(feature = "conformance")]
pub mod conformance;
