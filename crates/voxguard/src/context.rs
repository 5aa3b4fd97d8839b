//! What a handler knows about the call: [`CallContext`] and its server-side [`Session`].
//!
//! Owns the boundary between untrusted call data and trusted state. Caller number, name and
//! `global_data` come from the platform (and, through the conversation, from the caller and
//! the LLM): they are context, never proof. The [`Session`] is server-side state keyed by the
//! call (agent + call_id + SWML render) in a [`SessionStore`]; verification flags and counters
//! belong there. It must not run policies or verification itself (`pipeline`, `verification`),
//! and it depends on nothing above it: session failures are [`SessionError`]s, which a handler's
//! `?` turns into a `ToolError`.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use voxguard_store::{SessionStore, StoreError};

use crate::services::Services;
use crate::verify_policy::VerificationPolicy;

/// Session key holding the role granted by a verification (runtime-internal).
pub(crate) const ROLE_KEY: &str = "__vg.role";
/// Session key holding the verified subject (runtime-internal).
pub(crate) const SUBJECT_KEY: &str = "__vg.subject";

/// Everything a handler may use about the current call.
#[derive(Clone)]
pub struct CallContext {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    agent: String,
    services: Arc<Services>,
    policy: Arc<VerificationPolicy>,
    call_id: String,
    caller_number: Option<String>,
    caller_name: Option<String>,
    global_data: Map<String, Value>,
    request_id: String,
    session: Session,
    pay_link: Option<Arc<PayLink>>,
}

/// What a tool needs to render a payment: how to mint the connector's token and its URL. Set
/// by the pipeline for secure tools (a payment belongs to the SWML render of the call).
pub(crate) struct PayLink {
    pub(crate) keys: voxguard_guard::KeyRing,
    pub(crate) info: voxguard_server::RequestInfo,
    pub(crate) render: String,
    pub(crate) routes: voxguard_server::AgentRoutes,
    /// The connector's own host (`VOXGUARD_PAYMENT_CONNECTOR_URL`), or `None` for this one.
    pub(crate) connector_base: Option<url::Url>,
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("call_id", &self.inner.call_id)
            .field("request_id", &self.inner.request_id)
            .finish_non_exhaustive()
    }
}

impl CallContext {
    /// A context for `call_id` of `agent`, with its session in `store`, the system clock, an
    /// in-memory attempt store and the default verification policy. The runtime builds one per
    /// SWAIG request; build your own to unit-test a handler.
    pub fn new(agent: &str, call_id: impl Into<String>, store: Arc<dyn SessionStore>) -> Self {
        let call_id = call_id.into();
        let scope = format!("{agent}/{call_id}");
        Self::with_services(
            agent,
            call_id,
            scope,
            store,
            Arc::new(Services::default()),
            Arc::new(VerificationPolicy::default()),
        )
    }

    /// A context whose session lives under `scope` (the runtime scopes sessions by agent, call
    /// and SWML render, see `pipeline`).
    pub(crate) fn with_services(
        agent: &str,
        call_id: impl Into<String>,
        scope: String,
        store: Arc<dyn SessionStore>,
        services: Arc<Services>,
        policy: Arc<VerificationPolicy>,
    ) -> Self {
        let session = Session {
            scope,
            store,
            services: services.clone(),
        };
        Self {
            inner: Arc::new(Inner {
                agent: agent.to_string(),
                services,
                policy,
                session,
                call_id: call_id.into(),
                caller_number: None,
                caller_name: None,
                global_data: Map::new(),
                request_id: String::new(),
                pay_link: None,
            }),
        }
    }

