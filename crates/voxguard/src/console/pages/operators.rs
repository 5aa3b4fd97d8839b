//! The operators page (role `admin`): the list of operators with a form per change (role,
//! reset, removal with a typed confirmation), the form that adds one, and the page that shows
//! a generated secret once. Every form posts with the CSRF field, and every field has a label.
//! This module must not decide anything or keep a secret: it renders what it is given.

use maud::{html, Markup};
use voxguard_guard::utc::rfc3339;
use voxguard_store::Operator;

use super::{layout, Who};

/// A sentence above the list: what was just done, or why it was not.
pub(crate) struct Notice<'a> {
    /// `true`: it was done; `false`: it was refused.
    pub(crate) ok: bool,
    pub(crate) text: &'a str,
}

fn credentials(operator: &Operator) -> &'static str {
    match (
        operator.password_hash.is_some(),
        operator.token_hash.is_some(),
    ) {
        (true, true) => "password and API token",
        (true, false) => "password",
        (false, true) => "API token",
        (false, false) => "none",
    }
}

fn role_options(roles: &[&str], selected: &str) -> Markup {
    html! {
        @for role in roles {
            option value=(role) selected[*role == selected] { (role) }
        }
    }
}

/// The operators page.
pub(crate) fn list(
    who: &Who<'_>,
    operators: &[Operator],
    roles: &[&str],
    notice: Option<Notice<'_>>,
) -> String {
    layout(
        "Operators",
        Some(who),
        html! {
            h1 { "Operators" }
            @if let Some(notice) = notice {
                @if notice.ok {
                    p.notice.ok role="status" { (notice.text) }
                } @else {
                    p.notice.error role="alert" { (notice.text) }
                }
            }
            section aria-labelledby="list-h" {
                h2 #list-h { "Operators (" (operators.len()) ")" }
                table {
                    thead {
                        tr {
                            th scope="col" { "Name" }
                            th scope="col" { "Role" }
                            th scope="col" { "Signs in with" }
                            th scope="col" { "Added (UTC)" }
                        }
                    }
                    tbody {
                        @for operator in operators {
                            tr {
                                td { (operator.name) }
                                td { (operator.role) }
                                td { (credentials(operator)) }
                                td { (rfc3339(operator.created_at)) }
                            }
                        }
                    }
                }
                p.hint { "Every change is recorded in the audit trail under your name before it is made. A change of role applies to the operator's next request." }
            }
            @for (i, operator) in operators.iter().enumerate() {
                section aria-labelledby=(format!("op-{i}-h")) {
                    h2 id=(format!("op-{i}-h")) { (operator.name) " (" (operator.role) ")" }
                    form method="post" action="/console/operators/role" {
                        input type="hidden" name="csrf" value=(who.csrf);
                        input type="hidden" name="name" value=(operator.name);
                        label for=(format!("role-{i}")) { "Role of " (operator.name) }
                        select id=(format!("role-{i}")) name="role" { (role_options(roles, &operator.role)) }
                        div { button type="submit" { "Change role" } }
                    }
                    form method="post" action="/console/operators/reset" {
                        input type="hidden" name="csrf" value=(who.csrf);
                        input type="hidden" name="name" value=(operator.name);
                        fieldset {
                            legend { "Reset a secret of " (operator.name) }
                            input id=(format!("reset-password-{i}")) type="radio" name="secret" value="password" checked;
                            label for=(format!("reset-password-{i}")) { "New password (ends their console sessions)" }
                            input id=(format!("reset-token-{i}")) type="radio" name="secret" value="token";
                            label for=(format!("reset-token-{i}")) { "New API token" }
                        }
                        button type="submit" { "Reset" }
                    }
                    @if operator.name == who.name {
                        p.hint { "This is you: another admin must remove your account." }
                    } @else {
                        form method="post" action="/console/operators/remove" {
                            input type="hidden" name="csrf" value=(who.csrf);
                            input type="hidden" name="name" value=(operator.name);
                            label for=(format!("confirm-{i}")) { "To remove " (operator.name) ", type their name" }
                            input id=(format!("confirm-{i}")) type="text" name="confirm" autocomplete="off" spellcheck="false";
                            div { button type="submit" { "Remove " (operator.name) } }
                        }
                    }
                }
            }
            section aria-labelledby="add-h" {
                h2 #add-h { "Add an operator" }
                form method="post" action="/console/operators/add" {
                    input type="hidden" name="csrf" value=(who.csrf);
                    label for="add-name" { "Name" }
                    input #add-name type="text" name="name" required maxlength="64" autocomplete="off" spellcheck="false" aria-describedby="add-name-hint";
                    p.hint #add-name-hint { "1 to 64 letters, digits and . _ @ -" }
                    label for="add-role" { "Role" }
                    select #add-role name="role" { (role_options(roles, "auditor")) }
                    fieldset {
                        legend { "Signs in with" }
                        input #add-password type="radio" name="secret" value="password" checked;
                        label for="add-password" { "A password (the console, and Basic on /records)" }
                        input #add-token type="radio" name="secret" value="token";
                        label for="add-token" { "An API token (Bearer on /records only)" }
                    }
                    p.hint { "The password or token is generated and shown once, on the next page." }
                    button type="submit" { "Add" }
                }
            }
        },
    )
}

/// The page that shows a generated secret, once: `what` is "password" or "API token".
pub(crate) fn secret_once(
    who: &Who<'_>,
    title: &str,
    done: &str,
    operator: &Operator,
    what: &str,
    secret: &str,
) -> String {
    layout(
        title,
        Some(who),
        html! {
            h1 { (title) }
            p.notice.ok role="status" { (done) }
            section {
                label for="secret" { "The " (what) " of " (operator.name) }
                input #secret type="text" readonly value=(secret) autocomplete="off" spellcheck="false" aria-describedby="secret-hint";
                p #secret-hint {
                    strong { "Shown only this once." }
                    " Copy it now and give it to " (operator.name) " over a channel you trust. Only its hash is stored; it is not logged and cannot be shown again. If it is lost, reset it."
                }
                p { a href="/console/operators" { "Back to the operators" } }
            }
        },
    )
}
