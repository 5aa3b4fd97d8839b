//! Shared GCRA rate limits in PostgreSQL, for deployments without Redis.
//!
//! This module owns [`PgLimits`]: the table `rate_limits(key, tat_ms)` and the decision of one
//! call against several buckets in one statement — the function `rate_limit_check` of
//! migration 0005, so the buckets' row locks are held for the function's microseconds rather
//! than for a transaction's round trips — with exactly governor's GCRA (the same
//! arithmetic as the Redis script: with emission interval `t` and tolerance
//! `tau = t * (burst - 1)`, a call at `now` passes when `now >= tat - tau` and moves `tat` to
//! `max(tat, now) + t`; a refused call changes nothing and must wait `tat - tau - now`). The
//! buckets of one call are created if missing and locked in key order (`FOR UPDATE`), so
//! concurrent calls on the same buckets take turns and cannot deadlock. A bucket whose `tat` has
//! passed means what a missing one means, so [`PgLimits::purge`] deletes those rows. It must not
//! read the clock (callers pass `now_ms`), must not build SQL from keys, and its errors must not
//! show SQL through `Display`.

use crate::postgres::PgDatabase;
use crate::shared::{GcraLimit, LimitCheck, LimitDecision, LimitStore};
use crate::StoreError;

/// Rate-limit buckets in the `rate_limits` table of one [`PgDatabase`] (cheap to clone).
#[derive(Debug, Clone)]
pub struct PgLimits {
    database: PgDatabase,
}

/// A millisecond value as PostgreSQL stores it (`BIGINT`); values past `i64::MAX` (292 million
/// years) saturate there.
fn millis(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A limit in the arithmetic of the table: (emission interval, tolerance) in milliseconds. A
/// burst of 0 is read as 1 and an emission interval of 0 as 1 ms (as governor does).
fn limit_ms(limit: GcraLimit) -> (i64, i64) {
    let t = millis(limit.emission_ms.max(1));
    let tau = t.saturating_mul(i64::from(limit.burst.max(1) - 1));
    (t, tau)
}

impl PgLimits {
    /// The limits stored in `database` (migrated: the table comes with the migrations).
    pub fn new(database: &PgDatabase) -> Self {
        Self {
            database: database.clone(),
        }
    }

    /// Delete every bucket that has fully refilled at `now_ms` (its next call would pass as if
    /// it had never been used); returns how many. Run it periodically so that the table holds
    /// only recently active callers.
    pub async fn purge(&self, now_ms: u64) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM rate_limits WHERE tat_ms <= $1")
            .bind(millis(now_ms))
            .execute(self.database.pool())
            .await
            .map(|done| done.rows_affected())
            .map_err(StoreError::unavailable)
    }

    /// One attempt at [`LimitStore::check`]: one autocommit call of `rate_limit_check`.
    async fn check_once(
        &self,
        checks: &[LimitCheck<'_>],
        now: i64,
    ) -> Result<LimitDecision, sqlx::Error> {
        let keys: Vec<&str> = checks.iter().map(|c| c.key).collect();
        let (ts, taus): (Vec<i64>, Vec<i64>) = checks.iter().map(|c| limit_ms(c.limit)).unzip();
        let answer: Vec<i64> = sqlx::query_scalar("SELECT rate_limit_check($1, $2, $3, $4)")
            .bind(keys)
            .bind(ts)
            .bind(taus)
            .bind(now)
            .fetch_one(self.database.pool())
            .await?;
        match answer.as_slice() {
            [-1, _] => Ok(LimitDecision::Allowed),
            [index, retry] if usize::try_from(*index).is_ok_and(|i| i < checks.len()) => {
                Ok(LimitDecision::Denied {
                    index: usize::try_from(*index).unwrap_or(0),
                    retry_after_ms: u64::try_from(*retry).unwrap_or(0),
                })
            }
            // Anything else is not an answer this code asked for: fail closed.
            _ => Err(sqlx::Error::Protocol(
                "rate_limit_check returned an unexpected answer".into(),
            )),
        }
    }
}

/// Whether `error` is a deadlock or serialization failure, which a retry resolves.
fn is_transient(error: &sqlx::Error) -> bool {
    matches!(
        error.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("40P01" | "40001")
    )
}

/// Attempts of one check before a transient failure is reported as unavailability.
const ATTEMPTS: usize = 3;

#[async_trait::async_trait]
impl LimitStore for PgLimits {
    async fn check(
        &self,
        checks: &[LimitCheck<'_>],
        now_ms: u64,
    ) -> Result<LimitDecision, StoreError> {
        if checks.is_empty() {
            return Ok(LimitDecision::Allowed);
        }
        let now = millis(now_ms);
        let mut attempt = 1;
        loop {
            match self.check_once(checks, now).await {
                Ok(decision) => return Ok(decision),
                Err(error) if attempt < ATTEMPTS && is_transient(&error) => attempt += 1,
                Err(error) => return Err(StoreError::unavailable(error)),
            }
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.database.ping().await
    }

    async fn purge(&self, now_ms: u64) -> Result<u64, StoreError> {
        PgLimits::purge(self, now_ms).await
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}

#[cfg(test)]
mod tests;
