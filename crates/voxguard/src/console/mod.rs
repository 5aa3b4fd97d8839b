//! The security console on `/console` (docs/console.md): server-rendered pages for the
//! operators of the records API, signed in with the same accounts.
//!
//! This module owns the console's sign-in (password checked by `RecordsApi::sign_in`: argon2id
//! on the shared workers, per-source limits, the shared per-name lock, aggregated auditing of
//! failures), its sessions (an
//! opaque random id in an `HttpOnly`, `SameSite=Strict` cookie; the state kept server-side in
//! the runtime's [`SessionStore`] under `console/<sha256 of the id>`, with idle and absolute
//! timeouts read from the runtime's one clock), CSRF tokens on every POST form, the routing of
//! every page, and which role may open which page (the records permission table,
//! [`Roles::allows`](voxguard_guard::records::Roles::allows); denials audited as
//! `access_denied`). The pages' own decisions live beside it: the overview in `overview`,
//! records, export and subject deletion in `records`, the audit trail and its verification in
//! `audit`, the operators page in `operators`, the live security events in `live`. It must not
//! write markup (`pages` does), change the emergency switch itself (`Admin::change` does,
//! naming the operator in the audit event), read or delete records other than through
//! [`Records`](crate::Records) (which audits each access), or answer a change before it is on
//! record.

mod audit;
mod live;
mod operators;
mod overview;
mod pages;
mod records;

use std::sync::Arc;
use std::time::Duration;

use rand::distributions::{Alphanumeric, DistString};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use voxguard_guard::records::{operator_token_hash, Permission};
use voxguard_guard::{AnomalyRules, Clock, EmergencyState, Outcome};
use voxguard_server::{
    Bytes, ConsoleReply, ConsoleRequest, ConsoleService, SecurityEvents, CONSOLE_PREFIX,
};
use voxguard_store::{Operator, SessionStore};

use crate::admin::Admin;
use crate::records::api::RecordsApi;
use crate::records::Actor;
use crate::RuntimeError;
pub(crate) use overview::agent_view;
use pages::{AgentView, Who};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "vg_console";

/// The sign-in form's cookie (double-submit CSRF token of the sign-in form, before a session
/// exists).
pub const LOGIN_COOKIE: &str = "vg_console_login";

/// Default idle timeout: 15 minutes without a request ends a session.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(15 * 60);

/// Default absolute timeout: a session ends 8 hours after sign-in, however busy.
pub const DEFAULT_MAX: Duration = Duration::from_secs(8 * 60 * 60);

/// Longest tool list accepted on the emergency page.
const MAX_TOOLS: usize = 64;

/// The session store key of a console session's state.
const SESSION_KEY: &str = "console";

const CSS: &str = include_str!("console.css");
const HTML: &str = "text/html; charset=utf-8";

/// The console's session timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleTimeouts {
    /// A session ends after this long without a request.
    pub idle: Duration,
    /// A session ends this long after sign-in.
    pub max: Duration,
}

impl Default for ConsoleTimeouts {
    fn default() -> Self {
        Self {
            idle: DEFAULT_IDLE,
            max: DEFAULT_MAX,
        }
    }
}

impl ConsoleTimeouts {
    /// Read `VOXGUARD_CONSOLE_IDLE_SECS` (60 to 86,400; default 900) and
    /// `VOXGUARD_CONSOLE_MAX_SECS` (60 to 604,800; default 28,800, and at least the idle
    /// timeout) through `lookup`.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::InvalidConsole`] naming the variable for any other value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, RuntimeError> {
        let read = |name: &'static str, default: Duration, max: u64| match lookup(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        {
            None => Ok(default),
            Some(value) => match value.parse::<u64>() {
                Ok(secs) if (60..=max).contains(&secs) => Ok(Duration::from_secs(secs)),
                _ => Err(RuntimeError::InvalidConsole(format!(
                    "{name}={value:?} is not valid: a whole number of seconds between 60 and {max}"
                ))),
            },
        };
        let idle = read("VOXGUARD_CONSOLE_IDLE_SECS", DEFAULT_IDLE, 86_400)?;
        let max = read("VOXGUARD_CONSOLE_MAX_SECS", DEFAULT_MAX, 7 * 86_400)?;
        if max < idle {
            return Err(RuntimeError::InvalidConsole(
                "VOXGUARD_CONSOLE_MAX_SECS must be at least VOXGUARD_CONSOLE_IDLE_SECS".into(),
            ));
        }
        Ok(Self { idle, max })
    }
}

