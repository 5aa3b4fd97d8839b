//! End-to-end flows of the reference bank agent (`examples/bank_agent.rs`) over real HTTP:
//! tokens on every tool, PIN verification held server-side (with attempts left and a lockout),
//! policy refusals before verification, balances, transfers with a read-back confirmation and
//! the phone-channel cap, the admin role, argument refusals and the department transfer action.

// `manual_is_multiple_of`: the example's `dollars` trips this lint on current clippy because the
// root package does not declare its MSRV (1.85, before `is_multiple_of`); not this file's to fix.
#[allow(dead_code, unknown_lints, clippy::manual_is_multiple_of)]
#[path = "../../examples/bank_agent.rs"]
mod example;

use std::sync::Arc;

use crate::util::{functions, swml_schema_path, token_for, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use voxguard_swml::conformance::SchemaChecker;

const JOHN: &str = "+15551234567";
const JANE: &str = "+15559876543";
const STRANGER: &str = "+15550000000";
const BILLING: &str = "+15557770003";

/// The runtime's `verification_required` sentence (a policy refusal: the handler never runs).
const NOT_VERIFIED: &str =
    "I need to verify the caller's identity before I can do that. Please ask for their PIN first.";
const TWO_LEFT: &str = "That didn't match our records. You have 2 attempts left.";
const ONE_LEFT: &str = "That didn't match our records. You have one attempt left.";
const TOOLS: [&str; 5] = [
    "verify_pin",
    "get_balance",
    "transfer_funds",
    "admin_action",
    "transfer_to_department",
];
/// Tools rendered `active: false` until `verify_pin` switches them on.
const INACTIVE_UNTIL_VERIFIED: [&str; 2] = ["get_balance", "transfer_funds"];

fn departments() -> example::Departments {
    example::Departments {
        support: "+15557770001".into(),
        sales: "+15557770002".into(),
        billing: BILLING.into(),
    }
}

async fn bank_server() -> TestServer {
    let bank = Arc::new(example::Bank::demo().expect("demo bank"));
    let agent = example::build_agent(bank, departments()).expect("bank agent builds");
    TestServer::start(vec![agent], |_| {}).await
}

/// One phone call: the SWML fetched for it and the caller's number.
struct Call<'a> {
    server: &'a TestServer,
    call_id: String,
    caller: String,
    swml: Value,
}

impl<'a> Call<'a> {
    async fn start(server: &'a TestServer, call_id: &str, caller: &str) -> Self {
        let swml = server.swml("/", call_id).await;
        Self {
            server,
            call_id: call_id.to_string(),
            caller: caller.to_string(),
            swml,
        }
    }

    /// Call `function` with the token rendered for it in this call's SWML.
    async fn invoke(&self, function: &str, args: Value) -> (StatusCode, Value) {
        let token = token_for(&self.swml, function)
            .unwrap_or_else(|| panic!("{function} has a token in the SWML"));
        self.server
            .swaig(
                "/",
                function,
                &self.call_id,
                &self.caller,
                args,
                Some(&token),
            )
            .await
    }

    /// The response sentence of a successful call.
    async fn say(&self, function: &str, args: Value) -> String {
        let (status, reply) = self.invoke(function, args).await;
        assert_eq!(status, StatusCode::OK, "{function}: {reply}");
        assert!(reply.get("error").is_none(), "{function}: {reply}");
        reply["response"]
            .as_str()
            .unwrap_or_else(|| panic!("{function} answers a sentence: {reply}"))
            .to_string()
    }

    /// A refusal with HTTP 200: returns the whole reply after checking `error` is `reason`.
    async fn refused(&self, function: &str, args: Value, reason: &str) -> Value {
        let (status, reply) = self.invoke(function, args).await;
        assert_eq!(status, StatusCode::OK, "{function}: {reply}");
        assert_eq!(reply["error"], reason, "{function}: {reply}");
        assert!(
            reply.get("action").is_none(),
            "{function}: a refusal carries no action: {reply}"
        );
        reply
    }

