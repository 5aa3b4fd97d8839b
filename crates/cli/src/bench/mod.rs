//! `voxguard bench URL`: a load generator that plays realistic calls against a running agent.
//!
//! This module owns the load model, the measurement and the report. Each of `--concurrency`
//! workers plays one phone call after another on its own keep-alive HTTP/1.1 connection, the
//! way the platform drives an agent: it fetches the SWML document by POST (a fresh call id),
//! takes the per-function `web_hook_url`s with their tokens from it, verifies the demo caller
//! when the agent offers the verification function (`--verify`, default `verify_pin` with PIN
//! 4321), then makes `--calls` SWAIG calls drawn in turn from the `--call` mix. Requests that
//! complete during the warm-up are not counted; the rest are recorded, per step, in
//! HdrHistograms (microsecond resolution, 3 significant figures).
//!
//! Refusals are errors to a load test: a non-2xx status, or a 200 SWAIG reply carrying an
//! `error` reason, is counted under `"<status> <reason>"` so that `429 rate_limited` or
//! `200 verification_required` tell at once what went wrong. `--pid` samples the target's
//! resident set from `/proc`. `--baseline` replays the same flows against a bare axum server
//! (see [`crate::baseline`]) started as a child process, in the same run, and reports the ratio.
//!
//! Loads go to loopback addresses only unless `--allow-remote` is given: a load generator
//! pointed at a production agent by mistake is a denial of service.
//!
//! This file owns the run's orchestration: the probe, the plan, the load, the baseline and
//! the report. The jobs live beside it: [`args`] (the command line), [`http`] (the target and
//! its connections), [`plan`] (what the rendered SWML document offers, and who calls),
//! [`mod@load`] (the workers and their steps), [`sample`] (`/proc` readings of the target) and
//! [`report`] (the figures and how they print). The agent's SWML answer is read through the
//! `voxguard_swml` types, never by indexing untyped JSON.

mod args;
mod http;
mod load;
mod plan;
mod report;
mod sample;

use std::sync::Arc;

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::json;
use voxguard_swml::Document;

use crate::Exit;
pub use args::BenchArgs;
use args::{CallSpec, Calls, Usage};
use http::{refusal, Connection, Failure, Target};
use load::load;
use plan::{callable_without_arguments, callers, webhooks, Plan};
use report::{mib, Baseline, Little, Report, Rss};
use sample::rss_bytes;

/// Run `voxguard bench`.
pub fn bench(args: &BenchArgs) -> Exit {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("voxguard bench: cannot start the runtime: {e}");
            return Exit::Internal;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(report) => {
            let text = if args.json {
                let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
                text.push('\n');
                text
            } else {
                report.render()
            };
            crate::print_stdout(&text)
        }
        Err(Usage(message)) => {
            eprintln!("voxguard bench: {message}");
            Exit::Usage
        }
    }
}