    /// Set the caller's number and name (as the platform reported them).
    pub fn with_caller(mut self, number: Option<String>, name: Option<String>) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.caller_number = number;
        inner.caller_name = name;
        self
    }

    /// Set the platform's `global_data`.
    pub fn with_global_data(mut self, global_data: Map<String, Value>) -> Self {
        Arc::make_mut(&mut self.inner).global_data = global_data;
        self
    }

    /// Let this call's tools request payments (the pipeline does this for secure tools).
    pub(crate) fn with_pay_link(mut self, link: PayLink) -> Self {
        Arc::make_mut(&mut self.inner).pay_link = Some(Arc::new(link));
        self
    }

    /// Set the request id used in logs.
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.inner).request_id = request_id.into();
        self
    }

    /// The agent handling the call.
    pub fn agent_name(&self) -> &str {
        &self.inner.agent
    }

    /// The runtime's shared services (clock, attempts, vault, hashers, auditor).
    pub(crate) fn services(&self) -> &Services {
        &self.inner.services
    }

    /// The agent's verification policy.
    pub(crate) fn verification_policy(&self) -> &VerificationPolicy {
        &self.inner.policy
    }

    /// The platform's call id.
    pub fn call_id(&self) -> &str {
        &self.inner.call_id
    }

    /// The caller's number as the platform saw it. Spoofable: identify with it, never
    /// authorize with it alone.
    pub fn caller_number(&self) -> Option<&str> {
        self.inner.caller_number.as_deref()
    }

    /// The caller's name as the platform saw it.
    pub fn caller_name(&self) -> Option<&str> {
        self.inner.caller_name.as_deref()
    }

    /// The platform's `global_data`: conversation context only, never authoritative.
    pub fn global_data(&self) -> &Map<String, Value> {
        &self.inner.global_data
    }

    /// The id of the current request.
    pub fn request_id(&self) -> &str {
        &self.inner.request_id
    }

    /// Server-side state for this call.
    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    /// Name the call's data subject — the customer or patient id — once you know who the
    /// caller is (after verification): from now on the call's records (tool logs, summary,
    /// transcript) are stored under it, so `GET/DELETE /records/subjects/{subject}` finds and
    /// deletes them. Before, records belong to the call itself (`call:<call_id>`). A
    /// successful `verify_secret` sets it for you. Lives in server-side session state: the
    /// caller and the LLM cannot change it.
    pub async fn set_subject(&self, subject: &str) -> Result<(), SessionError> {
        if !crate::records::valid_subject(subject) {
            return Err(SessionError::InvalidSubject);
        }
        self.session().set(SUBJECT_KEY, subject).await
    }

    /// Ask the platform to collect a card payment for `request` — an amount from your own
    /// server-side state (a cart, an invoice), never from the LLM's arguments. The pending
    /// payment is kept in the call's session; the returned result carries the `pay` verb,
    /// pointed at this agent's payment connector with a token bound to this payment. The AI
    /// only ever hears `${pay_result}`; read the real outcome with
    /// [`payment_outcome`](Self::payment_outcome). Needs a gateway
    /// (`AgentBuilder::payments`) and a secure tool.
    pub async fn request_payment(
        &self,
        request: &crate::payments::PaymentRequest,
    ) -> Result<voxguard_swml::FunctionResult, SessionError> {
        use crate::payments::{
            new_payment_id, open_key, pending_key, Pending, LAST_PAYMENT_KEY, PAYMENT_WINDOW_SECS,
            PAY_FUNCTION,
        };
        let Some(link) = self.inner.pay_link.as_ref() else {
            return Err(SessionError::PaymentsNotConfigured);
        };
        let now = self.services().clock.now_unix();
        let session = self.session();
        // One payment at a time per call: a completed one stays completed (a second checkout
        // must not charge the order again); an open one is withdrawn (its link stops working)
        // unless it is being charged right now.
        if let Some(previous) = session.get::<String>(LAST_PAYMENT_KEY).await? {
            if session
                .get::<Value>(&crate::payments::done_key(&previous))
                .await?
                .is_some()
            {
                return Err(SessionError::PaymentCompleted);
            }
            if session.take(&open_key(&previous)).await?.is_none() {
                let pending = session.get::<Value>(&pending_key(&previous)).await?;
                if pending.is_some() {
                    return Err(SessionError::PaymentInProgress);
                }
            }
            session.remove(&pending_key(&previous)).await?;
        }
        let id = new_payment_id();
        let pending = Pending {
            id: id.clone(),
            amount_cents: request.amount_cents,
            currency: request.currency.clone(),
            description: request.description.clone(),
            reusable: request.reusable,
            expires_at: now + PAYMENT_WINDOW_SECS,
        };
        session.set(&pending_key(&id), &pending).await?;
        session.set(&open_key(&id), &true).await?;
        session.set(LAST_PAYMENT_KEY, &id).await?;
        let token = link.keys.mint_with_session_at(
            self.call_id(),
            PAY_FUNCTION,
            &format!("{}|{id}", link.render),
            now,
        );
        let base = link
            .connector_base
            .as_ref()
            .unwrap_or(&link.info.public_base);
        let connector = link
            .info
            .webhook_url_at(base, link.routes.pay(), &[("__token", &token)]);
        let status =
            link.info
                .webhook_url_at(base, link.routes.pay_status(), &[("__token", &token)]);
        Ok(voxguard_swml::FunctionResult::new(
            "I'll collect the card details securely now; please use your keypad.",
        )
        .pay(request.verb(connector, status)))
    }

    /// The outcome of this call's latest payment, as the payment connector recorded it in
    /// server state: the charge once there is one, else the latest decline (`None` while
    /// nothing was charged or declined). Never trust the LLM's account of `${pay_result}`:
    /// read this.
    pub async fn payment_outcome(
        &self,
    ) -> Result<Option<crate::payments::PaymentOutcome>, SessionError> {
        let Some(id) = self
            .session()
            .get::<String>(crate::payments::LAST_PAYMENT_KEY)
            .await?
        else {
            return Ok(None);
        };
        if let Some(done) = self.session().get(&crate::payments::done_key(&id)).await? {
            return Ok(Some(done));
        }
        self.session()
            .get(&crate::payments::declined_key(&id))
            .await
    }

    /// The call's data subject, if one was set.
    pub async fn subject(&self) -> Result<Option<String>, SessionError> {
        self.session().get::<String>(SUBJECT_KEY).await
    }

    /// Keep `content` as a record of `kind` for this call (e.g. a recording reference or a
    /// masked payment result): redacted, encrypted under the call's data subject and kept
    /// for the kind's retention. Returns the record id, or `None` when the runtime keeps no
    /// records.
    pub async fn save_record(
        &self,
        kind: crate::records::RecordKind,
        content: &Value,
    ) -> Result<Option<String>, SessionError> {
        let Some(records) = &self.services().records else {
            return Ok(None);
        };
        let subject = self.subject().await?;
        records
            .store(
                self.agent_name(),
                self.call_id(),
                subject.as_deref(),
                kind,
                content,
            )
            .await
            .map(|meta| Some(meta.id))
            .map_err(|error| SessionError::Records(error.to_string()))
    }
}

