//! Verification attempt counters on PostgreSQL, atomic across replicas.
//!
//! This module owns [`PgStore`]'s [`AttemptStore`] half. Each transition (`reserve`, `settle`)
//! is one transaction: it makes sure the subject's row exists (a zero placeholder inserted with
//! `ON CONFLICT DO NOTHING`, so there is always a row to lock), locks it with
//! `SELECT ... FOR UPDATE`, applies the pure step of [`crate::attempts`] (the same code the
//! memory and SQLite backends run) and writes the result back. Concurrent transitions for one
//! subject — from any connection, pool or replica — therefore run one after the other, and
//! parallel reservations never exceed the limit. A placeholder the transaction inserted itself
//! stands for "no row": the step sees `None`, and if it writes nothing the placeholder is
//! deleted before the commit, so no other transaction ever sees it. Reads are never cached.
//! This module must never build SQL from caller data, must behave exactly like the other
//! backends, and must never store or see the secret being verified.

use crate::attempts::{
    reserve_step, settle_step, view, AttemptLimits, AttemptStatus, AttemptStore, Reservation, Row,
    Write,
};
use crate::session::{to_i64, StoreError};
use crate::sqlite::{from_sql, AttemptRow};

use super::session::retry;
use super::PgStore;

const SELECT_SQL: &str = "SELECT failures, locked_until, lockouts, window_failures, window_until
    FROM verification_attempts WHERE subject = $1";

const LOCK_SQL: &str = "SELECT failures, locked_until, lockouts, window_failures, window_until
    FROM verification_attempts WHERE subject = $1 FOR UPDATE";

const PLACEHOLDER_SQL: &str = "INSERT INTO verification_attempts
    (subject, failures, locked_until, lockouts, window_failures, window_until)
    VALUES ($1, 0, NULL, 0, 0, 0)
    ON CONFLICT (subject) DO NOTHING";

const UPDATE_SQL: &str = "UPDATE verification_attempts
    SET failures = $2, locked_until = $3, lockouts = $4, window_failures = $5, window_until = $6
    WHERE subject = $1";

const DELETE_SQL: &str = "DELETE FROM verification_attempts WHERE subject = $1";

/// `attempts::purgeable` in SQL: no active lockout and the window has ended.
const PURGE_SQL: &str = "DELETE FROM verification_attempts
    WHERE (locked_until IS NULL OR locked_until <= $1) AND window_until <= $1";

impl PgStore {
    /// One try of an attempt transition on `subject`, in one transaction holding the row lock
    /// from the read to the write. Dropped before the commit, the transaction rolls back.
    async fn transition_once<T>(
        &self,
        subject: &[u8],
        step: &impl Fn(Option<Row>) -> (Write, T),
    ) -> Result<T, sqlx::Error> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(PLACEHOLDER_SQL)
            .bind(subject)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        let row: AttemptRow = sqlx::query_as(LOCK_SQL)
            .bind(subject)
            .fetch_one(&mut *tx)
            .await?;
        let stored = (!inserted).then(|| from_sql(row));
        let (write, answer) = step(stored);
        match write {
            Write::Put(row) => {
                sqlx::query(UPDATE_SQL)
                    .bind(subject)
                    .bind(i64::from(row.failures))
                    .bind(row.locked_until.map(to_i64))
                    .bind(i64::from(row.lockouts))
                    .bind(i64::from(row.window_failures))
                    .bind(to_i64(row.window_until))
                    .execute(&mut *tx)
                    .await?;
            }
            Write::Delete => {
                sqlx::query(DELETE_SQL)
                    .bind(subject)
                    .execute(&mut *tx)
                    .await?;
            }
            Write::Keep if inserted => {
                // The placeholder was ours: leave the subject as absent as it was.
                sqlx::query(DELETE_SQL)
                    .bind(subject)
                    .execute(&mut *tx)
                    .await?;
            }
            Write::Keep => {}
        }
        tx.commit().await?;
        Ok(answer)
    }

    /// Apply one attempt transition to `subject`, retrying if PostgreSQL aborted it to break
    /// a conflict.
    async fn transition<T>(
        &self,
        subject: &str,
        step: impl Fn(Option<Row>) -> (Write, T),
    ) -> Result<T, StoreError> {
        retry(|| self.transition_once(subject.as_bytes(), &step)).await
    }
}

#[async_trait::async_trait]
impl AttemptStore for PgStore {
    async fn reserve(
        &self,
        subject: &str,
        limits: &AttemptLimits,
        now: u64,
    ) -> Result<Reservation, StoreError> {
        self.transition(subject, |row| reserve_step(row, limits, now))
            .await
    }

    async fn settle(
        &self,
        subject: &str,
        success: bool,
        limits: &AttemptLimits,
        now: u64,
    ) -> Result<AttemptStatus, StoreError> {
        self.transition(subject, |row| settle_step(row, success, limits, now))
            .await
    }

    async fn attempt_status(&self, subject: &str, now: u64) -> Result<AttemptStatus, StoreError> {
        let row: Option<AttemptRow> = sqlx::query_as(SELECT_SQL)
            .bind(subject.as_bytes())
            .fetch_optional(self.db.pool())
            .await
            .map_err(StoreError::unavailable)?;
        Ok(view(row.map(from_sql).unwrap_or_default(), now))
    }

    async fn reset_attempts(&self, subject: &str) -> Result<(), StoreError> {
        sqlx::query(DELETE_SQL)
            .bind(subject.as_bytes())
            .execute(self.db.pool())
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn purge_attempts(&self, now: u64) -> Result<u64, StoreError> {
        let now = to_i64(now);
        let done = retry(|| sqlx::query(PURGE_SQL).bind(now).execute(self.db.pool())).await?;
        Ok(done.rows_affected())
    }
}
