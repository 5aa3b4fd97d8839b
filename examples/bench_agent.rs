//! The load-benchmark target: one process serving three agents built to measure the runtime
//! itself — what every security layer costs on a tool call, how it behaves while handlers wait
//! on a slow backend, and what rendering a large SWML document costs.
//!
//! Run it with `cargo run --release --example bench_agent`. It prints exactly one line on
//! stdout once it is listening, `bench agent listening on http://127.0.0.1:PORT/` (`https` when
//! TLS is configured), and serves until SIGTERM / Ctrl-C.
//!
//! Routes (every agent uses the same Basic-auth credentials):
//! - `/fast` (agent `fast`): `verify_pin` and `check_order`, the fast path with every security
//!   layer on — per-call token, `requires("pin_verified")`, the input guard, schema validation
//!   (`order_number` pattern, `amount` as money, `note` length), rate limits and the audit
//!   trail — and a handler that does no I/O at all;
//! - `/slow` (agent `slow`): `backend_lookup`, a secure, validated tool whose handler waits
//!   `BENCH_BACKEND_MS` to stand in for a slow CRM call;
//! - `/wide` (agent `wide`): 20 tools, `tool_01` … `tool_20`, so every SWML render mints 20
//!   function tokens and renders 20 schemas.
//!
//! Environment:
//! - `VOXGUARD_HOST` (default 127.0.0.1), `VOXGUARD_PORT` (default 3000; 0 picks a free port,
//!   which the stdout line reports), and the rest of the `VOXGUARD_*` server settings;
//! - `SWML_BASIC_AUTH_USER` / `SWML_BASIC_AUTH_PASSWORD` (generated and printed on stderr when
//!   unset);
//! - `VOXGUARD_DATA_DIR` (default `./voxguard-bench-data`): call sessions and verification
//!   attempt counters in SQLite (`voxguard.db`), the audit trail beside them (`audit.db`), with
//!   `VOXGUARD_AUDIT_DURABILITY` (`normal` or `fsync`) and the other `VOXGUARD_AUDIT_*` settings
//!   as for every voxguard agent;
//! - `BENCH_CALLER_LIMIT_PER_MIN` / `BENCH_GLOBAL_LIMIT_PER_MIN` (default 6,000,000 each):
//!   agent-wide tool-call limits per caller and for everyone. They are deliberately far out of
//!   the way so that a load test measures the runtime rather than the limiter; the protective
//!   defaults are the bank agent's (`examples/bank_agent.rs`: 60 per caller, 1,200 overall).
//!   Never deploy these numbers;
//! - `BENCH_BACKEND_MS` (default 50): how long `backend_lookup` waits, in milliseconds.
//!
//! Demo customers: every number from `+15551230000` to `+15551239999` is a customer of its own
//! (subject `cust_<last four>`; `+15551234567` is `cust_001`), all with PIN 4321, held only as
//! an argon2id hash. Real traffic has a different caller on each call, and the attempt counter
//! is per customer (parallel verifications of one customer beyond the attempt limit start a
//! lockout, by design), so `voxguard bench` gives each simulated call its own number from this
//! range (`--callers`). `check_order` requires the call to be verified first: call
//! `verify_pin` with `{"pin":"4321"}` once per call ID; before that every `check_order` is
//! refused `verification_required` (a policy refusal, itself a measurable path). Wrong PINs
//! count towards the usual lockout (3 attempts, 15 minutes).
//!
//! `voxguard bench` drives it over real HTTP, for example:
//!
//! ```text
//! voxguard bench http://user:pass@127.0.0.1:PORT/fast \
//!   --call 'check_order:{"order_number":"ORD-12345","amount":25.5,"note":"where is my parcel"}' \
//!   --calls unlimited
//! ```
//!
//! and likewise `…/slow --call 'backend_lookup:{"customer_ref":"C1234"}'` for the slow backend
//! and `…/wide` for SWML render cost.

