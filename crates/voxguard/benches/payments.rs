//! Payment connector benchmarks (issue 11, item 11): what a charge through the payment
//! connector costs, and whether concurrent retries of one transaction charge once.
//!
//! A `Runtime` is bound on `127.0.0.1:0` and driven over real HTTP with `reqwest`, with the
//! SQLite session store and the SQLite audit trail (`normal` durability) in a temporary
//! directory. Its agent takes payments through a [`TestGateway`] and has one secure tool,
//! `checkout`, that calls `ctx.request_payment(&PaymentRequest::new(3750, "usd", "bench"))`.
//! One payment is what the platform would do for one call: render the SWML (Basic auth), call
//! `checkout` with the function token rendered for it, take the `pay` verb's
//! `payment_connector_url` from the answer, and POST the platform's connector body (card
//! 4242 4242 4242 4242, the verb's amount and currency, a fresh `transaction_id`) to it.
//!
//! 1. **Throughput and latency**: N distinct payments, sequential and from 16 concurrent
//!    clients. The render and `checkout` steps of all N are done first (their cost is its own
//!    row), then the N connector POSTs are measured on their own.
//! 2. **Retries**: 50 concurrent POSTs of the same transaction, released together, in several
//!    rounds (one payment each). Every round must get 50 identical answers (status and body),
//!    and the gateway must count one charge per round.
//! 3. The same with `TestGateway::with_delay(50 ms)`, a gateway with a realistic round trip.
//!
//! The client runs on the server's tokio runtime (one worker per core), so both share the
//! machine's cores, as in the other benchmarks. Each step checks that it did what it claims
//! (every charge answered 200, `TestGateway::charges()` equal to the payments made), and the
//! run fails otherwise; it never asserts on timings. It prints Markdown tables on stdout
//! (progress goes to stderr).
//!
//! Run with `cargo bench -p voxguard --bench payments` (about a minute once compiled);
//! `PAYMENTS_BENCH_QUICK=1` runs a smaller smoke version. Figures go to `BENCHMARKS.md`.
#![forbid(unsafe_code)]

// The records benchmark's measurement helpers (histograms, `measure`, the Markdown table);
// not all of them are used here.
#[allow(dead_code)]
#[path = "records/stats.rs"]
mod stats;

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Barrier;
use voxguard::guard::{BasicCredentials, KeyRing, SecretKey, TokenKey};
use voxguard::payments::gateway::TestGateway;
use voxguard::payments::PaymentRequest;
use voxguard::prelude::*;
use voxguard::server::ServerConfig;
use voxguard::store::{Durability, SqliteAuditLog, SqliteStore, DEFAULT_SESSION_TTL};

use stats::{count, histogram, measure, micros, Stat, Table};

/// Every step's error, shown at the end of a failed run.
pub(crate) type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const USER: &str = "bench";
const PASSWORD: &str = "a-long-benchmark-password-0123456789";
const AGENT: &str = "shop";
const ROUTE: &str = "/shop";
const TOOL: &str = "checkout";
/// The amount `checkout` asks for, in cents.
const AMOUNT_CENTS: u64 = 3750;
/// Stripe's test card that is always charged.
const CARD: &str = "4242424242424242";
/// Concurrent clients in the concurrent case.
const CLIENTS: usize = 16;
/// Concurrent retries of one transaction.
const RETRIES: usize = 50;
/// The realistic gateway's answer time.
const GATEWAY_DELAY: Duration = Duration::from_millis(50);

/// How much work each gateway's part does.
#[derive(Clone, Copy)]
struct Scale {
    /// Payments in the sequential case.
    sequential: usize,
    /// Payments in the concurrent case.
    concurrent: usize,
    /// Rounds of 50 concurrent retries, each on its own payment.
    rounds: usize,
}

