//! `voxguard exec`: play one realistic call against a running agent — render the SWML once,
//! run the `--first` steps (e.g. a PIN verification) and then the function, each with the
//! webhook URL and token that render gave it — and show every answer: HTTP status, refusal
//! reason, the text for the AI and each action decoded.
//!
//! It owns the command's arguments (including turning `--arg k=v` into a value of the
//! declared parameter's type) and its output. The wire is [`crate::agent`]'s; it must not
//! send anything but the steps the user named.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::agent::{
    mask, swaig::Refusal, CallArgs, CallState, Decoded, Function, Reply, Target, TargetArgs,
};
use crate::cmd;
use crate::Exit;

/// `exec --help`: examples.
pub const EXEC_AFTER_HELP: &str = "\
Examples:
  voxguard exec http://127.0.0.1:3000/ get_balance --from +15551234567 \\
      --first 'verify_pin:{\"pin\":\"4321\"}'
  voxguard exec http://127.0.0.1:3000/ transfer_to_department --arg department=sales
  voxguard exec https://user:pass@agent.example.com/ check_order \\
      --args '{\"order_number\":\"ORD-12345\"}' --global-data '{\"tier\":\"gold\"}' --json

--arg k=v gives one argument; its value takes the declared parameter's type (a string stays a
string, \"12\" becomes 12 for a number). --args gives them all as one JSON object.

Exit codes: 0 the function answered 2xx; 1 a step was refused (status or reason shown);
2 bad arguments or no such function; 4 the agent is unreachable, refused the credentials or
did not answer SWML.";

/// `voxguard exec …`
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The function to call.
    pub function: String,
    /// One argument, NAME=VALUE (repeatable).
    #[arg(long = "arg", value_name = "NAME=VALUE")]
    pub args: Vec<String>,
    /// All arguments as one JSON object.
    #[arg(long = "args", value_name = "JSON", conflicts_with = "args")]
    pub args_json: Option<String>,
    #[command(flatten)]
    call: CallArgs,
    /// JSON object merged over the rendered global_data.
    #[arg(long, value_name = "JSON")]
    pub global_data: Option<String>,
    /// A step to run first in the same call, FUNCTION:JSON (repeatable, in order).
    #[arg(long = "first", value_name = "FUNCTION:JSON")]
    pub first: Vec<String>,
    /// Show credentials and tokens in the output (masked by default).
    #[arg(long)]
    show_secrets: bool,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

/// One step's outcome, as printed.
#[derive(Debug, Serialize)]
struct Step {
    function: String,
    arguments: Value,
    status: u16,
    refused: bool,
    refusal: Option<Refusal>,
    response: Option<String>,
    actions: Vec<Decoded>,
    body: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// Parse `text` as a JSON object, naming `what` in the error.
pub fn json_object(text: &str, what: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(format!(
            "{what} must be a JSON object, like {{\"name\": \"value\"}}"
        )),
        Err(err) => Err(format!("{what} is not valid JSON: {err}")),
    }
}

/// `NAME=VALUE` pairs as an arguments object, each value of its declared type.
pub fn pairs_to_args(function: &Function, pairs: &[String]) -> Result<Value, String> {
    let properties = function.properties();
    let mut args = Map::new();
    for pair in pairs {
        let (name, raw) = pair
            .split_once('=')
            .ok_or_else(|| format!("--arg {pair:?} is not NAME=VALUE"))?;
        let declared = properties
            .iter()
            .find(|(prop, _)| prop == name)
            .and_then(|(_, schema)| schema.get("type").and_then(Value::as_str));
        let value = match declared {
            Some("string") => Value::String(raw.to_string()),
            Some("number") | Some("integer") | Some("boolean") | Some("array") | Some("object") => {
                serde_json::from_str(raw).map_err(|_| {
                    format!(
                        "--arg {name}: {raw:?} is not a {} (the declared type)",
                        declared.unwrap_or_default()
                    )
                })?
            }
            // Undeclared or untyped: JSON when it parses, else a string.
            _ => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string())),
        };
        args.insert(name.to_string(), value);
    }
    Ok(Value::Object(args))
}

