use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead as _, Payload};

use super::*;

const AAD: RecordAad<'static> = RecordAad {
    record_id: "rec_0001",
    subject: "pat_001",
    kind: "transcript",
};

fn key_text(fill: u8, len: usize) -> String {
    STANDARD.encode(vec![fill; len])
}

fn records_key(fill: u8) -> RecordsKey {
    RecordsKey::from_base64(&key_text(fill, 32)).unwrap()
}

fn keyring(current: u8, previous: &[u8]) -> RecordsKeyring {
    RecordsKeyring::new(
        records_key(current),
        previous.iter().map(|fill| records_key(*fill)).collect(),
    )
}

#[test]
fn seal_open_round_trip() {
    let key = DataKey::generate();
    for plaintext in [
        &b""[..],
        b"x",
        "Maria: my date of birth is 1984-03-12".as_bytes(),
    ] {
        let sealed = seal(&key, &AAD, plaintext).unwrap();
        assert_eq!(sealed.len(), NONCE_LEN + plaintext.len() + TAG_LEN);
        if plaintext.len() > 4 {
            assert!(!sealed
                .windows(4)
                .any(|w| plaintext.windows(4).any(|p| p == w)));
        }
        assert_eq!(open(&key, &AAD, &sealed).unwrap().as_slice(), plaintext);
    }
    // A fresh nonce each time: the same body seals differently.
    assert_ne!(
        seal(&key, &AAD, b"same").unwrap(),
        seal(&key, &AAD, b"same").unwrap()
    );
}

#[test]
fn sealed_format_is_nonce_ciphertext_tag_over_the_documented_aad() {
    // Decrypt with the crate directly, from the documented layout and AAD encoding.
    let key = DataKey::generate();
    let sealed = seal(&key, &AAD, b"summary text").unwrap();
    let mut aad = Vec::new();
    for field in ["voxguard/record/v1", "rec_0001", "pat_001", "transcript"] {
        aad.extend_from_slice(&(field.len() as u64).to_be_bytes());
        aad.extend_from_slice(field.as_bytes());
    }
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key.0.as_slice()));
    let plain = cipher
        .decrypt(
            XNonce::from_slice(&sealed[..24]),
            Payload {
                msg: &sealed[24..],
                aad: &aad,
            },
        )
        .unwrap();
    assert_eq!(plain, b"summary text");
}

#[test]
fn swapped_rows_do_not_decrypt() {
    let key = DataKey::generate();
    let sealed = seal(&key, &AAD, b"transcript of pat_001").unwrap();
    let others = [
        RecordAad {
            record_id: "rec_0002",
            ..AAD
        },
        RecordAad {
            subject: "pat_002",
            ..AAD
        },
        RecordAad {
            kind: "summary",
            ..AAD
        },
        RecordAad {
            record_id: "",
            subject: "",
            kind: "",
        },
    ];
    for other in others {
        assert_eq!(
            open(&key, &other, &sealed).unwrap_err(),
            RecordCryptoError::Tampered,
            "{other:?}"
        );
    }
    // Another subject's data key does not open it either.
    assert_eq!(
        open(&DataKey::generate(), &AAD, &sealed).unwrap_err(),
        RecordCryptoError::Tampered
    );
}

#[test]
fn aad_is_length_prefixed() {
    // Known answer: the exact bytes of a small encoding.
    assert_eq!(
        encode_aad(&["ab", "c"]),
        [
            &[0, 0, 0, 0, 0, 0, 0, 2][..],
            b"ab",
            &[0, 0, 0, 0, 0, 0, 0, 1],
            b"c"
        ]
        .concat()
    );
    assert_ne!(encode_aad(&["ab", "c"]), encode_aad(&["a", "bc"]));
    assert_ne!(encode_aad(&["ab", ""]), encode_aad(&["a", "b"]));

    // Fields that concatenate to the same text bind differently.
    let key = DataKey::generate();
    let one = RecordAad {
        record_id: "ab",
        subject: "c",
        kind: "summary",
    };
    let two = RecordAad {
        record_id: "a",
        subject: "bc",
        kind: "summary",
    };
    let sealed = seal(&key, &one, b"body").unwrap();
    assert_eq!(open(&key, &one, &sealed).unwrap().as_slice(), b"body");
    assert_eq!(
        open(&key, &two, &sealed).unwrap_err(),
        RecordCryptoError::Tampered
    );
}

