//! Shared GCRA rate limits in PostgreSQL, for deployments without Redis.
//!
//! This module owns [`PgLimits`]: the table `rate_limits(key, tat_ms)` and the decision of one
//! call against several buckets in one transaction, with exactly governor's GCRA (the same
//! arithmetic as the Redis script: with emission interval `t` and tolerance
//! `tau = t * (burst - 1)`, a call at `now` passes when `now >= tat - tau` and moves `tat` to
//! `max(tat, now) + t`; a refused call changes nothing and must wait `tat - tau - now`). The
//! buckets of one call are created if missing and locked in key order (`FOR UPDATE`), so
//! concurrent calls on the same buckets take turns and cannot deadlock. A bucket whose `tat` has
//! passed means what a missing one means, so [`PgLimits::purge`] deletes those rows. It must not
//! read the clock (callers pass `now_ms`), must not build SQL from keys, and its errors must not
//! show SQL through `Display`.

use std::collections::HashMap;

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

    /// One attempt at [`LimitStore::check`], in one transaction.
    async fn check_once(
        &self,
        checks: &[LimitCheck<'_>],
        now: i64,
    ) -> Result<LimitDecision, sqlx::Error> {
        let mut keys: Vec<String> = checks.iter().map(|c| c.key.to_string()).collect();
        keys.sort();
        keys.dedup();
        let mut tx = self.database.pool().begin().await?;
        // A missing bucket is one whose tat is long past: tat 0 means exactly that. Created in
        // key order, then locked in key order, so concurrent calls cannot deadlock.
        sqlx::query(
            "INSERT INTO rate_limits (key, tat_ms)
             SELECT k, 0 FROM unnest($1::text[]) AS k ORDER BY k
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(&keys)
        .execute(&mut *tx)
        .await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT key, tat_ms FROM rate_limits WHERE key = ANY($1::text[])
             ORDER BY key FOR UPDATE",
        )
        .bind(&keys)
        .fetch_all(&mut *tx)
        .await?;
        let mut tats: HashMap<String, i64> = rows.into_iter().collect();
        let mut decision = LimitDecision::Allowed;
        let mut changed: HashMap<&str, i64> = HashMap::new();
        for (index, check) in checks.iter().enumerate() {
            let (t, tau) = limit_ms(check.limit);
            let tat = tats.get(check.key).copied().unwrap_or(0);
            let earliest = tat.saturating_sub(tau);
            if now < earliest {
                decision = LimitDecision::Denied {
                    index,
                    retry_after_ms: u64::try_from(earliest - now).unwrap_or(0),
                };
                break;
            }
            let next = tat.max(now).saturating_add(t);
            tats.insert(check.key.to_string(), next);
            changed.insert(check.key, next);
        }
        if !changed.is_empty() {
            let (keys, values): (Vec<&str>, Vec<i64>) = changed.into_iter().unzip();
            sqlx::query(
                "UPDATE rate_limits SET tat_ms = v.tat_ms
                 FROM unnest($1::text[], $2::bigint[]) AS v(key, tat_ms)
                 WHERE rate_limits.key = v.key",
            )
            .bind(keys)
            .bind(values)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(decision)
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
