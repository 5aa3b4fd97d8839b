//! HTTP Basic credentials: resolving them at startup, generating strong ones, checking an
//! `Authorization` header in constant time, and writing one for voxguard's own clients.
//!
//! This module owns the rules of invariant 1 in the design: every endpoint but `/health` and
//! `/ready` needs valid credentials, comparison never leaks timing about length or content,
//! missing credentials outside production get a strong generated password, and production
//! refuses missing, partial or weak credentials. It must not read the environment, print or
//! log anything, or expose the password through `Debug`: the caller passes in the values of
//! `SWML_BASIC_AUTH_USER` / `SWML_BASIC_AUTH_PASSWORD` and decides how to show a generated
//! password once.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use rand::Rng as _;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// Minimum password length (in characters) accepted in production, and the length of generated
/// passwords.
pub const MIN_PASSWORD_LEN: usize = 32;

/// A user name and password for HTTP Basic authentication.
///
/// The password is held in a [`SecretString`], zeroized on drop and never shown by `Debug`.
///
/// ```
/// use voxguard_guard::BasicCredentials;
///
/// let creds = BasicCredentials::new("agent", "correct horse battery staple");
/// assert!(creds.verify("agent", "correct horse battery staple"));
/// assert!(!creds.verify("agent", "wrong"));
/// assert!(!format!("{creds:?}").contains("horse"));
/// ```
#[derive(Clone)]
pub struct BasicCredentials {
    user: String,
    password: SecretString,
    /// SHA-256 of the user name and of the password, computed once: every request's check
    /// hashes only what it was sent. The password's is on the heap, so moving the credentials
    /// leaves no copy of it behind, and wiped on drop.
    user_digest: [u8; 32],
    password_digest: Box<Zeroizing<[u8; 32]>>,
}

impl BasicCredentials {
    /// Credentials from a known user name and password.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self::from_parts(user.into(), SecretString::from(password.into()))
    }

    fn from_parts(user: String, password: SecretString) -> Self {
        let user_digest = Sha256::digest(user.as_bytes()).into();
        let mut password_digest = Box::new(Zeroizing::new([0u8; 32]));
        password_digest.copy_from_slice(&Sha256::digest(password.expose_secret().as_bytes()));
        Self {
            user,
            password,
            user_digest,
            password_digest,
        }
    }

    /// Credentials for `user` with a fresh random password of [`MIN_PASSWORD_LEN`] alphanumeric
    /// characters drawn from the operating system's CSPRNG.
    pub fn generate(user: impl Into<String>) -> Self {
        // Exact capacity, so turning it into the secret's boxed str does not reallocate and leave
        // an unzeroized copy behind.
        let mut password = String::with_capacity(MIN_PASSWORD_LEN);
        password.extend(
            OsRng
                .sample_iter(&Alphanumeric)
                .take(MIN_PASSWORD_LEN)
                .map(char::from),
        );
        Self::from_parts(user.into(), SecretString::from(password))
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password in clear. Use it only to hand it to the platform (e.g. in a webhook URL) or
    /// to show a generated password once; never log it.
    pub fn expose_password(&self) -> &str {
        self.password.expose_secret()
    }

    /// Whether `user` and `password` match, in constant time.
    ///
    /// Both sides are hashed with SHA-256 first so the comparison is over fixed-length digests
    /// (length does not leak), and both the user and the password comparisons always run (no
    /// early return), so which one was wrong does not leak either.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let got_user = Sha256::digest(user.as_bytes());
        let got_password = Sha256::digest(password.as_bytes());
        let user_ok = self.user_digest.as_slice().ct_eq(got_user.as_slice());
        let password_ok = self
            .password_digest
            .as_slice()
            .ct_eq(got_password.as_slice());
        (user_ok & password_ok).into()
    }

    /// Parse the value of an `Authorization` header (`Basic <base64(user:password)>`, scheme
    /// case-insensitive, standard base64) and verify the credentials it carries.
    ///
    /// # Errors
    ///
    /// [`AuthError::Malformed`] when the header is not a well-formed Basic header,
    /// [`AuthError::Invalid`] when it is well formed but the credentials are wrong.
    pub fn verify_header(&self, header_value: &[u8]) -> Result<(), AuthError> {
        let value = header_value.trim_ascii();
        let split = value
            .iter()
            .position(|b| *b == b' ' || *b == b'\t')
            .ok_or(AuthError::Malformed)?;
        let (scheme, rest) = value.split_at(split);
        if !scheme.eq_ignore_ascii_case(b"basic") {
            return Err(AuthError::Malformed);
        }
        let encoded = rest.trim_ascii();
        if encoded.is_empty() {
            return Err(AuthError::Malformed);
        }
        let decoded = Zeroizing::new(STANDARD.decode(encoded).map_err(|_| AuthError::Malformed)?);
        let text = std::str::from_utf8(&decoded).map_err(|_| AuthError::Malformed)?;
        let (user, password) = text.split_once(':').ok_or(AuthError::Malformed)?;
        if self.verify(user, password) {
            Ok(())
        } else {
            Err(AuthError::Invalid)
        }
    }

    /// Check that these credentials are strong enough for production: a non-empty user and a
    /// password of at least [`MIN_PASSWORD_LEN`] characters.
    ///
    /// # Errors
    ///
    /// [`CredentialError::EmptyUser`] or [`CredentialError::WeakPassword`].
    pub fn check_strength(&self) -> Result<(), CredentialError> {
        if self.user.is_empty() {
            return Err(CredentialError::EmptyUser);
        }
        let len = self.password.expose_secret().chars().count();
        if len < MIN_PASSWORD_LEN {
            return Err(CredentialError::WeakPassword { len });
        }
        Ok(())
    }
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("user", &self.user)
            .field("password", &format_args!("[redacted]"))
            .finish()
    }
}

