//! The reference shop agent — card payments in PCI mode. A stable contract like the bank agent's:
//! used by the docs (docs/payments.md), the end-to-end tests and the benchmarks.
//!
//! Run it with `cargo run --example shop_agent`. Environment (the bank agent's, plus a gateway):
//! - `VOXGUARD_HOST` (default 127.0.0.1), `VOXGUARD_PORT` (default 3000), route `/`;
//! - `SWML_BASIC_AUTH_USER` / `SWML_BASIC_AUTH_PASSWORD` (generated and printed when unset);
//! - `VOXGUARD_DATA_DIR` (default `./voxguard-data`): sessions (`voxguard.db`, where carts and
//!   pending payments live), the audit trail (`audit.db`) and the encrypted conversation
//!   records (`records.db`; `VOXGUARD_RECORDS_KEY`, `VOXGUARD_RECORDS=off`, docs/records.md);
//! - `VOXGUARD_PAYMENT_GATEWAY`: `test` (default, the deterministic [`TestGateway`]) or
//!   `stripe` ([`StripeGateway::from_env`]: `VOXGUARD_STRIPE_SECRET_KEY`, and
//!   `VOXGUARD_STRIPE_API_BASE` to point it at a Stripe-compatible API);
//! - `VOXGUARD_SERVE` (`all`, `agent` or `connector`) with `VOXGUARD_PAYMENT_CONNECTOR_URL` and
//!   `VOXGUARD_DATABASE_URL` to run the payment connector on its own host (docs/payments.md):
//!   the `agent` host never sees a card and holds no gateway secret.
//!
//! Catalog: `MUG-01` $12.50, `TEE-02` $25.00, `CAP-03` $18.00.
//!
//! The flow: `add_to_cart` keeps the cart in the call's server-side session; `checkout` asks
//! the platform to collect the card (the `pay` verb) for the total of *that* cart — the LLM
//! never names an amount; the platform posts the card to this agent's payment connector
//! (`/pay`), which charges the gateway and records the outcome server-side; `confirm_payment`
//! reads that outcome (never the LLM's account of `${pay_result}`) and marks the order paid;
//! `order_status` answers for the orders placed during this call. PCI mode pauses a call
//! recording around card collection; card numbers and security codes are never stored, logged
//! or audited — only brand, last four, expiry and the gateway's charge id.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use voxguard::payments::gateway::{PaymentGateway, RemoteConnector, StripeGateway, TestGateway};
use voxguard::payments::{PaymentRequest, PaymentStatus};
use voxguard::prelude::*;
use voxguard::{AgentBuilder, AgentError, Compliance};

/// The demo catalog: SKU, name, price in cents.
pub const CATALOG: [(&str, &str, u64); 3] = [
    ("MUG-01", "Example Shop mug", 1250),
    ("TEE-02", "Example Shop T-shirt", 2500),
    ("CAP-03", "Example Shop cap", 1800),
];

/// Session key holding the call's cart (SKU → quantity).
pub const CART: &str = "cart";
/// Session key holding the order waiting for its payment.
pub const PENDING_ORDER: &str = "pending_order";
/// Session key holding the ids of the orders placed during the call.
pub const ORDERS: &str = "orders";
/// Most units of one SKU a cart holds.
pub const MAX_QTY_PER_SKU: u32 = 10;

/// How far an order got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderState {
    /// Checked out; the card has not been charged yet.
    AwaitingPayment,
    /// The connector charged the card.
    Paid,
}

/// One order: what was bought, for how much, and how the payment went (brand and last four
/// only, never the card number).
#[derive(Debug, Clone)]
pub struct Order {
    /// `ORD-` + 8 characters.
    pub id: String,
    /// SKU → quantity.
    pub items: BTreeMap<String, u32>,
    /// The total in cents, from the catalog prices.
    pub total_cents: u64,
    /// How far it got.
    pub state: OrderState,
    /// The gateway's charge id, once paid.
    pub charge_id: Option<String>,
    /// The card as `visa ending 4242`, once paid.
    pub card: Option<String>,
}

