//! `voxguard probe`: a black-box security probe of any SWML/SWAIG agent over real HTTP. It
//! renders the SWML for a call, learns the routes and functions from it, and checks
//! authentication, function tokens, argument validation, limits, methods, error leaks,
//! security headers, transport, slow clients and TLS ([`auth`], [`token`], [`validation`],
//! [`surface`], [`slow`], [`tls`]); [`report`] shows what it found.
//!
//! It owns the command's arguments, the order of the checks and the shared context (target,
//! rendered calls, known secrets, the report). Safety is its first rule: without
//! `--allow-calls` it sends only requests that must be refused — no valid token, or arguments
//! that the function's own declared schema rejects *and* no lax handler could act on (`{}`,
//! or declared arguments with object or `null` values, never valid values beside them) — so a
//! production agent never runs a real action. Every request is bounded in size, count and time. It must never print a secret:
//! evidence goes through [`Secrets::mask`].

mod auth;
mod report;
mod schema;
mod slow;
mod surface;
mod tls;
mod token;
mod validation;

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Method, Url};

use crate::agent::mask::{self, Secrets};
use crate::agent::{
    AgentError, Answer, Auth, CallSpec, CallState, Function, Rendered, Reply, Target, TargetArgs,
};
use crate::cmd;
use crate::Exit;
use base64::Engine as _;
pub use report::{Report, Severity};

/// `probe --help`: safety, examples, exit codes.
pub const PROBE_AFTER_HELP: &str = "\
SAFETY: by default the probe only sends requests that the agent must refuse, with arguments no
handler could act on: calls without a valid function token, and calls whose arguments are `{}`
or a declared argument alone with an object value (null for a boolean), never valid values
next to it. It never sends a valid token together with valid arguments, so probing a
production agent does not move money, transfer a call or change data. Checks that would need
such a call or values a lax handler may coerce (out-of-range, pattern, enum and boundary
values, a bad token with valid arguments, undeclared arguments, a control call) are skipped
and listed as notes; --allow-calls enables them, for test agents only. Every request is bounded: at most a few per function and route, one body of
5 MiB per webhook path, and --slow-connections connections for at most --slow-secs seconds.

Checks (stable ids, see docs/cli.md): auth.missing_credentials, auth.wrong_password,
auth.prefix_password, token.missing, token.tampered, token.cross_call, token.cross_function,
token.not_checked_first, token.refusal_status, validation.type_confusion,
validation.missing_required, validation.out_of_range, validation.undeclared, limits.body,
http.method, errors.leak, errors.malformed_accepted, headers.cache_control, headers.nosniff,
transport.plain_http, transport.plain_http_credentials, slow.headers, slow.starvation,
tls.certificate, tls.protocol.

Examples:
  voxguard probe http://127.0.0.1:3000/ --user bank-operator      (password from SWML_BASIC_AUTH_PASSWORD)
  voxguard probe https://user:pass@agent.example.com/ --sarif > probe.sarif
  voxguard probe https://agent.test:8443/ --ca-cert test-ca.pem --json --slow-secs 6
  voxguard probe http://127.0.0.1:3000/ --allow-calls              (test agents only)

Exit codes: 0 no finding; 11 worst finding low; 12 medium; 13 high; 14 critical;
2 bad arguments; 3 internal error; 4 the agent is unreachable, refused the given credentials
or did not answer SWML, or (without findings) most webhook requests got no answer (try
--same-origin).";

/// `voxguard probe …`
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Also send calls that may run a function (a valid token with valid arguments). Never
    /// against a production agent: such a call can move money.
    #[arg(long)]
    allow_calls: bool,
    /// JSON output.
    #[arg(long, conflicts_with = "sarif")]
    json: bool,
    /// SARIF 2.1.0 output (for code-scanning dashboards).
    #[arg(long)]
    sarif: bool,
    /// How long slow clients are kept up, in seconds; the agent must close them sooner
    /// (0 skips the slow-client check).
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    slow_secs: u64,
    /// How many slow connections to open (at most 64).
    #[arg(long, default_value_t = 32, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    slow_connections: u16,
}