/// Why an `Authorization` header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The header is missing its scheme, is not `Basic`, is not base64, not UTF-8 or has no `:`.
    #[error("malformed Authorization header: expected `Basic <base64(user:password)>`")]
    Malformed,
    /// The header is well formed but the user name or password is wrong.
    #[error("invalid credentials")]
    Invalid,
}

impl AuthError {
    /// Stable machine-readable reason: `auth_malformed` or `auth_invalid`.
    pub fn reason(&self) -> &'static str {
        crate::refusal::Reason::from(*self).as_str()
    }
}

impl From<AuthError> for crate::refusal::Reason {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Malformed => crate::refusal::Reason::AuthMalformed,
            AuthError::Invalid => crate::refusal::Reason::AuthInvalid,
        }
    }
}

/// Where the credentials returned by [`resolve_credentials`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// Both `SWML_BASIC_AUTH_USER` and `SWML_BASIC_AUTH_PASSWORD` were set.
    Configured,
    /// Neither was set and a random password was generated; show it to the operator once.
    Generated,
}

/// Why credentials could not be resolved or are not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Production mode with no credentials configured.
    #[error(
        "VOXGUARD_ENV=production requires SWML_BASIC_AUTH_USER and SWML_BASIC_AUTH_PASSWORD to be set"
    )]
    MissingInProduction,
    /// Exactly one of the two variables is set.
    #[error(
        "only one of SWML_BASIC_AUTH_USER / SWML_BASIC_AUTH_PASSWORD is set ({set} is set, {missing} is not); set both, or neither to get a generated password outside production"
    )]
    Partial {
        /// The variable that is set.
        set: &'static str,
        /// The variable that is missing or empty.
        missing: &'static str,
    },
    /// The user name is empty.
    #[error("SWML_BASIC_AUTH_USER is empty; set a user name")]
    EmptyUser,
    /// The password is shorter than [`MIN_PASSWORD_LEN`].
    #[error(
        "SWML_BASIC_AUTH_PASSWORD is {len} characters; production requires at least 32 (make one with `openssl rand -base64 32`)"
    )]
    WeakPassword {
        /// Length of the configured password, in characters.
        len: usize,
    },
}

const USER_VAR: &str = "SWML_BASIC_AUTH_USER";
const PASSWORD_VAR: &str = "SWML_BASIC_AUTH_PASSWORD";

/// The `Authorization` header value that presents `user` and `password` with HTTP Basic auth
/// (`Basic base64(user:password)`), for voxguard's own clients (the gateway toward its
/// upstream, `voxguard bench`). Zeroized when dropped: it carries the password.
pub fn basic_authorization(user: &str, password: &str) -> Zeroizing<String> {
    let pair = Zeroizing::new(format!("{user}:{password}"));
    Zeroizing::new(format!("Basic {}", STANDARD.encode(pair.as_bytes())))
}