/// `FUNCTION:JSON` as (function, arguments).
fn parse_first(step: &str) -> Result<(String, Value), String> {
    let (name, args) = step.split_once(':').unwrap_or((step, "{}"));
    let args = if args.trim().is_empty() { "{}" } else { args };
    Ok((
        name.trim().to_string(),
        Value::Object(json_object(args, &format!("--first {name}"))?),
    ))
}

/// `voxguard exec`.
pub fn run(args: &ExecArgs) -> Exit {
    cmd::block_on(exec(args))
}

async fn exec(args: &ExecArgs) -> Exit {
    let extra = match args
        .global_data
        .as_deref()
        .map(|g| json_object(g, "--global-data"))
    {
        Some(Err(err)) => return cmd::usage(&err),
        Some(Ok(map)) => Some(map),
        None => None,
    };
    let mut steps = Vec::new();
    for step in &args.first {
        match parse_first(step) {
            Ok(step) => steps.push(step),
            Err(err) => return cmd::usage(&err),
        }
    }
    let target = match Target::new(&args.target) {
        Ok(target) => target,
        Err(err) => return cmd::agent_error(&err),
    };
    let call = args.call.spec();
    let rendered = match target.render(&call).await {
        Ok(rendered) => rendered,
        Err(err) => return cmd::agent_error(&err),
    };
    let Some(function) = rendered.function(&args.function) else {
        let names: Vec<&str> = rendered.functions.iter().map(|f| f.name.as_str()).collect();
        return cmd::usage(&format!(
            "the agent renders no function {:?}; it has: {}",
            args.function,
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ));
    };
    let main_args = match (&args.args_json, args.args.is_empty()) {
        (Some(text), _) => match json_object(text, "--args") {
            Ok(map) => Value::Object(map),
            Err(err) => return cmd::usage(&err),
        },
        (None, _) => match pairs_to_args(function, &args.args) {
            Ok(value) => value,
            Err(err) => return cmd::usage(&err),
        },
    };
    for (name, _) in &steps {
        if rendered.function(name).is_none() {
            return cmd::usage(&format!(
                "--first {name}: the agent renders no such function"
            ));
        }
    }
    steps.push((args.function.clone(), main_args));

    let mut state = CallState::new(call, &rendered, extra.as_ref());
    let mut done: Vec<Step> = Vec::new();
    let mut refused = false;
    let color = cmd::color() && !args.json;
    if !args.json {
        let header = format!(
            "call {} from {} to {} ({})\n",
            state.call.call_id,
            state.call.from,
            state.call.to,
            target.shown()
        );
        let _ = crate::print_stdout(&header);
    }
    for (index, (name, arguments)) in steps.iter().enumerate() {
        let Some(function) = rendered.function(name) else {
            continue;
        };
        let note = (!function.active && state.toggled.get(name) != Some(&true)).then(|| {
            "rendered inactive: the platform would not offer it to the AI until a \
             toggle_functions turns it on"
                .to_string()
        });
        let reply: Reply = match target.invoke(function, arguments, &state).await {
            Ok(reply) => reply,
            Err(err) => return cmd::agent_error(&err),
        };
        state.apply(&reply);
        let step = Step {
            function: name.clone(),
            arguments: arguments.clone(),
            status: reply.status,
            refused: reply.refused(),
            refusal: reply.refusal.clone(),
            response: reply.response.clone(),
            actions: reply.actions.clone(),
            body: reply
                .text
                .clone()
                .map(Value::String)
                .unwrap_or(reply.body.clone()),
            note,
        };
        let step = if args.show_secrets {
            step
        } else {
            masked(step)
        };
        if !args.json {
            let _ = crate::print_stdout(&render_step(index + 1, &step, color));
        }
        refused = step.refused;
        done.push(step);
        if refused {
            if index + 1 < steps.len() && !args.json {
                let _ = crate::print_stdout("stopped: a step before the function was refused\n");
            }
            break;
        }
    }
    if args.json {
        let out = json!({
            "call_id": state.call.call_id,
            "from": state.call.from,
            "to": state.call.to,
            "ok": !refused,
            "steps": done,
            "global_data": if args.show_secrets { Value::Object(state.global_data.clone()) } else { mask::document(&Value::Object(state.global_data.clone())) },
        });
        if cmd::print_json(&out, true) != Exit::Ok {
            return Exit::Internal;
        }
    }
    if refused {
        Exit::Failed
    } else {
        Exit::Ok
    }
}

