//! The security console (`/console`, issue 16 phase 1) over real HTTP, with a client that keeps
//! cookies like a browser and does not follow redirects (so every answer is seen): sign-in with
//! good and bad passwords, the session cookie's attributes (`Secure` over TLS), idle and
//! absolute expiry on the runtime's `ManualClock`, sign-out, CSRF refusals that change nothing,
//! role gating from the records permission table, the emergency switch turned on and off from
//! the console and seen by a SWAIG call, the overview's refusal counts, the per-operator sign-in
//! limit, and the security headers of every page. Each check that something was audited reads
//! the SQLite trail.
//!
//! It must not reach into the console's session store: a session is only ever created, used and
//! ended through HTTP.

use std::sync::Arc;
use std::time::Duration;

use crate::util::{count, counter, counting_tool, Call, Counter, RecordsKit, TestServer};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::json;
use voxguard::guard::{AuditEvent, ManualClock};
use voxguard::prelude::*;
use voxguard::store::{SqliteStore, DEFAULT_SESSION_TTL};

/// The console's Content-Security-Policy: scripts (the live page's one file) and the event
/// stream from the console itself only, never inline.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
pub(crate) const START: u64 = 1_700_000_000;

/// A runtime with records (so the console is on), one ordinary tool (`hours`) and one
/// sensitive tool (`wire`), its clock in the test's hand.
pub(crate) struct Desk {
    pub(crate) server: Arc<TestServer>,
    pub(crate) kit: RecordsKit,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) wire: Counter,
}

pub(crate) async fn desk() -> Desk {
    desk_with(|_| {}).await
}

/// [`desk`] with `tweak` applied to the server configuration (TLS).
pub(crate) async fn desk_with(tweak: impl FnOnce(&mut voxguard::server::ServerConfig)) -> Desk {
    desk_from(RecordsKit::new().await, Vec::new(), tweak).await
}

/// A desk on `kit` (e.g. one whose audit trail signs checkpoints) whose agent also has
/// `tools`, with `tweak` applied to the server configuration.
pub(crate) async fn desk_from(
    kit: RecordsKit,
    tools: Vec<Tool>,
    tweak: impl FnOnce(&mut voxguard::server::ServerConfig),
) -> Desk {
    let clock = Arc::new(ManualClock::new(START));
    let sessions = Arc::new(
        SqliteStore::open_in_dir(kit.dir.path(), DEFAULT_SESSION_TTL)
            .await
            .expect("session store"),
    );
    let wire = counter();
    let hours = counter();
    let mut builder = Agent::builder("desk")
        .prompt_text("You help callers.")
        .tool(counting_tool("hours", &hours))
        .tool(counting_tool("wire", &wire).sensitive());
    for tool in tools {
        builder = builder.tool(tool);
    }
    let agent = builder.build().expect("agent builds");
    let sink = kit.sink();
    let config = kit.config();
    let runtime_clock = clock.clone();
    let server = TestServer::start_with(
        vec![agent],
        tweak,
        move |runtime| {
            runtime
                .store(sessions)
                .audit(sink)
                .records(config)
                .clock(runtime_clock)
        },
        reqwest::Client::builder(),
    )
    .await;
    Desk {
        server: Arc::new(server),
        kit,
        clock,
        wire,
    }
}

/// Where a console answers: a [`Desk`], or any runtime with records (the gateway's).
pub(crate) trait Site {
    /// The absolute URL of `path`.
    fn url(&self, path: &str) -> String;
}

impl Site for Desk {
    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }
}

impl Site for TestServer {
    fn url(&self, path: &str) -> String {
        TestServer::url(self, path)
    }
}

/// A browser: keeps cookies, follows no redirect.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub(crate) fn request_id(&self) -> String {
        self.headers["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_string()
    }

    /// The value of the first hidden `csrf` field.
    pub(crate) fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a csrf field") + marker.len();
        let end = self.body[start..].find('"').expect("closing quote") + start;
        self.body[start..end].to_string()
    }

    pub(crate) fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ascii").to_string())
            .collect()
    }
}

pub(crate) async fn page(response: reqwest::Response) -> Page {
    Page {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.text().await.expect("body"),
    }
}

pub(crate) async fn get(client: &reqwest::Client, site: &impl Site, path: &str) -> Page {
    page(client.get(site.url(path)).send().await.expect("GET")).await
}

