//! The one secret-key type: [`SecretKey`], the HMAC-SHA256 key behind function tokens, audit
//! checkpoints and, through [`crate::records::RecordsKey`], the records key-encryption key, with
//! its public key id and its one error type.
//!
//! This module owns how a key is accepted (raw bytes or base64 text, at least [`MIN_KEY_LEN`]
//! bytes), generated, identified and kept secret: the bytes are zeroized on drop, and so, as
//! far as safe code can, is the keyed HMAC state kept beside them (overwritten with a state of
//! an all-zero key before it is freed; the hmac crate offers no zeroize), `Debug` shows
//! only the public id, and the bytes never leave this module except as HMAC output or derived
//! keys (one-way: a derived key reveals nothing about the key it came from). It must not
//! know what a key signs — the token and checkpoint formats live in [`crate::token`] and
//! [`crate::audit`] — and it must not read keys from the environment or files (callers do).

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use rand::rngs::OsRng;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use zeroize::{Zeroize as _, Zeroizing};

use crate::canonical::to_hex;

/// Minimum length, in bytes, of a secret key.
pub const MIN_KEY_LEN: usize = 32;

/// Domain tag of the key id. It says "token" because token key ids were defined first; it
/// must stay as it is so that tokens minted before keep verifying.
const KEY_ID_DOMAIN: &[u8] = b"voxguard-token-key-id";

/// Domain tag of derived keys (a token or checkpoint message never starts with it).
const DERIVE_DOMAIN: &[u8] = b"voxguard-derived-key\0";

/// HMAC-SHA256, the one MAC of this crate.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// A secret HMAC-SHA256 key with its public key id.
///
/// The secret is zeroized on drop; `Debug` shows only the key id.
///
/// ```
/// use voxguard_guard::{KeyError, SecretKey};
///
/// let key = SecretKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
/// assert_eq!(key.id(), "4e3aa3cfa755d37f");
/// assert!(!format!("{key:?}").contains("AAEC"));
/// assert_eq!(SecretKey::from_bytes(vec![0; 8]).unwrap_err(), KeyError::TooShort { len: 8 });
/// ```
#[derive(Clone)]
pub struct SecretKey {
    id: String,
    secret: Zeroizing<Vec<u8>>,
    /// HMAC-SHA256 keyed with `secret` and nothing absorbed yet (`None` only if HMAC refused
    /// the key, which it never does): [`mac`](Self::mac) clones it instead of hashing the key
    /// into the inner and outer pads again on every call (two of a short MAC's four SHA-256
    /// blocks). It is what every per-call MAC state was already made of. Boxed, so that the
    /// structures holding a key stay small.
    keyed: Option<Box<HmacSha256>>,
}

