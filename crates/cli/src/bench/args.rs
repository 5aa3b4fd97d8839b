//! The `voxguard bench` command line: its arguments, their parsers, and the usage error.
//!
//! This module owns what the user types and how it is checked before anything is sent
//! (durations, the `--calls` count, `--call NAME:JSON` specs), and [`Usage`], the setup
//! problem every other part of the bench reports with (exit code 2). It must not touch the
//! network or the target.

use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

/// `voxguard bench` arguments.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The agent's SWML route, e.g. http://127.0.0.1:3000/ or http://user:pass@127.0.0.1:3000/fast.
    pub url: String,
    /// Basic-auth user (default: from the URL, or SWML_BASIC_AUTH_USER).
    #[arg(long, env = "SWML_BASIC_AUTH_USER", hide_env_values = true)]
    pub user: Option<String>,
    /// Basic-auth password (default: from the URL, or SWML_BASIC_AUTH_PASSWORD).
    #[arg(long, env = "SWML_BASIC_AUTH_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Simulated calls in flight at once (one connection each).
    #[arg(short, long, default_value_t = 32)]
    pub concurrency: usize,
    /// How long to measure, after the warm-up: 10s, 500ms, 2m.
    #[arg(short, long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// How long to run before measuring (connections, caches, verifications).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// SWAIG calls per simulated call after the SWML fetch (and the verification): a number,
    /// 0 to measure SWML rendering alone, or `unlimited` to keep one call per worker for the
    /// whole run (the tool fast path).
    #[arg(long, default_value = "5", value_parser = parse_calls)]
    pub calls: Calls,
    /// A function in the mix, as NAME or NAME:JSON-ARGUMENTS; repeat it to weight it.
    /// Default: every rendered function that has no required argument (bar the verifier).
    #[arg(long = "call", value_name = "NAME[:JSON]", value_parser = parse_call)]
    pub mix: Vec<CallSpec>,
    /// The verification call made once per simulated call when the agent renders it.
    #[arg(long, value_name = "NAME:JSON", default_value = r#"verify_pin:{"pin":"4321"}"#, value_parser = parse_call)]
    pub verify: CallSpec,
    /// Do not verify the caller, even when the agent offers the verification function.
    #[arg(long)]
    pub no_verify: bool,
    /// The first caller's number (`call.from` and `caller_id_num`).
    #[arg(long, default_value = "+15551234567")]
    pub caller: String,
    /// Spread the simulated calls over this many consecutive numbers from --caller, in turn
    /// (default: one per worker, as real traffic has a different caller on each call). Use 1 to load a single customer: the attempt counter is per customer, so more
    /// parallel verifications of one customer than its attempt limit start a lockout.
    #[arg(long)]
    pub callers: Option<u64>,
    /// Sample the resident memory of this process (the agent) during the run.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Also run the same flows against a bare axum server (parses the same JSON, answers a
    /// fixed body) in this run, and report voxguard ÷ bare.
    #[arg(long)]
    pub baseline: bool,
    /// The latency the handler is known to wait (e.g. 50 for a 50 ms backend): the report
    /// adds the Little's-law limit, concurrency ÷ latency, and the share of it reached.
    #[arg(long, value_name = "MS")]
    pub little_ms: Option<f64>,
    /// Send at most this many requests per second in all (each worker paced to its share),
    /// instead of back to back: latency at a load the target can carry, not at saturation.
    #[arg(long, value_name = "REQ_PER_SEC", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Per-request timeout.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Load-generator worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How many SWAIG calls each simulated call makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calls {
    /// This many, then the next call starts.
    Count(u32),
    /// One call per worker for the whole run.
    Unlimited,
}

/// One function call of the mix: the name and the arguments sent (`{}` when not given).
#[derive(Debug, Clone, PartialEq)]
pub struct CallSpec {
    /// Function name.
    pub function: String,
    /// Arguments, an object.
    pub args: Value,
}

/// Parse `10s`, `500ms`, `2m` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        other => return Err(format!("unknown unit {other:?}: use ms, s or m")),
    };
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("{text:?} is out of range (0 to 24 hours)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parse `--calls`: a number, or `unlimited`.
pub(super) fn parse_calls(text: &str) -> Result<Calls, String> {
    match text.trim() {
        "unlimited" => Ok(Calls::Unlimited),
        n => n
            .parse()
            .map(Calls::Count)
            .map_err(|_| format!("{text:?} is neither a number of calls nor `unlimited`")),
    }
}

/// Parse `--call` and `--verify`: `NAME` or `NAME:JSON-OBJECT`.
pub(super) fn parse_call(text: &str) -> Result<CallSpec, String> {
    let (function, args) = match text.split_once(':') {
        Some((name, json)) => {
            let args: Value = serde_json::from_str(json)
                .map_err(|e| format!("the arguments of {name:?} are not JSON: {e}"))?;
            if !args.is_object() {
                return Err(format!("the arguments of {name:?} must be a JSON object"));
            }
            (name, args)
        }
        None => (text, json!({})),
    };
    let function = function.trim();
    if function.is_empty() {
        return Err("a function name is required".into());
    }
    Ok(CallSpec {
        function: function.to_string(),
        args,
    })
}

/// A usage or setup problem: printed, exit code 2.
#[derive(Debug)]
pub(super) struct Usage(pub(super) String);

impl<E: std::fmt::Display> From<E> for Usage {
    fn from(e: E) -> Self {
        Usage(e.to_string())
    }
}

/// A request rate: a positive number of requests per second, at most a million.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a rate: requests per second, above 0 and at most 1000000"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn rates_are_positive_and_bounded() {
        assert_eq!(parse_rate("2000"), Ok(2000.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for bad in ["0", "-1", "NaN", "inf", "2e6", "fast"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn calls_and_mix_parse() {
        assert_eq!(parse_calls("unlimited"), Ok(Calls::Unlimited));
        assert_eq!(parse_calls("0"), Ok(Calls::Count(0)));
        assert!(parse_calls("many").is_err());
        let spec = parse_call(r#"check_order:{"order_number":"ORD-12345"}"#).expect("spec");
        assert_eq!(spec.function, "check_order");
        assert_eq!(spec.args["order_number"], "ORD-12345");
        assert_eq!(parse_call("get_balance").expect("spec").args, json!({}));
        assert!(parse_call("x:[1]").is_err());
        assert!(parse_call("x:{").is_err());
        assert!(parse_call(":{}").is_err());
    }
}
