//! The operator endpoints of a runtime: `POST /admin/emergency` (the emergency switch) and the
//! runtime part of `GET /ready/detail`.
//!
//! Owns checking an emergency change, auditing it *before* it takes effect (a change that cannot
//! be recorded is not made), and logging it as a security event. It must not authenticate: the
//! server admits only the admin credentials to these paths.

use std::sync::Arc;

use serde_json::Value;
use voxguard_guard::{AuditKind, EmergencyState, EmergencySwitch, Outcome, Reason, Refusal};
use voxguard_server::{AdminService, Reply, RequestInfo};

use crate::audit::Auditor;
use crate::state::SharedEmergency;

/// The operator endpoints: the emergency switch and readiness detail.
pub(crate) struct Admin {
    pub(crate) emergency: Arc<EmergencySwitch>,
    pub(crate) auditor: Auditor,
    /// The switch every replica shares (PostgreSQL state only).
    pub(crate) shared: Option<SharedEmergency>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EmergencyRequest {
    enabled: bool,
    #[serde(default)]
    tools: Option<Vec<String>>,
}

impl Admin {
    /// **Where the emergency switch changes.** Audit `next` (naming `operator` and their role
    /// when a console operator asked), share it with the other replicas, then apply it. A
    /// change that cannot be recorded or shared is not made. Used by `POST /admin/emergency`
    /// and by the security console.
    pub(crate) async fn change(
        &self,
        next: EmergencyState,
        source: String,
        request_id: &str,
        operator: Option<(&str, &str)>,
    ) -> Reply {
        let outcome = if next.enabled {
            Outcome::Enabled
        } else {
            Outcome::Disabled
        };
        let event = |outcome, arguments| {
            let mut event = self.auditor.event(AuditKind::EmergencyToggled, outcome);
            event.arguments = Some(arguments);
            event.source = Some(source.clone());
            event.request_id = Some(request_id.to_string());
            if let Some((name, role)) = operator {
                event.operator = Some(name.to_string());
                event.role = Some(role.to_string());
            }
            event
        };
        let asked = serde_json::json!({ "enabled": next.enabled, "tools": next.tools });
        if self.auditor.record(event(outcome, asked)).await.is_err() {
            return Reply::from(Refusal::new(
                Reason::AuditUnavailable,
                "The change could not be recorded, so it was not made.",
            ));
        }
        if let Some(shared) = &self.shared {
            // Every replica or none: a change that cannot be shared is not made here either.
            if let Err(error) = shared.publish(&next).await {
                tracing::error!(%error, "the emergency change could not be stored for the other replicas; not made");
                // The trail already says the change was asked for: say it was not made.
                let not_made = serde_json::json!({ "enabled": next.enabled, "tools": next.tools, "made": false });
                let _ = self.auditor.record(event(Outcome::Failed, not_made)).await;
                return Reply::from(Refusal::new(
                    Reason::StoreUnavailable,
                    "The change could not be shared with the other replicas, so it was not made.",
                ));
            }
        }
        let previous = self.emergency.set(next.clone());
        tracing::warn!(
            target: "voxguard::security",
            event = "emergency_toggled",
            enabled = next.enabled,
            tools = ?next.tools,
            was_enabled = previous.enabled,
            client = %source,
            operator = ?operator.map(|(name, _)| name),
            request_id = %request_id,
            "emergency switch changed"
        );
        Reply::ok(serde_json::json!({ "emergency": next, "previous": previous }))
    }
}

#[async_trait::async_trait]
impl AdminService for Admin {
    async fn emergency(&self, request: &RequestInfo, body: Value) -> Reply {
        // Only a JSON object: serde would also read a struct from an array such as [true].
        let parsed = match body {
            Value::Object(_) => serde_json::from_value::<EmergencyRequest>(body).ok(),
            _ => None,
        };
        let Some(change) = parsed else {
            return Reply::from(Refusal::new(
                Reason::InvalidRequest,
                "Send {\"enabled\": true|false, \"tools\": [names] (optional; default every sensitive tool)}.",
            ));
        };
        let next = EmergencyState {
            enabled: change.enabled,
            tools: change
                .tools
                .map(|t| t.into_iter().collect())
                .filter(|t: &std::collections::BTreeSet<String>| !t.is_empty()),
        };
        self.change(
            next,
            request.client.ip().to_string(),
            &request.request_id,
            None,
        )
        .await
    }

    async fn detail(&self) -> Value {
        let mut detail = serde_json::json!({ "emergency": self.emergency.state() });
        if let Some(shared) = &self.shared {
            let state = |result: Result<(), voxguard_store::StoreError>| match result {
                Ok(()) => serde_json::json!({ "ready": true }),
                Err(error) => serde_json::json!({ "ready": false, "reason": error.to_string() }),
            };
            let database = state(shared.shared.database.ping().await);
            let limits = shared.shared.limits.backend();
            let mut backends = serde_json::Map::new();
            backends.insert("postgres".into(), database);
            if limits == "redis" {
                backends.insert("redis".into(), state(shared.shared.limits.ping().await));
            }
            detail["state"] = Value::Object(backends);
        } else {
            detail["state"] = serde_json::json!({ "sqlite": { "ready": true } });
        }
        detail
    }
}
