//! `voxguard keys generate token|audit|records|password`: a fresh secret in the format the
//! runtime expects, from the operating system's random generator.
//!
//! Keys are base64 of 32 random bytes (what `VOXGUARD_TOKEN_KEY`, `VOXGUARD_AUDIT_KEY` and
//! `VOXGUARD_RECORDS_KEY` accept); a password is 40 characters of letters and digits (≥ 32, as
//! production mode requires). It owns only the generation and printing; the value is printed
//! once, to stdout, and kept nowhere.

use base64::Engine as _;
use rand::rngs::OsRng;
use rand::{Rng as _, RngCore as _};
use serde_json::json;
use zeroize::Zeroizing;

use crate::cmd;
use crate::Exit;

/// `keys --help`: examples.
pub const KEYS_AFTER_HELP: &str = "\
Examples:
  voxguard keys generate token                 base64 of 32 random bytes
  voxguard keys generate records --env >> .env VOXGUARD_RECORDS_KEY=...
  voxguard keys generate password              40 letters and digits
  voxguard keys generate audit --json

Exit codes: 0 printed; 2 bad arguments.";

/// Which secret.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    /// The function-token signing key (VOXGUARD_TOKEN_KEY).
    Token,
    /// The audit checkpoint key (VOXGUARD_AUDIT_KEY).
    Audit,
    /// The records key (VOXGUARD_RECORDS_KEY).
    Records,
    /// A Basic auth password (SWML_BASIC_AUTH_PASSWORD).
    Password,
}

impl Kind {
    /// The environment variable the value goes into.
    pub fn variable(self) -> &'static str {
        match self {
            Self::Token => "VOXGUARD_TOKEN_KEY",
            Self::Audit => "VOXGUARD_AUDIT_KEY",
            Self::Records => "VOXGUARD_RECORDS_KEY",
            Self::Password => "SWML_BASIC_AUTH_PASSWORD",
        }
    }
}

/// `voxguard keys …`
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Print a fresh key or password.
    Generate {
        /// What to generate.
        kind: Kind,
        /// Print it as an environment line (`NAME=value`).
        #[arg(long, conflicts_with = "json")]
        env: bool,
        /// JSON output: {"kind", "variable", "value"}.
        #[arg(long)]
        json: bool,
    },
}

/// Letters and digits of a generated password.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Length of a generated password.
pub const PASSWORD_LEN: usize = 40;

/// A fresh value of `kind`.
pub fn generate(kind: Kind) -> Zeroizing<String> {
    match kind {
        Kind::Password => Zeroizing::new(
            (0..PASSWORD_LEN)
                .map(|_| char::from(ALPHABET[OsRng.gen_range(0..ALPHABET.len())]))
                .collect(),
        ),
        Kind::Token | Kind::Audit | Kind::Records => {
            let mut bytes = Zeroizing::new([0u8; 32]);
            OsRng.fill_bytes(bytes.as_mut());
            Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(bytes.as_ref()))
        }
    }
}

/// `voxguard keys`.
pub fn run(command: &KeysCommand) -> Exit {
    let KeysCommand::Generate { kind, env, json } = command;
    let value = generate(*kind);
    if *json {
        let name = format!("{kind:?}").to_ascii_lowercase();
        return cmd::print_json(
            &json!({"kind": name, "variable": kind.variable(), "value": value.as_str()}),
            false,
        );
    }
    let line = if *env {
        Zeroizing::new(format!("{}={}\n", kind.variable(), value.as_str()))
    } else {
        Zeroizing::new(format!("{}\n", value.as_str()))
    };
    crate::print_stdout(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_accepted_by_the_runtime_and_fresh() {
        for kind in [Kind::Token, Kind::Audit, Kind::Records] {
            let a = generate(kind);
            let b = generate(kind);
            assert_ne!(a, b);
            voxguard_guard::SecretKey::from_base64(&a).expect("a valid key");
        }
        let password = generate(Kind::Password);
        assert_eq!(password.len(), PASSWORD_LEN);
        assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(password, generate(Kind::Password));
    }
}
