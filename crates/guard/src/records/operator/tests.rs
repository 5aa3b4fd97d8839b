use std::collections::HashSet;

use super::*;
use crate::PinVault;

fn basic(pair: &str) -> Vec<u8> {
    format!("Basic {}", STANDARD.encode(pair)).into_bytes()
}

#[test]
fn generated_passwords_are_long_alphanumeric_and_unique() {
    let passwords: Vec<_> = (0..64).map(|_| generate_operator_password()).collect();
    for password in &passwords {
        assert_eq!(password.len(), OPERATOR_PASSWORD_LEN);
        assert!(
            password.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{password:?}"
        );
    }
    let unique: HashSet<&str> = passwords.iter().map(|p| p.as_str()).collect();
    assert_eq!(unique.len(), passwords.len());
    // Over 64 × 24 characters all three classes show up (failing odds are negligible).
    let all: String = passwords.iter().map(|p| p.as_str()).collect();
    assert!(all.bytes().any(|b| b.is_ascii_uppercase()));
    assert!(all.bytes().any(|b| b.is_ascii_lowercase()));
    assert!(all.bytes().any(|b| b.is_ascii_digit()));
}

#[test]
fn generated_passwords_hash_with_the_pin_vault() {
    let vault = PinVault::with_params(8, 1, 1).unwrap();
    let password = generate_operator_password();
    let stored = vault.hash(&password).unwrap();
    assert!(stored.as_phc().starts_with("$argon2id$"));
    assert!(vault.verify(&stored, &password));
    assert!(!vault.verify(&stored, &generate_operator_password()));
}

#[test]
fn generated_tokens_have_the_documented_shape() {
    let tokens: Vec<_> = (0..64).map(|_| generate_operator_token()).collect();
    for token in &tokens {
        assert_eq!(token.len(), 47, "{token:?}");
        let body = token.strip_prefix("vgo_").unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), 32);
        // A generated token parses back as a bearer token.
        let header = format!("Bearer {}", token.as_str());
        match parse_operator_authorization(header.as_bytes()).unwrap() {
            OperatorCredential::Bearer(parsed) => assert_eq!(parsed.as_str(), token.as_str()),
            other => panic!("{other:?}"),
        }
    }
    let unique: HashSet<&str> = tokens.iter().map(|t| t.as_str()).collect();
    assert_eq!(unique.len(), tokens.len());
}

