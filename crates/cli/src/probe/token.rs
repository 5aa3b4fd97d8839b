//! Per-function token enforcement: for every function whose rendered webhook URL carries a
//! token, a call without it, with it tampered (one character changed), with the same
//! function's token from another call, and with another function's token.
//!
//! It owns those requests and their verdicts: a run is critical; a refusal for another reason
//! than the token (arguments, policy) means the token is not checked first; a token refusal
//! answered with 2xx hides attacks from monitoring. By default the arguments are ones the
//! declared schema rejects, so nothing real runs even on an agent that checks no token; a
//! function whose arguments cannot be made invalid is skipped (a note) unless `--allow-calls`.
//! It must never send the function's valid token with valid arguments outside `--allow-calls`.

use serde_json::Value;

use super::schema::Declared;
use super::{excerpt, refused, with_token, Ctx, Severity};
use crate::agent::{mask, CallState, Function, Reply};

/// `token` with one character changed (in the middle, so that a signature check must see it).
pub fn tamper(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let start = chars.len() / 2;
    let position = (start..chars.len())
        .chain(0..start)
        .find(|&i| chars[i].is_ascii_alphanumeric());
    if let Some(i) = position {
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    } else {
        chars.push('A');
    }
    chars.into_iter().collect()
}

/// Whether `reply` is a refusal about the token (or the credentials): 401 or 403, or an
/// `error` reason naming the token — never an answer that carries actions, and never a 2xx
/// merely mentioning "token" somewhere in its body.
fn token_refusal(reply: &Reply) -> bool {
    if !reply.actions.is_empty() {
        return false;
    }
    matches!(reply.status, 401 | 403)
        || reply
            .refusal
            .as_ref()
            .is_some_and(|refusal| refusal.reason.to_ascii_lowercase().contains("token"))
}

/// The reply's body as text.
pub fn reply_text(reply: &Reply) -> String {
    match &reply.text {
        Some(text) => text.clone(),
        None => reply.body.to_string(),
    }
}

/// One line of evidence for a SWAIG call.
pub fn evidence(ctx: &Ctx, function: &Function, args: &Value, reply: &Reply) -> String {
    let url = function
        .webhook
        .as_deref()
        .map(mask::url)
        .unwrap_or_default();
    ctx.secrets.mask(&format!(
        "POST {url} {}({}) → HTTP {} {}",
        function.name,
        excerpt(&args.to_string(), 120),
        reply.status,
        excerpt(&reply_text(reply), 240)
    ))
}

/// Where a function is: its webhook path and name.
pub fn location(function: &Function) -> String {
    let url = function
        .webhook
        .as_deref()
        .and_then(|url| url::Url::parse(url).ok())
        .map(|url| mask::url(super::without_token(&url).as_str()))
        .unwrap_or_default();
    format!("{url} function {}", function.name)
}

/// Every token case of every function with a token.
pub async fn check(ctx: &mut Ctx) {
    let functions = ctx.rendered.functions.clone();
    let with_tokens = functions
        .iter()
        .filter(|f| f.token.is_some() && f.webhook.is_some())
        .count();
    if with_tokens == 0 && !functions.is_empty() {
        ctx.note(
            "no function carries a token in its webhook URL: the token checks did not run (an \
             agent whose functions act on a caller's behalf should mint per-call tokens)"
                .into(),
        );
    }
    for function in &functions {
        let (Some(token), Some(webhook)) = (&function.token, &function.webhook) else {
            continue;
        };
        let Ok(url) = url::Url::parse(webhook) else {
            continue;
        };
        let declared = Declared::of(function);
        let invalid = declared.as_ref().and_then(|d| d.invalid_args());
        let args = if ctx.allow_calls {
            // Valid arguments prove most; the maximally invalid ones when no valid set can be
            // built.
            declared.as_ref().and_then(|d| d.valid_args()).or(invalid)
        } else {
            invalid
        };
        let Some(args) = args else {
            ctx.note(format!(
                "{}: the bad-token checks were skipped: {}",
                function.name,
                if ctx.allow_calls {
                    "no arguments could be built from its declared schema"
                } else {
                    "its arguments cannot be made invalid, so a call could run it on an agent \
                     that checks no token; --allow-calls sends them with valid arguments (test \
                     agents only)"
                }
            ));
            continue;
        };
        let tampered = tamper(token);
        ctx.secrets.add(&tampered);
        let mut cases: Vec<(&'static str, &'static str, Option<String>)> = vec![
            ("token.missing", "without its token", None),
            ("token.tampered", "with a tampered token", Some(tampered)),
        ];
        let other_call = ctx
            .other
            .as_ref()
            .and_then(|other| other.function(&function.name))
            .and_then(|other| other.token.clone())
            .filter(|other| other != token);
        match other_call {
            Some(other) => {
                cases.push(("token.cross_call", "with another call's token", Some(other)))
            }
            None if ctx.other.is_some() => ctx.note(format!(
                "{}: the second render gave no different token: the cross-call check was skipped",
                function.name
            )),
            None => {}
        }
        let other_function = functions
            .iter()
            .filter(|f| f.name != function.name)
            .find_map(|f| f.token.clone().filter(|t| t != token));
        if let Some(other) = other_function {
            cases.push((
                "token.cross_function",
                "with another function's token",
                Some(other),
            ));
        }
        let state = CallState::new(ctx.call.clone(), &ctx.rendered, None);
        for (id, how, bad) in cases {
            let mut probe = function.clone();
            probe.webhook = Some(with_token(&url, bad.as_deref()).to_string());
            let reply = match ctx.invoke(&probe, &args, &state).await {
                Ok(reply) => reply,
                Err(err) => {
                    ctx.note(format!(
                        "{}: the {id} check got no answer: {err}",
                        function.name
                    ));
                    continue;
                }
            };
            judge(ctx, id, how, &probe, &args, &reply);
        }
        if ctx.allow_calls {
            // The control call: the valid token with the same valid arguments must get past
            // the token check, or the refusals above prove nothing.
            if let Ok(reply) = ctx.invoke(function, &args, &state).await {
                if token_refusal(&reply) {
                    let evidence = evidence(ctx, function, &args, &reply);
                    ctx.note(format!(
                        "{}: the control call with the valid token was refused too, so its \
                         token results are inconclusive: {evidence}",
                        function.name
                    ));
                }
            }
        }
    }
}

