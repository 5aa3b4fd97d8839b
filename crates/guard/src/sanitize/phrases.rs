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
    /// Forge the conversation's structure: a role tag or chat-template token (`</tool_result>`,
    /// `<|im_start|>system`, `[INST]`), a transcript label ("SYSTEM:", "Assistant:") or a fake
    /// delimiter ("end of user input").
    RoleMarker,
}

impl InjectionKind {
    /// The stable machine-readable name: `instruction_override`, `prompt_extraction`,
    /// `role_change`, `authority_claim` or `role_marker`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InstructionOverride => "instruction_override",
            Self::PromptExtraction => "prompt_extraction",
            Self::RoleChange => "role_change",
            Self::AuthorityClaim => "authority_claim",
            Self::RoleMarker => "role_marker",
        }
    }

    /// Which kind is reported when two start at the same place.
    pub(super) fn rank(self) -> u8 {
        match self {
            Self::InstructionOverride => 0,
            Self::PromptExtraction => 1,
            Self::AuthorityClaim => 2,
            Self::RoleChange => 3,
            Self::RoleMarker => 4,
        }
    }
}

impl fmt::Display for InjectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The symbols [`leet`] reads as letters only when asked to (`symbols_as_letters`): a text
/// without any of them has one [`View`], however symbols are read.
pub(super) const LETTER_SYMBOLS: [char; 3] = ['@', '$', '!'];

/// Whether `folded` reads differently with symbols as letters (it holds one of
/// [`LETTER_SYMBOLS`]), so that both [`View`]s are worth building.
pub(super) fn has_letter_symbols(folded: &str) -> bool {
    folded.contains(LETTER_SYMBOLS)
}

/// Leetspeak, after folding (the skeleton has already turned `0` into `o` and `1`, `I`, `|`
/// into `l`). `l` and `i` become one letter because the skeleton cannot tell `1`, `l` and `I`
/// apart. Only the characters of [`LETTER_SYMBOLS`] depend on `symbols_as_letters`.
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

/// Marks on an offset of [`View::letters`].
mod mark {
    /// A word starts here.
    pub(super) const WORD_START: u8 = 1;
    /// A word ends here.
    pub(super) const WORD_END: u8 = 1 << 1;
    /// A `:` follows the word ending here (with only separators between).
    pub(super) const COLON_AFTER: u8 = 1 << 2;
    /// The word starting here opens the text or follows sentence or tag punctuation
    /// (`. ! ? ; : < > [ ] { } ( ) " # * =` or a dash run).
    pub(super) const SENTENCE_START: u8 = 1 << 3;
    /// The word starting here follows a heading or rule marker (`#`, `*`, `=`, a dash run).
    pub(super) const HEADING_START: u8 = 1 << 4;
    /// The word ending here is closed like a label (`:`, `>`, `]`, `}`, `#`, `=`, a dash run).
    pub(super) const LABEL_END: u8 = 1 << 5;
}

/// Characters of CJK scripts, written without spaces: each one is read as a word of its own,
/// so a phrase can start and end at any of them.
fn is_cjk(c: char) -> bool {
    matches!(
        u32::from(c),
        0x3040..=0x30FF     // hiragana, katakana
        | 0x31F0..=0x31FF   // katakana phonetic extensions
        | 0x3400..=0x4DBF   // CJK extension A
        | 0x4E00..=0x9FFF   // CJK unified ideographs
        | 0xF900..=0xFAFF   // CJK compatibility ideographs
        | 0x20000..=0x2FA1F // CJK extensions B and later
    )
}

/// Folded text as its words run together, with where words start and end and what
/// punctuation surrounds them.
pub(super) struct View {
    letters: String,
    /// [`mark`] bits per byte offset into `letters` (length + 1 entries).
    marks: Vec<u8>,
}