#[test]
fn every_flipped_bit_is_refused() {
    let key = DataKey::generate();
    let sealed = seal(&key, &AAD, b"card ending 4242 was declined").unwrap();
    // Each byte of the nonce, the ciphertext and the tag.
    for index in 0..sealed.len() {
        for bit in [0x01u8, 0x80] {
            let mut altered = sealed.clone();
            altered[index] ^= bit;
            assert_eq!(
                open(&key, &AAD, &altered).unwrap_err(),
                RecordCryptoError::Tampered,
                "byte {index} bit {bit:#x}"
            );
        }
    }
    // An appended byte shifts the tag.
    let mut longer = sealed.clone();
    longer.push(0);
    assert_eq!(
        open(&key, &AAD, &longer).unwrap_err(),
        RecordCryptoError::Tampered
    );
}

#[test]
fn truncated_ciphertexts_are_malformed_or_tampered() {
    let key = DataKey::generate();
    let sealed = seal(&key, &AAD, b"hello").unwrap();
    for len in 0..NONCE_LEN + TAG_LEN {
        assert_eq!(
            open(&key, &AAD, &sealed[..len]).unwrap_err(),
            RecordCryptoError::Malformed,
            "{len}"
        );
    }
    for len in NONCE_LEN + TAG_LEN..sealed.len() {
        assert_eq!(
            open(&key, &AAD, &sealed[..len]).unwrap_err(),
            RecordCryptoError::Tampered,
            "{len}"
        );
    }
}

#[test]
fn wrap_unwrap_round_trip_bound_to_subject() {
    let ring = keyring(1, &[]);
    let data_key = DataKey::generate();
    let sealed = seal(&data_key, &AAD, b"body").unwrap();
    let wrapped = ring.wrap("pat_001", &data_key);
    assert_eq!(wrapped.kek_id, ring.current().id());
    assert_eq!(wrapped.blob.len(), WRAPPED_LEN);
    assert!(!wrapped
        .blob
        .windows(8)
        .any(|w| data_key.0.windows(8).any(|k| k == w)));

    let unwrapped = ring.unwrap("pat_001", &wrapped).unwrap();
    assert_eq!(unwrapped.0.as_slice(), data_key.0.as_slice());
    assert_eq!(open(&unwrapped, &AAD, &sealed).unwrap().as_slice(), b"body");

    for subject in ["pat_002", "", "pat_00", "pat_0011"] {
        assert_eq!(
            ring.unwrap(subject, &wrapped).unwrap_err(),
            RecordCryptoError::Tampered,
            "{subject}"
        );
    }
    // The same KEK under another keyring instance is the same key.
    assert!(keyring(1, &[]).unwrap("pat_001", &wrapped).is_ok());
    // Wrapping twice gives different blobs (fresh nonce), both valid.
    assert_ne!(ring.wrap("pat_001", &data_key), wrapped);
}

#[test]
fn damaged_wrapped_keys_are_refused() {
    let ring = keyring(1, &[]);
    let wrapped = ring.wrap("pat_001", &DataKey::generate());
    for index in 0..wrapped.blob.len() {
        let mut altered = wrapped.clone();
        altered.blob[index] ^= 0x01;
        assert_eq!(
            ring.unwrap("pat_001", &altered).unwrap_err(),
            RecordCryptoError::Tampered,
            "byte {index}"
        );
    }
    for blob in [
        Vec::new(),
        wrapped.blob[..WRAPPED_LEN - 1].to_vec(),
        [&wrapped.blob[..], &[0]].concat(),
    ] {
        let altered = WrappedKey {
            blob,
            ..wrapped.clone()
        };
        assert_eq!(
            ring.unwrap("pat_001", &altered).unwrap_err(),
            RecordCryptoError::Malformed
        );
    }
    // A key id that is not a key id is malformed, not echoed back as an unknown key.
    for kek_id in [
        "",
        "0123",
        "0123456789ABCDEF",
        "0123456789abcdeg",
        "0123456789abcdef0",
        "'; drop table keys; --",
    ] {
        let altered = WrappedKey {
            kek_id: kek_id.to_owned(),
            ..wrapped.clone()
        };
        assert_eq!(
            ring.unwrap("pat_001", &altered).unwrap_err(),
            RecordCryptoError::Malformed,
            "{kek_id}"
        );
    }
}

