//! Security logic for voxguard, pure and testable without a network.
//!
//! This crate owns the decisions: are these HTTP Basic credentials right ([`credentials`]), is
//! this per-call function token genuine and bound to this call and function ([`token`]), do these
//! tool arguments satisfy the tool's schema, and what subset of that schema may be shown to the
//! platform ([`validate`], with reusable validators for phones, account and order numbers, dates
//! and amounts in [`validators`]), and is this caller text safe to hand to a tool once
//! normalized ([`sanitize`]: length limits, prompt-injection detection). It also owns the
//! tamper-evident audit trail's pure side ([`audit`]), the one secret-key type ([`key`]) and
//! the one canonical-JSON writer ([`canonical`]) and webhook signatures ([`signature`]),
//! conversation records' encryption at rest, roles and operator credentials ([`records`]), and
//! the payment connector's card and amount checks ([`payment`]), and UTC calendar dates for what
//! operators type and read ([`utc`]). It must not do I/O: no sockets, no files, no environment
//! reads, no logging of secrets. Callers (the server, the CLI) gather inputs and act on the
//! verdicts.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod anomaly;
pub mod audit;
pub mod canonical;
pub mod clock;
pub mod credentials;
pub mod key;
pub mod payment;
pub mod pin;
pub mod policy;
pub mod ratelimit;
pub mod records;
pub mod redact;
pub mod refusal;
pub mod sanitize;
pub mod signature;
pub mod token;
pub mod utc;
pub mod validate;
pub mod validators;

pub use anomaly::{
    Anomaly, AnomalyDetector, AnomalyRules, BurstRule, BusinessHours, LargeTransactionRule,
};
pub use audit::{
    bounded_arguments, AuditEvent, AuditKey, AuditKeyError, AuditKind, AuditRecord, Chain,
    ChainProblem, Checkpoint, Outcome, Verifier, VerifyReport, GENESIS_HASH,
    MAX_AUDITED_ARGUMENT_BYTES,
};
pub use canonical::canonical_json;
pub use clock::{Clock, ManualClock, SystemClock};
pub use credentials::{
    basic_authorization, resolve_credentials, AuthError, BasicCredentials, CredentialError,
    CredentialSource, MIN_PASSWORD_LEN,
};
pub use key::{KeyError, SecretKey, MIN_KEY_LEN};
pub use payment::{
    format_cents, luhn_valid, normalize_currency, parse_amount_cents, AmountError, CardBrand,
    CardData, CardError, CardSummary,
};
pub use pin::{HashMemory, PinError, PinVault, SecretHash};
pub use policy::{
    args_digest, strip_confirmed, ConfirmationCheck, EmergencyState, EmergencySwitch,
    PendingConfirmation, TransferAllowList, CONFIRMED_ARG,
};
pub use ratelimit::{
    source_network, InvalidRateLimit, LimitScope, Limited, RateLimit, RateLimiter,
};
pub use records::{
    generate_operator_password, generate_operator_token, open, operator_token_hash,
    parse_operator_authorization, seal, subject_ref, valid_operator_name, DataKey,
    OperatorAuthError, OperatorCredential, Permission, RecordAad, RecordCryptoError, RecordsKey,
    RecordsKeyError, RecordsKeyring, Role, RoleError, Roles, WrappedKey,
};
pub use redact::{Redactor, REDACTED};
pub use refusal::{Reason, Refusal};
pub use sanitize::{
    normalize, InjectionDetector, InjectionKind, InputGuard, InputRejection, DEFAULT_MAX_LEN,
};
pub use signature::{EmptySigningKey, SignatureError, SigningKey, SIGNATURE_HEADER};
pub use token::{KeyRing, TokenClaims, TokenError, TokenKey, DEFAULT_TOKEN_TTL};
pub use validate::{
    declared_path, max_length_at, platform_parameters, push_path_segment, ArgError, ArgValidator,
    SchemaError, SchemaPaths, MAX_PATTERN_BYTES, MAX_UNTRUSTED_PATTERNS,
};
pub use validators::{
    account_number_schema, currency_schema, e164_schema, is_account_number, is_currency_amount,
    is_e164, is_iso_date, is_order_number, iso_date_schema, order_number_schema, CURRENCY_KEYWORD,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn shared_types_are_send_and_sync() {
        // The server shares these across tasks behind `Arc`s; this fails to compile otherwise.
        assert_send_sync::<BasicCredentials>();
        assert_send_sync::<KeyRing>();
        assert_send_sync::<SecretKey>();
        assert_send_sync::<AuditEvent>();
        assert_send_sync::<ArgValidator>();
        assert_send_sync::<InjectionDetector>();
        assert_send_sync::<InputGuard>();
        assert_send_sync::<InputRejection>();
        assert_send_sync::<ArgError>();
        assert_send_sync::<SchemaError>();
        assert_send_sync::<TokenError>();
        assert_send_sync::<AuthError>();
        assert_send_sync::<CredentialError>();
        assert_send_sync::<KeyError>();
        assert_send_sync::<RecordsKeyring>();
        assert_send_sync::<DataKey>();
        assert_send_sync::<Roles>();
        assert_send_sync::<OperatorCredential>();
        assert_send_sync::<RecordCryptoError>();
        assert_send_sync::<CardData>();
    }
}
