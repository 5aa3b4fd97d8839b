//! Envelope encryption of conversation records with XChaCha20-Poly1305.
//!
//! Two layers of keys. Each subject (a customer or patient) has its own random [`DataKey`];
//! record bodies are sealed under it ([`seal`], [`open`]) with associated data that binds the
//! record id, subject and kind ([`RecordAad`]), so a ciphertext copied into another row does not
//! decrypt. The data key itself is stored only wrapped ([`WrappedKey`]) by a key-encryption key
//! ([`RecordsKey`], from `VOXGUARD_RECORDS_KEY`); a [`RecordsKeyring`] holds the current KEK and
//! the previous ones during a rotation, and re-wraps data keys without touching the bodies.
//! Deleting a subject's wrapped key makes all its bodies unreadable, backups included.
//!
//! This module owns the formats (`nonce || ciphertext || tag`, the length-prefixed associated
//! data, the KEK derivation and id) and keeps every key zeroized and out of `Debug`. It must not
//! store anything, read the environment, log, or decide who may decrypt: the store persists
//! the blobs, the runtime reads the keys, and [`crate::records::rbac`] decides access. The
//! cipher is the `chacha20poly1305` crate's; nothing here is home-made cryptography.

use std::fmt;

use chacha20poly1305::aead::AeadInPlace as _;
use chacha20poly1305::{Key, KeyInit as _, Tag, XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::canonical::to_hex;
use crate::key::{KeyError, SecretKey};

/// Bytes of an XChaCha20-Poly1305 nonce.
const NONCE_LEN: usize = 24;
/// Bytes of a Poly1305 tag.
const TAG_LEN: usize = 16;
/// Bytes of a data key.
const DATA_KEY_LEN: usize = 32;
/// Bytes of a wrapped data key's blob: nonce, encrypted key, tag.
const WRAPPED_LEN: usize = NONCE_LEN + DATA_KEY_LEN + TAG_LEN;
/// Hex characters of a records key id.
const KEY_ID_HEX_LEN: usize = 16;

/// Purpose under which the KEK is derived from the configured key (see [`SecretKey::derive`]).
const KEK_PURPOSE: &str = "voxguard/records-kek/v1";
/// Domain tag of a records key id (distinct from token key ids, even for the same text).
const KEY_ID_DOMAIN: &[u8] = b"voxguard/records-key-id/v1\0";
/// Domain tag of a wrapped data key's associated data.
const DEK_DOMAIN: &str = "voxguard/dek/v1";
/// Domain tag of a record body's associated data.
const RECORD_DOMAIN: &str = "voxguard/record/v1";

/// The key-encryption key (KEK), from `VOXGUARD_RECORDS_KEY` (base64, at least 32 bytes).
///
/// The 32-byte KEK is derived from the configured bytes (SHA-256 with a domain tag), so a key
/// of any length ≥ 32 bytes works, and the same text used for another voxguard key still gives
/// an unrelated KEK. The KEK is zeroized on drop; `Debug` shows only the public [`id`](Self::id).
///
/// ```
/// use voxguard_guard::records::{RecordsKey, RecordsKeyError};
///
/// let key = RecordsKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
/// assert_eq!(key.id().len(), 16);
/// assert!(!format!("{key:?}").contains("AAEC"));
/// assert_eq!(
///     RecordsKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==").unwrap_err(),
///     RecordsKeyError::TooShort { len: 31 },
/// );
/// ```
#[derive(Clone)]
pub struct RecordsKey {
    id: String,
    kek: Zeroizing<[u8; 32]>,
}

impl RecordsKey {
    /// A key from base64 text: standard or URL-safe alphabet, padded or not, whitespace ignored
    /// (the same rules as [`SecretKey::from_base64`]).
    ///
    /// # Errors
    ///
    /// [`RecordsKeyError::NotBase64`], or [`RecordsKeyError::TooShort`] below 32 decoded bytes.
    pub fn from_base64(text: &str) -> Result<Self, RecordsKeyError> {
        let secret = SecretKey::from_base64(text).map_err(|error| match error {
            KeyError::NotBase64 => RecordsKeyError::NotBase64,
            KeyError::TooShort { len } => RecordsKeyError::TooShort { len },
        })?;
        Ok(Self::from_secret(&secret))
    }

    /// A fresh random key (32 bytes from the operating system's CSPRNG) and its standard
    /// base64 text, to be shown once (e.g. by `voxguard keys`) and then configured.
    pub fn generate() -> (Self, Zeroizing<String>) {
        let (secret, text) = SecretKey::generate_with_base64();
        (Self::from_secret(&secret), text)
    }

    /// The public key id: 16 lowercase hex characters, the first 8 bytes of
    /// SHA-256(`"voxguard/records-key-id/v1\0"` || KEK). Safe to log and to store beside each
    /// wrapped data key.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn from_secret(secret: &SecretKey) -> Self {
        let kek = secret.derive_bytes(KEK_PURPOSE);
        let digest = Sha256::new()
            .chain_update(KEY_ID_DOMAIN)
            .chain_update(kek.as_slice())
            .finalize();
        let id = to_hex(digest.get(..KEY_ID_HEX_LEN / 2).unwrap_or_default());
        Self { id, kek }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(self.kek.as_slice()))
    }
}

