//! Operator accounts of the records API: add, list, remove, change role — shared by the API
//! (`admin` role) and the CLI (`voxguard users`), each change audited as `operator_changed`.
//!
//! Owns the rules of an account: a valid name, a role that exists in the role table, a secret
//! generated here and shown once (an argon2id password or a bearer token stored only as its
//! SHA-256), and never removing or demoting the last `admin` (removals and role changes run one
//! at a time in this process; a CLI in another process is not serialized with them). It must
//! not authenticate requests (that is `api`) nor hold a secret after returning it.

use voxguard_guard::records::{operator_token_hash, valid_operator_name};
use voxguard_guard::{AuditKind, Outcome, PinVault};
use voxguard_store::Operator;
use zeroize::Zeroizing;

use super::{Actor, Records, RecordsError};

/// The role that manages operators; the last one cannot be removed or demoted.
pub const ADMIN_ROLE: &str = "admin";

/// Why an operator change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorProblem {
    /// The name is taken.
    #[error("an operator named {0:?} already exists")]
    Exists(String),
    /// No such operator.
    #[error("there is no operator named {0:?}")]
    NotFound(String),
    /// The name is not 1–64 characters of letters, digits and `._@-`.
    #[error("an operator name is 1 to 64 characters of letters, digits and . _ @ -")]
    InvalidName,
    /// The role is not in the role table.
    #[error("there is no role {0:?} (built-in roles: auditor, supervisor, compliance, admin)")]
    UnknownRole(String),
    /// A generated token collided with a stored one (astronomically unlikely): try again.
    #[error("the generated token is already in use; try again")]
    TokenCollision,
    /// The change would leave no admin.
    #[error("the last admin cannot be removed or given another role")]
    LastAdmin,
}

impl OperatorProblem {
    /// Whether the problem is a conflict with existing state (HTTP 409).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            OperatorProblem::Exists(_) | OperatorProblem::LastAdmin
        )
    }
}

impl Records {
    async fn operator_event(
        &self,
        actor: &Actor,
        action: &str,
        name: &str,
        role: &str,
    ) -> Result<(), RecordsError> {
        let mut event = self.event(AuditKind::OperatorChanged, Outcome::Ok, actor);
        event.function = Some(action.to_string());
        event.arguments = Some(serde_json::json!({ "operator": name, "role": role }));
        self.write(event).await
    }

    /// Every operator (names, roles, creation times; never a hash).
    pub async fn list_operators(&self, actor: &Actor) -> Result<Vec<Operator>, RecordsError> {
        let mut event = self.event(AuditKind::RecordAccessed, Outcome::Ok, actor);
        event.function = Some("list_operators".into());
        self.write(event).await?;
        Ok(self.backend().list_operators().await?)
    }

    /// Add operator `name` with `role`; returns the account and its generated secret — a
    /// password when `with_password`, else a bearer token — which is shown once and stored
    /// only hashed.
    pub async fn add_operator(
        &self,
        actor: &Actor,
        name: &str,
        role: &str,
        with_password: bool,
    ) -> Result<(Operator, Zeroizing<String>), RecordsError> {
        if !valid_operator_name(name) {
            return Err(OperatorProblem::InvalidName.into());
        }
        if self.roles().get(role).is_none() {
            return Err(OperatorProblem::UnknownRole(role.to_string()).into());
        }
        let secret = super::api::new_secret(with_password);
        let (password_hash, token_hash) = if with_password {
            let vault = PinVault::default();
            let hash = vault
                .hash(&secret)
                .map_err(|_| RecordsError::Corrupt)?
                .as_phc()
                .to_string();
            (Some(hash), None)
        } else {
            (None, Some(operator_token_hash(&secret)))
        };
        let operator = Operator {
            name: name.to_string(),
            role: role.to_string(),
            created_at: self.inner.clock.now_unix(),
            password_hash,
            token_hash,
        };
        // On record before the account exists: an audit failure creates nothing (and loses
        // no secret of an account that would exist).
        if self.backend().operator(name).await?.is_some() {
            return Err(OperatorProblem::Exists(name.to_string()).into());
        }
        self.operator_event(actor, "add", name, role).await?;
        self.backend().add_operator(&operator).await?;
        Ok((operator, secret))
    }

    /// Remove operator `name` (never the last admin).
    pub async fn remove_operator(&self, actor: &Actor, name: &str) -> Result<(), RecordsError> {
        let _one_change_at_a_time = self.inner.operator_changes.lock().await;
        let store = self.backend();
        let operator = store
            .operator(name)
            .await?
            .ok_or_else(|| OperatorProblem::NotFound(name.to_string()))?;
        if operator.role == ADMIN_ROLE && store.count_operators_with_role(ADMIN_ROLE).await? <= 1 {
            return Err(OperatorProblem::LastAdmin.into());
        }
        self.operator_event(actor, "remove", name, &operator.role)
            .await?;
        if !store.remove_operator(name).await? {
            return Err(OperatorProblem::NotFound(name.to_string()).into());
        }
        Ok(())
    }

    /// Give operator `name` another role (never demote the last admin).
    pub async fn set_operator_role(
        &self,
        actor: &Actor,
        name: &str,
        role: &str,
    ) -> Result<Operator, RecordsError> {
        if self.roles().get(role).is_none() {
            return Err(OperatorProblem::UnknownRole(role.to_string()).into());
        }
        let _one_change_at_a_time = self.inner.operator_changes.lock().await;
        let store = self.backend();
        let operator = store
            .operator(name)
            .await?
            .ok_or_else(|| OperatorProblem::NotFound(name.to_string()))?;
        if operator.role == ADMIN_ROLE
            && role != ADMIN_ROLE
            && store.count_operators_with_role(ADMIN_ROLE).await? <= 1
        {
            return Err(OperatorProblem::LastAdmin.into());
        }
        self.operator_event(actor, "set_role", name, role).await?;
        if !store.set_operator_role(name, role).await? {
            return Err(OperatorProblem::NotFound(name.to_string()).into());
        }
        Ok(Operator {
            role: role.to_string(),
            ..operator
        })
    }
}
