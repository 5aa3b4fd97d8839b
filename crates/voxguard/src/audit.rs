//! Where an audit event is written: [`Auditor::record`].
//!
//! Owns turning what the runtime decided (a refusal, a tool call and its outcome, a
//! verification, an emergency toggle, a refused login) into an [`AuditEvent`] — stamped by the
//! runtime's one clock, caller masked to its last four digits, arguments passed through the
//! redactor — and appending it to the configured [`AuditSink`] *before* the response that
//! depends on it is sent. Without a sink nothing is recorded (the security log line is still
//! written by the caller). It must not decide outcomes: callers pass typed kinds and outcomes.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use voxguard_guard::{
    Anomaly, AnomalyDetector, AuditEvent, AuditKind, Clock, Outcome, Reason, Redactor, SystemClock,
};
use voxguard_server::{Metrics, SecurityEvents};
use voxguard_store::AuditSink;

/// The audit trail of a runtime: a sink (or none), the clock that stamps events and the
/// redactor applied to arguments.
#[derive(Clone)]
pub(crate) struct Auditor {
    sink: Option<Arc<dyn AuditSink>>,
    clock: Arc<dyn Clock>,
    redactor: Redactor,
    pub(crate) metrics: Metrics,
    detector: Option<Arc<AnomalyDetector>>,
    on_anomaly: Option<AnomalyCallback>,
}

impl Default for Auditor {
    fn default() -> Self {
        Self::new(None, Arc::new(SystemClock), Metrics::new(), None, None)
    }
}

/// What `Runtime::on_anomaly` registers.
pub(crate) type AnomalyCallback = Arc<
    dyn Fn(Anomaly) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// The audit trail could not be written; the request must not be answered as if it were.
#[derive(Debug)]
pub(crate) struct AuditUnavailable;

impl Auditor {
    pub(crate) fn new(
        sink: Option<Arc<dyn AuditSink>>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
        detector: Option<Arc<AnomalyDetector>>,
        on_anomaly: Option<AnomalyCallback>,
    ) -> Self {
        Self {
            sink,
            clock,
            redactor: Redactor::new(),
            metrics,
            detector,
            on_anomaly,
        }
    }

    /// Run the anomaly rules over `event`: each finding becomes a warn-level security event, a
    /// metric and (in the background, never delaying the request) a call of the callback.
    fn watch(&self, event: &AuditEvent) {
        let Some(detector) = &self.detector else {
            return;
        };
        for anomaly in detector.observe(event) {
            tracing::warn!(
                target: "voxguard::security",
                event = "anomaly",
                rule = anomaly.rule,
                subject = %anomaly.subject,
                detail = %anomaly.detail,
                "anomaly detected"
            );
            self.metrics.anomaly(anomaly.rule);
            if let Some(callback) = &self.on_anomaly {
                tokio::spawn(callback(anomaly));
            }
        }
    }

    /// A blank event of `kind` with `outcome`, stamped now by the runtime's clock.
    pub(crate) fn event(&self, kind: AuditKind, outcome: Outcome) -> AuditEvent {
        let mut event = AuditEvent::new(kind, self.clock.now_ms());
        event.outcome = Some(outcome);
        event
    }

    /// Redacted copy of tool arguments for the record; `extra` names are masked on top of the
    /// redactor's defaults.
    pub(crate) fn redact_args(&self, args: &Value, extra: &[String]) -> Value {
        let mut copy = args.clone();
        if extra.is_empty() {
            self.redactor.redact_json(&mut copy);
        } else {
            self.redactor
                .clone()
                .with_sensitive_fields(extra.iter().cloned())
                .redact_json(&mut copy);
        }
        copy
    }

    /// **Where an audit event is written.** Returns once the sink has made it durable.
    pub(crate) async fn record(&self, event: AuditEvent) -> Result<(), AuditUnavailable> {
        self.watch(&event);
        let Some(sink) = &self.sink else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let written = sink.append(event).await;
        self.metrics.audit_write(started.elapsed());
        match written {
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::error!(target: "voxguard::security", %error, "audit event could not be written");
                Err(AuditUnavailable)
            }
        }
    }
}

/// The last four characters of a caller number or destination, for logs and audit records.
pub(crate) fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let keep = chars.len().min(4);
    let tail: String = chars[chars.len() - keep..].iter().collect();
    format!("***{tail}")
}

/// Refused logins at the HTTP layer go to the audit trail too.
pub(crate) struct AuthEvents(pub(crate) Auditor);

#[async_trait::async_trait]
impl SecurityEvents for AuthEvents {
    async fn auth_failed(
        &self,
        client: SocketAddr,
        method: &str,
        path: &str,
        reason: Reason,
        request_id: &str,
    ) {
        self.0.metrics.refusal(reason.as_str());
        let mut event = self.0.event(AuditKind::AuthFailed, Outcome::Refused);
        event.reason = Some(reason.as_str().into());
        event.source = Some(client.ip().to_string());
        event.request_id = Some(request_id.into());
        event.function = Some(format!("{method} {}", self.0.redactor.redact_text(path)));
        let _ = self.0.record(event).await;
    }
}
