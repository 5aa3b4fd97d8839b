//! Compliance modes: what `VOXGUARD_COMPLIANCE=hipaa` and `pci` guarantee, checked before an
//! agent can serve.
//!
//! Owns [`Compliance`] (the modes, parsed from the environment or set in code), the errors an
//! agent or runtime that breaks them gets (the agent's own checks — no call recording, verified
//! PHI tools — run in `agent`, which knows its tools) and the privacy prompt section HIPAA adds. Each violation is a
//! [`ComplianceError`] that stops the build or the start with a sentence naming what to fix.
//! It must not store or redact anything itself: `records` and the pipeline apply the modes
//! (stricter transcript redaction, `recording_blocked`), and docs/compliance.md says what stays
//! with the deployment.

use std::fmt;

use voxguard_swml::PomSection;

/// The compliance modes in force. Modes combine: `hipaa,pci` turns both on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compliance {
    hipaa: bool,
    pci: bool,
}

impl Compliance {
    /// No mode: the secure defaults only.
    pub const NONE: Compliance = Compliance {
        hipaa: false,
        pci: false,
    };
    /// HIPAA: records key required, no call recording, verified PHI tools, a privacy prompt
    /// section, identifiers redacted from stored transcripts, a purpose for every content read.
    pub const HIPAA: Compliance = Compliance {
        hipaa: true,
        pci: false,
    };
    /// PCI DSS: card data is never stored (always true in voxguard) and recording is paused
    /// around payment collection.
    pub const PCI: Compliance = Compliance {
        hipaa: false,
        pci: true,
    };

    /// Both sets of guarantees.
    pub fn and(self, other: Compliance) -> Compliance {
        Compliance {
            hipaa: self.hipaa || other.hipaa,
            pci: self.pci || other.pci,
        }
    }

    /// Whether HIPAA mode is on.
    pub fn hipaa(&self) -> bool {
        self.hipaa
    }

    /// Whether PCI mode is on.
    pub fn pci(&self) -> bool {
        self.pci
    }

    /// Parse `VOXGUARD_COMPLIANCE`: empty or `none`, or a comma-separated list of `hipaa` and
    /// `pci` (case-insensitive).
    pub fn parse(text: &str) -> Result<Compliance, ComplianceError> {
        let mut modes = Compliance::NONE;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            modes = match part.to_ascii_lowercase().as_str() {
                "none" => modes,
                "hipaa" => modes.and(Compliance::HIPAA),
                "pci" => modes.and(Compliance::PCI),
                _ => return Err(ComplianceError::UnknownMode(text.to_string())),
            };
        }
        Ok(modes)
    }
}

impl fmt::Display for Compliance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.hipaa, self.pci) {
            (false, false) => f.write_str("none"),
            (true, false) => f.write_str("hipaa"),
            (false, true) => f.write_str("pci"),
            (true, true) => f.write_str("hipaa,pci"),
        }
    }
}

/// Why an agent or a runtime does not meet its compliance mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComplianceError {
    /// `VOXGUARD_COMPLIANCE` holds something else than `hipaa`, `pci` or `none`.
    #[error("VOXGUARD_COMPLIANCE={0:?} is not valid: none, hipaa, pci, or hipaa,pci")]
    UnknownMode(String),
    /// HIPAA mode without conversation records (and so without a records key).
    #[error("HIPAA mode requires conversation records with an encryption key: set VOXGUARD_RECORDS_KEY (base64, at least 32 bytes; e.g. `openssl rand -base64 32`)")]
    RecordsRequired,
    /// HIPAA mode with the development records key kept beside the data.
    #[error("HIPAA mode requires VOXGUARD_RECORDS_KEY to be set: the development key kept in the data directory does not protect records at rest (e.g. `export VOXGUARD_RECORDS_KEY=$(openssl rand -base64 32)`)")]
    DevKey,
    /// HIPAA mode and an agent parameter that sends the conversation elsewhere.
    #[error("agent {agent:?} sets the AI parameter {param:?}, which sends the conversation to another URL; HIPAA mode forbids it")]
    ConversationExport {
        /// The agent.
        agent: String,
        /// The parameter.
        param: String,
    },
    /// HIPAA mode and an agent that records calls.
    #[error("agent {agent:?} records calls, which HIPAA mode forbids: remove record_call")]
    Recording {
        /// The agent.
        agent: String,
    },
    /// HIPAA mode and a PHI tool that does not require verification.
    #[error("tool {tool:?} of agent {agent:?} handles PHI but requires no verification flag: add .requires(\"verified\") (or the flag your verification sets)")]
    UnverifiedPhi {
        /// The agent.
        agent: String,
        /// The tool.
        tool: String,
    },
}

/// The title of the section HIPAA mode adds to every prompt.
pub const PRIVACY_SECTION_TITLE: &str = "Privacy";

/// The privacy section HIPAA mode adds to every prompt.
pub fn privacy_section() -> PomSection {
    PomSection {
        title: Some(PRIVACY_SECTION_TITLE.to_string()),
        body: Some(
            "Protected health information is confidential. Discuss appointments, medications, \
             results or any health detail only after the caller's identity has been verified \
             with the verification tool, and only with that verified patient. Never read back \
             a full date of birth, Social Security number, address or phone number; never \
             guess or confirm whether someone is a patient before verification."
                .to_string(),
        ),
        ..PomSection::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_combine() {
        assert_eq!(Compliance::parse("").unwrap(), Compliance::NONE);
        assert_eq!(Compliance::parse("none").unwrap(), Compliance::NONE);
        assert_eq!(Compliance::parse("HIPAA").unwrap(), Compliance::HIPAA);
        let both = Compliance::parse("hipaa, pci").unwrap();
        assert!(both.hipaa() && both.pci());
        assert_eq!(both.to_string(), "hipaa,pci");
        assert!(matches!(
            Compliance::parse("hippa"),
            Err(ComplianceError::UnknownMode(_))
        ));
    }
}
