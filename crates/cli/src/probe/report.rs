//! What a probe found, and how it is shown: the catalogue of checks (stable id, title, fix),
//! findings with their severity and masked evidence, informational notes, and the three
//! outputs — text grouped by severity, `--json`, and SARIF 2.1.0 — plus the exit code of the
//! worst severity.
//!
//! It owns the wording and the shapes. It must not send anything, and it never sees a secret
//! in clear: evidence arrives already masked by the checks.

use serde::Serialize;
use serde_json::{json, Value};

use crate::cmd;
use crate::Exit;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Hardening; no direct way in.
    Low,
    /// A weakness an attacker can use together with another.
    Medium,
    /// A direct weakness (e.g. the handler runs on invalid arguments).
    High,
    /// Something runs, or a route answers, without the credentials or token it needs.
    Critical,
}

impl Severity {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// The exit code of a probe whose worst finding has this severity.
    pub fn exit(self) -> Exit {
        match self {
            Self::Low => Exit::Low,
            Self::Medium => Exit::Medium,
            Self::High => Exit::High,
            Self::Critical => Exit::Critical,
        }
    }

    /// The SARIF level: error for high and critical, warning for medium, note for low.
    fn sarif_level(self) -> &'static str {
        match self {
            Self::Critical | Self::High => "error",
            Self::Medium => "warning",
            Self::Low => "note",
        }
    }
}

/// One check of the catalogue.
pub struct Rule {
    /// Stable id (`token.missing`).
    pub id: &'static str,
    /// What the check looks for.
    pub description: &'static str,
    /// How to fix a finding.
    pub fix: &'static str,
}

/// Every check a probe can report, by id.
pub const RULES: &[Rule] = &[
    Rule { id: "auth.missing_credentials", description: "A route answers without credentials.", fix: "Require HTTP Basic credentials on every route but /health and /ready, checked before anything else (voxguard does this by default)." },
    Rule { id: "auth.wrong_password", description: "A route answers with a wrong password.", fix: "Compare the whole user and password, in constant time, and answer 401 on any mismatch." },
    Rule { id: "auth.prefix_password", description: "A route answers with the password minus its last character, or plus one more.", fix: "Compare the whole password (constant-time equality of the full value), never a prefix or a truncated form." },
    Rule { id: "token.missing", description: "A function runs without its function token.", fix: "Mint a per-call token for every sensitive function at SWML render time (bound to call_id, function and expiry) and refuse calls without one with 403 before anything else." },
    Rule { id: "token.tampered", description: "A function runs with a tampered token.", fix: "Verify the token's signature (HMAC, constant-time) before running anything." },
    Rule { id: "token.cross_call", description: "A function runs with the token of another call.", fix: "Bind the token to the call_id and refuse it for any other call." },
    Rule { id: "token.cross_function", description: "A function runs with another function's token.", fix: "Bind the token to the function name and refuse it for any other function." },
    Rule { id: "token.not_checked_first", description: "A call without a valid token is refused for another reason (arguments, policy): the token is not checked first.", fix: "Check the function token before reading the arguments or applying policies, so nothing attacker-sized is processed without it." },
    Rule { id: "token.refusal_status", description: "A token refusal is answered with HTTP 2xx.", fix: "Answer token refusals with 403 so they are visible to monitoring and never look like success." },
    Rule { id: "validation.type_confusion", description: "The handler runs with an argument of the wrong type.", fix: "Validate arguments against the function's full JSON schema before the handler runs." },
    Rule { id: "validation.missing_required", description: "The handler runs without a required argument.", fix: "Validate arguments against the function's full JSON schema, `required` included, before the handler runs." },
    Rule { id: "validation.out_of_range", description: "The handler runs with an argument outside its declared enum, pattern, length or range.", fix: "Enforce every declared constraint (enum, pattern, minLength/maxLength, minimum/maximum) on the server, not only in the prompt." },
    Rule { id: "validation.undeclared", description: "The handler runs with an argument the schema does not declare.", fix: "Refuse undeclared arguments (additionalProperties: false), so a manipulated model cannot pass parameters the tool never offered." },
    Rule { id: "limits.body", description: "An oversized body is read instead of refused.", fix: "Limit request bodies (e.g. 1 MiB) and answer 413 before reading more." },
    Rule { id: "http.method", description: "A webhook answers 2xx to GET, PUT or DELETE.", fix: "Route only POST to SWAIG webhooks; answer 405 to other methods." },
    Rule { id: "errors.leak", description: "An error answer leaks internals (stack trace, file path, panic, SQL, traceback).", fix: "Answer errors with a fixed, generic sentence and log the details server-side only." },
    Rule { id: "errors.malformed_accepted", description: "Malformed JSON is answered with HTTP 2xx.", fix: "Answer a body that is not JSON with 400." },
    Rule { id: "headers.cache_control", description: "An answer carrying credentials or tokens lacks Cache-Control: no-store.", fix: "Send Cache-Control: no-store on SWML and SWAIG answers (they carry credentials and per-call tokens)." },
    Rule { id: "headers.nosniff", description: "An answer lacks X-Content-Type-Options: nosniff.", fix: "Send X-Content-Type-Options: nosniff on every answer." },
    Rule { id: "transport.plain_http", description: "The agent is reached over plain http on a non-loopback host.", fix: "Serve the agent over HTTPS (SWML_SSL_ENABLED with a certificate, or an https proxy and SWML_PROXY_URL_BASE)." },
    Rule { id: "transport.plain_http_credentials", description: "The SWML sends credentials or tokens in plain-http webhook URLs to a non-loopback host.", fix: "Render https webhook URLs (set SWML_PROXY_URL_BASE to the public https address, or enable TLS)." },
    Rule { id: "slow.headers", description: "Slow clients that never finish their request head are kept open past the bound.", fix: "Set a header read timeout (voxguard: VOXGUARD_HEADER_TIMEOUT_SECS, default 5 s) and per-IP connection limits." },
    Rule { id: "slow.starvation", description: "A normal request is not served while slow clients hold connections.", fix: "Bound connections per client and time out slow request heads so that others are still served." },
    Rule { id: "tls.certificate", description: "The certificate is not trusted for this host (untrusted issuer, expired, wrong name).", fix: "Serve a certificate from a trusted CA for the agent's host name, and renew it before it expires." },
    Rule { id: "tls.protocol", description: "No TLS 1.2 or 1.3 connection could be negotiated.", fix: "Make the port speak TLS 1.2 or 1.3 (with modern cipher suites, older versions disabled) and complete the handshake promptly; if it timed out, check that the URL's port serves TLS at all, or raise --timeout." },
];

