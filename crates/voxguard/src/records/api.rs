//! The operator records API on `/records`: who the operator is, whether their role allows the
//! request, and the JSON answer.
//!
//! **Where an operator is authenticated:** [`RecordsApi::authenticate`] — a bearer API token
//! (looked up by its SHA-256) or Basic with an operator's name and argon2id password (checked on
//! the shared argon2 workers, against a decoy when the name is unknown, at most
//! [`LOGINS_PER_MIN`] uncached checks per source and [`LOGINS_PER_MIN_TOTAL`] in all a
//! minute except at a name's known sources, [`OPERATOR_FAILURES`] failures within 10 minutes
//! per name from one address and [`OPERATOR_FAILURES_TOTAL`] per name from anywhere, counted in
//! the shared attempt store). The platform's Basic credentials are refused here whatever they
//! are. Every refusal is audited: unauthenticated ones as
//! `access_denied` aggregated per source and window (an anonymous flood cannot grow the trail
//! at request rate), authenticated ones one event each. This module must not touch storage or
//! encryption itself (`Records` does) and must not answer before the access is on record.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use percent_encoding::percent_decode_str;
use serde_json::{json, Value};
use voxguard_guard::records::{
    generate_operator_password, generate_operator_token, operator_token_hash,
    parse_operator_authorization, valid_operator_name, OperatorCredential, Permission,
};
use voxguard_guard::{
    Clock, LimitScope, Limited, PinVault, RateLimit, RateLimiter, Reason, Refusal, SecretHash,
};
use voxguard_server::{OperatorRequest, RecordsService, Reply, SecurityEvents};
use voxguard_store::{
    AttemptLimits, AttemptStore, Operator, OperatorStoreError, RecordFilter, RecordMeta,
    Reservation,
};

use super::{Actor, Records, RecordsError};
use crate::audit::AuthEvents;
use crate::hashers::Hashers;

/// Uncached password checks one source may start per minute (each costs an argon2 run).
pub const LOGINS_PER_MIN: u32 = 20;

/// Uncached password checks all sources together may start per minute: the argon2 workers are
/// shared with caller verification, and many addresses (a botnet, one host's IPv6 /48) each
/// under [`LOGINS_PER_MIN`] must not keep them busy. Bearer tokens are not limited, and a name's
/// checks at a source it signed in from before are not counted here (six sources could
/// otherwise keep every operator from signing in).
pub const LOGINS_PER_MIN_TOTAL: u32 = 120;

/// Failed password checks one operator name may have from one source address (the /48 for
/// IPv6) within [`OPERATOR_LOCK_SECS`] before the name is locked *for that address* for
/// [`OPERATOR_LOCK_SECS`]: for Basic on `/records` and the console's sign-in alike, counted in
/// the runtime's attempt store (so every replica sharing it counts together). Someone guessing
/// from one address therefore cannot lock the operator out from their own.
pub const OPERATOR_FAILURES: u32 = 10;

/// Failed password checks one operator name may have from all addresses together within
/// [`OPERATOR_LOCK_SECS`] before it is locked everywhere (guessing spread over many
/// addresses) — except where the operator signed in within the last 30 days, so that such
/// guessing cannot lock them out of their own addresses. Operator passwords are generated (24
/// characters), so this bounds a distributed attempt rather than a dictionary.
pub const OPERATOR_FAILURES_TOTAL: u32 = 100;

/// How long an operator name stays locked (for one address, or everywhere).
pub const OPERATOR_LOCK_SECS: u64 = 10 * 60;

/// The locks' limits: no escalation (an attacker must not be able to lock an operator out for
/// hours by guessing), and counts forgotten when a window of [`OPERATOR_LOCK_SECS`] ends, so the
/// maintenance purge removes the entries of names guessed once (unknown names included): the
/// store holds at most what the per-source and global limits let through in one window, twice,
/// plus the refusals of a known source's limit counted against a name the login cache
/// remembers (at most [`OPERATOR_FAILURES`] per known source before its lock refuses with a
/// read).
const fn operator_limits(max_failures: u32) -> AttemptLimits {
    AttemptLimits {
        max_failures,
        lockout_secs: OPERATOR_LOCK_SECS,
        max_lockout_secs: OPERATOR_LOCK_SECS,
        window_cap: max_failures,
        window_secs: OPERATOR_LOCK_SECS,
    }
}

/// The lock of one name from one source address ([`OPERATOR_FAILURES`]).
const SOURCE_LIMITS: AttemptLimits = operator_limits(OPERATOR_FAILURES);

/// The lock of one name from anywhere ([`OPERATOR_FAILURES_TOTAL`]).
const NAME_LIMITS: AttemptLimits = operator_limits(OPERATOR_FAILURES_TOTAL);

