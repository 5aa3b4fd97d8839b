//! `voxguard users`: the records API's operator accounts, managed on the data directory.
//!
//! This module owns the `users` subcommands (`add`, `list`, `remove`, `set-role`), their
//! arguments and how their results are printed (text or `--json`). The rules — valid names,
//! known roles, the secret generated and stored only hashed, never removing or demoting the
//! last admin — and the `operator_changed` audit events are the library's
//! ([`voxguard::Records::add_operator`] and its siblings); this module adds none. It prints the
//! generated password or token of `add` exactly once and never any other secret or hash.
//! Custom roles declared in an agent's code are not known here: only the built-in roles are.

use clap::{Args, Subcommand};
use serde_json::json;
use voxguard::store::Operator;
use zeroize::Zeroizing;

use crate::datadir::{self, CommandError, Create, DataArgs, Workspace};
use crate::output::{table, utc};
use crate::Exit;

/// `users --help`: examples, then the exit codes.
pub const USERS_AFTER_HELP: &str = "\
Examples:
  voxguard users add alice --role admin            (prints an API token, once)
  voxguard users add bob --role auditor --password (prints a password, once)
  voxguard users list --json
  voxguard users set-role bob compliance
  voxguard users remove bob

Roles: auditor (metadata and the audit trail), supervisor (reads summaries and transcripts),
compliance (supervisor + export and deletion), admin (manages operators). The last admin can
be neither removed nor given another role. Every change is written to the audit trail as
operator cli:$USER.

Environment: VOXGUARD_RECORDS_KEY (required), VOXGUARD_DATA_DIR, VOXGUARD_AUDIT_KEY,
VOXGUARD_ENV, VOXGUARD_COMPLIANCE.

Exit codes:
  0  OK
  2  usage or configuration error: bad arguments, VOXGUARD_RECORDS_KEY not set, unknown
     operator or role, the last admin
  3  internal error";

/// Arguments of `voxguard users`.
#[derive(Debug, Args)]
pub struct UsersArgs {
    /// Where and how.
    #[command(flatten)]
    pub data: DataArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: UsersCommand,
}

/// The `users` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add an operator; prints its generated API token (or, with --password, its password)
    /// once. The first admin of a new data directory is created this way.
    Add {
        /// The login name: 1 to 64 letters, digits and . _ @ -.
        name: String,
        /// The role: auditor, supervisor, compliance or admin.
        #[arg(long)]
        role: String,
        /// Generate a password (for Basic auth) instead of a bearer API token.
        #[arg(long)]
        password: bool,
    },
    /// List operators: name, role, creation time (never a credential or its hash).
    List,
    /// Remove an operator (never the last admin).
    Remove {
        /// The operator's name.
        name: String,
    },
    /// Give an operator another role (never demote the last admin).
    SetRole {
        /// The operator's name.
        name: String,
        /// The new role.
        role: String,
    },
}

/// Run `voxguard users …`.
pub fn run(args: &UsersArgs) -> Exit {
    // Only `add` may create the records database: it bootstraps the first admin.
    let create = match args.command {
        UsersCommand::Add { .. } => Create::IfMissing,
        _ => Create::Never,
    };
    let json = args.data.json;
    datadir::block_on(datadir::run(
        &args.data,
        create,
        async |workspace: &Workspace| execute(workspace, &args.command, json).await,
    ))
}

async fn execute(
    workspace: &Workspace,
    command: &UsersCommand,
    json: bool,
) -> Result<Zeroizing<String>, CommandError> {
    let records = &workspace.records;
    let actor = &workspace.actor;
    match command {
        UsersCommand::Add {
            name,
            role,
            password,
        } => {
            let (operator, secret) = records.add_operator(actor, name, role, *password).await?;
            render_added(&operator, &secret, *password, json)
        }
        UsersCommand::List => {
            let operators = records.list_operators(actor).await?;
            Ok(render_list(&operators, json))
        }
        UsersCommand::Remove { name } => {
            records.remove_operator(actor, name).await?;
            Ok(Zeroizing::new(if json {
                format!("{}\n", json!({ "removed": name }))
            } else {
                format!("Removed operator {name}.\n")
            }))
        }
        UsersCommand::SetRole { name, role } => {
            let operator = records.set_operator_role(actor, name, role).await?;
            Ok(Zeroizing::new(if json {
                format!("{}\n", json!({ "operator": operator }))
            } else {
                format!(
                    "Operator {} now has the role {}.\n",
                    operator.name, operator.role
                )
            }))
        }
    }
}

/// The new operator and its secret, shown this once. Built in zeroized buffers.
fn render_added(
    operator: &Operator,
    secret: &Zeroizing<String>,
    password: bool,
    json: bool,
) -> Result<Zeroizing<String>, CommandError> {
    let what = if password { "password" } else { "token" };
    let mut out = Zeroizing::new(String::with_capacity(512));
    if json {
        let quoted = Zeroizing::new(
            serde_json::to_string(secret.as_str())
                .map_err(|error| CommandError::Internal(error.to_string()))?,
        );
        out.push_str(&format!("{{\"operator\":{},\"{what}\":", json!(operator)));
        out.push_str(&quoted);
        out.push_str(",\"shown_once\":true}\n");
    } else {
        let label = if password { "Password" } else { "API token" };
        out.push_str(&format!(
            "Added operator {} with the role {}.\n{label} (shown only once: store it now, it cannot be retrieved later):\n",
            operator.name, operator.role
        ));
        out.push_str(secret);
        out.push('\n');
    }
    Ok(out)
}

fn render_list(operators: &[Operator], json: bool) -> Zeroizing<String> {
    Zeroizing::new(if json {
        format!("{}\n", json!({ "operators": operators }))
    } else if operators.is_empty() {
        "No operators.\n".to_string()
    } else {
        let rows: Vec<Vec<String>> = operators
            .iter()
            .map(|op| vec![op.name.clone(), op.role.clone(), utc(op.created_at)])
            .collect();
        table(&["NAME", "ROLE", "CREATED"], &rows)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operator() -> Operator {
        Operator {
            name: "alice".into(),
            role: "admin".into(),
            created_at: 1_710_235_800,
            password_hash: Some("$argon2id$v=19$secret-hash".into()),
            token_hash: Some("abcdef0123".into()),
        }
    }

    #[test]
    fn added_operator_shows_the_secret_once_and_no_hash() {
        let secret = Zeroizing::new("vgo_SECRET".to_string());
        let text = render_added(&operator(), &secret, false, false).unwrap();
        assert_eq!(text.matches("vgo_SECRET").count(), 1, "{}", *text);
        assert!(text.contains("shown only once"));
        assert!(text.starts_with("Added operator alice with the role admin.\nAPI token"));
        assert!(!text.contains("argon2") && !text.contains("abcdef0123"));

        let text = render_added(&operator(), &secret, true, true).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["password"], "vgo_SECRET");
        assert_eq!(value["shown_once"], true);
        assert_eq!(
            value["operator"],
            json!({"name": "alice", "role": "admin", "created_at": 1_710_235_800})
        );
    }

    #[test]
    fn listing_never_shows_hashes() {
        for json in [false, true] {
            let text = render_list(&[operator()], json);
            assert!(text.contains("alice"));
            assert!(!text.contains("argon2") && !text.contains("abcdef0123"));
        }
        assert_eq!(
            *render_list(&[operator()], false),
            "NAME   ROLE   CREATED\nalice  admin  2024-03-12T09:30:00Z\n"
        );
        assert_eq!(*render_list(&[], false), "No operators.\n");
    }
}