/// The demo shop: the catalog and the orders placed with it.
#[derive(Default)]
pub struct Shop {
    orders: Mutex<HashMap<String, Order>>,
}

impl Shop {
    /// An empty shop with the demo catalog.
    pub fn demo() -> Self {
        Self::default()
    }

    /// The price of `sku` in cents.
    pub fn price(sku: &str) -> Option<u64> {
        CATALOG
            .iter()
            .find(|(s, _, _)| *s == sku)
            .map(|(_, _, cents)| *cents)
    }

    /// A copy of order `id`.
    pub fn order(&self, id: &str) -> Option<Order> {
        self.orders.lock().ok()?.get(id).cloned()
    }

    fn insert(&self, order: Order) -> Result<(), ToolError> {
        self.orders
            .lock()
            .map_err(|_| ToolError::internal("orders lock poisoned"))?
            .insert(order.id.clone(), order);
        Ok(())
    }
}

/// The gateway named by `VOXGUARD_PAYMENT_GATEWAY`: `test` (default) or `stripe`.
pub fn gateway_from_env() -> anyhow::Result<Arc<dyn PaymentGateway>> {
    let serve = std::env::var("VOXGUARD_SERVE").unwrap_or_default();
    if serve.trim().eq_ignore_ascii_case("agent") {
        // The connector (and the gateway's secret) lives on another host: this one never
        // charges, it only records what to charge in the shared state.
        return Ok(Arc::new(RemoteConnector));
    }
    let name = std::env::var("VOXGUARD_PAYMENT_GATEWAY").unwrap_or_else(|_| "test".into());
    match name.trim().to_ascii_lowercase().as_str() {
        "" | "test" => Ok(Arc::new(TestGateway::new())),
        "stripe" => Ok(Arc::new(StripeGateway::from_env()?)),
        _ => anyhow::bail!("VOXGUARD_PAYMENT_GATEWAY must be \"test\" or \"stripe\""),
    }
}

#[derive(Deserialize, JsonSchema)]
struct AddToCart {
    /// The product code: MUG-01, TEE-02 or CAP-03.
    #[schemars(regex(pattern = r"^[A-Z]{3}-[0-9]{2}$"))]
    sku: String,
    /// How many to add, 1 to 10.
    #[schemars(range(min = 1, max = 10))]
    qty: u32,
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

#[derive(Deserialize, JsonSchema)]
struct OrderStatus {
    /// The order id, e.g. ORD-ABCD2345.
    #[schemars(regex(pattern = r"^ORD-[A-Z0-9]{8}$"))]
    order_id: String,
}

/// The order waiting for its payment, as kept in the session.
#[derive(Serialize, Deserialize)]
struct PendingOrder {
    order_id: String,
    total_cents: u64,
}

/// Format cents as `$1,234.56`.
pub fn dollars(cents: u64) -> String {
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("${grouped}.{:02}", cents % 100)
}

fn new_order_id() -> String {
    use rand::Rng;
    // No 0/O or 1/I: the id is read out on the phone.
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..8)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("ORD-{tail}")
}

fn cart_total(cart: &BTreeMap<String, u32>) -> Option<u64> {
    cart.iter().try_fold(0u64, |total, (sku, qty)| {
        total.checked_add(Shop::price(sku)?.checked_mul(u64::from(*qty))?)
    })
}