/// The most functions probed (the rest are listed as a note).
const MAX_FUNCTIONS: usize = 32;
/// The most distinct routes probed for authentication.
const MAX_ROUTES: usize = 8;

/// Everything the checks share.
pub struct Ctx {
    /// The agent.
    pub target: Target,
    /// The call the probe plays.
    pub call: CallSpec,
    /// Its rendered SWML.
    pub rendered: Rendered,
    /// A second call's rendered SWML (for cross-call tokens).
    pub other: Option<Rendered>,
    /// Secrets to mask in evidence.
    pub secrets: Secrets,
    /// `--allow-calls`.
    pub allow_calls: bool,
    /// `--ca-cert` (the probe's own TLS connections trust it too).
    pub ca_cert: Option<std::path::PathBuf>,
    /// What was found.
    pub report: Report,
}

impl Ctx {
    /// Record a finding of rule `id` (masked, then cleaned and bounded by [`Report::add`]).
    pub fn finding(
        &mut self,
        id: &'static str,
        severity: Severity,
        title: String,
        location: &str,
        evidence: &str,
    ) {
        let (title, location, evidence) = (
            self.secrets.mask(&title),
            self.secrets.mask(location),
            self.secrets.mask(evidence),
        );
        self.report.add(id, severity, title, location, evidence);
    }

    /// Record an informational note (masked, then cleaned and bounded by [`Report::note`]).
    pub fn note(&mut self, text: String) {
        let text = self.secrets.mask(&text);
        self.report.note(text);
    }

    /// Send one request (counted; a request to a webhook counts towards
    /// [`Report::hooks_sent`] and, when answered, [`Report::hooks_answered`]).
    pub async fn send(
        &mut self,
        method: Method,
        url: &Url,
        auth: &Auth,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, AgentError> {
        self.report.requests += 1;
        let headers: &[(&str, &str)] = if body.is_some() {
            &[("content-type", "application/json")]
        } else {
            &[]
        };
        let answer = self.target.send(method, url, auth, headers, body).await;
        if *url != self.target.url {
            self.report.hooks_sent += 1;
            self.report.hooks_answered += usize::from(answer.is_ok());
        }
        answer
    }

    /// Call `function` the way the platform does (counted as a webhook request).
    pub async fn invoke(
        &mut self,
        function: &Function,
        args: &serde_json::Value,
        state: &CallState,
    ) -> Result<Reply, AgentError> {
        self.report.requests += 1;
        self.report.hooks_sent += 1;
        let reply = self.target.invoke(function, args, state).await;
        self.report.hooks_answered += usize::from(reply.is_ok());
        reply
    }

    /// One line of evidence: the request and an excerpt of the answer, masked.
    pub fn evidence(&self, method: &str, url: &Url, sent: &str, answer: &Answer) -> String {
        let sent = excerpt(sent, 160);
        let got = excerpt(&answer.text(), 240);
        self.secrets.mask(&format!(
            "{method} {} {sent} → HTTP {} {got}",
            mask::url(url.as_str()),
            answer.status
        ))
    }
}

/// Whether the probe counts `reply` as a refusal: an error status or an `error` reason, and
/// no actions (an answer that carries actions did something, whatever else it says).
pub fn refused(reply: &Reply) -> bool {
    reply.refused() && reply.actions.is_empty()
}

/// Remember `user:password` — the password and its Basic header value — as secrets.
pub fn add_credentials(secrets: &mut Secrets, user: &str, password: &str) {
    secrets.add(password);
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}").as_bytes());
    secrets.add(&basic);
}

/// At most `max` characters of `text` on one line.
pub fn excerpt(text: &str, max: usize) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.chars().count() > max {
        let cut: String = line.chars().take(max).collect();
        format!("{cut}…")
    } else {
        line
    }
}

/// `url` without its token query parameters (`__token`, `token`).
pub fn without_token(url: &Url) -> Url {
    strip_query(url, |key| key == "__token" || key == "token")
}

/// `url` without any secret-named query parameter (`__token`, `access_token`, `sig`, …).
pub fn without_secrets(url: &Url) -> Url {
    strip_query(url, mask::is_secret_name)
}