impl SecretKey {
    /// A key from raw bytes (at least [`MIN_KEY_LEN`]).
    ///
    /// # Errors
    ///
    /// [`KeyError::TooShort`] when fewer than [`MIN_KEY_LEN`] bytes are given (the bytes are
    /// zeroized either way).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, KeyError> {
        let secret = Zeroizing::new(bytes);
        if secret.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort { len: secret.len() });
        }
        Ok(Self::from_secret(secret))
    }

    /// A key from base64 text: standard or URL-safe alphabet, padded or not; whitespace is
    /// ignored, including the line breaks `openssl rand -base64 64` puts in long keys.
    ///
    /// # Errors
    ///
    /// [`KeyError::NotBase64`] or [`KeyError::TooShort`].
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let compact: Zeroizing<String> =
            Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
        let decoded = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .into_iter()
            .find_map(|engine| engine.decode(compact.as_bytes()).ok())
            .ok_or(KeyError::NotBase64)?;
        Self::from_bytes(decoded)
    }

    /// A fresh random key of [`MIN_KEY_LEN`] bytes from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut secret = Zeroizing::new(vec![0u8; MIN_KEY_LEN]);
        OsRng.fill_bytes(&mut secret);
        Self::from_secret(secret)
    }

    /// A fresh random key, as [`generate`](Self::generate), with its standard base64 text, to
    /// be shown once so that it can be configured. Both are zeroized on drop.
    pub(crate) fn generate_with_base64() -> (Self, Zeroizing<String>) {
        let mut secret = Zeroizing::new(vec![0u8; MIN_KEY_LEN]);
        OsRng.fill_bytes(&mut secret);
        // Exact capacity (4 characters per 3 bytes, padded), so no reallocation leaves a copy.
        let mut text = Zeroizing::new(String::with_capacity(MIN_KEY_LEN.div_ceil(3) * 4));
        STANDARD.encode_string(secret.as_slice(), &mut text);
        (Self::from_secret(secret), text)
    }

    /// The public key id: the first 8 bytes of SHA-256(`"voxguard-token-key-id"` || secret),
    /// as 16 lowercase hex characters. Safe to log.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A key for another `purpose`, derived from this one: SHA-256(`"voxguard-derived-key\0"`
    /// || purpose || `\0` || secret). Whoever holds this key can derive it again, nobody else;
    /// knowing the derived key reveals nothing about this one.
    pub fn derive(&self, purpose: &str) -> SecretKey {
        let derived = self.derive_bytes(purpose);
        Self::from_secret(Zeroizing::new(derived.to_vec()))
    }

    /// The bytes of [`derive`](Self::derive)`(purpose)`, for the crate's own ciphers (the
    /// records key-encryption key). Zeroized on drop; they never leave the crate.
    pub(crate) fn derive_bytes(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let mut digest = Sha256::new()
            .chain_update(DERIVE_DOMAIN)
            .chain_update(purpose.as_bytes())
            .chain_update([0u8])
            .chain_update(self.secret.as_slice())
            .finalize();
        let mut derived = Zeroizing::new([0u8; 32]);
        derived.copy_from_slice(&digest);
        digest.as_mut_slice().zeroize();
        derived
    }

    /// The HMAC-SHA256 of `message` under this key as 64 lowercase hex characters: a stable
    /// pseudonym for `message` that only holders of the key can compute. `None` only if HMAC
    /// refused the key, which it never does; callers fail closed on `None`.
    pub fn mac_hex(&self, message: &[u8]) -> Option<String> {
        Some(to_hex(&self.mac(message)?.finalize().into_bytes()))
    }

    /// An HMAC-SHA256 keyed with this key that has already absorbed `message`.
    ///
    /// `None` only if HMAC refused the key, which it never does (it accepts any length);
    /// callers fail closed on `None`.
    pub(crate) fn mac(&self, message: &[u8]) -> Option<HmacSha256> {
        let mut mac = HmacSha256::clone(self.keyed.as_deref()?);
        mac.update(message);
        Some(mac)
    }

    fn from_secret(secret: Zeroizing<Vec<u8>>) -> Self {
        let digest = Sha256::new()
            .chain_update(KEY_ID_DOMAIN)
            .chain_update(secret.as_slice())
            .finalize();
        let id = to_hex(digest.get(..8).unwrap_or_default());
        let keyed = HmacSha256::new_from_slice(&secret).ok().map(Box::new);
        Self { id, secret, keyed }
    }
}

