//! Operator credentials for the records API: generated passwords and bearer tokens, the hash a
//! token is looked up by, operator names, and the parsing of the `Authorization` header.
//!
//! Operators are staff (auditors, supervisors, compliance officers, admins), never the
//! platform: their credentials are separate from the SWML Basic credentials. A password is
//! shown once and stored as an argon2id hash made by [`crate::PinVault`] (no password code
//! here); a bearer token is high-entropy random, so it is stored as its SHA-256
//! ([`operator_token_hash`]) and looked up by it. This module owns these formats and keeps
//! every secret in [`Zeroizing`] memory and out of `Debug` and error messages. It must not
//! store operators, decide whether a credential is right (the store holds the hashes), or say
//! what an operator may do (see [`crate::records::rbac`]).

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use rand::{Rng as _, RngCore as _};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::canonical::to_hex;

/// Characters of a generated operator password.
pub const OPERATOR_PASSWORD_LEN: usize = 24;

/// The prefix of every generated operator token (it makes a leaked token easy to recognise
/// and to scan for).
pub const OPERATOR_TOKEN_PREFIX: &str = "vgo_";

/// Longest `Authorization` header value accepted, in bytes.
pub const MAX_AUTHORIZATION_LEN: usize = 4096;

/// Random bytes in a generated operator token.
const TOKEN_BYTES: usize = 32;

/// Longest operator name, in characters.
const MAX_OPERATOR_NAME_LEN: usize = 64;

/// A generated operator password: 24 characters of `A-Za-z0-9` from the operating system's
/// CSPRNG (about 143 bits). Show it once; store only its [`crate::PinVault`] hash.
pub fn generate_operator_password() -> Zeroizing<String> {
    // Exact capacity, so that growing it never leaves an unzeroized copy behind.
    let mut password = Zeroizing::new(String::with_capacity(OPERATOR_PASSWORD_LEN));
    for _ in 0..OPERATOR_PASSWORD_LEN {
        password.push(char::from(OsRng.sample(Alphanumeric)));
    }
    password
}

/// A generated bearer API token: `"vgo_"` followed by the unpadded URL-safe base64 of 32 random
/// bytes (47 characters in all). Show it once; store only [`operator_token_hash`].
pub fn generate_operator_token() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
    OsRng.fill_bytes(bytes.as_mut_slice());
    let encoded_len = (TOKEN_BYTES * 4).div_ceil(3);
    let mut token = Zeroizing::new(String::with_capacity(
        OPERATOR_TOKEN_PREFIX.len() + encoded_len,
    ));
    token.push_str(OPERATOR_TOKEN_PREFIX);
    URL_SAFE_NO_PAD.encode_string(bytes.as_slice(), &mut token);
    token
}

/// The SHA-256 of a bearer token as 64 lowercase hex characters: what the store keeps and
/// looks tokens up by. A fast hash is right for 256-bit random tokens (there is nothing to
/// guess), and an exact lookup by hash compares no secret byte by byte.
pub fn operator_token_hash(token: &str) -> String {
    to_hex(&Sha256::digest(token.as_bytes()))
}

/// Whether `name` can name an operator: 1–64 characters of `A-Za-z0-9._@-` (so an e-mail
/// address works, and a name is always safe to show in audit events and logs).
pub fn valid_operator_name(name: &str) -> bool {
    (1..=MAX_OPERATOR_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

/// The credential an operator presented. `Debug` shows the name, never the password or token.
pub enum OperatorCredential {
    /// `Basic base64(name:password)`.
    Basic {
        /// The operator's name (a [`valid_operator_name`]).
        name: String,
        /// The password, to check against the stored argon2id hash.
        password: Zeroizing<String>,
    },
    /// `Bearer <token>`: look it up by [`operator_token_hash`].
    Bearer(Zeroizing<String>),
}

impl fmt::Debug for OperatorCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperatorCredential::Basic { name, .. } => f
                .debug_struct("Basic")
                .field("name", name)
                .field("password", &format_args!("[redacted]"))
                .finish(),
            OperatorCredential::Bearer(_) => f.write_str("Bearer([redacted])"),
        }
    }
}

