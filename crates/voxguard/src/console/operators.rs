//! The operators page (`/console/operators`, permission `manage_operators`: the `admin` role):
//! list the operators, add one, change a role, reset a password or API token, remove one.
//!
//! Every change is a POST form with the session's CSRF token, made through the same
//! [`Records`](crate::records::Records) operations as the records API (`add_operator`,
//! `set_operator_role`, `reset_operator_secret`, `remove_operator`), so it is audited as
//! `operator_changed` before it is made and keeps the same rules (never the last admin, never
//! one's own account). A removal also needs the operator's name typed again. A generated
//! password or token is put in the answer to the POST that made it and nowhere else: not in a
//! URL, a redirect, a log line, the session or the audit trail. This module must not write
//! markup (`pages::operators` does) or touch the operator store directly.

use voxguard_guard::records::Permission;
use voxguard_server::ConsoleRequest;

use super::pages::{self, operators::Notice};
use super::{method_not_allowed, not_found, page, unavailable, Console, ConsoleReply, Signed};
use crate::records::{OperatorProblem, RecordsError};

impl Console {
    /// Everything below `/console/operators`.
    pub(super) async fn operators(&self, request: &ConsoleRequest) -> ConsoleReply {
        let path = request.path.as_str();
        let known = matches!(
            path,
            "/operators"
                | "/operators/add"
                | "/operators/role"
                | "/operators/reset"
                | "/operators/remove"
        );
        if !known {
            return not_found();
        }
        // The list is read with GET; every change is a form, sent with POST.
        let method = if path == "/operators" { "GET" } else { "POST" };
        if request.method != method {
            return method_not_allowed();
        }
        let signed = match self.allowed(request, Permission::ManageOperators).await {
            Ok(signed) => signed,
            Err(reply) => return reply,
        };
        match path {
            "/operators/add" => self.operator_add(request, &signed).await,
            "/operators/role" => self.operator_role(request, &signed).await,
            "/operators/reset" => self.operator_reset(request, &signed).await,
            "/operators/remove" => self.operator_remove(request, &signed).await,
            _ => self.operators_page(request, &signed, 200, None).await,
        }
    }

    /// The list (itself audited as `record_accessed`, `list_operators`), with `notice`.
    async fn operators_page(
        &self,
        request: &ConsoleRequest,
        signed: &Signed,
        status: u16,
        notice: Option<Notice<'_>>,
    ) -> ConsoleReply {
        let actor = self.actor(request, &signed.operator);
        let operators = match self.api.records.list_operators(&actor).await {
            Ok(operators) => operators,
            Err(_) => return unavailable(),
        };
        let roles: Vec<&str> = self.api.records.roles().iter().map(|r| r.name()).collect();
        page(
            status,
            pages::operators::list(&self.who(signed), &operators, &roles, notice),
        )
    }

    /// A refused or failed change: the list again, saying why (nothing was changed).
    async fn not_changed(
        &self,
        request: &ConsoleRequest,
        signed: &Signed,
        error: RecordsError,
    ) -> ConsoleReply {
        let (status, text) = match &error {
            RecordsError::Operator(problem) => {
                let (status, reason) = match problem {
                    OperatorProblem::NotFound(_) => (404, "not_found"),
                    p if p.is_conflict() => (409, "operator_conflict"),
                    _ => (400, "invalid_query"),
                };
                // A change the rules refused is on record, as on the JSON API.
                self.api
                    .denied(&self.actor(request, &signed.operator), reason)
                    .await;
                (status, format!("Nothing was changed: {problem}."))
            }
            RecordsError::AuditUnavailable => (
                503,
                "Nothing was changed: the change could not be recorded in the audit trail."
                    .to_string(),
            ),
            _ => return unavailable(),
        };
        self.refused(request, signed, status, &text).await
    }

    /// The list again as `status`, with `text` saying why nothing was changed.
    async fn refused(
        &self,
        request: &ConsoleRequest,
        signed: &Signed,
        status: u16,
        text: &str,
    ) -> ConsoleReply {
        let notice = Notice { ok: false, text };
        self.operators_page(request, signed, status, Some(notice))
            .await
    }