impl Drop for SecretKey {
    /// Overwrite the keyed HMAC state (which can forge MACs under this key) before its memory
    /// is freed; `black_box` keeps the store from being optimised away as dead.
    fn drop(&mut self) {
        if let Some(keyed) = self.keyed.as_deref_mut() {
            if let Ok(blank) = HmacSha256::new_from_slice(&[0u8; MIN_KEY_LEN]) {
                *keyed = blank;
            }
            std::hint::black_box(keyed);
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a secret key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not base64 (standard or URL-safe, padded or not).
    #[error("secret key is not valid base64; make one with `openssl rand -base64 32`")]
    NotBase64,
    /// The key is shorter than [`MIN_KEY_LEN`] bytes.
    #[error(
        "secret key is {len} bytes; at least 32 bytes are needed (make one with `openssl rand -base64 32`)"
    )]
    TooShort {
        /// Length of the key that was given, in bytes.
        len: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_bytes_and_base64() {
        assert_eq!(
            SecretKey::from_bytes(vec![1; 31]).unwrap_err(),
            KeyError::TooShort { len: 31 }
        );
        let msg = KeyError::TooShort { len: 31 }.to_string();
        assert!(msg.contains("31 bytes") && msg.contains("32") && msg.contains("openssl rand"));
        assert!(KeyError::NotBase64.to_string().contains("openssl rand"));

        let bytes: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) ^ 0xfb).collect();
        let id = SecretKey::from_bytes(bytes.clone())
            .unwrap()
            .id()
            .to_string();
        assert_eq!(id.len(), 16);
        assert!(id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        for text in [
            STANDARD.encode(&bytes),
            STANDARD_NO_PAD.encode(&bytes),
            URL_SAFE.encode(&bytes),
            URL_SAFE_NO_PAD.encode(&bytes),
            format!("  {}\n", STANDARD.encode(&bytes)),
            {
                let text = STANDARD.encode(&bytes);
                format!("{}\n{}\n", &text[..20], &text[20..])
            },
        ] {
            assert_eq!(SecretKey::from_base64(&text).unwrap().id(), id, "{text}");
        }
        assert_eq!(
            SecretKey::from_base64("not base64 at all!").unwrap_err(),
            KeyError::NotBase64
        );
        assert_eq!(
            SecretKey::from_base64(&STANDARD.encode([0u8; 16])).unwrap_err(),
            KeyError::TooShort { len: 16 }
        );
    }

    #[test]
    fn id_matches_definition_and_known_answer() {
        let secret = vec![0x42u8; 32];
        let mut h = Sha256::new();
        h.update(b"voxguard-token-key-id");
        h.update(&secret);
        let d = h.finalize();
        let expected: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(SecretKey::from_bytes(secret).unwrap().id(), expected);
        // Computed independently (Python hashlib) for the bytes 0..32.
        let key = SecretKey::from_bytes((0u8..32).collect()).unwrap();
        assert_eq!(key.id(), "4e3aa3cfa755d37f");
        assert_ne!(SecretKey::generate().id(), SecretKey::generate().id());
    }

    #[test]
    fn debug_shows_only_id() {
        let key = SecretKey::from_bytes(vec![0xAB; 32]).unwrap();
        let dbg = format!("{key:?}");
        assert!(dbg.contains(key.id()));
        assert!(!dbg.contains("171") && !dbg.to_lowercase().contains("abab"));
    }

    #[test]
    fn derived_keys_and_hex_macs() {
        let key = SecretKey::from_bytes((0u8..32).collect()).unwrap();
        let derived = key.derive("attempt-subjects");
        assert_eq!(derived.id(), key.derive("attempt-subjects").id(), "stable");
        assert_ne!(derived.id(), key.derive("other").id());
        assert_ne!(derived.id(), key.id());
        let mut h = Sha256::new();
        h.update(b"voxguard-derived-key\0attempt-subjects\0");
        h.update((0u8..32).collect::<Vec<u8>>());
        let expected = SecretKey::from_bytes(h.finalize().to_vec()).unwrap();
        assert_eq!(derived.id(), expected.id());

        let tag = key.mac_hex(b"message").unwrap();
        assert_eq!(tag.len(), 64);
        let mut theirs = HmacSha256::new_from_slice(&(0u8..32).collect::<Vec<u8>>()).unwrap();
        theirs.update(b"message");
        assert_eq!(tag, to_hex(&theirs.finalize().into_bytes()));
        assert_ne!(derived.mac_hex(b"message").unwrap(), tag);
    }

    #[test]
    fn mac_is_keyed_hmac_sha256() {
        let key = SecretKey::from_bytes(vec![7u8; 32]).unwrap();
        let ours = key.mac(b"message").unwrap().finalize().into_bytes();
        let mut theirs = HmacSha256::new_from_slice(&[7u8; 32]).unwrap();
        theirs.update(b"message");
        assert_eq!(ours, theirs.finalize().into_bytes());
        // Each MAC starts from the bare keyed state: nothing of an earlier one carries over.
        assert_eq!(key.mac(b"message").unwrap().finalize().into_bytes(), ours);
        let other = SecretKey::from_bytes(vec![8u8; 32]).unwrap();
        assert_ne!(other.mac(b"message").unwrap().finalize().into_bytes(), ours);
    }
}
