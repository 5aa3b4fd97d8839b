//! Canonical spellings of caller text: [`normalize`] (what every string argument becomes) and
//! the folding the injection detector reads text through (confusables, case, accents).
//!
//! This module owns which characters are invisible, how text is composed and how look-alike
//! letters are resolved. It must not decide what text means (that is the phrase table's job)
//! and must not allocate tables per call: the ASCII fast path is built once.

use std::borrow::Cow;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Normalize caller text: NFKC, without invisible or control characters, with single spaces.
///
/// - Unicode compatibility normalization (NFKC): fullwidth `ｉｇｎｏｒｅ` becomes `ignore`,
///   ligatures and mathematical alphanumerics become plain letters, no-break spaces become spaces;
/// - zero-width, invisible and bidirectional-control characters are removed (U+200B–U+200F,
///   U+202A–U+202E, U+2060–U+206F, U+FEFF, U+00AD soft hyphen, U+180E, U+034F, U+061C, Hangul
///   fillers, tag characters U+E0000–U+E007F, variation selectors, and the other
///   default-ignorable code points);
/// - control characters are removed, except tabs, line and page breaks, which become spaces;
/// - runs of whitespace become one space, and the ends are trimmed.
///
/// Normalizing twice changes nothing more.
///
/// ```
/// use voxguard_guard::normalize;
///
/// assert_eq!(normalize("  ｉｇｎｏｒｅ\u{200B}d \t\n123  Main\u{00A0}St "), "ignored 123 Main St");
/// ```
pub fn normalize(input: &str) -> String {
    normalized(input).into_owned()
}

/// [`normalize`], borrowing `input` when it is already normal (the common case: printable
/// ASCII with single inner spaces), so screening it allocates nothing.
pub(super) fn normalized(input: &str) -> Cow<'_, str> {
    if is_plain(input) {
        Cow::Borrowed(input)
    } else {
        Cow::Owned(normalize_slow(input))
    }
}

/// Whether `normalize` returns `input` unchanged by its look alone: printable ASCII (no
/// control characters, so nothing to drop or turn into a space; ASCII is already NFKC), no
/// space at either end and no two spaces in a row. One pass over the bytes.
fn is_plain(input: &str) -> bool {
    let bytes = input.as_bytes();
    let mut previous_space = true; // a leading space is not plain
    for &b in bytes {
        if !(b' '..=b'~').contains(&b) || (b == b' ' && previous_space) {
            return false;
        }
        previous_space = b == b' ';
    }
    !previous_space || bytes.is_empty()
}

/// [`normalize`] by its definition, for any text.
fn normalize_slow(input: &str) -> String {
    // Invisible characters go before composition, so a hidden character cannot keep a base
    // letter and its combining mark apart; the second filter catches anything composition made.
    let visible: String = input.chars().filter_map(visible_char).collect();
    // Every ASCII string is already in NFKC: skip the (costly) composition for the common case.
    let composed: String = if visible.is_ascii() {
        visible
    } else {
        visible.nfkc().filter_map(visible_char).collect()
    };
    composed.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `None` for a character to drop, a space for a line-breaking control character.
pub(super) fn visible_char(c: char) -> Option<char> {
    if matches!(
        c,
        '\t' | '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    ) {
        Some(' ')
    } else if c.is_control() || is_invisible(c) {
        None
    } else {
        Some(c)
    }
}

/// Whether `c` must not be shown as it is in a line a person or a log tool reads: a control
/// character (C0, DEL, C1), a line or paragraph separator (U+2028, U+2029: a new line to many
/// viewers), or a default-ignorable one (bidi overrides and isolates, zero-width characters),
/// which can forge or reorder what the line seems to say.
pub fn is_unsafe_in_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || is_invisible(c)
}

/// Whether `c` may stand for ASCII in a host name once IDNA (UTS #46) has mapped it: ASCII
/// itself, a character mapped to nothing (default ignorables, controls), one whose compatibility
/// decomposition is ASCII (fullwidth `ｈ`, mathematical `𝐡`, circled `ⓗ`), or a full stop IDNA
/// reads as `.`. Kana, ideographs and most letters of other scripts may not.
pub fn may_fold_to_ascii(c: char) -> bool {
    if c.is_ascii() || is_unsafe_in_line(c) || matches!(c, '\u{3002}' | '\u{FF0E}' | '\u{FF61}') {
        return true;
    }
    // A character without a decomposition is given back as itself (not ASCII here).
    let mut ascii = true;
    unicode_normalization::char::decompose_compatible(c, |d| ascii &= d.is_ascii());
    ascii
}