impl View {
    pub(super) fn new(folded: &str, symbols_as_letters: bool) -> Self {
        let mut letters = String::with_capacity(folded.len());
        let mut marks = vec![0u8; folded.len() + 1];
        fn set(marks: &mut [u8], offset: usize, bits: u8) {
            if let Some(slot) = marks.get_mut(offset) {
                *slot |= bits;
            }
        }
        let mut in_word = false;
        // Marks the separators since the last word earn the next word's start.
        let mut run = mark::SENTENCE_START;
        let mut dashes = 0usize;
        for c in folded.chars() {
            let c = leet(c, symbols_as_letters);
            if is_apostrophe(c) {
                continue;
            }
            let cjk = is_cjk(c);
            if c.is_alphanumeric() {
                if in_word && cjk {
                    set(&mut marks, letters.len(), mark::WORD_END);
                    in_word = false;
                }
                if !in_word {
                    set(&mut marks, letters.len(), mark::WORD_START | run);
                    run = 0;
                    dashes = 0;
                    in_word = true;
                }
                letters.push(c);
                if cjk {
                    set(&mut marks, letters.len(), mark::WORD_END);
                    in_word = false;
                }
                continue;
            }
            if in_word {
                set(&mut marks, letters.len(), mark::WORD_END);
                in_word = false;
            }
            dashes = if c == '-' { dashes + 1 } else { 0 };
            let (before_next, after_last) = match c {
                ':' => (mark::SENTENCE_START, mark::COLON_AFTER | mark::LABEL_END),
                '>' | ']' | '}' => (mark::SENTENCE_START, mark::LABEL_END),
                '#' | '=' => (mark::SENTENCE_START | mark::HEADING_START, mark::LABEL_END),
                '*' => (mark::SENTENCE_START | mark::HEADING_START, 0),
                '-' if dashes >= 2 => (mark::SENTENCE_START | mark::HEADING_START, mark::LABEL_END),
                '.' | '!' | '?' | ';' | '<' | '[' | '{' | '(' | ')' | '"' => {
                    (mark::SENTENCE_START, 0)
                }
                _ => (0, 0),
            };
            run |= before_next;
            // Only when a word has ended: a label must follow the word it closes.
            if after_last != 0 && !letters.is_empty() {
                set(&mut marks, letters.len(), after_last);
            }
        }
        if in_word {
            set(&mut marks, letters.len(), mark::WORD_END);
        }
        marks.truncate(letters.len() + 1);
        Self { letters, marks }
    }

    fn has(&self, offset: usize, bits: u8) -> bool {
        self.marks
            .get(offset)
            .is_some_and(|&marks| marks & bits == bits)
    }