    /// `secret` is `password` or `token`; anything else is `None`.
    fn secret_kind(request: &ConsoleRequest) -> Option<bool> {
        match request.field("secret") {
            Some("password") => Some(true),
            Some("token") => Some(false),
            _ => None,
        }
    }

    async fn operator_add(&self, request: &ConsoleRequest, signed: &Signed) -> ConsoleReply {
        let name = request.field("name").unwrap_or_default().trim();
        let role = request.field("role").unwrap_or_default();
        let Some(password) = Self::secret_kind(request) else {
            return self
                .refused(
                    request,
                    signed,
                    400,
                    "Nothing was changed: choose a password or an API token.",
                )
                .await;
        };
        let actor = self.actor(request, &signed.operator);
        match self
            .api
            .records
            .add_operator(&actor, name, role, password)
            .await
        {
            Ok((operator, secret)) => {
                let what = if password { "password" } else { "API token" };
                let done = format!(
                    "{} was added with the role {}. Their {what} is below.",
                    operator.name, operator.role
                );
                page(
                    200,
                    pages::operators::secret_once(
                        &self.who(signed),
                        "Operator added",
                        &done,
                        &operator,
                        what,
                        &secret,
                    ),
                )
            }
            Err(error) => self.not_changed(request, signed, error).await,
        }
    }

    async fn operator_role(&self, request: &ConsoleRequest, signed: &Signed) -> ConsoleReply {
        let name = request.field("name").unwrap_or_default();
        let role = request.field("role").unwrap_or_default();
        let actor = self.actor(request, &signed.operator);
        match self.api.records.set_operator_role(&actor, name, role).await {
            Ok(operator) => {
                let text = format!(
                    "{} now has the role {}, from their next request.",
                    operator.name, operator.role
                );
                let notice = Notice {
                    ok: true,
                    text: &text,
                };
                self.operators_page(request, signed, 200, Some(notice))
                    .await
            }
            Err(error) => self.not_changed(request, signed, error).await,
        }
    }

    async fn operator_reset(&self, request: &ConsoleRequest, signed: &Signed) -> ConsoleReply {
        let name = request.field("name").unwrap_or_default();
        let Some(password) = Self::secret_kind(request) else {
            return self
                .refused(
                    request,
                    signed,
                    400,
                    "Nothing was changed: choose a new password or a new API token.",
                )
                .await;
        };
        let actor = self.actor(request, &signed.operator);
        match self
            .api
            .records
            .reset_operator_secret(&actor, name, password)
            .await
        {
            Ok((operator, secret)) => {
                let (title, what, done) = if password {
                    (
                        "Password reset",
                        "password",
                        format!(
                            "{} has a new password. The old one no longer works, and their console sessions have ended.",
                            operator.name
                        ),
                    )
                } else {
                    (
                        "API token reset",
                        "API token",
                        format!(
                            "{} has a new API token. The old one no longer works.",
                            operator.name
                        ),
                    )
                };
                page(
                    200,
                    pages::operators::secret_once(
                        &self.who(signed),
                        title,
                        &done,
                        &operator,
                        what,
                        &secret,
                    ),
                )
            }
            Err(error) => self.not_changed(request, signed, error).await,
        }
    }

    async fn operator_remove(&self, request: &ConsoleRequest, signed: &Signed) -> ConsoleReply {
        let name = request.field("name").unwrap_or_default();
        let typed = request.field("confirm").unwrap_or_default().trim();
        if name.is_empty() || typed != name {
            self.api
                .denied(
                    &self.actor(request, &signed.operator),
                    "confirmation_mismatch",
                )
                .await;
            let text =
                format!("Nothing was changed: to remove {name}, type their name exactly as shown.");
            return self.refused(request, signed, 400, &text).await;
        }
        let actor = self.actor(request, &signed.operator);
        match self.api.records.remove_operator(&actor, name).await {
            Ok(()) => {
                let text = format!(
                    "{name} was removed. Their password and token no longer work, and their console sessions have ended."
                );
                let notice = Notice {
                    ok: true,
                    text: &text,
                };
                self.operators_page(request, signed, 200, Some(notice))
                    .await
            }
            Err(error) => self.not_changed(request, signed, error).await,
        }
    }
}