/// Parse the value of an operator's `Authorization` header.
///
/// - `Basic <base64(name:password)>` (standard base64, as RFC 7617) gives
///   [`OperatorCredential::Basic`]; the name must be a [`valid_operator_name`] and the password
///   non-empty (it may contain `:`).
/// - `Bearer <token>` (RFC 6750 `token68` characters) gives [`OperatorCredential::Bearer`].
///
/// The scheme is case-insensitive; spaces or tabs around the value and after the scheme are
/// allowed. Decoded bytes are held in zeroized memory, including on failure.
///
/// ```
/// use voxguard_guard::records::{parse_operator_authorization, OperatorCredential};
///
/// // "ana@example.org:pw" in base64.
/// let parsed = parse_operator_authorization(b"Basic YW5hQGV4YW1wbGUub3JnOnB3").unwrap();
/// assert!(matches!(
///     parsed,
///     OperatorCredential::Basic { ref name, .. } if name == "ana@example.org"
/// ));
/// let bearer = parse_operator_authorization(b"Bearer vgo_abc").unwrap();
/// assert!(matches!(bearer, OperatorCredential::Bearer(ref token) if token.as_str() == "vgo_abc"));
/// assert!(parse_operator_authorization(b"Digest x").is_err());
/// ```
///
/// # Errors
///
/// [`OperatorAuthError::TooLong`] above [`MAX_AUTHORIZATION_LEN`] bytes (checked first, so an
/// oversized value costs nothing), [`OperatorAuthError::Malformed`] for anything else that is
/// not one of the two forms above.
pub fn parse_operator_authorization(value: &[u8]) -> Result<OperatorCredential, OperatorAuthError> {
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(OperatorAuthError::TooLong);
    }
    let value = value.trim_ascii();
    let split = value
        .iter()
        .position(|b| *b == b' ' || *b == b'\t')
        .ok_or(OperatorAuthError::Malformed)?;
    let (scheme, rest) = value.split_at(split);
    let rest = rest.trim_ascii();
    if rest.is_empty() {
        return Err(OperatorAuthError::Malformed);
    }
    if scheme.eq_ignore_ascii_case(b"basic") {
        parse_basic(rest)
    } else if scheme.eq_ignore_ascii_case(b"bearer") {
        parse_bearer(rest)
    } else {
        Err(OperatorAuthError::Malformed)
    }
}

fn parse_basic(encoded: &[u8]) -> Result<OperatorCredential, OperatorAuthError> {
    // Reserved up front so decoding never reallocates, and wiped on drop whatever happens.
    let mut decoded = Zeroizing::new(Vec::with_capacity(base64::decoded_len_estimate(
        encoded.len(),
    )));
    STANDARD
        .decode_vec(encoded, &mut decoded)
        .map_err(|_| OperatorAuthError::Malformed)?;
    let text = std::str::from_utf8(&decoded).map_err(|_| OperatorAuthError::Malformed)?;
    let (name, password) = text.split_once(':').ok_or(OperatorAuthError::Malformed)?;
    if !valid_operator_name(name) || password.is_empty() {
        return Err(OperatorAuthError::Malformed);
    }
    Ok(OperatorCredential::Basic {
        name: name.to_owned(),
        password: Zeroizing::new(password.to_owned()),
    })
}

fn parse_bearer(token: &[u8]) -> Result<OperatorCredential, OperatorAuthError> {
    // token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body_len = token.len() - token.iter().rev().take_while(|b| **b == b'=').count();
    let body = token.get(..body_len).unwrap_or_default();
    let body_ok = !body.is_empty()
        && body.iter().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if !body_ok {
        return Err(OperatorAuthError::Malformed);
    }
    let token = std::str::from_utf8(token).map_err(|_| OperatorAuthError::Malformed)?;
    Ok(OperatorCredential::Bearer(Zeroizing::new(token.to_owned())))
}

/// Why an operator's `Authorization` header was refused. Messages never echo the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OperatorAuthError {
    /// The value is longer than [`MAX_AUTHORIZATION_LEN`] bytes.
    #[error("Authorization header is longer than 4096 bytes")]
    TooLong,
    /// Not `Basic <base64(name:password)>` with a valid name, nor `Bearer <token>`.
    #[error(
        "malformed Authorization header: expected `Basic <base64(name:password)>` or `Bearer <token>`"
    )]
    Malformed,
}

#[cfg(test)]
mod tests;
