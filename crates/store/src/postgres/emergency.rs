//! The emergency switch's state in PostgreSQL, so that every replica blocks the same tools.
//!
//! This module owns [`PgEmergency`]: the one-row table `emergency_state` (`enabled`, and
//! `tools`: NULL for "every sensitive tool", or exactly the listed tools), read at start and
//! after every [`Notice::Emergency`](crate::Notice::Emergency) or
//! [`Notice::Resync`](crate::Notice::Resync), written by the operator's switch. It does not
//! decide what the state blocks (that is `voxguard_guard::EmergencySwitch`) and does not
//! notify other replicas (the caller publishes a notice after [`PgEmergency::save`]).

use std::collections::BTreeSet;

use voxguard_guard::EmergencyState;

use crate::postgres::PgDatabase;
use crate::StoreError;

/// The stored emergency state of one [`PgDatabase`] (cheap to clone).
#[derive(Debug, Clone)]
pub struct PgEmergency {
    database: PgDatabase,
}

impl PgEmergency {
    /// The state stored in `database` (migrated: the table comes with the migrations).
    pub fn new(database: &PgDatabase) -> Self {
        Self {
            database: database.clone(),
        }
    }

    /// The stored state, or `None` if it was never saved (the configured default applies).
    pub async fn load(&self) -> Result<Option<EmergencyState>, StoreError> {
        let row: Option<(bool, Option<Vec<String>>)> =
            sqlx::query_as("SELECT enabled, tools FROM emergency_state WHERE id = 1")
                .fetch_optional(self.database.pool())
                .await
                .map_err(StoreError::unavailable)?;
        Ok(row.map(|(enabled, tools)| EmergencyState {
            enabled,
            tools: tools.map(|names| names.into_iter().collect::<BTreeSet<_>>()),
        }))
    }

    /// Replace the stored state with `state` (atomically: a concurrent [`PgEmergency::load`]
    /// sees the old or the new state, never a mix).
    pub async fn save(&self, state: &EmergencyState) -> Result<(), StoreError> {
        let tools: Option<Vec<&str>> = state
            .tools
            .as_ref()
            .map(|names| names.iter().map(String::as_str).collect());
        sqlx::query(
            "INSERT INTO emergency_state (id, enabled, tools) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET enabled = EXCLUDED.enabled, tools = EXCLUDED.tools",
        )
        .bind(state.enabled)
        .bind(tools)
        .execute(self.database.pool())
        .await
        .map(|_| ())
        .map_err(StoreError::unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::testing;

    #[tokio::test]
    async fn postgres_emergency_state_round_trips() {
        let Some(database) = testing::database("emergency").await else {
            return;
        };
        let store = PgEmergency::new(&database);
        assert_eq!(store.load().await.unwrap(), None);
        let all = EmergencyState {
            enabled: true,
            tools: None,
        };
        store.save(&all).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(all));
        let some = EmergencyState {
            enabled: true,
            tools: Some(["transfer".to_string(), "pay".to_string()].into()),
        };
        store.save(&some).await.unwrap();
        // Another handle (another replica) reads the same state.
        assert_eq!(
            PgEmergency::new(&database).load().await.unwrap(),
            Some(some)
        );
        let none: EmergencyState = EmergencyState {
            enabled: false,
            tools: Some(BTreeSet::new()),
        };
        store.save(&none).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(none));
        database.drop_schema().await.unwrap();
    }
}
