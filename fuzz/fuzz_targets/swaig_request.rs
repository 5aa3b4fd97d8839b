//! Fuzz target: the three request bodies the platform posts (SWAIG call, SWML fetch,
//! post-prompt summary) parsed from arbitrary bytes, and their accessors run on whatever
//! parses. It owns no assertions beyond "never panics"; it must not touch the network.

#![no_main]

use libfuzzer_sys::fuzz_target;
use voxguard_swml::{PostPromptRequest, SwaigRequest, SwmlRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<SwaigRequest>(data) {
        let arguments = request.arguments();
        // `arguments` must be deterministic: the pipeline reads it more than once.
        assert_eq!(arguments, request.arguments());
        let _ = request.call_id();
        if let Some(id) = request.call_id() {
            assert!(!id.is_empty());
        }
    }
    if let Ok(request) = serde_json::from_slice::<SwmlRequest>(data) {
        if let Some(id) = request.call_id() {
            assert!(!id.is_empty());
        }
        let _ = (request.from(), request.to());
    }
    if let Ok(request) = serde_json::from_slice::<PostPromptRequest>(data) {
        let _ = (request.summary(), request.parsed());
    }
});
