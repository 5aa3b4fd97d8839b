//! The `voxguard` command-line tool.
//!
//! This binary owns command-line parsing (clap, derive style) and turns the verdicts of the
//! library crates into text, JSON and exit codes. Its commands:
//!
//! - `audit verify` (`audit`): check the audit trail's hash chain and signed checkpoints;
//! - `bench` (`bench`, with its bare-axum baseline in `baseline`): the load generator;
//! - `users add|list|remove|set-role` (`users`): the records API's operator accounts;
//! - `records list|show|export|purge|delete-subject|rotate-key` (`records`): conversation
//!   records, read and managed on the data directory;
//! - `swml`, `tools` (`inspect`), `exec`, `simulate`, `probe`, `check`: over real HTTP against
//!   any running SWML/SWAIG agent, through the client in `agent` (plumbing in `cmd`);
//! - `gateway` (`gateway`): serve the library's gateway mode in front of an upstream agent;
//! - `keys generate` (`keys`) and `completions`;
//! - `version`.
//!
//! `users` and `records` open the data directory (`datadir`) the way the runtime does —
//! records database, audit trail, compliance modes — and act as the local administrator
//! `cli:$USER`, so that every access is audited like one through the API; they require
//! `VOXGUARD_RECORDS_KEY` (the library would otherwise generate a throw-away key).
//!
//! It must not contain security logic of its own: verification is
//! [`voxguard_store::SqliteAuditLog::verify_path`] / [`voxguard_store::JsonlAuditLog::verify_path`]
//! / [`voxguard_store::PgAuditLog::verify_url`] over the pure verifier in `voxguard_guard::audit`; records, operators, their rules and
//! their audit events are [`voxguard::Records`]'. It must never print a secret (keys are read
//! from the environment and only handed to the library; agents' credentials and tokens are
//! masked unless `--show-secrets`), except the password or token that `users add` or
//! `keys generate` generates, printed once.
//!
//! # Exit codes
//!
//! Every command exits with one of the [`Exit`] codes (docs/cli.md has the table):
//!
//! | code | meaning |
//! | ---- | ------- |
//! | 0 | OK (for `audit verify`: the chain verified) |
//! | 1 | what was checked failed: the audit chain is broken, a `simulate` expectation failed, `check` found a failing item, an `exec` step was refused |
//! | 2 | usage or configuration error: bad arguments, a missing or unreadable file, a bad or missing key (`VOXGUARD_RECORDS_KEY` for `users`/`records`), no records database, no record with that id, an operator change refused (unknown operator or role, the last admin), a deletion without `--yes` |
//! | 3 | internal error (including a record that does not decrypt, or an audit trail that cannot be written) |
//! | 4 | the agent could not be used: unreachable, TLS failure, timeout, 401 with the given credentials, not SWML |
//! | 11–14 | `probe`: the worst finding is low, medium, high or critical |
#![forbid(unsafe_code)]

mod agent;
mod audit;
mod baseline;
mod bench;
mod check;
mod cmd;
mod datadir;
mod exec;
mod gateway;
mod inspect;
mod keys;
mod migrate;
mod output;
mod probe;
mod records;
mod simulate;
mod users;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `bench --help`: examples, then the exit codes.
const BENCH_AFTER_HELP: &str = "\
Examples:
  voxguard bench http://127.0.0.1:3000/ --user bank-operator --password ... --pid 1234
  voxguard bench http://u:p@127.0.0.1:3000/fast --calls unlimited --baseline \\
      --call 'check_order:{\"order_number\":\"ORD-12345\",\"amount\":25.5,\"note\":\"parcel\"}'
  voxguard bench http://u:p@127.0.0.1:3000/wide --calls 0        (SWML render rate)
  voxguard bench http://u:p@127.0.0.1:3000/slow -c 256 --little-ms 50

Exit codes:
  0  the run completed (errors during the load are in the report)
  2  usage or setup error: bad arguments, target unreachable or refusing the credentials
  3  internal error";

/// The exit codes, listed in `--help` too.
const EXIT_CODES_HELP: &str = "\
Exit codes:
  0      OK (audit verify: the chain verified)
  1      what was checked failed: audit chain broken, simulate expectation failed, check
         found a fail, exec step refused
  2      usage or configuration error: bad arguments, missing or unreadable file, bad or
         missing key, no record with that id, an operator change refused
  3      internal error
  4      the agent could not be used: unreachable, TLS, timeout, 401, not SWML
  11-14  probe: the worst finding is low, medium, high, critical";

/// `migrate --help`: examples, then the exit codes.
const MIGRATE_AFTER_HELP: &str = "\
Examples:
  VOXGUARD_DATABASE_URL=postgres://voxguard@db/voxguard voxguard migrate
  voxguard migrate --status --json

Exit codes:
  0  applied (or, with --status, reported)
  2  usage error: no or bad database URL
  3  the database could not be reached or migrated";