    async fn verify(&self, pin: &str) -> String {
        self.say("verify_pin", json!({ "pin": pin })).await
    }

    async fn balance(&self) -> String {
        self.say("get_balance", json!({})).await
    }

    /// `get_balance` refused with `verification_required` and the runtime's sentence.
    async fn balance_refused(&self) {
        let reply = self
            .refused("get_balance", json!({}), "verification_required")
            .await;
        assert_eq!(reply["response"], NOT_VERIFIED);
    }

    /// Read `args` back (`confirmation_required`), then confirm them; returns the second reply.
    async fn transfer_confirmed(&self, args: Value) -> (StatusCode, Value) {
        self.refused("transfer_funds", args.clone(), "confirmation_required")
            .await;
        let mut confirmed = args;
        confirmed["confirmed"] = json!(true);
        self.invoke("transfer_funds", confirmed).await
    }
}

fn assert_invalid(status: StatusCode, reply: &Value, field: &str) {
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["error"], "invalid_argument", "{reply}");
    assert_eq!(reply["field"], field, "{reply}");
    assert!(
        reply["response"].as_str().is_some_and(|s| !s.is_empty()),
        "{reply}"
    );
}

/// `^Transferred \$100\.00 to account ending 7890\. Confirmation: TXN-[0-9A-F]{8}\.$`
fn is_transfer_confirmation(sentence: &str) -> bool {
    sentence
        .strip_prefix("Transferred $100.00 to account ending 7890. Confirmation: TXN-")
        .and_then(|rest| rest.strip_suffix('.'))
        .is_some_and(|code| {
            code.len() == 8
                && code
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        })
}