pub(crate) async fn post(
    client: &reqwest::Client,
    site: &impl Site,
    path: &str,
    form: &[(&str, &str)],
) -> Page {
    page(
        client
            .post(site.url(path))
            .form(form)
            .send()
            .await
            .expect("POST"),
    )
    .await
}

/// Open the sign-in page and send `name` and `password` with its token.
pub(crate) async fn sign_in(
    client: &reqwest::Client,
    site: &impl Site,
    name: &str,
    password: &str,
) -> Page {
    let form = get(client, site, "/console/login").await;
    assert_eq!(form.status, StatusCode::OK);
    let csrf = form.csrf();
    post(
        client,
        site,
        "/console/login",
        &[("csrf", &csrf), ("name", name), ("password", password)],
    )
    .await
}

/// A signed-in browser for a new operator `name` with `role`.
pub(crate) async fn operator(desk: &Desk, name: &str, role: &str) -> reqwest::Client {
    let password = desk.kit.password(name, role).await;
    let client = browser();
    let signed = sign_in(&client, desk, name, &password).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location(), "/console/overview");
    client
}

/// Every audit event, after stopping the server (aggregated failures are written then).
pub(crate) async fn events_after_stop(desk: Desk) -> Vec<AuditEvent> {
    let Desk { server, kit, .. } = desk;
    let server = Arc::try_unwrap(server).ok().expect("one owner");
    server.stop().await;
    trail_events(&kit).await
}

pub(crate) async fn events(desk: &Desk) -> Vec<AuditEvent> {
    trail_events(&desk.kit).await
}

async fn trail_events(kit: &RecordsKit) -> Vec<AuditEvent> {
    kit.trail().await.into_iter().map(|r| r.event).collect()
}

/// Events of `kind` written for the request of `page`.
pub(crate) async fn audited(desk: &Desk, page: &Page, kind: &str) -> Vec<AuditEvent> {
    desk.kit
        .events_of(&page.request_id())
        .await
        .into_iter()
        .filter(|e| e.kind.as_str() == kind)
        .collect()
}

/// Switch the emergency switch from `client`'s emergency page, through the confirmation.
pub(crate) async fn switch(
    client: &reqwest::Client,
    site: &impl Site,
    action: &str,
    tools: &str,
) -> Page {
    let form = get(client, site, "/console/emergency").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let csrf = form.csrf();
    let review = post(
        client,
        site,
        "/console/emergency",
        &[("csrf", &csrf), ("action", action), ("tools", tools)],
    )
    .await;
    assert_eq!(review.status, StatusCode::OK, "{}", review.body);
    assert!(
        review.body.contains("Confirm the change"),
        "{}",
        review.body
    );
    post(
        client,
        site,
        "/console/emergency",
        &[
            ("csrf", &review.csrf()),
            ("action", action),
            ("tools", tools),
            ("confirm", "yes"),
        ],
    )
    .await
}