/// The whole run: check the arguments and the target, probe the SWML route for the plan, load
/// the agent (then the baseline), and gather the report.
async fn run(args: &BenchArgs) -> Result<Report, Usage> {
    if args.concurrency == 0 {
        return Err(Usage("--concurrency must be at least 1".into()));
    }
    if args.duration.is_zero() {
        return Err(Usage("--duration must be more than 0".into()));
    }
    if let Some(pid) = args.pid {
        if rss_bytes(pid).is_none() {
            return Err(Usage(format!(
                "no process {pid} to sample (--pid; /proc/{pid}/status)"
            )));
        }
    }
    let target = Arc::new(Target::from_args(args).await?);

    // A first SWML fetch checks the target and the mix before any load.
    let mut probe = Connection::new(target.clone(), args.timeout);
    let body = Bytes::from(
        json!({"call_id": "bench-probe", "call": {"call_id": "bench-probe", "from": args.caller}})
            .to_string(),
    );
    let (status, swml_bytes) = probe.post(&target.swml_path, body).await.map_err(|f| {
        Usage(match f {
            Failure::Transport(kind) => format!("cannot reach {}: {kind}", target.shown),
            Failure::Refused(reason) => reason,
        })
    })?;
    if !status.is_success() {
        let reason = refusal(status, &swml_bytes).unwrap_or_default();
        let hint = if status == StatusCode::UNAUTHORIZED {
            " (check the credentials: URL, --user/--password or SWML_BASIC_AUTH_*)"
        } else {
            ""
        };
        return Err(Usage(format!(
            "the SWML fetch answered {reason}{hint}: {}",
            target.shown
        )));
    }
    let swml: Document = serde_json::from_slice(&swml_bytes).map_err(|e| {
        Usage(if e.is_data() {
            format!("the SWML answer is not a SWML document: {e}")
        } else {
            format!("the SWML answer is not JSON: {e}")
        })
    })?;
    let rendered = webhooks(&swml);
    let verify = (!args.no_verify && rendered.contains_key(&args.verify.function))
        .then(|| args.verify.clone());
    let mix = if args.mix.is_empty() {
        callable_without_arguments(&swml)
            .into_iter()
            .filter(|name| Some(name) != verify.as_ref().map(|v| &v.function))
            .map(|function| CallSpec {
                function,
                args: json!({}),
            })
            .collect()
    } else {
        args.mix.clone()
    };
    if args.calls != Calls::Count(0) {
        if mix.is_empty() {
            return Err(Usage(
                "no rendered function can be called without arguments; give the mix with --call NAME:JSON"
                    .into(),
            ));
        }
        let mut names: Vec<&String> = rendered.keys().collect();
        names.sort();
        for spec in &mix {
            if !rendered.contains_key(&spec.function) {
                return Err(Usage(format!(
                    "{:?} is not a function of this agent (it renders: {})",
                    spec.function,
                    names
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let plan = Arc::new(Plan {
        concurrency: args.concurrency,
        calls: args.calls,
        mix: mix.clone(),
        verify: verify.clone(),
        callers: callers(
            &args.caller,
            args.callers.unwrap_or(args.concurrency as u64),
        )?,
        timeout: args.timeout,
        pace: args
            .rate
            .map(|rate| std::time::Duration::from_secs_f64(args.concurrency as f64 / rate)),
        run_id,
    });

    let progress = !args.json;
    let rss_start = args.pid.and_then(rss_bytes);
    let (run, peak) = load(
        target.clone(),
        plan.clone(),
        args,
        args.pid,
        progress.then_some("voxguard"),
    )
    .await;
    let rss = args.pid.map(|pid| Rss {
        pid,
        start_mib: mib(rss_start.unwrap_or(0)),
        peak_mib: mib(peak.max(rss_start.unwrap_or(0))),
        end_mib: mib(rss_bytes(pid).unwrap_or(0)),
    });
    let little = args.little_ms.filter(|ms| *ms > 0.0).map(|ms| {
        let limit = args.concurrency as f64 / (ms / 1000.0);
        let swaig_rps: f64 = run
            .steps
            .iter()
            .filter(|(name, _)| name.as_str() != "swml" && !name.ends_with("(verify)"))
            .map(|(_, s)| s.rps)
            .sum();
        Little {
            latency_ms: ms,
            limit_rps: limit,
            reached: swaig_rps / limit,
        }
    });
    let baseline = if args.baseline {
        let server = crate::baseline::spawn(&swml_bytes)
            .await
            .map_err(|e| Usage(format!("cannot start the baseline server: {e}")))?;
        let bare =
            Arc::new(target.at(server.addr, format!("http://{}/ (bare axum)", server.addr))?);
        let (bare_run, _) = load(
            bare,
            plan,
            args,
            Some(server.pid),
            progress.then_some("bare axum"),
        )
        .await;
        drop(server);
        let ratio = if bare_run.rps > 0.0 {
            run.rps / bare_run.rps
        } else {
            0.0
        };
        Some(Baseline {
            run: bare_run,
            ratio,
        })
    } else {
        None
    };
    Ok(Report {
        concurrency: args.concurrency,
        rate: args.rate,
        warmup_secs: args.warmup.as_secs_f64(),
        duration_secs: args.duration.as_secs_f64(),
        calls_per_call: match args.calls {
            Calls::Count(n) => Some(n),
            Calls::Unlimited => None,
        },
        mix: if args.calls == Calls::Count(0) {
            Vec::new()
        } else {
            mix.iter().map(|s| s.function.clone()).collect()
        },
        verify: verify.map(|v| v.function),
        run,
        rss,
        little,
        baseline,
    })
}
