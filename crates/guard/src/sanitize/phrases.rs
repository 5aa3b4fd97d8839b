//! The phrase table of the injection detector, and finding the earliest phrase in caller text.
//!
//! This module owns [`InjectionKind`], the table itself (`phrases.txt` beside this file, read once
//! on first use; its header explains the format) and the matcher built from it: folded text is
//! viewed as its words run together ([`View`]), an automaton finds each template's first slot,
//! and the remaining slots are checked from there. It must not normalize or fold text itself
//! (the `text` module does) and must not fail at run time: a table line it cannot read is
//! skipped, and a unit test makes sure there is none.

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::OnceLock;

use aho_corasick::AhoCorasick;

use super::text::{fold, normalize};

/// What a detected prompt-injection attempt tries to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InjectionKind {
    /// Make the agent drop its instructions ("ignore previous instructions", "disregard the
    /// above", "new instructions:", "jailbreak").
    InstructionOverride,
    /// Make the agent disclose its instructions ("reveal your system prompt", "what is your
    /// system prompt").
    PromptExtraction,
    /// Make the agent become something else ("you are now…", "pretend to be", "act as admin",
    /// "developer mode", "you are DAN").
    RoleChange,
    /// Claim authority over the agent ("I am the admin", "this is your developer").
    AuthorityClaim,
}

impl InjectionKind {
    /// The stable machine-readable name: `instruction_override`, `prompt_extraction`,
    /// `role_change` or `authority_claim`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InstructionOverride => "instruction_override",
            Self::PromptExtraction => "prompt_extraction",
            Self::RoleChange => "role_change",
            Self::AuthorityClaim => "authority_claim",
        }
    }

    /// Which kind is reported when two start at the same place.
    pub(super) fn rank(self) -> u8 {
        match self {
            Self::InstructionOverride => 0,
            Self::PromptExtraction => 1,
            Self::AuthorityClaim => 2,
            Self::RoleChange => 3,
        }
    }
}

