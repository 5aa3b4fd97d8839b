//! The security console's operators page (`/console/operators`, issue 16) over real HTTP, with
//! the cookie-keeping browser of `console.rs`: an admin adds an operator (the generated
//! password or token shown once, and it works), changes a role (it applies to the next request
//! of that operator's open session), resets a password (their session ends, only the new one
//! works) or a token (the old one is refused by `/records`), and removes an operator after
//! typing their name (a wrong name changes nothing; a removed operator's session ends). Other
//! roles get 403, audited; a form without its CSRF token changes nothing; nobody removes their
//! own account or demotes the last admin. Each change is checked in the store or over HTTP,
//! and its audit event in the SQLite trail.
//!
//! It must not reach into the console's session store: sessions are created, used and ended
//! through HTTP only.

use reqwest::{Method, StatusCode};

use crate::console::{
    audited, browser, desk, events, get, operator, post, sign_in, Desk, Page, CSP,
};
use crate::util::{operator_request, Auth};

/// The value of the read-only field `secret` of a "shown once" page.
fn secret_of(page: &Page) -> String {
    let start = page
        .body
        .find("id=\"secret\"")
        .unwrap_or_else(|| panic!("a secret field: {}", page.body));
    let rest = &page.body[start..];
    let value = rest.find("value=\"").expect("a value") + "value=\"".len();
    let end = rest[value..].find('"').expect("closing quote") + value;
    rest[value..end].to_string()
}