/// Resolve the Basic credentials from the values of `SWML_BASIC_AUTH_USER` and
/// `SWML_BASIC_AUTH_PASSWORD` (`None` or empty means unset).
///
/// - both set: [`CredentialSource::Configured`]; in production the strength is checked too;
/// - both unset: in production an error, otherwise [`BasicCredentials::generate`] for
///   `default_user` and [`CredentialSource::Generated`];
/// - exactly one set: always an error (a misconfiguration, never silently patched up).
///
/// # Errors
///
/// [`CredentialError::MissingInProduction`], [`CredentialError::Partial`], or a strength error
/// from [`BasicCredentials::check_strength`] in production.
pub fn resolve_credentials(
    user: Option<String>,
    password: Option<String>,
    default_user: &str,
    production: bool,
) -> Result<(BasicCredentials, CredentialSource), CredentialError> {
    let user = user.filter(|u| !u.is_empty());
    let password = password.map(Zeroizing::new).filter(|p| !p.is_empty());
    match (user, password) {
        (Some(user), Some(password)) => {
            let creds = BasicCredentials::new(user, password.as_str());
            if production {
                creds.check_strength()?;
            }
            Ok((creds, CredentialSource::Configured))
        }
        (None, None) if production => Err(CredentialError::MissingInProduction),
        (None, None) => Ok((
            BasicCredentials::generate(default_user),
            CredentialSource::Generated,
        )),
        (Some(_), None) => Err(CredentialError::Partial {
            set: USER_VAR,
            missing: PASSWORD_VAR,
        }),
        (None, Some(_)) => Err(CredentialError::Partial {
            set: PASSWORD_VAR,
            missing: USER_VAR,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))).into_bytes()
    }

    #[test]
    fn the_header_voxguard_sends_is_the_one_it_accepts() {
        let c = BasicCredentials::new("agent", "s3cret: password é");
        let value = basic_authorization("agent", "s3cret: password é");
        assert_eq!(value.as_bytes(), header("agent", "s3cret: password é"));
        assert!(c.verify_header(value.as_bytes()).is_ok());
    }

    #[test]
    fn verify_accepts_only_exact_match() {
        let c = BasicCredentials::new("agent", "s3cret-password");
        assert!(c.verify("agent", "s3cret-password"));
        assert!(!c.verify("agent", "s3cret-passwor"));
        assert!(!c.verify("agent", "s3cret-password "));
        assert!(!c.verify("Agent", "s3cret-password"));
        assert!(!c.verify("", ""));
        assert!(!c.verify("s3cret-password", "agent"));
    }

    #[test]
    fn generate_is_strong_alphanumeric_and_unique() {
        let a = BasicCredentials::generate("agent");
        let b = BasicCredentials::generate("agent");
        assert_eq!(a.user(), "agent");
        assert_eq!(a.expose_password().len(), MIN_PASSWORD_LEN);
        assert!(a
            .expose_password()
            .chars()
            .all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.expose_password(), b.expose_password());
        assert!(a.check_strength().is_ok());
        assert!(a.verify("agent", a.expose_password()));
    }

    #[test]
    fn debug_redacts_password() {
        let c = BasicCredentials::new("agent", "very-secret-value");
        let dbg = format!("{c:?}");
        assert!(dbg.contains("agent"));
        assert!(dbg.contains("password: [redacted]"));
        assert!(!dbg.contains("very-secret-value"));
        let dbg = format!("{:#?}", c.clone());
        assert!(!dbg.contains("very-secret-value"));
    }

    #[test]
    fn header_ok_and_scheme_case_insensitive() {
        let c = BasicCredentials::new("agent", "pa:ss word");
        assert_eq!(c.verify_header(&header("agent", "pa:ss word")), Ok(()));
        let enc = STANDARD.encode("agent:pa:ss word");
        assert_eq!(c.verify_header(format!("basic {enc}").as_bytes()), Ok(()));
        assert_eq!(c.verify_header(format!("BASIC  {enc} ").as_bytes()), Ok(()));
    }

    #[test]
    fn header_wrong_credentials_is_invalid() {
        let c = BasicCredentials::new("agent", "password");
        assert_eq!(
            c.verify_header(&header("agent", "nope")),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            c.verify_header(&header("other", "password")),
            Err(AuthError::Invalid)
        );
        assert_eq!(c.verify_header(&header("", "")), Err(AuthError::Invalid));
        assert_eq!(AuthError::Invalid.reason(), "auth_invalid");
    }

    #[test]
    fn header_malformed_cases() {
        let c = BasicCredentials::new("agent", "password");
        let no_colon = format!("Basic {}", STANDARD.encode("agentpassword"));
        let not_utf8 = format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', b'a']));
        let bearer = format!("Bearer {}", STANDARD.encode("agent:password"));
        let bad_b64 = "Basic !!!notbase64";
        for h in [
            "".as_bytes(),
            b"Basic",
            b"Basic ",
            b"BasicYWdlbnQ6cGFzc3dvcmQ=",
            bad_b64.as_bytes(),
            no_colon.as_bytes(),
            not_utf8.as_bytes(),
            bearer.as_bytes(),
            &[0xff, 0x00, 0x20, 0x41],
        ] {
            assert_eq!(c.verify_header(h), Err(AuthError::Malformed), "{h:?}");
        }
        assert_eq!(AuthError::Malformed.reason(), "auth_malformed");
    }

    #[test]
    fn strength_rules() {
        assert_eq!(
            BasicCredentials::new("u", "short").check_strength(),
            Err(CredentialError::WeakPassword { len: 5 })
        );
        assert_eq!(
            BasicCredentials::new("", "a".repeat(40)).check_strength(),
            Err(CredentialError::EmptyUser)
        );
        assert!(BasicCredentials::new("u", "a".repeat(32))
            .check_strength()
            .is_ok());
        // Length is counted in characters, not bytes.
        assert_eq!(
            BasicCredentials::new("u", "é".repeat(20)).check_strength(),
            Err(CredentialError::WeakPassword { len: 20 })
        );
        let msg = CredentialError::WeakPassword { len: 5 }.to_string();
        assert!(msg.contains("5 characters") && msg.contains("at least 32"));
    }

    #[test]
    fn resolve_both_set_is_configured() {
        let (c, src) =
            resolve_credentials(Some("u".into()), Some("weak".into()), "agent", false).unwrap();
        assert_eq!(src, CredentialSource::Configured);
        assert_eq!(c.user(), "u");
        assert!(c.verify("u", "weak"));
    }

    #[test]
    fn resolve_production_checks_strength() {
        let err =
            resolve_credentials(Some("u".into()), Some("weak".into()), "agent", true).unwrap_err();
        assert_eq!(err, CredentialError::WeakPassword { len: 4 });
        let strong = "x".repeat(32);
        let (_, src) = resolve_credentials(Some("u".into()), Some(strong), "agent", true).unwrap();
        assert_eq!(src, CredentialSource::Configured);
    }

    #[test]
    fn resolve_unset_generates_outside_production() {
        for (u, p) in [(None, None), (Some(String::new()), Some(String::new()))] {
            let (c, src) = resolve_credentials(u, p, "agent", false).unwrap();
            assert_eq!(src, CredentialSource::Generated);
            assert_eq!(c.user(), "agent");
            assert!(c.check_strength().is_ok());
        }
    }

    #[test]
    fn resolve_unset_in_production_fails() {
        let err = resolve_credentials(None, Some(String::new()), "agent", true).unwrap_err();
        assert_eq!(err, CredentialError::MissingInProduction);
        assert!(err.to_string().contains("VOXGUARD_ENV=production requires"));
    }

    #[test]
    fn resolve_partial_always_fails() {
        for production in [false, true] {
            let err = resolve_credentials(Some("u".into()), None, "agent", production).unwrap_err();
            assert_eq!(
                err,
                CredentialError::Partial {
                    set: USER_VAR,
                    missing: PASSWORD_VAR
                }
            );
            let err = resolve_credentials(Some(String::new()), Some("p".into()), "a", production)
                .unwrap_err();
            assert_eq!(
                err,
                CredentialError::Partial {
                    set: PASSWORD_VAR,
                    missing: USER_VAR
                }
            );
            assert!(err
                .to_string()
                .contains("only one of SWML_BASIC_AUTH_USER / SWML_BASIC_AUTH_PASSWORD is set"));
        }
    }
}
