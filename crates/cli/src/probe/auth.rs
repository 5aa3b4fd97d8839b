//! Authentication and transport checks: every route the SWML reveals (the SWML URL itself,
//! each distinct webhook path, `post_prompt_url`) is asked with no credentials, a wrong
//! password, and the known password minus its last character and plus one more; and the URLs
//! themselves are checked for credentials or tokens sent over plain http to a non-loopback host.
//!
//! It owns those requests and their verdicts. A webhook request carries no function token and,
//! where the declared schema allows it, invalid arguments, so even an agent without any
//! authentication runs nothing real. It must not send a valid password it was not given.

use reqwest::{Method, Url};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::schema::Declared;
use super::{add_credentials, hook_route, is_loopback, without_token, Ctx, Severity};
use crate::agent::mask;
use crate::agent::{Auth, CallState};

/// A route to knock on.
struct Route {
    /// What it is (`SWML`, `webhook`, `post_prompt_url`).
    what: &'static str,
    /// Where (no token).
    url: Url,
    /// The credentials it is called with (from its URL, else the target's).
    auth: Auth,
    /// The body of a request to it.
    body: Value,
}

/// Plain http: the target itself and every URL the SWML renders.
pub fn transport(ctx: &mut Ctx) {
    let url = ctx.target.url.clone();
    if url.scheme() == "http" {
        if is_loopback(&url) {
            ctx.note(format!(
                "{} is plain http on a loopback address: fine for a local test setup, never \
                 for production",
                mask::url(url.as_str())
            ));
        } else {
            let (severity, what) = if ctx.target.credentials().is_some() {
                (Severity::High, "with Basic credentials ")
            } else {
                (Severity::Medium, "")
            };
            ctx.finding(
                "transport.plain_http",
                severity,
                format!("the agent is reached {what}over plain http on a non-loopback host"),
                url.as_str(),
                &format!("SWML URL {}", mask::url(url.as_str())),
            );
        }
    }
    let mut loopback_note = false;
    for rendered in ctx.rendered.urls() {
        let Ok(parsed) = Url::parse(&rendered) else {
            continue;
        };
        let secret = parsed.password().is_some()
            || parsed
                .query_pairs()
                .any(|(key, _)| key == "__token" || key == "token");
        if parsed.scheme() != "http" || !secret {
            continue;
        }
        if is_loopback(&parsed) {
            loopback_note = true;
        } else {
            ctx.finding(
                "transport.plain_http_credentials",
                Severity::High,
                "the SWML tells the platform to send credentials or a token over plain http".into(),
                &mask::url(without_token(&parsed).as_str()),
                &format!("rendered web_hook_url {}", mask::url(&rendered)),
            );
        }
    }
    if loopback_note {
        ctx.note(
            "webhook URLs carry credentials over plain http to a loopback address (a local test \
             setup; render https URLs in production)"
                .into(),
        );
    }
}

/// The routes of the rendered SWML, deduplicated by path (at most [`super::MAX_ROUTES`]).
fn routes(ctx: &mut Ctx) -> Vec<Route> {
    let mut routes = vec![Route {
        what: "SWML",
        url: ctx.target.url.clone(),
        auth: Auth::Target,
        body: ctx.call.body(),
    }];
    let state = CallState::new(ctx.call.clone(), &ctx.rendered, None);
    for (function, url, auth) in super::webhook_routes(ctx) {
        if routes.iter().any(|route| route.url == url) {
            continue;
        }
        // The maximally invalid arguments where the schema allows it, else an unknown
        // function: nothing a weak agent could run for real.
        let args = Declared::of(&function).and_then(|declared| declared.invalid_args());
        let body = match args {
            Some(args) => state.request_body(&function, &args),
            None => {
                let mut body = state.request_body(&function, &json!({}));
                body["function"] = json!("voxguard_probe_no_such_function");
                body
            }
        };
        routes.push(Route {
            what: "webhook",
            url,
            auth,
            body,
        });
    }
    if let Some(post) = ctx.rendered.post_prompt_url.clone() {
        if let Ok((url, auth)) = ctx.target.webhook(&post) {
            match hook_route(&url) {
                None => path_note(ctx, &url),
                Some(url) if !routes.iter().any(|route| route.url == url) => {
                    routes.push(Route {
                    what: "post_prompt_url",
                    url,
                    auth,
                    body: json!({
                        "call_id": ctx.call.call_id,
                        "post_prompt_data": {"raw": "voxguard probe", "substituted": "voxguard probe"},
                    }),
                    });
                }
                Some(_) => {}
            }
        }
    }
    if routes.len() > super::MAX_ROUTES {
        ctx.note(format!(
            "only the first {} of {} routes were checked for authentication",
            super::MAX_ROUTES,
            routes.len()
        ));
        routes.truncate(super::MAX_ROUTES);
    }
    routes
}