/// Every `id` of an `<input>` or `<select>` has a `<label for>`.
fn every_field_is_labelled(page: &Page) {
    for tag in ["<input", "<select"] {
        for (at, _) in page.body.match_indices(tag) {
            let element = &page.body[at..at + page.body[at..].find('>').expect("tag end")];
            if element.contains("type=\"hidden\"") {
                continue;
            }
            let id = element
                .split("id=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("a visible field without an id: {element}"));
            assert!(
                page.body.contains(&format!("for=\"{id}\"")),
                "no label for {id}"
            );
        }
    }
}

/// The operators page of `client` (who must be allowed to see it).
async fn operators_page(client: &reqwest::Client, desk: &Desk) -> Page {
    let page = get(client, desk, "/console/operators").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page
}

/// Send the operators form `action` with the session's CSRF token.
async fn change(
    client: &reqwest::Client,
    desk: &Desk,
    action: &str,
    form: &[(&str, &str)],
) -> Page {
    let csrf = operators_page(client, desk).await.csrf();
    let mut fields = vec![("csrf", csrf.as_str())];
    fields.extend_from_slice(form);
    post(
        client,
        desk,
        &format!("/console/operators/{action}"),
        &fields,
    )
    .await
}

/// The `operator_changed` event of the request that answered `page`.
async fn changed_event(desk: &Desk, page: &Page) -> voxguard::guard::AuditEvent {
    let mut changed = audited(desk, page, "operator_changed").await;
    assert_eq!(changed.len(), 1, "{changed:?}");
    changed.remove(0)
}

async fn stored(desk: &Desk, name: &str) -> Option<voxguard::store::Operator> {
    desk.kit
        .records
        .backend()
        .operator(name)
        .await
        .expect("operator store")
}

#[tokio::test]
async fn an_admin_adds_an_operator_whose_password_is_shown_once_and_works() {
    let desk = desk().await;
    let admin = operator(&desk, "ada", "admin").await;
    let page = operators_page(&admin, &desk).await;
    assert!(page.body.contains("<td>ada</td>"), "{}", page.body);
    assert_eq!(page.headers["content-security-policy"], CSP);
    for role in ["admin", "auditor", "compliance", "supervisor"] {
        assert!(
            page.body.contains(&format!("<option value=\"{role}\"")),
            "the role table's {role}"
        );
    }
    every_field_is_labelled(&page);

    let added = change(
        &admin,
        &desk,
        "add",
        &[("name", "nia"), ("role", "auditor"), ("secret", "password")],
    )
    .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert!(added.location().is_empty(), "never a redirect");
    assert!(
        added.body.contains("Shown only this once"),
        "{}",
        added.body
    );
    every_field_is_labelled(&added);
    let password = secret_of(&added);
    assert!(password.len() >= 20, "{password}");
    let event = changed_event(&desk, &added).await;
    assert_eq!(event.function.as_deref(), Some("add"));
    assert_eq!(event.operator.as_deref(), Some("ada"));
    assert_eq!(
        event.arguments,
        Some(serde_json::json!({"operator": "nia", "role": "auditor"}))
    );

    // The new operator signs in with it.
    let nia = browser();
    let signed = sign_in(&nia, &desk, "nia", &password).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert!(get(&nia, &desk, "/console/overview")
        .await
        .body
        .contains("nia (auditor)"));
    // Shown once: not on the list, not in the trail.
    let list = operators_page(&admin, &desk).await;
    assert!(list.body.contains("<td>nia</td>"));
    assert!(!list.body.contains(&password));
    assert!(!desk.kit.trail_text().await.contains(&password));

    // An API token instead: it works on /records, and cannot sign in to the console.
    let added = change(
        &admin,
        &desk,
        "add",
        &[("name", "tim"), ("role", "auditor"), ("secret", "token")],
    )
    .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    let token = secret_of(&added);
    assert!(token.starts_with("vgo_"), "{token}");
    let listed = operator_request(
        &desk.server,
        Method::GET,
        "/records",
        Auth::Bearer(&token),
        None,
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    assert_eq!(
        sign_in(&browser(), &desk, "tim", &token).await.status,
        StatusCode::UNAUTHORIZED
    );

    // A taken name, a bad name or an unknown role changes nothing and says why.
    for (name, role, why) in [
        ("nia", "auditor", "already exists"),
        ("not a name", "auditor", "1 to 64"),
        ("zed", "root", "no role"),
    ] {
        let refused = change(
            &admin,
            &desk,
            "add",
            &[("name", name), ("role", role), ("secret", "password")],
        )
        .await;
        assert!(
            refused.status.is_client_error(),
            "{name}: {}",
            refused.status
        );
        assert!(
            refused.body.contains("Nothing was changed"),
            "{}",
            refused.body
        );
        assert!(refused.body.contains(why), "{why}: {}", refused.body);
        assert!(!refused.body.contains("id=\"secret\""));
    }
    assert!(stored(&desk, "zed").await.is_none());
}

#[tokio::test]
async fn a_role_change_applies_to_the_next_request_of_the_operators_open_session() {
    let desk = desk().await;
    let admin = operator(&desk, "ada", "admin").await;
    let sue = operator(&desk, "sue", "supervisor").await;
    assert_eq!(
        get(&sue, &desk, "/console/live").await.status,
        StatusCode::FORBIDDEN
    );
    let changed = change(
        &admin,
        &desk,
        "role",
        &[("name", "sue"), ("role", "auditor")],
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert!(changed.body.contains("sue now has the role auditor"));
    assert_eq!(
        changed_event(&desk, &changed).await.function.as_deref(),
        Some("set_role")
    );
    // The same session, the new role.
    let live = get(&sue, &desk, "/console/live").await;
    assert_eq!(live.status, StatusCode::OK, "{}", live.body);
    assert!(live.body.contains("sue (auditor)"));
    assert_eq!(stored(&desk, "sue").await.expect("sue").role, "auditor");
}

#[tokio::test]
async fn a_password_reset_ends_the_operators_session_and_only_the_new_password_works() {
    let desk = desk().await;
    let admin = operator(&desk, "ada", "admin").await;
    let old = desk.kit.password("rae", "auditor").await;
    let rae = browser();
    assert_eq!(
        sign_in(&rae, &desk, "rae", &old).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        get(&rae, &desk, "/console/overview").await.status,
        StatusCode::OK
    );

    let reset = change(
        &admin,
        &desk,
        "reset",
        &[("name", "rae"), ("secret", "password")],
    )
    .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
    assert!(reset.body.contains("console sessions have ended"));
    let new = secret_of(&reset);
    assert_ne!(new, old);
    assert_eq!(
        changed_event(&desk, &reset).await.function.as_deref(),
        Some("reset_password")
    );
    assert!(!desk.kit.trail_text().await.contains(&new));

    // The open session is over.
    let after = get(&rae, &desk, "/console/overview").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.location(), "/console/login");
    // The old password is refused, the new one works.
    let fresh = browser();
    assert_eq!(
        sign_in(&fresh, &desk, "rae", &old).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&fresh, &desk, "rae", &new).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        get(&fresh, &desk, "/console/overview").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_token_reset_makes_records_refuse_the_old_token() {
    let desk = desk().await;
    let admin = operator(&desk, "ada", "admin").await;
    let old = desk.kit.token("tom", "auditor").await;
    let records = |token: String| {
        let server = desk.server.clone();
        async move {
            operator_request(&server, Method::GET, "/records", Auth::Bearer(&token), None)
                .await
                .status
        }
    };
    assert_eq!(records(old.clone()).await, StatusCode::OK);
    let reset = change(
        &admin,
        &desk,
        "reset",
        &[("name", "tom"), ("secret", "token")],
    )
    .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
    let new = secret_of(&reset);
    assert!(new.starts_with("vgo_") && new != old, "{new}");
    assert_eq!(
        changed_event(&desk, &reset).await.function.as_deref(),
        Some("reset_token")
    );
    assert_eq!(records(old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(records(new).await, StatusCode::OK);
}

#[tokio::test]
async fn a_removal_needs_the_typed_name_and_ends_the_removed_operators_session() {
    let desk = desk().await;
    let admin = operator(&desk, "ada", "admin").await;
    let rob = operator(&desk, "rob", "auditor").await;
    for typed in ["", "ro", "ROB", "ada"] {
        let refused = change(
            &admin,
            &desk,
            "remove",
            &[("name", "rob"), ("confirm", typed)],
        )
        .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{typed:?}");
        assert!(
            refused.body.contains("Nothing was changed"),
            "{}",
            refused.body
        );
        assert!(audited(&desk, &refused, "operator_changed")
            .await
            .is_empty());
    }
    assert!(stored(&desk, "rob").await.is_some());
    assert_eq!(
        get(&rob, &desk, "/console/overview").await.status,
        StatusCode::OK,
        "still signed in"
    );

    let removed = change(
        &admin,
        &desk,
        "remove",
        &[("name", "rob"), ("confirm", "rob")],
    )
    .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    assert!(removed.body.contains("rob was removed"));
    assert!(!removed.body.contains("<td>rob</td>"));
    assert_eq!(
        changed_event(&desk, &removed).await.function.as_deref(),
        Some("remove")
    );
    assert!(stored(&desk, "rob").await.is_none());
    let after = get(&rob, &desk, "/console/overview").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.location(), "/console/login");
}

#[tokio::test]
async fn other_roles_get_403_audited_and_a_form_without_its_token_changes_nothing() {
    let desk = desk().await;
    let admin = operator(&desk, "ada", "admin").await;
    let password = desk.kit.password("kim", "auditor").await;
    let kim_before = stored(&desk, "kim").await.expect("kim");

    for (name, role) in [
        ("aud", "auditor"),
        ("sup", "supervisor"),
        ("com", "compliance"),
    ] {
        let client = operator(&desk, name, role).await;
        let overview = get(&client, &desk, "/console/overview").await;
        assert!(
            !overview.body.contains("/console/operators"),
            "no link for {role}"
        );
        let denied = get(&client, &desk, "/console/operators").await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN, "{role}");
        assert!(denied.body.contains("manage_operators"), "{}", denied.body);
        assert!(!denied.body.contains("<td>ada</td>"), "no list for {role}");
        let denials = audited(&desk, &denied, "access_denied").await;
        assert!(
            denials
                .iter()
                .any(|e| e.reason.as_deref() == Some("access_denied")
                    && e.operator.as_deref() == Some(name)
                    && e.role.as_deref() == Some(role)),
            "{denials:?}"
        );
        // A valid CSRF token does not lift the role check.
        for (action, form) in [
            (
                "add",
                &[("name", "mal"), ("role", "admin"), ("secret", "password")][..],
            ),
            ("role", &[("name", name), ("role", "admin")][..]),
            ("reset", &[("name", "kim"), ("secret", "password")][..]),
            ("remove", &[("name", "kim"), ("confirm", "kim")][..]),
        ] {
            let mut fields = vec![("csrf", overview.csrf())];
            fields.extend(form.iter().map(|(k, v)| (*k, v.to_string())));
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let refused = post(
                &client,
                &desk,
                &format!("/console/operators/{action}"),
                &fields,
            )
            .await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{role} {action}");
            assert!(!audited(&desk, &refused, "access_denied").await.is_empty());
        }
        assert_eq!(stored(&desk, name).await.expect("still there").role, role);
    }

    // The admin's forms without their token, or with a wrong one: refused, audited, nothing done.
    for csrf in [None, Some("wrong-token")] {
        for (action, form) in [
            (
                "add",
                &[("name", "mal"), ("role", "admin"), ("secret", "password")][..],
            ),
            ("role", &[("name", "kim"), ("role", "admin")][..]),
            ("reset", &[("name", "kim"), ("secret", "password")][..]),
            ("remove", &[("name", "kim"), ("confirm", "kim")][..]),
        ] {
            let mut fields: Vec<(&str, &str)> = csrf.map(|c| ("csrf", c)).into_iter().collect();
            fields.extend_from_slice(form);
            let refused = post(
                &admin,
                &desk,
                &format!("/console/operators/{action}"),
                &fields,
            )
            .await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{action} {csrf:?}");
            assert!(
                refused.body.contains("nothing was changed"),
                "{}",
                refused.body
            );
            assert!(audited(&desk, &refused, "access_denied")
                .await
                .iter()
                .any(|e| e.reason.as_deref() == Some("csrf_invalid")
                    && e.operator.as_deref() == Some("ada")));
        }
    }
    assert!(stored(&desk, "mal").await.is_none());
    assert_eq!(
        stored(&desk, "kim").await,
        Some(kim_before),
        "kim unchanged"
    );
    assert_eq!(
        sign_in(&browser(), &desk, "kim", &password).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(!events(&desk).await.iter().any(
        |e| e.kind.as_str() == "operator_changed" && e.operator.as_deref() != Some("cli:test")
    ));
}

#[tokio::test]
async fn nobody_removes_their_own_account_or_demotes_the_last_admin() {
    let desk = desk().await;
    let admin = operator(&desk, "ada", "admin").await;
    let page = operators_page(&admin, &desk).await;
    assert!(page.body.contains("This is you"), "{}", page.body);

    let own = change(
        &admin,
        &desk,
        "remove",
        &[("name", "ada"), ("confirm", "ada")],
    )
    .await;
    assert_eq!(own.status, StatusCode::CONFLICT, "{}", own.body);
    assert!(
        own.body.contains("cannot remove their own account"),
        "{}",
        own.body
    );
    let last = change(
        &admin,
        &desk,
        "role",
        &[("name", "ada"), ("role", "auditor")],
    )
    .await;
    assert_eq!(last.status, StatusCode::CONFLICT, "{}", last.body);
    assert!(last.body.contains("last admin"), "{}", last.body);
    assert_eq!(stored(&desk, "ada").await.expect("ada").role, "admin");
    assert_eq!(
        get(&admin, &desk, "/console/operators").await.status,
        StatusCode::OK,
        "still an admin, still signed in"
    );

    // With a second admin, one may hand over: demote themselves (still not remove themselves).
    desk.kit.password("bo", "admin").await;
    let handed = change(
        &admin,
        &desk,
        "role",
        &[("name", "ada"), ("role", "auditor")],
    )
    .await;
    assert_eq!(handed.status, StatusCode::OK, "{}", handed.body);
    assert_eq!(
        get(&admin, &desk, "/console/operators").await.status,
        StatusCode::FORBIDDEN,
        "the new role applies at once"
    );
}

#[tokio::test]
async fn unknown_addresses_and_methods_below_operators() {
    let desk = desk().await;
    let admin = operator(&desk, "ada", "admin").await;
    assert_eq!(
        get(&admin, &desk, "/console/operators/nothing")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&admin, &desk, "/console/operators/add").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        post(&admin, &desk, "/console/operators", &[]).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // Not signed in: the sign-in page, and nothing listed.
    let anonymous = get(&browser(), &desk, "/console/operators").await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert_eq!(anonymous.location(), "/console/login");
}
