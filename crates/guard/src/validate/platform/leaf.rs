//! The leaves of a rendered platform schema: which keywords of a string or number property the
//! platform keeps, and how the constraints it cannot express are restated in English ("Must be
//! greater than 0 and at most 10000.", "4 to 8 characters.").
//!
//! This module owns those phrasings and the platform's list of string formats. It must not walk
//! the schema (no `$ref`, combinators or nesting: the renderer in the parent module does that) and
//! must not fail: a keyword it cannot phrase is left out of the note, never an error.

use serde_json::{Map, Value};

use crate::validators::{formats, CURRENCY_KEYWORD};

/// String formats the platform accepts (`$defs/StringFormat`).
const PLATFORM_FORMATS: &[&str] = &[
    "date_time",
    "time",
    "date",
    "duration",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uuid",
];

/// Numeric `format`s emitted by schemars for Rust number types; they carry no information the
/// range does not, so they are dropped without a note.
const NUMERIC_FORMATS: &[&str] = &[
    "int", "int8", "int16", "int32", "int64", "int128", "uint", "uint8", "uint16", "uint32",
    "uint64", "uint128", "float", "double",
];

/// The platform type of a literal (`"string"`, `"integer"`, `"number"`, `"boolean"`); `None`
/// for null, arrays and objects.
pub(super) fn json_type(v: &Value) -> Option<&'static str> {
    match v {
        Value::String(_) => Some("string"),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some("integer"),
        Value::Number(_) => Some("number"),
        Value::Bool(_) => Some("boolean"),
        _ => None,
    }
}

pub(super) fn render_string(
    map: &Map<String, Value>,
    out: &mut Map<String, Value>,
    notes: &mut Vec<String>,
) {
    if let Some(Value::Array(values)) = map.get("enum") {
        if values.iter().all(Value::is_string) {
            out.insert("enum".into(), Value::Array(values.clone()));
        } else {
            enum_note(map, notes);
        }
    }
    if let Some(d @ Value::String(_)) = map.get("default") {
        out.insert("default".into(), d.clone());
    }
    if let Some(p @ Value::String(_)) = map.get("pattern") {
        out.insert("pattern".into(), p.clone());
    }
    if let Some(Value::String(format)) = map.get("format") {
        let platform = if format == "date-time" {
            "date_time"
        } else {
            format.as_str()
        };
        if PLATFORM_FORMATS.contains(&platform) {
            out.insert("format".into(), Value::from(platform));
        } else if !NUMERIC_FORMATS.contains(&platform) {
            notes.push(format_note(format));
        }
    }
    count_note(
        map,
        "minLength",
        "maxLength",
        "character",
        "characters",
        notes,
    );
}

pub(super) fn render_number(
    map: &Map<String, Value>,
    ty: &str,
    out: &mut Map<String, Value>,
    notes: &mut Vec<String>,
) {
    let fits = |v: &Value| match json_type(v) {
        Some("integer") => true,
        Some("number") => ty == "number",
        _ => false,
    };
    if let Some(Value::Array(values)) = map.get("enum") {
        if values.iter().all(fits) {
            out.insert("enum".into(), Value::Array(values.clone()));
        } else {
            enum_note(map, notes);
        }
    }
    if let Some(d) = map.get("default").filter(|d| fits(d)) {
        out.insert("default".into(), d.clone());
    }
    if let Some(note) = range_note(map) {
        notes.push(note);
    }
    if let Some(Value::Number(step)) = map.get("multipleOf") {
        notes.push(format!("Must be a multiple of {step}."));
    }
    if map.get(CURRENCY_KEYWORD) == Some(&Value::Bool(true)) {
        notes.push("Amount with at most two decimal places.".to_string());
    }
}

pub(super) fn enum_note(map: &Map<String, Value>, notes: &mut Vec<String>) {
    if let Some(Value::Array(values)) = map.get("enum") {
        let shown: Vec<String> = values.iter().map(Value::to_string).collect();
        notes.push(format!("Must be one of: {}.", shown.join(", ")));
    }
}

