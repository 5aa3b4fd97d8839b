//! `voxguard check`: the production hardening checklist of docs/security.md, evaluated on an
//! environment (a dotenv file, or the process environment), this machine (data directory,
//! command lines) and, with `--url`, a live agent's SWML.
//!
//! This module owns the command's arguments, the order of the items, and how the verdict is
//! printed (a pass/warn/fail table or `--json`) and turned into an exit code (1 on any fail).
//! The items are decided in [`items`] (environment), [`host`] (files and processes) and
//! [`live`] (the rendered SWML); where the variables come from is [`env`]. It must never print
//! a secret: every detail and fix goes through the evaluated environment's masking before it
//! is shown, and it sends nothing to an agent but two SWML fetches (two call ids).

pub mod env;
pub mod host;
pub mod items;
pub mod live;

use std::path::PathBuf;

use serde::Serialize;
use serde_json::json;

use crate::agent::{mask, CallSpec, Target, TargetArgs};
use crate::cmd;
use crate::output::table;
use crate::Exit;

use env::{Env, Source};

/// `check --help`: examples, what is read, exit codes.
pub const CHECK_AFTER_HELP: &str = "\
Examples:
  voxguard check --env-file /etc/voxguard/bank.env
  voxguard check --env-file bank.env --url https://agents.example.com/bank --pid 4242
  voxguard check --json | jq '.items[] | select(.status != \"pass\")'

Variables come from --env-file alone when given (dotenv format), else from this process's
environment. Items: production, server_config, https, basic_auth, keys.token, keys.audit,
keys.records, keys.signing, credentials.emergency, credentials.metrics, credentials.distinct,
credentials.operators, retention, compliance, data_dir, cmdline, and with --url tools.token,
tools.verification, tools.confirmation, tools.rate_limits. No value of a secret is printed.

Exit codes: 0 no item failed (warnings allowed); 1 an item failed; 2 bad arguments, an
unreadable env file or no such --pid; 4 --url is unreachable, refused the credentials or did
not answer SWML.";

/// `voxguard check …`
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// A dotenv file (KEY=VALUE lines, # comments, quotes) holding the deployment's variables;
    /// only its variables are evaluated. Default: this process's environment.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// The live agent's SWML URL: its tools are checked too. Credentials may be in the URL;
    /// else --user/--password; else the evaluated SWML_BASIC_AUTH_USER/PASSWORD.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Basic auth user for --url.
    #[arg(long, requires = "url")]
    pub user: Option<String>,
    /// Basic auth password for --url (prefer the environment: a command line is visible to
    /// every user of the machine).
    #[arg(long, requires = "url")]
    pub password: Option<String>,
    /// A PEM file of CA certificates to trust for --url besides the system's.
    #[arg(long, value_name = "FILE", requires = "url")]
    pub ca_cert: Option<PathBuf>,
    /// Seconds to wait for the SWML answer.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub timeout: u64,
    /// Search only this process's command line for secrets (default: every process of any
    /// user that this one can see).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// JSON output: {"source", "url", "items": [{"id", "status", "detail", "fix"}], "summary"}.
    #[arg(long)]
    pub json: bool,
}

/// An item's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Meets the checklist.
    Pass,
    /// Short of it, or not verifiable from here; does not fail the run.
    Warn,
    /// Does not meet it; the run exits 1.
    Fail,
}

