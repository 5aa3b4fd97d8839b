//! Fuzz target: the input guard on arbitrary text (lossy UTF-8) and on whatever parses as
//! JSON: `normalize`, `InjectionDetector::detect` and `InputGuard::screen` never panic, and
//! `screen` always leaves normalized strings behind. It owns no detection rules of its own.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use voxguard_guard::{normalize, InjectionDetector, InputGuard};

fn guard() -> &'static InputGuard {
    static GUARD: OnceLock<InputGuard> = OnceLock::new();
    GUARD.get_or_init(InputGuard::new)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let normalized = normalize(&text);
    let _ = InjectionDetector::default().detect(&text);

    let mut value = Value::String(text.into_owned());
    let _ = guard().screen(&mut value, &|_| None);
    assert_eq!(value, Value::String(normalized));

    if let Ok(mut value) = serde_json::from_slice::<Value>(data) {
        // A limit that depends on the path, as a schema's maxLength would.
        let limit = |path: &str| (path.len() % 3 == 0).then_some(path.len() * 7);
        let _ = guard().screen(&mut value, &limit);
        let _ = InputGuard::new()
            .without_injection_check()
            .with_default_max_len(16)
            .screen(&mut value, &|_| None);
    }
});