/// The scales of the instant gateway and of the 50 ms one.
fn scales() -> (Scale, Scale) {
    if std::env::var_os("PAYMENTS_BENCH_QUICK").is_some() {
        (
            Scale {
                sequential: 100,
                concurrent: 160,
                rounds: 2,
            },
            Scale {
                sequential: 20,
                concurrent: 64,
                rounds: 2,
            },
        )
    } else {
        (
            Scale {
                sequential: 2_000,
                concurrent: 2_000,
                rounds: 10,
            },
            Scale {
                sequential: 200,
                concurrent: 800,
                rounds: 10,
            },
        )
    }
}

/// `checkout` takes no arguments: the amount is the server's.
#[derive(Deserialize, JsonSchema)]
struct Checkout {}

/// The shop agent: one secure tool that requests a $37.50 payment through `gateway`.
fn agent(gateway: Arc<TestGateway>) -> BenchResult<Agent> {
    let builder = Agent::builder(AGENT)
        .route(ROUTE)
        .prompt_section("Role", "You are the checkout desk of Example Shop.");
    let limits = AgentLimits {
        per_caller_per_min: 6_000_000,
        global_per_min: 6_000_000,
    };
    Ok(limits
        .apply(builder)
        .payments(gateway)
        .tool(Tool::typed(
            TOOL,
            "Take the caller's payment for the cart",
            |_: Checkout, ctx: CallContext| async move {
                let request = PaymentRequest::new(AMOUNT_CENTS, "usd", "bench")
                    .map_err(ToolError::internal)?;
                Ok(ctx.request_payment(&request).await?)
            },
        ))
        .build()?)
}

/// A bound runtime serving the shop agent, and the client that drives it.
struct Shop {
    base: String,
    client: reqwest::Client,
    gateway: Arc<TestGateway>,
    /// Calls rendered so far: each payment is a new call.
    calls: AtomicUsize,
    /// The session store and audit trail; removed when the bench ends.
    _dir: tempfile::TempDir,
}

/// One payment ready for its connector POST: the connector URL (on the bound address, with
/// the payment's token) and the platform's body.
struct Payment {
    url: String,
    body: String,
}

impl Shop {
    /// Bind a runtime with SQLite sessions and audit trail in a new temporary directory.
    async fn start(gateway: TestGateway) -> BenchResult<Arc<Self>> {
        let dir = tempfile::tempdir()?;
        let sessions = Arc::new(SqliteStore::open_in_dir(dir.path(), DEFAULT_SESSION_TTL).await?);
        let audit = Arc::new(
            SqliteAuditLog::open_in_dir(
                dir.path(),
                Durability::Normal,
                Some(SecretKey::from_bytes(vec![7; 32])?),
                100,
            )
            .await?,
        );
        let gateway = Arc::new(gateway);
        let runtime = Runtime::new(
            ServerConfig::new(BasicCredentials::new(USER, PASSWORD)),
            KeyRing::new(TokenKey::from_bytes(vec![0x42; 32])?),
        )
        .store(sessions)
        .audit(audit)
        .swml_render_limit(None)
        .agent(agent(gateway.clone())?);
        let running = runtime.bind().await?;
        let base = format!("http://{}", running.local_addr());
        tokio::spawn(running.serve());
        Ok(Arc::new(Self {
            base,
            client: reqwest::Client::new(),
            gateway,
            calls: AtomicUsize::new(0),
            _dir: dir,
        }))
    }

    /// `url` (as rendered, with the public base and credentials) on the bound address.
    fn local(&self, url: &str) -> BenchResult<String> {
        let url = reqwest::Url::parse(url)?;
        Ok(match url.query() {
            Some(query) => format!("{}{}?{query}", self.base, url.path()),
            None => format!("{}{}", self.base, url.path()),
        })
    }