/// Why a session read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The session store failed.
    #[error("session store failed: {0}")]
    Store(#[from] StoreError),
    /// A session value could not be converted. (The serde message, which can quote values,
    /// is only reachable through `source()`.)
    #[error("session value has an unexpected shape")]
    Shape(#[from] serde_json::Error),
    /// A subject id that is empty, longer than 128 characters or holds control characters.
    #[error("the subject id must be 1 to 128 characters without control characters")]
    InvalidSubject,
    /// A record could not be stored.
    #[error("the record could not be stored: {0}")]
    Records(String),
    /// This call's payment is already completed; it is not requested again.
    #[error("this call's payment is already completed")]
    PaymentCompleted,
    /// This call's payment is being charged right now.
    #[error("this call's payment is being processed")]
    PaymentInProgress,
    /// A payment was requested by an agent without a gateway, or by an insecure tool.
    #[error("payments need a payment gateway (AgentBuilder::payments) and a secure tool")]
    PaymentsNotConfigured,
}

/// Typed, server-side state for one call, persisted in the agent's [`SessionStore`]. Expiry is
/// decided by the runtime's clock.
#[derive(Clone)]
pub struct Session {
    scope: String,
    store: Arc<dyn SessionStore>,
    services: Arc<Services>,
}

impl Session {
    /// The runtime clock's reading, in the whole seconds the store decides expiry with.
    fn now(&self) -> u64 {
        self.services.clock.now_unix()
    }

    /// Read `key` as `T` (`None` when unset).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        match self.store.get(&self.scope, key, self.now()).await? {
            None => Ok(None),
            Some(value) => Ok(Some(serde_json::from_value(value)?)),
        }
    }

    /// Store `value` under `key`.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), SessionError> {
        let value = serde_json::to_value(value)?;
        self.store.set(&self.scope, key, &value, self.now()).await?;
        Ok(())
    }

    /// Whether the boolean flag `key` is set to `true`.
    pub async fn flag(&self, key: &str) -> Result<bool, SessionError> {
        Ok(self.get::<bool>(key).await?.unwrap_or(false))
    }

    /// Remove `key` and return its value, atomically: of several concurrent takes, only one
    /// gets the value.
    pub async fn take(&self, key: &str) -> Result<Option<Value>, SessionError> {
        Ok(self.store.take(&self.scope, key, self.now()).await?)
    }

    /// Remove `key`.
    pub async fn remove(&self, key: &str) -> Result<(), SessionError> {
        self.store.remove(&self.scope, key).await?;
        Ok(())
    }

    /// Remove everything stored for this call.
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.store.clear(&self.scope).await?;
        Ok(())
    }
}
