//! `voxguard simulate`: scripted calls for an agent author's CI. Each YAML script gives a
//! caller and steps — a function, its arguments, what the answer must be — and each call is
//! played over real HTTP against any SWML/SWAIG agent the way the platform plays it (one SWML
//! render per call, its webhook URLs and tokens, global data and toggles evolving with the
//! answers). Exit 1 when an expectation fails, with an expected/got diff.
//!
//! This module owns the command's arguments, running the calls (one after another, or
//! `--parallel N` at once with the output still in script order), the progress bar, and the
//! exit code. The script format is [`script`]'s, the comparison [`check`]'s, playing a call
//! [`play`]'s, the results [`outcome`]'s, their text and JSON [`report`]'s, the JUnit XML
//! [`junit`]'s. It must not send anything but the scripted steps and their SWML renders, and
//! it never prints a secret unless `--show-secrets`.

mod check;
mod junit;
mod outcome;
mod play;
mod report;
mod script;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::agent::{Target, TargetArgs};
use crate::cmd;
use crate::Exit;
use outcome::{CallOutcome, Totals};
use play::Plan;

/// `simulate --help`: the script format, examples, output and exit codes.
pub const SIMULATE_AFTER_HELP: &str = "\
Script (YAML; one call per file, or several under `calls:`):
  name: verified caller checks the balance
  caller: \"+15551234567\"            # also: to, call_id, global_data
  steps:
    - call: verify_pin
      args: {pin: \"4321\"}                # quote strings that look like numbers
      expect: {response_contains: verified, action: toggle_functions}
    - call: get_balance
      expect: {response_contains: \"$150.00\"}
    - call: transfer_funds
      args: {amount: 10, to_account: \"1234567890\"}
      expect: {refused: confirmation_required}

expect (every one given must hold):
  response_contains: TEXT | [TEXT, ...]      the response (or refusal sentence) contains each
  response_not_contains: TEXT | [TEXT, ...]  ... and none of these
  refused: REASON | true | false             refused with this reason / any / not refused
  status: CODE                               the HTTP status
  action: KIND | [KIND, ...]                 connect, pay, hangup, toggle_functions,
                                             set_global_data, record_call, say, ...
  A step without refused: (and without a non-2xx status:) must succeed: a 2xx JSON answer
  with a response or an action, and no error. An action valued false does not count.
  A call stops at its first failed step; the later steps are reported as skipped.

Examples:
  voxguard simulate http://127.0.0.1:3000/ examples/calls/bank.yaml --user bank-operator
  voxguard simulate https://user:pass@agent.example.com/ calls/*.yaml --parallel 4 \\
      --junit simulate.xml
  voxguard simulate http://127.0.0.1:3000/ shop.yaml --json | jq '.calls[] | select(.ok|not)'

Exit codes: 0 every expectation held; 1 an expectation failed (the diff is printed);
2 bad arguments or a script that cannot be read or is invalid (the file and key are named),
or --junit FILE cannot be written; 4 the agent is unreachable, refused the credentials or did
not answer SWML.";

/// `voxguard simulate …`
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The script files (YAML), played in the order given.
    #[arg(required = true, value_name = "SCRIPT.yaml")]
    pub scripts: Vec<PathBuf>,
    /// Also write a JUnit XML report here (one testsuite per call, one testcase per step).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// How many calls run at once (1 to 64); the output stays in script order.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Print every step, not only the failed ones.
    #[arg(long, short)]
    pub verbose: bool,
    /// Show credentials and tokens in the output (masked by default).
    #[arg(long)]
    show_secrets: bool,
    /// JSON output: one document with every call and step.
    #[arg(long)]
    json: bool,
}

/// `voxguard simulate`.
pub fn run(args: &SimulateArgs) -> Exit {
    cmd::block_on(simulate(args))
}

async fn simulate(args: &SimulateArgs) -> Exit {
    let mut plans = Vec::new();
    for path in &args.scripts {
        match script::load(path) {
            Ok(calls) => plans.extend(calls.into_iter().map(|script| Plan {
                file: path.display().to_string(),
                script,
            })),
            Err(err) => return cmd::usage(&err),
        }
    }
    let target = match Target::new(&args.target) {
        Ok(target) => Arc::new(target),
        Err(err) => return cmd::agent_error(&err),
    };
    // Fail on an unwritable report before any call is made, not after.
    if let Some(path) = &args.junit {
        if let Err(err) = std::fs::write(path, "") {
            return cmd::usage(&format!("cannot write --junit {}: {err}", path.display()));
        }
    }
    let calls = run_all(&target, plans, args).await;
    let Some(calls) = calls else {
        eprintln!("error: a call was lost (internal error)");
        return Exit::Internal;
    };
    let totals = Totals::of(&calls);
    if let Some(path) = &args.junit {
        if let Err(err) = std::fs::write(path, junit::report(&calls, &totals)) {
            return cmd::usage(&format!("cannot write --junit {}: {err}", path.display()));
        }
    }
    if args.json {
        if cmd::print_json(&report::json(&target.shown(), &calls, &totals), true) != Exit::Ok {
            return Exit::Internal;
        }
    } else if crate::print_stdout(&report::summary_text(&totals, cmd::color())) != Exit::Ok {
        return Exit::Internal;
    }
    if let Some(err) = calls.iter().find_map(|c| c.agent_error.as_ref()) {
        return cmd::agent_error(err);
    }
    if totals.calls_failed > 0 {
        Exit::Failed
    } else {
        Exit::Ok
    }
}

/// Play every plan, `--parallel` at a time, printing each call's block in plan order as soon
/// as it and those before it are done. `None` if a call was lost (a worker panicked).
async fn run_all(
    target: &Arc<Target>,
    plans: Vec<Plan>,
    args: &SimulateArgs,
) -> Option<Vec<CallOutcome>> {
    let total = plans.len();
    let plans = Arc::new(plans);
    let next = Arc::new(AtomicUsize::new(0));
    // Once the agent cannot be used, the calls not yet started are not run.
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..usize::from(args.parallel).min(total) {
        let (target, plans, next, stop, done_tx) = (
            target.clone(),
            plans.clone(),
            next.clone(),
            stop.clone(),
            done_tx.clone(),
        );
        let show_secrets = args.show_secrets;
        tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(plan) = plans.get(index) else { break };
                let outcome = if stop.load(Ordering::SeqCst) {
                    let secrets = (!show_secrets).then(|| target.secrets());
                    plan.not_run(
                        "not run: an earlier call could not use the agent",
                        secrets.as_ref(),
                    )
                } else {
                    play::play(&target, plan, show_secrets).await
                };
                if outcome.agent_error.is_some() {
                    stop.store(true, Ordering::SeqCst);
                }
                if done_tx.send((index, outcome)).is_err() {
                    break;
                }
            }
        });
    }
    drop(done_tx);

    let bar = if cmd::progress(args.json) {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("calls [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let color = cmd::color() && !args.json;
    let mut waiting: BTreeMap<usize, CallOutcome> = BTreeMap::new();
    let mut calls = Vec::with_capacity(total);
    while let Some((index, outcome)) = done_rx.recv().await {
        bar.inc(1);
        waiting.insert(index, outcome);
        while let Some(outcome) = waiting.remove(&calls.len()) {
            if !args.json {
                let text = report::call_text(&outcome, args.verbose, color);
                bar.suspend(|| crate::print_stdout(&text));
            }
            calls.push(outcome);
        }
    }
    bar.finish_and_clear();
    (calls.len() == total).then_some(calls)
}