#[tokio::test]
async fn sign_in_with_a_good_and_a_bad_password_and_the_session_cookie() {
    let desk = desk().await;
    let password = desk.kit.password("ana", "auditor").await;

    let client = browser();
    let bad = sign_in(&client, &desk, "ana", "not-the-password").await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.body.contains("do not match"), "{}", bad.body);
    assert!(
        !bad.set_cookies()
            .iter()
            .any(|c| c.starts_with("vg_console=")),
        "no session on a bad password"
    );
    let unknown = sign_in(&client, &desk, "nobody", "whatever-password").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    // A sign-in form without its token (another site posting it) signs nobody in.
    let forged = post(
        &browser(),
        &desk,
        "/console/login",
        &[("name", "ana"), ("password", &password)],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // Not signed in: protected pages send the browser to the sign-in page.
    let overview = get(&client, &desk, "/console/overview").await;
    assert_eq!(overview.status, StatusCode::SEE_OTHER);
    assert_eq!(overview.location(), "/console/login");

    let good = sign_in(&client, &desk, "ana", &password).await;
    assert_eq!(good.status, StatusCode::SEE_OTHER, "{}", good.body);
    assert_eq!(good.location(), "/console/overview");
    let cookie = good
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("vg_console="))
        .expect("a session cookie");
    let id = cookie["vg_console=".len()..].split(';').next().unwrap();
    assert_eq!(id.len(), 43, "{cookie}");
    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{cookie}");
    for attribute in [
        "Path=/console",
        "HttpOnly",
        "SameSite=Strict",
        "Max-Age=28800",
    ] {
        assert!(
            cookie.split("; ").any(|a| a == attribute),
            "{attribute} in {cookie}"
        );
    }
    // Plain HTTP here: `Secure` only when the server runs TLS.
    assert!(!cookie.contains("Secure"), "{cookie}");

    let overview = get(&client, &desk, "/console/overview").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(overview.body.contains("ana (auditor)"), "{}", overview.body);
    let root = get(&client, &desk, "/console").await;
    assert_eq!(root.location(), "/console/overview");

    let trail = events(&desk).await;
    assert!(
        trail.iter().any(|e| e.kind.as_str() == "console_session"
            && e.function.as_deref() == Some("console_sign_in")
            && e.operator.as_deref() == Some("ana")
            && e.role.as_deref() == Some("auditor")),
        "the sign-in is audited"
    );
    // Failures are aggregated per source and window: written when the window closes or at
    // shutdown.
    let failed: Vec<_> = events_after_stop(desk)
        .await
        .into_iter()
        .filter(|e| {
            e.kind.as_str() == "access_denied"
                && e.function.as_deref() == Some("POST /console/login")
        })
        .collect();
    assert!(!failed.is_empty(), "failed sign-ins are audited");
    let count_of = |reason: &str| {
        failed
            .iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| e.arguments.as_ref().unwrap()["count"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(count_of("operator_auth_invalid"), 2);
    assert_eq!(count_of("request_refused"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_session_cookie_is_secure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("self-signed cert");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).expect("write cert");
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).expect("write key");
    let tls = voxguard::server::TlsConfig {
        cert_path,
        key_path,
    };
    let desk = desk_with(move |config| config.tls = Some(tls)).await;
    assert_eq!(desk.server.scheme, "https");
    let password = desk.kit.password("tia", "auditor").await;
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(
            reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).expect("pem"),
        )
        .resolve("localhost", desk.server.addr)
        .build()
        .expect("client");
    let form = get(&client, &desk, "/console/login").await;
    assert!(form
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("vg_console_login=") && c.ends_with("; Secure")));
    let signed = sign_in(&client, &desk, "tia", &password).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    let cookie = signed
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("vg_console="))
        .expect("session cookie");
    assert!(cookie.split("; ").any(|a| a == "Secure"), "{cookie}");
    let overview = get(&client, &desk, "/console/overview").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(overview.headers.contains_key("strict-transport-security"));
    assert_eq!(overview.headers["content-security-policy"], CSP);
}

#[tokio::test]
async fn a_session_ends_after_15_idle_minutes_and_after_8_hours() {
    let desk = desk().await;
    let client = operator(&desk, "ida", "auditor").await;
    desk.clock.advance(Duration::from_secs(14 * 60));
    assert_eq!(
        get(&client, &desk, "/console/overview").await.status,
        StatusCode::OK
    );
    // Each request renews the idle timeout: another 14 minutes is still fine.
    desk.clock.advance(Duration::from_secs(14 * 60));
    assert_eq!(
        get(&client, &desk, "/console/overview").await.status,
        StatusCode::OK
    );
    desk.clock.advance(Duration::from_secs(15 * 60));
    let expired = get(&client, &desk, "/console/overview").await;
    assert_eq!(expired.status, StatusCode::SEE_OTHER);
    assert_eq!(expired.location(), "/console/login");

    // However busy, a session ends 8 hours after sign-in.
    let client = operator(&desk, "max", "auditor").await;
    let mut elapsed = 0;
    while elapsed + 10 * 60 < 8 * 60 * 60 {
        desk.clock.advance(Duration::from_secs(10 * 60));
        elapsed += 10 * 60;
        assert_eq!(
            get(&client, &desk, "/console/overview").await.status,
            StatusCode::OK,
            "after {elapsed} s"
        );
    }
    desk.clock.advance(Duration::from_secs(10 * 60));
    let ended = get(&client, &desk, "/console/overview").await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER);
    assert_eq!(ended.location(), "/console/login");
}