    fn accepts(&self, start: usize, end: usize, how: End) -> bool {
        if !self.has(start, mark::WORD_START) {
            return false;
        }
        match how {
            End::Prefix => true,
            End::Word => self.has(end, mark::WORD_END),
            End::Colon => self.has(end, mark::WORD_END | mark::COLON_AFTER),
            End::Label => {
                self.has(start, mark::SENTENCE_START)
                    && self.has(end, mark::WORD_END | mark::LABEL_END)
            }
            End::Heading => self.has(start, mark::HEADING_START) && self.has(end, mark::WORD_END),
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
    /// A transcript label: starting a sentence (or the text, or right after a tag) and closed
    /// by `:`, `>`, `]`, `}`, `#`, `=` or a dash run ("SYSTEM: …", "--- system message ---").
    Label,
    /// A heading: right after `#`, `*`, `=` or a dash run, ending at the end of a word
    /// ("### Instruction", "=== SYSTEM").
    Heading,
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
    /// Words that, directly after a match, cancel it ("i am the admin" but not "i am the
    /// admin at my company").
    pub(super) unless: Vec<String>,
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
    /// The `unless` list of the last template.
    Unless,
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
                "-" if matches!(target, Target::Unless) => {
                    fail("the empty alternative in an unless list would cancel every match");
                    continue;
                }
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
                Target::Unless => table.templates.last_mut().map(|t| &mut t.unless),
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
                        unless: Vec::new(),
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
            (["unless"], Target::Template | Target::Slot) => {
                opened = Some(number);
                Target::Unless
            }
            (["unless", ..], _) => {
                fail("an unless list outside a template, or with arguments");
                Target::Nothing
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

/// Lowercase words (of any script) separated by single spaces.
fn is_phrase(line: &str) -> bool {
    line.split(' ').all(|word| {
        !word.is_empty() && word.chars().all(|c| c.is_alphabetic() && !c.is_uppercase())
    })
}

fn kind_named(name: &str) -> Option<InjectionKind> {
    [
        InjectionKind::InstructionOverride,
        InjectionKind::PromptExtraction,
        InjectionKind::RoleChange,
        InjectionKind::AuthorityClaim,
        InjectionKind::RoleMarker,
    ]
    .into_iter()
    .find(|kind| kind.as_str() == name)
}

fn end_named(name: &str) -> Option<End> {
    match name {
        "word" => Some(End::Word),
        "prefix" => Some(End::Prefix),
        "colon" => Some(End::Colon),
        "label" => Some(End::Label),
        "heading" => Some(End::Heading),
        _ => None,
    }
}

/// Fold a phrase exactly as caller text is folded, words run together.
pub(super) fn fold_phrase(phrase: &str) -> String {
    View::new(&fold(&normalize(phrase)), false).letters
}

/// A phrase folded as written, with its words capitalized and in capitals. Folding reads some
/// capitals differently from their small letters (Cyrillic `З` as `3` but `з` otherwise), so a
/// sentence that starts with a phrase, or shouts it, must be matched in those spellings too.
fn spellings(phrase: &str) -> Vec<String> {
    let capitalized: String = phrase
        .split(' ')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect::<String>()
            })
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut folded: Vec<String> = [phrase.to_string(), capitalized, phrase.to_uppercase()]
        .iter()
        .map(|spelling| fold_phrase(spelling))
        .collect();
    folded.dedup();
    folded
}

/// A template with its alternatives folded.
pub(super) struct CompiledTemplate {
    kind: InjectionKind,
    end: End,
    /// Folded alternatives of every slot after the first (the first slot is the anchor).
    rest: Vec<Vec<String>>,
    /// Folded words that cancel a match they directly follow.
    unless: Vec<String>,
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
                for folded in spellings(alternative) {
                    // An empty anchor would match everywhere; templates never start with one.
                    if !folded.is_empty() && seen.insert((folded.clone(), index)) {
                        anchors.push((folded, index));
                    }
                }
            }
            let all_spellings = |slot: &[String]| {
                let mut folded: Vec<String> = slot.iter().flat_map(|a| spellings(a)).collect();
                folded.sort();
                folded.dedup();
                folded
            };
            let rest = slots.map(|slot| all_spellings(slot)).collect();
            let unless = all_spellings(&template.unless);
            templates.push(CompiledTemplate {
                kind: template.kind,
                end: template.end,
                rest,
                unless,
            });
        }
        let automaton = AhoCorasick::new(anchors.iter().map(|(a, _)| a.as_str())).ok();
        Self {
            templates,
            anchors,
            automaton,
        }
    }

    /// The furthest end at which `template`'s slots from `slot` on can be matched from `pos`,
    /// ending as required. The furthest, so that an `unless` word is looked for after the
    /// whole phrase ("i am the system administrator | at my company"), not after a shorter
    /// reading of it ("i am the system | administrator").
    fn longest_end(
        view: &View,
        template: &CompiledTemplate,
        start: usize,
        pos: usize,
        slot: usize,
    ) -> Option<usize> {
        match template.rest.get(slot) {
            None => view.accepts(start, pos, template.end).then_some(pos),
            Some(alternatives) => alternatives
                .iter()
                .filter(|alternative| {
                    view.letters
                        .get(pos..)
                        .is_some_and(|tail| tail.starts_with(alternative.as_str()))
                })
                .filter_map(|alternative| {
                    Self::longest_end(view, template, start, pos + alternative.len(), slot + 1)
                })
                .max(),
        }
    }

    /// Whether one of `template`'s `unless` words follows a match ending at `end`.
    fn cancelled(view: &View, template: &CompiledTemplate, end: usize) -> bool {
        template.unless.iter().any(|word| {
            view.letters
                .get(end..)
                .is_some_and(|tail| tail.starts_with(word.as_str()))
                && view.has(end, mark::WORD_START)
                && view.has(end + word.len(), mark::WORD_END)
        })
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
                && Self::longest_end(view, template, start, end, 0)
                    .is_some_and(|end| !Self::cancelled(view, template, end))
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