#[test]
fn a_keyring_without_the_kek_reports_its_id() {
    let old = keyring(1, &[]);
    let wrapped = old.wrap("pat_001", &DataKey::generate());
    let other = keyring(2, &[3]);
    let err = other.unwrap("pat_001", &wrapped).unwrap_err();
    assert_eq!(
        err,
        RecordCryptoError::UnknownKey {
            kek_id: old.current().id().to_owned()
        }
    );
    let message = err.to_string();
    assert!(message.contains(old.current().id()), "{message}");
    assert!(
        message.contains("VOXGUARD_RECORDS_KEYS_PREVIOUS"),
        "{message}"
    );
    assert_eq!(
        other.rewrap("pat_001", &wrapped).unwrap_err(),
        RecordCryptoError::UnknownKey {
            kek_id: old.current().id().to_owned()
        }
    );
}

#[test]
fn rotation_rewraps_without_touching_bodies() {
    let old_ring = keyring(1, &[]);
    let data_key = DataKey::generate();
    let sealed = seal(&data_key, &AAD, b"kept across rotation").unwrap();
    let wrapped_old = old_ring.wrap("pat_001", &data_key);

    // During rotation: current = new, previous = [old].
    let rotating = keyring(2, &[1]);
    assert_eq!(
        rotating.ids(),
        vec![records_key(2).id(), records_key(1).id()]
    );
    let unwrapped = rotating.unwrap("pat_001", &wrapped_old).unwrap();
    assert_eq!(
        open(&unwrapped, &AAD, &sealed).unwrap().as_slice(),
        b"kept across rotation"
    );

    let wrapped_new = rotating
        .rewrap("pat_001", &wrapped_old)
        .unwrap()
        .expect("under the old key, so re-wrapped");
    assert_eq!(wrapped_new.kek_id, records_key(2).id());
    assert_ne!(wrapped_new.kek_id, wrapped_old.kek_id);

    // After rotation only the new key is configured: the re-wrapped key still opens the
    // unchanged body, the old wrapping does not.
    let new_only = keyring(2, &[]);
    let unwrapped = new_only.unwrap("pat_001", &wrapped_new).unwrap();
    assert_eq!(
        open(&unwrapped, &AAD, &sealed).unwrap().as_slice(),
        b"kept across rotation"
    );
    assert!(matches!(
        new_only.unwrap("pat_001", &wrapped_old),
        Err(RecordCryptoError::UnknownKey { .. })
    ));
    // The re-wrapped key is still bound to its subject.
    assert_eq!(
        new_only.unwrap("pat_002", &wrapped_new).unwrap_err(),
        RecordCryptoError::Tampered
    );
}

#[test]
fn rewrap_of_a_current_key_is_none_but_still_checked() {
    let ring = keyring(2, &[1]);
    let wrapped = ring.wrap("pat_001", &DataKey::generate());
    assert_eq!(ring.rewrap("pat_001", &wrapped).unwrap(), None);
    let mut damaged = wrapped.clone();
    damaged.blob[30] ^= 0x40;
    assert_eq!(
        ring.rewrap("pat_001", &damaged).unwrap_err(),
        RecordCryptoError::Tampered
    );
    assert_eq!(
        ring.rewrap("pat_002", &wrapped).unwrap_err(),
        RecordCryptoError::Tampered
    );
}

#[test]
fn keys_parse_like_secret_keys_and_have_their_own_ids() {
    let bytes: Vec<u8> = (0u8..48).map(|i| i.wrapping_mul(29) ^ 0x5c).collect();
    let id = RecordsKey::from_base64(&STANDARD.encode(&bytes))
        .unwrap()
        .id()
        .to_owned();
    assert!(is_key_id(&id), "{id}");
    for text in [
        URL_SAFE_NO_PAD.encode(&bytes),
        format!(" {}\n", STANDARD.encode(&bytes)),
    ] {
        assert_eq!(RecordsKey::from_base64(&text).unwrap().id(), id);
    }
    // Same text as a token key: a different id (and KEK).
    let as_secret = SecretKey::from_bytes(bytes.clone()).unwrap();
    assert_ne!(as_secret.id(), id);
    // Known answer for the id's definition.
    let kek = as_secret.derive_bytes("voxguard/records-kek/v1");
    let digest = Sha256::new()
        .chain_update(b"voxguard/records-key-id/v1\0")
        .chain_update(kek.as_slice())
        .finalize();
    assert_eq!(id, to_hex(&digest[..8]));

    assert_eq!(
        RecordsKey::from_base64(&key_text(7, 31)).unwrap_err(),
        RecordsKeyError::TooShort { len: 31 }
    );
    assert_eq!(
        RecordsKey::from_base64("not base64!").unwrap_err(),
        RecordsKeyError::NotBase64
    );
    assert_eq!(
        RecordsKey::from_base64("").unwrap_err(),
        RecordsKeyError::TooShort { len: 0 }
    );
    let message = RecordsKeyError::TooShort { len: 31 }.to_string();
    assert!(
        message.contains("31") && message.contains("32"),
        "{message}"
    );
}