#[test]
fn token_hash_is_sha256_hex() {
    // Known answer: the FIPS 180-2 SHA-256 vector for "abc".
    assert_eq!(
        operator_token_hash("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let token = generate_operator_token();
    let hash = operator_token_hash(&token);
    assert_eq!(hash.len(), 64);
    assert_eq!(hash, operator_token_hash(&token));
    assert_ne!(hash, operator_token_hash(&generate_operator_token()));
    assert!(!hash.contains(token.strip_prefix("vgo_").unwrap()));
}

#[test]
fn operator_names() {
    for name in [
        "a",
        "ana",
        "ana.lima@clinic.example",
        "ops_bot-2",
        "A.B_C@D-9",
        &"x".repeat(64),
    ] {
        assert!(valid_operator_name(name), "{name:?}");
    }
    for name in [
        "",
        &"x".repeat(65),
        "ana lima",
        "ana:lima",
        "ana/lima",
        "ana\n",
        "anä",
        "ana\u{202e}",
        "<script>",
    ] {
        assert!(!valid_operator_name(name), "{name:?}");
    }
}

#[test]
fn parses_basic() {
    for header in [
        basic("ana@clinic.example:s3cret"),
        format!("basic {}", STANDARD.encode("ana@clinic.example:s3cret")).into_bytes(),
        format!(
            " BASIC \t {}  ",
            STANDARD.encode("ana@clinic.example:s3cret")
        )
        .into_bytes(),
    ] {
        match parse_operator_authorization(&header).unwrap() {
            OperatorCredential::Basic { name, password } => {
                assert_eq!(name, "ana@clinic.example");
                assert_eq!(password.as_str(), "s3cret");
            }
            other => panic!("{other:?}"),
        }
    }
    // The password may contain colons and spaces; the name ends at the first colon.
    match parse_operator_authorization(&basic("ana:pa:ss word:")).unwrap() {
        OperatorCredential::Basic { name, password } => {
            assert_eq!(name, "ana");
            assert_eq!(password.as_str(), "pa:ss word:");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn parses_bearer() {
    for (header, token) in [
        ("Bearer vgo_abc-DEF_123", "vgo_abc-DEF_123"),
        ("bearer abc.def~ghi+jk/l==", "abc.def~ghi+jk/l=="),
        ("  BEARER\tx  ", "x"),
    ] {
        match parse_operator_authorization(header.as_bytes()).unwrap() {
            OperatorCredential::Bearer(parsed) => assert_eq!(parsed.as_str(), token),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn malformed_headers_are_refused() {
    let not_utf8 = format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', b'a'])).into_bytes();
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"   ".to_vec(),
        b"Basic".to_vec(),
        b"Basic ".to_vec(),
        b"Bearer".to_vec(),
        b"Bearer   ".to_vec(),
        b"BasicYW5hOnB3".to_vec(),
        b"Digest YW5hOnB3".to_vec(),
        b"Token vgo_abc".to_vec(),
        b"Basic !!!notbase64".to_vec(),
        b"Basic YW5hOnB3=".to_vec(), // bad padding
        b"Basic YW5hOnB3 x".to_vec(),
        basic("anapassword"), // no colon
        basic(":password"),   // empty name
        basic("ana:"),        // empty password
        basic("ana lima:pw"), // invalid name
        basic(&format!("{}:pw", "x".repeat(65))),
        not_utf8,
        b"Bearer vgo abc".to_vec(),
        b"Bearer ===".to_vec(),
        b"Bearer a=b".to_vec(),
        b"Bearer vgo_\xc3\xa9".to_vec(),
        b"Bearer vgo_abc\x00".to_vec(),
        b"Bearer \"vgo_abc\"".to_vec(),
    ];
    for case in cases {
        let err = parse_operator_authorization(&case).unwrap_err();
        assert_eq!(
            err,
            OperatorAuthError::Malformed,
            "{}",
            String::from_utf8_lossy(&case)
        );
    }
}

#[test]
fn oversized_headers_are_refused_before_parsing() {
    let token = "a".repeat(MAX_AUTHORIZATION_LEN - "Bearer ".len());
    let at_limit = format!("Bearer {token}");
    assert_eq!(at_limit.len(), MAX_AUTHORIZATION_LEN);
    assert!(parse_operator_authorization(at_limit.as_bytes()).is_ok());
    let over = format!("Bearer {token}a");
    assert_eq!(
        parse_operator_authorization(over.as_bytes()).unwrap_err(),
        OperatorAuthError::TooLong
    );
    // Even garbage is TooLong, not Malformed, once over the limit.
    assert_eq!(
        parse_operator_authorization(&vec![0xff; MAX_AUTHORIZATION_LEN + 1]).unwrap_err(),
        OperatorAuthError::TooLong
    );
}

#[test]
fn debug_and_errors_never_show_secrets() {
    let basic_cred = parse_operator_authorization(&basic("ana:hunter2-secret")).unwrap();
    let debug = format!("{basic_cred:?}");
    assert!(debug.contains("ana"), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");

    let bearer = parse_operator_authorization(b"Bearer vgo_topsecrettoken").unwrap();
    let debug = format!("{bearer:?}");
    assert_eq!(debug, "Bearer([redacted])");

    for err in [OperatorAuthError::TooLong, OperatorAuthError::Malformed] {
        let message = err.to_string();
        assert!(message.contains("Authorization"), "{message}");
        assert!(!message.contains("vgo_"), "{message}");
    }
}