/// A console session's state, as stored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SessionState {
    operator: String,
    /// Unix seconds of sign-in.
    created: u64,
    /// Unix seconds of the last request.
    seen: u64,
    csrf: String,
    /// Which account signed in: a hash of the operator's creation time and password hash, so
    /// that a password reset or a remove-and-re-add under the same name ends the session.
    #[serde(default)]
    account: String,
}

/// The fingerprint of the account `operator` as it is now (see [`SessionState::account`]).
fn account_of(operator: &Operator) -> String {
    operator_token_hash(&format!(
        "{}\0{}\0{}",
        operator.name,
        operator.created_at,
        operator.password_hash.as_deref().unwrap_or("")
    ))
}

/// A signed-in request: the session, its store scope and the operator as the store has them
/// now (so a removed operator or a changed role takes effect on the next request).
struct Signed {
    state: SessionState,
    operator: Operator,
}

/// The security console.
pub(crate) struct Console {
    api: Arc<RecordsApi>,
    admin: Arc<Admin>,
    sessions: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    timeouts: ConsoleTimeouts,
    /// What the runtime serves, for the overview.
    agents: Vec<AgentView>,
    /// The runtime's anomaly rules, replayed over the overview's window.
    anomaly_rules: AnomalyRules,
    /// Held while "Verify now" runs: one verification of the whole trail at a time.
    verifying: tokio::sync::Mutex<()>,
    /// Overview summaries being computed now (at most [`overview::OVERVIEW_CONCURRENCY`]).
    overviews: tokio::sync::Semaphore,
    /// The live event streams open now, per operator and in all.
    streams: Arc<live::Streams>,
    /// Sessions opened per operator ([`SIGN_INS_PER_OPERATOR`]).
    sign_ins: voxguard_guard::RateLimiter,
}

/// Sessions one operator may open per 10 minutes, however they sign in (a remembered password
/// costs no argon2 check): each is a stored session and an audit event, so an operator's
/// script cannot open them at request rate.
pub(crate) const SIGN_INS_PER_OPERATOR: u32 = 20;

impl Console {
    /// The console over the records API `api` (operators, permission table, audit), the
    /// emergency switch's `admin`, and `sessions` (the runtime's session store).
    pub(crate) fn new(
        api: Arc<RecordsApi>,
        admin: Arc<Admin>,
        sessions: Arc<dyn SessionStore>,
        timeouts: ConsoleTimeouts,
    ) -> Self {
        let clock = api.clock.clone();
        let mut sign_ins = voxguard_guard::RateLimiter::with_clock(clock.clone());
        if let Ok(limit) = voxguard_guard::RateLimit::new(
            SIGN_INS_PER_OPERATOR,
            std::time::Duration::from_secs(600),
        ) {
            sign_ins = sign_ins.per_caller(limit);
        }
        Self {
            api,
            admin,
            sessions,
            sign_ins,
            clock,
            timeouts,
            agents: Vec::new(),
            anomaly_rules: AnomalyRules::default(),
            verifying: tokio::sync::Mutex::new(()),
            overviews: tokio::sync::Semaphore::new(overview::OVERVIEW_CONCURRENCY),
            streams: Default::default(),
        }
    }

    /// Describe `agents` on the overview and replay `rules` over its window.
    pub(crate) fn describing(mut self, agents: Vec<AgentView>, rules: AnomalyRules) -> Self {
        self.agents = agents;
        self.anomaly_rules = rules;
        self
    }

