//! The reference bank agent — a stable contract used by the docs, the end-to-end tests and the
//! benchmarks.
//!
//! Run it with `cargo run --example bank_agent`. Environment:
//! - `VOXGUARD_HOST` (default 127.0.0.1), `VOXGUARD_PORT` (default 3000), route `/`;
//! - `SWML_BASIC_AUTH_USER` / `SWML_BASIC_AUTH_PASSWORD` (generated and printed when unset);
//! - `VOXGUARD_DATA_DIR` (default `./voxguard-data`): call sessions and verification attempt
//!   counters live in SQLite there (`voxguard.db`), the audit trail beside them (`audit.db`,
//!   see `VOXGUARD_AUDIT_*` in docs/configuration.md), and the encrypted conversation records
//!   (`records.db`; `VOXGUARD_RECORDS_KEY`, `VOXGUARD_RECORDS=off`, docs/records.md);
//! - `BANK_SUPPORT_NUMBER`, `BANK_SALES_NUMBER`, `BANK_BILLING_NUMBER`: transfer destinations
//!   (the only ones the agent may transfer to);
//! - `BANK_CALLER_LIMIT_PER_MIN` (default 60) and `BANK_GLOBAL_LIMIT_PER_MIN` (default 1200):
//!   agent-wide tool-call limits per caller and for everyone (raise them for load tests).
//!
//! Demo customers (PINs are only ever held as argon2id hashes):
//! `+15551234567` → John (`cust_001`, PIN 4321, $150.00, account 1234567890) and
//! `+15559876543` → Jane (`cust_002`, PIN 8765, $2,500.00, account 9876543210).
//!
//! Policies, all enforced by the runtime before a handler runs: `verify_pin` locks a customer
//! out for 15 minutes after 3 wrong PINs, across calls; `get_balance` and `transfer_funds`
//! require the verified session and are rendered inactive until then; `transfer_funds` needs a
//! read-back confirmation and allows 10 calls a minute per caller; `admin_action` needs the
//! `admin` role, which Jane's number receives once she has verified.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use voxguard::guard::{PinVault, SecretHash};
use voxguard::prelude::*;
use voxguard::AgentError;

/// Session flag set by a successful `verify_pin`.
pub const VERIFIED: &str = "pin_verified";
/// Session key holding the verified customer's id.
pub const CUSTOMER: &str = "customer_id";
/// Largest transfer the phone channel accepts, in cents.
pub const MAX_PHONE_TRANSFER_CENTS: i64 = 1_000_000;

struct Customer {
    id: &'static str,
    name: &'static str,
    pin_hash: SecretHash,
    account: &'static str,
}

/// The demo bank: customers by caller number, balances in cents.
pub struct Bank {
    by_caller: HashMap<&'static str, Customer>,
    balances: Mutex<HashMap<&'static str, i64>>,
}

impl Bank {
    /// Seed the two demo customers, hashing their PINs with argon2id.
    pub fn demo() -> anyhow::Result<Self> {
        let seed = [
            (
                "+15551234567",
                "cust_001",
                "John",
                "4321",
                15_000,
                "1234567890",
            ),
            (
                "+15559876543",
                "cust_002",
                "Jane",
                "8765",
                250_000,
                "9876543210",
            ),
        ];
        let vault = PinVault::default();
        let mut by_caller = HashMap::new();
        let mut balances = HashMap::new();
        for (caller, id, name, pin, cents, account) in seed {
            let pin_hash = vault
                .hash(pin)
                .map_err(|e| anyhow::anyhow!("hashing a demo PIN failed: {e}"))?;
            by_caller.insert(
                caller,
                Customer {
                    id,
                    name,
                    pin_hash,
                    account,
                },
            );
            balances.insert(id, cents);
        }
        Ok(Self {
            by_caller,
            balances: Mutex::new(balances),
        })
    }

    fn balance(&self, id: &str) -> Option<i64> {
        self.balances.lock().ok()?.get(id).copied()
    }

    fn customer_by_id(&self, id: &str) -> Option<&Customer> {
        self.by_caller.values().find(|c| c.id == id)
    }
}

/// Transfer destinations per department.
#[derive(Clone)]
pub struct Departments {
    /// Support line.
    pub support: String,
    /// Sales line.
    pub sales: String,
    /// Billing line.
    pub billing: String,
}

impl Departments {
    /// From `BANK_*_NUMBER`, with demo defaults.
    pub fn from_env() -> Self {
        let get =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
        Self {
            support: get("BANK_SUPPORT_NUMBER", "+15550100001"),
            sales: get("BANK_SALES_NUMBER", "+15550100002"),
            billing: get("BANK_BILLING_NUMBER", "+15550100003"),
        }
    }
}

/// Agent-wide tool-call limits of the bank agent.
pub type Limits = voxguard::AgentLimits;

/// The protective defaults: 60 tool calls a minute per caller, 1,200 for everyone.
pub const DEFAULT_LIMITS: Limits = Limits {
    per_caller_per_min: 60,
    global_per_min: 1200,
};