impl fmt::Debug for RecordsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordsKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The current key-encryption key and the previous ones, kept during a rotation so that data
/// keys wrapped by them still unwrap until [`rewrap`](Self::rewrap) has moved them.
///
/// `Debug` shows only the key ids.
#[derive(Clone)]
pub struct RecordsKeyring {
    current: RecordsKey,
    previous: Vec<RecordsKey>,
}

impl RecordsKeyring {
    /// A keyring; previous keys equal to the current one or to each other are dropped.
    pub fn new(current: RecordsKey, previous: Vec<RecordsKey>) -> Self {
        let mut kept: Vec<RecordsKey> = Vec::with_capacity(previous.len());
        for key in previous {
            if key.id != current.id && kept.iter().all(|k| k.id != key.id) {
                kept.push(key);
            }
        }
        Self {
            current,
            previous: kept,
        }
    }

    /// A keyring from the text of `VOXGUARD_RECORDS_KEY` and `VOXGUARD_RECORDS_KEYS_PREVIOUS`.
    ///
    /// `previous` holds base64 keys separated by commas, or — when it has no comma — by
    /// whitespace. With commas, whitespace inside each key is ignored, which is how to give a
    /// long key that `openssl rand -base64` wrapped over several lines. Empty or `None` means no
    /// previous keys.
    ///
    /// # Errors
    ///
    /// The first key that is not base64 or is shorter than 32 bytes.
    pub fn from_text(current: &str, previous: Option<&str>) -> Result<Self, RecordsKeyError> {
        let current = RecordsKey::from_base64(current)?;
        let previous = previous.unwrap_or_default();
        let pieces: Vec<&str> = if previous.contains(',') {
            previous
                .split(',')
                .filter(|piece| !piece.trim().is_empty())
                .collect()
        } else {
            previous.split_ascii_whitespace().collect()
        };
        let previous = pieces
            .into_iter()
            .map(RecordsKey::from_base64)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(current, previous))
    }

    /// The key new data keys are wrapped by.
    pub fn current(&self) -> &RecordsKey {
        &self.current
    }

    /// The ids of all keys, the current one first.
    pub fn ids(&self) -> Vec<&str> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(RecordsKey::id)
            .collect()
    }

    /// Wrap `subject`'s data key under the current KEK. The associated data binds the subject
    /// (domain `"voxguard/dek/v1"`), so a wrapped key moved to another subject does not unwrap.
    pub fn wrap(&self, subject: &str, key: &DataKey) -> WrappedKey {
        let aad = encode_aad(&[DEK_DOMAIN, subject]);
        // Sealing 32 bytes cannot exceed the cipher's limit. Were it to fail anyway, the empty
        // blob is refused by `unwrap` as malformed: nothing is ever stored in clear.
        let blob = seal_raw(&self.current.cipher(), &aad, key.0.as_slice()).unwrap_or_default();
        WrappedKey {
            kek_id: self.current.id.clone(),
            blob,
        }
    }

    /// Unwrap `subject`'s data key with whichever KEK `wrapped.kek_id` names (current or
    /// previous).
    ///
    /// # Errors
    ///
    /// [`RecordCryptoError::Malformed`] when the key id is not a key id or the blob has the
    /// wrong length, [`RecordCryptoError::UnknownKey`] when no configured KEK has that id,
    /// [`RecordCryptoError::Tampered`] when it does not decrypt (altered, or another subject's).
    pub fn unwrap(
        &self,
        subject: &str,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, RecordCryptoError> {
        if !is_key_id(&wrapped.kek_id) || wrapped.blob.len() != WRAPPED_LEN {
            return Err(RecordCryptoError::Malformed);
        }
        let kek = self
            .find(&wrapped.kek_id)
            .ok_or_else(|| RecordCryptoError::UnknownKey {
                kek_id: wrapped.kek_id.clone(),
            })?;
        let aad = encode_aad(&[DEK_DOMAIN, subject]);
        let plain = open_raw(&kek.cipher(), &aad, &wrapped.blob)?;
        if plain.len() != DATA_KEY_LEN {
            return Err(RecordCryptoError::Malformed);
        }
        let mut key = DataKey(Zeroizing::new([0u8; DATA_KEY_LEN]));
        key.0.copy_from_slice(&plain);
        Ok(key)
    }

    /// Re-wrap `subject`'s data key under the current KEK if another KEK wrapped it; `Ok(None)`
    /// when it is already under the current one. The bodies sealed with the data key are
    /// untouched: the data key itself does not change.
    ///
    /// # Errors
    ///
    /// As [`unwrap`](Self::unwrap) — checked even when the key is already current, so a rotation
    /// run reports a damaged key instead of calling it up to date.
    pub fn rewrap(
        &self,
        subject: &str,
        wrapped: &WrappedKey,
    ) -> Result<Option<WrappedKey>, RecordCryptoError> {
        let key = self.unwrap(subject, wrapped)?;
        if wrapped.kek_id == self.current.id {
            return Ok(None);
        }
        Ok(Some(self.wrap(subject, &key)))
    }

    fn find(&self, id: &str) -> Option<&RecordsKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == id)
    }
}