/// The rule of `id`.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|rule| rule.id == id)
}

/// One weakness found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The check's stable id.
    pub id: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// One line: what is wrong where.
    pub title: String,
    /// Where: a route (masked URL) and, for functions, the function.
    pub location: String,
    /// The request and answer excerpt that shows it (secrets masked).
    pub evidence: String,
    /// How to fix it.
    pub fix: &'static str,
}

/// What a probe produced.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The SWML URL (masked).
    pub target: String,
    /// Findings, in the order found.
    pub findings: Vec<Finding>,
    /// Informational notes: checks skipped and why, facts (e.g. the TLS version).
    pub notes: Vec<String>,
    /// How many requests were sent (slow connections count one each).
    pub requests: usize,
    /// How many requests went to a webhook (or `post_prompt_url`).
    pub hooks_sent: usize,
    /// How many of those got an HTTP answer.
    pub hooks_answered: usize,
}

/// The longest title or location kept (characters).
const MAX_LINE: usize = 400;
/// The longest evidence or note kept (characters).
const MAX_TEXT: usize = 1200;

/// `text` safe for a terminal, JSON and SARIF: controls, C1 and bidi characters replaced
/// ([`crate::output::clean`]) and at most `max` characters.
pub fn bounded(text: &str, max: usize) -> String {
    let clean = crate::output::clean(text);
    if clean.chars().count() > max {
        let cut: String = clean.chars().take(max).collect();
        format!("{cut}…")
    } else {
        clean
    }
}

