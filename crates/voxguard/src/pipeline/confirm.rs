//! The read-back confirmation step: a first call records the pending action and answers the
//! summary; a second call with `confirmed: true` and the same arguments, within the window,
//! proceeds — once.
//!
//! Owns the confirmation protocol and its session key. Only a call *without* `confirmed: true`
//! records a pending action (and answers the read-back). A confirming call atomically *takes*
//! the pending action, so of any number of concurrent or replayed confirmations exactly one runs
//! the handler; a confirming call that finds nothing usable records nothing — otherwise replayed
//! confirmations could feed each other. It must not run the handler or audit: it answers
//! proceed, or a [`Refusal`] the pipeline records.

use serde_json::Value;
use voxguard_guard::{ConfirmationCheck, PendingConfirmation, Reason, Refusal, CONFIRMED_ARG};

use crate::context::{CallContext, SessionError};
use crate::tool::ConfirmSummary;

/// How long a read-back stays confirmable.
pub const CONFIRMATION_WINDOW_SECS: u64 = 5 * 60;

/// Why the confirmation step could not decide.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfirmError {
    /// The session could not be read or written.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The arguments did not deserialize into the summary's argument type.
    #[error("the confirmation summary's argument type does not match the tool's arguments")]
    SummaryArguments,
}

/// Remove the top-level `confirmed` flag from `args`; true only for a JSON `true`.
pub(crate) fn take_confirmed(args: &mut Value) -> bool {
    match args {
        Value::Object(map) => map
            .remove(CONFIRMED_ARG)
            .is_some_and(|v| v == Value::Bool(true)),
        _ => false,
    }
}

/// Pending confirmations live in the server-side session, one per function.
fn confirm_key(function: &str) -> String {
    format!("__vg.confirm.{function}")
}

/// Run the confirmation step for `function` with validated `args`: `Ok(Ok(()))` to proceed,
/// `Ok(Err(refusal))` to answer the read-back (or why nothing was done).
pub(crate) async fn confirm(
    ctx: &CallContext,
    function: &str,
    args: &Value,
    confirmed: bool,
    summary: &ConfirmSummary,
) -> Result<Result<(), Refusal>, ConfirmError> {
    let key = confirm_key(function);
    let now = ctx.services().clock.now_unix();
    if !confirmed {
        let sentence = summary(args).ok_or(ConfirmError::SummaryArguments)?;
        ctx.session()
            .set(&key, &PendingConfirmation::new(function, args, now))
            .await?;
        return Ok(Err(Refusal::new(Reason::ConfirmationRequired, sentence)));
    }
    let pending = match ctx.session().take(&key).await? {
        Some(value) => serde_json::from_value::<PendingConfirmation>(value).ok(),
        None => None,
    };
    let check = match &pending {
        Some(pending) => pending.check(function, args, now, CONFIRMATION_WINDOW_SECS),
        None => ConfirmationCheck::NothingPending,
    };
    Ok(match check {
        ConfirmationCheck::Proceed => Ok(()),
        ConfirmationCheck::NothingPending => Err(Refusal::new(
            Reason::ConfirmationRequired,
            "Nothing is waiting for confirmation. Call the function again without confirmed to get the summary, read it back to the caller, and confirm only after they agree.",
        )),
        ConfirmationCheck::Mismatch => Err(Refusal::new(
            Reason::ConfirmationMismatch,
            "The details differ from what was read back, so nothing was done. Call the function again without confirmed to read the new details back to the caller.",
        )),
        ConfirmationCheck::Expired => Err(Refusal::new(
            Reason::ConfirmationExpired,
            "The confirmation took too long, so nothing was done. Call the function again without confirmed to read the details back to the caller.",
        )),
    })
}