/// How long a source an operator signed in from is exempt from the name-wide lock
/// ([`OPERATOR_FAILURES_TOTAL`]): 30 days.
const KNOWN_SOURCE_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// The most sources remembered as known per operator: one operator's sign-ins from many
/// places (a script, spoofed sources) evict only that operator's own.
const KNOWN_PER_OPERATOR: usize = 8;

/// The most operators whose known sources are remembered.
const KNOWN_OPERATORS: usize = 4096;

/// How long a successful Basic login is remembered (so a client sending Basic on every request
/// costs one argon2 check per this period, not one per request).
const LOGIN_CACHE_MS: u64 = 5 * 60 * 1000;

/// The most remembered logins.
const LOGIN_CACHE_SIZE: usize = 1024;

/// The longest purpose accepted.
pub(crate) const MAX_PURPOSE: usize = 200;

/// The operator records API.
pub(crate) struct RecordsApi {
    pub(crate) records: Records,
    pub(crate) vault: PinVault,
    pub(crate) hashers: Arc<Hashers>,
    pub(crate) events: Arc<AuthEvents>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Failed password checks per operator name, from one address and from anywhere (keyed
    /// by hash; see [`OPERATOR_FAILURES`], [`OPERATOR_FAILURES_TOTAL`]).
    attempts: Arc<dyn AttemptStore>,
    /// [`LOGINS_PER_MIN`] per source and [`LOGINS_PER_MIN_TOTAL`] in all, the total not
    /// applied at the sources where the name signed in before.
    logins: RateLimiter,
    /// SHA-256 of (name, password) → (name, stored PHC, expiry ms).
    cache: Mutex<HashMap<String, (String, String, u64)>>,
    /// Where operators signed in: per operator name, SHA-256 of (name, [`lock_source`]) and
    /// until when (ms), at most [`KNOWN_PER_OPERATOR`]. The name-wide lock does not apply there.
    known: Mutex<HashMap<String, Vec<(String, u64)>>>,
}

/// A refusal plus, for an authenticated operator, who was refused.
type Denied = Box<Reply>;

impl RecordsApi {
    pub(crate) fn new(
        records: Records,
        vault: PinVault,
        hashers: Arc<Hashers>,
        events: Arc<AuthEvents>,
        clock: Arc<dyn Clock>,
        attempts: Arc<dyn AttemptStore>,
    ) -> Self {
        let mut logins = RateLimiter::with_clock(clock.clone());
        if let Ok(limit) = RateLimit::new(LOGINS_PER_MIN, Duration::from_secs(60)) {
            logins = logins.per_caller(limit);
        }
        if let Ok(limit) = RateLimit::new(LOGINS_PER_MIN_TOTAL, Duration::from_secs(60)) {
            logins = logins.global(limit);
        }
        Self {
            records,
            vault,
            hashers,
            events,
            clock,
            attempts,
            logins,
            cache: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Refuse an unauthenticated request: aggregated `access_denied`, then the 401.
    async fn unauthenticated(&self, request: &OperatorRequest, refusal: Refusal) -> Denied {
        // Never the path below /records: it can name a data subject.
        self.unauthenticated_at(request, voxguard_server::RECORDS_PREFIX, refusal)
            .await
    }

    /// [`unauthenticated`](Self::unauthenticated), audited under `prefix` (`/records` or the
    /// console's sign-in page).
    async fn unauthenticated_at(
        &self,
        request: &OperatorRequest,
        prefix: &str,
        refusal: Refusal,
    ) -> Denied {
        let reason = refusal.reason();
        self.events
            .auth_failed(
                request.client,
                &request.method,
                prefix,
                reason,
                &request.request_id,
            )
            .await;
        let mut reply = Reply::from(refusal);
        if reason != Reason::RateLimited {
            reply = reply.with_header(
                "www-authenticate",
                "Bearer realm=\"voxguard-records\", Basic realm=\"voxguard-records\", charset=\"UTF-8\"",
            );
        }
        Box::new(reply)
    }

    /// **Where an operator is authenticated.** The operator behind the request, or the refusal.
    pub(crate) async fn authenticate(&self, request: &OperatorRequest) -> Result<Operator, Denied> {
        let invalid = || {
            Refusal::new(
                Reason::OperatorAuthInvalid,
                "Those operator credentials are not valid.",
            )
        };
        if request.platform_credentials {
            return Err(self
                .unauthenticated(
                    request,
                    Refusal::new(
                        Reason::OperatorAuthRequired,
                        "The platform's credentials are not accepted here; use an operator's credentials.",
                    ),
                )
                .await);
        }
        let Some(header) = request.authorization.as_deref() else {
            return Err(self
                .unauthenticated(
                    request,
                    Refusal::new(
                        Reason::OperatorAuthRequired,
                        "Operator credentials are required: a bearer token, or an operator's name and password.",
                    ),
                )
                .await);
        };
        let store = self.records.backend();
        let found = match parse_operator_authorization(header.as_bytes()) {
            Err(_) => None,
            Ok(OperatorCredential::Bearer(token)) => store
                .operator_by_token_hash(&operator_token_hash(&token))
                .await
                .map_err(|_| self.unavailable())?,
            Ok(OperatorCredential::Basic { name, password }) => {
                self.check_password(request, voxguard_server::RECORDS_PREFIX, &name, &password)
                    .await?
            }
        };
        match found {
            Some(operator) => Ok(operator),
            None => Err(self.unauthenticated(request, invalid()).await),
        }
    }

    /// A console sign-in: the operator `name` if `password` is theirs, checked exactly as
    /// Basic is on `/records` (argon2id on the shared workers, a decoy for unknown names,
    /// [`LOGINS_PER_MIN`] uncached checks per source); a refusal is audited like one of
    /// `/records` (aggregated `access_denied`), under `at`. The `Err` reply carries the refusal's
    /// status: 401, 429 (with `Retry-After`) or 500.
    pub(crate) async fn sign_in(
        &self,
        client: std::net::SocketAddr,
        request_id: &str,
        at: &str,
        name: &str,
        password: &str,
    ) -> Result<Operator, Denied> {
        let request = OperatorRequest {
            request_id: request_id.to_string(),
            client,
            method: "POST".into(),
            path: String::new(),
            query: Vec::new(),
            authorization: None,
            platform_credentials: false,
            body: None,
        };
        match self.check_password(&request, at, name, password).await? {
            Some(operator) => Ok(operator),
            None => Err(self
                .unauthenticated_at(
                    &request,
                    at,
                    Refusal::new(
                        Reason::OperatorAuthInvalid,
                        "That operator name and password do not match.",
                    ),
                )
                .await),
        }
    }

    /// Refuse a signed-in console operator (one `access_denied` event, with `reason`).
    pub(crate) async fn denied(&self, actor: &Actor, reason: &str) {
        self.records.denied(actor, reason, None, None).await;
    }

    fn unavailable(&self) -> Denied {
        Box::new(Reply::from(Refusal::new(
            Reason::InternalError,
            "The records store is unavailable.",
        )))
    }

    /// The operator `name` if `password` is theirs: from the login cache, or by an argon2
    /// check (rate-limited per source, decoy-checked for unknown names).
    async fn check_password(
        &self,
        request: &OperatorRequest,
        prefix: &str,
        name: &str,
        password: &str,
    ) -> Result<Option<Operator>, Denied> {
        if !valid_operator_name(name) {
            return Ok(None);
        }
        // A locked name is refused before anything else, the login cache included: while
        // locked, a right and a wrong password get the same answer. Two counts: the name from
        // this address, and the name from anywhere — which does not apply where the operator
        // signed in before (so guessing spread over many addresses cannot lock them out of
        // their own).
        let lock_from = lock_source(request.client.ip());
        let from = operator_token_hash(&format!("{name}\0{lock_from}"));
        let known = self.known_source(name, &from);
        let mut locks = vec![(format!("operator-password-source/{from}"), &SOURCE_LIMITS)];
        if !known {
            locks.push((
                format!("operator-password/{}", operator_token_hash(name)),
                &NAME_LIMITS,
            ));
        }
        for (subject, _) in &locks {
            let status = self
                .attempts
                .attempt_status(subject, self.clock.now_unix())
                .await
                .map_err(|_| self.unavailable())?;
            if let Some(until) = status.locked_until {
                return Err(self.name_locked(request, prefix, until).await);
            }
        }
        // At a source where the name never signed in, the login limits come before the login
        // cache: once they refuse, a remembered right password gets the same refusal as any
        // other guess or name, so the cache is no oracle there, and nothing is counted or
        // written. (A right password signed in makes its source known: only an operator's
        // first sign-in at a source spends this budget.)
        if !known {
            if let Err(limited) = self.logins.check("login", &source_key(request.client.ip())) {
                return Err(self.login_limited(request, prefix, &limited).await);
            }
        }
        let store = self.records.backend();
        let operator = store.operator(name).await.map_err(|_| self.unavailable())?;
        let now = self.clock.now_ms();
        let cache_key = operator_token_hash(&format!("{name}\0{password}"));
        if let Some(operator) = &operator {
            if self.remembered(operator, Some(&cache_key), now) {
                self.remember_source(name, from);
                return Ok(Some(operator.clone()));
            }
        }
        // At a known source the cache answers first and the total budget is waived (sources
        // that each stay under their own limit can spend it, and must not keep the operator
        // out of their own). A refusal of the source's own limit is then counted as a failure
        // of the name while the cache remembers a right password of it (which it would answer
        // even now: free refusals of every other guess would be an oracle at the rate of
        // requests); otherwise it tells nothing and counts nothing.
        if known {
            // Keyed by the lock's source (an IPv6 /48), as known sources are: the global limit
            // does not bound the keys made here, a name's few known sources do.
            if let Err(limited) = self
                .logins
                .check_local("login", &format!("known/{lock_from}"))
            {
                if operator
                    .as_ref()
                    .is_some_and(|operator| self.remembered(operator, None, now))
                {
                    self.reserve(&locks, request, prefix).await?;
                    self.settle(&locks, false).await;
                }
                return Err(self.login_limited(request, prefix, &limited).await);
            }
        }
        // Counted as a failure before the check and given back only by a success, so parallel
        // guesses cannot exceed the budget. A reservation refused by the second count leaves the
        // first counted (fail closed).
        self.reserve(&locks, request, prefix).await?;
        let hash = operator
            .as_ref()
            .and_then(|op| op.password_hash.clone())
            .and_then(|phc| SecretHash::from_phc(phc).ok());
        let checked = self
            .hashers
            .check(&self.vault, vec![(password.to_string(), hash)])
            .await;
        let matched = checked.as_ref().is_ok_and(|m| *m) && operator.is_some();
        self.settle(&locks, matched).await;
        let matched = checked.map_err(|_| self.unavailable())?;
        let Some(operator) = operator.filter(|_| matched) else {
            return Ok(None);
        };
        self.remember_source(name, from);
        if let (Ok(mut cache), Some(phc)) = (self.cache.lock(), operator.password_hash.clone()) {
            if cache.len() >= LOGIN_CACHE_SIZE {
                cache.retain(|_, (_, _, until)| *until > now);
                if cache.len() >= LOGIN_CACHE_SIZE {
                    cache.clear();
                }
            }
            cache.insert(
                cache_key,
                (operator.name.clone(), phc, now + LOGIN_CACHE_MS),
            );
        }
        Ok(Some(operator))
    }

    /// Whether the login cache holds a right password of `operator` at `now` (ms), stored
    /// for their present password hash: the one under `key` (a hash of name and password), or
    /// with `None` any (at most [`LOGIN_CACHE_SIZE`] entries are read).
    fn remembered(&self, operator: &Operator, key: Option<&str>, now: u64) -> bool {
        let fits = |(cached, phc, until): &(String, String, u64)| {
            *until > now
                && *cached == operator.name
                && operator.password_hash.as_deref() == Some(phc.as_str())
        };
        self.cache.lock().is_ok_and(|cache| match key {
            Some(key) => cache.get(key).is_some_and(fits),
            None => cache.values().any(fits),
        })
    }

    /// The 429 of a refusal by the login limits, audited like any unauthenticated request.
    async fn login_limited(
        &self,
        request: &OperatorRequest,
        prefix: &str,
        limited: &Limited,
    ) -> Denied {
        let sentence = match limited.scope {
            LimitScope::Global => "Too many operator logins right now; try again shortly.",
            _ => "Too many operator logins from this address; try again shortly.",
        };
        self.unauthenticated_at(
            request,
            prefix,
            Refusal::new(Reason::RateLimited, sentence)
                .with_retry_after(limited.retry_after_secs()),
        )
        .await
    }

    /// Count an attempt as a failure on each of `locks` until [`settle`](Self::settle)d; a
    /// locked one refuses. A reservation refused by a later lock leaves the earlier ones counted
    /// (fail closed).
    async fn reserve(
        &self,
        locks: &[(String, &AttemptLimits)],
        request: &OperatorRequest,
        prefix: &str,
    ) -> Result<(), Denied> {
        let now = self.clock.now_unix();
        for (subject, limits) in locks {
            match self
                .attempts
                .reserve(subject, limits, now)
                .await
                .map_err(|_| self.unavailable())?
            {
                Reservation::Granted { .. } => {}
                Reservation::Locked { until } => {
                    let until = until.unwrap_or(now + OPERATOR_LOCK_SECS);
                    return Err(self.name_locked(request, prefix, until).await);
                }
            }
        }
        Ok(())
    }

    /// Settle the attempts [`reserve`](Self::reserve)d on `locks`: a success forgets the
    /// name's failures, a failure locks it at the limit. A failed settle leaves the
    /// reservation counted as a failure: fail closed.
    async fn settle(&self, locks: &[(String, &AttemptLimits)], success: bool) {
        for (subject, limits) in locks {
            let _ = self
                .attempts
                .settle(subject, success, limits, self.clock.now_unix())
                .await;
        }
    }

    /// Whether operator `name` signed in from `from` (a hash of name and [`lock_source`])
    /// within [`KNOWN_SOURCE_MS`] (on this replica).
    fn known_source(&self, name: &str, from: &str) -> bool {
        let now = self.clock.now_ms();
        self.known.lock().is_ok_and(|known| {
            known
                .get(name)
                .is_some_and(|sources| sources.iter().any(|(f, until)| f == from && *until > now))
        })
    }

    /// Remember that operator `name` signed in from `from`: at most [`KNOWN_PER_OPERATOR`] per
    /// operator (the one remembered longest ago goes), for at most [`KNOWN_OPERATORS`]
    /// operators (past it, the operators with nothing live go; if none, nothing is remembered).
    fn remember_source(&self, name: &str, from: String) {
        let now = self.clock.now_ms();
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        if known.len() >= KNOWN_OPERATORS && !known.contains_key(name) {
            known.retain(|_, sources| sources.iter().any(|(_, until)| *until > now));
            if known.len() >= KNOWN_OPERATORS {
                return;
            }
        }
        let sources = known.entry(name.to_string()).or_default();
        sources.retain(|(f, until)| *until > now && *f != from);
        if sources.len() >= KNOWN_PER_OPERATOR {
            if let Some(oldest) = (0..sources.len()).min_by_key(|i| sources[*i].1) {
                sources.remove(oldest);
            }
        }
        sources.push((from, now + KNOWN_SOURCE_MS));
    }

    /// Refuse a password check for a locked operator name: 429 with `Retry-After`, audited
    /// like the other unauthenticated refusals.
    async fn name_locked(&self, request: &OperatorRequest, prefix: &str, until: u64) -> Denied {
        let wait = until.saturating_sub(self.clock.now_unix()).max(1);
        self.unauthenticated_at(
            request,
            prefix,
            Refusal::new(
                Reason::RateLimited,
                "Too many failed sign-ins for this operator; wait a few minutes and try again.",
            )
            .with_retry_after(wait),
        )
        .await
    }

    /// Refuse an authenticated operator (one `access_denied` event each).
    async fn deny(
        &self,
        actor: &Actor,
        refusal: Refusal,
        record: Option<&str>,
        subject: Option<&str>,
    ) -> Reply {
        self.records
            .denied(actor, refusal.reason().as_str(), record, subject)
            .await;
        Reply::from(refusal)
    }

    async fn route(&self, request: &OperatorRequest, actor: &Actor) -> Reply {
        let segments: Vec<String> = request
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = request.method.as_str();
        match (method, segments.as_slice()) {
            ("GET", []) => self.list(request, actor).await,
            ("GET", ["audit"]) => self.audit_trail(request, actor).await,
            ("GET", ["operators"]) => self.list_operators(actor).await,
            ("POST", ["operators"]) => self.add_operator(request, actor).await,
            ("DELETE", ["operators", name]) => self.remove_operator(actor, name).await,
            ("PUT", ["operators", name]) => self.set_role(request, actor, name).await,
            ("POST", ["operators", name, "reset"]) => {
                self.reset_operator(request, actor, name).await
            }
            ("GET", ["subjects", subject]) => self.export_subject(request, actor, subject).await,
            ("DELETE", ["subjects", subject]) => self.delete_subject(actor, subject).await,
            ("GET", [id]) => self.read(request, actor, id, false).await,
            ("GET", [id, "export"]) => self.read(request, actor, id, true).await,
            ("DELETE", [id]) => self.delete(actor, id).await,
            (
                _,
                []
                | ["audit"]
                | ["operators"]
                | ["operators", _]
                | ["operators", _, "reset"]
                | ["subjects", _]
                | [_]
                | [_, "export"],
            ) => Reply::from(Refusal::new(
                Reason::MethodNotAllowed,
                "This address does not accept that HTTP method.",
            )),
            _ => Reply::from(Refusal::new(
                Reason::NotFound,
                "There is nothing at this address.",
            )),
        }
    }

    /// `Ok` when `actor`'s role has `permission`, else the audited refusal.
    async fn allowed(
        &self,
        actor: &Actor,
        permission: Permission,
        record: Option<&str>,
        subject: Option<&str>,
    ) -> Result<(), Reply> {
        if self.records.roles().allows(&actor.role, permission) {
            return Ok(());
        }
        Err(self
            .deny(
                actor,
                Refusal::new(
                    Reason::AccessDenied,
                    format!(
                        "The role {:?} does not allow {}.",
                        actor.role,
                        permission.as_str()
                    ),
                ),
                record,
                subject,
            )
            .await)
    }

    /// The `purpose` a content read must give, or the audited refusal.
    async fn purpose(
        &self,
        request: &OperatorRequest,
        actor: &Actor,
        record: Option<&str>,
        subject: Option<&str>,
    ) -> Result<String, Reply> {
        match request.query("purpose").and_then(valid_purpose) {
            Some(purpose) => Ok(purpose.to_string()),
            None => Err(self
                .deny(
                    actor,
                    Refusal::new(
                        Reason::PurposeRequired,
                        "Reading record content needs a purpose: add ?purpose=… (at most 200 characters).",
                    ),
                    record,
                    subject,
                )
                .await),
        }
    }

    async fn list(&self, request: &OperatorRequest, actor: &Actor) -> Reply {
        if let Err(reply) = self
            .allowed(actor, Permission::ListRecords, None, None)
            .await
        {
            return reply;
        }
        let filter = match filter_from(request) {
            Ok(filter) => filter,
            Err(refusal) => return Reply::from(refusal),
        };
        match self.records.list(actor, &filter).await {
            Ok(mut records) => {
                let next = (records.len() as u32 == filter.limit.unwrap_or(DEFAULT_PAGE))
                    .then(|| records.last().map(|m| m.id.clone()))
                    .flatten();
                mask_subjects(&self.records, &actor.role, &mut records);
                Reply::ok(json!({ "records": records, "next": next }))
            }
            Err(error) => failure(error),
        }
    }

    async fn read(
        &self,
        request: &OperatorRequest,
        actor: &Actor,
        id: &str,
        export: bool,
    ) -> Reply {
        if !super::valid_record_id(id) {
            // Not a record id: answered like an unknown one, and never audited as one.
            return failure(RecordsError::NotFound);
        }
        let permission = if export {
            Permission::Export
        } else {
            Permission::ReadContent
        };
        if let Err(reply) = self.allowed(actor, permission, Some(id), None).await {
            return reply;
        }
        let purpose = match self.purpose(request, actor, Some(id), None).await {
            Ok(purpose) => purpose,
            Err(reply) => return reply,
        };
        match self.records.read(actor, id, &purpose, export).await {
            Ok((meta, content)) => {
                let mut body = json!({ "record": meta, "content": content });
                if export {
                    body["exported_at"] = json!(self.clock.now_unix());
                }
                Reply::ok(body)
            }
            Err(error) => failure(error),
        }
    }

    async fn delete(&self, actor: &Actor, id: &str) -> Reply {
        if !super::valid_record_id(id) {
            return failure(RecordsError::NotFound);
        }
        if let Err(reply) = self
            .allowed(actor, Permission::Delete, Some(id), None)
            .await
        {
            return reply;
        }
        match self.records.delete(actor, id).await {
            Ok(meta) => Reply::ok(json!({ "deleted": meta })),
            Err(error) => failure(error),
        }
    }

    async fn export_subject(
        &self,
        request: &OperatorRequest,
        actor: &Actor,
        subject: &str,
    ) -> Reply {
        if let Err(reply) = self
            .allowed(actor, Permission::Export, None, Some(subject))
            .await
        {
            return reply;
        }
        let purpose = match self.purpose(request, actor, None, Some(subject)).await {
            Ok(purpose) => purpose,
            Err(reply) => return reply,
        };
        match self.records.export_subject(actor, subject, &purpose).await {
            Ok(records) => Reply::ok(subject_export(subject, self.clock.now_unix(), records)),
            Err(error) => failure(error),
        }
    }

    async fn delete_subject(&self, actor: &Actor, subject: &str) -> Reply {
        if let Err(reply) = self
            .allowed(actor, Permission::Delete, None, Some(subject))
            .await
        {
            return reply;
        }
        match self.records.delete_subject(actor, subject).await {
            Ok(report) => Reply::ok(json!({ "deleted": report })),
            Err(error) => failure(error),
        }
    }

    async fn audit_trail(&self, request: &OperatorRequest, actor: &Actor) -> Reply {
        if let Err(reply) = self.allowed(actor, Permission::ReadAudit, None, None).await {
            return reply;
        }
        let number = |name: &str, default: u64, max: u64| -> Result<u64, Refusal> {
            match request.query(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        Refusal::new(
                            Reason::InvalidQuery,
                            format!("The query parameter {name} is not valid."),
                        )
                    }),
            }
        };
        let (from, limit) = match (number("from", 1, u64::MAX), number("limit", 100, 1000)) {
            (Ok(from), Ok(limit)) => (from, limit as u32),
            (Err(refusal), _) | (_, Err(refusal)) => return Reply::from(refusal),
        };
        match self.records.audit_page(actor, from, limit).await {
            Ok(Some(records)) => {
                let next = (records.len() as u32 == limit)
                    .then(|| records.last().map(|r| r.seq + 1))
                    .flatten();
                Reply::ok(json!({ "records": records, "next": next }))
            }
            Ok(None) => Reply::from(Refusal::new(
                Reason::NotFound,
                "This runtime's audit trail cannot be read over the API (no SQLite audit trail).",
            )),
            Err(error) => failure(error),
        }
    }