/// The limits from `BANK_CALLER_LIMIT_PER_MIN` / `BANK_GLOBAL_LIMIT_PER_MIN` (raise them for
/// load tests), defaulting to [`DEFAULT_LIMITS`].
pub fn limits_from_env() -> anyhow::Result<Limits> {
    Ok(Limits::from_env(
        "BANK_CALLER_LIMIT_PER_MIN",
        "BANK_GLOBAL_LIMIT_PER_MIN",
        DEFAULT_LIMITS,
    )?)
}

#[derive(Deserialize, JsonSchema)]
struct VerifyPin {
    /// The PIN the caller said, 4 to 8 digits.
    #[schemars(regex(pattern = r"^[0-9]{4,8}$"))]
    pin: String,
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

#[derive(Deserialize, JsonSchema)]
struct TransferFunds {
    /// Amount in dollars, more than 0, at most two decimal places.
    #[schemars(extend("exclusiveMinimum" = 0, "x-currency" = true))]
    amount: f64,
    /// Destination account number, exactly 10 digits.
    #[schemars(regex(pattern = r"^[0-9]{10}$"))]
    to_account: String,
}

#[derive(Deserialize, JsonSchema)]
struct AdminAction {
    /// The administrative action to record.
    #[schemars(length(min = 1, max = 64))]
    action: String,
}

#[derive(Deserialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Department {
    Support,
    Sales,
    Billing,
}

#[derive(Deserialize, JsonSchema)]
struct TransferToDepartment {
    /// Which department to connect the caller to.
    department: Department,
}

/// Format cents as `$1,234.56`.
pub fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{sign}${grouped}.{:02}", cents % 100)
}

fn last4(account: &str) -> &str {
    account.get(account.len().saturating_sub(4)..).unwrap_or("")
}

fn cents_of(amount: f64) -> i64 {
    (amount * 100.0).round() as i64
}

/// The bank agent's declaration with the default (protective) limits.
pub fn build_agent(bank: Arc<Bank>, departments: Departments) -> Result<Agent, AgentError> {
    build_agent_with(bank, departments, DEFAULT_LIMITS)
}

/// The bank agent's declaration.
pub fn build_agent_with(
    bank: Arc<Bank>,
    departments: Departments,
    limits: Limits,
) -> Result<Agent, AgentError> {
    let minute = Duration::from_secs(60);
    Agent::builder("bank")
        .route("/")
        .prompt_section(
            "Role",
            "You are the phone assistant of Example Bank. You help verified customers check their balance, move money and reach the right department.",
        )
        .prompt_bullets(
            "Banking rules",
            [
                "Account information is shared only after verify_pin succeeds; a caller's claims about who they are do not count.",
                "Never read back a full account number or PIN; use the last four digits at most.",
            ],
        )
        .security_rules("Example Bank customers' banking: balances, transfers between accounts and reaching a department")
        .post_prompt("Summarize the call in two sentences without account numbers or PINs.")
        .param("end_of_speech_timeout", 700)
        .language(Language::new("English", "en-US", "rime.spore"))
        .hints(["PIN", "balance", "transfer"])
        .global_data("bank_name", "Example Bank")
        .verification(
            VerificationPolicy::new()
                .max_attempts(3)
                .lockout(Duration::from_secs(15 * 60))
                .flag(VERIFIED)
                .activate(["get_balance", "transfer_funds"])
                .callers(CallerAllowList::new().caller("+15559876543", "cust_002", "Jane", "admin")),
        )
        .allow_transfers_to([&departments.support, &departments.sales, &departments.billing].map(String::clone))
        .rate_limit_per_caller(limits.per_caller_per_min, minute)
        .rate_limit_global(limits.global_per_min, minute)
        .tool(verify_pin(bank.clone()))
        .tool(get_balance(bank.clone()))
        .tool(transfer_funds(bank).rate_limit(10, minute))
        .tool(admin_action())
        .tool(transfer_to_department(departments))
        .build()
}

fn verify_pin(bank: Arc<Bank>) -> Tool {
    Tool::typed(
        "verify_pin",
        "Verify the caller's identity with their PIN",
        move |args: VerifyPin, ctx: CallContext| {
            let bank = bank.clone();
            async move {
                let number = ctx.caller_number().unwrap_or("").to_string();
                let customer = bank.by_caller.get(number.as_str());
                // Unknown callers are counted too, under their number, and a hash is still computed:
                // neither the answer nor its timing reveals which numbers belong to customers.
                let subject = customer
                    .map(|c| c.id.to_string())
                    .unwrap_or_else(|| format!("caller:{number}"));
                let verification = ctx
                    .verify_secret(&subject, &args.pin, customer.map(|c| &c.pin_hash))
                    .await?;
                match customer {
                    Some(customer) if verification.is_verified() => {
                        ctx.session().set(CUSTOMER, customer.id).await?;
                        Ok(verification.with_sentence(format!(
                            "Thank you, {}. Your identity is verified.",
                            customer.name
                        )))
                    }
                    _ => Ok(verification.into_result()),
                }
            }
        },
    )
    .sensitive()
}

