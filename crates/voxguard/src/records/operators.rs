//! Operator accounts of the records API: add, list, remove, change role, reset a password or
//! token — shared by the API (`admin` role), the security console's operators page and the CLI
//! (`voxguard users`), each change audited as `operator_changed` before it is made (and once
//! more, as refused, when the store then refuses it to keep the last admin).
//!
//! Owns the rules of an account: a valid name, a role that exists in the role table, a secret
//! generated here and shown once (an argon2id password or a bearer token stored only as its
//! SHA-256), never removing or demoting the last `admin`, and never removing one's own account.
//! The last-admin rule is checked again by the store in the same atomic step as the change
//! (see [`OperatorStore::remove_operator`](voxguard_store::OperatorStore::remove_operator)),
//! so it holds between every handle on one database: replicas sharing PostgreSQL, and the
//! runtime and the CLI sharing the SQLite file. It must not authenticate requests (that is
//! `api`) nor hold a secret after returning it.

use voxguard_guard::records::{operator_token_hash, valid_operator_name};
use voxguard_guard::{AuditKind, Outcome, PinVault};
use voxguard_store::{Operator, OperatorChange};
use zeroize::Zeroizing;

use super::{Actor, Records, RecordsError};

/// The role that manages operators; the last one cannot be removed or demoted.
pub const ADMIN_ROLE: &str = "admin";

/// The audit reason of a change refused by the store because another handle had just removed
/// or demoted the other admin (the change was already audited as about to happen).
const LAST_ADMIN: &str = "last_admin";

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
    /// An operator asked to remove their own account.
    #[error("an operator cannot remove their own account; another admin must do it")]
    SelfRemoval,
}

impl OperatorProblem {
    /// Whether the problem is a conflict with existing state (HTTP 409).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            OperatorProblem::Exists(_) | OperatorProblem::LastAdmin | OperatorProblem::SelfRemoval
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
        let event = self.operator_change_event(Outcome::Ok, actor, action, name, role);
        self.write(event).await
    }

    fn operator_change_event(
        &self,
        outcome: Outcome,
        actor: &Actor,
        action: &str,
        name: &str,
        role: &str,
    ) -> voxguard_guard::AuditEvent {
        let mut event = self.event(AuditKind::OperatorChanged, outcome, actor);
        event.function = Some(action.to_string());
        event.arguments = Some(serde_json::json!({ "operator": name, "role": role }));
        event
    }

    /// What the store answered to a removal or role change already audited as about to
    /// happen. When it refused because `name` had become the last admin meanwhile (another
    /// replica or the CLI removed or demoted the other one), that is put on record as
    /// `operator_changed` refused (`last_admin`), so the trail does not claim a change that
    /// was never made.
    async fn operator_changed(
        &self,
        change: OperatorChange,
        actor: &Actor,
        action: &str,
        name: &str,
        role: &str,
    ) -> Result<(), RecordsError> {
        match change {
            OperatorChange::Done => Ok(()),
            OperatorChange::NotFound => Err(OperatorProblem::NotFound(name.to_string()).into()),
            OperatorChange::LastOfRole => {
                let mut event =
                    self.operator_change_event(Outcome::Refused, actor, action, name, role);
                event.reason = Some(LAST_ADMIN.into());
                self.write(event).await?;
                Err(OperatorProblem::LastAdmin.into())
            }
        }
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
        let (secret, hash) = new_credential(with_password)?;
        let (password_hash, token_hash) = if with_password {
            (Some(hash), None)
        } else {
            (None, Some(hash))
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

    /// Operator `name` as stored, or [`OperatorProblem::NotFound`].
    async fn existing_operator(&self, name: &str) -> Result<Operator, RecordsError> {
        self.backend()
            .operator(name)
            .await?
            .ok_or_else(|| OperatorProblem::NotFound(name.to_string()).into())
    }

    /// Remove operator `name` (never the last admin, never the actor's own account).
    pub async fn remove_operator(&self, actor: &Actor, name: &str) -> Result<(), RecordsError> {
        if actor.operator == name {
            return Err(OperatorProblem::SelfRemoval.into());
        }
        let store = self.backend();
        let operator = self.existing_operator(name).await?;
        // Plainly the last admin: refused before anything is audited. This count is only a
        // snapshot; the store decides again, atomically, when it removes.
        if operator.role == ADMIN_ROLE && store.count_operators_with_role(ADMIN_ROLE).await? <= 1 {
            return Err(OperatorProblem::LastAdmin.into());
        }
        self.operator_event(actor, "remove", name, &operator.role)
            .await?;
        let change = store.remove_operator(name, Some(ADMIN_ROLE)).await?;
        self.operator_changed(change, actor, "remove", name, &operator.role)
            .await
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
        let store = self.backend();
        let operator = self.existing_operator(name).await?;
        // As for a removal: a snapshot refusal first, the store's atomic check at the change.
        if operator.role == ADMIN_ROLE
            && role != ADMIN_ROLE
            && store.count_operators_with_role(ADMIN_ROLE).await? <= 1
        {
            return Err(OperatorProblem::LastAdmin.into());
        }
        self.operator_event(actor, "set_role", name, role).await?;
        let change = store
            .set_operator_role(name, role, Some(ADMIN_ROLE))
            .await?;
        self.operator_changed(change, actor, "set_role", name, role)
            .await?;
        Ok(Operator {
            role: role.to_string(),
            ..operator
        })
    }

    /// Give operator `name` a new generated secret: a password when `password` (replacing
    /// their password; every console session of theirs ends, since a session remembers the
    /// password hash it signed in with), else an API token (replacing their token, which stops
    /// working at once). The other credential, if any, is kept. Audited as `operator_changed`
    /// (`reset_password` or `reset_token`) before the change; returns the account and the
    /// secret, which is shown once and stored only hashed.
    pub async fn reset_operator_secret(
        &self,
        actor: &Actor,
        name: &str,
        password: bool,
    ) -> Result<(Operator, Zeroizing<String>), RecordsError> {
        let (secret, hash) = new_credential(password)?;
        let store = self.backend();
        let operator = self.existing_operator(name).await?;
        let action = if password {
            "reset_password"
        } else {
            "reset_token"
        };
        self.operator_event(actor, action, name, &operator.role)
            .await?;
        if !store.set_operator_secret(name, password, &hash).await? {
            return Err(OperatorProblem::NotFound(name.to_string()).into());
        }
        let operator = if password {
            Operator {
                password_hash: Some(hash),
                ..operator
            }
        } else {
            Operator {
                token_hash: Some(hash),
                ..operator
            }
        };
        Ok((operator, secret))
    }
}

/// A generated secret and what the store keeps of it: a password and its argon2id PHC string
/// (`password`), or a bearer token and its SHA-256.
fn new_credential(password: bool) -> Result<(Zeroizing<String>, String), RecordsError> {
    let secret = super::api::new_secret(password);
    let hash = if password {
        PinVault::default()
            .hash(&secret)
            .map_err(|_| RecordsError::Corrupt)?
            .as_phc()
            .to_string()
    } else {
        operator_token_hash(&secret)
    };
    Ok((secret, hash))
}
