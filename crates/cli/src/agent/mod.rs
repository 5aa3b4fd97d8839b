//! The client side of the SWML/SWAIG wire format: how `swml`, `tools`, `exec`, `simulate`,
//! `probe` and `check` talk to *any* running agent over real HTTP — ours, the official SDKs',
//! or anything else that speaks the format.
//!
//! It owns the target (URL, credentials, TLS trust, timeouts, and the errors that say what to
//! do next: [`target`]), fetching and reading a rendered SWML document ([`render`]), playing a
//! SWAIG function call the way the platform does and decoding the answer's actions
//! ([`swaig`]), and masking the secrets an agent puts in its URLs before anything is printed
//! ([`mask`]). It must not decide what a command prints or what counts as a finding (the
//! commands do), and it must never print a secret itself.

pub mod mask;
pub mod render;
pub mod swaig;
pub mod target;

pub use render::{CallArgs, CallSpec, Function, Rendered};
pub use swaig::{CallState, Decoded, Reply};
pub use target::{AgentError, Answer, Auth, Target, TargetArgs};