    /// POST `body` with the runtime's Basic credentials; the status and the JSON answer.
    async fn post(&self, url: &str, body: String) -> BenchResult<(u16, Value)> {
        let response = self
            .client
            .post(url)
            .basic_auth(USER, Some(PASSWORD))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await?))
    }

    /// A new call up to its `pay` verb: render the SWML, call `checkout` with its token, and
    /// build the platform's connector request from the verb.
    async fn open_payment(&self) -> BenchResult<Payment> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let call_id = format!("call-{n:07}");
        let caller = format!("+1555{n:07}");
        let (status, swml) = self
            .post(
                &format!("{}{ROUTE}", self.base),
                json!({"call": {"call_id": call_id, "from": caller}}).to_string(),
            )
            .await?;
        if status != 200 {
            return Err(format!("SWML render answered {status}").into());
        }
        let webhook = tool_webhook(&swml).ok_or("no checkout webhook rendered")?;
        let body = json!({
            "function": TOOL, "call_id": call_id, "caller_id_num": caller,
            "ai_session_id": format!("session-{n}"),
            "argument": {"parsed": [{}], "raw": "{}"},
        });
        let (status, answer) = self.post(&self.local(&webhook)?, body.to_string()).await?;
        let pay = find_pay(&answer)
            .ok_or_else(|| format!("checkout answered {status} without a pay verb: {answer}"))?;
        let field = |name: &str| pay.get(name).and_then(Value::as_str).unwrap_or_default();
        let url = self.local(field("payment_connector_url"))?;
        // The platform's connector request (issue 11, "wire facts").
        let body = json!({
            "transaction_id": format!("txn-{n:07}"),
            "method": "credit-card",
            "cardnumber": CARD,
            "cvv": "123",
            "expiry_month": "12",
            "expiry_year": "2034",
            "postal_code": "94105",
            "chargeAmount": field("charge_amount"),
            "currency_code": field("currency"),
            "token_type": "one-time",
            "description": field("description"),
        });
        Ok(Payment {
            url,
            body: body.to_string(),
        })
    }

    /// POST a payment to the connector; the answer, which must be a charge.
    async fn charge(&self, payment: &Payment) -> BenchResult<(u16, Value)> {
        let (status, answer) = self.post(&payment.url, payment.body.clone()).await?;
        let charged = answer["charge_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("ch_test_"));
        if status != 200 || !charged || !answer["error_code"].is_null() {
            return Err(format!("the connector answered {status}: {answer}").into());
        }
        Ok((status, answer))
    }
}

/// The `web_hook_url` rendered for `checkout` in a SWML document.
fn tool_webhook(swml: &Value) -> Option<String> {
    let verbs = swml["sections"]["main"].as_array()?;
    let ai = verbs.iter().find_map(|verb| verb.get("ai"))?;
    let function = ai["SWAIG"]["functions"]
        .as_array()?
        .iter()
        .find(|f| f["function"] == TOOL)?;
    Some(function.get("web_hook_url")?.as_str()?.to_string())
}

/// The first `pay` verb anywhere in a SWAIG answer (it sits in a SWML action).
fn find_pay(value: &Value) -> Option<&Value> {
    match value {
        Value::Object(map) => match map.get("pay") {
            Some(pay) if pay.get("payment_connector_url").is_some() => Some(pay),
            _ => map.values().find_map(find_pay),
        },
        Value::Array(items) => items.iter().find_map(find_pay),
        _ => None,
    }
}

/// Open `n` payments, `clients` at a time: the cost of render + `checkout`, and the payments.
async fn open(shop: &Arc<Shop>, n: usize, clients: usize) -> BenchResult<(Stat, Vec<Payment>)> {
    let shop = shop.clone();
    measure(n, clients, move |_| {
        let shop = shop.clone();
        async move { shop.open_payment().await }
    })
    .await
}

