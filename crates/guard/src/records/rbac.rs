//! Roles and permissions of the staff who use the records API (`/records`) and CLI.
//!
//! This module owns the vocabulary of what an operator may do with conversation records
//! ([`Permission`]), the built-in roles and their separation of duties, custom roles declared in
//! code ([`Roles::with_role`]), and the permission table that `docs/records.md` shows
//! ([`Roles::markdown_table`]). Its answers fail closed: an unknown role may do nothing. It must
//! not authenticate anyone (see [`crate::records::operator`]), store which operator has which
//! role, or write audit events — the server checks [`Roles::allows`] and audits both verdicts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Something an operator may do with conversation records.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// List records' metadata (id, agent, call, subject, kind, dates, size) — no content. A
    /// role without [`ReadContent`](Permission::ReadContent) sees subjects as pseudonyms.
    ListRecords,
    /// Read the audit trail of record access.
    ReadAudit,
    /// Read a record's content (summaries, transcripts, tool logs), giving a purpose.
    ReadContent,
    /// Export records, including a data-subject access export.
    Export,
    /// Delete records and whole subjects (right to deletion).
    Delete,
    /// Add, remove and change operators and their roles.
    ManageOperators,
    /// Turn the emergency switch on or off (the security console's emergency page).
    EmergencySwitch,
}

impl Permission {
    /// Every permission, in table order.
    pub const ALL: [Permission; 7] = [
        Permission::ListRecords,
        Permission::ReadAudit,
        Permission::ReadContent,
        Permission::Export,
        Permission::Delete,
        Permission::ManageOperators,
        Permission::EmergencySwitch,
    ];

    /// The stable snake_case name, as in JSON and audit events (`"read_content"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Permission::ListRecords => "list_records",
            Permission::ReadAudit => "read_audit",
            Permission::ReadContent => "read_content",
            Permission::Export => "export",
            Permission::Delete => "delete",
            Permission::ManageOperators => "manage_operators",
            Permission::EmergencySwitch => "emergency_switch",
        }
    }
}

/// A named set of permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    name: String,
    permissions: BTreeSet<Permission>,
}

impl Role {
    /// The role's name (`auditor`, `supervisor`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The role's permissions, in [`Permission::ALL`] order.
    pub fn permissions(&self) -> impl Iterator<Item = Permission> + '_ {
        self.permissions.iter().copied()
    }

    /// Whether the role grants `permission`.
    pub fn allows(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }
}

/// Built-in roles: name and permissions.
const BUILT_IN: [(&str, &[Permission]); 4] = [
    // Metadata and the audit trail, no content.
    ("auditor", &[Permission::ListRecords, Permission::ReadAudit]),
    // Reads summaries and transcripts.
    (
        "supervisor",
        &[Permission::ListRecords, Permission::ReadContent],
    ),
    // Supervisor's rights plus export and deletion.
    (
        "compliance",
        &[
            Permission::ListRecords,
            Permission::ReadContent,
            Permission::Export,
            Permission::Delete,
            Permission::EmergencySwitch,
        ],
    ),
    // Separation of duties: whoever manages operators does not read content.
    (
        "admin",
        &[Permission::ManageOperators, Permission::EmergencySwitch],
    ),
];

/// Longest role name, in characters.
const MAX_ROLE_NAME_LEN: usize = 32;

/// The role table: the built-in roles and any custom ones.
///
/// | role | permissions |
/// |---|---|
/// | `auditor` | `list_records`, `read_audit` (metadata and the audit trail, no content) |
/// | `supervisor` | `list_records`, `read_content` (reads summaries and transcripts) |
/// | `compliance` | `list_records`, `read_content`, `export`, `delete`, `emergency_switch` |
/// | `admin` | `manage_operators`, `emergency_switch` (separation of duties: admins do not read content) |
///
/// ```
/// use voxguard_guard::records::{Permission, Roles};
///
/// let roles = Roles::default().with_role("billing", [Permission::ListRecords])?;
/// assert!(roles.allows("supervisor", Permission::ReadContent));
/// assert!(!roles.allows("admin", Permission::ReadContent));
/// assert!(roles.allows("billing", Permission::ListRecords));
/// assert!(!roles.allows("nobody", Permission::ListRecords)); // unknown: fail closed
/// # Ok::<(), voxguard_guard::records::RoleError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Roles {
    roles: BTreeMap<String, Role>,
}

