//! The one walk from an argument path (`address/zip`, `items/0`) to the parts of a tool's JSON
//! schema that describe the value there.
//!
//! This module owns how such a path is written and read (segments split on `/`, `~1` meaning
//! `/` and `~0` meaning `~`, as [`ArgError::field`](super::ArgError::field) writes them) and
//! how a schema is followed along it: `properties`; array positions through `prefixItems`, then
//! `items`; local `$ref`s (`#` or any JSON pointer into the same document); `allOf`, `anyOf`
//! and `oneOf`; and, only for questions about values, never about names,
//! `additionalProperties` (not where `patternProperties` may match instead: the walk does not
//! evaluate patterns, and answers as if nothing constrained the member). A digit segment is
//! an array's element or an object's member, whichever `type` allows; a subschema with its own
//! `$id` (a new base for its `$ref`s) is not walked into. Two answers are built on that walk: [`declared_path`] (does the
//! schema itself name every member on the path, so the path is safe to report?) and
//! [`max_length_at`] (which `maxLength` applies there, for the input guard); [`SchemaPaths`]
//! keeps both for a schema's root members. It must not fetch remote schemas, compile validators
//! or report errors: a `$ref` that cannot be resolved, or that cycles back, simply leads
//! nowhere.

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

/// Append the member `name` to the argument path `path` as the paths here are written: `/`
/// between segments (none at the root), `~` as `~0` and `/` as `~1` — straight into `path`,
/// without an escaped copy of `name`.
///
/// ```
/// let mut path = String::from("address");
/// voxguard_guard::push_path_segment(&mut path, "a/b~c");
/// assert_eq!(path, "address/a~1b~0c");
/// ```
pub fn push_path_segment(path: &mut String, name: &str) {
    if !path.is_empty() {
        path.push('/');
    }
    for part in name.split_inclusive(['~', '/']) {
        match part.as_bytes().last() {
            Some(b'~') => {
                path.push_str(&part[..part.len() - 1]);
                path.push_str("~0");
            }
            Some(b'/') => {
                path.push_str(&part[..part.len() - 1]);
                path.push_str("~1");
            }
            _ => path.push_str(part),
        }
    }
}

/// Which members a walk may step into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Members {
    /// Only members the schema names: `properties` and array positions.
    Declared,
    /// Also members whose names the caller chose, through `additionalProperties`.
    Any,
}

/// What a walk computes at the schemas a path ends at, and how it joins their answers.
struct Fold<T> {
    /// Which members the walk steps into.
    members: Members,
    /// The answer of one schema the path ends at.
    at_end: fn(&Value) -> Option<T>,
    /// The answer where nothing constrains the value (a member no keyword describes).
    open: fn() -> Option<T>,
    /// The answer where no value can be (a `false` schema, a member an object cannot have).
    excluded: fn() -> Option<T>,
    /// Join answers that all apply at once: a schema with its `$ref` target and `allOf` branches.
    all: fn(Vec<T>) -> Option<T>,
    /// Join the answers of alternatives: the branches of one `anyOf` or `oneOf`.
    any: fn(Vec<T>) -> Option<T>,
}

/// Some answer when there is at least one.
fn exists(answers: Vec<()>) -> Option<()> {
    answers.first().copied()
}

/// [`declared_path`]: every schema reached names the path; any route will do.
const DECLARED: Fold<()> = Fold {
    members: Members::Declared,
    at_end: |_| Some(()),
    open: || None,
    excluded: || None,
    all: exists,
    any: exists,
};

/// What one schema says about the length of a string at the end of a path, ordered from the
/// tightest to the loosest so that limits applying together join by `min` and alternatives by
/// `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Limit {
    /// No string can be there through this schema (`type` names no string, `false`, or an
    /// object that allows no such member): an alternative like this — the `null` of an
    /// `Option` — does not loosen the others.
    Excluded,
    /// `maxLength` characters at most.
    Max(usize),
    /// A string of any length can be there.
    Unbounded,
}

/// Whether the `type` keyword of `schema`, when it has one, names none of `kinds`.
fn type_excludes(schema: &Value, kinds: &[&str]) -> bool {
    match schema.get("type") {
        Some(Value::String(kind)) => !kinds.contains(&kind.as_str()),
        Some(Value::Array(types)) => !types
            .iter()
            .any(|kind| kind.as_str().is_some_and(|kind| kinds.contains(&kind))),
        _ => false,
    }
}