    async fn route(&self, request: &ConsoleRequest) -> ConsoleReply {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/static/console.css") => ConsoleReply {
                status: 200,
                content_type: "text/css; charset=utf-8",
                body: Bytes::from_static(CSS.as_bytes()),
                headers: Vec::new(),
                stream: None,
            },
            ("GET", "/static/live.js") => live::script(),
            (_, path) if path == "/operators" || path.starts_with("/operators/") => {
                self.operators(request).await
            }
            (_, path) if path == "/live" || path.starts_with("/live/") => self.live(request).await,
            // The console's entry point: without a cookie, a browser's first visit (not on
            // record); a cookie that names no live session is a failed access like any other.
            ("GET", "" | "/") => match self.signed_in(request).await {
                Ok(Some(_)) => redirect("/console/overview", Vec::new()),
                Ok(None) if request.cookie(SESSION_COOKIE).is_some() => {
                    self.no_session(request).await
                }
                Ok(None) => redirect("/console/login", Vec::new()),
                Err(reply) => reply,
            },
            ("GET", "/login") => self.sign_in_page(request, None, "", 200),
            ("POST", "/login") => self.sign_in(request).await,
            ("POST", "/logout") => self.sign_out(request).await,
            ("GET", "/overview") => self.overview(request).await,
            ("GET", "/emergency") => self.emergency_page(request).await,
            ("POST", "/emergency") => self.emergency_change(request).await,
            ("GET", "/records") => self.records_search(request).await,
            ("POST", "/subjects/export") => self.subject_export(request).await,
            ("POST", "/subjects/delete") => self.subject_delete(request).await,
            ("GET", "/audit") => self.audit_trail(request).await,
            ("POST", "/audit/verify") => self.audit_verify(request).await,
            (method, path) => match (method, record_path(path)) {
                ("GET", Some((id, false))) => self.record_page(request, id).await,
                ("POST", Some((id, true))) => self.record_content(request, id).await,
                (_, Some(_)) => method_not_allowed(),
                (_, None) => match path {
                    "" | "/" | "/login" | "/logout" | "/overview" | "/emergency" | "/records"
                    | "/subjects/export" | "/subjects/delete" | "/audit" | "/audit/verify" => {
                        method_not_allowed()
                    }
                    _ => not_found(),
                },
            },
        }
    }

    /// The session behind the request's cookie, if it is live (the request renews its idle
    /// timeout); an expired or orphaned one is deleted. `Err` when the store failed.
    async fn signed_in(&self, request: &ConsoleRequest) -> Result<Option<Signed>, ConsoleReply> {
        self.session(request, true).await
    }

    /// [`signed_in`](Self::signed_in), renewing the idle timeout only when `renew`.
    async fn session(
        &self,
        request: &ConsoleRequest,
        renew: bool,
    ) -> Result<Option<Signed>, ConsoleReply> {
        let Some(id) = request.cookie(SESSION_COOKIE).filter(|id| valid_id(id)) else {
            return Ok(None);
        };
        check_session(
            &*self.sessions,
            &self.api.records,
            self.clock.now_unix(),
            self.timeouts,
            &scope_of(id),
            renew,
        )
        .await
        .map_err(|()| unavailable())
    }

    /// The signed-in session, or the redirect to the sign-in page. A request that is refused
    /// here is audited like an unauthenticated one of `/records` (aggregated per source and
    /// reason): `operator_auth_invalid` when it brought a session cookie that opens nothing (a
    /// replayed, expired, signed-out or guessed id), `operator_auth_required` when it brought
    /// none.
    async fn require(&self, request: &ConsoleRequest) -> Result<Signed, ConsoleReply> {
        match self.signed_in(request).await? {
            Some(signed) => Ok(signed),
            None => Err(self.no_session(request).await),
        }
    }

    /// A request that needed a live session and had none: on record (aggregated, like the
    /// records API's), then sent to the sign-in page with its cookie expired.
    pub(super) async fn no_session(&self, request: &ConsoleRequest) -> ConsoleReply {
        let reason = if request.cookie(SESSION_COOKIE).is_some() {
            voxguard_guard::Reason::OperatorAuthInvalid
        } else {
            voxguard_guard::Reason::OperatorAuthRequired
        };
        self.api
            .events
            .auth_failed(
                request.client,
                &request.method,
                CONSOLE_PREFIX,
                reason,
                &request.request_id,
            )
            .await;
        redirect(
            "/console/login",
            vec![("set-cookie", expired_cookie(SESSION_COOKIE, request.tls))],
        )
    }

    fn actor(&self, request: &ConsoleRequest, operator: &Operator) -> Actor {
        Actor {
            operator: operator.name.clone(),
            role: operator.role.clone(),
            source: Some(request.client.ip().to_string()),
            request_id: Some(request.request_id.clone()),
        }
    }

    fn may(&self, operator: &Operator, permission: Permission) -> bool {
        self.api.records.roles().allows(&operator.role, permission)
    }

    fn who<'a>(&self, signed: &'a Signed) -> Who<'a> {
        Who {
            name: &signed.operator.name,
            role: &signed.operator.role,
            csrf: &signed.state.csrf,
            emergency: self.may(&signed.operator, Permission::EmergencySwitch),
            records: self.may(&signed.operator, Permission::ListRecords),
            audit: self.may(&signed.operator, Permission::ReadAudit),
            operators: self.may(&signed.operator, Permission::ManageOperators),
        }
    }

    /// `Ok` when the form's CSRF token is the session's; else the audited 403.
    async fn check_csrf(
        &self,
        request: &ConsoleRequest,
        signed: &Signed,
    ) -> Result<(), ConsoleReply> {
        if same(request.field("csrf"), &signed.state.csrf) {
            return Ok(());
        }
        self.api
            .denied(&self.actor(request, &signed.operator), "csrf_invalid")
            .await;
        Err(page(
            403,
            pages::problem(
                Some(&self.who(signed)),
                "Form refused",
                "This form was not sent from this session's console page (missing or wrong CSRF token), so nothing was changed. Open the page again and retry.",
            ),
        ))
    }

    /// `Ok` when the role allows `permission`; else the audited 403 page.
    async fn check_role(
        &self,
        request: &ConsoleRequest,
        signed: &Signed,
        permission: Permission,
    ) -> Result<(), ConsoleReply> {
        if self.may(&signed.operator, permission) {
            return Ok(());
        }
        self.api
            .denied(&self.actor(request, &signed.operator), "access_denied")
            .await;
        Err(page(
            403,
            pages::problem(
                Some(&self.who(signed)),
                "Not allowed",
                &format!(
                    "The role {:?} does not allow {}.",
                    signed.operator.role,
                    permission.as_str()
                ),
            ),
        ))
    }

    /// The signed-in session of an operator whose role allows `permission`, or the reply that
    /// refuses the request, checked in this order: without a live session, the redirect to the
    /// sign-in page; for a form (`POST`) without the session's CSRF token, the audited 403 of
    /// [`check_csrf`](Self::check_csrf); for a role without `permission`, the audited 403 of
    /// [`check_role`](Self::check_role).
    async fn allowed(
        &self,
        request: &ConsoleRequest,
        permission: Permission,
    ) -> Result<Signed, ConsoleReply> {
        let signed = self.require(request).await?;
        if request.method == "POST" {
            self.check_csrf(request, &signed).await?;
        }
        self.check_role(request, &signed, permission).await?;
        Ok(signed)
    }

    fn sign_in_page(
        &self,
        request: &ConsoleRequest,
        notice: Option<&str>,
        name: &str,
        status: u16,
    ) -> ConsoleReply {
        let token = new_secret();
        let cookie = format!(
            "{LOGIN_COOKIE}={token}; Path={CONSOLE_PREFIX}/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
            secure(request.tls)
        );
        ConsoleReply {
            headers: vec![("set-cookie", cookie)],
            ..page(status, pages::sign_in(&token, notice, name))
        }
    }

    async fn sign_in(&self, request: &ConsoleRequest) -> ConsoleReply {
        let name = request.field("name").unwrap_or_default().trim();
        let password = request.field("password").unwrap_or_default();
        let shown_name: String = name.chars().take(64).collect();
        // Double submit: the form's token must be the sign-in cookie's (a cross-site page can
        // neither read nor set it), so no other site can sign a browser in.
        let cookie = request.cookie(LOGIN_COOKIE).unwrap_or_default();
        if cookie.is_empty() || !same(request.field("csrf"), cookie) {
            // Nobody is signed in yet: aggregated per source like other sign-in failures, so
            // an anonymous flood cannot grow the trail at request rate.
            self.api
                .events
                .auth_failed(
                    request.client,
                    "POST",
                    "/console/login",
                    voxguard_guard::Reason::RequestRefused,
                    &request.request_id,
                )
                .await;
            return self.sign_in_page(
                request,
                Some("The sign-in form had expired or was not sent from this page; nothing was done. Please sign in again."),
                "",
                403,
            );
        }
        if name.is_empty() || password.is_empty() {
            return self.sign_in_page(
                request,
                Some("Enter your operator name and password."),
                &shown_name,
                400,
            );
        }
        let at = "/console/login";
        // The records API's password check: per-source limits, and the per-name locks
        // (`OPERATOR_FAILURES` failures from one address lock the name there,
        // `OPERATOR_FAILURES_TOTAL` from anywhere lock it everywhere), shared by every replica
        // through the attempt store.
        let operator = match self
            .api
            .sign_in(request.client, &request.request_id, at, name, password)
            .await
        {
            Ok(operator) => operator,
            Err(reply) => {
                let wait = reply
                    .headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
                    .and_then(|(_, value)| value.parse::<u64>().ok());
                let (status, sentence) = match reply.status {
                    429 => (
                        429,
                        reply
                            .body
                            .get("response")
                            .and_then(Value::as_str)
                            .unwrap_or(
                                "Too many sign-in attempts; wait a few minutes and try again.",
                            ),
                    ),
                    401 => (401, "That operator name and password do not match."),
                    _ => (
                        503,
                        "Signing in is not possible right now; try again shortly.",
                    ),
                };
                let page = self.sign_in_page(request, Some(sentence), &shown_name, status);
                return retry_after(page, wait.filter(|_| status == 429));
            }
        };
        if let Err(limited) = self.sign_ins.check("console_sign_in", &operator.name) {
            // On record like other refused sign-ins (aggregated per source).
            self.api
                .events
                .auth_failed(
                    request.client,
                    "POST",
                    at,
                    voxguard_guard::Reason::RateLimited,
                    &request.request_id,
                )
                .await;
            let page = self.sign_in_page(
                request,
                Some("Too many sign-ins for this operator; wait a few minutes and try again."),
                &shown_name,
                429,
            );
            return retry_after(page, Some(limited.retry_after_secs()));
        }
        // A browser signing in again (another operator at a shared desk) ends the session it
        // had: its old cookie must not open anything afterwards.
        if let Some(old) = request.cookie(SESSION_COOKIE).filter(|id| valid_id(id)) {
            if self.sessions.clear(&scope_of(old)).await.is_err() {
                return unavailable();
            }
        }
        let now = self.clock.now_unix();
        let id = new_secret();
        let state = SessionState {
            operator: operator.name.clone(),
            created: now,
            seen: now,
            csrf: new_secret(),
            account: account_of(&operator),
        };
        if self
            .sessions
            .set(&scope_of(&id), SESSION_KEY, &json!(state), now)
            .await
            .is_err()
        {
            return unavailable();
        }
        let mut event = self.api.records.console_event(
            &self.actor(request, &operator),
            Outcome::Ok,
            "console_sign_in",
        );
        event.arguments = Some(json!({ "max_secs": self.timeouts.max.as_secs() }));
        if self.api.records.console_write(event).await.is_err() {
            let _ = self.sessions.clear(&scope_of(&id)).await;
            return unavailable();
        }
        let session = format!(
            "{SESSION_COOKIE}={id}; Path={CONSOLE_PREFIX}; HttpOnly; SameSite=Strict; Max-Age={}{}",
            self.timeouts.max.as_secs(),
            secure(request.tls)
        );
        redirect(
            "/console/overview",
            vec![
                ("set-cookie", session),
                ("set-cookie", expired_login_cookie(request.tls)),
            ],
        )
    }

    async fn sign_out(&self, request: &ConsoleRequest) -> ConsoleReply {
        let signed = match self.require(request).await {
            Ok(signed) => signed,
            Err(reply) => return reply,
        };
        if let Err(reply) = self.check_csrf(request, &signed).await {
            return reply;
        }
        // On record first; a sign-out only takes rights away, so it happens even when the
        // trail cannot take the event (which is then logged as an error).
        let event = self.api.records.console_event(
            &self.actor(request, &signed.operator),
            Outcome::Ok,
            "console_sign_out",
        );
        if self.api.records.console_write(event).await.is_err() {
            tracing::error!(
                target: "voxguard::security",
                operator = %signed.operator.name,
                "a console sign-out could not be written to the audit trail; the session is ended anyway"
            );
        }
        if let Some(id) = request.cookie(SESSION_COOKIE) {
            if self.sessions.clear(&scope_of(id)).await.is_err() {
                return unavailable();
            }
        }
        redirect(
            "/console/login",
            vec![("set-cookie", expired_cookie(SESSION_COOKIE, request.tls))],
        )
    }

    async fn emergency_page(&self, request: &ConsoleRequest) -> ConsoleReply {
        let signed = match self.allowed(request, Permission::EmergencySwitch).await {
            Ok(signed) => signed,
            Err(reply) => return reply,
        };
        let state = self.admin.emergency.state();
        page(200, pages::emergency(&self.who(&signed), &state, None))
    }

    async fn emergency_change(&self, request: &ConsoleRequest) -> ConsoleReply {
        let signed = match self.allowed(request, Permission::EmergencySwitch).await {
            Ok(signed) => signed,
            Err(reply) => return reply,
        };
        let who = self.who(&signed);
        let enabled = match request.field("action") {
            Some("on") => true,
            Some("off") => false,
            _ => {
                return page(
                    400,
                    pages::problem(Some(&who), "Not changed", "Choose on or off."),
                )
            }
        };
        let text = request.field("tools").unwrap_or_default();
        let Some(tools) = parse_tools(text) else {
            return page(
                400,
                pages::problem(
                    Some(&who),
                    "Not changed",
                    "Tool names are letters, digits, '_' and '-', separated by commas (at most 64 names of 64 characters).",
                ),
            );
        };
        let next = EmergencyState {
            enabled,
            tools: (!tools.is_empty()).then_some(tools),
        };
        let canonical = next
            .tools
            .as_ref()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        if request.field("confirm") != Some("yes") {
            return page(200, pages::emergency_confirm(&who, &next, &canonical));
        }
        let reply = self
            .admin
            .change(
                next,
                request.client.ip().to_string(),
                &request.request_id,
                Some((&signed.operator.name, &signed.operator.role)),
            )
            .await;
        if reply.status != 200 {
            let sentence = reply
                .body
                .get("response")
                .and_then(Value::as_str)
                .unwrap_or("The change was not made.")
                .to_string();
            return page(
                reply.status,
                pages::problem(Some(&who), "Not changed", &sentence),
            );
        }
        let state = self.admin.emergency.state();
        page(
            200,
            pages::emergency(
                &who,
                &state,
                Some("Done: the change is in effect and recorded under your name."),
            ),
        )
    }
}

