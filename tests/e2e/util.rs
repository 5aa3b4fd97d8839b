//! Helpers shared by the end-to-end modules: the reference test kit (`src/lib.rs`), plus the
//! counting tools several modules use to prove whether a handler ran.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use voxguard::prelude::*;
pub use voxguard_reference::*;

/// How many times a handler ran.
pub type Counter = Arc<AtomicUsize>;

/// A fresh counter at 0.
pub fn counter() -> Counter {
    Arc::new(AtomicUsize::new(0))
}

/// The counter's value.
pub fn count(counter: &Counter) -> usize {
    counter.load(Ordering::SeqCst)
}

/// An object schema without properties.
pub fn empty_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

/// An untyped, secure tool without arguments that counts its runs and answers `"{name} ran."`.
pub fn counting_tool(name: &str, runs: &Counter) -> Tool {
    let runs = runs.clone();
    let reply = format!("{name} ran.");
    Tool::untyped(
        name,
        format!("Test tool {name}"),
        empty_schema(),
        move |_args, _ctx| {
            let runs = runs.clone();
            let reply = reply.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(FunctionResult::new(reply))
            }
        },
    )
}