impl Report {
    /// Record a finding of rule `id` (once per id, location and title; the text must already
    /// be masked; it is cleaned of terminal controls and bounded here).
    pub fn add(
        &mut self,
        id: &'static str,
        severity: Severity,
        title: String,
        location: String,
        evidence: String,
    ) {
        let title = bounded(&title, MAX_LINE);
        let location = bounded(&location, MAX_LINE);
        let evidence = bounded(&evidence, MAX_TEXT);
        if self
            .findings
            .iter()
            .any(|known| known.id == id && known.location == location && known.title == title)
        {
            return;
        }
        let fix = rule(id).map_or("", |rule| rule.fix);
        self.findings.push(Finding {
            id,
            severity,
            title,
            location,
            evidence,
            fix,
        });
    }

    /// Record an informational note (once; masked already; cleaned and bounded here).
    pub fn note(&mut self, text: String) {
        let text = bounded(&text, MAX_TEXT);
        if !self.notes.contains(&text) {
            self.notes.push(text);
        }
    }

    /// Whether most webhook requests got no HTTP answer (the webhooks are unreachable from
    /// here, so the checks that use them proved nothing).
    pub fn hooks_unreachable(&self) -> bool {
        self.hooks_sent > 0 && self.hooks_answered * 2 < self.hooks_sent
    }

    /// The sentence shown when [`Report::hooks_unreachable`].
    pub fn unreachable_message(&self) -> String {
        format!(
            "only {} of {} webhook requests got an HTTP answer: the webhook URLs the SWML \
             renders are not reachable from here, so the function checks proved nothing. If \
             the agent renders its public or proxy address, retry with --same-origin (webhooks \
             are then called on the probed URL's origin).",
            self.hooks_answered, self.hooks_sent
        )
    }