#[async_trait::async_trait]
impl ConsoleService for Console {
    async fn handle(&self, request: ConsoleRequest) -> ConsoleReply {
        self.route(&request).await
    }
}

/// **Where a console session is checked.** The session stored under `scope`, if it is live,
/// with its operator as the operator store has them now: an expired session, or one whose
/// operator was removed, re-added under the same name or given a new password (see
/// [`SessionState::account`]), is deleted and `None`. `renew` counts this as a request of the
/// session (its idle timeout starts again from `now`). `Err` when a store failed.
async fn check_session(
    sessions: &dyn SessionStore,
    records: &crate::records::Records,
    now: u64,
    timeouts: ConsoleTimeouts,
    scope: &str,
    renew: bool,
) -> Result<Option<Signed>, ()> {
    let stored = sessions
        .get(scope, SESSION_KEY, now)
        .await
        .map_err(|_| ())?;
    let Some(state) = stored.and_then(|v| serde_json::from_value::<SessionState>(v).ok()) else {
        return Ok(None);
    };
    if now >= session_end(&state, timeouts) {
        let _ = sessions.clear(scope).await;
        return Ok(None);
    }
    let operator = records
        .backend()
        .operator(&state.operator)
        .await
        .map_err(|_| ())?;
    let Some(operator) = operator.filter(|operator| account_of(operator) == state.account) else {
        // Removed, re-added under the same name, or its password changed: the session
        // belonged to an account that no longer exists as it was.
        let _ = sessions.clear(scope).await;
        return Ok(None);
    };
    if !renew {
        return Ok(Some(Signed { state, operator }));
    }
    let state = SessionState { seen: now, ..state };
    sessions
        .set(scope, SESSION_KEY, &json!(state), now)
        .await
        .map_err(|_| ())?;
    Ok(Some(Signed { state, operator }))
}