/// The shop agent's declaration, unbuilt (tests add a call recording to it, for instance).
pub fn agent_builder(shop: Arc<Shop>, gateway: Arc<dyn PaymentGateway>) -> AgentBuilder {
    Agent::builder("shop")
        .route("/")
        .prompt_section(
            "Role",
            "You are the phone assistant of Example Shop. You help callers put products in their cart, pay for them and check on their orders.",
        )
        .prompt_bullets(
            "Shop rules",
            [
                "Products: MUG-01 mug $12.50, TEE-02 T-shirt $25.00, CAP-03 cap $18.00.",
                "Never ask for card details out loud: checkout collects them securely on the keypad.",
                "After the card is collected, call confirm_payment; only its answer says whether the order is paid.",
            ],
        )
        .security_rules("Example Shop orders: the cart, paying for it by card on the keypad and the status of an order")
        .post_prompt("Summarize the call in two sentences without any card details.")
        .language(Language::new("English", "en-US", "rime.spore"))
        .hints(["mug", "T-shirt", "cap", "checkout"])
        .global_data("shop_name", "Example Shop")
        .compliance(Compliance::PCI)
        .payments(gateway)
        .tool(add_to_cart())
        .tool(checkout(shop.clone()))
        .tool(confirm_payment(shop.clone()))
        .tool(order_status(shop))
}

/// The shop agent's declaration, charging through `gateway`.
pub fn build_agent(shop: Arc<Shop>, gateway: Arc<dyn PaymentGateway>) -> Result<Agent, AgentError> {
    agent_builder(shop, gateway).build()
}

fn add_to_cart() -> Tool {
    Tool::typed(
        "add_to_cart",
        "Add a product to the caller's cart",
        |args: AddToCart, ctx: CallContext| async move {
            let Some(price) = Shop::price(&args.sku) else {
                return Ok(FunctionResult::new(
                    "We don't sell that product; we have MUG-01, TEE-02 and CAP-03.",
                ));
            };
            let mut cart: BTreeMap<String, u32> =
                ctx.session().get(CART).await?.unwrap_or_default();
            let qty = cart.get(&args.sku).copied().unwrap_or(0) + args.qty;
            if qty > MAX_QTY_PER_SKU {
                return Ok(FunctionResult::new(format!(
                    "A cart holds at most {MAX_QTY_PER_SKU} of one product."
                )));
            }
            cart.insert(args.sku.clone(), qty);
            ctx.session().set(CART, &cart).await?;
            let total =
                cart_total(&cart).ok_or_else(|| ToolError::internal("cart total overflows"))?;
            Ok(FunctionResult::new(format!(
                "Added {} of {} at {} each. Your cart total is {}.",
                args.qty,
                args.sku,
                dollars(price),
                dollars(total)
            )))
        },
    )
}

fn checkout(shop: Arc<Shop>) -> Tool {
    Tool::typed(
        "checkout",
        "Collect the card payment for the caller's cart",
        move |_: NoArgs, ctx: CallContext| {
            let shop = shop.clone();
            async move {
                let cart: BTreeMap<String, u32> =
                    ctx.session().get(CART).await?.unwrap_or_default();
                if cart.is_empty() {
                    return Err(ToolError::refuse(
                        "cart_empty",
                        "The cart is empty; add a product before checking out.",
                    ));
                }
                // The amount is the server's: the cart's catalog prices, never a number the
                // LLM (or the caller through it) supplies.
                let total =
                    cart_total(&cart).ok_or_else(|| ToolError::internal("cart total overflows"))?;
                let order_id = new_order_id();
                let request =
                    PaymentRequest::new(total, "usd", format!("Example Shop order {order_id}"))
                        .map_err(|error| {
                            ToolError::internal(format!("payment request refused: {error}"))
                        })?;
                shop.insert(Order {
                    id: order_id.clone(),
                    items: cart,
                    total_cents: total,
                    state: OrderState::AwaitingPayment,
                    charge_id: None,
                    card: None,
                })?;
                let mut orders: Vec<String> = ctx.session().get(ORDERS).await?.unwrap_or_default();
                orders.push(order_id.clone());
                ctx.session().set(ORDERS, &orders).await?;
                ctx.session()
                    .set(
                        PENDING_ORDER,
                        &PendingOrder {
                            order_id,
                            total_cents: total,
                        },
                    )
                    .await?;
                Ok(ctx.request_payment(&request).await?)
            }
        },
    )
}