/// `audit verify --help`: the output format, then the exit codes.
const VERIFY_AFTER_HELP: &str = "\
Output:
  OK: N records verified (last seq S), C checkpoints checked
  BROKEN at seq S: <what is wrong> (<problem>)
  --json: {\"ok\":true,\"records\":N,\"last_seq\":S,\"checkpoints_checked\":C}
      or  {\"ok\":false,\"seq\":S,\"problem\":\"<problem>\",\"message\":\"...\"}
  problem: modified, missing, reordered, truncated, checkpoint_forged, checkpoint_mismatch

Exit codes:
  0  OK: the chain verified
  1  the audit chain is broken: tampering or damage was detected
  2  usage or configuration error: bad arguments, missing or unreadable file, unreachable
     database or schema without audit tables, bad key
  3  internal error";

/// How the process ends. The numbers are stable; scripts depend on them (docs/cli.md has the
/// table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// 0: success.
    Ok = 0,
    /// 1: what was checked failed: the audit chain is broken, a `simulate` expectation failed,
    /// `check` found a failing item, `exec` was refused.
    Failed = 1,
    /// 2: usage or configuration error (bad arguments, missing or unreadable file, bad key).
    Usage = 2,
    /// 3: internal error.
    Internal = 3,
    /// 4: the agent could not be used: unreachable, TLS failure, timeout, 401 with the given
    /// credentials, or an answer that is not SWML.
    Agent = 4,
    /// 11: `probe`'s worst finding is of low severity.
    Low = 11,
    /// 12: `probe`'s worst finding is of medium severity.
    Medium = 12,
    /// 13: `probe`'s worst finding is of high severity.
    High = 13,
    /// 14: `probe`'s worst finding is critical.
    Critical = 14,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// Secure-by-default runtime for SignalWire SWML/SWAIG voice AI agents.
#[derive(Debug, Parser)]
#[command(name = "voxguard", version, after_help = EXIT_CODES_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Work with the tamper-evident audit trail.
    #[command(
        after_help = "Examples:\n  voxguard audit verify --dir ./voxguard-data\n  VOXGUARD_AUDIT_KEY=... voxguard audit verify --dir ./voxguard-data --json\n\nExit codes: 0 verified; 1 broken (tampering or damage); 2 usage or configuration; 3 internal."
    )]
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Load-test a running agent with realistic call flows and report throughput and latency.
    ///
    /// Each simulated call fetches the SWML document by POST, takes the function tokens from
    /// it, verifies the caller when the agent renders the verification function, then makes
    /// SWAIG calls from the mix. Requests/s, latency percentiles (p50/p90/p99/p99.9), errors by
    /// status and refusal reason, and with --pid the target's resident memory. Targets must be
    /// loopback addresses unless --allow-remote is given.
    #[command(after_help = BENCH_AFTER_HELP)]
    Bench(bench::BenchArgs),
    /// Manage the operators of the records API (staff accounts with a role).
    ///
    /// Works on the data directory directly, or on the replicas' PostgreSQL state when
    /// VOXGUARD_DATABASE_URL is set; every change is audited as operator cli:$USER.
    /// Requires VOXGUARD_RECORDS_KEY.
    #[command(after_help = users::USERS_AFTER_HELP)]
    Users(users::UsersArgs),
    /// Read and manage conversation records: list, show, export, purge, delete a subject,
    /// rotate the key.
    ///
    /// Works on the data directory directly, or on the replicas' PostgreSQL state when
    /// VOXGUARD_DATABASE_URL is set; every access is audited as operator cli:$USER.
    /// Requires VOXGUARD_RECORDS_KEY.
    #[command(after_help = records::RECORDS_AFTER_HELP)]
    Records(records::RecordsArgs),
    /// Apply the PostgreSQL migrations of this build (the runtime also applies them at start).
    ///
    /// Reads VOXGUARD_DATABASE_URL and VOXGUARD_DATABASE_SCHEMA unless given; --status only
    /// reports. Safe to run from several machines at once: each migration is applied once.
    #[command(after_help = MIGRATE_AFTER_HELP)]
    Migrate(migrate::MigrateArgs),
    /// Print the SWML document an agent renders for a call (credentials and tokens masked).
    #[command(after_help = inspect::SWML_AFTER_HELP)]
    Swml(inspect::SwmlArgs),
    /// List an agent's AI functions: description, parameters, token, active.
    #[command(after_help = inspect::TOOLS_AFTER_HELP)]
    Tools(inspect::ToolsArgs),
    /// Play one call: render the SWML, run the --first steps, call the function, show every
    /// answer and action.
    #[command(after_help = exec::EXEC_AFTER_HELP)]
    Exec(exec::ExecArgs),
    /// Run scripted calls (YAML) against an agent and check every expectation; for CI.
    #[command(after_help = simulate::SIMULATE_AFTER_HELP)]
    Simulate(simulate::SimulateArgs),
    /// Black-box security probe of any SWML/SWAIG agent: auth, tokens, validation, limits,
    /// headers, TLS. Sends only requests that must be refused unless --allow-calls.
    #[command(after_help = probe::PROBE_AFTER_HELP)]
    Probe(probe::ProbeArgs),
    /// Serve voxguard in front of an SWML agent it did not build (gateway mode).
    ///
    /// The platform calls the gateway instead of the agent: every webhook in the agent's SWML
    /// is rewritten to the gateway, and every function call is checked (auth, token, schema,
    /// guards, limits, emergency switch, transfers, audit) before it is forwarded.
    #[command(after_help = gateway::GATEWAY_AFTER_HELP)]
    Gateway(gateway::GatewayArgs),
    /// Evaluate the production hardening checklist on an environment (and a live agent).
    #[command(after_help = check::CHECK_AFTER_HELP)]
    Check(check::CheckArgs),
    /// Generate keys and passwords in the format the runtime expects.
    #[command(after_help = keys::KEYS_AFTER_HELP)]
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Examples:\n  voxguard completions bash > /etc/bash_completion.d/voxguard\n  voxguard completions zsh > \"${fpath[1]}/_voxguard\"\n  voxguard completions fish > ~/.config/fish/completions/voxguard.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The bare-axum server of `bench --baseline` (started by the bench itself).
    #[command(hide = true)]
    BenchBaselineServer,
    /// Print the version.
    Version,
}