use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use voxguard::guard::{PinVault, SecretHash};
use voxguard::prelude::*;

/// Session flag set by a successful `verify_pin` and required by `check_order`.
pub const VERIFIED: &str = "pin_verified";
/// The demo caller's number.
pub const DEMO_CALLER: &str = "+15551234567";
/// Every number `+1555123` followed by four digits is a demo customer with [`DEMO_PIN`].
pub const DEMO_NUMBER_PREFIX: &str = "+1555123";
/// The demo caller's subject (the key their verification attempts are counted under).
pub const DEMO_SUBJECT: &str = "cust_001";
/// The demo caller's PIN (hashed with argon2id at start-up; only the hash is kept).
pub const DEMO_PIN: &str = "4321";
/// `backend_lookup`'s wait when `BENCH_BACKEND_MS` is unset, in milliseconds.
pub const DEFAULT_BACKEND_MS: u64 = 50;
/// Where the SQLite store and audit trail live when `VOXGUARD_DATA_DIR` is unset.
pub const DEFAULT_DATA_DIR: &str = "./voxguard-bench-data";

/// The `/wide` agent's tools: name and description, in declaration (and render) order.
pub const WIDE_TOOLS: [(&str, &str); 20] = [
    ("tool_01", "Look up the status of a parcel by its reference"),
    ("tool_02", "Reserve a number of seats for an event"),
    ("tool_03", "Add items to the caller's shopping basket"),
    ("tool_04", "Schedule a number of service visits"),
    ("tool_05", "Order replacement parts for an appliance"),
    ("tool_06", "Request copies of past invoices"),
    ("tool_07", "Book a number of nights at a partner hotel"),
    ("tool_08", "Register guests for a webinar"),
    ("tool_09", "Renew library loans on the caller's card"),
    ("tool_10", "Request printed brochures by post"),
    ("tool_11", "Report a number of faulty street lights"),
    ("tool_12", "Order refill cartridges for a water filter"),
    ("tool_13", "Add extra bags to a flight booking"),
    ("tool_14", "Request parking permits for visitors"),
    ("tool_15", "Order sample swatches of a fabric"),
    ("tool_16", "Book driving lessons with an instructor"),
    ("tool_17", "Reserve charging slots for an electric car"),
    ("tool_18", "Order extra keys for a rental property"),
    ("tool_19", "Request bulky-waste collections"),
    ("tool_20", "Buy credits for the caller's prepaid plan"),
];

/// Agent-wide tool-call limits of the bench agents.
pub type Limits = voxguard::AgentLimits;

/// 6,000,000 a minute each: out of a load test's way, and not protective (see the module
/// documentation).
pub const DEFAULT_LIMITS: Limits = Limits {
    per_caller_per_min: 6_000_000,
    global_per_min: 6_000_000,
};

/// The limits from `BENCH_CALLER_LIMIT_PER_MIN` / `BENCH_GLOBAL_LIMIT_PER_MIN`, defaulting to
/// [`DEFAULT_LIMITS`].
pub fn limits_from_env() -> anyhow::Result<Limits> {
    Ok(Limits::from_env(
        "BENCH_CALLER_LIMIT_PER_MIN",
        "BENCH_GLOBAL_LIMIT_PER_MIN",
        DEFAULT_LIMITS,
    )?)
}

/// `backend_lookup`'s wait from `BENCH_BACKEND_MS` (milliseconds, default
/// [`DEFAULT_BACKEND_MS`]; 0 means no wait).
pub fn backend_delay_from_env() -> anyhow::Result<Duration> {
    match std::env::var("BENCH_BACKEND_MS") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| {
                anyhow::anyhow!(
                    "BENCH_BACKEND_MS={v:?} is not valid: a whole number of milliseconds"
                )
            }),
        _ => Ok(Duration::from_millis(DEFAULT_BACKEND_MS)),
    }
}