impl fmt::Debug for RecordsKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordsKeyring")
            .field("current", &self.current.id)
            .field(
                "previous",
                &self.previous.iter().map(RecordsKey::id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A subject's random 256-bit data key: record bodies are sealed under it.
///
/// Zeroized on drop; `Debug` prints `DataKey([redacted])`; not `Clone`. It is persisted only
/// wrapped ([`RecordsKeyring::wrap`]).
pub struct DataKey(Zeroizing<[u8; DATA_KEY_LEN]>);

impl DataKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        OsRng.fill_bytes(key.as_mut_slice());
        Self(key)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(self.0.as_slice()))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// A data key encrypted by a KEK: `blob` = 24-byte nonce || encrypted key || 16-byte tag.
///
/// Not secret (it is useless without the KEK), but bound to its subject.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WrappedKey {
    /// The [`RecordsKey::id`] of the KEK that wrapped it.
    pub kek_id: String,
    /// Nonce, ciphertext and tag.
    pub blob: Vec<u8>,
}

/// What a record's ciphertext is bound to: moving a ciphertext to a row with another id,
/// subject or kind makes [`open`] fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordAad<'a> {
    /// The record's id.
    pub record_id: &'a str,
    /// The subject the record belongs to.
    pub subject: &'a str,
    /// The record's kind (`summary`, `transcript`, …).
    pub kind: &'a str,
}

impl RecordAad<'_> {
    fn encode(&self) -> Vec<u8> {
        encode_aad(&[RECORD_DOMAIN, self.record_id, self.subject, self.kind])
    }
}

