//! Known-answer tests for webhook signatures.
//!
//! Vectors A, B and C are the canonical vectors the platform publishes for every SDK port
//! (signalwire/signalwire-python, `tests/unit/security/test_webhook_validator.py`, "canonical
//! vectors from porting-sdk/webhooks.md"; B is also the classic compatibility-API example). Each
//! was re-computed independently with Python's `hmac`/`hashlib` before being written here, e.g.
//! `hmac.new(b"PSKtest1234567890abcdef", url + body, hashlib.sha1).hexdigest()`.

use super::*;

const KEY_A: &str = "PSKtest1234567890abcdef";
const URL_A: &str = "https://example.ngrok.io/webhook";
const BODY_A: &str = r#"{"event":"call.state","params":{"call_id":"abc-123","state":"answered"}}"#;
const SIG_A: &str = "c3c08c1fefaf9ee198a100d5906765a6f394bf0f";

const KEY_B: &str = "12345";
const URL_B: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
const SIG_B: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
/// Vector B's parameters, form-encoded as they arrive on the wire (`+` as `%2B`), deliberately
/// not in sorted order.
const BODY_B: &str =
    "To=%2B18005551212&CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309";

const URL_C: &str = "https://example.ngrok.io/webhook?bodySHA256=69f3cbfc18e386ef8236cb7008cd5a54b7fed637a8cb3373b5a1591d7f0fd5f4";
const BODY_C: &str = r#"{"event":"call.state"}"#;
const SIG_C: &str = "dfO9ek8mxyFtn2nMz24plPmPfIY=";

fn key(k: &str) -> SigningKey {
    SigningKey::new(k).unwrap()
}

#[test]
fn vector_a_json_form_hex() {
    let k = key(KEY_A);
    assert_eq!(k.sign_json(URL_A, BODY_A.as_bytes()), SIG_A);
    assert_eq!(k.verify(SIG_A, URL_A, BODY_A.as_bytes()), Ok(()));
    assert_eq!(
        k.verify(&SIG_A.to_ascii_uppercase(), URL_A, BODY_A.as_bytes()),
        Ok(()),
        "hex is case-insensitive"
    );
    let tampered = BODY_A.replace("answered", "ringing");
    assert_eq!(
        k.verify(SIG_A, URL_A, tampered.as_bytes()),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        k.verify(
            SIG_A,
            "https://example.ngrok.io/different",
            BODY_A.as_bytes()
        ),
        Err(SignatureError::Mismatch),
        "the URL is part of the digest"
    );
    assert_eq!(
        key("wrong-key").verify(SIG_A, URL_A, BODY_A.as_bytes()),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn vector_b_compatibility_form_base64() {
    let k = key(KEY_B);
    let params: Vec<(String, String)> = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(k.sign_form(URL_B, &params), SIG_B);
    assert_eq!(k.verify(SIG_B, URL_B, BODY_B.as_bytes()), Ok(()));
    let tampered = BODY_B.replace("Digits=1234", "Digits=9999");
    assert_eq!(
        k.verify(SIG_B, URL_B, tampered.as_bytes()),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn vector_c_json_body_on_the_compatibility_surface() {
    let k = key(KEY_A);
    assert_eq!(k.verify(SIG_C, URL_C, BODY_C.as_bytes()), Ok(()));
    // The HMAC covers the URL only, so the body is bound through bodySHA256.
    assert_eq!(
        k.verify(SIG_C, URL_C, br#"{"event":"DIFFERENT"}"#),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn repeated_names_keep_their_order() {
    // Independent computation: base64(hmac_sha1(b"test-key", b"https://example.com/hookToaTob")).
    let k = key("test-key");
    let url = "https://example.com/hook";
    let sig = "x8TMzW4SfG5TI4zuo4PFIS1APNA=";
    assert_eq!(k.verify(sig, url, b"To=a&To=b"), Ok(()));
    assert_eq!(
        k.verify(sig, url, b"To=b&To=a"),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn default_ports_are_equivalent() {
    let k = key("test-key");
    let with = k.sign_json("https://example.com:443/webhook", b"{}");
    assert_eq!(
        k.verify(&with, "https://example.com/webhook", b"{}"),
        Ok(())
    );
    let without = k.sign_json("http://example.com/path", b"");
    assert_eq!(
        k.verify(&without, "http://example.com:80/path", b""),
        Ok(())
    );
    let other_port = k.sign_json("https://example.com:8443/webhook", b"{}");
    assert_eq!(
        k.verify(&other_port, "https://example.com/webhook", b"{}"),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn missing_garbage_and_empty_keys_fail_closed() {
    let k = key(KEY_A);
    assert_eq!(
        k.verify("", URL_A, BODY_A.as_bytes()),
        Err(SignatureError::Missing)
    );
    for garbage in ["xyz", "!!!!", &"a".repeat(100), "%%notbase64%%"] {
        assert_eq!(
            k.verify(garbage, URL_A, BODY_A.as_bytes()),
            Err(SignatureError::Mismatch),
            "{garbage}"
        );
    }
    assert_eq!(SigningKey::new("").unwrap_err(), EmptySigningKey);
    assert!(!format!("{k:?}").contains("PSK"));
}

/// Review finding: the URL-only compatibility MAC of an empty-body request (the SWML GET) must
/// not sign a different, non-empty body sent to the same URL.
#[test]
fn a_url_only_signature_does_not_sign_a_body() {
    let k = key(KEY_A);
    let url_only = k.sign_form(URL_A, &[]);
    assert_eq!(
        k.verify(&url_only, URL_A, b""),
        Ok(()),
        "empty body: the URL is all there is"
    );
    assert_eq!(
        k.verify(&url_only, URL_A, br#"{"call_id":"forged"}"#),
        Err(SignatureError::Mismatch)
    );
    // The hex form of an empty-body request carries the same MAC bytes, re-encoded.
    let hex = k.sign_json(URL_A, b"");
    assert_eq!(
        k.verify(&hex, URL_A, br#"{"call_id":"forged"}"#),
        Err(SignatureError::Mismatch)
    );
}