/// `step` with every URL's credentials and tokens masked.
fn masked(mut step: Step) -> Step {
    step.body = mask::document(&step.body);
    for action in &mut step.actions {
        action.raw = mask::document(&action.raw);
        action.detail = mask::url(&action.detail);
    }
    step
}

/// One step as text.
fn render_step(number: usize, step: &Step, color: bool) -> String {
    let mut out = format!("\nstep {number}  {} {}\n", step.function, step.arguments);
    if let Some(note) = &step.note {
        out.push_str(&format!("  note: {note}\n"));
    }
    let status = format!("HTTP {}", step.status);
    if step.refused {
        let reason = step
            .refusal
            .as_ref()
            .map(|r| format!(" refused: {}", r.reason))
            .unwrap_or_else(|| " refused".into());
        out.push_str(&format!(
            "  {}\n",
            cmd::paint(&format!("{status}{reason}"), "31", color)
        ));
        if let Some(sentence) = step.refusal.as_ref().and_then(|r| r.sentence.as_ref()) {
            out.push_str(&format!("  sentence: {}\n", crate::output::clean(sentence)));
        }
    } else {
        out.push_str(&format!("  {}\n", cmd::paint(&status, "32", color)));
        if let Some(response) = &step.response {
            out.push_str(&format!("  response: {}\n", crate::output::clean(response)));
        }
    }
    if step.response.is_none() && step.refusal.is_none() {
        out.push_str(&format!(
            "  body: {}\n",
            crate::output::clean(&step.body.to_string())
        ));
    }
    if !step.actions.is_empty() {
        out.push_str("  actions:\n");
        for action in &step.actions {
            out.push_str(&format!("    {}\n", crate::output::clean(&action.detail)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Rendered;

    #[test]
    fn arguments_take_their_declared_types() {
        let rendered = Rendered::read(json!({"sections": {"main": [{"ai": {"SWAIG": {"functions": [{
            "function": "f", "description": "F", "web_hook_url": "http://h/",
            "parameters": {"type": "object", "properties": {
                "pin": {"type": "string"}, "amount": {"type": "number"}, "ok": {"type": "boolean"}
            }}
        }]}}}]}}))
        .unwrap();
        let f = rendered.function("f").unwrap();
        let args = pairs_to_args(
            f,
            &[
                "pin=0042".into(),
                "amount=12.5".into(),
                "ok=true".into(),
                "extra=[1]".into(),
                "x=y".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            args,
            json!({"pin": "0042", "amount": 12.5, "ok": true, "extra": [1], "x": "y"})
        );
        assert!(pairs_to_args(f, &["amount=lots".into()])
            .unwrap_err()
            .contains("number"));
        assert!(pairs_to_args(f, &["novalue".into()]).is_err());
    }

    #[test]
    fn first_steps_parse() {
        assert_eq!(
            parse_first("verify_pin:{\"pin\":\"4321\"}").unwrap(),
            ("verify_pin".into(), json!({"pin": "4321"}))
        );
        assert_eq!(
            parse_first("get_balance").unwrap(),
            ("get_balance".into(), json!({}))
        );
        assert!(parse_first("f:[1]").is_err());
    }
}
