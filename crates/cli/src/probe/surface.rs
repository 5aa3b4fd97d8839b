//! The HTTP surface of the webhooks: the body limit (one bounded oversized body per webhook
//! path), wrong methods (GET, PUT, DELETE), malformed JSON and whether its answer leaks
//! internals (stack traces, file paths, panics, SQL, tracebacks), and the security headers
//! (`Cache-Control: no-store`, `X-Content-Type-Options: nosniff`) on SWML and SWAIG answers.
//!
//! It owns those requests, their verdicts and the leak patterns ([`leak`]). None of its
//! requests carries a function token or any other secret-named query parameter (a webhook
//! whose token may be in its path is skipped), and the oversized body names a function that
//! cannot exist, so nothing can run. It must keep every body bounded
//! ([`OVERSIZED`] at most).

use std::sync::OnceLock;

use regex::Regex;
use reqwest::{Method, Url};

use super::{excerpt, Ctx, Severity};
use crate::agent::{mask, AgentError, Answer, Auth};

/// The size of the oversized body: 4 MiB more than the usual 1 MiB limit.
pub const OVERSIZED: usize = 5 * 1024 * 1024;

/// How long the oversized body may take to be sent and answered.
const OVERSIZED_WAIT: std::time::Duration = std::time::Duration::from_secs(4);

/// Bodies that are not valid JSON (or not UTF-8).
const MALFORMED: [&[u8]; 4] = [
    b"{\"function\": [",
    b"{\"function\":\"voxguard_probe\",\"argument\":{\"parsed\":[{",
    b"\xff\xfe{\"function\":1}",
    b"{\"function\": \"voxguard_probe\", \"argument\": 1e99999999}",
];

/// What internals `text` shows, if any: a panic, a backtrace, a traceback, a source path, an
/// SQL error.
pub fn leak(text: &str) -> Option<&'static str> {
    static PATTERNS: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        [
            (r"panicked at|stack backtrace|RUST_BACKTRACE", "a Rust panic or backtrace"),
            (r"Traceback \(most recent call last\)|File \x22[^\x22]+\x22, line \d+", "a Python traceback"),
            (r"\n\s+at [\w$.<>]+ \([^)]*:\d+:\d+\)|Exception in thread|java\.lang\.\w+", "a stack trace"),
            (r"(?:/home/|/usr/|/var/|/srv/|/opt/|/app/|/root/|[A-Za-z]:\\)[\w./\\-]+\.(?:rs|py|js|ts|go|java|rb|php)\b", "a source file path"),
            (r"\.(?:rs|py|js|ts|go|java|rb|php):\d+", "a source location"),
            (r"(?i)SQLSTATE|syntax error at or near|sqlite3?\.\w+Error|psycopg|ORA-\d{5}|SQLException|no such table", "an SQL error"),
        ]
        .into_iter()
        .filter_map(|(pattern, what)| Regex::new(pattern).ok().map(|regex| (regex, what)))
        .collect()
    });
    patterns
        .iter()
        .find(|(regex, _)| regex.is_match(text))
        .map(|(_, what)| *what)
}

/// A webhook path and the credentials it is called with.
struct Hook {
    url: Url,
    auth: Auth,
}

/// The name of a function no agent has: the oversized body names it, so that an agent
/// without token check or body limit has nothing to run.
const NO_SUCH_FUNCTION: &str = "voxguard_probe_no_such_function";

/// The distinct webhook paths (no secret-named query parameter; a path that may carry the
/// token is skipped with a note).
fn hooks(ctx: &mut Ctx) -> Vec<Hook> {
    super::webhook_routes(ctx)
        .into_iter()
        .take(super::MAX_ROUTES)
        .map(|(_, url, auth)| Hook { url, auth })
        .collect()
}

/// Body limit, methods, malformed JSON and headers.
pub async fn check(ctx: &mut Ctx) {
    headers_of_swml(ctx).await;
    for hook in hooks(ctx) {
        body_limit(ctx, &hook).await;
        methods(ctx, &hook).await;
        malformed(ctx, &hook).await;
    }
}

/// The security headers of one answer.
fn headers(ctx: &mut Ctx, what: &str, url: &Url, answer: &Answer, cache_severity: Severity) {
    let location = mask::url(url.as_str());
    let evidence = |name: &str| {
        format!(
            "{what} answer HTTP {}: {name}: {}",
            answer.status,
            answer.header(name).unwrap_or("(absent)")
        )
    };
    let no_store = answer
        .header("cache-control")
        .is_some_and(|value| value.to_ascii_lowercase().contains("no-store"));
    if !no_store {
        let evidence = evidence("Cache-Control");
        ctx.finding(
            "headers.cache_control",
            cache_severity,
            format!("the {what} answer lacks Cache-Control: no-store"),
            &location,
            &evidence,
        );
    }
    let nosniff = answer
        .header("x-content-type-options")
        .is_some_and(|value| value.eq_ignore_ascii_case("nosniff"));
    if !nosniff {
        let evidence = evidence("X-Content-Type-Options");
        ctx.finding(
            "headers.nosniff",
            Severity::Low,
            format!("the {what} answer lacks X-Content-Type-Options: nosniff"),
            &location,
            &evidence,
        );
    }
}