pub(super) fn format_note(format: &str) -> String {
    match format {
        formats::E164 => "Phone number in E.164 format, e.g. +15551234567.".to_string(),
        formats::ACCOUNT_NUMBER => "Account number of exactly 10 digits.".to_string(),
        formats::ORDER_NUMBER => {
            "Order number such as ORD-12345: 2 to 5 capital letters, a dash, then 4 to 10 digits."
                .to_string()
        }
        formats::ISO_DATE => "Date in YYYY-MM-DD format, e.g. 2024-05-01.".to_string(),
        "uri-reference" => "Must be a URI reference.".to_string(),
        "iri" | "iri-reference" => "Must be an IRI.".to_string(),
        "idn-email" => "Must be an email address.".to_string(),
        "idn-hostname" => "Must be a hostname.".to_string(),
        "regex" => "Must be a regular expression.".to_string(),
        "json-pointer" => "Must be a JSON pointer.".to_string(),
        other => format!("Must be in {other} format."),
    }
}

/// The bound of a range: (exclusive, limit).
type Bound = (bool, serde_json::Number);

pub(super) fn bound(
    map: &Map<String, Value>,
    inclusive_key: &str,
    exclusive_key: &str,
    lower: bool,
) -> Option<Bound> {
    let inclusive = map.get(inclusive_key).and_then(Value::as_number).cloned();
    let exclusive = match map.get(exclusive_key) {
        Some(Value::Number(n)) => Some(n.clone()),
        // Draft 4 style: `"exclusiveMinimum": true` makes `minimum` exclusive.
        Some(Value::Bool(true)) => {
            return inclusive.map(|n| (true, n));
        }
        _ => None,
    };
    match (inclusive, exclusive) {
        (Some(i), Some(e)) => {
            let (iv, ev) = (i.as_f64().unwrap_or(0.0), e.as_f64().unwrap_or(0.0));
            let exclusive_is_stricter = if lower { ev >= iv } else { ev <= iv };
            Some(if exclusive_is_stricter {
                (true, e)
            } else {
                (false, i)
            })
        }
        (Some(i), None) => Some((false, i)),
        (None, Some(e)) => Some((true, e)),
        (None, None) => None,
    }
}

pub(super) fn range_note(map: &Map<String, Value>) -> Option<String> {
    let lower = bound(map, "minimum", "exclusiveMinimum", true);
    let upper = bound(map, "maximum", "exclusiveMaximum", false);
    let lower_text = lower.as_ref().map(|(exclusive, n)| {
        if *exclusive {
            format!("greater than {n}")
        } else {
            format!("at least {n}")
        }
    });
    let upper_text = upper.as_ref().map(|(exclusive, n)| {
        if *exclusive {
            format!("less than {n}")
        } else {
            format!("at most {n}")
        }
    });
    match (lower, upper, lower_text, upper_text) {
        (Some((false, lo)), Some((false, hi)), _, _) if lo.as_f64() == hi.as_f64() => {
            Some(format!("Must be exactly {lo}."))
        }
        (_, _, Some(l), Some(u)) => Some(format!("Must be {l} and {u}.")),
        (_, _, Some(l), None) => Some(format!("Must be {l}.")),
        (_, _, None, Some(u)) => Some(format!("Must be {u}.")),
        _ => None,
    }
}

pub(super) fn count_note(
    map: &Map<String, Value>,
    min_key: &str,
    max_key: &str,
    singular: &str,
    plural: &str,
    notes: &mut Vec<String>,
) {
    let min = map.get(min_key).and_then(Value::as_u64);
    let max = map.get(max_key).and_then(Value::as_u64);
    let unit = |n: u64| if n == 1 { singular } else { plural };
    let note = match (min, max) {
        (Some(lo), Some(hi)) if lo == hi => format!("Exactly {lo} {}.", unit(lo)),
        (Some(lo), Some(hi)) => format!("{lo} to {hi} {plural}."),
        (Some(0), None) | (None, None) => return,
        (Some(lo), None) => format!("At least {lo} {}.", unit(lo)),
        (None, Some(hi)) => format!("At most {hi} {}.", unit(hi)),
    };
    notes.push(note);
}

pub(super) fn base_description(map: &Map<String, Value>) -> Option<String> {
    let pick = |key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    pick("description").or_else(|| pick("title"))
}

pub(super) fn compose_description(base: Option<String>, notes: &[String]) -> Option<String> {
    if notes.is_empty() {
        return base;
    }
    let notes = notes.join(" ");
    Some(match base {
        None => notes,
        Some(b) => {
            let b = b.trim_end();
            if b.ends_with(['.', '!', '?', ':']) {
                format!("{b} {notes}")
            } else {
                format!("{b}. {notes}")
            }
        }
    })
}
