//! `voxguard swml` and `voxguard tools`: what an agent renders for a call, pretty-printed,
//! and its functions as a table.
//!
//! It owns these two commands' arguments and output. Credentials and tokens are masked
//! unless `--show-secrets`. It must not judge the document (`probe` and `check` do).

use serde_json::{json, Value};

use crate::agent::mask::{self, Secrets};
use crate::agent::{CallArgs, Rendered, Target, TargetArgs};
use crate::cmd;
use crate::output::table;
use crate::Exit;

/// `swml --help`: examples.
pub const SWML_AFTER_HELP: &str = "\
Examples:
  voxguard swml http://127.0.0.1:3000/ --user bank-operator      (password from SWML_BASIC_AUTH_PASSWORD)
  voxguard swml https://user:pass@agent.example.com/ --from +15551234567 --call-id test-1
  voxguard swml http://127.0.0.1:3000/ --get --json | jq '.sections.main'

Exit codes: 0 printed; 2 bad arguments; 4 the agent is unreachable, refused the credentials
or did not answer SWML.";

/// `tools --help`: examples.
pub const TOOLS_AFTER_HELP: &str = "\
Examples:
  voxguard tools http://127.0.0.1:3000/ --user bank-operator
  voxguard tools https://user:pass@agent.example.com/ --json

Columns: FUNCTION, ACTIVE (rendered active), TOKEN (a per-call token is in its webhook URL),
PARAMETERS (name:type, * = required), DESCRIPTION.

Exit codes: 0 listed; 2 bad arguments; 4 the agent is unreachable, refused the credentials or
did not answer SWML.";

/// `voxguard swml …`
#[derive(Debug, clap::Args)]
pub struct SwmlArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    call: CallArgs,
    /// Show credentials and tokens as rendered (masked by default).
    #[arg(long)]
    show_secrets: bool,
    /// One line of compact JSON instead of indented JSON.
    #[arg(long)]
    json: bool,
}

/// `voxguard tools …`
#[derive(Debug, clap::Args)]
pub struct ToolsArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    call: CallArgs,
    /// JSON output: one object per function.
    #[arg(long)]
    json: bool,
}

/// Fetch the SWML of `target` for `call`, with every secret it holds (and the user's
/// password), or the exit of the failure.
async fn fetch(target: &TargetArgs, call: &CallArgs) -> Result<(Rendered, Secrets), Exit> {
    let target = Target::new(target).map_err(|err| cmd::agent_error(&err))?;
    let rendered = target
        .render(&call.spec())
        .await
        .map_err(|err| cmd::agent_error(&err))?;
    let mut secrets = target.secrets();
    secrets.add_document(&rendered.document);
    Ok((rendered, secrets))
}

/// `voxguard swml`.
pub fn swml(args: &SwmlArgs) -> Exit {
    cmd::block_on(async {
        let (rendered, secrets) = match fetch(&args.target, &args.call).await {
            Ok(fetched) => fetched,
            Err(exit) => return exit,
        };
        let document = if args.show_secrets {
            rendered.document
        } else {
            mask::document(&rendered.document, &secrets)
        };
        cmd::print_json(&document, !args.json)
    })
}

/// `voxguard tools`.
pub fn tools(args: &ToolsArgs) -> Exit {
    cmd::block_on(async {
        let (rendered, secrets) = match fetch(&args.target, &args.call).await {
            Ok(fetched) => fetched,
            Err(exit) => return exit,
        };
        if args.json {
            let functions: Vec<Value> = rendered
                .functions
                .iter()
                .map(|function| {
                    json!({
                        "function": function.name,
                        "description": function.description,
                        "parameters": function.parameters,
                        "active": function.active,
                        "token": function.token.is_some(),
                        "web_hook_url": function.webhook.as_deref().map(mask::url),
                    })
                })
                .collect();
            let out = mask::document(&json!({ "functions": functions }), &secrets);
            return cmd::print_json(&out, false);
        }
        if !rendered.has_ai {
            return crate::print_stdout("The document has no ai verb: no functions.\n");
        }
        let rows: Vec<Vec<String>> = rendered
            .functions
            .iter()
            .map(|function| {
                let required = function.required();
                let params: Vec<String> = function
                    .properties()
                    .iter()
                    .map(|(name, schema)| {
                        let kind = schema.get("type").and_then(Value::as_str).unwrap_or("any");
                        let star = if required.contains(name) { "*" } else { "" };
                        format!("{name}{star}:{kind}")
                    })
                    .collect();
                vec![
                    function.name.clone(),
                    yes_no(function.active),
                    if function.webhook.is_none() {
                        "n/a".into()
                    } else {
                        yes_no(function.token.is_some())
                    },
                    if params.is_empty() {
                        "-".into()
                    } else {
                        params.join(", ")
                    },
                    secrets.mask(&function.description),
                ]
            })
            .collect();
        crate::print_stdout(&table(
            &["FUNCTION", "ACTIVE", "TOKEN", "PARAMETERS", "DESCRIPTION"],
            &rows,
        ))
    })
}

fn yes_no(on: bool) -> String {
    if on { "yes" } else { "no" }.to_string()
}