#[derive(Deserialize, JsonSchema)]
struct VerifyPin {
    /// The PIN the caller said, 4 to 8 digits.
    #[schemars(regex(pattern = r"^[0-9]{4,8}$"))]
    pin: String,
}

#[derive(Deserialize, JsonSchema)]
struct CheckOrder {
    /// Order number, e.g. ORD-12345.
    #[schemars(regex(pattern = r"^ORD-[0-9]{5,10}$"))]
    order_number: String,
    /// Order amount in dollars, more than 0, at most two decimal places.
    #[schemars(extend("exclusiveMinimum" = 0, "x-currency" = true))]
    amount: f64,
    /// What the caller said about the order, at most 200 characters.
    #[schemars(length(max = 200))]
    note: String,
}

#[derive(Deserialize, JsonSchema)]
struct BackendLookup {
    /// Customer reference, C followed by 4 to 12 digits.
    #[schemars(regex(pattern = r"^C[0-9]{4,12}$"))]
    customer_ref: String,
}

#[derive(Deserialize, JsonSchema)]
struct WideArgs {
    /// Reference, REF- followed by 4 to 10 digits.
    #[schemars(regex(pattern = r"^REF-[0-9]{4,10}$"))]
    reference: String,
    /// How many, 1 to 100.
    #[schemars(range(min = 1, max = 100))]
    count: u32,
}

/// The demo customers: every number from `+15551230000` to `+15551239999` (so that a load test
/// can give each simulated call its own caller, as real traffic has), all with the demo PIN,
/// held as one argon2id hash. [`DEMO_CALLER`] is one of them.
struct DemoCaller {
    pin_hash: SecretHash,
}

impl DemoCaller {
    /// The subject of a demo customer's number (`+1555123xxxx`), `None` for anyone else.
    fn subject(number: &str) -> Option<String> {
        let last4 = number.strip_prefix(DEMO_NUMBER_PREFIX)?;
        (last4.len() == 4 && last4.bytes().all(|b| b.is_ascii_digit())).then(|| {
            if number == DEMO_CALLER {
                DEMO_SUBJECT.to_string()
            } else {
                format!("cust_{last4}")
            }
        })
    }
}

/// The `/fast` agent: `verify_pin` and `check_order` (every security layer on, no I/O in the
/// handler), with [`limits_from_env`]. Hashes the demo PIN with argon2id.
pub fn fast_agent() -> anyhow::Result<Agent> {
    let pin_hash = PinVault::default()
        .hash(DEMO_PIN)
        .map_err(|e| anyhow::anyhow!("hashing the demo PIN failed: {e}"))?;
    let caller = Arc::new(DemoCaller { pin_hash });
    let builder = Agent::builder("fast")
        .route("/fast")
        .prompt_section(
            "Role",
            "You are the order desk of Example Shop. After verifying the caller with their PIN, you tell them where their order is.",
        )
        .security_rules("Example Shop customers' orders: where an order is and notes about it")
        .verification(VerificationPolicy::new().flag(VERIFIED));
    Ok(limits_from_env()?
        .apply(builder)
        .tool(verify_pin(caller))
        .tool(check_order())
        .build()?)
}

fn verify_pin(caller: Arc<DemoCaller>) -> Tool {
    Tool::typed(
        "verify_pin",
        "Verify the caller's identity with their PIN",
        move |args: VerifyPin, ctx: CallContext| {
            let caller = caller.clone();
            async move {
                let number = ctx.caller_number().unwrap_or("").to_string();
                let known = DemoCaller::subject(&number);
                // Unknown callers are counted too, under their number, and a hash is still
                // computed: neither the answer nor its timing reveals who is a customer.
                let subject = known.clone().unwrap_or_else(|| format!("caller:{number}"));
                let verification = ctx
                    .verify_secret(
                        &subject,
                        &args.pin,
                        known.is_some().then_some(&caller.pin_hash),
                    )
                    .await?;
                if known.is_some() && verification.is_verified() {
                    Ok(verification.with_sentence("Thank you. Your identity is verified."))
                } else {
                    Ok(verification.into_result())
                }
            }
        },
    )
    .sensitive()
}