/// When the session ends unless another request renews it (runtime clock, unix seconds): the
/// earlier of its idle and absolute ends.
fn session_end(state: &SessionState, timeouts: ConsoleTimeouts) -> u64 {
    let idle_end = state.seen.saturating_add(timeouts.idle.as_secs());
    let max_end = state.created.saturating_add(timeouts.max.as_secs());
    idle_end.min(max_end)
}

/// `/records/<id>` (`false`) or `/records/<id>/content` (`true`): the record id, as typed
/// (the handlers check its shape).
fn record_path(path: &str) -> Option<(&str, bool)> {
    let rest = path.strip_prefix("/records/")?;
    match rest.split_once('/') {
        None if !rest.is_empty() => Some((rest, false)),
        Some((id, "content")) if !id.is_empty() => Some((id, true)),
        _ => None,
    }
}

/// The first value of query parameter `name`.
fn query<'r>(request: &'r ConsoleRequest, name: &str) -> Option<&'r str> {
    request
        .query
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Tool names from the emergency form: comma-separated, trimmed, empty entries skipped.
fn parse_tools(text: &str) -> Option<std::collections::BTreeSet<String>> {
    let mut tools = std::collections::BTreeSet::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let valid = name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return None;
        }
        tools.insert(name.to_string());
    }
    (tools.len() <= MAX_TOOLS).then_some(tools)
}

