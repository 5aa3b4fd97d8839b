//! The console's overview: what the runtime serves (its agents and their tools' policies), the
//! emergency switch, and a summary of the audit trail's last 24 hours — refusals by reason,
//! calls, tool calls, verification lockouts, anomalies, whether the records read are chained
//! intact, and the newest signed checkpoint.
//!
//! This module owns the summary's arithmetic ([`summarize`]) and the agents' description
//! ([`AgentView`]s, made once at start). Anomalies are not audit events: they are found by
//! replaying the runtime's anomaly rules over the records read (the rules read only the
//! events' own times, so a replay finds what the live detector found, up to the limits noted on
//! [`summarize`]). It must not write markup (`pages` does) or read more than [`OVERVIEW_CAP`]
//! records per view.

use std::collections::{BTreeMap, BTreeSet};

use voxguard_guard::records::Permission;
use voxguard_guard::{
    audit::chain_hash, AnomalyDetector, AnomalyRules, AuditEvent, AuditKind, AuditRecord, Outcome,
};
use voxguard_server::{ConsoleReply, ConsoleRequest};

use super::pages::{self, AgentView, AuditSummary, AuditView, CheckpointView, ToolView};
use super::{page, unavailable, Console};
use crate::agent::Agent;

/// The most audit records the overview reads (the oldest of the last 24 hours first).
pub(super) const OVERVIEW_CAP: u32 = 20_000;

/// At most this many copies of one aggregated authentication-failure record are replayed (a
/// burst rule needs `max + 1` events to fire; more only cost time), and fewer when the
/// `failed_auth` rule's `max + 1` is smaller.
const MAX_REPLAYED_FAILURES: u64 = 100;

/// At most this many replayed failures per overview in all: an attacker who fills the window
/// with aggregated failure records cannot make each view cost millions of detector steps.
const MAX_REPLAYED_TOTAL: u64 = 50_000;

/// Overview summaries computed at once in this process (each reads up to [`OVERVIEW_CAP`]
/// records and checks their hashes); more answer 429 with `Retry-After`.
pub(super) const OVERVIEW_CONCURRENCY: usize = 2;

/// How the overview describes `agent` (`gateway`: served in front of another agent).
pub(crate) fn agent_view(agent: &Agent, gateway: bool) -> AgentView {
    let limit = |limit: &voxguard_guard::RateLimit| (limit.max(), limit.per().as_secs());
    let inner = &agent.inner;
    AgentView {
        name: inner.name.clone(),
        route: inner.route.clone(),
        gateway,
        caller_limit: inner.limits.caller.as_ref().map(limit),
        global_limit: inner.limits.global.as_ref().map(limit),
        tools: inner
            .tools
            .iter()
            .map(|tool| ToolView {
                name: tool.name.clone(),
                secure: tool.secure,
                sensitive: tool.is_sensitive(),
                phi: tool.policy.phi,
                active: tool.active,
                requires: tool.policy.requires.clone(),
                roles: tool.policy.roles.clone(),
                confirm: tool.policy.confirm.is_some(),
                rate_limit: inner
                    .limits
                    .tools
                    .iter()
                    .find(|(name, _)| *name == tool.name)
                    .map(|(_, rate)| limit(rate)),
            })
            .collect(),
    }
}

impl Console {
    /// `GET /console/overview`.
    pub(super) async fn overview(&self, request: &ConsoleRequest) -> ConsoleReply {
        let signed = match self.require(request).await {
            Ok(signed) => signed,
            Err(reply) => return reply,
        };
        // A role with no permission at all (one no longer in the table) opens nothing, the
        // overview included: an unknown role may do nothing.
        if !Permission::ALL
            .iter()
            .any(|p| self.may(&signed.operator, *p))
        {
            self.api
                .denied(&self.actor(request, &signed.operator), "access_denied")
                .await;
            return page(
                403,
                pages::problem(
                    Some(&self.who(&signed)),
                    "Not allowed",
                    &format!(
                        "The role {:?} has no permission in the role table, so it opens no console page.",
                        signed.operator.role
                    ),
                ),
            );
        }
        let audit = if !self.may(&signed.operator, Permission::ReadAudit) {
            AuditView::NotAllowed
        } else {
            let Ok(_slot) = self.overviews.try_acquire() else {
                let mut reply = page(
                    429,
                    pages::problem(
                        Some(&self.who(&signed)),
                        "Busy",
                        "Other overviews are being computed right now; try again in a few seconds.",
                    ),
                );
                reply.headers.push(("retry-after", "2".into()));
                return reply;
            };
            let since = self.clock.now_ms().saturating_sub(24 * 60 * 60 * 1000);
            let records = &self.api.records;
            match records
                .audit_since(&self.actor(request, &signed.operator), since, OVERVIEW_CAP)
                .await
            {
                Ok(None) => AuditView::Unreadable,
                Ok(Some(read)) => {
                    // Hashing and replaying up to OVERVIEW_CAP records is CPU work: off the
                    // request threads.
                    let rules = self.anomaly_rules.clone();
                    let Ok(mut summary) =
                        tokio::task::spawn_blocking(move || summarize(&read, OVERVIEW_CAP, &rules))
                            .await
                    else {
                        return unavailable();
                    };
                    summary.checkpoint = match records.last_checkpoint().await {
                        Ok(found) => found.map(|(checkpoint, valid)| CheckpointView {
                            seq: checkpoint.seq,
                            time_ms: checkpoint.time_ms,
                            hash: checkpoint.hash,
                            valid,
                        }),
                        Err(_) => return unavailable(),
                    };
                    AuditView::Summary(summary)
                }
                Err(_) => return unavailable(),
            }
        };
        let state = self.admin.emergency.state();
        page(
            200,
            pages::overview(&self.who(&signed), &state, &self.agents, &audit),
        )
    }
}