#[tokio::test]
async fn a_session_ends_when_its_operator_is_removed_and_added_again_under_the_same_name() {
    let desk = desk().await;
    let client = operator(&desk, "rae", "auditor").await;
    assert_eq!(
        get(&client, &desk, "/console/overview").await.status,
        StatusCode::OK
    );
    // Reset the way an admin does it today: remove, then add again (a new password).
    let actor = voxguard::Actor::cli("test");
    desk.kit
        .records
        .remove_operator(&actor, "rae")
        .await
        .expect("removed");
    let _new_password = desk.kit.password("rae", "auditor").await;
    let after = get(&client, &desk, "/console/overview").await;
    assert_eq!(
        after.status,
        StatusCode::SEE_OTHER,
        "the old session opens nothing"
    );
    assert_eq!(after.location(), "/console/login");
}

#[tokio::test]
async fn sign_out_deletes_the_session_on_the_server() {
    let desk = desk().await;
    let password = desk.kit.password("lou", "auditor").await;
    let client = browser();
    let signed = sign_in(&client, &desk, "lou", &password).await;
    let cookie = signed
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("vg_console="))
        .expect("session cookie");
    let pair = cookie.split(';').next().unwrap().to_string();

    let overview = get(&client, &desk, "/console/overview").await;
    let out = post(
        &client,
        &desk,
        "/console/logout",
        &[("csrf", &overview.csrf())],
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/console/login");
    assert!(out
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("vg_console=;") && c.contains("Max-Age=0")));
    // The old cookie, replayed by hand, opens nothing: the session is gone server-side.
    let replay = desk
        .server
        .client
        .get(desk.server.url("/console/overview"))
        .header("cookie", &pair)
        .send()
        .await
        .expect("GET");
    assert_eq!(
        replay.url().path(),
        "/console/login",
        "redirected to sign-in"
    );
    assert!(events(&desk)
        .await
        .iter()
        .any(|e| e.function.as_deref() == Some("console_sign_out")
            && e.operator.as_deref() == Some("lou")));
    // The replay, and a guessed cookie, are on record (aggregated per source and reason,
    // written when the window closes or at shutdown), as a refused request of /records is.
    let guessed = desk
        .server
        .client
        .post(desk.server.url("/console/subjects/delete"))
        .header("cookie", format!("vg_console={}", "A".repeat(43)))
        .form(&[("subject", "patient-7"), ("confirm", "patient-7")])
        .send()
        .await
        .expect("POST");
    assert_eq!(guessed.url().path(), "/console/login");
    let refused: u64 = events_after_stop(desk)
        .await
        .into_iter()
        .filter(|e| {
            e.kind.as_str() == "access_denied"
                && e.reason.as_deref() == Some("operator_auth_invalid")
                && e.function
                    .as_deref()
                    .is_some_and(|f| f.ends_with(" /console"))
        })
        .map(|e| e.arguments.as_ref().unwrap()["count"].as_u64().unwrap())
        .sum();
    assert_eq!(refused, 2, "the replayed and the guessed cookie");
}