/// [`max_length_at`]: the smallest limit of those that apply together, the largest across
/// alternatives; an alternative that leaves the string unbounded leaves it unbounded.
const MAX_LENGTH: Fold<Limit> = Fold {
    members: Members::Any,
    at_end: |schema| {
        Some(match schema {
            Value::Bool(false) => Limit::Excluded,
            _ if type_excludes(schema, &["string"]) => Limit::Excluded,
            _ => match schema.get("maxLength").and_then(Value::as_u64) {
                Some(n) => Limit::Max(usize::try_from(n).unwrap_or(usize::MAX)),
                None => Limit::Unbounded,
            },
        })
    },
    open: || Some(Limit::Unbounded),
    excluded: || Some(Limit::Excluded),
    all: |limits| limits.into_iter().min(),
    any: |limits| limits.into_iter().max(),
};

/// Whether every segment of `path` names a member the schema itself declares along the way, so
/// the path carries no name the caller chose and is safe to report (e.g. as the field of an
/// [`ArgError`](super::ArgError)).
///
/// `path` is an [`ArgError::field`](super::ArgError::field)-style pointer: segments split on
/// `/`, `~1` meaning `/` and `~0` meaning `~`; empty segments (a leading, doubled or trailing
/// `/`) are skipped, and the root (`""`) is declared. A segment is declared when it is a key of
/// `properties`, or an array index (digits only) where `prefixItems` or `items` describe the
/// array. Local `$ref`s (`#/$defs/X`, `#/definitions/X`, any JSON pointer, `#`), `allOf`,
/// `anyOf` and `oneOf` are followed; a member allowed only by `additionalProperties` or
/// `patternProperties` is *not* declared: its name came from the caller. Cyclic `$ref`s
/// terminate.
///
/// ```
/// use serde_json::json;
/// use voxguard_guard::declared_path;
///
/// let schema = json!({
///     "type": "object",
///     "properties": {
///         "address": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}]},
///         "notes": {"type": "object", "additionalProperties": {"type": "string"}}
///     },
///     "$defs": {"Address": {"type": "object", "properties": {"zip": {"type": "string"}}}}
/// });
/// assert!(declared_path(&schema, "address/zip"));
/// assert!(declared_path(&schema, "notes"));
/// assert!(!declared_path(&schema, "notes/my-card-is-4111"));
/// assert!(!declared_path(&schema, "address/street"));
/// ```
pub fn declared_path(schema: &Value, path: &str) -> bool {
    let names: Vec<String> = segments(path)
        .into_iter()
        .filter(|name| !name.is_empty())
        .collect();
    walk(schema, schema, &names, &DECLARED, &mut Vec::new()).is_some()
}

/// The `maxLength` that applies to the string at `path` in arguments described by `schema`, the
/// way [`ArgValidator`](super::ArgValidator) would find it: following `properties`,
/// `items`/`prefixItems`, `additionalProperties`, local `$ref`s and `allOf`/`anyOf`/`oneOf`.
/// `path` is an [`ArgError::field`](super::ArgError::field)-style pointer (`"name"`,
/// `"address/street"`, `"items/0"`, `""` for the root). Where several limits apply at once
/// (`$ref` siblings, `allOf`) the smallest wins; across alternatives (`anyOf`/`oneOf`, e.g. an
/// `Option`) the largest, counting only alternatives that allow a string there (`{"type":
/// "null"}` does not). `None` when no limit is set — also when one alternative sets a limit and
/// another allows a string of any length: the value may match the unbounded one.
///
/// Feed it to [`InputGuard::screen`](crate::InputGuard::screen) so a schema's own limit replaces
/// the guard's default:
///
/// ```
/// use serde_json::json;
/// use voxguard_guard::{max_length_at, InputGuard};
///
/// let schema = json!({
///     "type": "object",
///     "properties": {
///         "note": {"type": "string", "maxLength": 1000},
///         "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}}
///     },
///     "$defs": {"Tag": {"type": "string", "maxLength": 16}}
/// });
/// assert_eq!(max_length_at(&schema, "note"), Some(1000));
/// assert_eq!(max_length_at(&schema, "tags/3"), Some(16));
/// assert_eq!(max_length_at(&schema, "other"), None);
///
/// let mut args = json!({"note": "x".repeat(600)});
/// assert!(InputGuard::new().screen(&mut args, &|p| max_length_at(&schema, p)).is_ok());
/// ```
pub fn max_length_at(schema: &Value, path: &str) -> Option<usize> {
    match walk(
        schema,
        schema,
        &segments(path),
        &MAX_LENGTH,
        &mut Vec::new(),
    ) {
        Some(Limit::Max(n)) => Some(n),
        Some(Limit::Excluded | Limit::Unbounded) | None => None,
    }
}