impl Status {
    /// The word shown in the table.
    fn word(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// One checklist item.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Stable id (`keys.token`, `tools.token`, …).
    pub id: &'static str,
    /// The verdict.
    pub status: Status,
    /// What was found (variable names, never values).
    pub detail: String,
    /// How to fix it (`None` for a pass).
    pub fix: Option<String>,
}

impl Item {
    /// A pass.
    pub fn pass(id: &'static str, detail: impl Into<String>) -> Self {
        Self {
            id,
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A warning with its fix.
    pub fn warn(id: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            id,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// A failure with its fix.
    pub fn fail(id: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            id,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// `voxguard check`.
pub fn run(args: &CheckArgs) -> Exit {
    let env = match &args.env_file {
        Some(path) => match Env::from_file(path) {
            Ok(env) => env,
            Err(message) => return cmd::usage(&message),
        },
        None => Env::process(),
    };
    cmd::block_on(evaluate(args, env))
}

/// Evaluate every item and print the verdict.
async fn evaluate(args: &CheckArgs, env: Env) -> Exit {
    let secrets = env.mask();
    // The live document first: an unreachable --url is exit 4 before anything is printed.
    let rendered = match &args.url {
        None => None,
        Some(url) => {
            let target = TargetArgs {
                url: url.clone(),
                user: args
                    .user
                    .clone()
                    .or_else(|| env.get("SWML_BASIC_AUTH_USER").map(str::to_string)),
                password: args.password.clone().or_else(|| {
                    env.raw("SWML_BASIC_AUTH_PASSWORD")
                        .filter(|p| !p.is_empty())
                        .map(str::to_string)
                }),
                ca_cert: args.ca_cert.clone(),
                timeout: args.timeout,
                same_origin: false,
            };
            let target = match Target::new(&target) {
                Ok(target) => target,
                Err(err) => return cmd::agent_error(&err),
            };
            // Two renders for two call ids: a per-call token differs between them.
            let mut renders = Vec::with_capacity(2);
            for _ in 0..2 {
                let call = CallSpec::fresh();
                match target.render(&call).await {
                    Ok(rendered) => renders.push(rendered),
                    Err(err) => return cmd::agent_error(&err),
                }
            }
            let again = renders.pop();
            match (renders.pop(), again) {
                (Some(first), Some(again)) => Some((target.url.scheme() == "https", first, again)),
                _ => None,
            }
        }
    };
    let live_http = rendered
        .as_ref()
        .map(|(_, r, _)| live::plain_http(r))
        .unwrap_or_default();
    let live_hipaa = rendered
        .as_ref()
        .map(|(_, r, _)| live::hipaa_findings(r))
        .unwrap_or_default();
    let cmdline = match host::cmdline(&env, args.pid) {
        Ok(item) => item,
        Err(host::NoSuchProcess(message)) => return cmd::usage(&format!("--pid: {message}")),
    };

    // The data directory is examined before anything opens a file in it.
    let data_dir = host::data_dir(&env);
    let operators = host::operators(&env).await;
    let mut all = vec![
        items::production(&env),
        items::server_config(&env),
        items::https(
            &env,
            rendered.as_ref().map(|(https, _, _)| *https),
            &live_http,
        ),
        items::basic_auth(&env),
    ];
    all.extend(items::keys(&env));
    all.push(items::emergency(&env));
    all.push(items::metrics(&env));
    all.push(items::distinct(&env));
    all.push(operators);
    all.push(items::retention(&env));
    all.push(items::compliance(&env, &live_hipaa));
    all.push(data_dir);
    all.push(cmdline);
    if let Some((_, rendered, again)) = &rendered {
        all.extend(live::tools(rendered, again));
    }
    // Defence in depth: no item may show a secret value, whatever it quotes.
    for item in &mut all {
        item.detail = secrets.mask(&item.detail);
        item.fix = item.fix.as_deref().map(|fix| secrets.mask(fix));
    }
    let count = |status: Status| all.iter().filter(|item| item.status == status).count();
    let (pass, warn, fail) = (
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail),
    );
    let source = match &env.source {
        Source::Process => "process environment".to_string(),
        Source::File(path) => format!("env file {}", path.display()),
    };
    let url = args.url.as_deref().map(mask::url);
    let printed = if args.json {
        cmd::print_json(
            &json!({
                "source": source,
                "url": url,
                "items": all,
                "summary": {"pass": pass, "warn": warn, "fail": fail},
            }),
            false,
        )
    } else {
        let color = cmd::color();
        let rows: Vec<Vec<String>> = all
            .iter()
            .map(|item| {
                let detail = match &item.fix {
                    Some(fix) => format!("{} -> fix: {fix}", item.detail),
                    None => item.detail.clone(),
                };
                vec![item.id.to_string(), item.status.word().to_string(), detail]
            })
            .collect();
        let mut text = table(&["ITEM", "STATUS", "DETAIL"], &rows);
        if color {
            // Colour the status cells after alignment (the escapes have no width).
            text = text
                .lines()
                .map(paint_status)
                .collect::<Vec<_>>()
                .join("\n")
                + "\n";
        }
        text.push_str(&format!(
            "\n{source}{}: {pass} passed, {warn} warned, {fail} failed{}\n",
            url.as_deref()
                .map(|u| format!(", live agent {u}"))
                .unwrap_or_default(),
            if args.url.is_none() {
                " (live tools not checked: give --url)"
            } else {
                ""
            }
        ));
        crate::print_stdout(&text)
    };
    if printed != Exit::Ok {
        return printed;
    }
    if fail > 0 {
        Exit::Failed
    } else {
        Exit::Ok
    }
}

/// A table line with its status cell coloured (green pass, yellow warn, red fail).
fn paint_status(line: &str) -> String {
    for (word, code) in [("pass", "32"), ("warn", "33"), ("fail", "31")] {
        let cell = format!("  {word}  ");
        if let Some(at) = line.find(&cell) {
            return format!(
                "{}  {}  {}",
                &line[..at],
                cmd::paint(word, code, true),
                &line[at + cell.len()..]
            );
        }
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weak_environment_fails_by_item_without_showing_values() {
        let env = Env::of(&[
            ("VOXGUARD_ENV", "development"),
            ("SWML_BASIC_AUTH_USER", "ops"),
            ("SWML_BASIC_AUTH_PASSWORD", "short-pass-1"),
            ("VOXGUARD_ADMIN_USER", "admin"),
            ("VOXGUARD_ADMIN_PASSWORD", "short-pass-1"),
            ("VOXGUARD_TOKEN_KEY", "not base64 !!"),
        ]);
        let mut all = vec![
            items::production(&env),
            items::basic_auth(&env),
            items::distinct(&env),
        ];
        all.extend(items::keys(&env));
        let by = |id: &str| all.iter().find(|i| i.id == id).unwrap();
        for id in [
            "production",
            "basic_auth",
            "credentials.distinct",
            "keys.token",
            "keys.audit",
            "keys.signing",
        ] {
            assert_eq!(by(id).status, Status::Fail, "{:?}", by(id));
            assert!(by(id).fix.is_some());
        }
        let text = format!("{all:?}");
        assert!(
            !text.contains("short-pass-1") && !text.contains("not base64 !!"),
            "{text}"
        );
        assert!(by("keys.token").detail.contains("malformed"));
    }

    #[test]
    fn statuses_are_coloured_in_place() {
        let line = "keys.token  fail  VOXGUARD_TOKEN_KEY is not set";
        let painted = paint_status(line);
        assert!(painted.contains("\x1b[31mfail\x1b[0m"), "{painted}");
        assert_eq!(paint_status("ITEM  STATUS  DETAIL"), "ITEM  STATUS  DETAIL");
    }
}
