//! Conversation records' pure security side: encryption at rest, who may do what, and how
//! operators prove who they are.
//!
//! A call leaves records behind (summaries, transcripts, tool logs, recording references). This
//! module owns the decisions about them that need no I/O: envelope encryption with per-subject
//! data keys wrapped by a rotating key-encryption key ([`envelope`]); the roles and permissions
//! of the staff who read them ([`rbac`]); operator passwords, API tokens and the parsing of their
//! `Authorization` header ([`operator`]); and the masked subject reference that audit events
//! carry instead of a customer's or patient's id ([`subject_ref`]). It must not store records,
//! keys or operators, read the environment, log, or write audit events: the store persists, the
//! runtime and the CLI gather inputs, act on these verdicts and audit every access.

pub mod envelope;
pub mod operator;
pub mod rbac;

pub use envelope::{
    open, seal, DataKey, RecordAad, RecordCryptoError, RecordsKey, RecordsKeyError, RecordsKeyring,
    WrappedKey,
};
pub use operator::{
    generate_operator_password, generate_operator_token, operator_token_hash,
    parse_operator_authorization, valid_operator_name, OperatorAuthError, OperatorCredential,
    MAX_AUTHORIZATION_LEN, OPERATOR_PASSWORD_LEN, OPERATOR_TOKEN_PREFIX,
};
pub use rbac::{Permission, Role, RoleError, Roles};

use crate::key::SecretKey;

/// Domain tag of subject references, so that the same key's MACs for other purposes never
/// coincide with them.
const SUBJECT_REF_DOMAIN: &[u8] = b"voxguard/subject-ref/v1\0";

/// The masked subject written to audit events: `"sub_"` followed by the first 16 hex characters
/// of HMAC-SHA256(`key`, `"voxguard/subject-ref/v1\0"` || `subject`).
///
/// It contains no personal data and is stable for a given key, so events about one customer or
/// patient can be correlated by whoever reads the trail, and by nobody else can it be turned
/// back into the subject. Fails closed: `"sub_unknown"` if no MAC could be computed.
///
/// ```
/// use voxguard_guard::{records::subject_ref, SecretKey};
///
/// let key = SecretKey::generate();
/// let masked = subject_ref(&key, "pat_001");
/// assert!(masked.starts_with("sub_") && masked.len() == 20);
/// assert!(!masked.contains("pat_001"));
/// assert_eq!(masked, subject_ref(&key, "pat_001"));
/// ```
pub fn subject_ref(key: &SecretKey, subject: &str) -> String {
    let mut message = Vec::with_capacity(SUBJECT_REF_DOMAIN.len() + subject.len());
    message.extend_from_slice(SUBJECT_REF_DOMAIN);
    message.extend_from_slice(subject.as_bytes());
    match key.mac_hex(&message) {
        Some(hex) => format!("sub_{}", hex.get(..16).unwrap_or("unknown")),
        None => "sub_unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::HmacSha256;
    use hmac::Mac as _;

    #[test]
    fn subject_refs_are_keyed_stable_and_masked() {
        let key = SecretKey::from_bytes((0u8..32).collect()).unwrap();
        let one = subject_ref(&key, "pat_001");
        assert_eq!(one, subject_ref(&key, "pat_001"));
        assert_eq!(one.len(), 20);
        assert!(one.starts_with("sub_"));
        assert!(one[4..]
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_ne!(one, subject_ref(&key, "pat_002"));
        assert_ne!(one, subject_ref(&key, ""));
        let other_key = SecretKey::from_bytes(vec![9; 32]).unwrap();
        assert_ne!(one, subject_ref(&other_key, "pat_001"));

        // Definition: HMAC-SHA256 over the domain tag and the subject, not over the bare subject.
        let mut mac = HmacSha256::new_from_slice(&(0u8..32).collect::<Vec<u8>>()).unwrap();
        mac.update(b"voxguard/subject-ref/v1\0pat_001");
        let hex = crate::canonical::to_hex(&mac.finalize().into_bytes());
        assert_eq!(one, format!("sub_{}", &hex[..16]));
        assert_ne!(
            &one[4..],
            &key.mac_hex(b"pat_001").unwrap()[..16],
            "domain-separated from other MACs of the subject"
        );
    }
}