/// The verdict on one bad-token call.
fn judge(
    ctx: &mut Ctx,
    id: &'static str,
    how: &str,
    function: &Function,
    args: &Value,
    reply: &Reply,
) {
    let evidence = evidence(ctx, function, args, reply);
    let location = location(function);
    let is_2xx = (200..300).contains(&reply.status);
    if token_refusal(reply) {
        if is_2xx {
            ctx.finding(
                "token.refusal_status",
                Severity::Low,
                format!(
                    "{} refuses a bad token with HTTP {} instead of 403",
                    function.name, reply.status
                ),
                &location,
                &evidence,
            );
        }
        return;
    }
    if !refused(reply) {
        ctx.finding(
            id,
            Severity::Critical,
            format!("{} runs {how}", function.name),
            &location,
            &evidence,
        );
    } else if reply.status == 429 {
        ctx.note(format!(
            "{}: the {id} check was rate limited (429) before the token was judged",
            function.name
        ));
    } else {
        let reason = reply
            .refusal
            .as_ref()
            .map_or_else(|| format!("HTTP {}", reply.status), |r| r.reason.clone());
        ctx.finding(
            "token.not_checked_first",
            Severity::Medium,
            format!(
                "{} called {how} is refused for another reason ({reason}): the token is not \
                 checked first",
                function.name
            ),
            &location,
            &evidence,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::swaig::Refusal;
    use crate::agent::Decoded;
    use serde_json::json;

    fn reply(status: u16, body: Value, reason: Option<&str>, actions: bool) -> Reply {
        Reply {
            status,
            body,
            text: None,
            refusal: reason.map(|reason| Refusal {
                reason: reason.into(),
                sentence: None,
            }),
            response: None,
            actions: if actions {
                vec![Decoded {
                    kind: "say".into(),
                    detail: "say".into(),
                    raw: Value::Null,
                }]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn a_token_refusal_needs_a_status_or_a_reason_and_no_actions() {
        assert!(token_refusal(&reply(403, Value::Null, None, false)));
        assert!(token_refusal(&reply(
            200,
            Value::Null,
            Some("token_invalid"),
            false
        )));
        // A 2xx that only mentions a token is an answer, not a refusal.
        let chatty = json!({"response": "Your token balance is 10."});
        assert!(!token_refusal(&reply(200, chatty, None, false)));
        // Actions are never a refusal, whatever the reason says.
        assert!(!token_refusal(&reply(
            200,
            Value::Null,
            Some("token_invalid"),
            true
        )));
        assert!(!refused(&reply(200, Value::Null, Some("error"), true)));
        assert!(refused(&reply(200, Value::Null, Some("error"), false)));
        assert!(refused(&reply(500, Value::Null, None, false)));
    }

    #[test]
    fn tampering_changes_exactly_one_character() {
        for token in ["abc.def.ghi", "AAAA", "x", "..."] {
            let tampered = tamper(token);
            assert_ne!(tampered, token);
            let diff = token
                .chars()
                .zip(tampered.chars())
                .filter(|(a, b)| a != b)
                .count();
            assert!(diff <= 1, "{token} → {tampered}");
        }
    }
}