#[tokio::test]
async fn a_guessed_cookie_at_the_entry_point_or_the_live_stream_is_on_record() {
    let desk = desk().await;
    let guessed = format!("vg_console={}", "B".repeat(43));
    for path in ["/console", "/console/live/events"] {
        let reply = desk
            .server
            .client
            .get(desk.server.url(path))
            .header("cookie", &guessed)
            .send()
            .await
            .expect("GET");
        assert_eq!(reply.url().path(), "/console/login", "{path}");
    }
    // The stream without any cookie is refused and on record too; the entry point without a
    // cookie is a browser's first visit and is not.
    for path in ["/console/live/events", "/console"] {
        let reply = desk
            .server
            .client
            .get(desk.server.url(path))
            .send()
            .await
            .expect("GET");
        assert_eq!(reply.url().path(), "/console/login", "{path}");
    }
    let refused = |reason: &'static str| {
        move |e: &AuditEvent| {
            e.kind.as_str() == "access_denied"
                && e.reason.as_deref() == Some(reason)
                && e.function.as_deref() == Some("GET /console")
        }
    };
    let trail = events_after_stop(desk).await;
    let counted = |reason: &'static str| -> u64 {
        trail
            .iter()
            .filter(|e| refused(reason)(e))
            .map(|e| e.arguments.as_ref().unwrap()["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(counted("operator_auth_invalid"), 2, "both guessed cookies");
    assert_eq!(
        counted("operator_auth_required"),
        1,
        "the stream without a cookie"
    );
}

#[tokio::test]
async fn signing_in_again_in_the_same_browser_ends_the_session_it_had() {
    let desk = desk().await;
    let (ali, bob) = (
        desk.kit.password("ali", "auditor").await,
        desk.kit.password("bob", "auditor").await,
    );
    let client = browser();
    let first = sign_in(&client, &desk, "ali", &ali).await;
    let pair = first
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("vg_console="))
        .expect("session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let second = sign_in(&client, &desk, "bob", &bob).await;
    assert_eq!(second.status, StatusCode::SEE_OTHER);
    let overview = get(&client, &desk, "/console/overview").await;
    assert!(overview.body.contains("bob (auditor)"), "{}", overview.body);
    // Ali's old cookie, replayed by hand, opens nothing any more.
    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(desk.server.url("/console/overview"))
        .header("cookie", &pair)
        .send()
        .await
        .expect("GET");
    assert_eq!(replay.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_missing_or_wrong_csrf_token_is_refused_changes_nothing_and_is_audited() {
    let desk = desk().await;
    let admin = operator(&desk, "ada", "admin").await;
    let call = Call::start(&desk.server, "/", "call-csrf", "+15550001111").await;
    call.ok("wire", json!({})).await;

    for form in [
        &[("action", "on"), ("tools", ""), ("confirm", "yes")][..],
        &[
            ("csrf", "wrong-token"),
            ("action", "on"),
            ("tools", ""),
            ("confirm", "yes"),
        ][..],
    ] {
        let refused = post(&admin, &desk, "/console/emergency", form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(
            refused.body.contains("nothing was changed"),
            "{}",
            refused.body
        );
        let id = refused.request_id();
        let audited = events(&desk).await;
        assert!(
            audited
                .iter()
                .any(|e| e.request_id.as_deref() == Some(id.as_str())
                    && e.kind.as_str() == "access_denied"
                    && e.reason.as_deref() == Some("csrf_invalid")
                    && e.operator.as_deref() == Some("ada")),
            "the refusal is audited"
        );
    }
    // Nothing changed: the sensitive tool still runs, and no toggle was recorded.
    call.ok("wire", json!({})).await;
    assert_eq!(count(&desk.wire), 2);
    assert!(!events(&desk)
        .await
        .iter()
        .any(|e| e.kind.as_str() == "emergency_toggled"));
    // Sign-out without the token does not end the session either.
    let refused = post(&admin, &desk, "/console/logout", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        get(&admin, &desk, "/console/overview").await.status,
        StatusCode::OK
    );
    // The sign-in form has its own token (double submit): without it, nobody is signed in.
    let password = desk.kit.password("sam", "auditor").await;
    let fresh = browser();
    let forged = post(
        &fresh,
        &desk,
        "/console/login",
        &[("name", "sam"), ("password", &password)],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!forged
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("vg_console=")));
}

#[tokio::test]
async fn roles_see_only_their_pages() {
    let desk = desk().await;
    let auditor = operator(&desk, "aud", "auditor").await;
    let overview = get(&auditor, &desk, "/console/overview").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(!overview.body.contains("/console/emergency"), "no link");
    let denied = get(&auditor, &desk, "/console/emergency").await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert!(denied.body.contains("emergency_switch"), "{}", denied.body);
    let id = denied.request_id();
    assert!(events(&desk)
        .await
        .iter()
        .any(|e| e.request_id.as_deref() == Some(id.as_str())
            && e.kind.as_str() == "access_denied"
            && e.reason.as_deref() == Some("access_denied")
            && e.operator.as_deref() == Some("aud")
            && e.role.as_deref() == Some("auditor")));
    // A valid token does not lift the role check.
    let posted = post(
        &auditor,
        &desk,
        "/console/emergency",
        &[
            ("csrf", &overview.csrf()),
            ("action", "on"),
            ("confirm", "yes"),
        ],
    )
    .await;
    assert_eq!(posted.status, StatusCode::FORBIDDEN);
    let supervisor = operator(&desk, "sup", "supervisor").await;
    assert_eq!(
        get(&supervisor, &desk, "/console/emergency").await.status,
        StatusCode::FORBIDDEN
    );

    for (name, role) in [("adm", "admin"), ("com", "compliance")] {
        let client = operator(&desk, name, role).await;
        let overview = get(&client, &desk, "/console/overview").await;
        assert!(overview.body.contains("/console/emergency"), "{role} link");
        let page = get(&client, &desk, "/console/emergency").await;
        assert_eq!(page.status, StatusCode::OK, "{role}");
        assert!(page.body.contains("<label for=\"tools\">"));
    }
}

#[tokio::test]
async fn the_emergency_switch_from_the_console_is_seen_by_a_tool_call() {
    let desk = desk().await;
    let admin = operator(&desk, "ada", "admin").await;
    let call = Call::start(&desk.server, "/", "call-emergency", "+15550002222").await;
    call.ok("wire", json!({})).await;

    // The review step alone changes nothing.
    let form = get(&admin, &desk, "/console/emergency").await;
    let review = post(
        &admin,
        &desk,
        "/console/emergency",
        &[("csrf", &form.csrf()), ("action", "on"), ("tools", "")],
    )
    .await;
    assert!(review.body.contains("Confirm"), "{}", review.body);
    call.ok("wire", json!({})).await;

    let done = switch(&admin, &desk, "on", "").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("recorded under your name"));
    call.refused("wire", json!({}), "emergency_disabled").await;
    call.ok("hours", json!({})).await;
    let id = done.request_id();
    let toggled: Vec<_> = events(&desk)
        .await
        .into_iter()
        .filter(|e| e.request_id.as_deref() == Some(id.as_str()))
        .collect();
    assert_eq!(toggled.len(), 1, "{toggled:?}");
    assert_eq!(toggled[0].kind.as_str(), "emergency_toggled");
    assert_eq!(toggled[0].operator.as_deref(), Some("ada"));
    assert_eq!(toggled[0].role.as_deref(), Some("admin"));

    // The overview shows the state and, to an auditor, the refusal.
    let auditor = operator(&desk, "aud", "auditor").await;
    let overview = get(&auditor, &desk, "/console/overview").await;
    assert!(overview.body.contains("ON"), "{}", overview.body);
    assert!(overview
        .body
        .contains("<td>emergency_disabled</td><td>1</td>"));
    assert!(overview.body.contains("intact"), "{}", overview.body);

    let off = switch(&admin, &desk, "off", "").await;
    assert_eq!(off.status, StatusCode::OK);
    call.ok("wire", json!({})).await;

    // A named list: exactly those tools, sensitive or not.
    let compliance = operator(&desk, "com", "compliance").await;
    let named = switch(&compliance, &desk, "on", "hours").await;
    assert_eq!(named.status, StatusCode::OK, "{}", named.body);
    call.refused("hours", json!({}), "emergency_disabled").await;
    call.ok("wire", json!({})).await;
    let bad = post(
        &compliance,
        &desk,
        "/console/emergency",
        &[
            ("csrf", &named.csrf()),
            ("action", "on"),
            ("tools", "<b>x</b>"),
        ],
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(count(&desk.wire), 4);
}

#[tokio::test]
async fn one_operator_opens_at_most_20_sessions_in_10_minutes() {
    let desk = desk().await;
    let password = desk.kit.password("many", "auditor").await;
    // A remembered password costs no argon2 check: the cap is on sessions opened.
    for attempt in 0..20 {
        let good = sign_in(&browser(), &desk, "many", &password).await;
        assert_eq!(good.status, StatusCode::SEE_OTHER, "sign-in {attempt}");
    }
    let refused = sign_in(&browser(), &desk, "many", &password).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused.body.contains("Too many sign-ins for this operator"),
        "{}",
        refused.body
    );
    assert!(refused.headers.contains_key("retry-after"));
    // Another operator is not affected.
    let other = desk.kit.password("few", "auditor").await;
    let good = sign_in(&browser(), &desk, "few", &other).await;
    assert_eq!(good.status, StatusCode::SEE_OTHER);
    let sessions = events(&desk)
        .await
        .iter()
        .filter(|e| {
            e.function.as_deref() == Some("console_sign_in")
                && e.operator.as_deref() == Some("many")
        })
        .count();
    assert_eq!(sessions, 20);
}

#[tokio::test]
async fn sign_ins_are_limited_per_operator() {
    let desk = desk().await;
    let password = desk.kit.password("lim", "auditor").await;
    let client = browser();
    // Successful sign-ins never use up the budget: only failures count.
    for attempt in 0..12 {
        let good = sign_in(&client, &desk, "lim", &password).await;
        assert_eq!(good.status, StatusCode::SEE_OTHER, "sign-in {attempt}");
    }
    for attempt in 0..10 {
        let bad = sign_in(&client, &desk, "lim", "wrong-password").await;
        assert_eq!(bad.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let limited = sign_in(&client, &desk, "lim", &password).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.body.contains("Too many"), "{}", limited.body);
    let wait: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=600).contains(&wait), "Retry-After {wait}");
    // One lock for the name wherever its password is tried: Basic on /records too, even with
    // the right password and a remembered login.
    let basic = reqwest::Client::new()
        .get(desk.server.url("/records"))
        .basic_auth("lim", Some(&password))
        .send()
        .await
        .expect("GET /records");
    assert_eq!(basic.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(basic.headers().contains_key("retry-after"));
    // The window passes on the runtime's clock.
    desk.clock.advance(Duration::from_secs(11 * 60));
    let good = sign_in(&client, &desk, "lim", &password).await;
    assert_eq!(good.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn behind_a_trusted_https_proxy_the_cookies_are_secure_too() {
    let desk = desk_with(|config| config.trust_proxy = true).await;
    let client = browser();
    let via = |proto: &'static str| {
        client
            .get(desk.server.url("/console/login"))
            .header("x-forwarded-proto", proto)
            .send()
    };
    let secure = page(via("https").await.expect("GET")).await;
    assert!(
        secure
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("vg_console_login=") && c.ends_with("; Secure")),
        "{:?}",
        secure.set_cookies()
    );
    let plain = page(via("http").await.expect("GET")).await;
    assert!(plain.set_cookies().iter().all(|c| !c.contains("Secure")));
}

#[tokio::test]
async fn every_console_answer_carries_the_security_headers() {
    let desk = desk().await;
    let admin = operator(&desk, "ada", "admin").await;
    let auditor = operator(&desk, "aud", "auditor").await;
    let anonymous = browser();
    let mut pages = vec![
        ("login", get(&anonymous, &desk, "/console/login").await),
        (
            "redirect",
            get(&anonymous, &desk, "/console/overview").await,
        ),
        (
            "css",
            get(&anonymous, &desk, "/console/static/console.css").await,
        ),
        ("404", get(&anonymous, &desk, "/console/nothing").await),
        (
            "405",
            post(&anonymous, &desk, "/console/overview", &[]).await,
        ),
        ("overview", get(&admin, &desk, "/console/overview").await),
        ("emergency", get(&admin, &desk, "/console/emergency").await),
        ("403", get(&auditor, &desk, "/console/emergency").await),
    ];
    pages.push((
        "csrf 403",
        post(&admin, &desk, "/console/emergency", &[("action", "on")]).await,
    ));
    for (name, page) in &pages {
        let header = |h: &str| {
            page.headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{name}: no {h}"))
                .to_string()
        };
        assert_eq!(header("content-security-policy"), CSP, "{name}");
        assert_eq!(header("cache-control"), "no-store", "{name}");
        assert_eq!(header("x-frame-options"), "DENY", "{name}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{name}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{name}");
        assert!(!header("x-request-id").is_empty(), "{name}");
        // HTML pages stay HTML (errors too), never inline script.
        if *name != "css" {
            assert!(
                header("content-type").starts_with("text/html"),
                "{name}: {}",
                header("content-type")
            );
            assert!(!page.body.contains("<script"), "{name}");
        }
    }
    assert_eq!(pages[2].1.status, StatusCode::OK);
    assert!(pages[2].1.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert_eq!(pages[3].1.status, StatusCode::NOT_FOUND);
    assert_eq!(pages[4].1.status, StatusCode::METHOD_NOT_ALLOWED);
    // Every form field has a label.
    for (name, page) in &pages {
        for id in ["name", "password", "tools", "on", "off"] {
            if page.body.contains(&format!("id=\"{id}\"")) {
                assert!(
                    page.body.contains(&format!("for=\"{id}\"")),
                    "{name}: a label for {id}"
                );
            }
        }
    }
}

#[tokio::test]
async fn without_records_there_is_no_console() {
    let agent = Agent::builder("plain")
        .prompt_text("Hello.")
        .build()
        .expect("agent");
    let server = TestServer::start(vec![agent], |_| {}).await;
    let response = server
        .client
        .get(server.url("/console/login"))
        .send()
        .await
        .expect("GET");
    // Not served: the platform's Basic auth guards the path like any other.
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