fn confirm_payment(shop: Arc<Shop>) -> Tool {
    Tool::typed(
        "confirm_payment",
        "Check whether the card payment for the order went through",
        move |_: NoArgs, ctx: CallContext| {
            let shop = shop.clone();
            async move {
                let Some(pending) = ctx.session().get::<PendingOrder>(PENDING_ORDER).await? else {
                    return Ok(FunctionResult::new(
                        "There is no order waiting for a payment.",
                    ));
                };
                // What the connector recorded server-side; whatever the LLM says happened
                // to `${pay_result}` does not count.
                let outcome = ctx.payment_outcome().await?;
                let Some(outcome) = outcome.filter(|o| {
                    o.status == PaymentStatus::Charged && o.amount_cents == pending.total_cents
                }) else {
                    return Ok(FunctionResult::new(format!(
                        "The payment for order {} has not gone through; the card was not charged. You can try checkout again.",
                        pending.order_id
                    )));
                };
                let card = format!(
                    "{} ending {}",
                    outcome.brand.as_deref().unwrap_or("card"),
                    outcome.last4.as_deref().unwrap_or("????")
                );
                {
                    let mut orders = shop
                        .orders
                        .lock()
                        .map_err(|_| ToolError::internal("orders lock poisoned"))?;
                    let order = orders
                        .get_mut(&pending.order_id)
                        .ok_or_else(|| ToolError::internal("pending order is not on file"))?;
                    order.state = OrderState::Paid;
                    order.charge_id = outcome.gateway_id.clone();
                    order.card = Some(card.clone());
                }
                ctx.session().remove(CART).await?;
                ctx.session().remove(PENDING_ORDER).await?;
                Ok(FunctionResult::new(format!(
                    "Payment received: order {} is paid, {} charged to the {card}.",
                    pending.order_id,
                    dollars(outcome.amount_cents)
                )))
            }
        },
    )
}

fn order_status(shop: Arc<Shop>) -> Tool {
    Tool::typed(
        "order_status",
        "Tell the caller the status of an order placed during this call",
        move |args: OrderStatus, ctx: CallContext| {
            let shop = shop.clone();
            async move {
                // Only the orders of this call: an order id said on the phone is no proof of
                // whose order it is.
                let mine: Vec<String> = ctx.session().get(ORDERS).await?.unwrap_or_default();
                let order = mine
                    .contains(&args.order_id)
                    .then(|| shop.order(&args.order_id))
                    .flatten();
                Ok(FunctionResult::new(match order {
                    None => "I can't find that order in this call.".to_string(),
                    Some(order) => match order.state {
                        OrderState::AwaitingPayment => format!(
                            "Order {} ({}) is waiting for its payment.",
                            order.id,
                            dollars(order.total_cents)
                        ),
                        OrderState::Paid => format!(
                            "Order {} ({}) is paid and being prepared for shipping.",
                            order.id,
                            dollars(order.total_cents)
                        ),
                    },
                }))
            }
        },
    )
}

/// Start the shop agent from the environment and serve until SIGTERM / Ctrl-C.
pub async fn run() -> anyhow::Result<()> {
    voxguard::init_tracing();
    let data_dir =
        std::env::var("VOXGUARD_DATA_DIR").unwrap_or_else(|_| "./voxguard-data".to_string());
    let agent = build_agent(Arc::new(Shop::demo()), gateway_from_env()?)?;
    let runtime = Runtime::from_env()?;
    let production = runtime.config().production;
    // Conversation records (summaries, transcripts, tool logs, payment outcomes) unless
    // VOXGUARD_RECORDS=off; PostgreSQL (+ Redis) when VOXGUARD_DATABASE_URL is set.
    let state = voxguard::State::open_from_env(&data_dir, production).await?;
    let runtime = runtime.state(state).agent(agent);
    let running = runtime.bind().await?;
    println!(
        "shop agent listening on {}://{}/",
        running.scheme(),
        running.local_addr()
    );
    running.serve().await;
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("shop agent: {error:#}");
        std::process::exit(1);
    }
}