/// Default-ignorable code points: characters that render as nothing (or only steer rendering)
/// and so can hide text from a person reading it.
fn is_invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD              // soft hyphen
        | 0x034F            // combining grapheme joiner
        | 0x061C            // Arabic letter mark
        | 0x115F | 0x1160   // Hangul choseong/jungseong fillers
        | 0x17B4 | 0x17B5   // Khmer inherent vowels
        | 0x180B..=0x180F   // Mongolian free variation selectors and vowel separator
        | 0x200B..=0x200F   // zero-width space/non-joiner/joiner, LRM, RLM
        | 0x202A..=0x202E   // bidi embeddings and overrides
        | 0x2060..=0x206F   // word joiner, invisible operators, bidi isolates, deprecated formats
        | 0x3164            // Hangul filler
        | 0xFE00..=0xFE0F   // variation selectors
        | 0xFEFF            // zero-width no-break space (BOM)
        | 0xFFA0            // halfwidth Hangul filler
        | 0xFFF0..=0xFFF8   // unassigned specials
        | 0x1BCA0..=0x1BCA3 // shorthand format controls
        | 0x1D173..=0x1D17A // musical formatting
        | 0xE0000..=0xE0FFF // tag characters and variation selectors supplement
    )
}

/// Fold normalized text to its canonical skeleton: confusables (UTS #39) resolved before and
/// after lowercasing (uppercase Greek `Ν` looks like `N`, lowercase `ν` like `v`), small
/// capitals read as letters, combining marks dropped.
pub(super) fn fold(normalized: &str) -> String {
    if normalized.is_ascii() {
        if let Some(table) = ascii_fold_table() {
            // Sized up front (collecting regrew the string several times): most ASCII characters
            // fold to one byte, copied as a byte; the few that fold to more may still grow it.
            let mut folded = String::with_capacity(normalized.len() + 8);
            for b in normalized.bytes() {
                match table.single[usize::from(b)] {
                    MANY => folded.push_str(&table.strings[usize::from(b)]),
                    one => folded.push(char::from(one)),
                }
            }
            return folded;
        }
    }
    fold_unicode(normalized)
}

/// In [`AsciiFold::single`]: the character folds to more (or other) than one ASCII byte.
const MANY: u8 = 0xFF;

/// What each ASCII character folds to: as text, and as its one ASCII byte when it is one.
pub(super) struct AsciiFold {
    /// [`fold_unicode`] of each ASCII character.
    strings: [String; 128],
    /// The same as one byte (ASCII), or [`MANY`].
    single: [u8; 128],
}

/// [`fold_unicode`] of each ASCII character. Folding ASCII text is a per-character mapping:
/// NFD is the identity on ASCII, and what the characters fold to (ASCII letters, and `%` to
/// `°/₀`) has no combining marks to reorder across character boundaries. Built once from the
/// Unicode path itself, so both agree character by character; a property test checks whole
/// random ASCII strings. `None` only if that ever stopped holding for a single character.
pub(super) fn ascii_fold_table() -> Option<&'static AsciiFold> {
    static TABLE: std::sync::OnceLock<Option<AsciiFold>> = std::sync::OnceLock::new();
    TABLE
        .get_or_init(|| {
            let strings: [String; 128] = std::array::from_fn(|b| {
                let c = char::from(u8::try_from(b).unwrap_or(0));
                fold_unicode(c.encode_utf8(&mut [0; 4]))
            });
            let single = std::array::from_fn(|b| match strings[b].as_bytes() {
                // One byte of UTF-8 is ASCII.
                [one] => *one,
                _ => MANY,
            });
            // Self-check: a two-character probe of every pair would be 16k folds; one string
            // of every character in order is a cheap witness that concatenation holds.
            let all: String = (0u8..128).map(char::from).collect();
            let joined: String = strings.iter().map(String::as_str).collect();
            (fold_unicode(&all) == joined).then_some(AsciiFold { strings, single })
        })
        .as_ref()
}

/// [`fold`] for any text.
pub(super) fn fold_unicode(normalized: &str) -> String {
    let first: String = unicode_security::skeleton(normalized).collect();
    let lowered: String = first
        .chars()
        .flat_map(char::to_lowercase)
        .map(small_capital)
        .collect();
    unicode_security::skeleton(&lowered)
        .flat_map(char::to_lowercase)
        .filter(|c| !is_combining_mark(*c))
        .collect()
}

/// Letters that look like small versions of Latin capitals (the skeletons of several Cyrillic
/// lowercase letters) and have no lowercase of their own.
fn small_capital(c: char) -> char {
    match c {
        'ᴀ' => 'a',
        'ʙ' => 'b',
        'ᴄ' => 'c',
        'ᴅ' => 'd',
        'ᴇ' | 'ꞓ' => 'e',
        'ꜰ' => 'f',
        'ɢ' => 'g',
        'ʜ' => 'h',
        'ɪ' => 'i',
        'ᴊ' => 'j',
        'ᴋ' | 'ĸ' => 'k',
        'ʟ' => 'l',
        'ᴍ' | 'ʍ' => 'm',
        'ɴ' | 'ᴨ' => 'n',
        'ᴏ' => 'o',
        'ᴘ' => 'p',
        'ʀ' | 'ᴦ' => 'r',
        'ꜱ' => 's',
        'ᴛ' => 't',
        'ᴜ' => 'u',
        'ᴠ' => 'v',
        'ᴡ' => 'w',
        'ʏ' => 'y',
        'ᴢ' => 'z',
        other => other,
    }
}
