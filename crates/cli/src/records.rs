//! `voxguard records`: conversation records, read and managed on the data directory.
//!
//! This module owns the `records` subcommands (`list`, `show`, `export`, `purge`,
//! `delete-subject`, `rotate-key`), their arguments, the checks a command line adds before it
//! acts (a purpose for content, `--yes` before a deletion, the previous key before a rotation)
//! and how results are printed (text, `--json`, or an export file with mode 0600). Reading,
//! decrypting, deleting, purging, re-wrapping and the audit event of every access are the
//! library's ([`voxguard::Records`]), run as the local administrator `cli:$USER`; this module
//! must not touch the stores around it, and it never prints a key. Content is printed only by
//! `show` and `export`, which are audited with their purpose before the content is returned.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::builder::PossibleValuesParser;
use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Value};
use voxguard::guard::records::RecordsKey;
use voxguard::guard::{KeyRing, TokenKey};
use voxguard::records::subject_export;
use voxguard::store::{RecordFilter, RecordMeta, SqliteStore, DEFAULT_SESSION_TTL};
use voxguard::{DeletionReport, RecordKind};
use zeroize::Zeroizing;

use crate::datadir::{self, CommandError, Create, DataArgs, Workspace, PREVIOUS_KEYS_ENV};
use crate::output::{clean, parse_from, parse_to, table, utc, ExportFile};
use crate::Exit;

/// The longest purpose accepted (the API's limit), in characters.
const MAX_PURPOSE: usize = 200;

/// What `delete-subject` says when it cannot reset attempt counters (no `VOXGUARD_TOKEN_KEY`).
pub const ATTEMPT_COUNTERS_NOTE: &str = "attempt counters: not reset (set VOXGUARD_TOKEN_KEY to the agent's token key so the command can find them; they hold a keyed hash of the subject, never the id, and expire with their window)";

/// The token key variable; the key attempt counters are stored under derives from it.
const TOKEN_KEY_ENV: &str = "VOXGUARD_TOKEN_KEY";

/// `records --help`: examples, then the exit codes.
pub const RECORDS_AFTER_HELP: &str = "\
Examples:
  voxguard records list --subject pat_001 --kind transcript --from 2024-03-01
  voxguard records show rec_abc... --purpose \"treatment follow-up\"
  voxguard records export --subject pat_001 --purpose \"access request 42\" --out pat_001.json
  voxguard records purge --dry-run
  voxguard records delete-subject pat_001 --yes
  VOXGUARD_RECORDS_KEY=<new> VOXGUARD_RECORDS_KEYS_PREVIOUS=<old> voxguard records rotate-key

Every access is written to the audit trail (DIR/audit.db) as operator cli:$USER, role
local-admin, with the masked subject and the purpose, before any content is shown.

Environment: VOXGUARD_RECORDS_KEY (required; never generated here),
VOXGUARD_RECORDS_KEYS_PREVIOUS, VOXGUARD_DATA_DIR, VOXGUARD_AUDIT_KEY, VOXGUARD_ENV,
VOXGUARD_COMPLIANCE, VOXGUARD_RETENTION_<KIND>_DAYS.

Exit codes:
  0  OK
  2  usage or configuration error: bad arguments, VOXGUARD_RECORDS_KEY not set, no records
     database, no record with that id, a record key that is not configured, no --yes
  3  internal error: a record that does not decrypt, the audit trail or a store failed";

/// `records delete-subject --help`.
const DELETE_AFTER_HELP: &str = "\
Deletes, in one transaction, every record of the subject and every record of the calls it took
part in, and the subject's data key: every copy of its records, backups included, becomes
unreadable once the records key that wrapped it is retired (crypto-shredding). Then resets the
subject's verification attempt counters for every agent in its records (with VOXGUARD_TOKEN_KEY
set to the agents' token key) and clears those calls' sessions in DIR/voxguard.db. Cannot be
undone; refused without --yes. Run it
when the agent is idle: a running agent may still hold a deleted session of a call in progress
in its memory.";