/// `voxguard audit …`
#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the audit log's hash chain and signed checkpoints.
    ///
    /// Reports OK, or the first bad sequence number and why: modified, missing, reordered,
    /// truncated (after a signed checkpoint), checkpoint_forged or checkpoint_mismatch.
    /// Checkpoints are only checked with the audit key; without it, cutting off the tail of the
    /// log cannot be detected.
    #[command(after_help = VERIFY_AFTER_HELP)]
    Verify(audit::VerifyArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // `--help` and `--version` are "errors" that print to stdout and exit 0.
            let _ = err.print();
            return if err.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            }
            .into();
        }
    };
    // A panic is an internal error (exit 3), not Rust's default 101.
    match std::panic::catch_unwind(move || run(cli)) {
        Ok(exit) => exit.into(),
        Err(_) => Exit::Internal.into(),
    }
}

fn run(cli: Cli) -> Exit {
    match cli.command {
        None => print_stdout(&Cli::command_help().to_string()),
        Some(Command::Version) => {
            print_stdout(&format!("voxguard {}\n", env!("CARGO_PKG_VERSION")))
        }
        Some(Command::Audit {
            command: AuditCommand::Verify(args),
        }) => audit::verify(&args, &audit::ProcessEnv),
        Some(Command::Bench(args)) => bench::bench(&args),
        Some(Command::Users(args)) => users::run(&args),
        Some(Command::Records(args)) => records::run(&args),
        Some(Command::Migrate(args)) => migrate::run(&args),
        Some(Command::Swml(args)) => inspect::swml(&args),
        Some(Command::Tools(args)) => inspect::tools(&args),
        Some(Command::Exec(args)) => exec::run(&args),
        Some(Command::Simulate(args)) => simulate::run(&args),
        Some(Command::Probe(args)) => probe::run(&args),
        Some(Command::Check(args)) => check::run(&args),
        Some(Command::Gateway(args)) => gateway::run(&args),
        Some(Command::Keys { command }) => keys::run(&command),
        Some(Command::Completions { shell }) => {
            let mut script = Vec::new();
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "voxguard",
                &mut script,
            );
            print_stdout(&String::from_utf8_lossy(&script))
        }
        Some(Command::BenchBaselineServer) => baseline::serve(),
    }
}

impl Cli {
    /// The long help text, as `voxguard --help` prints it.
    fn command_help() -> clap::builder::StyledStr {
        <Self as clap::CommandFactory>::command().render_long_help()
    }
}

/// Print `text` to stdout; a failed write (e.g. a closed pipe) is an internal error.
fn print_stdout(text: &str) -> Exit {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Exit::Ok,
        Err(_) => Exit::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exit_codes_are_stable() {
        assert_eq!(Exit::Ok as u8, 0);
        assert_eq!(Exit::Failed as u8, 1);
        assert_eq!(Exit::Usage as u8, 2);
        assert_eq!(Exit::Internal as u8, 3);
        assert_eq!(Exit::Agent as u8, 4);
        assert_eq!(
            [Exit::Low, Exit::Medium, Exit::High, Exit::Critical].map(|e| e as u8),
            [11, 12, 13, 14]
        );
    }

    #[test]
    fn help_lists_commands_and_exit_codes() {
        let help = Cli::command_help().to_string();
        assert!(help.contains("audit"), "{help}");
        assert!(help.contains("users"), "{help}");
        assert!(help.contains("records"), "{help}");
        assert!(help.contains("version"), "{help}");
        assert!(help.contains("Exit codes:"), "{help}");
    }
}