#[test]
fn transfer_confirmation_matcher_is_strict() {
    assert!(is_transfer_confirmation(
        "Transferred $100.00 to account ending 7890. Confirmation: TXN-0A1B2C3D."
    ));
    for wrong in [
        "Transferred $100.00 to account ending 7890. Confirmation: TXN-0a1b2c3d.",
        "Transferred $100.00 to account ending 7890. Confirmation: TXN-0A1B2C3.",
        "Transferred $100.00 to account ending 7890. Confirmation: TXN-0A1B2C3D",
        "Transferred $10.00 to account ending 7890. Confirmation: TXN-0A1B2C3D.",
        "Transferred $100.00 to account ending 1111117890. Confirmation: TXN-0A1B2C3D.",
    ] {
        assert!(!is_transfer_confirmation(wrong), "{wrong}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_swml_lists_every_tool_with_a_token_and_conforms() {
    let server = bank_server().await;
    let swml = server.swml("/", "call-bank-swml").await;
    let list = functions(&swml);
    let names: Vec<&str> = list.iter().filter_map(|f| f["function"].as_str()).collect();
    assert_eq!(names, TOOLS);
    for tool in TOOLS {
        let token = token_for(&swml, tool).unwrap_or_else(|| panic!("{tool} has a token"));
        assert_eq!(
            server
                .keys
                .for_agent("/")
                .verify(&token, "call-bank-swml", tool),
            Ok(()),
            "{tool}'s token is bound to this call and function"
        );
        let rendered = list.iter().find(|f| f["function"] == tool).expect(tool);
        if INACTIVE_UNTIL_VERIFIED.contains(&tool) {
            assert_eq!(rendered["active"], false, "{tool} starts inactive");
        } else {
            assert!(rendered.get("active").is_none(), "{tool}: {rendered}");
        }
    }
    let transfer = list
        .iter()
        .find(|f| f["function"] == "transfer_funds")
        .expect("transfer_funds");
    let properties = &transfer["parameters"]["properties"];
    let amount = &properties["amount"];
    assert!(amount.get("maximum").is_none() && amount.get("exclusiveMinimum").is_none());
    assert!(
        amount.get("x-currency").is_none(),
        "voxguard's keyword is not rendered"
    );
    let description = amount["description"].as_str().expect("description");
    assert!(
        description.contains("greater than 0") && description.contains("two decimal places"),
        "{description}"
    );
    assert!(
        !description.contains("10000"),
        "the phone cap is a business rule, not a schema maximum: {description}"
    );
    // The runtime adds the confirmation flag to tools that need a read-back.
    assert_eq!(properties["confirmed"]["type"], "boolean", "{transfer}");
    let required = transfer["parameters"]["required"]
        .as_array()
        .expect("required");
    assert!(!required.contains(&json!("confirmed")), "{transfer}");
    SchemaChecker::from_path(swml_schema_path())
        .expect("schema loads")
        .check_document(&swml)
        .expect("bank SWML conforms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_before_verification_asks_for_the_pin() {
    let server = bank_server().await;
    let call = Call::start(&server, "call-unverified", JOHN).await;
    call.balance_refused().await;
    let reply = call
        .refused(
            "transfer_funds",
            json!({"amount": 100, "to_account": "1111117890"}),
            "verification_required",
        )
        .await;
    assert_eq!(reply["response"], NOT_VERIFIED);
    let reply = call
        .refused(
            "transfer_funds",
            json!({"amount": 100, "to_account": "1111117890", "confirmed": true}),
            "verification_required",
        )
        .await;
    assert_eq!(reply["response"], NOT_VERIFIED);
    // Nothing moved: after verifying, John still has his full balance.
    let (status, verified) = call.invoke("verify_pin", json!({"pin": "4321"})).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(
        verified["response"],
        "Thank you, John. Your identity is verified."
    );
    // The success switches the inactive tools on and tells the conversation.
    assert_eq!(
        verified["action"],
        json!([
            {"set_global_data": {"verified": true}},
            {"toggle_functions": [
                {"function": "get_balance", "active": true},
                {"function": "transfer_funds", "active": true}
            ]}
        ]),
        "{verified}"
    );
    assert_eq!(call.balance().await, "Your balance is $150.00.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pin_and_unknown_caller_get_the_same_neutral_sentence() {
    let server = bank_server().await;
    let john = Call::start(&server, "call-wrong-pin", JOHN).await;
    let stranger = Call::start(&server, "call-stranger", STRANGER).await;

    let (status, wrong_pin) = john.invoke("verify_pin", json!({"pin": "9999"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, unknown) = stranger.invoke("verify_pin", json!({"pin": "4321"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        wrong_pin, unknown,
        "the answer does not reveal whether the caller exists"
    );
    let sentence = wrong_pin["response"].as_str().expect("sentence");
    assert_eq!(sentence, TWO_LEFT);
    assert!(!sentence.contains("John") && !sentence.to_lowercase().contains("exist"));
    assert!(
        wrong_pin.get("action").is_none(),
        "no global_data change: {wrong_pin}"
    );

    // Unknown callers are counted like customers: the second answers match as well.
    let (_, wrong_pin) = john.invoke("verify_pin", json!({"pin": "9998"})).await;
    let (_, unknown) = stranger.invoke("verify_pin", json!({"pin": "4322"})).await;
    assert_eq!(wrong_pin, unknown);
    assert_eq!(wrong_pin["response"], ONE_LEFT, "{wrong_pin}");

    john.balance_refused().await;
    stranger.balance_refused().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_wrong_pin_locks_the_customer_out_across_calls() {
    let server = bank_server().await;
    let first = Call::start(&server, "call-lock-1", JOHN).await;
    assert_eq!(first.verify("1111").await, TWO_LEFT);
    assert_eq!(first.verify("2222").await, ONE_LEFT);
    let (status, locked) = first.invoke("verify_pin", json!({"pin": "3333"})).await;
    assert_eq!(status, StatusCode::OK, "{locked}");
    assert!(
        locked["response"].as_str().unwrap_or("").contains("locked"),
        "{locked}"
    );
    assert_eq!(locked["action"], json!([{"hangup": true}]), "{locked}");
    assert_eq!(locked["post_process"], true, "{locked}");

    // Calling back does not reset the count: even the right PIN is refused, with a hangup.
    let second = Call::start(&server, "call-lock-2", JOHN).await;
    let (status, again) = second.invoke("verify_pin", json!({"pin": "4321"})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["response"], locked["response"], "{again}");
    assert_eq!(again["action"], json!([{"hangup": true}]), "{again}");
    second.balance_refused().await;

    // The lockout is John's, not the bank's: Jane still verifies.
    let jane = Call::start(&server, "call-lock-jane", JANE).await;
    assert_eq!(
        jane.verify("8765").await,
        "Thank you, Jane. Your identity is verified."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_caller_checks_balance_and_transfers_funds() {
    let server = bank_server().await;
    let call = Call::start(&server, "call-john", JOHN).await;

    let (status, verified) = call.invoke("verify_pin", json!({"pin": "4321"})).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(
        verified["response"],
        "Thank you, John. Your identity is verified."
    );
    assert_eq!(call.balance().await, "Your balance is $150.00.");

    // The first call reads the transfer back; nothing moves until it is confirmed.
    let transfer = json!({"amount": 100, "to_account": "1111117890"});
    let read_back = call
        .refused("transfer_funds", transfer.clone(), "confirmation_required")
        .await;
    assert_eq!(
        read_back["response"],
        "You're about to transfer $100.00 to account ending 7890. Please say confirm to proceed."
    );
    assert_eq!(call.balance().await, "Your balance is $150.00.");

    let sentence = call
        .say(
            "transfer_funds",
            json!({"amount": 100, "to_account": "1111117890", "confirmed": true}),
        )
        .await;
    assert!(
        is_transfer_confirmation(&sentence),
        "unexpected confirmation: {sentence:?}"
    );
    assert_eq!(call.balance().await, "Your balance is $50.00.");

    // Not enough left for a second transfer; nothing changes.
    let (status, reply) = call.transfer_confirmed(transfer).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(reply.get("error").is_none(), "{reply}");
    let sentence = reply["response"].as_str().expect("sentence");
    assert!(!sentence.starts_with("Transferred"), "{sentence}");
    assert!(sentence.contains("not enough funds"), "{sentence}");
    assert_eq!(call.balance().await, "Your balance is $50.00.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_confirmation_binds_the_amount_and_is_used_once() {
    let server = bank_server().await;
    let call = Call::start(&server, "call-confirm", JOHN).await;
    call.verify("4321").await;

    // Confirming without a read-back only asks for one, and records nothing.
    let reply = call
        .refused(
            "transfer_funds",
            json!({"amount": 10, "to_account": "1111117890", "confirmed": true}),
            "confirmation_required",
        )
        .await;
    assert!(
        reply["response"]
            .as_str()
            .unwrap_or("")
            .contains("without confirmed"),
        "{reply}"
    );
    // Read $10 back, then confirm a different amount: refused, nothing moves, and the $140
    // must itself be read back before it could run.
    let reply = call
        .refused(
            "transfer_funds",
            json!({"amount": 10, "to_account": "1111117890"}),
            "confirmation_required",
        )
        .await;
    assert!(
        reply["response"].as_str().unwrap_or("").contains("$10.00"),
        "{reply}"
    );
    call.refused(
        "transfer_funds",
        json!({"amount": 140, "to_account": "1111117890", "confirmed": true}),
        "confirmation_mismatch",
    )
    .await;
    call.refused(
        "transfer_funds",
        json!({"amount": 140, "to_account": "1111117890", "confirmed": true}),
        "confirmation_required",
    )
    .await;
    assert_eq!(call.balance().await, "Your balance is $150.00.");

    let confirmed = json!({"amount": 10, "to_account": "1111117890", "confirmed": true});
    call.refused(
        "transfer_funds",
        json!({"amount": 10, "to_account": "1111117890"}),
        "confirmation_required",
    )
    .await;
    let sentence = call.say("transfer_funds", confirmed.clone()).await;
    assert!(sentence.starts_with("Transferred $10.00"), "{sentence}");
    // A replayed confirmation does not move money twice.
    call.refused("transfer_funds", confirmed, "confirmation_required")
        .await;
    assert_eq!(call.balance().await, "Your balance is $140.00.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_over_the_phone_cap_need_additional_verification() {
    let server = bank_server().await;
    let call = Call::start(&server, "call-big-transfer", JANE).await;
    call.verify("8765").await;
    for amount in [json!(10000.01), json!(250000)] {
        let (status, reply) = call
            .transfer_confirmed(json!({"amount": amount, "to_account": "1111117890"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        assert_eq!(
            reply["error"], "additional_verification_required",
            "{reply}"
        );
        assert!(
            reply["response"]
                .as_str()
                .unwrap_or("")
                .contains("additional verification"),
            "{reply}"
        );
        assert!(reply.get("action").is_none(), "{reply}");
    }
    // Exactly the cap is a normal transfer (Jane has enough).
    let (status, reply) = call
        .transfer_confirmed(json!({"amount": 10000, "to_account": "1111117890"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(reply.get("error").is_none(), "{reply}");
    assert!(
        reply["response"]
            .as_str()
            .unwrap_or("")
            .contains("not enough funds"),
        "Jane has $2,500.00: {reply}"
    );
    let (_, reply) = call
        .transfer_confirmed(json!({"amount": 2500, "to_account": "1111117890"}))
        .await;
    assert!(
        reply["response"]
            .as_str()
            .unwrap_or("")
            .starts_with("Transferred $2,500.00"),
        "{reply}"
    );
    assert_eq!(call.balance().await, "Your balance is $0.00.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jane_sees_her_own_balance_and_verification_stays_in_its_call() {
    let server = bank_server().await;
    let jane = Call::start(&server, "call-jane", JANE).await;
    assert_eq!(
        jane.verify("4321").await,
        TWO_LEFT,
        "John's PIN does not open Jane's account"
    );
    assert_eq!(
        jane.verify("8765").await,
        "Thank you, Jane. Your identity is verified."
    );
    assert_eq!(jane.balance().await, "Your balance is $2,500.00.");

    // Another call from the same number starts unverified.
    let second = Call::start(&server, "call-jane-2", JANE).await;
    second.balance_refused().await;
    // The success reset Jane's counter: a wrong PIN on the new call has two attempts left.
    assert_eq!(second.verify("0000").await, TWO_LEFT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_action_needs_the_role_a_verified_allow_listed_caller_gets() {
    let server = bank_server().await;
    let action = json!({"action": "close ticket 42"});

    // Jane's number alone grants nothing: caller ID is spoofable.
    let jane = Call::start(&server, "call-admin-jane", JANE).await;
    jane.refused("admin_action", action.clone(), "forbidden")
        .await;
    jane.verify("8765").await;
    assert_eq!(
        jane.say("admin_action", action.clone()).await,
        "The administrative action has been recorded."
    );

    // A verified customer who is not on the allow-list has no role.
    let john = Call::start(&server, "call-admin-john", JOHN).await;
    john.verify("4321").await;
    let reply = john.refused("admin_action", action, "forbidden").await;
    assert_eq!(
        reply["response"],
        "I'm sorry, I can't do that for this caller."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_global_data_does_not_verify_the_caller() {
    let server = bank_server().await;
    let swml = server.swml("/", "call-forged").await;
    let token = token_for(&swml, "get_balance").expect("token");
    for forged in [
        json!({"verified": true}),
        json!({"pin_verified": true}),
        json!({"verified": true, "pin_verified": true, "customer_id": "cust_001",
               "customer_name": "John"}),
    ] {
        let body = json!({
            "function": "get_balance",
            "call_id": "call-forged",
            "caller_id_num": JOHN,
            "global_data": forged,
            "argument": {"parsed": [{}], "raw": "{}"},
        });
        let (status, reply) = server
            .post_json(&format!("/swaig?__token={token}"), body)
            .await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        assert_eq!(
            reply["error"], "verification_required",
            "forged {forged}: {reply}"
        );
        assert_eq!(reply["response"], NOT_VERIFIED, "forged {forged}: {reply}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_funds_refuses_invalid_amounts_and_accounts() {
    let server = bank_server().await;
    let call = Call::start(&server, "call-invalid-transfer", JOHN).await;
    call.verify("4321").await;
    let cases = [
        (
            json!({"amount": 0, "to_account": "1111117890"}),
            "amount",
            "exclusiveMinimum",
        ),
        (
            json!({"amount": -5, "to_account": "1111117890"}),
            "amount",
            "exclusiveMinimum",
        ),
        (
            json!({"amount": 10.001, "to_account": "1111117890"}),
            "amount",
            "x-currency",
        ),
        (
            json!({"amount": "ten", "to_account": "1111117890"}),
            "amount",
            "type",
        ),
        (
            json!({"amount": 10, "to_account": "123"}),
            "to_account",
            "pattern",
        ),
        (
            json!({"amount": 10, "to_account": "11111178901"}),
            "to_account",
            "pattern",
        ),
        (json!({"amount": 10}), "to_account", "required"),
    ];
    for (index, (args, field, rule)) in cases.into_iter().enumerate() {
        let (status, reply) = call.invoke("transfer_funds", args.clone()).await;
        assert_invalid(status, &reply, field);
        assert_eq!(reply["rule"], rule, "{args}: {reply}");
        let sentence = reply["response"].as_str().unwrap_or_default();
        assert!(!sentence.contains("10.001") && !sentence.contains("123 "));
        // Validation comes before the read-back: `confirmed` changes nothing. (Checked for two
        // cases only: transfer_funds allows 10 calls a minute per caller, refused ones included.)
        if index == 2 || index == 4 {
            let mut confirmed = args.clone();
            confirmed["confirmed"] = json!(true);
            let (status, reply) = call.invoke("transfer_funds", confirmed).await;
            assert_invalid(status, &reply, field);
            assert_eq!(reply["rule"], rule, "{args}: {reply}");
        }
    }
    assert_eq!(
        call.balance().await,
        "Your balance is $150.00.",
        "no refused transfer moved money"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_pin_refuses_malformed_pins() {
    let server = bank_server().await;
    let call = Call::start(&server, "call-bad-pin", JOHN).await;
    for pin in [json!("12"), json!("abcd"), json!("123456789"), json!(4321)] {
        let (status, reply) = call.invoke("verify_pin", json!({ "pin": pin })).await;
        assert_invalid(status, &reply, "pin");
    }
    let (status, reply) = call.invoke("verify_pin", json!({})).await;
    assert_invalid(status, &reply, "pin");
    call.balance_refused().await;
    // Refused arguments spent no attempts: a wrong PIN still has two left after it.
    assert_eq!(call.verify("9999").await, TWO_LEFT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_to_billing_connects_to_the_configured_number() {
    let server = bank_server().await;
    let call = Call::start(&server, "call-billing", STRANGER).await;
    let (status, reply) = call
        .invoke("transfer_to_department", json!({"department": "billing"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["response"], "Transferring you to billing now.");
    assert_eq!(reply["post_process"], true);
    let actions = reply["action"].as_array().expect("actions");
    assert_eq!(actions.len(), 1, "{reply}");
    assert_eq!(
        actions[0]["SWML"],
        json!({"version": "1.0.0", "sections": {"main": [{"connect": {"to": BILLING}}]}})
    );
    SchemaChecker::from_path(swml_schema_path())
        .expect("schema loads")
        .check_response(&reply)
        .expect("transfer response conforms");

    let (status, reply) = call
        .invoke("transfer_to_department", json!({"department": "sales"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        reply["action"][0]["SWML"]["sections"]["main"][0]["connect"]["to"],
        "+15557770002"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_to_unknown_department_is_refused() {
    let server = bank_server().await;
    let call = Call::start(&server, "call-legal", JOHN).await;
    for department in [json!("legal"), json!("Billing"), json!(3)] {
        let (status, reply) = call
            .invoke(
                "transfer_to_department",
                json!({ "department": department }),
            )
            .await;
        assert_invalid(status, &reply, "department");
        assert!(reply.get("action").is_none(), "no connect: {reply}");
    }
    let (status, reply) = call.invoke("transfer_to_department", json!({})).await;
    assert_invalid(status, &reply, "department");
}