/// Whether `url` carries a secret-named query parameter.
pub fn has_query_secret(url: &Url) -> bool {
    url.query_pairs().any(|(key, _)| mask::is_secret_name(&key))
}

/// `url` without the query parameters whose name matches `drop`.
fn strip_query(url: &Url, drop: impl Fn(&str) -> bool) -> Url {
    let mut bare = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| !drop(key))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.is_empty() {
        bare.set_query(None);
    } else {
        bare.query_pairs_mut().clear().extend_pairs(pairs);
    }
    bare
}

/// `url` with its token replaced by `token` (or removed, for `None`).
pub fn with_token(url: &Url, token: Option<&str>) -> Url {
    let mut out = without_token(url);
    if let Some(token) = token {
        out.query_pairs_mut().append_pair("__token", token);
    }
    out
}

/// The last path segment of a webhook URL that carries no secret-named query parameter: the
/// agent may put its token in the path (`/swaig/<token>`), so it is treated as a secret.
pub fn path_secret(url: &Url) -> Option<String> {
    if has_query_secret(url) {
        return None;
    }
    let segment = url.path_segments()?.rev().find(|s| !s.is_empty())?;
    let decoded = percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned();
    Some(decoded)
}

/// The webhook route to send token-less checks (credentials, methods, malformed JSON, the
/// body limit) to: `url` without its secret-named query parameters; `None` when its token may
/// be in the path ([`path_secret`]), since those requests must not carry it.
pub fn hook_route(url: &Url) -> Option<Url> {
    has_query_secret(url).then(|| without_secrets(url))
}

/// The distinct webhook routes of the rendered functions, each with the first function on it
/// and the credentials the platform would send: secret-named query parameters removed; a
/// route that may carry its token in its path is skipped with a note.
pub fn webhook_routes(ctx: &mut Ctx) -> Vec<(Function, Url, Auth)> {
    let mut routes: Vec<(Function, Url, Auth)> = Vec::new();
    let functions = ctx.rendered.functions.clone();
    for function in functions {
        let Some(webhook) = &function.webhook else {
            continue;
        };
        let Ok((url, auth)) = ctx.target.webhook(webhook) else {
            continue;
        };
        let Some(url) = hook_route(&url) else {
            auth::path_note(ctx, &url);
            continue;
        };
        if routes.iter().all(|(_, known, _)| *known != url) {
            routes.push((function, url, auth));
        }
    }
    routes
}

/// Whether `url`'s host is a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104,
/// localhost).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => false,
    }
}

/// A progress bar over the check families (hidden with --json/--sarif or off a terminal).
fn bar(shown: bool) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(7);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}

/// `voxguard probe`.
pub fn run(args: &ProbeArgs) -> Exit {
    cmd::block_on(async {
        let report = match probe(args).await {
            Ok(report) => report,
            Err(exit) => return exit,
        };
        let printed = if args.sarif {
            cmd::print_json(&report.sarif(), true)
        } else if args.json {
            cmd::print_json(&report.json(), false)
        } else {
            crate::print_stdout(&report.text())
        };
        if printed != Exit::Ok {
            return printed;
        }
        if report.hooks_unreachable() {
            eprintln!("warning: {}", report.unreachable_message());
        }
        report.exit()
    })
}