/// `records rotate-key --help`.
const ROTATE_AFTER_HELP: &str = "\
Key rotation, in order:
  1. restart the agents with VOXGUARD_RECORDS_KEY=<new> and VOXGUARD_RECORDS_KEYS_PREVIOUS=<old>;
  2. run this command with the same two variables: every data key still wrapped by the old key
     is re-wrapped by the new one (record bodies are not re-encrypted);
  3. remove the old key from VOXGUARD_RECORDS_KEYS_PREVIOUS and restart the agents.";

/// Arguments of `voxguard records`.
#[derive(Debug, Args)]
pub struct RecordsArgs {
    /// Where and how.
    #[command(flatten)]
    pub data: DataArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: RecordsCommand,
}

/// The `records` subcommands.
#[derive(Debug, Subcommand)]
pub enum RecordsCommand {
    /// List record metadata (no content), oldest first, one page at a time.
    List(ListArgs),
    /// Show one record's content (decrypted), for a stated purpose.
    Show {
        /// The record id (rec_…).
        id: String,
        /// Why the content is read (recorded in the audit trail; at most 200 characters).
        #[arg(long, value_parser = parse_purpose)]
        purpose: String,
    },
    /// Export one record, or every record of a subject, as a JSON document.
    Export(ExportArgs),
    /// Delete every record past its retention (with --dry-run, only count them).
    Purge {
        /// Count what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete everything kept about a data subject (right to deletion).
    #[command(after_help = DELETE_AFTER_HELP)]
    DeleteSubject {
        /// The subject id (the customer or patient id the agent set).
        subject: String,
        /// Confirm the deletion; it cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Re-wrap the data keys still under a previous records key with the current one.
    #[command(after_help = ROTATE_AFTER_HELP)]
    RotateKey,
}

/// Arguments of `records list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only records of this subject.
    #[arg(long)]
    pub subject: Option<String>,
    /// Only records of this call.
    #[arg(long, value_name = "CALL_ID")]
    pub call_id: Option<String>,
    /// Only records of this kind.
    #[arg(long, value_parser = PossibleValuesParser::new(RecordKind::ALL.map(|k| k.as_str())))]
    pub kind: Option<String>,
    /// Only records created at or after this time: unix seconds, YYYY-MM-DD or
    /// YYYY-MM-DDTHH:MM:SSZ (UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_from)]
    pub from: Option<u64>,
    /// Only records created at or before this time (a date means the whole day).
    #[arg(long, value_name = "TIME", value_parser = parse_to)]
    pub to: Option<u64>,
    /// At most this many records (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Continue after this record id (the last of the previous page).
    #[arg(long, value_name = "ID")]
    pub after: Option<String>,
}

/// Arguments of `records export`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("what").args(["id", "subject"]).required(true)))]
pub struct ExportArgs {
    /// The record to export.
    pub id: Option<String>,
    /// Export every record of this subject instead (a data-subject access export).
    #[arg(long)]
    pub subject: Option<String>,
    /// Why the data is exported (recorded in the audit trail; at most 200 characters).
    #[arg(long, value_parser = parse_purpose)]
    pub purpose: String,
    /// Write the document to this new file (mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// A purpose: not blank, at most 200 characters, no control characters.
fn parse_purpose(text: &str) -> Result<String, String> {
    let purpose = text.trim();
    if purpose.is_empty() {
        return Err("a purpose is required: say why the content is read".into());
    }
    if purpose.chars().count() > MAX_PURPOSE {
        return Err(format!(
            "the purpose is longer than {MAX_PURPOSE} characters"
        ));
    }
    if purpose.chars().any(char::is_control) {
        return Err("the purpose must not contain control characters".into());
    }
    Ok(purpose.to_string())
}

/// Run `voxguard records …`.
pub fn run(args: &RecordsArgs) -> Exit {
    if let RecordsCommand::DeleteSubject { yes: false, .. } = args.command {
        // Refused before anything is opened.
        return datadir::report(
            &CommandError::InvalidArgument(
                "this deletes every record of the subject and of the calls it took part in, its data key (crypto-shredding: no copy of its records, backups included, can be read again) and those calls' sessions; it cannot be undone: add --yes"
                    .into(),
            ),
            &args.data.data_dir,
        );
    }
    let json = args.data.json;
    datadir::block_on(datadir::run(
        &args.data,
        Create::Never,
        async |workspace: &Workspace| execute(workspace, &args.command, json).await,
    ))
}

async fn execute(
    workspace: &Workspace,
    command: &RecordsCommand,
    json: bool,
) -> Result<Zeroizing<String>, CommandError> {
    let records = &workspace.records;
    let actor = &workspace.actor;
    match command {
        RecordsCommand::List(args) => {
            let filter = RecordFilter {
                subject: args.subject.clone(),
                call_id: args.call_id.clone(),
                kind: args.kind.clone(),
                from: args.from,
                to: args.to,
                limit: Some(args.limit),
                after: args.after.clone(),
                ..RecordFilter::default()
            };
            let page = records.list(actor, &filter).await?;
            Ok(Zeroizing::new(render_list(&page, args.limit, json)))
        }
        RecordsCommand::Show { id, purpose } => {
            let (meta, content) = records.read(actor, id, purpose, false).await?;
            render_show(&meta, &content, json)
        }
        RecordsCommand::Export(args) => export(workspace, args, json).await,
        RecordsCommand::Purge { dry_run } => {
            let counts = records.purge(actor, *dry_run).await?;
            Ok(Zeroizing::new(render_purge(&counts, *dry_run, json)))
        }
        RecordsCommand::DeleteSubject { subject, .. } => {
            // Sessions of the subject's calls live in the agent's session database.
            // Attempt counters are keyed by a key derived from the token key.
            let token_keys = match datadir::env_value(TOKEN_KEY_ENV) {
                None => None,
                Some(text) => Some(KeyRing::new(TokenKey::from_base64(&text).map_err(|e| {
                    CommandError::InvalidArgument(format!("{TOKEN_KEY_ENV}: {e}"))
                })?)),
            };
            let report = match &workspace.shared {
                // Shared state: the replicas' sessions and counters on PostgreSQL.
                Some((sessions, attempts)) => {
                    records
                        .clone()
                        .with_cleanup(sessions.clone(), attempts.clone(), token_keys.as_ref())
                        .delete_subject(actor, subject)
                        .await
                }
                None => {
                    let store =
                        SqliteStore::open_in_dir(&workspace.dir, DEFAULT_SESSION_TTL).await?;
                    let report = records
                        .clone()
                        .with_cleanup(
                            Arc::new(store.clone()),
                            Arc::new(store.clone()),
                            token_keys.as_ref(),
                        )
                        .delete_subject(actor, subject)
                        .await;
                    store.close().await;
                    report
                }
            };
            Ok(Zeroizing::new(render_deletion(
                &report?,
                token_keys.is_some(),
                json,
            )))
        }
        RecordsCommand::RotateKey => {
            if datadir::env_value(PREVIOUS_KEYS_ENV).is_none() {
                return Err(CommandError::InvalidArgument(format!(
                    "{PREVIOUS_KEYS_ENV} is not set: rotate-key re-wraps the data keys from the previous records key to the current one; set VOXGUARD_RECORDS_KEY to the new key and {PREVIOUS_KEYS_ENV} to the old one"
                )));
            }
            let rewrapped = records.rotate(actor).await?;
            let key_id = datadir::env_value(datadir::RECORDS_KEY_ENV)
                .and_then(|text| RecordsKey::from_base64(&text).ok())
                .map(|key| key.id().to_string())
                .unwrap_or_default();
            Ok(Zeroizing::new(render_rotation(rewrapped, &key_id, json)))
        }
    }
}

/// `records export`: the document to stdout, or to a new private file.
async fn export(
    workspace: &Workspace,
    args: &ExportArgs,
    json: bool,
) -> Result<Zeroizing<String>, CommandError> {
    // The file first: a name that cannot be used is refused before anything is read.
    let file = match &args.out {
        Some(path) => Some(
            ExportFile::create(path)
                .map_err(|error| CommandError::InvalidArgument(error.to_string()))?,
        ),
        None => None,
    };
    let exported_at = now_unix();
    let (document, count) = match (&args.id, &args.subject) {
        (Some(id), _) => {
            let (meta, content) = workspace
                .records
                .read(&workspace.actor, id, &args.purpose, true)
                .await?;
            (
                json!({ "record": meta, "content": content, "exported_at": exported_at }),
                1,
            )
        }
        (None, Some(subject)) => {
            let records = workspace
                .records
                .export_subject(&workspace.actor, subject, &args.purpose)
                .await?;
            let count = records.len();
            (subject_export(subject, exported_at, records), count)
        }
        (None, None) => {
            return Err(CommandError::InvalidArgument(
                "name a record id or --subject".into(),
            ))
        }
    };
    let text = Zeroizing::new(to_json(&document, !json || file.is_some())?);
    let Some(file) = file else {
        return Ok(text);
    };
    file.finish(text.as_bytes())
        .map_err(|error| CommandError::Output(error.to_string()))?;
    let out = args.out.as_deref().unwrap_or(std::path::Path::new(""));
    let noun = if count == 1 { "record" } else { "records" };
    Ok(Zeroizing::new(if json {
        format!(
            "{}\n",
            json!({ "exported": count, "out": out.display().to_string() })
        )
    } else {
        format!(
            "Exported {count} {noun} to {} (readable by its owner only).\n",
            clean(&out.display().to_string())
        )
    }))
}

/// `value` as JSON text with a final newline: indented when `pretty`, else one line.
fn to_json(value: &Value, pretty: bool) -> Result<String, CommandError> {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    text.map(|mut text| {
        text.push('\n');
        text
    })
    .map_err(|error| CommandError::Internal(error.to_string()))
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn render_list(page: &[RecordMeta], limit: u32, json: bool) -> String {
    // A full page may have a successor; a shorter one is the last.
    let next = (page.len() == limit as usize)
        .then(|| page.last().map(|meta| meta.id.clone()))
        .flatten();
    if json {
        return format!("{}\n", json!({ "records": page, "next": next }));
    }
    if page.is_empty() {
        return "No records.\n".to_string();
    }
    let rows: Vec<Vec<String>> = page
        .iter()
        .map(|meta| {
            vec![
                meta.id.clone(),
                meta.kind.clone(),
                meta.agent.clone(),
                meta.call_id.clone(),
                meta.subject.clone(),
                utc(meta.created_at),
                utc(meta.expires_at),
                meta.size.to_string(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ID", "KIND", "AGENT", "CALL", "SUBJECT", "CREATED", "EXPIRES", "SIZE",
        ],
        &rows,
    );
    if let Some(next) = next {
        out.push_str(&format!(
            "More records may follow: add --after {}\n",
            clean(&next)
        ));
    }
    out
}

fn render_show(
    meta: &RecordMeta,
    content: &Value,
    json: bool,
) -> Result<Zeroizing<String>, CommandError> {
    if json {
        return Ok(Zeroizing::new(to_json(
            &json!({ "record": meta, "content": content }),
            false,
        )?));
    }
    let mut out = Zeroizing::new(String::new());
    for (label, value) in [
        ("id", meta.id.clone()),
        ("kind", meta.kind.clone()),
        ("agent", meta.agent.clone()),
        ("call", meta.call_id.clone()),
        ("subject", meta.subject.clone()),
        ("created", utc(meta.created_at)),
        ("expires", utc(meta.expires_at)),
        ("size", format!("{} bytes", meta.size)),
        ("key", meta.key_id.clone()),
    ] {
        out.push_str(&format!("{label:<9}{}\n", clean(&value)));
    }
    out.push_str("content:\n");
    // JSON escapes every control character, so the content cannot drive the terminal.
    out.push_str(&to_json(content, true)?);
    Ok(out)
}

/// The counts of every known kind (zero when absent), and any other kind that was counted.
fn per_kind(counts: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = RecordKind::ALL
        .iter()
        .map(|kind| {
            let name = kind.as_str().to_string();
            let count = counts.get(&name).copied().unwrap_or(0);
            (name, count)
        })
        .collect();
    for (name, count) in counts {
        if RecordKind::parse(name).is_none() {
            out.push((name.clone(), *count));
        }
    }
    out
}

fn list_counts(counts: &[(String, u64)]) -> String {
    counts
        .iter()
        .map(|(kind, count)| format!("{} {count}", clean(kind)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn render_purge(counts: &BTreeMap<String, u64>, dry_run: bool, json: bool) -> String {
    let counts = per_kind(counts);
    let total: u64 = counts.iter().map(|(_, count)| count).sum();
    if json {
        let records: serde_json::Map<String, Value> = counts
            .iter()
            .map(|(kind, count)| (kind.clone(), json!(count)))
            .collect();
        return format!(
            "{}\n",
            json!({ "dry_run": dry_run, "records": records, "total": total })
        );
    }
    let noun = if total == 1 { "record" } else { "records" };
    match (dry_run, total) {
        (true, 0) => "Dry run: no record is past its retention; nothing was deleted.\n".into(),
        (true, _) => format!(
            "Dry run: {total} {noun} past retention would be purged ({}); nothing was deleted.\n",
            list_counts(&counts)
        ),
        (false, 0) => "No record is past its retention; nothing was purged.\n".into(),
        (false, _) => format!(
            "Purged {total} {noun} past retention ({}).\n",
            list_counts(&counts)
        ),
    }
}

fn render_deletion(report: &DeletionReport, counters_reset: bool, json: bool) -> String {
    if json {
        let mut value = json!({
            "deleted": report,
            "attempt_counters_reset": counters_reset,
        });
        if !counters_reset {
            value["note"] = json!(ATTEMPT_COUNTERS_NOTE);
        }
        return format!("{value}\n");
    }
    let counters = if counters_reset {
        format!(
            "attempt counters reset: {} agent(s)",
            report.attempt_counters
        )
    } else {
        ATTEMPT_COUNTERS_NOTE.to_string()
    };
    let total: u64 = report.records.values().sum();
    let kinds: Vec<(String, u64)> = report
        .records
        .iter()
        .map(|(kind, count)| (kind.clone(), *count))
        .collect();
    let detail = if kinds.is_empty() {
        String::new()
    } else {
        format!(" ({})", list_counts(&kinds))
    };
    format!(
        "Deleted the subject's data:\n  records deleted: {total}{detail}\n  data keys deleted (crypto-shredded): {}\n  call sessions cleared: {}\n  {counters}\n",
        report.keys, report.sessions
    )
}

fn render_rotation(rewrapped: u64, key_id: &str, json: bool) -> String {
    if json {
        return format!("{}\n", json!({ "rewrapped": rewrapped, "key_id": key_id }));
    }
    let noun = if rewrapped == 1 { "key" } else { "keys" };
    format!(
        "Re-wrapped {rewrapped} data {noun} under the current records key (id {key_id}); record bodies were not re-encrypted.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str) -> RecordMeta {
        RecordMeta {
            id: id.into(),
            agent: "clinic".into(),
            call_id: "call-\u{7}1".into(),
            subject: "pat_001".into(),
            kind: "summary".into(),
            created_at: 1_710_235_800,
            expires_at: 1_710_235_800 + 86_400,
            size: 42,
            key_id: "0011223344556677".into(),
        }
    }

    #[test]
    fn purposes_are_required_and_bounded() {
        assert_eq!(parse_purpose("  audit 42 "), Ok("audit 42".to_string()));
        assert!(parse_purpose("   ").is_err());
        assert!(parse_purpose(&"x".repeat(201)).is_err());
        assert!(parse_purpose(&"x".repeat(200)).is_ok());
        assert!(parse_purpose("a\nb").is_err());
    }

    #[test]
    fn listing_pages_and_cleans() {
        let page = [meta("rec_a"), meta("rec_b")];
        let text = render_list(&page, 2, false);
        assert!(
            text.starts_with("ID     KIND     AGENT   CALL     SUBJECT"),
            "{text}"
        );
        assert!(text.contains("call-?1"), "{text}");
        assert!(
            text.ends_with("More records may follow: add --after rec_b\n"),
            "{text}"
        );
        assert!(!render_list(&page, 3, false).contains("--after"));
        let value: Value = serde_json::from_str(&render_list(&page, 2, true)).unwrap();
        assert_eq!(value["next"], "rec_b");
        assert_eq!(value["records"][0]["subject"], "pat_001");
        let value: Value = serde_json::from_str(&render_list(&page, 5, true)).unwrap();
        assert_eq!(value["next"], Value::Null);
        assert_eq!(render_list(&[], 5, false), "No records.\n");
    }

    #[test]
    fn purge_counts_every_kind() {
        let counts = BTreeMap::from([("transcript".to_string(), 2), ("summary".to_string(), 1)]);
        assert_eq!(
            render_purge(&counts, true, false),
            "Dry run: 3 records past retention would be purged (summary 1, transcript 2, tool_log 0, recording 0, payment 0); nothing was deleted.\n"
        );
        assert_eq!(
            render_purge(&BTreeMap::new(), false, false),
            "No record is past its retention; nothing was purged.\n"
        );
        let value: Value = serde_json::from_str(&render_purge(&counts, false, true)).unwrap();
        assert_eq!(
            value,
            json!({"dry_run": false, "total": 3, "records": {
                "summary": 1, "transcript": 2, "tool_log": 0, "recording": 0, "payment": 0}})
        );
    }

    #[test]
    fn deletion_report_says_what_was_not_reset() {
        let report = DeletionReport {
            records: BTreeMap::from([("summary".to_string(), 1), ("transcript".to_string(), 2)]),
            keys: 2,
            sessions: 3,
            attempt_counters: 0,
        };
        let text = render_deletion(&report, false, false);
        assert!(
            text.contains("records deleted: 3 (summary 1, transcript 2)"),
            "{text}"
        );
        assert!(
            text.contains("data keys deleted (crypto-shredded): 2"),
            "{text}"
        );
        assert!(text.contains("call sessions cleared: 3"), "{text}");
        assert!(text.contains("attempt counters: not reset"), "{text}");
        let value: Value = serde_json::from_str(&render_deletion(&report, false, true)).unwrap();
        assert_eq!(value["deleted"]["keys"], 2);
        assert_eq!(value["attempt_counters_reset"], false);
        let reset = render_deletion(&report, true, false);
        assert!(
            reset.contains("attempt counters reset: 0 agent(s)"),
            "{reset}"
        );
    }

    #[test]
    fn show_prints_metadata_then_pretty_content() {
        let content = json!({"text": "hello\u{1b}[2J"});
        let text = render_show(&meta("rec_a"), &content, false).unwrap();
        assert!(
            text.starts_with("id       rec_a\nkind     summary\n"),
            "{}",
            *text
        );
        assert!(
            text.contains("content:\n{\n  \"text\": \"hello\\u001b[2J\"\n}\n"),
            "{}",
            *text
        );
        assert!(!text.contains('\u{1b}'));
        let value: Value =
            serde_json::from_str(&render_show(&meta("rec_a"), &content, true).unwrap()).unwrap();
        assert_eq!(value["content"], content);
        assert_eq!(value["record"]["id"], "rec_a");
    }
}