fn get_balance(bank: Arc<Bank>) -> Tool {
    Tool::typed(
        "get_balance",
        "Tell a verified caller their account balance",
        move |_: NoArgs, ctx: CallContext| {
            let bank = bank.clone();
            async move {
                let id = customer_id(&ctx).await?;
                let cents = bank
                    .balance(&id)
                    .ok_or_else(|| ToolError::internal("verified customer has no balance"))?;
                Ok(FunctionResult::new(format!(
                    "Your balance is {}.",
                    dollars(cents)
                )))
            }
        },
    )
    .requires(VERIFIED)
    .inactive()
}

fn transfer_funds(bank: Arc<Bank>) -> Tool {
    Tool::typed(
        "transfer_funds",
        "Transfer money from a verified caller's account to another account",
        move |args: TransferFunds, ctx: CallContext| {
            let bank = bank.clone();
            async move {
                let id = customer_id(&ctx).await?;
                let cents = cents_of(args.amount);
                if cents > MAX_PHONE_TRANSFER_CENTS {
                    return Err(ToolError::refuse(
                        "additional_verification_required",
                        "Transfers over $10,000.00 require additional verification and can't be done by phone. Please visit a branch or use online banking.",
                    ));
                }
                if bank.customer_by_id(&id).is_some_and(|c| c.account == args.to_account) {
                    return Ok(FunctionResult::new(
                        "The destination is the caller's own account; please ask for a different account.",
                    ));
                }
                {
                    let mut balances = bank.balances.lock().map_err(|_| ToolError::internal("balance lock poisoned"))?;
                    let balance = balances.get_mut(id.as_str()).ok_or_else(|| ToolError::internal("no balance"))?;
                    if *balance < cents {
                        return Ok(FunctionResult::new("There are not enough funds in the account for that transfer."));
                    }
                    *balance -= cents;
                }
                let confirmation = {
                    use rand::Rng;
                    format!("TXN-{:08X}", rand::thread_rng().gen::<u32>())
                };
                Ok(FunctionResult::new(format!(
                    "Transferred {} to account ending {}. Confirmation: {confirmation}.",
                    dollars(cents),
                    last4(&args.to_account)
                )))
            }
        },
    )
    .requires(VERIFIED)
    .confirm(|args: &TransferFunds| {
        format!(
            "You're about to transfer {} to account ending {}. Please say confirm to proceed.",
            dollars(cents_of(args.amount)),
            last4(&args.to_account)
        )
    })
    .inactive()
}

fn admin_action() -> Tool {
    Tool::typed(
        "admin_action",
        "Record an administrative action (bank staff only)",
        |args: AdminAction, ctx: CallContext| async move {
            tracing::info!(
                target: "voxguard::security",
                event = "admin_action",
                call_id = ctx.call_id(),
                action_len = args.action.len(),
                "admin action recorded"
            );
            Ok(FunctionResult::new(
                "The administrative action has been recorded.",
            ))
        },
    )
    .requires_role("admin")
}

fn transfer_to_department(departments: Departments) -> Tool {
    Tool::typed(
        "transfer_to_department",
        "Connect the caller to support, sales or billing",
        move |args: TransferToDepartment, _ctx: CallContext| {
            let departments = departments.clone();
            async move {
                let (label, number) = match args.department {
                    Department::Support => ("support", departments.support),
                    Department::Sales => ("sales", departments.sales),
                    Department::Billing => ("billing", departments.billing),
                };
                Ok(
                    FunctionResult::new(format!("Transferring you to {label} now."))
                        .connect(number)
                        .post_process(true),
                )
            }
        },
    )
}

/// The verified customer of this call. `requires(VERIFIED)` guarantees the session was
/// verified before this runs; `verify_pin` stored the id.
async fn customer_id(ctx: &CallContext) -> Result<String, ToolError> {
    ctx.session()
        .get::<String>(CUSTOMER)
        .await?
        .ok_or_else(|| ToolError::internal("verified session without a customer id"))
}

/// Start the bank agent from the environment and serve until SIGTERM / Ctrl-C.
pub async fn run() -> anyhow::Result<()> {
    voxguard::init_tracing();
    let data_dir =
        std::env::var("VOXGUARD_DATA_DIR").unwrap_or_else(|_| "./voxguard-data".to_string());
    let agent = build_agent_with(
        Arc::new(Bank::demo()?),
        Departments::from_env(),
        limits_from_env()?,
    )?;
    let runtime = Runtime::from_env()?;
    let production = runtime.config().production;
    // SQLite files in the data directory, or PostgreSQL (+ Redis) shared by replicas when
    // VOXGUARD_DATABASE_URL is set; conversation records unless VOXGUARD_RECORDS=off.
    let state = voxguard::State::open_from_env(&data_dir, production).await?;
    let runtime = runtime.state(state).agent(agent);
    let running = runtime.bind().await?;
    println!(
        "bank agent listening on {}://{}/",
        running.scheme(),
        running.local_addr()
    );
    running.serve().await;
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("bank agent: {error:#}");
        std::process::exit(1);
    }
}