/// A random 43-character alphanumeric secret (~256 bits): session ids and CSRF tokens.
fn new_secret() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 43)
}

/// Whether `id` looks like one of our session ids (anything else is not even looked up).
fn valid_id(id: &str) -> bool {
    id.len() == 43 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Where a session is stored: its id is never stored, only its SHA-256 (a leaked store does
/// not hand out live sessions).
fn scope_of(id: &str) -> String {
    format!("console/{}", operator_token_hash(id))
}

/// Whether `given` is `expected`, in constant time (for equal lengths).
fn same(given: Option<&str>, expected: &str) -> bool {
    given.is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes())))
}

fn secure(tls: bool) -> &'static str {
    if tls {
        "; Secure"
    } else {
        ""
    }
}

fn expired_cookie(name: &str, tls: bool) -> String {
    format!(
        "{name}=; Path={CONSOLE_PREFIX}; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure(tls)
    )
}

fn expired_login_cookie(tls: bool) -> String {
    format!(
        "{LOGIN_COOKIE}=; Path={CONSOLE_PREFIX}/login; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure(tls)
    )
}

fn page(status: u16, html: String) -> ConsoleReply {
    ConsoleReply {
        status,
        content_type: HTML,
        body: Bytes::from(html),
        headers: Vec::new(),
        stream: None,
    }
}

fn method_not_allowed() -> ConsoleReply {
    page(
        405,
        pages::problem(
            None,
            "Method not allowed",
            "This address does not accept that HTTP method.",
        ),
    )
}

fn not_found() -> ConsoleReply {
    page(
        404,
        pages::problem(None, "Not found", "There is nothing at this address."),
    )
}

/// `reply` with a `Retry-After` of `secs` when there is one.
fn retry_after(mut reply: ConsoleReply, secs: Option<u64>) -> ConsoleReply {
    if let Some(secs) = secs {
        reply.headers.push(("retry-after", secs.max(1).to_string()));
    }
    reply
}

fn redirect(to: &str, mut headers: Vec<(&'static str, String)>) -> ConsoleReply {
    headers.push(("location", to.to_string()));
    ConsoleReply {
        headers,
        ..page(303, pages::moved(to))
    }
}

fn unavailable() -> ConsoleReply {
    page(
        503,
        pages::problem(
            None,
            "Unavailable",
            "The console's store or audit trail is unavailable, so nothing was done. Try again shortly.",
        ),
    )
}

#[cfg(test)]
mod tests;
