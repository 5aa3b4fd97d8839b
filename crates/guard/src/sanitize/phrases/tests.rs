//! Unit tests of the phrase-table reader: the shipped table reads cleanly, line by line, and
//! every kind of malformed line is reported where it is.

use super::*;

#[test]
fn the_shipped_table_reads_every_line() {
    let table = parse(PHRASES);
    assert_eq!(
        table.bad,
        Vec::new(),
        "phrases.txt has lines the reader skips"
    );
    assert!(table.templates.len() >= 20, "{}", table.templates.len());
    for template in &table.templates {
        assert!(!template.slots.is_empty(), "{template:?}");
        assert!(
            template.slots.iter().all(|slot| !slot.is_empty()),
            "{template:?}"
        );
    }
}

#[test]
fn a_small_table_reads_as_written() {
    let table = parse(
        "# comment\n\
         @list verbs\n  ignore\n  stop following\n\n\
         @template instruction_override word\n  @slot verbs\n  @slot\n    -\n    all\n    # inside\n\
         @template role_change prefix\n  @slot\n    jailbreak\n",
    );
    assert_eq!(table.bad, Vec::new());
    let strings = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    assert_eq!(
        table.templates,
        vec![
            Template {
                kind: InjectionKind::InstructionOverride,
                end: End::Word,
                slots: vec![
                    strings(&["ignore", "stop following"]),
                    strings(&["", "all"])
                ],
                unless: vec![],
            },
            Template {
                kind: InjectionKind::RoleChange,
                end: End::Prefix,
                slots: vec![strings(&["jailbreak"])],
                unless: vec![],
            },
        ]
    );
}

#[test]
fn malformed_lines_are_reported_and_skipped() {
    let table = parse(
        "stray\n\
         @list verbs\n  Ignore\n  two  spaces\n  ok\n\
         @list verbs\n\
         @template instruction_override sideways\n  @slot verbs\n\
         @template role_change word\n  @slot nouns\n  @slot verbs extra\n\
         @template authority_claim colon\n  @slot\n\
         @template prompt_extraction word\n  @slot\n  @bogus\n\
         @template prompt_extraction word\n  @slot\n",
    );
    let bad: Vec<(usize, &str)> = table.bad.iter().map(|b| (b.line, b.reason)).collect();
    assert_eq!(
        bad,
        vec![
            (1, "an alternative outside a list or inline slot"),
            (
                3,
                "an alternative is lowercase ASCII words separated by single spaces"
            ),
            (
                4,
                "an alternative is lowercase ASCII words separated by single spaces"
            ),
            (6, "a list defined twice"),
            (7, "an unknown template kind or end"),
            (
                8,
                "a slot outside a template, or with more than one list name"
            ),
            (10, "a slot names a list not defined above it"),
            (
                11,
                "a slot outside a template, or with more than one list name"
            ),
            (13, "a list or slot without alternatives"),
            (15, "a list or slot without alternatives"),
            (16, "an unknown directive"),
            (18, "a list or slot without alternatives"),
        ]
    );
    // What could be read was kept; a slot naming a missing list matches nothing.
    assert_eq!(table.templates.len(), 4);
    assert_eq!(table.templates[0].slots, vec![Vec::<String>::new()]);
}

#[test]
fn unless_lists_read_and_refuse_misplaced_or_empty_words() {
    let table = parse(
        "@template authority_claim word\n  @slot\n    i am\n  @unless\n    at my\n\
         @unless\n    stray\n\
         @template role_marker label\n  @slot\n    system\n  @unless\n    -\n",
    );
    let bad: Vec<(usize, &str)> = table.bad.iter().map(|b| (b.line, b.reason)).collect();
    assert_eq!(
        bad,
        vec![
            (6, "an unless list outside a template, or with arguments"),
            (7, "an alternative outside a list or inline slot"),
            (
                12,
                "the empty alternative in an unless list would cancel every match"
            ),
            (11, "a list or slot without alternatives"),
        ]
    );
    assert_eq!(table.templates[0].unless, vec!["at my".to_string()]);
    assert_eq!(table.templates[1].kind, InjectionKind::RoleMarker);
    assert_eq!(table.templates[1].end, End::Label);
}

#[test]
fn only_the_letter_symbols_read_differently_as_letters() {
    // `has_letter_symbols` lets a text without them be read once; that holds only while no
    // other character depends on `symbols_as_letters`.
    for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
        if !LETTER_SYMBOLS.contains(&c) {
            assert_eq!(leet(c, true), leet(c, false), "{c:?}");
        }
    }
    for c in LETTER_SYMBOLS {
        assert_ne!(leet(c, true), leet(c, false), "{c:?}");
        assert!(has_letter_symbols(&format!("x{c}y")));
    }
    assert!(!has_letter_symbols("where is my parcel, ORD-12345?"));
}