/// Summarize the records of the window: refusals by reason (an aggregated authentication
/// failure counts as the failures it stands for), each record's hash and link to
/// the one before, tool calls by outcome, calls (distinct agent and call id among the events an
/// agent wrote), verification lockouts, and the anomalies `rules` find when the records are
/// replayed.
///
/// The replay's limits: an aggregated authentication-failure record (`arguments.count` over a
/// window) is replayed as that many failures (at most the `failed_auth` rule's `max + 1`,
/// [`MAX_REPLAYED_FAILURES`], and [`MAX_REPLAYED_TOTAL`] per summary) at the
/// record's time, not at the failures' own times; a burst that began before the window is
/// seen only from the window's start; and an anomaly of records past the cap is not seen.
pub(super) fn summarize(records: &[AuditRecord], cap: u32, rules: &AnomalyRules) -> AuditSummary {
    let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
    let mut tool_calls: BTreeMap<String, u64> = BTreeMap::new();
    let mut calls: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut anomalies: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut lockouts, mut locked_attempts) = (0, 0);
    let detector = AnomalyDetector::new(rules.clone());
    let per_record = rules
        .failed_auth
        .as_ref()
        .map_or(0, |rule| u64::from(rule.max) + 1)
        .min(MAX_REPLAYED_FAILURES);
    let mut replay_budget = MAX_REPLAYED_TOTAL;
    let mut broken_at = None;
    let mut previous: Option<&str> = None;
    for record in records {
        let event = &record.event;
        if broken_at.is_none() {
            let linked = previous.is_none_or(|hash| hash == record.prev_hash);
            if !linked || chain_hash(&record.prev_hash, record.seq, event) != record.hash {
                broken_at = Some(record.seq);
            }
        }
        previous = Some(&record.hash);
        let folded = folded_failures(event);
        if event.outcome == Some(Outcome::Refused) {
            let reason = event.reason.clone().unwrap_or_else(|| "unspecified".into());
            // An aggregated record stands for `count` refusals.
            *refusals.entry(reason).or_default() += folded.unwrap_or(1);
        }
        if let (Some(agent), Some(call)) = (&event.agent, &event.call_id) {
            calls.insert((agent, call));
        }
        match (event.kind, event.outcome) {
            (AuditKind::ToolCalled, outcome) => {
                let outcome = outcome.map_or("unspecified", |o| o.as_str());
                *tool_calls.entry(outcome.to_string()).or_default() += 1;
            }
            (AuditKind::Lockout, Some(Outcome::VerificationLockout)) => lockouts += 1,
            (AuditKind::Lockout, Some(Outcome::VerificationLocked)) => locked_attempts += 1,
            _ => {}
        }
        let found = match folded {
            // The live detector saw each failure as it happened (as `auth_failed`, whatever
            // the path); the trail holds one record per source and window.
            Some(count) => {
                let mut seen = AuditEvent::new(AuditKind::AuthFailed, event.time_ms);
                seen.outcome = Some(Outcome::Refused);
                seen.source = event.source.clone();
                seen.reason = event.reason.clone();
                let copies = count.min(per_record).min(replay_budget);
                replay_budget -= copies;
                (0..copies).flat_map(|_| detector.observe(&seen)).collect()
            }
            None => detector.observe(event),
        };
        for anomaly in found {
            *anomalies.entry(anomaly.rule).or_default() += 1;
        }
    }
    AuditSummary {
        records: records.len(),
        capped: records.len() as u32 >= cap,
        refusals,
        broken_at,
        span: records
            .first()
            .zip(records.last())
            .map(|(a, b)| (a.seq, b.seq)),
        tool_calls,
        calls: calls.len() as u64,
        lockouts,
        locked_attempts,
        anomalies,
        checkpoint: None,
    }
}

/// How many authentication failures an aggregated record stands for: the HTTP layer writes
/// refused logins as `auth_failed` (or `access_denied` on `/records` and `/console`) with
/// `arguments: {"count": n, "window_secs": w}` and no operator.
fn folded_failures(event: &AuditEvent) -> Option<u64> {
    if !matches!(event.kind, AuditKind::AuthFailed | AuditKind::AccessDenied)
        || event.operator.is_some()
    {
        return None;
    }
    let arguments = event.arguments.as_ref()?;
    arguments.get("window_secs")?;
    arguments.get("count")?.as_u64()
}
