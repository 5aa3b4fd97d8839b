//! `voxguard migrate`: bring a PostgreSQL database's schema up to this build's version.
//!
//! Owns the command's arguments and its report: which migrations this build knows, which the
//! database had, and which it applied (in version order, each once; sqlx's lock lets replicas
//! starting at the same time take turns, and a migration edited after it was applied is
//! refused). The runtime applies the same migrations at start; this command lets an operator
//! do it ahead of a rollout, or just look (`--status`). It must not print the database URL,
//! which can hold a password, and it changes nothing with `--status`.

use clap::Args;
use voxguard::store::postgres::PgDatabase;

use crate::datadir::block_on;
use crate::Exit;

/// `voxguard migrate [--status]`
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The PostgreSQL database: postgres://user:password@host:port/database.
    #[arg(long, env = "VOXGUARD_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// The schema voxguard's tables live in.
    #[arg(long, env = "VOXGUARD_DATABASE_SCHEMA", default_value = "public")]
    database_schema: String,
    /// Only report which migrations are applied; change nothing.
    #[arg(long)]
    status: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Run `voxguard migrate`.
pub fn run(args: &MigrateArgs) -> Exit {
    block_on(migrate(args))
}

async fn migrate(args: &MigrateArgs) -> Exit {
    if !(args.database_url.starts_with("postgres://")
        || args.database_url.starts_with("postgresql://"))
    {
        eprintln!(
            "voxguard: error: --database-url (VOXGUARD_DATABASE_URL) must be a postgres:// URL"
        );
        return Exit::Usage;
    }
    // `--status` only looks: it must not even create the schema it was asked about.
    let connected = if args.status {
        PgDatabase::connect_existing(&args.database_url, &args.database_schema, 2)
    } else {
        PgDatabase::connect(&args.database_url, &args.database_schema, 2).await
    };
    let database = match connected {
        Ok(database) => database,
        Err(error) => return unreachable(&error),
    };
    let before = match database.applied_migrations().await {
        Ok(applied) => applied,
        Err(error) => return unreachable(&error),
    };
    if !args.status {
        if let Err(error) = database.migrate().await {
            return unreachable(&error);
        }
    }
    let after = if args.status {
        before.clone()
    } else {
        match database.applied_migrations().await {
            Ok(applied) => applied,
            Err(error) => return unreachable(&error),
        }
    };
    let known = PgDatabase::known_migrations();
    let newly: Vec<i64> = after
        .iter()
        .filter(|v| !before.contains(v))
        .copied()
        .collect();
    let pending: Vec<i64> = known
        .iter()
        .map(|(v, _)| *v)
        .filter(|v| !after.contains(v))
        .collect();
    let text = if args.json {
        let migrations: Vec<_> = known
            .iter()
            .map(|(version, description)| {
                serde_json::json!({
                    "version": version,
                    "description": description,
                    "applied": after.contains(version),
                    "applied_now": newly.contains(version),
                })
            })
            .collect();
        format!(
            "{}\n",
            serde_json::json!({
                "schema": args.database_schema,
                "migrations": migrations,
                "applied_now": newly,
                "pending": pending,
            })
        )
    } else {
        let mut text = format!("schema {}\n", args.database_schema);
        for (version, description) in &known {
            let state = if newly.contains(version) {
                "applied now"
            } else if after.contains(version) {
                "applied"
            } else {
                "pending"
            };
            text.push_str(&format!("  {version:04} {description}: {state}\n"));
        }
        text.push_str(&match (args.status, newly.len(), pending.len()) {
            (true, _, 0) => "up to date\n".to_string(),
            (true, _, n) => format!("{n} pending (run `voxguard migrate` to apply)\n"),
            (false, 0, _) => "up to date; nothing to apply\n".to_string(),
            (false, n, _) => format!("applied {n} migration(s)\n"),
        });
        text
    };
    crate::print_stdout(&text)
}

/// Report a database failure with its causes, never the URL; exit 3.
fn unreachable(error: &voxguard::store::StoreError) -> Exit {
    eprintln!(
        "voxguard: error: the PostgreSQL database could not be migrated: {}",
        error.describe()
    );
    Exit::Internal
}