    async fn list_operators(&self, actor: &Actor) -> Reply {
        if let Err(reply) = self
            .allowed(actor, Permission::ManageOperators, None, None)
            .await
        {
            return reply;
        }
        match self.records.list_operators(actor).await {
            Ok(operators) => Reply::ok(json!({ "operators": operators })),
            Err(error) => failure(error),
        }
    }

    async fn add_operator(&self, request: &OperatorRequest, actor: &Actor) -> Reply {
        if let Err(reply) = self
            .allowed(actor, Permission::ManageOperators, None, None)
            .await
        {
            return reply;
        }
        let body = request.body.clone().unwrap_or(Value::Null);
        let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
        let role = body.get("role").and_then(Value::as_str).unwrap_or_default();
        let with_password = body.get("password").and_then(Value::as_bool) == Some(true);
        match self
            .records
            .add_operator(actor, name, role, with_password)
            .await
        {
            Ok((operator, secret)) => {
                let mut reply = json!({ "operator": operator });
                reply[if with_password { "password" } else { "token" }] = json!(secret.as_str());
                Reply {
                    status: 201,
                    ..Reply::ok(reply)
                }
            }
            Err(error) => self.refused_change(actor, error).await,
        }
    }

    async fn remove_operator(&self, actor: &Actor, name: &str) -> Reply {
        if let Err(reply) = self
            .allowed(actor, Permission::ManageOperators, None, None)
            .await
        {
            return reply;
        }
        match self.records.remove_operator(actor, name).await {
            Ok(()) => Reply::ok(json!({ "removed": name })),
            Err(error) => self.refused_change(actor, error).await,
        }
    }