/// Charge `payments`, `clients` at a time; checks that the gateway made one charge for each.
async fn charge_all(shop: &Arc<Shop>, payments: Vec<Payment>, clients: usize) -> BenchResult<Stat> {
    let before = shop.gateway.charges();
    let n = payments.len();
    let payments = Arc::new(payments);
    let (stat, _) = measure(n, clients, {
        let shop = shop.clone();
        move |i| {
            let (shop, payments) = (shop.clone(), payments.clone());
            async move { shop.charge(&payments[i]).await.map(|_| ()) }
        }
    })
    .await?;
    let made = shop.gateway.charges() - before;
    if made != n {
        return Err(format!("{n} payments made {made} charges").into());
    }
    Ok(stat)
}

/// What the retry rounds found: the latencies of all retries, over the rounds' own time (from
/// each round's first request to its last answer, added up; opening the payments not counted),
/// and every answer that was not the round's charge.
struct Retries {
    stat: Stat,
    rounds: usize,
    /// The slowest round, from its first request to its last answer.
    slowest_round: Duration,
    /// Rounds whose answers were not all the same charge.
    divergent_rounds: usize,
    /// Each answer other than the round's charge: `status error_code`, and how many.
    divergent: BTreeMap<String, usize>,
    /// Rounds whose gateway charge count was not exactly 1.
    not_one_charge: usize,
}

/// `rounds` times: open a payment, then POST its transaction `RETRIES` times at once. Each
/// round should get `RETRIES` identical answers (the charge) and make exactly one charge, and a
/// later retry should get the same answer; what differs is counted, not hidden.
async fn retries(shop: &Arc<Shop>, rounds: usize) -> BenchResult<Retries> {
    let mut found = Retries {
        stat: Stat {
            elapsed: Duration::ZERO,
            hist: histogram(),
        },
        rounds,
        slowest_round: Duration::ZERO,
        divergent_rounds: 0,
        divergent: BTreeMap::new(),
        not_one_charge: 0,
    };
    for _ in 0..rounds {
        let payment = Arc::new(shop.open_payment().await?);
        let before = shop.gateway.charges();
        let barrier = Arc::new(Barrier::new(RETRIES));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..RETRIES {
            let (shop, payment, barrier) = (shop.clone(), payment.clone(), barrier.clone());
            tasks.spawn(async move {
                barrier.wait().await;
                let t = Instant::now();
                let answer = shop.post(&payment.url, payment.body.clone()).await;
                (t, t.elapsed(), answer)
            });
        }
        let mut answers = Vec::with_capacity(RETRIES + 1);
        let mut first_sent = None::<Instant>;
        let mut last_done = None::<Instant>;
        while let Some(joined) = tasks.join_next().await {
            let (sent, took, answer) = joined?;
            found.stat.hist.record(micros(took))?;
            first_sent = Some(first_sent.map_or(sent, |f| f.min(sent)));
            last_done = Some(last_done.map_or(sent + took, |l| l.max(sent + took)));
            answers.push(answer?);
        }
        if let (Some(first), Some(last)) = (first_sent, last_done) {
            found.slowest_round = found.slowest_round.max(last - first);
            found.stat.elapsed += last - first;
        }
        if shop.gateway.charges() - before != 1 {
            found.not_one_charge += 1;
        }
        // The late retry, once the round is over, is held to the same answer.
        answers.push(shop.post(&payment.url, payment.body.clone()).await?);
        let charge = answers
            .iter()
            .find(|(status, answer)| *status == 200 && answer["charge_id"].is_string())
            .cloned();
        let mut round_diverged = false;
        for answer in &answers {
            if Some(answer) != charge.as_ref() {
                round_diverged = true;
                let code = answer.1["error_code"].as_str().unwrap_or("(none)");
                *found
                    .divergent
                    .entry(format!("{} `{code}`", answer.0))
                    .or_default() += 1;
            }
        }
        found.divergent_rounds += usize::from(round_diverged);
    }
    Ok(found)
}

