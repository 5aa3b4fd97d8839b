//! Staff accounts of the records API: the storage contract for operators.
//!
//! This module owns the [`OperatorStore`] trait, the stored [`Operator`] and
//! [`OperatorStoreError`]. An operator has a name, a role and at most one password hash
//! (argon2id, PHC string) and one API-token hash (SHA-256, hex); the store keeps the hashes as
//! given. It must never hash, verify or generate credentials (that is `voxguard-guard`), must
//! never decide what a role may do or which role must keep an operator (the caller names it),
//! and must never reveal a hash through `Debug`, serialization or an error.
//!
//! It does own making such a rule hold: removing an operator or changing a role takes the
//! role to keep (`keep_one`) and checks and changes in one atomic step of the store, so the
//! rule holds between every handle on the same database — replicas sharing PostgreSQL, the
//! runtime and the CLI sharing an SQLite file — not only within one process
//! ([`OperatorChange`] says what happened). The backends are
//! [`SqliteRecordStore`](crate::SqliteRecordStore) and [`PgRecordStore`](crate::PgRecordStore)
//! (shared by replicas).

use crate::StoreError;

/// A staff member allowed to use the records API.
///
/// Serializing an operator (for listings) never includes the credential hashes, and `Debug`
/// shows only whether each is set.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct Operator {
    /// Unique login name.
    pub name: String,
    /// Role name (`auditor`, `supervisor`, `compliance`, `admin`, or one declared in code).
    pub role: String,
    /// When the operator was added (unix seconds).
    pub created_at: u64,
    /// The password's argon2id hash in PHC string format, if the operator has a password.
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// The API token's SHA-256 hash in lowercase hex, if the operator has a token.
    #[serde(skip)]
    pub token_hash: Option<String>,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("has_password", &self.password_hash.is_some())
            .field("has_token", &self.token_hash.is_some())
            .finish()
    }
}

/// Why adding an operator failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorStoreError {
    /// The name is taken; nothing was written.
    #[error("an operator named {name} already exists")]
    Exists {
        /// The requested name.
        name: String,
    },
    /// Another operator already has this API-token hash; nothing was written. (Tokens are
    /// random, so this means a token was reused.)
    #[error("this API token is already assigned to another operator")]
    TokenInUse,
    /// The backend failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`OperatorStore::remove_operator`] or [`OperatorStore::set_operator_role`] did.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorChange {
    /// The operator was removed or given the role.
    Done,
    /// There is no such operator; nothing changed.
    NotFound,
    /// The operator is the last one with the role to keep, and the change would leave none;
    /// nothing changed.
    LastOfRole,
}

/// Where operators live.
#[async_trait::async_trait]
pub trait OperatorStore: Send + Sync + 'static {
    /// Add an operator. A taken name is refused with [`OperatorStoreError::Exists`], a token
    /// hash already in use with [`OperatorStoreError::TokenInUse`]; nothing changes then.
    async fn add_operator(&self, op: &Operator) -> Result<(), OperatorStoreError>;

    /// The operator with this name, or `None`.
    async fn operator(&self, name: &str) -> Result<Option<Operator>, StoreError>;

    /// The operator whose API-token hash is `hash`, or `None`.
    async fn operator_by_token_hash(&self, hash: &str) -> Result<Option<Operator>, StoreError>;

    /// Every operator, ordered by name.
    async fn list_operators(&self) -> Result<Vec<Operator>, StoreError>;

    /// Remove the operator, unless it has role `keep_one` and no other operator has that role
    /// ([`OperatorChange::LastOfRole`]). The check and the removal are one atomic step for
    /// every handle on the database (other processes and replicas included): of two
    /// operators of that role removed at once, one is kept. `None` removes unconditionally.
    async fn remove_operator(
        &self,
        name: &str,
        keep_one: Option<&str>,
    ) -> Result<OperatorChange, StoreError>;

    /// Give the operator `role`, unless it has role `keep_one`, `role` is another one, and no
    /// other operator has `keep_one` ([`OperatorChange::LastOfRole`]). Atomic like
    /// [`remove_operator`](Self::remove_operator); `None` changes unconditionally.
    async fn set_operator_role(
        &self,
        name: &str,
        role: &str,
        keep_one: Option<&str>,
    ) -> Result<OperatorChange, StoreError>;

    /// How many operators have `role`. A snapshot: another handle may change it at once, so a
    /// rule such as "keep one admin" must be enforced through the `keep_one` argument of
    /// [`remove_operator`](Self::remove_operator) and
    /// [`set_operator_role`](Self::set_operator_role), not by counting first.
    async fn count_operators_with_role(&self, role: &str) -> Result<u64, StoreError>;

    /// Replace one credential of the operator: its password hash (`password`) or its API-token
    /// hash, with `hash`; the other credential is left as it is. `false` if there is no such
    /// operator. A token hash already in use is refused with
    /// [`OperatorStoreError::TokenInUse`]; nothing changes then.
    async fn set_operator_secret(
        &self,
        name: &str,
        password: bool,
        hash: &str,
    ) -> Result<bool, OperatorStoreError>;
}