impl fmt::Display for InjectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Leetspeak, after folding (the skeleton has already turned `0` into `o` and `1`, `I`, `|`
/// into `l`). `l` and `i` become one letter because the skeleton cannot tell `1`, `l` and `I`
/// apart.
fn leet(c: char, symbols_as_letters: bool) -> char {
    match c {
        'l' | '1' | '|' => 'i',
        '0' => 'o',
        '3' => 'e',
        '4' => 'a',
        '5' => 's',
        '7' => 't',
        '@' if symbols_as_letters => 'a',
        '$' if symbols_as_letters => 's',
        '!' if symbols_as_letters => 'i',
        other => other,
    }
}

/// Apostrophes join ("you're" reads "youre"); the skeleton maps its look-alikes to `'`.
fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{02BC}' | '`' | '\u{00B4}')
}

/// Folded text as its words run together, with where words start and end.
pub(super) struct View {
    letters: String,
    /// Byte offsets into `letters` (length + 1 entries).
    word_start: Vec<bool>,
    word_end: Vec<bool>,
    /// A `:` follows the word ending here (with only separators between).
    colon_after: Vec<bool>,
}

impl View {
    pub(super) fn new(folded: &str, symbols_as_letters: bool) -> Self {
        let mut letters = String::with_capacity(folded.len());
        let (mut starts, mut ends, mut colons) = (Vec::new(), Vec::new(), Vec::new());
        let mut in_word = false;
        for c in folded.chars() {
            let c = leet(c, symbols_as_letters);
            if is_apostrophe(c) {
                continue;
            }
            if c.is_alphanumeric() {
                if !in_word {
                    starts.push(letters.len());
                    in_word = true;
                }
                letters.push(c);
            } else {
                if in_word {
                    ends.push(letters.len());
                    in_word = false;
                }
                if c == ':' {
                    colons.push(letters.len());
                }
            }
        }
        if in_word {
            ends.push(letters.len());
        }
        let marks = |offsets: Vec<usize>| {
            let mut marked = vec![false; letters.len() + 1];
            for offset in offsets {
                if let Some(slot) = marked.get_mut(offset) {
                    *slot = true;
                }
            }
            marked
        };
        let (word_start, word_end, colon_after) = (marks(starts), marks(ends), marks(colons));
        Self {
            letters,
            word_start,
            word_end,
            colon_after,
        }
    }

    fn at(marks: &[bool], offset: usize) -> bool {
        marks.get(offset).copied().unwrap_or(false)
    }

    fn accepts(&self, start: usize, end: usize, how: End) -> bool {
        if !Self::at(&self.word_start, start) {
            return false;
        }
        match how {
            End::Prefix => true,
            End::Word => Self::at(&self.word_end, end),
            End::Colon => Self::at(&self.word_end, end) && Self::at(&self.colon_after, end),
        }
    }
}

/// How a phrase must end in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum End {
    /// At the end of a word.
    Word,
    /// Anywhere: the phrase is a word prefix ("jailbreak" also matches "jailbreaking").
    Prefix,
    /// At the end of a word followed by `:` ("new instructions: …").
    Colon,
}

/// A phrase template: every combination of one alternative per slot, joined by spaces, is a
/// phrase (an empty alternative makes a slot optional, except in the first, which anchors the
/// search).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Template {
    /// The kind a match reports.
    pub(super) kind: InjectionKind,
    /// How a match must end.
    pub(super) end: End,
    /// The alternatives of each slot, as written.
    pub(super) slots: Vec<Vec<String>>,
}

/// A line of the phrase table that could not be read (1-based line number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BadLine {
    pub(super) line: usize,
    pub(super) reason: &'static str,
}

/// The phrase table as read: the templates, and the lines that had to be skipped.
#[derive(Debug, Default)]
pub(super) struct Table {
    pub(super) templates: Vec<Template>,
    pub(super) bad: Vec<BadLine>,
}

/// The phrase table shipped with the detector (format in its header).
pub(super) const PHRASES: &str = include_str!("phrases.txt");

/// The shipped table, read on first use.
pub(super) fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| parse(PHRASES))
}

/// Where the alternatives on the next lines go.
#[derive(Clone, Copy)]
enum Target<'t> {
    /// Nowhere: before any directive, or after one that failed.
    Nothing,
    /// The named list being defined.
    List(&'t str),
    /// A template that takes no alternatives until an inline `@slot`.
    Template,
    /// The last slot of the last template.
    Slot,
}

/// Read a phrase table (format in `phrases.txt`). Never fails: a line it cannot read is
/// recorded in [`Table::bad`] and skipped (a list or slot it names is left empty, so its
/// template matches nothing rather than more).
pub(super) fn parse(text: &str) -> Table {
    let mut lists: HashMap<&str, Vec<String>> = HashMap::new();
    let mut table = Table::default();
    let mut target = Target::Nothing;
    // Where the open list or inline slot started, to report it if it gets no alternatives.
    let mut opened: Option<usize> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fail = |reason| {
            table.bad.push(BadLine {
                line: number,
                reason,
            })
        };
        let Some(directive) = line.strip_prefix('@') else {
            let alternative = match line {
                "-" => String::new(),
                _ if is_phrase(line) => line.to_string(),
                _ => {
                    fail("an alternative is lowercase ASCII words separated by single spaces");
                    continue;
                }
            };
            let alternatives = match target {
                Target::List(name) => lists.get_mut(name),
                Target::Slot => table.templates.last_mut().and_then(|t| t.slots.last_mut()),
                Target::Nothing | Target::Template => None,
            };
            match alternatives {
                Some(alternatives) => {
                    alternatives.push(alternative);
                    opened = None;
                }
                None => fail("an alternative outside a list or inline slot"),
            }
            continue;
        };
        if let Some(start) = opened.take() {
            table.bad.push(BadLine {
                line: start,
                reason: "a list or slot without alternatives",
            });
        }
        let mut fail = |reason| {
            table.bad.push(BadLine {
                line: number,
                reason,
            })
        };
        let words: Vec<&str> = directive.split_whitespace().collect();
        target = match (words.as_slice(), target) {
            (["list", name], _) if lists.contains_key(name) => {
                fail("a list defined twice");
                Target::Nothing
            }
            (["list", name], _) => {
                lists.insert(name, Vec::new());
                opened = Some(number);
                Target::List(name)
            }
            (["template", kind, end], _) => match (kind_named(kind), end_named(end)) {
                (Some(kind), Some(end)) => {
                    table.templates.push(Template {
                        kind,
                        end,
                        slots: Vec::new(),
                    });
                    Target::Template
                }
                _ => {
                    fail("an unknown template kind or end");
                    Target::Nothing
                }
            },
            (["slot", rest @ ..], Target::Template | Target::Slot) if rest.len() <= 1 => {
                let (slot, next) = match rest {
                    [name] => match lists.get(name) {
                        Some(list) => (list.clone(), Target::Template),
                        None => {
                            fail("a slot names a list not defined above it");
                            (Vec::new(), Target::Template)
                        }
                    },
                    _ => {
                        opened = Some(number);
                        (Vec::new(), Target::Slot)
                    }
                };
                if let Some(template) = table.templates.last_mut() {
                    template.slots.push(slot);
                }
                next
            }
            (["slot", ..], _) => {
                fail("a slot outside a template, or with more than one list name");
                Target::Nothing
            }
            _ => {
                fail("an unknown directive");
                Target::Nothing
            }
        };
    }
    if let Some(start) = opened {
        table.bad.push(BadLine {
            line: start,
            reason: "a list or slot without alternatives",
        });
    }
    table
}

/// Lowercase ASCII words separated by single spaces.
fn is_phrase(line: &str) -> bool {
    line.split(' ')
        .all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase()))
}

fn kind_named(name: &str) -> Option<InjectionKind> {
    [
        InjectionKind::InstructionOverride,
        InjectionKind::PromptExtraction,
        InjectionKind::RoleChange,
        InjectionKind::AuthorityClaim,
    ]
    .into_iter()
    .find(|kind| kind.as_str() == name)
}

fn end_named(name: &str) -> Option<End> {
    match name {
        "word" => Some(End::Word),
        "prefix" => Some(End::Prefix),
        "colon" => Some(End::Colon),
        _ => None,
    }
}

/// Fold a phrase exactly as caller text is folded, words run together.
pub(super) fn fold_phrase(phrase: &str) -> String {
    View::new(&fold(&normalize(phrase)), false).letters
}

/// A template with its alternatives folded.
pub(super) struct CompiledTemplate {
    kind: InjectionKind,
    end: End,
    /// Folded alternatives of every slot after the first (the first slot is the anchor).
    rest: Vec<Vec<String>>,
}

/// Finds templates in a [`View`]: an automaton over every template's first slot ("anchors")
/// locates candidates, and the remaining slots are checked alternative by alternative from
/// there. Matching slot by slot keeps the automaton small (a few hundred anchors instead of
/// every expansion of every template), so building it is cheap.
pub(super) struct PhraseMatcher {
    pub(super) templates: Vec<CompiledTemplate>,
    /// Folded first-slot alternatives and the index of the template each starts.
    pub(super) anchors: Vec<(String, usize)>,
    /// `None` only if the automaton could not be built; then anchors are searched one by one.
    pub(super) automaton: Option<AhoCorasick>,
}

impl PhraseMatcher {
    pub(super) fn build() -> Self {
        let table = &table().templates;
        let mut templates = Vec::with_capacity(table.len());
        let mut anchors = Vec::new();
        let mut seen: HashSet<(String, usize)> = HashSet::new();
        for (index, template) in table.iter().enumerate() {
            let mut slots = template.slots.iter();
            for alternative in slots.next().map(Vec::as_slice).unwrap_or_default() {
                let folded = fold_phrase(alternative);
                // An empty anchor would match everywhere; templates never start with one.
                if !folded.is_empty() && seen.insert((folded.clone(), index)) {
                    anchors.push((folded, index));
                }
            }
            let rest = slots
                .map(|slot| {
                    let mut folded: Vec<String> = slot.iter().map(|a| fold_phrase(a)).collect();
                    folded.sort();
                    folded.dedup();
                    folded
                })
                .collect();
            templates.push(CompiledTemplate {
                kind: template.kind,
                end: template.end,
                rest,
            });
        }
        let automaton = AhoCorasick::new(anchors.iter().map(|(a, _)| a.as_str())).ok();
        Self {
            templates,
            anchors,
            automaton,
        }
    }

    /// Whether `template`'s slots from `slot` on can be matched at `pos`, ending as required.
    fn completes(
        view: &View,
        template: &CompiledTemplate,
        start: usize,
        pos: usize,
        slot: usize,
    ) -> bool {
        match template.rest.get(slot) {
            None => view.accepts(start, pos, template.end),
            Some(alternatives) => alternatives.iter().any(|alternative| {
                view.letters
                    .get(pos..)
                    .is_some_and(|tail| tail.starts_with(alternative.as_str()))
                    && Self::completes(view, template, start, pos + alternative.len(), slot + 1)
            }),
        }
    }

    /// The earliest phrase in `view`: (start, kind).
    pub(super) fn first_match(&self, view: &View) -> Option<(usize, InjectionKind)> {
        let mut best: Option<(usize, InjectionKind)> = None;
        let mut consider = |start: usize, end: usize, anchor: usize| {
            let Some(template) = self
                .anchors
                .get(anchor)
                .and_then(|&(_, index)| self.templates.get(index))
            else {
                return;
            };
            let kind = template.kind;
            if best.is_none_or(|(s, k)| (start, kind.rank()) < (s, k.rank()))
                && Self::completes(view, template, start, end, 0)
            {
                best = Some((start, kind));
            }
        };
        match self
            .automaton
            .as_ref()
            .and_then(|ac| ac.try_find_overlapping_iter(view.letters.as_str()).ok())
        {
            Some(matches) => {
                for m in matches {
                    consider(m.start(), m.end(), m.pattern().as_usize());
                }
            }
            None => {
                for (anchor, (text, _)) in self.anchors.iter().enumerate() {
                    for (start, _) in view.letters.match_indices(text.as_str()) {
                        consider(start, start + text.len(), anchor);
                    }
                }
            }
        }
        best
    }
}