#[test]
fn generated_keys_round_trip_through_their_text() {
    let (key, text) = RecordsKey::generate();
    assert_eq!(STANDARD.decode(text.as_bytes()).unwrap().len(), 32);
    assert_eq!(RecordsKey::from_base64(&text).unwrap().id(), key.id());
    let (other, other_text) = RecordsKey::generate();
    assert_ne!(other.id(), key.id());
    assert_ne!(*other_text, *text);
}

#[test]
fn keyring_from_text() {
    let (a, b, c) = (key_text(1, 32), key_text(2, 32), key_text(3, 64));
    let ids = |ring: &RecordsKeyring| -> Vec<String> {
        ring.ids().into_iter().map(str::to_owned).collect()
    };
    let want = |fills: &[u8]| -> Vec<String> {
        fills
            .iter()
            .map(|fill| {
                let len = if *fill == 3 { 64 } else { 32 };
                RecordsKey::from_base64(&key_text(*fill, len))
                    .unwrap()
                    .id()
                    .to_owned()
            })
            .collect()
    };
    for previous in [None, Some(""), Some("  \n"), Some(",")] {
        let ring = RecordsKeyring::from_text(&a, previous).unwrap();
        assert_eq!(ids(&ring), want(&[1]), "{previous:?}");
    }
    let comma = format!("{b}, {c},");
    let spaces = format!("{b}\n{c}");
    for previous in [comma.as_str(), spaces.as_str()] {
        let ring = RecordsKeyring::from_text(&a, Some(previous)).unwrap();
        assert_eq!(ids(&ring), want(&[1, 2, 3]), "{previous:?}");
    }
    // With commas, a key wrapped over lines (as `openssl rand -base64 64` prints it) is one key.
    let wrapped_c = format!("{}\n{}", &c[..64], &c[64..]);
    let ring = RecordsKeyring::from_text(&a, Some(&format!("{wrapped_c},{b}"))).unwrap();
    assert_eq!(ids(&ring), want(&[1, 3, 2]));
    // Duplicates (of the current key or each other) are dropped.
    let ring = RecordsKeyring::from_text(&a, Some(&format!("{a},{b},{b}"))).unwrap();
    assert_eq!(ids(&ring), want(&[1, 2]));
    // Any bad key is an error.
    assert_eq!(
        RecordsKeyring::from_text(&a, Some(&format!("{b},{}", key_text(9, 16)))).unwrap_err(),
        RecordsKeyError::TooShort { len: 16 }
    );
    assert_eq!(
        RecordsKeyring::from_text("???", None).unwrap_err(),
        RecordsKeyError::NotBase64
    );
}

#[test]
fn debug_never_shows_key_material() {
    let text = key_text(0xAB, 32);
    let key = RecordsKey::from_base64(&text).unwrap();
    let ring = RecordsKeyring::new(key.clone(), vec![records_key(0xCD)]);
    let data_key = DataKey::generate();
    let kek_hex = to_hex(key.kek.as_slice());
    let data_hex = to_hex(data_key.0.as_slice());
    for debug in [
        format!("{key:?}"),
        format!("{ring:?}"),
        format!("{data_key:?}"),
        format!("{:#?}", (&key, &ring, &data_key)),
    ] {
        assert!(!debug.contains(&text[..16]), "{debug}");
        assert!(!debug.contains(&kek_hex[..16]), "{debug}");
        assert!(!debug.contains(&data_hex[..16]), "{debug}");
        assert!(!debug.to_lowercase().contains("abab"), "{debug}");
        assert!(!debug.contains("171, 171"), "{debug}"); // 0xAB as a decimal byte list
    }
    assert_eq!(format!("{data_key:?}"), "DataKey([redacted])");
    assert!(format!("{ring:?}").contains(key.id()));
    assert!(format!("{key:?}").contains(key.id()));
}

#[test]
fn errors_show_no_secrets() {
    let messages = [
        RecordCryptoError::Tampered.to_string(),
        RecordCryptoError::Malformed.to_string(),
        RecordCryptoError::TooLarge.to_string(),
        RecordsKeyError::NotBase64.to_string(),
    ];
    assert!(messages[0].contains("another record, subject or kind"));
    for message in messages {
        assert!(!message.contains("pat_"), "{message}");
    }
}