    /// The worst severity found, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|finding| finding.severity).max()
    }

    /// The exit code: that of the worst severity; else [`Exit::Agent`] when most webhook
    /// requests got no answer; else [`Exit::Ok`].
    pub fn exit(&self) -> Exit {
        match self.worst() {
            Some(worst) => worst.exit(),
            None if self.hooks_unreachable() => Exit::Agent,
            None => Exit::Ok,
        }
    }

    /// How many findings have `severity`.
    fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|finding| finding.severity == severity)
            .count()
    }

    /// The `--json` document.
    pub fn json(&self) -> Value {
        json!({
            "target": self.target,
            "findings": self.findings,
            "notes": self.notes,
            "requests": self.requests,
            "webhooks": {
                "sent": self.hooks_sent,
                "answered": self.hooks_answered,
                "unreachable": self.hooks_unreachable(),
            },
            "summary": {
                "critical": self.count(Severity::Critical),
                "high": self.count(Severity::High),
                "medium": self.count(Severity::Medium),
                "low": self.count(Severity::Low),
                "worst": self.worst().map(Severity::name),
            },
        })
    }

    /// The `--sarif` document (SARIF 2.1.0, one run).
    pub fn sarif(&self) -> Value {
        let rules: Vec<Value> = RULES
            .iter()
            .map(|rule| {
                json!({
                    "id": rule.id,
                    "name": rule.id,
                    "shortDescription": {"text": rule.description},
                    "help": {"text": rule.fix},
                })
            })
            .collect();
        let results: Vec<Value> = self
            .findings
            .iter()
            .map(|finding| {
                let index = RULES.iter().position(|rule| rule.id == finding.id);
                json!({
                    "ruleId": finding.id,
                    "ruleIndex": index,
                    "level": finding.severity.sarif_level(),
                    "message": {"text": format!(
                        "{} [{}] Evidence: {} Fix: {}",
                        finding.title, finding.severity.name(), finding.evidence, finding.fix
                    )},
                    "locations": [{"physicalLocation": {"artifactLocation": {"uri": finding.location}}}],
                    "properties": {"severity": finding.severity.name()},
                })
            })
            .collect();
        json!({
            "version": "2.1.0",
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "runs": [{
                "tool": {"driver": {
                    "name": "voxguard probe",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://example.invalid/voxguard/docs/cli.md",
                    "rules": rules,
                }},
                "results": results,
            }],
        })
    }

    /// The text output: findings grouped by severity (worst first), then the notes and a
    /// summary line.
    pub fn text(&self) -> String {
        let color = cmd::color();
        let mut out = format!(
            "voxguard probe {} ({} requests)\n",
            self.target, self.requests
        );
        for severity in [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
        ] {
            let group: Vec<&Finding> = self
                .findings
                .iter()
                .filter(|finding| finding.severity == severity)
                .collect();
            if group.is_empty() {
                continue;
            }
            let code = if severity >= Severity::High {
                "31"
            } else {
                "33"
            };
            let heading = format!("{} ({})", severity.name().to_uppercase(), group.len());
            out.push_str(&format!("\n{}\n", cmd::paint(&heading, code, color)));
            for finding in group {
                out.push_str(&format!(
                    "  [{}] {}\n    where:    {}\n    evidence: {}\n    fix:      {}\n",
                    finding.id, finding.title, finding.location, finding.evidence, finding.fix
                ));
            }
        }
        if !self.notes.is_empty() {
            out.push_str("\nNotes (informational, not findings):\n");
            for note in &self.notes {
                out.push_str(&format!("  - {note}\n"));
            }
        }
        if self.hooks_unreachable() {
            let warning = format!("WARNING: {}", self.unreachable_message());
            out.push_str(&format!("\n{}\n", cmd::paint(&warning, "31", color)));
        }
        let summary = match self.worst() {
            None if self.hooks_unreachable() => {
                "No findings, but the webhooks were not reachable (exit 4).".to_string()
            }
            None => cmd::paint("No findings.", "32", color),
            Some(worst) => format!(
                "{} findings: {} critical, {} high, {} medium, {} low; worst {} (exit {}).",
                self.findings.len(),
                self.count(Severity::Critical),
                self.count(Severity::High),
                self.count(Severity::Medium),
                self.count(Severity::Low),
                worst.name(),
                worst.exit() as u8
            ),
        };
        out.push_str(&format!("\n{summary}\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: &'static str, severity: Severity) -> Finding {
        Finding {
            id,
            severity,
            title: "t".into(),
            location: "http://h/swaig".into(),
            evidence: "e".into(),
            fix: rule(id).map_or("", |rule| rule.fix),
        }
    }

    #[test]
    fn the_exit_follows_the_worst_severity() {
        let mut report = Report::default();
        assert_eq!(report.exit(), Exit::Ok);
        report
            .findings
            .push(finding("headers.nosniff", Severity::Low));
        assert_eq!(report.exit(), Exit::Low);
        report
            .findings
            .push(finding("token.missing", Severity::Critical));
        report
            .findings
            .push(finding("limits.body", Severity::Medium));
        assert_eq!(report.exit(), Exit::Critical);
        assert_eq!(report.json()["summary"]["worst"], "critical");
    }

    #[test]
    fn agent_text_is_cleaned_and_bounded() {
        let mut report = Report::default();
        let hostile = format!(
            "f\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m\u{202e}{}",
            "x".repeat(100_000)
        );
        report.add(
            "token.missing",
            Severity::Critical,
            hostile.clone(),
            hostile.clone(),
            hostile.clone(),
        );
        report.note(hostile);
        let finding = &report.findings[0];
        for text in [
            &finding.title,
            &finding.location,
            &finding.evidence,
            &report.notes[0],
        ] {
            assert!(text.chars().count() <= MAX_TEXT + 1, "{}", text.len());
            assert!(
                !text.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{text}"
            );
        }
        let shown = report.text();
        assert!(!shown.contains('\u{1b}') && !shown.contains('\u{9b}'));
        assert!(shown.len() < 10_000);
    }

    #[test]
    fn unanswered_webhooks_exit_4_with_advice() {
        let mut report = Report {
            hooks_sent: 10,
            hooks_answered: 2,
            ..Report::default()
        };
        assert_eq!(report.exit(), Exit::Agent);
        assert!(report.text().contains("--same-origin"));
        report.hooks_answered = 10;
        assert_eq!(report.exit(), Exit::Ok);
    }

    #[test]
    fn every_rule_id_is_unique_and_sarif_points_at_it() {
        for (i, rule) in RULES.iter().enumerate() {
            assert!(RULES[i + 1..].iter().all(|other| other.id != rule.id));
        }
        let mut report = Report::default();
        report
            .findings
            .push(finding("limits.body", Severity::Medium));
        let sarif = report.sarif();
        let result = &sarif["runs"][0]["results"][0];
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(
            sarif["runs"][0]["tool"]["driver"]["rules"][index]["id"],
            "limits.body"
        );
        assert_eq!(result["level"], "warning");
    }
}