impl Default for Roles {
    /// The built-in roles.
    fn default() -> Self {
        let roles = BUILT_IN
            .iter()
            .map(|(name, permissions)| {
                let role = Role {
                    name: (*name).to_owned(),
                    permissions: permissions.iter().copied().collect(),
                };
                ((*name).to_owned(), role)
            })
            .collect();
        Self { roles }
    }
}

impl Roles {
    /// Declare a custom role.
    ///
    /// # Errors
    ///
    /// [`RoleError::InvalidName`] unless the name is 1–32 characters of `a-z`, `0-9`, `_` and
    /// `-`; [`RoleError::Exists`] when it names a built-in role or one declared before.
    pub fn with_role(
        mut self,
        name: &str,
        permissions: impl IntoIterator<Item = Permission>,
    ) -> Result<Self, RoleError> {
        if !valid_role_name(name) {
            return Err(RoleError::InvalidName);
        }
        if self.roles.contains_key(name) {
            return Err(RoleError::Exists {
                name: name.to_owned(),
            });
        }
        let role = Role {
            name: name.to_owned(),
            permissions: permissions.into_iter().collect(),
        };
        self.roles.insert(name.to_owned(), role);
        Ok(self)
    }

    /// The role called `name`, if there is one (names are case-sensitive).
    pub fn get(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// Whether `role` grants `permission`; `false` for a role that does not exist.
    pub fn allows(&self, role: &str, permission: Permission) -> bool {
        self.get(role).is_some_and(|role| role.allows(permission))
    }

    /// All roles, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    /// The permission table as Markdown: one row per role (sorted by name), one column per
    /// permission, cells `yes` or `—`. `docs/records.md` embeds the built-in table.
    pub fn markdown_table(&self) -> String {
        let mut out = String::from("| Role |");
        for permission in Permission::ALL {
            let _ = write!(out, " `{}` |", permission.as_str());
        }
        out.push_str("\n|---|");
        for _ in Permission::ALL {
            out.push_str("---|");
        }
        out.push('\n');
        for role in self.iter() {
            let _ = write!(out, "| `{}` |", role.name);
            for permission in Permission::ALL {
                out.push_str(if role.allows(permission) {
                    " yes |"
                } else {
                    " — |"
                });
            }
            out.push('\n');
        }
        out
    }
}

/// Whether `name` can name a role: 1–32 characters of `a-z`, `0-9`, `_` and `-`.
fn valid_role_name(name: &str) -> bool {
    (1..=MAX_ROLE_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

/// Why a custom role was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RoleError {
    /// The name is empty, too long, or has characters other than `a-z`, `0-9`, `_` and `-`.
    #[error("a role name is 1 to 32 characters of a-z, 0-9, `_` and `-`")]
    InvalidName,
    /// A built-in or earlier custom role has that name.
    #[error("role `{name}` already exists; roles cannot be redefined")]
    Exists {
        /// The name (already checked to be a valid role name).
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    fn perms(roles: &Roles, name: &str) -> Vec<Permission> {
        roles.get(name).unwrap().permissions().collect()
    }

    #[test]
    fn built_in_roles_and_separation_of_duties() {
        let roles = Roles::default();
        assert_eq!(perms(&roles, "auditor"), [ListRecords, ReadAudit]);
        assert_eq!(perms(&roles, "supervisor"), [ListRecords, ReadContent]);
        assert_eq!(
            perms(&roles, "compliance"),
            [ListRecords, ReadContent, Export, Delete, EmergencySwitch]
        );
        assert_eq!(perms(&roles, "admin"), [ManageOperators, EmergencySwitch]);
        assert_eq!(
            roles.iter().map(Role::name).collect::<Vec<_>>(),
            ["admin", "auditor", "compliance", "supervisor"]
        );

        // Who may read content, and who may manage operators: never the same role.
        for role in roles.iter() {
            assert!(
                !(role.allows(ReadContent) && role.allows(ManageOperators)),
                "{}",
                role.name()
            );
        }
        assert!(!roles.allows("auditor", ReadContent));
        assert!(!roles.allows("admin", ReadContent));
        assert!(!roles.allows("admin", ListRecords));
        assert!(!roles.allows("supervisor", Export));
        assert!(!roles.allows("supervisor", Delete));
        assert!(roles.allows("compliance", Delete));
    }

    #[test]
    fn unknown_roles_fail_closed() {
        let roles = Roles::default();
        for name in ["", "Admin", "ADMIN", "admin ", "root", "compliance\0"] {
            assert!(roles.get(name).is_none(), "{name:?}");
            for permission in Permission::ALL {
                assert!(!roles.allows(name, permission), "{name:?}");
            }
        }
    }

    #[test]
    fn custom_roles() {
        let roles = Roles::default()
            .with_role("billing-clerk_2", [ListRecords, Export, ListRecords])
            .unwrap()
            .with_role("nothing", [])
            .unwrap();
        assert_eq!(perms(&roles, "billing-clerk_2"), [ListRecords, Export]);
        assert!(roles.allows("billing-clerk_2", Export));
        assert!(!roles.allows("billing-clerk_2", ReadContent));
        for permission in Permission::ALL {
            assert!(!roles.allows("nothing", permission));
        }
        assert_eq!(
            roles.iter().map(Role::name).collect::<Vec<_>>(),
            [
                "admin",
                "auditor",
                "billing-clerk_2",
                "compliance",
                "nothing",
                "supervisor"
            ]
        );

        for name in ["admin", "compliance"] {
            assert_eq!(
                Roles::default()
                    .with_role(name, Permission::ALL)
                    .unwrap_err(),
                RoleError::Exists {
                    name: name.to_owned()
                }
            );
        }
        assert_eq!(
            roles
                .clone()
                .with_role("nothing", [ReadContent])
                .unwrap_err(),
            RoleError::Exists {
                name: "nothing".to_owned()
            }
        );
        let long = "a".repeat(33);
        for name in ["", "Billing", "bill ing", "bill.ing", "é", long.as_str()] {
            assert_eq!(
                Roles::default().with_role(name, []).unwrap_err(),
                RoleError::InvalidName,
                "{name:?}"
            );
        }
        assert!(Roles::default().with_role(&"a".repeat(32), []).is_ok());
    }

    #[test]
    fn names_match_serde_and_all_is_complete() {
        for permission in Permission::ALL {
            // Adding a variant without adding it to ALL fails to compile here.
            match permission {
                ListRecords | ReadAudit | ReadContent | Export | Delete | ManageOperators
                | EmergencySwitch => {}
            }
            let json = serde_json::to_string(&permission).unwrap();
            assert_eq!(json, format!("\"{}\"", permission.as_str()));
            assert_eq!(
                serde_json::from_str::<Permission>(&json).unwrap(),
                permission
            );
        }
        let unique: BTreeSet<_> = Permission::ALL.iter().map(Permission::as_str).collect();
        assert_eq!(unique.len(), 7);
        assert!(serde_json::from_str::<Permission>("\"ReadContent\"").is_err());
    }

    #[test]
    fn markdown_table_known_answer() {
        let expected = "\
| Role | `list_records` | `read_audit` | `read_content` | `export` | `delete` | `manage_operators` | `emergency_switch` |
|---|---|---|---|---|---|---|---|
| `admin` | — | — | — | — | — | yes | yes |
| `auditor` | yes | yes | — | — | — | — | — |
| `compliance` | yes | — | yes | yes | yes | — | yes |
| `supervisor` | yes | — | yes | — | — | — | — |
";
        assert_eq!(Roles::default().markdown_table(), expected);
        let custom = Roles::default()
            .with_role("billing", [Export])
            .unwrap()
            .markdown_table();
        assert!(custom.contains("\n| `billing` | — | — | — | yes | — | — | — |\n"));
    }

    #[test]
    fn error_messages() {
        assert!(RoleError::InvalidName.to_string().contains("1 to 32"));
        assert_eq!(
            RoleError::Exists {
                name: "admin".to_owned()
            }
            .to_string(),
            "role `admin` already exists; roles cannot be redefined"
        );
    }
}
