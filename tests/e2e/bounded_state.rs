//! What a flood of distinct callers and calls leaves behind in a real server (issue 9, item 2):
//! the reference bank agent runs as a child process, 100,000 SWAIG calls arrive, each with its
//! own caller number, call id and SWML render (valid tokens, minted with the agent's configured
//! key), most of them beyond the global rate limit — and the child's resident memory is read
//! from `/proc` before and after. Per-key limiter state is capped and caller numbers are bounded,
//! so growth stays under the bound the test's name states.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use futures_util::StreamExt as _;
use serde_json::json;
use voxguard::guard::{KeyRing, TokenKey};

use crate::util::bank_process::*;

/// The child's resident set size in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_distinct_callers_and_calls_grow_rss_under_64_mib() {
    let key = BASE64.encode([0x42_u8; 32]);
    let bank = start_bank_agent(&[
        ("SWML_BASIC_AUTH_USER", BANK_USER),
        ("SWML_BASIC_AUTH_PASSWORD", BANK_PASSWORD),
        ("VOXGUARD_TOKEN_KEY", key.as_str()),
    ])
    .await;
    // The bank agent's (on `/`) ring, as the runtime derives it from the configured key.
    let keys = KeyRing::new(TokenKey::from_base64(&key).expect("key")).for_agent("/");
    let client = reqwest::Client::new();
    let url = bank.url("/swaig");
    let send = |i: u32| {
        let call_id = format!("flood-{i}");
        let token = keys.mint_with_session(&call_id, "transfer_to_department", &format!("r{i}"));
        let request = client
            .post(format!("{url}?__token={token}"))
            .basic_auth(BANK_USER, Some(BANK_PASSWORD))
            .json(&json!({
                "function": "transfer_to_department",
                "call_id": call_id,
                "caller_id_num": format!("+1555{i:07}"),
                "argument": {"parsed": [{"department": "support"}]},
            }));
        async move { request.send().await.map(|r| r.status().as_u16()) }
    };
    let flood = |range: std::ops::Range<u32>| {
        futures_util::stream::iter(range.map(send))
            .buffer_unordered(16)
            .fold([0_u32; 3], |mut tally, status| async move {
                match status {
                    Ok(200) => tally[0] += 1,
                    Ok(429) => tally[1] += 1,
                    _ => tally[2] += 1,
                }
                tally
            })
    };
    let warm = flood(0..2_000).await;
    assert_eq!(
        warm[2], 0,
        "every warm-up call answered 200 or 429: {warm:?}"
    );
    let before = rss_kib(bank.pid());
    let tally = flood(2_000..100_000).await;
    let after = rss_kib(bank.pid());
    assert_eq!(tally[2], 0, "every call answered 200 or 429: {tally:?}");
    assert!(
        tally[0] > 0 && tally[1] > 0,
        "some served, the rest limited: {tally:?}"
    );
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!("98,000 distinct callers: RSS {before} KiB -> {after} KiB; answers {tally:?}");
    assert!(
        grown_mib < 64,
        "RSS grew {grown_mib} MiB ({before} KiB → {after} KiB) over 98,000 distinct callers"
    );

    // The review's reproduction: 150 calls whose "caller number" is a megabyte each. Such a
    // number is an unknown caller, never a rate-limit key that lives for minutes.
    let huge: String = "7".repeat(1_000_000);
    let before = rss_kib(bank.pid());
    for i in 0..150_u32 {
        let call_id = format!("huge-{i}");
        let token = keys.mint_with_session(&call_id, "transfer_to_department", "huge");
        let status = client
            .post(format!("{url}?__token={token}"))
            .basic_auth(BANK_USER, Some(BANK_PASSWORD))
            .json(&json!({
                "function": "transfer_to_department",
                "call_id": call_id,
                "caller_id_num": huge,
                "argument": {"parsed": [{"department": "support"}]},
            }))
            .send()
            .await
            .expect("answered")
            .status()
            .as_u16();
        assert!(status == 200 || status == 429, "{status}");
    }
    let after = rss_kib(bank.pid());
    eprintln!("150 megabyte caller numbers: RSS {before} KiB -> {after} KiB");
    assert!(
        after.saturating_sub(before) / 1024 < 32,
        "RSS grew {} MiB over 150 megabyte caller numbers",
        after.saturating_sub(before) / 1024
    );
    let (status, stderr) = bank.terminate().await;
    assert!(status.success(), "clean exit: {stderr}");
}
