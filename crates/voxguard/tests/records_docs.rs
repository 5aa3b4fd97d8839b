//! docs/records.md against the code: the role/permission table and the retention defaults.
//!
//! The role table is embedded verbatim between `<!-- roles:begin -->` and `<!-- roles:end -->`;
//! it must equal `Roles::default().markdown_table()`, so a permission or built-in role changed in
//! `crates/guard/src/records/rbac.rs` fails here until the documentation says the same. The
//! retention table must name every kind's variable with its default number of days. This file
//! only reads the document; it must not generate or rewrite it.

use std::path::PathBuf;

use voxguard::guard::records::Roles;
use voxguard::RecordKind;

const BEGIN: &str = "<!-- roles:begin -->";
const END: &str = "<!-- roles:end -->";

/// The text of docs/records.md.
fn records_doc() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/records.md");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// The text between the single pair of role markers, without the blank lines around it.
fn embedded_table(doc: &str) -> Result<&str, String> {
    let begins = doc.matches(BEGIN).count();
    let ends = doc.matches(END).count();
    if begins != 1 || ends != 1 {
        return Err(format!(
            "expected exactly one {BEGIN} and one {END}, found {begins} and {ends}"
        ));
    }
    let start = doc.find(BEGIN).map(|at| at + BEGIN.len()).unwrap_or(0);
    let end = doc.find(END).unwrap_or(0);
    if end < start {
        return Err(format!("{END} comes before {BEGIN}"));
    }
    Ok(doc[start..end].trim_matches('\n'))
}

#[test]
fn role_table_matches_the_built_in_roles() {
    let doc = records_doc();
    let embedded =
        embedded_table(&doc).unwrap_or_else(|problem| panic!("docs/records.md: {problem}"));
    let expected = Roles::default().markdown_table();
    assert_eq!(
        embedded,
        expected.trim_end_matches('\n'),
        "docs/records.md's role table differs from Roles::default().markdown_table(); paste this \
         between the markers:\n{expected}"
    );
}

#[test]
fn marker_check_rejects_a_changed_table() {
    // The comparison above must be able to fail: a table with one cell changed is not accepted.
    let table = Roles::default().markdown_table();
    let changed = table.replacen("| `admin` | —", "| `admin` | yes", 1);
    assert_ne!(table, changed, "the test edit must change the table");
    let doc = format!("intro\n\n{BEGIN}\n{changed}{END}\n");
    let embedded = embedded_table(&doc).expect("one pair of markers");
    assert_ne!(embedded, table.trim_end_matches('\n'));
    assert!(embedded_table("no markers").is_err());
    assert!(embedded_table(&format!("{END}\n{BEGIN}")).is_err());
    assert!(embedded_table(&format!("{BEGIN}{BEGIN}{END}")).is_err());
}

#[test]
fn retention_table_names_every_kind_with_its_default() {
    let doc = records_doc();
    for kind in RecordKind::ALL {
        let variable = format!("`{}`", kind.retention_env());
        let row = doc
            .lines()
            .find(|line| line.starts_with('|') && line.contains(&variable))
            .unwrap_or_else(|| panic!("docs/records.md has no table row for {variable}"));
        let days = format!("| {} |", kind.default_days());
        assert!(
            row.contains(&days),
            "docs/records.md: the row of {variable} does not give the default {days}: {row}"
        );
    }
}
