//! Fuzz target: function-token verification with a fixed key ring. Arbitrary token, call and
//! function strings never panic the verifier; a token minted for (call, function, session)
//! verifies only for exactly that call and function, returns its session, and stops
//! verifying once changed in any byte. It must not use the wall clock (times are fixed).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use voxguard_guard::{KeyRing, SecretKey, TokenError};

/// A fixed "now" so every run is reproducible.
const NOW: u64 = 1_750_000_000;

#[derive(Debug, Arbitrary)]
struct Input {
    token: String,
    call: String,
    function: String,
    session: String,
    other_call: String,
    other_function: String,
    /// Seconds after minting at which the minted token is checked.
    elapsed: u16,
    /// Where to change the minted token, and to what.
    flip_at: u16,
    flip_to: u8,
}

fn ring() -> KeyRing {
    let current = SecretKey::from_bytes(vec![0x5a; 32]).expect("a 32-byte key is long enough");
    let previous = SecretKey::from_bytes(vec![0xa5; 48]).expect("a 48-byte key is long enough");
    KeyRing::new(current).with_previous(vec![previous])
}

fuzz_target!(|input: Input| {
    let ring = ring();
    // Arbitrary strings: any outcome but a panic is fine; success needs a forged MAC.
    let forged = ring.verify_with_session_at(&input.token, &input.call, &input.function, NOW);
    assert!(forged.is_err(), "an unminted token verified");

    let token = ring.mint_with_session_at(&input.call, &input.function, &input.session, NOW);
    let at = NOW + u64::from(input.elapsed);
    let fresh = at < NOW + ring.ttl().as_secs();
    let own = ring.verify_with_session_at(&token, &input.call, &input.function, at);
    if fresh {
        assert_eq!(own.as_deref(), Ok(input.session.as_str()));
    } else {
        assert_eq!(own, Err(TokenError::Expired));
    }
    if input.other_call != input.call {
        let wrong = ring.verify_with_session_at(&token, &input.other_call, &input.function, NOW);
        assert_eq!(wrong, Err(TokenError::WrongCall));
    }
    if input.other_function != input.function {
        let wrong = ring.verify_with_session_at(&token, &input.call, &input.other_function, NOW);
        assert_eq!(wrong, Err(TokenError::WrongFunction));
    }

    // Any single-byte change (kept valid UTF-8 by flipping to an ASCII byte) must be refused.
    let mut bytes = token.clone().into_bytes();
    let index = usize::from(input.flip_at) % bytes.len();
    bytes[index] = input.flip_to & 0x7f;
    if let Ok(changed) = String::from_utf8(bytes) {
        if changed != token {
            let result = ring.verify_with_session_at(&changed, &input.call, &input.function, NOW);
            assert!(result.is_err(), "a changed token verified: {changed:?}");
        }
    }
});
