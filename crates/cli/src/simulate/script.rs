//! The YAML script format of `voxguard simulate`: one scripted call (or a `calls:` list of
//! them) per file — who calls, under which call id, with which global data, and the steps:
//! a function, its arguments, and what the answer must be.
//!
//! It owns reading a script file (size cap, YAML through `serde_norway`, unknown keys refused
//! so a typo is an error that names the file, the key and the line) and the checks that make
//! a script meaningful (a name, a caller, at least one step). It must not talk to an agent or
//! judge an answer ([`super::check`] compares, [`super`] plays the calls).

use std::path::Path;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// The largest script file read.
pub const MAX_SCRIPT_BYTES: u64 = 1024 * 1024;

/// One scripted call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallScript {
    /// What the call shows (in the output, the JSON and the JUnit report).
    pub name: String,
    /// The caller's number (`caller_id_num`, and `call.from` of the SWML fetch).
    pub caller: String,
    /// The number called (default `+15555550199`).
    #[serde(default)]
    pub to: Option<String>,
    /// The call id (default: a fresh random one per run). Function tokens are bound to it.
    #[serde(default)]
    pub call_id: Option<String>,
    /// Global data merged over the rendered `global_data` for this call.
    #[serde(default)]
    pub global_data: Option<Map<String, Value>>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// A file holding several calls.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallList {
    calls: Vec<CallScript>,
}

/// One function call of a scripted call, and what its answer must be.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The function to call (as the SWML names it).
    pub call: String,
    /// A label for the step (default: the function's name).
    #[serde(default)]
    pub name: Option<String>,
    /// The arguments (`argument.parsed[0]`), default `{}`.
    #[serde(default)]
    pub args: Map<String, Value>,
    /// What the answer must be.
    #[serde(default)]
    pub expect: Expect,
}

/// The expectations of a step. Every one given must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Text the answer's response must contain (each of them; case-sensitive).
    #[serde(default, deserialize_with = "one_or_many")]
    pub response_contains: Vec<String>,
    /// Text the answer's response must not contain (none of them).
    #[serde(default, deserialize_with = "one_or_many")]
    pub response_not_contains: Vec<String>,
    /// Whether (or with which reason) the call must be refused.
    #[serde(default)]
    pub refused: Option<Refused>,
    /// The HTTP status.
    #[serde(default)]
    pub status: Option<u16>,
    /// Action kinds the answer must carry (each of them).
    #[serde(default, deserialize_with = "one_or_many")]
    pub action: Vec<String>,
}

/// `refused:` — a reason, or `true`/`false`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Refused {
    /// `true`: refused for any reason; `false`: must succeed.
    Flag(bool),
    /// Refused with this stable reason (`error` of the answer).
    Reason(String),
}

impl Expect {
    /// Whether the step must succeed: `refused: false`, or no `refused` and either no
    /// `status` or a 2xx one (our runtime answers policy refusals with 200 and an `error`,
    /// so `status: 200` alone must not let one pass).
    pub fn must_succeed(&self) -> bool {
        match &self.refused {
            Some(Refused::Flag(false)) => true,
            Some(_) => false,
            None => self
                .status
                .is_none_or(|status| (200..300).contains(&status)),
        }
    }
}

/// A string or a list of strings, as a list.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match OneOrMany::deserialize(deserializer) {
        Ok(OneOrMany::One(one)) => Ok(vec![one]),
        Ok(OneOrMany::Many(many)) => Ok(many),
        Err(_) => Err(serde::de::Error::custom(
            "expected a string or a list of strings (quote numbers: \"$150.00\", \"4321\")",
        )),
    }
}

/// The calls of the script file at `path`.
///
/// # Errors
///
/// A sentence naming the file and the problem: unreadable, too large, not YAML, an unknown
/// or missing key (with its line), or a script without a name, a caller or steps.
pub fn load(path: &Path) -> Result<Vec<CallScript>, String> {
    use std::io::Read as _;

    let shown = path.display();
    let cannot = |err: std::io::Error| format!("cannot read {shown}: {err}");
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if meta.is_dir() {
        return Err(format!(
            "{shown} is a directory; give the script files (e.g. {shown}/*.yaml)"
        ));
    }
    let too_large = || {
        format!(
            "{shown} is larger than {} KiB; is it a script?",
            MAX_SCRIPT_BYTES / 1024
        )
    };
    if meta.len() > MAX_SCRIPT_BYTES {
        return Err(too_large());
    }
    // A FIFO or a device reports no size: read at most one byte more than the cap.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_SCRIPT_BYTES + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_SCRIPT_BYTES {
        return Err(too_large());
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("cannot read {shown}: it is not UTF-8 text"))?;
    parse(&text).map_err(|err| format!("{shown}: {err}"))
}

/// The calls of a script's text.
///
/// # Errors
///
/// What is wrong with it (without the file name).
pub fn parse(text: &str) -> Result<Vec<CallScript>, String> {
    let hint = "(see `voxguard simulate --help` for the format)";
    let value: serde_norway::Value =
        serde_norway::from_str(text).map_err(|err| format!("not valid YAML: {err}"))?;
    let Some(top) = value.as_mapping() else {
        return Err(format!(
            "a script is a mapping with name, caller and steps, or a list under calls: {hint}"
        ));
    };
    let calls = if top.contains_key("calls") {
        serde_norway::from_str::<CallList>(text)
            .map_err(|err| format!("{err} {hint}"))?
            .calls
    } else {
        vec![serde_norway::from_str::<CallScript>(text).map_err(|err| format!("{err} {hint}"))?]
    };
    if calls.is_empty() {
        return Err("calls: is empty; give at least one call".into());
    }
    for (index, call) in calls.iter().enumerate() {
        validate(call).map_err(|err| {
            if call.name.trim().is_empty() {
                format!("call {}: {err}", index + 1)
            } else {
                format!("call {:?}: {err}", call.name)
            }
        })?;
    }
    Ok(calls)
}