/// Encrypt a record body under `key`: returns a random 24-byte nonce || ciphertext || tag.
///
/// The associated data is an unambiguous encoding of (`"voxguard/record/v1"`, record id,
/// subject, kind): each field is preceded by its length as 8 big-endian bytes, so
/// (`"ab"`, `"c"`) and (`"a"`, `"bc"`) differ.
///
/// ```
/// use voxguard_guard::records::{open, seal, DataKey, RecordAad};
///
/// let key = DataKey::generate();
/// let aad = RecordAad { record_id: "rec_1", subject: "pat_001", kind: "transcript" };
/// let sealed = seal(&key, &aad, b"hello")?;
/// assert_eq!(open(&key, &aad, &sealed)?.as_slice(), b"hello");
/// let other = RecordAad { record_id: "rec_2", ..aad };
/// assert!(open(&key, &other, &sealed).is_err());
/// # Ok::<(), voxguard_guard::records::RecordCryptoError>(())
/// ```
///
/// # Errors
///
/// [`RecordCryptoError::TooLarge`] for a body beyond the cipher's limit (256 GiB).
pub fn seal(
    key: &DataKey,
    aad: &RecordAad<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>, RecordCryptoError> {
    seal_raw(&key.cipher(), &aad.encode(), plaintext).ok_or(RecordCryptoError::TooLarge)
}

/// Decrypt a body sealed by [`seal`] with the same key and associated data.
///
/// # Errors
///
/// [`RecordCryptoError::Malformed`] when `sealed` is too short to hold a nonce and tag,
/// [`RecordCryptoError::Tampered`] when it does not decrypt: altered, sealed under another key,
/// or bound to another record id, subject or kind.
pub fn open(
    key: &DataKey,
    aad: &RecordAad<'_>,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, RecordCryptoError> {
    open_raw(&key.cipher(), &aad.encode(), sealed)
}

/// Why a record or a wrapped key did not encrypt or decrypt. Messages show no key material and
/// no content; a key id is public.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordCryptoError {
    /// Authentication failed.
    #[error(
        "the record did not decrypt: it was altered, or it belongs to another record, subject or kind"
    )]
    Tampered,
    /// The wrapping KEK is neither the current nor a previous key.
    #[error(
        "the record's key was wrapped by key {kek_id}, which is not configured (is it missing from VOXGUARD_RECORDS_KEYS_PREVIOUS?)"
    )]
    UnknownKey {
        /// The public id of the missing KEK.
        kek_id: String,
    },
    /// Too short to hold a nonce and tag, or not in the format this module writes.
    #[error("the stored record or key is malformed (truncated, or not written by voxguard)")]
    Malformed,
    /// The body is beyond what the cipher can encrypt under one nonce.
    #[error("the record is too large to encrypt")]
    TooLarge,
}

/// Why a records key was refused. Messages never contain the key text.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RecordsKeyError {
    /// Not base64 (standard or URL-safe, padded or not).
    #[error("records key is not valid base64; make one with `openssl rand -base64 32`")]
    NotBase64,
    /// Fewer than 32 decoded bytes.
    #[error(
        "records key is {len} bytes; at least 32 bytes are needed (make one with `openssl rand -base64 32`)"
    )]
    TooShort {
        /// Decoded length of the key that was given, in bytes.
        len: usize,
    },
}

/// The unambiguous associated-data encoding: each field as its length (8 bytes, big-endian)
/// followed by its bytes.
fn encode_aad(fields: &[&str]) -> Vec<u8> {
    let len = fields.iter().map(|field| 8 + field.len()).sum();
    let mut out = Vec::with_capacity(len);
    for field in fields {
        out.extend_from_slice(&(field.len() as u64).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

/// `nonce || ciphertext || tag`, or `None` beyond the cipher's length limit.
fn seal_raw(cipher: &XChaCha20Poly1305, aad: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.resize(NONCE_LEN, 0);
    OsRng.fill_bytes(&mut out);
    let nonce = *XNonce::from_slice(&out);
    out.extend_from_slice(plaintext);
    let body = out.get_mut(NONCE_LEN..)?;
    let tag = cipher.encrypt_in_place_detached(&nonce, aad, body).ok()?;
    out.extend_from_slice(&tag);
    Some(out)
}

/// The plaintext of `nonce || ciphertext || tag`.
fn open_raw(
    cipher: &XChaCha20Poly1305,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, RecordCryptoError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(RecordCryptoError::Malformed);
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut plain = Zeroizing::new(body.to_vec());
    cipher
        .decrypt_in_place_detached(
            XNonce::from_slice(nonce),
            aad,
            plain.as_mut_slice(),
            Tag::from_slice(tag),
        )
        .map_err(|_| RecordCryptoError::Tampered)?;
    Ok(plain)
}

/// Whether `id` has the shape of a [`RecordsKey::id`].
fn is_key_id(id: &str) -> bool {
    id.len() == KEY_ID_HEX_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests;