fn check_order() -> Tool {
    Tool::typed(
        "check_order",
        "Tell a verified caller where their order is",
        |args: CheckOrder, _ctx: CallContext| async move {
            let noted = if args.note.is_empty() {
                ""
            } else {
                " I've added your note to the order."
            };
            Ok(FunctionResult::new(format!(
                "Order {} for ${:.2} is on its way.{noted}",
                args.order_number, args.amount
            )))
        },
    )
    .requires(VERIFIED)
}

/// The `/slow` agent: `backend_lookup`, whose handler waits `backend` (a stand-in for a slow
/// CRM call) before answering, with [`limits_from_env`].
pub fn slow_agent(backend: Duration) -> anyhow::Result<Agent> {
    let builder = Agent::builder("slow")
        .route("/slow")
        .prompt_section(
            "Role",
            "You are the customer desk of Example Shop. You look up a customer's account by their customer reference.",
        )
        .security_rules("Example Shop customer accounts");
    let tool = Tool::typed(
        "backend_lookup",
        "Look up a customer's account in the CRM by customer reference",
        move |args: BackendLookup, _ctx: CallContext| async move {
            tokio::time::sleep(backend).await;
            Ok(FunctionResult::new(format!(
                "Customer {} has no open tickets.",
                args.customer_ref
            )))
        },
    );
    Ok(limits_from_env()?.apply(builder).tool(tool).build()?)
}

/// The `/wide` agent: the 20 tools of [`WIDE_TOOLS`], each secure and validated, with
/// [`limits_from_env`].
pub fn wide_agent() -> anyhow::Result<Agent> {
    let mut builder = Agent::builder("wide")
        .route("/wide")
        .prompt_section(
            "Role",
            "You are the general help line of Example City. You take requests for the services listed in your functions.",
        )
        .security_rules("Example City services offered by your functions");
    builder = limits_from_env()?.apply(builder);
    for (name, description) in WIDE_TOOLS {
        builder = builder.tool(Tool::typed(
            name,
            description,
            move |args: WideArgs, _ctx: CallContext| async move {
                Ok(FunctionResult::new(format!(
                    "Done: {name} recorded {} for {}.",
                    args.count, args.reference
                )))
            },
        ));
    }
    Ok(builder.build()?)
}

/// Start the three bench agents from the environment and serve until SIGTERM / Ctrl-C.
pub async fn run() -> anyhow::Result<()> {
    use std::io::Write;

    voxguard::init_tracing();
    let data_dir =
        std::env::var("VOXGUARD_DATA_DIR").unwrap_or_else(|_| DEFAULT_DATA_DIR.to_string());
    let fast = fast_agent()?;
    let slow = slow_agent(backend_delay_from_env()?)?;
    let wide = wide_agent()?;
    let mut runtime = Runtime::from_env()?;
    if std::env::var_os("VOXGUARD_SWML_RENDERS_PER_MIN").is_none() {
        // A load-test target: one address (the load generator) renders thousands of calls a
        // second, which the per-address render limit exists to stop. Set the variable to test
        // with a limit.
        runtime = runtime.swml_render_limit(None);
    }
    // SQLite in the data directory, or PostgreSQL (+ Redis) with VOXGUARD_DATABASE_URL; the
    // bench agents keep no conversation records.
    let config = voxguard::StateConfig::from_env()?.without_records();
    let state = voxguard::State::open(
        &config,
        std::path::Path::new(&data_dir),
        runtime.config().production,
    )
    .await?;
    let running = runtime
        .state(state)
        .agent(fast)
        .agent(slow)
        .agent(wide)
        .bind()
        .await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "bench agent listening on {}://{}/",
            running.scheme(),
            running.local_addr()
        )?;
        stdout.flush()?;
    }
    running.serve().await;
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("bench agent: {error:#}");
        std::process::exit(1);
    }
}