/// What makes a parsed call unusable.
fn validate(call: &CallScript) -> Result<(), String> {
    if call.name.trim().is_empty() {
        return Err("name: is empty".into());
    }
    if call.caller.trim().is_empty() {
        return Err("caller: is empty".into());
    }
    if call
        .call_id
        .as_deref()
        .is_some_and(|id| id.trim().is_empty())
    {
        return Err("call_id: is empty (leave it out for a fresh id per run)".into());
    }
    if call.steps.is_empty() {
        return Err("steps: is empty; give at least one step".into());
    }
    for (index, step) in call.steps.iter().enumerate() {
        let at = format!("step {}", index + 1);
        if step.call.trim().is_empty() {
            return Err(format!("{at}: call: names no function"));
        }
        let expect = &step.expect;
        if let Some(status) = expect.status {
            if !(100..=599).contains(&status) {
                return Err(format!("{at}: status: {status} is not an HTTP status"));
            }
        }
        if matches!(&expect.refused, Some(Refused::Reason(reason)) if reason.trim().is_empty()) {
            return Err(format!(
                "{at}: refused: is empty; give a reason, true (any reason) or false"
            ));
        }
        let empty = |list: &[String]| list.iter().any(|item| item.is_empty());
        if empty(&expect.response_contains) || empty(&expect.response_not_contains) {
            return Err(format!(
                "{at}: an empty response text expectation matches anything"
            ));
        }
        if empty(&expect.action) {
            return Err(format!("{at}: action: is empty; name an action kind"));
        }
        if matches!(expect.refused, Some(Refused::Flag(false)))
            && expect.status.is_some_and(|s| !(200..300).contains(&s))
        {
            return Err(format!(
                "{at}: refused: false and status: {} contradict each other",
                expect.status.unwrap_or_default()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_call_and_a_list_both_parse() {
        let one = parse(
            "name: balance\ncaller: \"+15551234567\"\nsteps:\n  - call: verify_pin\n    args: {pin: \"4321\"}\n    expect: {response_contains: verified, action: [toggle_functions, set_global_data]}\n  - call: get_balance\n",
        )
        .unwrap();
        assert_eq!(one.len(), 1);
        let step = &one[0].steps[0];
        assert_eq!(step.args["pin"], "4321");
        assert_eq!(step.expect.response_contains, ["verified"]);
        assert_eq!(step.expect.action, ["toggle_functions", "set_global_data"]);
        assert!(one[0].steps[1].expect.must_succeed());

        let many = parse(
            "calls:\n  - name: a\n    caller: \"+1\"\n    steps: [{call: f, expect: {refused: verification_required}}]\n  - name: b\n    caller: \"+2\"\n    call_id: fixed\n    steps: [{call: g, expect: {refused: true, status: 403}}]\n",
        )
        .unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(
            many[0].steps[0].expect.refused,
            Some(Refused::Reason("verification_required".into()))
        );
        assert_eq!(many[1].steps[0].expect.refused, Some(Refused::Flag(true)));
        assert!(!many[1].steps[0].expect.must_succeed());
        assert_eq!(many[1].call_id.as_deref(), Some("fixed"));
    }

    #[test]
    fn a_status_alone_does_not_demand_success() {
        let calls =
            parse("name: n\ncaller: \"+1\"\nsteps: [{call: f, expect: {status: 403}}]\n").unwrap();
        assert!(!calls[0].steps[0].expect.must_succeed());
        // A 2xx status alone still demands no refusal (policy refusals are 200).
        let calls =
            parse("name: n\ncaller: \"+1\"\nsteps: [{call: f, expect: {status: 200}}]\n").unwrap();
        assert!(calls[0].steps[0].expect.must_succeed());
    }

    #[cfg(unix)]
    #[test]
    fn a_device_without_a_size_is_read_up_to_the_cap_only() {
        let err = load(Path::new("/dev/zero")).unwrap_err();
        assert!(err.contains("larger than"), "{err}");
    }

    #[test]
    fn mistakes_are_named() {
        let typo = parse(
            "name: n\ncaller: \"+1\"\nsteps:\n  - call: f\n    expect: {respons_contains: x}\n",
        )
        .unwrap_err();
        assert!(typo.contains("respons_contains"), "{typo}");
        assert!(typo.contains("line"), "{typo}");
        // A plain scalar keeps its text when a string is wanted: the `+` stays.
        let unquoted = parse("name: n\ncaller: +15551234567\nsteps: [{call: f}]\n").unwrap();
        assert_eq!(unquoted[0].caller, "+15551234567");
        let wrong_type = parse("name: n\ncaller: [1]\nsteps: [{call: f}]\n").unwrap_err();
        assert!(wrong_type.contains("caller"), "{wrong_type}");
        assert!(parse("name: n\ncaller: \"+1\"\nsteps: []\n")
            .unwrap_err()
            .contains("steps"));
        assert!(parse("- just\n- a list\n").unwrap_err().contains("mapping"));
        assert!(parse("name: [unclosed\n").unwrap_err().contains("YAML"));
        assert!(parse("calls: []\n").unwrap_err().contains("empty"));
        assert!(parse(
            "name: n\ncaller: \"+1\"\nsteps: [{call: f, expect: {refused: false, status: 403}}]\n"
        )
        .unwrap_err()
        .contains("contradict"));
        assert!(
            parse("name: n\ncaller: \"+1\"\nsteps: [{call: f, expect: {status: 42}}]\n")
                .unwrap_err()
                .contains("status")
        );
    }
}