/// [`declared_path`] and [`max_length_at`] of one schema, remembered for each member its root
/// lists under `properties` — every call asks both about each of its arguments, and most tools'
/// arguments are flat — and walked for any other path. An answer is computed the first time it
/// is asked for (never more walking than asking without it would cost), then kept: one entry
/// per declared member (a size the schema fixes), never one per path asked about.
///
/// ```
/// use serde_json::json;
/// use voxguard_guard::{declared_path, max_length_at, SchemaPaths};
///
/// let schema = json!({"properties": {"note": {"type": "string", "maxLength": 9}}});
/// let paths = SchemaPaths::new(&schema);
/// for path in ["note", "note/x", "other", ""] {
///     assert_eq!(paths.declared(&schema, path), declared_path(&schema, path));
///     assert_eq!(paths.max_length(&schema, path), max_length_at(&schema, path));
/// }
/// ```
#[derive(Debug, Clone, Default)]
pub struct SchemaPaths {
    /// Path of a root member → its answers, once asked for.
    members: std::collections::HashMap<String, Answers>,
}

/// The remembered answers for one path.
#[derive(Debug, Clone, Default)]
struct Answers {
    declared: std::sync::OnceLock<bool>,
    max_length: std::sync::OnceLock<Option<usize>>,
}

impl SchemaPaths {
    /// Room for the answers about `schema`'s root members (nothing is walked yet). Every
    /// question must pass the same `schema`.
    pub fn new(schema: &Value) -> Self {
        let members = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|properties| {
                properties
                    .keys()
                    .map(|name| {
                        let mut path = String::new();
                        push_path_segment(&mut path, name);
                        (path, Answers::default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { members }
    }

    /// [`declared_path`]`(schema, path)`.
    pub fn declared(&self, schema: &Value, path: &str) -> bool {
        match self.members.get(path) {
            Some(answers) => *answers.declared.get_or_init(|| declared_path(schema, path)),
            None => declared_path(schema, path),
        }
    }

    /// [`max_length_at`]`(schema, path)`.
    pub fn max_length(&self, schema: &Value, path: &str) -> Option<usize> {
        match self.members.get(path) {
            Some(answers) => *answers
                .max_length
                .get_or_init(|| max_length_at(schema, path)),
            None => max_length_at(schema, path),
        }
    }

    /// About how many bytes of memory the answers take (for a cache's budget).
    pub fn heap_bytes(&self) -> usize {
        self.members
            .keys()
            .map(|path| path.len() + std::mem::size_of::<(String, Answers)>() + 16)
            .sum()
    }
}

/// The target of a `$ref` inside `doc`: `#` is the root, `#/…` a JSON pointer into it,
/// percent-decoded as a validator reads it. `None` for a reference to anything else (another
/// document, an anchor), to nothing, or through a subschema with its own `$id` (which a
/// validator would resolve the rest of the pointer against instead; a target that has one is
/// fine).
pub(super) fn resolve_ref<'d>(doc: &'d Value, reference: &str) -> Option<&'d Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(doc);
    }
    let pointer = percent_encoding::percent_decode_str(pointer)
        .decode_utf8()
        .ok()?;
    let mut node = doc;
    for token in pointer.strip_prefix('/')?.split('/') {
        if !std::ptr::eq(node, doc) && node.get("$id").is_some() {
            return None;
        }
        let token = token.replace("~1", "/").replace("~0", "~");
        node = match node {
            Value::Object(map) => map.get(&token)?,
            Value::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// The member names of `path`: split on `/`, then `~1` → `/` and `~0` → `~`. `""` is the root.
fn segments(path: &str) -> Vec<String> {
    if path.is_empty() {
        return Vec::new();
    }
    path.split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Fold the schemas that describe `path` below `schema`. `visiting` holds the `$ref`s being
/// followed with how much path was left then; meeting one again at the same point is a cycle
/// and leads nowhere, and every other step shortens the path, so the walk ends.
fn walk<'d, T>(
    doc: &'d Value,
    schema: &'d Value,
    path: &[String],
    fold: &Fold<T>,
    visiting: &mut Vec<(&'d str, usize)>,
) -> Option<T> {
    let Value::Object(map) = schema else {
        // `true`/`false` schemas describe no members.
        return match path.first() {
            None => (fold.at_end)(schema),
            Some(_) if *schema == Value::Bool(false) => (fold.excluded)(),
            Some(_) => (fold.open)(),
        };
    };
    if (map.contains_key("$id") || map.contains_key("$schema") || map.contains_key("id"))
        && !std::ptr::eq(schema, doc)
    {
        // A new base for the `$ref`s below, or another draft's rules (a draft-07 `$ref`
        // hides its siblings), which this walk does not follow: no answer.
        return (fold.open)();
    }
    let mut answers: Vec<T> = Vec::new();
    if let Some(Value::String(reference)) = map.get("$ref") {
        let key = (reference.as_str(), path.len());
        if let Some(target) = resolve_ref(doc, reference).filter(|_| !visiting.contains(&key)) {
            visiting.push(key);
            answers.extend(walk(doc, target, path, fold, visiting));
            visiting.pop();
        }
    }
    if let Some(Value::Array(branches)) = map.get("allOf") {
        for branch in branches {
            answers.extend(walk(doc, branch, path, fold, visiting));
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = map.get(key) {
            let alternatives = branches
                .iter()
                .filter_map(|branch| walk(doc, branch, path, fold, visiting))
                .collect();
            answers.extend((fold.any)(alternatives));
        }
    }
    match path.split_first() {
        None => answers.extend((fold.at_end)(schema)),
        Some((name, rest)) => answers.extend(step(doc, schema, map, name, rest, fold, visiting)),
    }
    (fold.all)(answers)
}

/// The answer of the member `name` of `schema` (an object schema, `map`), for the rest of the
/// path. A declared property is followed. Otherwise the value there may be an object's member
/// (unless `type` rules objects out) — described by `additionalProperties` for
/// [`Members::Any`], or by nothing a walk can tell where `patternProperties` may match — and,
/// for an index, an array's element (unless `type` rules arrays out) — described by
/// `prefixItems`, then `items`; when both may be, their answers are alternatives.
fn step<'d, T>(
    doc: &'d Value,
    schema: &'d Value,
    map: &'d Map<String, Value>,
    name: &str,
    rest: &[String],
    fold: &Fold<T>,
    visiting: &mut Vec<(&'d str, usize)>,
) -> Option<T> {
    let property = map.get("properties").and_then(|p| p.get(name));
    let object = (!type_excludes(schema, &["object"])).then(|| match (property, fold.members) {
        (Some(property), _) => walk(doc, property, rest, fold, visiting),
        (None, Members::Declared) => None,
        (None, Members::Any) => {
            let patterned = map
                .get("patternProperties")
                .and_then(Value::as_object)
                .is_some_and(|patterns| !patterns.is_empty());
            match map.get("additionalProperties") {
                _ if patterned => (fold.open)(),
                Some(Value::Bool(false)) => (fold.excluded)(),
                Some(extra @ Value::Object(_)) => walk(doc, extra, rest, fold, visiting),
                _ => (fold.open)(),
            }
        }
    });
    let element = array_index(name)
        // A caller's digits as an object key are never an element's declared position: no
        // array within a request body has a million elements.
        .filter(|_| fold.members == Members::Any || name.len() <= MAX_INDEX_DIGITS)
        .filter(|_| !type_excludes(schema, &["array"]))
        .map(|index| {
            let item = match (
                map.get("prefixItems").and_then(|p| p.get(index)),
                map.get("items"),
            ) {
                (Some(item), _) => Some(item),
                // The tuple form of older drafts.
                (None, Some(Value::Array(tuple))) => tuple.get(index),
                (None, Some(items)) => Some(items),
                (None, None) => None,
            };
            match item {
                Some(item) => walk(doc, item, rest, fold, visiting),
                None => (fold.open)(),
            }
        });
    match (object, element) {
        (Some(a), Some(b)) => (fold.any)(a.into_iter().chain(b).collect()),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => (fold.excluded)(),
    }
}

/// The most digits an array position has in a path [`declared_path`] reports: longer digit
/// names are object keys a caller chose (a card number, say).
const MAX_INDEX_DIGITS: usize = 6;

/// `name` read as an array index: digits only (indexes too large for `usize` saturate).
fn array_index(name: &str) -> Option<usize> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(name.parse().unwrap_or(usize::MAX))
}