/// The SWML answer's headers (it carries credentials and tokens: no-store matters most).
async fn headers_of_swml(ctx: &mut Ctx) {
    let url = ctx.target.url.clone();
    let body = ctx.call.body().to_string().into_bytes();
    match ctx
        .send(Method::POST, &url, &Auth::Target, Some(body))
        .await
    {
        Ok(answer) => headers(ctx, "SWML", &url, &answer, Severity::Medium),
        Err(err) => ctx.note(format!("the SWML header check got no answer: {err}")),
    }
}

/// One oversized body: 413 or a closed connection is right, anything else read it.
async fn body_limit(ctx: &mut Ctx, hook: &Hook) {
    let prefix = format!(
        "{{\"function\":\"{NO_SUCH_FUNCTION}\",\"call_id\":\"{}\",\"argument\":{{\"parsed\":[{{\"voxguard_probe\":{{}}}}]}},\"pad\":\"",
        ctx.call.call_id
    );
    let mut body = Vec::with_capacity(OVERSIZED);
    body.extend_from_slice(prefix.as_bytes());
    body.resize(OVERSIZED - 2, b'a');
    body.extend_from_slice(b"\"}");
    let location = mask::url(hook.url.as_str());
    // Sent directly: a connection closed mid-body is a refusal, not an unanswered webhook.
    ctx.report.requests += 1;
    let headers = [("content-type", "application/json")];
    let sent = tokio::time::timeout(
        OVERSIZED_WAIT,
        ctx.target
            .send(Method::POST, &hook.url, &hook.auth, &headers, Some(body)),
    )
    .await;
    let Ok(sent) = sent else {
        // An agent that answers early without reading the rest, and keeps the connection
        // open, leaves the client writing: it did not read the body.
        ctx.note(format!(
            "{location}: the {} MiB body got no answer within {} s (the agent stopped reading \
             it, or is slow to read it): the body-limit check is inconclusive",
            OVERSIZED / (1024 * 1024),
            OVERSIZED_WAIT.as_secs()
        ));
        return;
    };
    match sent {
        Ok(answer) if answer.status == 413 => {}
        Ok(answer) => {
            let evidence = ctx.evidence(
                "POST",
                &hook.url,
                &format!("(a {} MiB JSON body)", OVERSIZED / (1024 * 1024)),
                &answer,
            );
            ctx.finding(
                "limits.body",
                Severity::Medium,
                format!(
                    "a {} MiB body is read and answered {} instead of 413",
                    OVERSIZED / (1024 * 1024),
                    answer.status
                ),
                &location,
                &evidence,
            );
        }
        Err(AgentError::Timeout { .. }) => ctx.note(format!(
            "{location}: the oversized body got no answer in time (neither 413 nor a closed \
             connection): the body-limit check is inconclusive"
        )),
        // The agent closed the connection while the body was sent: a refusal.
        Err(_) => {}
    }
}

/// GET, PUT and DELETE on the webhook must not be served.
async fn methods(ctx: &mut Ctx, hook: &Hook) {
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let Ok(answer) = ctx.send(method.clone(), &hook.url, &hook.auth, None).await else {
            continue;
        };
        let evidence = ctx.evidence(method.as_str(), &hook.url, "", &answer);
        let location = mask::url(hook.url.as_str());
        if (200..300).contains(&answer.status) {
            ctx.finding(
                "http.method",
                Severity::Medium,
                format!("the webhook answers {} to {method}", answer.status),
                &location,
                &evidence,
            );
        }
        if let Some(what) = leak(&answer.text()) {
            ctx.finding(
                "errors.leak",
                Severity::Medium,
                format!("the answer to {method} shows {what}"),
                &location,
                &evidence,
            );
        }
    }
}

/// Malformed bodies: no 2xx, no internals; the first answer's headers are checked.
async fn malformed(ctx: &mut Ctx, hook: &Hook) {
    let location = mask::url(hook.url.as_str());
    let mut headers_checked = false;
    for body in MALFORMED {
        let Ok(answer) = ctx
            .send(Method::POST, &hook.url, &hook.auth, Some(body.to_vec()))
            .await
        else {
            continue;
        };
        let sent = excerpt(&String::from_utf8_lossy(body), 80);
        let evidence = ctx.evidence("POST", &hook.url, &sent, &answer);
        if !headers_checked {
            headers(ctx, "SWAIG", &hook.url, &answer, Severity::Low);
            headers_checked = true;
        }
        if let Some(what) = leak(&answer.text()) {
            ctx.finding(
                "errors.leak",
                Severity::Medium,
                format!("the answer to malformed JSON shows {what}"),
                &location,
                &evidence,
            );
        }
        if (200..300).contains(&answer.status) {
            ctx.finding(
                "errors.malformed_accepted",
                Severity::Low,
                format!("malformed JSON is answered {}", answer.status),
                &location,
                &evidence,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::leak;

    #[test]
    fn internals_are_recognised_and_plain_refusals_are_not() {
        for text in [
            "thread 'tokio-runtime-worker' panicked at src/main.rs:10:5",
            "Traceback (most recent call last):\n  File \"/srv/app.py\", line 42, in handler",
            "Error: x\n    at Object.handler (/app/index.js:12:7)",
            "psycopg2.errors.SyntaxError: syntax error at or near \"FROM\"",
            "failed to open /home/agent/src/db.rs",
        ] {
            assert!(leak(text).is_some(), "{text}");
        }
        for text in [
            r#"{"error":"malformed_json","response":"The request body is not valid JSON."}"#,
            "expected value at line 1 column 13",
            r#"{"error":"invalid_argument","field":"pin","rule":"pattern"}"#,
        ] {
            assert!(leak(text).is_none(), "{text}");
        }
    }
}