/// The note for a webhook whose token may be in its path: the token-less checks skip it.
pub fn path_note(ctx: &mut Ctx, url: &reqwest::Url) {
    ctx.note(format!(
        "{}: the webhook URL has no token query parameter, so its path may carry one; the \
         credential, method, malformed-JSON and body-limit checks were not sent to it",
        mask::url(url.as_str())
    ));
}

/// Missing, wrong and prefix passwords on every route.
pub async fn check(ctx: &mut Ctx) {
    for route in routes(ctx) {
        let known: Option<(String, Zeroizing<String>)> = match &route.auth {
            Auth::Basic(user, password) => Some((user.clone(), password.clone())),
            _ => ctx
                .target
                .credentials()
                .map(|(user, password)| (user.to_string(), Zeroizing::new(password.to_string()))),
        };
        let user = known
            .as_ref()
            .map_or_else(|| "voxguard-probe".to_string(), |(user, _)| user.clone());
        if let Some((user, password)) = &known {
            add_credentials(&mut ctx.secrets, user, password);
        }
        let wrong = format!("voxguard-probe-wrong-{:08x}", rand::random::<u32>());
        add_credentials(&mut ctx.secrets, &user, &wrong);
        let mut cases: Vec<(&'static str, &'static str, Auth)> = vec![
            ("auth.missing_credentials", "no credentials", Auth::None),
            (
                "auth.wrong_password",
                "a wrong password",
                Auth::Basic(user.clone(), Zeroizing::new(wrong)),
            ),
        ];
        match &known {
            Some((_, password)) if password.chars().count() >= 2 => {
                let mut shorter = password.to_string();
                shorter.pop();
                add_credentials(&mut ctx.secrets, &user, &shorter);
                cases.push((
                    "auth.prefix_password",
                    "the password minus its last character",
                    Auth::Basic(user.clone(), Zeroizing::new(shorter)),
                ));
                let longer = format!("{}x", password.as_str());
                add_credentials(&mut ctx.secrets, &user, &longer);
                cases.push((
                    "auth.prefix_password",
                    "the password plus one character",
                    Auth::Basic(user.clone(), Zeroizing::new(longer)),
                ));
            }
            Some(_) => {}
            None => ctx.note(format!(
                "no credentials known for {}: only the missing and wrong password checks ran",
                mask::url(route.url.as_str())
            )),
        }
        let sent = route.body.to_string();
        for (id, how, auth) in cases {
            let answer = match ctx
                .send(
                    Method::POST,
                    &route.url,
                    &auth,
                    Some(sent.clone().into_bytes()),
                )
                .await
            {
                Ok(answer) => answer,
                Err(err) => {
                    ctx.note(format!(
                        "the {id} check of {} got no answer: {err}",
                        route.url
                    ));
                    continue;
                }
            };
            let evidence = ctx.evidence("POST", &route.url, &sent, &answer);
            let location = mask::url(route.url.as_str());
            let text = answer.text().to_ascii_lowercase();
            match answer.status {
                401 | 407 => {}
                403 if !text.contains("token") => {}
                200..=299 => ctx.finding(
                    id,
                    Severity::Critical,
                    format!(
                        "the {} route answers {} with {how}",
                        route.what, answer.status
                    ),
                    &location,
                    &evidence,
                ),
                status => ctx.finding(
                    id,
                    Severity::Medium,
                    format!(
                        "the {} route answers {status} (not 401) with {how}: the request is \
                         processed before the credentials are checked",
                        route.what
                    ),
                    &location,
                    &evidence,
                ),
            }
        }
    }
}