    async fn reset_operator(&self, request: &OperatorRequest, actor: &Actor, name: &str) -> Reply {
        if let Err(reply) = self
            .allowed(actor, Permission::ManageOperators, None, None)
            .await
        {
            return reply;
        }
        let password = match request.body.as_ref().and_then(|b| b.get("password")) {
            Some(Value::Bool(password)) => *password,
            _ => {
                return Reply::from(Refusal::new(
                    Reason::InvalidQuery,
                    "Say what to reset: {\"password\": true} for a new password, {\"password\": false} for a new API token.",
                ))
            }
        };
        match self
            .records
            .reset_operator_secret(actor, name, password)
            .await
        {
            Ok((operator, secret)) => {
                let mut reply = json!({ "operator": operator });
                reply[if password { "password" } else { "token" }] = json!(secret.as_str());
                Reply::ok(reply)
            }
            Err(error) => self.refused_change(actor, error).await,
        }
    }

    async fn set_role(&self, request: &OperatorRequest, actor: &Actor, name: &str) -> Reply {
        if let Err(reply) = self
            .allowed(actor, Permission::ManageOperators, None, None)
            .await
        {
            return reply;
        }
        let role = request
            .body
            .as_ref()
            .and_then(|b| b.get("role"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        match self.records.set_operator_role(actor, name, role).await {
            Ok(operator) => Reply::ok(json!({ "operator": operator })),
            Err(error) => self.refused_change(actor, error).await,
        }
    }
}

#[async_trait::async_trait]
impl RecordsService for RecordsApi {
    async fn handle(&self, request: OperatorRequest) -> Reply {
        let operator = match self.authenticate(&request).await {
            Ok(operator) => operator,
            Err(reply) => return *reply,
        };
        let actor = Actor {
            operator: operator.name,
            role: operator.role,
            source: Some(request.client.ip().to_string()),
            request_id: Some(request.request_id.clone()),
        };
        self.route(&request, &actor).await
    }
}

/// The query of `GET /records`.
fn filter_from(request: &OperatorRequest) -> Result<RecordFilter, Refusal> {
    record_filter(|name| request.query(name).map(str::to_string)).map_err(|what| {
        Refusal::new(
            Reason::InvalidQuery,
            format!("The query parameter {what} is not valid."),
        )
    })
}

/// The default page size of a records listing.
pub(crate) const DEFAULT_PAGE: u32 = 100;

/// A records listing's filter from its parameters, read through `lookup` (`subject`, `call_id`,
/// `kind`, `from` and `to` as unix seconds, `limit` 1–1000 with [`DEFAULT_PAGE`] by default,
/// `after`): the one validation the records API and the security console share. `Err` names
/// the first parameter that is not valid.
pub(crate) fn record_filter(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<RecordFilter, &'static str> {
    let time = |name: &'static str| -> Result<Option<u64>, &'static str> {
        lookup(name)
            .map(|v| v.parse::<u64>().map_err(|_| name))
            .transpose()
    };
    let subject = lookup("subject");
    if subject.as_deref().is_some_and(|s| !super::valid_subject(s)) {
        return Err("subject");
    }
    let kind = lookup("kind");
    if kind
        .as_deref()
        .is_some_and(|k| super::RecordKind::parse(k).is_none())
    {
        return Err("kind");
    }
    let call_id = lookup("call_id");
    if call_id
        .as_deref()
        .is_some_and(|c| c.is_empty() || c.len() > 128)
    {
        return Err("call_id");
    }
    let limit = lookup("limit")
        .map(|v| {
            v.parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or("limit")
        })
        .transpose()?
        .or(Some(DEFAULT_PAGE));
    let after = lookup("after");
    if after.as_deref().is_some_and(|a| a.len() > 64) {
        return Err("after");
    }
    Ok(RecordFilter {
        subject,
        call_id,
        kind,
        from: time("from")?,
        to: time("to")?,
        limit,
        after,
        live_at: None,
    })
}

/// The document of a data-subject export (the records API's answer, the console's download
/// and `voxguard records export --subject`): the subject, when it was exported (unix seconds),
/// and every record with its content.
pub fn subject_export(subject: &str, exported_at: u64, records: Vec<(RecordMeta, Value)>) -> Value {
    json!({
        "subject": subject,
        "exported_at": exported_at,
        "records": records
            .into_iter()
            .map(|(meta, content)| json!({ "record": meta, "content": content }))
            .collect::<Vec<_>>(),
    })
}

/// Minimum necessary: for a role that may not read content (auditor), each subject of a
/// listing becomes the pseudonym the audit trail uses, never the patient id (the records API's
/// listing and the console's record pages).
pub(crate) fn mask_subjects(records: &Records, role: &str, metas: &mut [RecordMeta]) {
    if !records.roles().allows(role, Permission::ReadContent) {
        for meta in metas {
            meta.subject = records.subject_ref(&meta.subject);
        }
    }
}

/// The purpose an operator gave for reading content, trimmed, if it is usable: 1 to
/// [`MAX_PURPOSE`] characters (the records API's `?purpose=` and the console's purpose field).
pub(crate) fn valid_purpose(text: &str) -> Option<&str> {
    let purpose = text.trim();
    (!purpose.is_empty() && purpose.chars().count() <= MAX_PURPOSE).then_some(purpose)
}

/// A records failure as the operator sees it: never content, SQL or a subject id.
fn failure(error: RecordsError) -> Reply {
    let refusal = match &error {
        RecordsError::NotFound => Refusal::new(Reason::RecordNotFound, "There is no such record."),
        RecordsError::InvalidSubject => Refusal::new(
            Reason::InvalidQuery,
            "The subject id must be 1 to 128 characters without control characters.",
        ),
        RecordsError::Crypto(_) | RecordsError::KeyShredded | RecordsError::Corrupt => {
            tracing::error!(target: "voxguard::security", %error, "a record could not be decrypted");
            Refusal::new(
                Reason::InternalError,
                format!("The record cannot be read: {error}."),
            )
        }
        RecordsError::AuditUnavailable => Refusal::new(
            Reason::AuditUnavailable,
            "The audit trail could not be written, so nothing was done.",
        ),
        RecordsError::Store(voxguard_store::StoreError::UnknownCursor) => Refusal::new(
            Reason::InvalidQuery,
            "The `after` cursor names a record that no longer exists; start the listing again.",
        ),
        RecordsError::Store(_) => {
            tracing::error!(%error, "records store failed");
            Refusal::new(Reason::InternalError, "The records store is unavailable.")
        }
        RecordsError::Operator(_) => {
            Refusal::new(Reason::InvalidQuery, "The operator request is not valid.")
        }
    };
    Reply::from(refusal)
}

impl RecordsApi {
    /// Answer a refused operator change, auditing it first (`access_denied` with the
    /// refusal's reason) when the rules refused it; a store failure is answered as such.
    async fn refused_change(&self, actor: &Actor, error: RecordsError) -> Reply {
        let reply = operator_failure(error);
        if let Some(reason) = reply.body.get("error").and_then(Value::as_str) {
            if reply.status != 500 && reply.status != 503 {
                self.records.denied(actor, reason, None, None).await;
            }
        }
        reply
    }
}

/// An operator-management failure.
fn operator_failure(error: RecordsError) -> Reply {
    match error {
        RecordsError::Operator(problem) => Reply::from(Refusal::new(
            match &problem {
                p if p.is_conflict() => Reason::OperatorConflict,
                super::OperatorProblem::NotFound(_) => Reason::NotFound,
                _ => Reason::InvalidQuery,
            },
            problem.to_string(),
        )),
        other => failure(other),
    }
}

/// The source a sign-in lock counts under: the address for IPv4, the /48 for IPv6 (one host
/// commonly holds a /48 or a /56: per /64 it could spread its guesses over thousands of
/// sources).
fn lock_source(ip: IpAddr) -> String {
    match voxguard_guard::source_network(ip, 48) {
        v6 @ IpAddr::V6(_) => format!("{v6}/48"),
        v4 => v4.to_string(),
    }
}

/// The key uncached logins are limited under: the address (the /64 for IPv6).
fn source_key(ip: IpAddr) -> String {
    voxguard_guard::source_network(ip, 64).to_string()
}

/// Generated secrets, re-exported for the operator helpers in `Records`.
pub(crate) fn new_secret(password: bool) -> zeroize::Zeroizing<String> {
    if password {
        generate_operator_password()
    } else {
        generate_operator_token()
    }
}

impl From<OperatorStoreError> for RecordsError {
    fn from(error: OperatorStoreError) -> Self {
        match error {
            OperatorStoreError::Exists { name } => {
                RecordsError::Operator(super::OperatorProblem::Exists(name))
            }
            OperatorStoreError::TokenInUse => {
                RecordsError::Operator(super::OperatorProblem::TokenCollision)
            }
            OperatorStoreError::Store(store) => RecordsError::Store(store),
        }
    }
}

#[cfg(test)]
mod tests;
