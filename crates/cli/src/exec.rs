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

use crate::agent::mask::{self, Secrets};
use crate::agent::swaig::Refusal;
use crate::agent::{Auth, CallArgs, CallState, Decoded, Function, Reply, Target, TargetArgs};
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
    /// Where it was sent (masked).
    url: String,
    arguments: Value,
    status: u16,
    refused: bool,
    refusal: Option<Refusal>,
    response: Option<String>,
    actions: Vec<Decoded>,
    body: Value,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
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

/// `NAME=VALUE` pairs as an arguments object, each value of its declared type: a declared
/// parameter that may be a string (typed `string`, untyped, or with string `enum` values) keeps
/// the text as it is; one of another type gets the text parsed as JSON and checked against
/// that type (an `integer` must be whole); an undeclared one is JSON when it parses, else text.
pub fn pairs_to_args(function: &Function, pairs: &[String]) -> Result<Value, String> {
    let properties = function.properties();
    let mut args = Map::new();
    for pair in pairs {
        let (name, raw) = pair
            .split_once('=')
            .ok_or_else(|| format!("--arg {pair:?} is not NAME=VALUE"))?;
        let value = match properties.iter().find(|(prop, _)| prop == name) {
            None => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string())),
            Some((_, schema)) => typed(name, raw, schema)?,
        };
        args.insert(name.to_string(), value);
    }
    Ok(Value::Object(args))
}

/// `raw` as a value of the type `schema` declares.
fn typed(name: &str, raw: &str, schema: &Value) -> Result<Value, String> {
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let string_enum = schema
        .get("enum")
        .and_then(Value::as_array)
        .is_some_and(|values| values.iter().any(Value::is_string));
    let non_string: Vec<&str> = types.iter().copied().filter(|t| *t != "string").collect();
    let parsed = serde_json::from_str::<Value>(raw).ok();
    if let Some(value) = parsed.filter(|value| non_string.iter().any(|t| is_type(value, t))) {
        return Ok(value);
    }
    if types.is_empty() || types.contains(&"string") || string_enum {
        return Ok(Value::String(raw.to_string()));
    }
    Err(format!(
        "--arg {name}: {raw:?} is not {} (the declared type)",
        types.join(" or ")
    ))
}

/// Whether `value` is of the JSON-schema type `kind`.
fn is_type(value: &Value, kind: &str) -> bool {
    match kind {
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        _ => false,
    }
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
    let mut secrets = target.secrets();
    secrets.add_document(&rendered.document);
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
        let mut notes = Vec::new();
        if !state.active(function) {
            notes.push(
                "inactive: the platform would not offer it to the AI now (rendered inactive, or \
                 toggled off), unless a toggle_functions turns it on"
                    .to_string(),
            );
        }
        let url = match function.webhook.as_deref().map(|w| target.webhook(w)) {
            Some(Ok((url, auth))) => {
                if matches!(auth, Auth::None) && target.credentials().is_some() {
                    notes.push(format!(
                        "your credentials were not sent: the SWML sends this function to another \
                         origin ({}) than the URL you gave; use --same-origin to call it on your \
                         URL's host, or give credentials in the rendered URL",
                        url.origin().ascii_serialization()
                    ));
                }
                mask::url(url.as_str())
            }
            _ => String::new(),
        };
        let reply: Reply = match target.invoke(function, arguments, &state).await {
            Ok(reply) => reply,
            Err(err) => return cmd::agent_error(&err),
        };
        state.apply(&reply);
        if !reply.refused() {
            let swaig_answer = reply.response.is_some() || reply.body.get("action").is_some();
            if !swaig_answer {
                notes.push(
                    "not a SWAIG answer: the platform expects a JSON object with a \"response\" \
                     text or an \"action\" list"
                        .into(),
                );
            }
            if reply.actions.iter().any(|a| a.kind == "hangup") {
                notes.push("the platform would hang up the call here".into());
            } else if reply.actions.iter().any(|a| a.kind == "connect") {
                notes.push("the platform would connect the call elsewhere here".into());
            }
        }
        let step = Step {
            function: name.clone(),
            url,
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
            notes,
        };
        let step = if args.show_secrets {
            step
        } else {
            masked(step, &secrets)
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
        let global_data = Value::Object(state.global_data.clone());
        let out = json!({
            "call_id": state.call.call_id,
            "from": state.call.from,
            "to": state.call.to,
            "ok": !refused,
            "steps": done,
            "global_data": if args.show_secrets { global_data } else { mask::document(&global_data, &secrets) },
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

/// `step` with every secret masked: known ones (the user's password, the rendered tokens and
/// credentials) wherever the agent echoes them, and credential-shaped text and keys.
fn masked(mut step: Step, secrets: &Secrets) -> Step {
    step.body = mask::document(&step.body, secrets);
    step.response = step.response.map(|text| secrets.mask(&text));
    if let Some(refusal) = &mut step.refusal {
        refusal.reason = secrets.mask(&refusal.reason);
        refusal.sentence = refusal.sentence.as_deref().map(|text| secrets.mask(text));
    }
    for action in &mut step.actions {
        action.raw = mask::document(&action.raw, secrets);
        action.detail = secrets.mask(&action.detail);
    }
    step
}

/// One step as text.
fn render_step(number: usize, step: &Step, color: bool) -> String {
    let clean = crate::output::clean;
    let mut out = format!(
        "\nstep {number}  {} {}\n",
        clean(&step.function),
        clean(&step.arguments.to_string())
    );
    if !step.url.is_empty() {
        out.push_str(&format!("  POST {}\n", clean(&step.url)));
    }
    for note in &step.notes {
        out.push_str(&format!("  note: {}\n", clean(note)));
    }
    let status = format!("HTTP {}", step.status);
    if step.refused {
        let reason = step
            .refusal
            .as_ref()
            .map(|r| format!(" refused: {}", clean(&r.reason)))
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
        // Types are checked, not only parsed.
        assert!(pairs_to_args(f, &["ok=1".into()]).is_err());
        assert!(pairs_to_args(f, &["amount=\"12\"".into()]).is_err());
        let loose = Rendered::read(
            json!({"sections": {"main": [{"ai": {"SWAIG": {"functions": [{
                "function": "g", "description": "G", "web_hook_url": "http://h/",
                "parameters": {"type": "object", "properties": {
                    "n": {"type": "integer"}, "any": {"description": "untyped"},
                    "opt": {"type": ["string", "null"]}, "dept": {"enum": ["1", "2"]}
                }}
            }]}}}]}}),
        )
        .unwrap();
        let g = loose.function("g").unwrap();
        assert!(pairs_to_args(g, &["n=12.5".into()]).is_err());
        assert_eq!(
            pairs_to_args(
                g,
                &[
                    "n=12".into(),
                    "any=4321".into(),
                    "opt=null".into(),
                    "dept=1".into()
                ]
            )
            .unwrap(),
            json!({"n": 12, "any": "4321", "opt": null, "dept": "1"})
        );
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