/// Run every check and return the report (or the exit of a fatal error).
async fn probe(args: &ProbeArgs) -> Result<Report, Exit> {
    let target = Target::new(&args.target).map_err(|err| cmd::agent_error(&err))?;
    let bar = bar(cmd::progress(args.json || args.sarif));
    let mut secrets = Secrets::default();
    if let Some((user, password)) = target.credentials() {
        add_credentials(&mut secrets, user, password);
    }
    let mut report = Report {
        target: target.shown(),
        ..Report::default()
    };

    // TLS first: without a trusted connection nothing else can be checked.
    bar.set_message("TLS");
    if target.url.scheme() == "https" {
        let wait = Duration::from_secs(args.target.timeout.max(1));
        let verdict = tls::check(
            &target.url,
            args.target.ca_cert.as_deref(),
            wait,
            &mut report,
        )
        .await;
        if !verdict {
            bar.finish_and_clear();
            return Ok(report);
        }
    }
    bar.inc(1);

    bar.set_message("rendering the SWML");
    let call = CallSpec::fresh();
    let mut rendered = target
        .render(&call)
        .await
        .map_err(|err| cmd::agent_error(&err))?;
    report.requests += 1;
    let other_call = call.another();
    let mut other = target.render(&other_call).await.ok();
    report.requests += 1;
    // Truncate first: everything below is linear in the functions kept.
    let skipped = rendered.functions.len().saturating_sub(MAX_FUNCTIONS);
    rendered.functions.truncate(MAX_FUNCTIONS);
    if let Some(other) = other.as_mut() {
        other.functions.truncate(MAX_FUNCTIONS);
    }
    for rendered in std::iter::once(&rendered).chain(other.as_ref()) {
        for url in rendered.urls() {
            let Ok(parsed) = Url::parse(&url) else {
                continue;
            };
            if let Some(password) = parsed.password() {
                let decoded = percent_encoding::percent_decode_str(password)
                    .decode_utf8_lossy()
                    .into_owned();
                let user = percent_encoding::percent_decode_str(parsed.username())
                    .decode_utf8_lossy()
                    .into_owned();
                add_credentials(&mut secrets, &user, &decoded);
                secrets.add(password);
            }
            for (name, value) in parsed.query_pairs() {
                if mask::is_secret_name(&name) {
                    secrets.add(&value);
                }
            }
            if let Some(segment) = path_secret(&parsed) {
                secrets.add(&segment);
            }
        }
        for function in &rendered.functions {
            for secret in function.token.iter().chain(&function.meta_data_token) {
                secrets.add(secret);
            }
        }
    }
    let mut ctx = Ctx {
        target,
        call,
        rendered,
        other,
        secrets,
        allow_calls: args.allow_calls,
        ca_cert: args.target.ca_cert.clone(),
        report,
    };
    if ctx.other.is_none() {
        ctx.note("a second SWML render failed: the cross-call token check was skipped".into());
    }
    if skipped > 0 {
        ctx.note(format!(
            "only the first {MAX_FUNCTIONS} functions were probed ({skipped} more skipped)"
        ));
    }
    if !ctx.rendered.has_ai {
        ctx.note("the SWML has no ai verb: no functions or webhooks to probe".into());
    }

    bar.set_message("transport");
    auth::transport(&mut ctx);
    bar.inc(1);
    bar.set_message("authentication");
    auth::check(&mut ctx).await;
    bar.inc(1);
    bar.set_message("function tokens");
    token::check(&mut ctx).await;
    bar.inc(1);
    bar.set_message("argument validation");
    validation::check(&mut ctx).await;
    bar.inc(1);
    bar.set_message("limits, methods, errors, headers");
    surface::check(&mut ctx).await;
    bar.inc(1);
    if args.slow_secs == 0 {
        ctx.note("the slow-client check was skipped (--slow-secs 0)".into());
    } else {
        bar.set_message("slow clients");
        slow::check(
            &mut ctx,
            usize::from(args.slow_connections),
            Duration::from_secs(args.slow_secs),
        )
        .await;
    }
    bar.inc(1);
    bar.finish_and_clear();
    Ok(ctx.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_replaced_and_removed() {
        let url = Url::parse("http://h/swaig?__token=abc&x=1").unwrap();
        assert_eq!(without_token(&url).as_str(), "http://h/swaig?x=1");
        assert_eq!(
            with_token(&url, Some("t2")).as_str(),
            "http://h/swaig?x=1&__token=t2"
        );
        let bare = Url::parse("http://h/swaig?token=abc").unwrap();
        assert_eq!(without_token(&bare).as_str(), "http://h/swaig");
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for url in [
            "http://127.0.0.1:3000/",
            "http://[::1]/",
            "http://localhost/",
            "http://[::ffff:127.0.0.1]:3000/",
        ] {
            assert!(is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
        for url in [
            "http://10.0.0.1/",
            "http://agent.example.com/",
            "http://[::ffff:10.0.0.1]/",
        ] {
            assert!(!is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
    }

    #[test]
    fn excerpts_are_one_bounded_line() {
        assert_eq!(excerpt("a\nb", 10), "a b");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }
}