/// All parts against one gateway: the table's rows, and what the retries got wrong.
async fn run(label: &str, gateway: TestGateway, scale: Scale) -> BenchResult<(Table, Vec<String>)> {
    let shop = Shop::start(gateway).await?;
    let mut table = Table::default();
    // Warm-up: connections, SQLite pages, the first audit checkpoint.
    let (_, warm) = open(&shop, 20, 4).await?;
    charge_all(&shop, warm, 4).await?;

    eprintln!("{label}: {} sequential payments", scale.sequential);
    let (opened, payments) = open(&shop, scale.sequential, 1).await?;
    let charged = charge_all(&shop, payments, 1).await?;
    table.stat(
        "SWML render + `checkout` (`request_payment`), sequential",
        &opened,
    );
    table.stat("**connector `POST /pay`**, charge, sequential", &charged);

    eprintln!(
        "{label}: {} payments from {CLIENTS} clients",
        scale.concurrent
    );
    let (opened, payments) = open(&shop, scale.concurrent, CLIENTS).await?;
    let charged = charge_all(&shop, payments, CLIENTS).await?;
    table.stat(
        &format!("SWML render + `checkout`, {CLIENTS} concurrent clients"),
        &opened,
    );
    table.stat(
        &format!("**connector `POST /pay`**, charge, {CLIENTS} concurrent clients"),
        &charged,
    );

    eprintln!(
        "{label}: {} rounds of {RETRIES} concurrent retries",
        scale.rounds
    );
    let found = retries(&shop, scale.rounds).await?;
    let total = found.rounds * (RETRIES + 1);
    let wrong: usize = found.divergent.values().sum();
    table.stat(
        &format!(
            "**{RETRIES} concurrent retries of one transaction**, {} rounds: one charge in {} rounds, all answers identical in {} ({wrong} of {} answers, with a late retry each, differ)",
            found.rounds,
            found.rounds - found.not_one_charge,
            found.rounds - found.divergent_rounds,
            count(total as u64),
        ),
        &found.stat,
    );
    let mut problems = Vec::new();
    if found.not_one_charge > 0 {
        problems.push(format!(
            "{label}: {} of {} rounds did not make exactly one charge",
            found.not_one_charge, found.rounds
        ));
    }
    if found.divergent_rounds > 0 {
        let kinds: Vec<String> = found
            .divergent
            .iter()
            .map(|(kind, n)| format!("{n} × {kind}"))
            .collect();
        problems.push(format!(
            "{label}: {} of {} rounds got answers other than the charge: {}",
            found.divergent_rounds,
            found.rounds,
            kinds.join(", ")
        ));
    }
    eprintln!(
        "{label}: slowest retry round {:.1} ms; gateway charges {}",
        found.slowest_round.as_secs_f64() * 1_000.0,
        count(shop.gateway.charges() as u64)
    );
    Ok((table, problems))
}

/// The 1-minute load average, as `/proc/loadavg` shows it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn main() -> BenchResult<()> {
    let (instant, slow) = scales();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    println!(
        "# Payment connector benchmarks ({} cores, tokio workers: one per core; load average {} at start)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let (table, mut problems) = rt.block_on(run("instant gateway", TestGateway::new(), instant))?;
    table.print("1, 2. `TestGateway::new()` (answers at once)");
    let (table, more) = rt.block_on(run(
        "50 ms gateway",
        TestGateway::new().with_delay(GATEWAY_DELAY),
        slow,
    ))?;
    problems.extend(more);
    table.print(&format!(
        "3. `TestGateway::new().with_delay({} ms)`",
        GATEWAY_DELAY.as_millis()
    ));
    println!(
        "\nLoad average {} at the end; {:.0} s in all.",
        load_average(),
        started.elapsed().as_secs_f64()
    );
    // The tables are out; a broken idempotency promise still fails the run.
    if !problems.is_empty() {
        println!("\n**Idempotency failures:**\n");
        for problem in &problems {
            println!("- {problem}");
        }
        return Err(format!("{} idempotency failure(s)", problems.len()).into());
    }
    Ok(())
}
