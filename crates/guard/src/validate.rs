//! Tool argument validation, and the subset of a tool's schema that the platform may see.
//!
//! This module owns invariant 3 of the design: arguments are checked against the tool's *full*
//! JSON schema (draft 2020-12, as produced by schemars 1.x) before a handler runs
//! ([`ArgValidator`]), while the SWML rendered for the platform carries only what SignalWire's
//! schema accepts for SWAIG function `parameters` ([`platform_parameters`]): constraints the
//! platform cannot express (ranges, lengths, item counts, unsupported formats) are removed from
//! the rendered schema and restated in plain English in the property's description, so the AI
//! still knows them and the server still enforces them. The same goes for voxguard's own
//! schema vocabulary ([`validators`]): the formats `e164`,
//! `account-number`, `order-number` and `iso-date` and the keyword `x-currency` are enforced
//! here and explained in English to the platform. Validation errors name only the field and the
//! failed rule, never the offending value, so they are safe to return and to log. This module
//! also answers which `maxLength` applies at an argument path ([`max_length_at`]), for the input
//! guard. It must not do I/O or fetch remote schemas: `$ref` is resolved only inside the
//! document.

use std::fmt;

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::Location;
use jsonschema::{Draft, Keyword, ValidationError};
use serde_json::{Map, Value};

use crate::validators::{self, formats, CURRENCY_KEYWORD};

/// A compiled tool argument schema that checks arguments before a handler runs.
///
/// ```
/// use serde_json::json;
/// use voxguard_guard::{ArgError, ArgValidator};
///
/// let v = ArgValidator::new(&json!({
///     "type": "object",
///     "properties": {"pin": {"type": "string", "pattern": "^[0-9]{4}$"}},
///     "required": ["pin"]
/// }))?;
/// assert!(v.validate(&json!({"pin": "1234"})).is_ok());
/// let err = v.validate(&json!({"pin": "12"})).unwrap_err();
/// assert_eq!(err, ArgError { field: "pin".into(), rule: "pattern".into() });
/// assert_eq!(err.reason(), "invalid_argument:pin");
/// # Ok::<(), voxguard_guard::SchemaError>(())
/// ```
pub struct ArgValidator {
    validator: jsonschema::Validator,
}

impl ArgValidator {
    /// Compile `schema` (JSON Schema draft 2020-12).
    ///
    /// `format` is asserted, not just annotated: the standard formats (`date`, `date-time`,
    /// `time`, `email`, `uuid`, `ipv4`, `uri`, …) and voxguard's own (`e164`,
    /// `account-number`, `order-number`, `iso-date`; see [`validators`]).
    /// `"x-currency": true` on a `number`/`integer` property accepts only amounts of money
    /// ([`is_currency_amount`](crate::is_currency_amount)); a violation is reported with rule
    /// `"x-currency"`.
    ///
    /// ```
    /// use serde_json::json;
    /// use voxguard_guard::{currency_schema, e164_schema, ArgError, ArgValidator};
    ///
    /// let v = ArgValidator::new(&json!({
    ///     "type": "object",
    ///     "properties": {"to": e164_schema("Phone"), "amount": currency_schema("USD", None)}
    /// }))?;
    /// assert!(v.validate(&json!({"to": "+15551234567", "amount": 19.99})).is_ok());
    /// let err = v.validate(&json!({"amount": 1.005})).unwrap_err();
    /// assert_eq!(err, ArgError { field: "amount".into(), rule: "x-currency".into() });
    /// let err = v.validate(&json!({"to": "555-1234"})).unwrap_err();
    /// assert_eq!(err, ArgError { field: "to".into(), rule: "format".into() });
    /// # Ok::<(), voxguard_guard::SchemaError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`SchemaError::Invalid`] when the schema is not a valid draft 2020-12 schema, has a
    /// `$ref` that cannot be resolved inside the document, or uses `x-currency` with a value
    /// other than a boolean or on a property that is not a number.
    pub fn new(schema: &Value) -> Result<Self, SchemaError> {
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .with_format(formats::E164, validators::is_e164)
            .with_format(formats::ACCOUNT_NUMBER, validators::is_account_number)
            .with_format(formats::ORDER_NUMBER, validators::is_order_number)
            .with_format(formats::ISO_DATE, validators::is_iso_date)
            .with_keyword(CURRENCY_KEYWORD, currency_keyword)
            .build(schema)
            .map_err(|e| SchemaError::Invalid(e.to_string()))?;
        Ok(Self { validator })
    }

    /// Validate tool arguments.
    ///
    /// # Errors
    ///
    /// The first violation, by a deterministic order (field, then rule): an [`ArgError`] that
    /// names the field and the failed keyword but never the value.
    pub fn validate(&self, args: &Value) -> Result<(), ArgError> {
        let first = self
            .validator
            .iter_errors(args)
            .map(|e| arg_error(&e))
            .min_by(|a, b| (&a.field, &a.rule).cmp(&(&b.field, &b.rule)));
        match first {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for ArgValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArgValidator").finish_non_exhaustive()
    }
}

/// `"x-currency": true`: a number must be an amount of money; other types are left to `type`.
struct CurrencyKeyword {
    enabled: bool,
}

impl<'i> Keyword<'i> for CurrencyKeyword {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        if self.is_valid(instance) {
            Ok(())
        } else {
            Err(ValidationError::custom(
                "must be an amount that is not negative and has at most two decimal places",
            ))
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        match instance {
            Value::Number(n) if self.enabled => validators::is_currency_amount(n),
            _ => true,
        }
    }
}

fn currency_keyword<'a>(
    parent: &'a Map<String, Value>,
    value: &'a Value,
    _location: Location,
) -> Result<Box<dyn for<'i> Keyword<'i>>, ValidationError<'a>> {
    let Value::Bool(enabled) = value else {
        return Err(ValidationError::schema(
            "`x-currency` must be `true` or `false`",
        ));
    };
    let numeric = |t: &Value| matches!(t.as_str(), Some("number" | "integer"));
    let applies = match parent.get("type") {
        None => true,
        Some(Value::Array(types)) => types.iter().any(numeric),
        Some(t) => numeric(t),
    };
    if *enabled && !applies {
        return Err(ValidationError::schema(
            "`x-currency` applies only to `number` or `integer` properties",
        ));
    }
    Ok(Box::new(CurrencyKeyword { enabled: *enabled }))
}

/// One argument that failed validation: which field and which rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError {
    /// The offending field: the JSON pointer of the instance without the leading `/`
    /// (`"pin"`, `"address/zip"`, `"items/0"`); for a missing required property, the missing
    /// property's path; for an unexpected property, that property's path; for the root (e.g.
    /// the arguments are not an object), `""`.
    pub field: String,
    /// The JSON-schema keyword that failed: `"required"`, `"type"`, `"enum"`, `"pattern"`,
    /// `"minimum"`, `"maximum"`, `"exclusiveMinimum"`, `"exclusiveMaximum"`, `"minLength"`,
    /// `"maxLength"`, `"additionalProperties"`, `"format"` (standard and custom formats alike),
    /// `"x-currency"`, … (`"invalid"` as a fallback).
    pub rule: String,
}

impl ArgError {
    /// The stable machine-readable reason: `invalid_argument:<field>` (e.g.
    /// `invalid_argument:pin`), or just `invalid_argument` when the root is at fault.
    pub fn reason(&self) -> String {
        if self.field.is_empty() {
            "invalid_argument".to_string()
        } else {
            format!("invalid_argument:{}", self.field)
        }
    }
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "arguments fail the `{}` rule", self.rule)
        } else {
            write!(
                f,
                "argument `{}` fails the `{}` rule",
                self.field, self.rule
            )
        }
    }
}

impl std::error::Error for ArgError {}

/// Why a tool schema could not be compiled or rendered for the platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The schema is not a valid JSON Schema (draft 2020-12).
    #[error("tool schema is not a valid JSON Schema (draft 2020-12): {0}")]
    Invalid(String),
    /// The root of a parameters schema is not an object schema.
    #[error(
        "tool parameters schema must describe an object (\"type\": \"object\" with \"properties\"); derive JsonSchema on a struct with named fields"
    )]
    NotAnObject,
    /// A `$ref` does not point inside this document, or points nowhere.
    #[error(
        "`$ref` {reference:?} cannot be resolved: only local references (\"#/$defs/...\") into the same schema are supported"
    )]
    UnresolvedRef {
        /// The reference as written.
        reference: String,
    },
    /// A `$ref` refers to itself, directly or through other definitions.
    #[error(
        "`$ref` {reference:?} is recursive; the platform's parameter schema cannot express recursive types"
    )]
    RecursiveRef {
        /// The reference as written.
        reference: String,
    },
    /// Nesting is deeper than the renderer accepts.
    #[error("property `{path}` is nested more than {MAX_DEPTH} levels deep")]
    TooDeep {
        /// Dotted path of the property where the limit was hit.
        path: String,
    },
    /// A property uses a construct the platform's parameter schema cannot express.
    #[error("property `{path}`: {reason}")]
    Unsupported {
        /// Dotted path of the property (`address.zip`, `items[]`).
        path: String,
        /// What is wrong and what to do instead.
        reason: String,
    },
}

fn arg_error(err: &ValidationError<'_>) -> ArgError {
    let here = err
        .instance_path()
        .as_str()
        .trim_start_matches('/')
        .to_string();
    let child = |name: &str| {
        let name = name.replace('~', "~0").replace('/', "~1");
        if here.is_empty() {
            name
        } else {
            format!("{here}/{name}")
        }
    };
    match err.kind() {
        ValidationErrorKind::Required { property } => ArgError {
            field: child(property.as_str().unwrap_or_default()),
            rule: "required".to_string(),
        },
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => ArgError {
            field: unexpected
                .iter()
                .min()
                .map_or_else(|| here.clone(), |name| child(name)),
            rule: err.kind().keyword().to_string(),
        },
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            branch_error(&here, context).unwrap_or_else(|| ArgError {
                field: here.clone(),
                rule: err.kind().keyword().to_string(),
            })
        }
        kind => {
            let keyword = kind.keyword();
            ArgError {
                field: here,
                rule: if keyword.is_empty() {
                    "invalid".to_string()
                } else {
                    keyword.to_string()
                },
            }
        }
    }
}

/// For a failed `anyOf`/`oneOf`, find the error that explains it best: branches that failed only
/// because the value had another type (e.g. the `null` branch of an `Option`) are ignored; if
/// every branch is such, the failure is a `type` error at this field.
fn branch_error(here: &str, context: &[Vec<ValidationError<'static>>]) -> Option<ArgError> {
    let branches: Vec<Vec<ArgError>> = context
        .iter()
        .map(|errors| errors.iter().map(arg_error).collect())
        .collect();
    let wrong_type_only = |errors: &Vec<ArgError>| {
        !errors.is_empty()
            && errors
                .iter()
                .all(|e| e.rule == "type" && e.field.as_str() == here)
    };
    if !branches.is_empty() && branches.iter().all(wrong_type_only) {
        return Some(ArgError {
            field: here.to_string(),
            rule: "type".to_string(),
        });
    }
    branches
        .into_iter()
        .filter(|errors| !wrong_type_only(errors))
        .flatten()
        .min_by(|a, b| (&a.field, &a.rule).cmp(&(&b.field, &b.rule)))
}

/// Maximum nesting (properties, items, `$ref` hops) that [`platform_parameters`] renders.
const MAX_DEPTH: usize = 32;

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

const NULL_BRANCH_DESCRIPTION: &str = "No value.";

/// Render a tool's full JSON schema down to the subset SignalWire's platform schema accepts for
/// SWAIG function `parameters` (`$defs/FunctionParameters` in the SWML schema):
/// `{"type": "object", "properties": {…}, "required": […]}`.
///
/// - `$ref`s (to `#/…` inside the document, e.g. schemars' `$defs`) are inlined; `$schema`,
///   `title`, `$defs`, `additionalProperties`, `examples` and other annotations are dropped;
/// - constraints the platform does not allow for a property's type (`minimum`, `maximum`,
///   `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`, `minLength`, `maxLength`,
///   `minItems`, `maxItems`, `uniqueItems`, unsupported `format`s, …) are removed and restated
///   in English at the end of the property's description ("Must be greater than 0 and at most
///   10000.", "4 to 8 characters.");
/// - `format: "date-time"` becomes the platform's `date_time`; voxguard's own formats and
///   `x-currency` are dropped and explained ("Phone number in E.164 format, e.g.
///   +15551234567.", "Amount with at most two decimal places.");
/// - nullable types (`["string", "null"]`, `anyOf [T, {"type": "null"}]`) become the base type
///   with `"nullable": true`;
/// - `oneOf`/`anyOf` of constants (documented enum variants) become an `enum`, with the
///   variants' descriptions listed in the description;
/// - `description`, `enum`, `pattern`, `default`, `items`, nested `properties`/`required` are
///   kept where the platform allows them.
///
/// ```
/// use serde_json::json;
///
/// let rendered = voxguard_guard::platform_parameters(&json!({
///     "type": "object",
///     "properties": {"amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 10000,
///                               "description": "Amount in dollars"}},
///     "required": ["amount"]
/// }))?;
/// assert_eq!(rendered, json!({
///     "type": "object",
///     "properties": {"amount": {"type": "number",
///         "description": "Amount in dollars. Must be greater than 0 and at most 10000."}},
///     "required": ["amount"]
/// }));
/// # Ok::<(), voxguard_guard::SchemaError>(())
/// ```
///
/// # Errors
///
/// [`SchemaError::NotAnObject`] when the root is not an object schema; `$ref` errors
/// ([`SchemaError::UnresolvedRef`], [`SchemaError::RecursiveRef`]); [`SchemaError::TooDeep`];
/// [`SchemaError::Unsupported`] for a property the platform cannot express (e.g. one that
/// accepts any value).
pub fn platform_parameters(schema: &Value) -> Result<Value, SchemaError> {
    if !matches!(schema, Value::Object(m) if !m.is_empty()) {
        return Err(SchemaError::NotAnObject);
    }
    let mut renderer = Renderer {
        doc: schema,
        // The root itself is on the path, so `"$ref": "#"` below it is recursion.
        stack: vec!["#".to_string()],
    };
    let root = renderer.deref(schema)?;
    let is_object = match root.get("type") {
        Some(Value::String(t)) => t == "object",
        None => root.contains_key("properties"),
        Some(_) => false,
    };
    if !is_object {
        return Err(SchemaError::NotAnObject);
    }
    let properties = renderer.properties(&root, "", 0)?;
    let required = required_list(&root);
    let mut out = Map::new();
    out.insert("type".into(), Value::from("object"));
    out.insert("properties".into(), Value::Object(properties));
    out.insert("required".into(), Value::Array(required));
    Ok(Value::Object(out))
}

struct Renderer<'a> {
    doc: &'a Value,
    /// `$ref`s being expanded on the current path, to refuse recursion.
    stack: Vec<String>,
}

impl Renderer<'_> {
    fn lookup(&self, reference: &str) -> Result<&Value, SchemaError> {
        let unresolved = || SchemaError::UnresolvedRef {
            reference: reference.to_string(),
        };
        let pointer = reference.strip_prefix('#').ok_or_else(unresolved)?;
        if pointer.is_empty() {
            return Ok(self.doc);
        }
        self.doc.pointer(pointer).ok_or_else(unresolved)
    }

    /// Follow `$ref`s and single-element `allOf`s at the top of `schema`, without recursing
    /// into properties; sibling keywords override the target's.
    fn deref(&self, schema: &Value) -> Result<Map<String, Value>, SchemaError> {
        let mut current = as_schema_object(schema, "")?.clone();
        let mut seen: Vec<String> = Vec::new();
        loop {
            if let Some(reference) = current.remove("$ref") {
                let reference = reference.as_str().unwrap_or_default().to_string();
                if seen.contains(&reference) || self.stack.contains(&reference) {
                    return Err(SchemaError::RecursiveRef { reference });
                }
                let target = as_schema_object(self.lookup(&reference)?, "")?;
                current = overlay(target, current);
                seen.push(reference);
                if seen.len() > MAX_DEPTH {
                    return Err(SchemaError::TooDeep {
                        path: String::new(),
                    });
                }
                continue;
            }
            if !current.contains_key("type") {
                if let Some(Value::Array(all)) = current.get("allOf") {
                    if let [single] = all.as_slice() {
                        let single = as_schema_object(single, "")?.clone();
                        current.remove("allOf");
                        current = overlay(&single, current);
                        continue;
                    }
                }
            }
            return Ok(current);
        }
    }

    fn properties(
        &mut self,
        schema: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<Map<String, Value>, SchemaError> {
        let mut out = Map::new();
        if let Some(Value::Object(props)) = schema.get("properties") {
            for (name, prop) in props {
                let prop_path = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                out.insert(name.clone(), self.render(prop, &prop_path, depth + 1)?);
            }
        }
        Ok(out)
    }

    /// Render one property schema into one platform `SchemaType`.
    fn render(&mut self, schema: &Value, path: &str, depth: usize) -> Result<Value, SchemaError> {
        if depth > MAX_DEPTH {
            return Err(SchemaError::TooDeep {
                path: path.to_string(),
            });
        }
        let object = as_schema_object(schema, path)?;
        if let Some(reference) = object.get("$ref") {
            let reference = reference.as_str().unwrap_or_default().to_string();
            if self.stack.contains(&reference) {
                return Err(SchemaError::RecursiveRef { reference });
            }
            let target = as_schema_object(self.lookup(&reference)?, path)?;
            let mut siblings = object.clone();
            siblings.remove("$ref");
            let merged = Value::Object(overlay(target, siblings));
            self.stack.push(reference);
            let out = self.render(&merged, path, depth + 1);
            self.stack.pop();
            return out;
        }
        let mut map = object.clone();
        if !map.contains_key("type") {
            if let Some(Value::Array(all)) = map.get("allOf") {
                if let [single] = all.as_slice() {
                    let single = single.clone();
                    map.remove("allOf");
                    let mut base = match single {
                        Value::Object(m) => m,
                        other => return self.render(&other, path, depth + 1),
                    };
                    for (k, v) in map {
                        base.insert(k, v);
                    }
                    return self.render(&Value::Object(base), path, depth + 1);
                }
            }
        }

        let mut nullable = false;

        // `"type": ["T", "null"]` and multi-type unions.
        if let Some(Value::Array(types)) = map.get("type") {
            let mut names: Vec<String> = types
                .iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect();
            if names.iter().any(|t| t == "null") {
                nullable = true;
                names.retain(|t| t != "null");
            }
            match names.as_slice() {
                [] => {
                    map.insert("type".into(), Value::from("null"));
                    nullable = false;
                }
                [single] => {
                    map.insert("type".into(), Value::from(single.as_str()));
                }
                many => {
                    let branches: Vec<Value> = many
                        .iter()
                        .map(|t| {
                            let mut branch = map.clone();
                            branch.insert("type".into(), Value::from(t.as_str()));
                            Value::Object(branch)
                        })
                        .collect();
                    let mut union = Map::new();
                    union.insert("anyOf".into(), Value::Array(branches));
                    let out = self.render(&Value::Object(union), path, depth + 1)?;
                    return Ok(apply_nullable(out, nullable));
                }
            }
        }

        // `anyOf`/`oneOf` with `{"type": "null"}` branches (schemars' `Option<Struct>`).
        for key in ["anyOf", "oneOf"] {
            let Some(Value::Array(branches)) = map.get(key) else {
                continue;
            };
            let (nulls, others): (Vec<&Value>, Vec<&Value>) =
                branches.iter().partition(|b| is_null_schema(b));
            if nulls.is_empty() {
                continue;
            }
            nullable = true;
            let others: Vec<Value> = others.into_iter().cloned().collect();
            if let [single] = others.as_slice() {
                let mut wrapper = map.clone();
                wrapper.remove(key);
                let merged = match single {
                    Value::Object(branch) => {
                        let mut merged = branch.clone();
                        for (k, v) in wrapper {
                            merged.insert(k, v);
                        }
                        Value::Object(merged)
                    }
                    other => other.clone(),
                };
                let out = self.render(&merged, path, depth + 1)?;
                return Ok(apply_nullable(out, true));
            }
            map.insert(key.to_string(), Value::Array(others));
        }

        // `enum` containing null.
        if let Some(Value::Array(values)) = map.get("enum") {
            if values.iter().any(Value::is_null) {
                nullable = true;
                let values: Vec<Value> = values.iter().filter(|v| !v.is_null()).cloned().collect();
                map.insert("enum".into(), Value::Array(values));
            }
        }

        let out = self.render_typed(&map, path, depth)?;
        Ok(apply_nullable(out, nullable))
    }

    fn render_typed(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<Value, SchemaError> {
        let declared = match map.get("type") {
            Some(Value::String(t)) => Some(t.as_str()),
            None => None,
            Some(_) => {
                return Err(unsupported(
                    path,
                    "`type` must be a string or an array of strings",
                ))
            }
        };
        if let Some(constant) = map.get("const") {
            return Ok(render_const(map, constant, declared));
        }
        let ty = match declared {
            Some(t) => t,
            None => {
                for key in ["oneOf", "anyOf", "allOf"] {
                    if let Some(Value::Array(branches)) = map.get(key) {
                        return self.render_combinator(map, key, branches, path, depth);
                    }
                }
                infer_type(map).ok_or_else(|| {
                    unsupported(
                        path,
                        "has no `type` and accepts any value; the platform needs a typed property (avoid serde_json::Value arguments)",
                    )
                })?
            }
        };
        let mut out = Map::new();
        let mut notes = Vec::new();
        match ty {
            "string" => render_string(map, &mut out, &mut notes),
            "integer" | "number" => render_number(map, ty, &mut out, &mut notes),
            "boolean" => {
                if let Some(d @ Value::Bool(_)) = map.get("default") {
                    out.insert("default".into(), d.clone());
                }
                enum_note(map, &mut notes);
            }
            "array" => {
                let items = self.render_items(map, path, depth)?;
                out.insert("items".into(), items);
                if let Some(d @ Value::Array(_)) = map.get("default") {
                    out.insert("default".into(), d.clone());
                }
                count_note(map, "minItems", "maxItems", "item", "items", &mut notes);
                if map.get("uniqueItems") == Some(&Value::Bool(true)) {
                    notes.push("Items must be unique.".to_string());
                }
            }
            "object" => {
                let properties = self.properties(map, path, depth)?;
                if !properties.is_empty() {
                    out.insert("properties".into(), Value::Object(properties));
                }
                let required = required_list(map);
                if !required.is_empty() {
                    out.insert("required".into(), Value::Array(required));
                }
                if let Some(d @ Value::Object(_)) = map.get("default") {
                    out.insert("default".into(), d.clone());
                }
                count_note(
                    map,
                    "minProperties",
                    "maxProperties",
                    "field",
                    "fields",
                    &mut notes,
                );
            }
            "null" => {}
            other => {
                return Err(unsupported(
                    path,
                    &format!("unknown type {other:?}; use string, integer, number, boolean, array, object or null"),
                ))
            }
        }
        out.insert("type".into(), Value::from(ty));
        let description = compose_description(base_description(map), &notes);
        match description {
            Some(d) => {
                out.insert("description".into(), Value::String(d));
            }
            None if ty == "null" => {
                out.insert("description".into(), Value::from("Always null."));
            }
            None => {}
        }
        Ok(Value::Object(out))
    }

    fn render_items(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<Value, SchemaError> {
        let item_path = format!("{path}[]");
        let tuple = match (map.get("items"), map.get("prefixItems")) {
            (Some(items @ Value::Object(_)), _) => {
                return self.render(items, &item_path, depth + 1);
            }
            (Some(Value::Array(tuple)), _) | (_, Some(Value::Array(tuple)))
                if !tuple.is_empty() =>
            {
                tuple
            }
            (Some(Value::Bool(true)), _) => {
                return Err(unsupported(
                    path,
                    "array items accept any value; give the items a type",
                ))
            }
            _ => {
                return Err(unsupported(
                    path,
                    "array has no `items` schema; the platform requires one",
                ))
            }
        };
        let mut rendered: Vec<Value> = Vec::new();
        for item in tuple {
            let r = self.render(item, &item_path, depth + 1)?;
            if !rendered.contains(&r) {
                rendered.push(r);
            }
        }
        if let [single] = rendered.as_slice() {
            return Ok(single.clone());
        }
        let mut union = Map::new();
        union.insert("anyOf".into(), Value::Array(rendered));
        Ok(Value::Object(union))
    }

    fn render_combinator(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        branches: &[Value],
        path: &str,
        depth: usize,
    ) -> Result<Value, SchemaError> {
        if branches.is_empty() {
            return Err(unsupported(path, &format!("`{key}` is empty")));
        }
        if key != "allOf" {
            if let Some(collapsed) = self.collapse_constants(map, branches) {
                return Ok(collapsed);
            }
        }
        let wrapper_description = base_description(map);
        let mut rendered = Vec::with_capacity(branches.len());
        for branch in branches {
            let mut r = self.render(branch, path, depth + 1)?;
            if let (Some(desc), Value::Object(obj)) = (&wrapper_description, &mut r) {
                let typed = obj.contains_key("type");
                if typed && !obj.contains_key("description") {
                    obj.insert("description".into(), Value::String(desc.clone()));
                }
            }
            rendered.push(r);
        }
        let mut out = Map::new();
        out.insert(key.to_string(), Value::Array(rendered));
        Ok(Value::Object(out))
    }

    /// `oneOf`/`anyOf` whose branches are all constants of one JSON type (schemars' output for
    /// an enum with documented variants) becomes a plain `enum` of that type.
    fn collapse_constants(&self, map: &Map<String, Value>, branches: &[Value]) -> Option<Value> {
        let mut values = Vec::new();
        let mut documented = Vec::new();
        let mut ty: Option<&'static str> = None;
        for branch in branches {
            let branch = self.deref(branch).ok()?;
            let branch_values: Vec<Value> = match (branch.get("const"), branch.get("enum")) {
                (Some(c), _) => vec![c.clone()],
                (None, Some(Value::Array(e))) if !e.is_empty() => e.clone(),
                _ => return None,
            };
            for v in &branch_values {
                let t = json_type(v)?;
                if ty.is_some_and(|known| known != t) {
                    return None;
                }
                ty = Some(t);
            }
            if let Some(d) = base_description(&branch) {
                let shown: Vec<String> = branch_values.iter().map(Value::to_string).collect();
                documented.push(format!(
                    "{} ({})",
                    shown.join(", "),
                    d.trim_end_matches('.')
                ));
            }
            values.extend(branch_values);
        }
        let ty = ty.filter(|t| matches!(*t, "string" | "integer" | "number"))?;
        let mut out = Map::new();
        out.insert("type".into(), Value::from(ty));
        out.insert("enum".into(), Value::Array(values));
        let notes = if documented.is_empty() {
            Vec::new()
        } else {
            vec![format!("Options: {}.", documented.join("; "))]
        };
        if let Some(d) = compose_description(base_description(map), &notes) {
            out.insert("description".into(), Value::String(d));
        }
        Some(Value::Object(out))
    }
}

fn as_schema_object<'v>(
    schema: &'v Value,
    path: &str,
) -> Result<&'v Map<String, Value>, SchemaError> {
    match schema {
        Value::Object(m) if !m.is_empty() => Ok(m),
        Value::Object(_) | Value::Bool(true) => Err(unsupported(
            path,
            "accepts any value; the platform needs a typed property (avoid serde_json::Value arguments)",
        )),
        Value::Bool(false) => Err(unsupported(path, "accepts no value at all (`false` schema)")),
        _ => Err(unsupported(path, "is not a JSON schema (expected an object)")),
    }
}

fn unsupported(path: &str, reason: &str) -> SchemaError {
    SchemaError::Unsupported {
        path: if path.is_empty() {
            "(root)".to_string()
        } else {
            path.to_string()
        },
        reason: reason.to_string(),
    }
}

/// `top`'s keywords win over `base`'s.
fn overlay(base: &Map<String, Value>, top: Map<String, Value>) -> Map<String, Value> {
    let mut merged = base.clone();
    for (k, v) in top {
        merged.insert(k, v);
    }
    merged
}

fn is_null_schema(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => {
            m.get("type").and_then(Value::as_str) == Some("null")
                || m.get("const").is_some_and(Value::is_null)
        }
        _ => false,
    }
}

fn apply_nullable(rendered: Value, nullable: bool) -> Value {
    if !nullable {
        return rendered;
    }
    let Value::Object(mut obj) = rendered else {
        return rendered;
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("null") => Value::Object(obj),
        Some(_) => {
            obj.insert("nullable".into(), Value::Bool(true));
            Value::Object(obj)
        }
        None => {
            let null_branch =
                serde_json::json!({"type": "null", "description": NULL_BRANCH_DESCRIPTION});
            if let Some(Value::Array(branches)) = obj.get_mut("anyOf") {
                branches.push(null_branch);
                return Value::Object(obj);
            }
            serde_json::json!({"anyOf": [Value::Object(obj), null_branch]})
        }
    }
}

fn json_type(v: &Value) -> Option<&'static str> {
    match v {
        Value::String(_) => Some("string"),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some("integer"),
        Value::Number(_) => Some("number"),
        Value::Bool(_) => Some("boolean"),
        _ => None,
    }
}

fn infer_type(map: &Map<String, Value>) -> Option<&'static str> {
    if map.contains_key("properties") {
        return Some("object");
    }
    if map.contains_key("items") || map.contains_key("prefixItems") {
        return Some("array");
    }
    if let Some(Value::Array(values)) = map.get("enum") {
        let mut ty = None;
        for v in values {
            let t = json_type(v)?;
            ty = match (ty, t) {
                (None, t) => Some(t),
                (Some(a), b) if a == b => Some(a),
                (Some("integer"), "number") | (Some("number"), "integer") => Some("number"),
                _ => return None,
            };
        }
        return ty;
    }
    None
}

fn render_const(map: &Map<String, Value>, constant: &Value, declared: Option<&str>) -> Value {
    let ty = declared.or_else(|| json_type(constant));
    let fits = matches!(
        (ty, json_type(constant)),
        (Some("string"), Some("string"))
            | (Some("integer"), Some("integer"))
            | (Some("number"), Some("integer" | "number"))
    );
    let mut out = Map::new();
    match ty {
        Some(t) if fits => {
            out.insert("type".into(), Value::from(t));
            out.insert("enum".into(), Value::Array(vec![constant.clone()]));
            if let Some(d) = base_description(map) {
                out.insert("description".into(), Value::String(d));
            }
        }
        _ => {
            out.insert("const".into(), constant.clone());
        }
    }
    Value::Object(out)
}

fn render_string(map: &Map<String, Value>, out: &mut Map<String, Value>, notes: &mut Vec<String>) {
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

fn render_number(
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

fn enum_note(map: &Map<String, Value>, notes: &mut Vec<String>) {
    if let Some(Value::Array(values)) = map.get("enum") {
        let shown: Vec<String> = values.iter().map(Value::to_string).collect();
        notes.push(format!("Must be one of: {}.", shown.join(", ")));
    }
}

fn format_note(format: &str) -> String {
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

fn bound(
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

fn range_note(map: &Map<String, Value>) -> Option<String> {
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

fn count_note(
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

fn base_description(map: &Map<String, Value>) -> Option<String> {
    let pick = |key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    pick("description").or_else(|| pick("title"))
}

fn compose_description(base: Option<String>, notes: &[String]) -> Option<String> {
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

/// The `maxLength` that applies to the string at `path` in arguments described by `schema`, the
/// way [`ArgValidator`] would find it: following `properties`, `items`/`prefixItems`,
/// `additionalProperties`, local `$ref`s and `allOf`/`anyOf`/`oneOf`. `path` is an
/// [`ArgError::field`]-style pointer (`"name"`, `"address/street"`, `"items/0"`, `""` for the
/// root). Where several limits apply at once (`$ref` siblings, `allOf`) the smallest wins; across
/// alternatives (`anyOf`/`oneOf`, e.g. an `Option`) the largest. `None` when no limit is set.
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
    let segments: Vec<String> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect()
    };
    let mut visiting = Vec::new();
    limit_at(schema, schema, &segments, &mut visiting)
}

/// `visiting` holds the `$ref`s being followed with how much path was left, to stop cycles.
fn limit_at<'d>(
    doc: &'d Value,
    schema: &'d Value,
    path: &[String],
    visiting: &mut Vec<(&'d str, usize)>,
) -> Option<usize> {
    let Value::Object(map) = schema else {
        return None;
    };
    let mut limits: Vec<usize> = Vec::new();
    if let Some(Value::String(reference)) = map.get("$ref") {
        let key = (reference.as_str(), path.len());
        let target = reference.strip_prefix('#').and_then(|pointer| {
            if pointer.is_empty() {
                Some(doc)
            } else {
                doc.pointer(pointer)
            }
        });
        if let Some(target) = target.filter(|_| !visiting.contains(&key)) {
            visiting.push(key);
            limits.extend(limit_at(doc, target, path, visiting));
            visiting.pop();
        }
    }
    if let Some(Value::Array(branches)) = map.get("allOf") {
        for branch in branches {
            limits.extend(limit_at(doc, branch, path, visiting));
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = map.get(key) {
            let widest = branches
                .iter()
                .filter_map(|branch| limit_at(doc, branch, path, visiting))
                .max();
            limits.extend(widest);
        }
    }
    match path.split_first() {
        None => limits.extend(
            map.get("maxLength")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok()),
        ),
        Some((head, rest)) => {
            if let Some(child) = child_schema(map, head) {
                limits.extend(limit_at(doc, child, rest, visiting));
            }
        }
    }
    limits.into_iter().min()
}

/// The subschema that describes member `segment` of an instance of `map`.
fn child_schema<'v>(map: &'v Map<String, Value>, segment: &str) -> Option<&'v Value> {
    if let Some(property) = map.get("properties").and_then(|p| p.get(segment)) {
        return Some(property);
    }
    if let Ok(index) = segment.parse::<usize>() {
        if let Some(item) = map.get("prefixItems").and_then(|p| p.get(index)) {
            return Some(item);
        }
        match map.get("items") {
            Some(items @ Value::Object(_)) => return Some(items),
            Some(Value::Array(tuple)) => {
                if let Some(item) = tuple.get(index) {
                    return Some(item);
                }
            }
            _ => {}
        }
    }
    match map.get("additionalProperties") {
        Some(extra @ Value::Object(_)) => Some(extra),
        _ => None,
    }
}

fn required_list(map: &Map<String, Value>) -> Vec<Value> {
    match map.get("required") {
        Some(Value::Array(names)) => names.iter().filter(|n| n.is_string()).cloned().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::JsonSchema;
    use serde_json::json;
    use std::sync::OnceLock;

    /// The official SWML schema, re-rooted at `$defs/FunctionParameters`.
    fn platform() -> &'static jsonschema::Validator {
        static PLATFORM: OnceLock<jsonschema::Validator> = OnceLock::new();
        PLATFORM.get_or_init(|| {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/reference/swml-schema.json"
            );
            let text = std::fs::read_to_string(path).expect("read swml-schema.json");
            let doc: Value = serde_json::from_str(&text).expect("parse swml-schema.json");
            let mut rerooted = Map::new();
            for key in ["$schema", "$id", "$defs"] {
                if let Some(v) = doc.get(key) {
                    rerooted.insert(key.to_string(), v.clone());
                }
            }
            rerooted.insert("$ref".into(), json!("#/$defs/FunctionParameters"));
            jsonschema::options()
                .with_draft(Draft::Draft202012)
                .build(&Value::Object(rerooted))
                .expect("compile platform schema")
        })
    }

    /// Render `schema` and assert the platform schema accepts the result.
    fn render_ok(schema: &Value) -> Value {
        let rendered = platform_parameters(schema).expect("render");
        let errors: Vec<String> = platform()
            .iter_errors(&rendered)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "platform schema refuses {rendered:#}:\n{}",
            errors.join("\n")
        );
        rendered
    }

    fn obj(properties: Value, required: &[&str]) -> Value {
        json!({"type": "object", "properties": properties, "required": required})
    }

    fn prop<'a>(rendered: &'a Value, name: &str) -> &'a Value {
        &rendered["properties"][name]
    }

    fn err(field: &str, rule: &str) -> ArgError {
        ArgError {
            field: field.to_string(),
            rule: rule.to_string(),
        }
    }

    #[test]
    fn platform_schema_rejects_unrendered_constraints() {
        // The test harness itself must be able to refuse: a raw `minimum` is not allowed.
        let raw = obj(json!({"n": {"type": "integer", "minimum": 1}}), &["n"]);
        assert!(!platform().is_valid(&raw));
        let title = json!({"type": "object", "title": "Args", "properties": {}});
        assert!(!platform().is_valid(&title));
    }

    #[test]
    fn string_pattern_and_length() {
        let r = render_ok(&obj(
            json!({"pin": {"type": "string", "description": "The PIN", "pattern": "^[0-9]+$",
                           "minLength": 4, "maxLength": 8}}),
            &["pin"],
        ));
        assert_eq!(
            prop(&r, "pin"),
            &json!({"type": "string", "pattern": "^[0-9]+$",
                    "description": "The PIN. 4 to 8 characters."})
        );
        assert_eq!(r["required"], json!(["pin"]));
    }

    #[test]
    fn string_length_phrases() {
        let r = render_ok(&obj(
            json!({
                "exact": {"type": "string", "minLength": 10, "maxLength": 10},
                "one": {"type": "string", "minLength": 1},
                "max": {"type": "string", "maxLength": 20, "description": "Name."},
                "empty_ok": {"type": "string", "minLength": 0}
            }),
            &[],
        ));
        assert_eq!(prop(&r, "exact")["description"], "Exactly 10 characters.");
        assert_eq!(prop(&r, "one")["description"], "At least 1 character.");
        assert_eq!(
            prop(&r, "max")["description"],
            "Name. At most 20 characters."
        );
        assert_eq!(prop(&r, "empty_ok"), &json!({"type": "string"}));
        assert_eq!(r["required"], json!([]));
    }

    #[test]
    fn number_ranges() {
        let r = render_ok(&obj(
            json!({
                "amount": {"type": "number", "description": "Amount in dollars",
                           "exclusiveMinimum": 0, "maximum": 10000, "format": "double"},
                "pct": {"type": "number", "minimum": 0, "exclusiveMaximum": 1.5},
                "step": {"type": "number", "multipleOf": 0.01},
                "only_max": {"type": "number", "maximum": -3},
                "both_min": {"type": "number", "minimum": 5, "exclusiveMinimum": 2}
            }),
            &["amount"],
        ));
        assert_eq!(
            prop(&r, "amount"),
            &json!({"type": "number",
                    "description": "Amount in dollars. Must be greater than 0 and at most 10000."})
        );
        assert_eq!(
            prop(&r, "pct")["description"],
            "Must be at least 0 and less than 1.5."
        );
        assert_eq!(
            prop(&r, "step")["description"],
            "Must be a multiple of 0.01."
        );
        assert_eq!(prop(&r, "only_max")["description"], "Must be at most -3.");
        assert_eq!(prop(&r, "both_min")["description"], "Must be at least 5.");
    }

    #[test]
    fn integers_and_defaults() {
        let r = render_ok(&obj(
            json!({
                "n": {"type": "integer", "format": "uint32", "minimum": 1, "maximum": 10, "default": 3},
                "exact": {"type": "integer", "minimum": 7, "maximum": 7},
                "bad_default": {"type": "integer", "default": "three"}
            }),
            &["n"],
        ));
        assert_eq!(
            prop(&r, "n"),
            &json!({"type": "integer", "default": 3,
                    "description": "Must be at least 1 and at most 10."})
        );
        assert_eq!(prop(&r, "exact")["description"], "Must be exactly 7.");
        assert_eq!(prop(&r, "bad_default"), &json!({"type": "integer"}));
    }

    #[test]
    fn enums_and_booleans() {
        let r = render_ok(&obj(
            json!({
                "kind": {"type": "string", "enum": ["checking", "savings"], "default": "checking"},
                "level": {"type": "integer", "enum": [1, 2, 3]},
                "ratio": {"type": "number", "enum": [0.5, 1]},
                "flag": {"type": "boolean", "default": false, "description": "Confirm"},
                "untyped_enum": {"enum": ["a", "b"]}
            }),
            &["kind", "flag"],
        ));
        assert_eq!(
            prop(&r, "kind"),
            &json!({"type": "string", "enum": ["checking", "savings"], "default": "checking"})
        );
        assert_eq!(
            prop(&r, "level"),
            &json!({"type": "integer", "enum": [1, 2, 3]})
        );
        assert_eq!(
            prop(&r, "ratio"),
            &json!({"type": "number", "enum": [0.5, 1]})
        );
        assert_eq!(
            prop(&r, "flag"),
            &json!({"type": "boolean", "default": false, "description": "Confirm"})
        );
        assert_eq!(
            prop(&r, "untyped_enum"),
            &json!({"type": "string", "enum": ["a", "b"]})
        );
    }

    #[test]
    fn nested_objects_and_arrays() {
        let r = render_ok(&obj(
            json!({
                "address": {
                    "type": "object",
                    "description": "Billing address",
                    "additionalProperties": false,
                    "properties": {
                        "zip": {"type": "string", "pattern": "^[0-9]{5}$", "minLength": 5, "maxLength": 5},
                        "lines": {"type": "array", "items": {"type": "string", "maxLength": 40},
                                  "minItems": 1, "maxItems": 3, "uniqueItems": true}
                    },
                    "required": ["zip"]
                },
                "empty": {"type": "object"}
            }),
            &["address"],
        ));
        assert_eq!(
            prop(&r, "address"),
            &json!({
                "type": "object",
                "description": "Billing address",
                "properties": {
                    "zip": {"type": "string", "pattern": "^[0-9]{5}$",
                            "description": "Exactly 5 characters."},
                    "lines": {"type": "array",
                              "items": {"type": "string", "description": "At most 40 characters."},
                              "description": "1 to 3 items. Items must be unique."}
                },
                "required": ["zip"]
            })
        );
        assert_eq!(prop(&r, "empty"), &json!({"type": "object"}));
    }

    #[test]
    fn nullable_types() {
        let r = render_ok(&obj(
            json!({
                "note": {"type": ["string", "null"], "maxLength": 100},
                "count": {"type": ["integer", "null"], "minimum": 0},
                "choice": {"type": ["string", "null"], "enum": ["a", "b", null]},
                "sub": {"anyOf": [{"type": "object", "properties": {"a": {"type": "boolean"}}},
                                  {"type": "null"}], "description": "Optional sub"},
                "nothing": {"type": "null"}
            }),
            &[],
        ));
        assert_eq!(
            prop(&r, "note"),
            &json!({"type": "string", "nullable": true, "description": "At most 100 characters."})
        );
        assert_eq!(prop(&r, "count")["nullable"], json!(true));
        assert_eq!(
            prop(&r, "choice"),
            &json!({"type": "string", "nullable": true, "enum": ["a", "b"]})
        );
        assert_eq!(
            prop(&r, "sub"),
            &json!({"type": "object", "nullable": true, "description": "Optional sub",
                    "properties": {"a": {"type": "boolean"}}})
        );
        assert_eq!(
            prop(&r, "nothing"),
            &json!({"type": "null", "description": "Always null."})
        );
    }

    #[test]
    fn date_time_and_formats() {
        let r = render_ok(&obj(
            json!({
                "when": {"type": "string", "format": "date-time"},
                "mail": {"type": "string", "format": "email"},
                "id": {"type": "string", "format": "uuid"},
                "link": {"type": "string", "format": "uri-reference", "description": "Link"},
                "odd": {"type": "string", "format": "iban"}
            }),
            &["when"],
        ));
        assert_eq!(
            prop(&r, "when"),
            &json!({"type": "string", "format": "date_time"})
        );
        assert_eq!(prop(&r, "mail")["format"], "email");
        assert_eq!(prop(&r, "id")["format"], "uuid");
        assert_eq!(
            prop(&r, "link"),
            &json!({"type": "string", "description": "Link. Must be a URI reference."})
        );
        assert_eq!(
            prop(&r, "odd"),
            &json!({"type": "string", "description": "Must be in iban format."})
        );
    }

    #[test]
    fn combinators_and_constants() {
        let r = render_ok(&obj(
            json!({
                "either": {"anyOf": [{"type": "string", "minLength": 2}, {"type": "integer"}],
                           "description": "Id or number"},
                "multi": {"type": ["string", "integer", "null"]},
                "fixed": {"const": "yes", "description": "Always yes"},
                "fixed_bool": {"const": true},
                "documented": {"oneOf": [
                    {"const": "a", "type": "string", "description": "First."},
                    {"const": "b", "type": "string", "description": "Second"}
                ], "description": "Pick one"}
            }),
            &[],
        ));
        assert_eq!(
            prop(&r, "either"),
            &json!({"anyOf": [
                {"type": "string", "description": "At least 2 characters."},
                {"type": "integer", "description": "Id or number"}
            ]})
        );
        assert_eq!(
            prop(&r, "multi"),
            &json!({"anyOf": [{"type": "string"}, {"type": "integer"},
                              {"type": "null", "description": "No value."}]})
        );
        assert_eq!(
            prop(&r, "fixed"),
            &json!({"type": "string", "enum": ["yes"], "description": "Always yes"})
        );
        assert_eq!(prop(&r, "fixed_bool"), &json!({"const": true}));
        assert_eq!(
            prop(&r, "documented"),
            &json!({"type": "string", "enum": ["a", "b"],
                    "description": "Pick one. Options: \"a\" (First); \"b\" (Second)."})
        );
    }

    #[test]
    fn refs_are_inlined_and_siblings_win() {
        let r = render_ok(&json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Args",
            "type": "object",
            "properties": {
                "home": {"$ref": "#/$defs/Address", "description": "Home address"},
                "work": {"$ref": "#/$defs/Address"}
            },
            "required": ["home"],
            "$defs": {
                "Address": {"title": "Address", "description": "A postal address",
                            "type": "object", "properties": {"zip": {"$ref": "#/$defs/Zip"}},
                            "required": ["zip"]},
                "Zip": {"type": "string", "pattern": "^[0-9]{5}$"}
            }
        }));
        assert_eq!(prop(&r, "home")["description"], "Home address");
        assert_eq!(prop(&r, "work")["description"], "A postal address");
        assert_eq!(
            prop(&r, "home")["properties"]["zip"],
            json!({"type": "string", "pattern": "^[0-9]{5}$"})
        );
        assert!(r.get("$defs").is_none() && r.get("title").is_none());
    }

    #[derive(JsonSchema)]
    #[allow(dead_code)]
    /// A postal address.
    struct Address {
        /// Five-digit ZIP code.
        #[schemars(regex(pattern = r"^[0-9]{5}$"))]
        zip: String,
        city: Option<String>,
    }

    #[derive(JsonSchema)]
    #[allow(dead_code)]
    enum Kind {
        Checking,
        Savings,
    }

    #[derive(JsonSchema)]
    #[allow(dead_code)]
    enum Documented {
        /// Everyday account.
        Checking,
        /// Earns interest.
        Savings,
    }

    #[derive(JsonSchema)]
    #[allow(dead_code)]
    #[schemars(deny_unknown_fields)]
    struct TransferArgs {
        /// The account PIN.
        #[schemars(length(min = 4, max = 8), regex(pattern = r"^[0-9]+$"))]
        pin: String,
        /// Amount in dollars.
        #[schemars(range(min = 1, max = 10000))]
        amount: f64,
        count: u32,
        small: Option<u8>,
        kind: Kind,
        maybe_kind: Option<Kind>,
        documented: Documented,
        address: Address,
        /// Where to ship, if anywhere.
        ship_to: Option<Address>,
        tags: Vec<String>,
        #[schemars(length(min = 1, max = 3))]
        more: Vec<Address>,
        pair: (u8, String),
        confirm: bool,
        when: Option<String>,
    }

    #[test]
    fn schemars_output_renders_and_validates() {
        let schema = serde_json::to_value(schemars::schema_for!(TransferArgs)).unwrap();
        let r = render_ok(&schema);
        assert_eq!(
            prop(&r, "pin"),
            &json!({"type": "string", "pattern": "^[0-9]+$",
                    "description": "The account PIN. 4 to 8 characters."})
        );
        assert_eq!(
            prop(&r, "amount"),
            &json!({"type": "number",
                    "description": "Amount in dollars. Must be at least 1 and at most 10000."})
        );
        assert_eq!(
            prop(&r, "count"),
            &json!({"type": "integer", "description": "Must be at least 0."})
        );
        assert_eq!(
            prop(&r, "small"),
            &json!({"type": "integer", "nullable": true,
                    "description": "Must be at least 0 and at most 255."})
        );
        assert_eq!(
            prop(&r, "kind"),
            &json!({"type": "string", "enum": ["Checking", "Savings"]})
        );
        assert_eq!(
            prop(&r, "maybe_kind"),
            &json!({"type": "string", "enum": ["Checking", "Savings"], "nullable": true})
        );
        assert_eq!(
            prop(&r, "documented"),
            &json!({"type": "string", "enum": ["Checking", "Savings"],
                    "description": "Options: \"Checking\" (Everyday account); \"Savings\" (Earns interest)."})
        );
        assert_eq!(
            prop(&r, "address"),
            &json!({"type": "object", "description": "A postal address.",
                    "properties": {
                        "zip": {"type": "string", "pattern": "^[0-9]{5}$",
                                "description": "Five-digit ZIP code."},
                        "city": {"type": "string", "nullable": true}
                    },
                    "required": ["zip"]})
        );
        assert_eq!(prop(&r, "ship_to")["nullable"], json!(true));
        assert_eq!(
            prop(&r, "ship_to")["description"],
            "Where to ship, if anywhere."
        );
        assert_eq!(prop(&r, "ship_to")["properties"]["zip"]["type"], "string");
        assert_eq!(
            prop(&r, "tags"),
            &json!({"type": "array", "items": {"type": "string"}})
        );
        assert_eq!(prop(&r, "more")["description"], "1 to 3 items.");
        assert_eq!(prop(&r, "more")["items"]["type"], "object");
        assert_eq!(prop(&r, "pair")["description"], "Exactly 2 items.");
        assert_eq!(
            prop(&r, "pair")["items"]["anyOf"][1],
            json!({"type": "string"})
        );
        assert_eq!(prop(&r, "confirm"), &json!({"type": "boolean"}));
        let required: Vec<&str> = r["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(required.contains(&"pin") && !required.contains(&"when"));

        // The server keeps enforcing the full schema.
        let v = ArgValidator::new(&schema).unwrap();
        let mut good = json!({
            "pin": "1234", "amount": 5.0, "count": 1, "small": null, "kind": "Checking",
            "maybe_kind": null, "documented": "Savings",
            "address": {"zip": "12345", "city": null}, "ship_to": null,
            "tags": [], "more": [{"zip": "54321"}], "pair": [1, "x"], "confirm": true, "when": null
        });
        assert_eq!(v.validate(&good), Ok(()));
        good["amount"] = json!(0.5);
        assert_eq!(v.validate(&good), Err(err("amount", "minimum")));
        good["amount"] = json!(5);
        good["ship_to"] = json!({"zip": "abc"});
        assert_eq!(v.validate(&good), Err(err("ship_to/zip", "pattern")));
        good["ship_to"] = json!("somewhere");
        assert_eq!(v.validate(&good), Err(err("ship_to", "type")));
        good["ship_to"] = json!(null);
        good["maybe_kind"] = json!("Gold");
        assert_eq!(v.validate(&good), Err(err("maybe_kind", "enum")));
        good["maybe_kind"] = json!(null);
        good["extra"] = json!(1);
        assert_eq!(v.validate(&good), Err(err("extra", "additionalProperties")));
    }

    #[derive(JsonSchema)]
    #[allow(dead_code)]
    struct Tree {
        children: Vec<Tree>,
    }

    #[derive(JsonSchema)]
    #[allow(dead_code)]
    struct HasTree {
        tree: Tree,
    }

    #[test]
    fn render_errors() {
        assert_eq!(
            platform_parameters(&json!({"type": "string"})),
            Err(SchemaError::NotAnObject)
        );
        assert_eq!(
            platform_parameters(&json!({})),
            Err(SchemaError::NotAnObject)
        );
        assert_eq!(
            platform_parameters(&json!(true)),
            Err(SchemaError::NotAnObject)
        );
        assert!(matches!(
            platform_parameters(&obj(
                json!({"x": {"$ref": "https://evil.example/s.json"}}),
                &[]
            )),
            Err(SchemaError::UnresolvedRef { .. })
        ));
        assert!(matches!(
            platform_parameters(&obj(json!({"x": {"$ref": "#/$defs/Nope"}}), &[])),
            Err(SchemaError::UnresolvedRef { .. })
        ));
        let any = platform_parameters(&obj(json!({"blob": true}), &[])).unwrap_err();
        assert!(matches!(&any, SchemaError::Unsupported { path, .. } if path == "blob"));
        assert!(any.to_string().contains("blob"));
        let no_items = platform_parameters(&obj(json!({"l": {"type": "array"}}), &[])).unwrap_err();
        assert!(matches!(no_items, SchemaError::Unsupported { .. }));
        let tree = serde_json::to_value(schemars::schema_for!(HasTree)).unwrap();
        assert!(matches!(
            platform_parameters(&tree),
            Err(SchemaError::RecursiveRef { .. })
        ));
        let tree = serde_json::to_value(schemars::schema_for!(Tree)).unwrap();
        assert!(matches!(
            platform_parameters(&tree),
            Err(SchemaError::RecursiveRef { .. })
        ));
    }

    #[test]
    fn root_without_properties_and_root_ref() {
        let r = render_ok(&json!({"type": "object"}));
        assert_eq!(
            r,
            json!({"type": "object", "properties": {}, "required": []})
        );
        let r = render_ok(&json!({
            "$ref": "#/$defs/Args",
            "$defs": {"Args": {"type": "object", "properties": {"a": {"type": "string"}},
                               "required": ["a"]}}
        }));
        assert_eq!(r["required"], json!(["a"]));
    }

    fn validator() -> ArgValidator {
        ArgValidator::new(&json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "pin": {"type": "string", "pattern": "^[0-9]+$", "minLength": 4, "maxLength": 8},
                "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 10000},
                "count": {"type": "integer", "minimum": 1, "exclusiveMaximum": 5},
                "kind": {"type": "string", "enum": ["checking", "savings"]},
                "when": {"type": "string", "format": "date-time"},
                "confirm": {"type": "boolean"},
                "address": {
                    "type": "object",
                    "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                    "required": ["zip"]
                },
                "items": {"type": "array", "items": {"type": "integer"}, "maxItems": 2}
            },
            "required": ["pin"]
        }))
        .unwrap()
    }

    #[test]
    fn validator_accepts_valid_arguments() {
        let v = validator();
        assert_eq!(v.validate(&json!({"pin": "1234"})), Ok(()));
        assert_eq!(
            v.validate(&json!({
                "pin": "12345678", "amount": 10000, "count": 4, "kind": "savings",
                "when": "2024-05-01T10:00:00Z", "confirm": false,
                "address": {"zip": "90210"}, "items": [1, 2]
            })),
            Ok(())
        );
    }

    #[test]
    fn validator_reports_field_and_rule() {
        let v = validator();
        let cases = [
            (json!({}), "pin", "required"),
            (json!({"pin": 1234}), "pin", "type"),
            (json!({"pin": "12a4"}), "pin", "pattern"),
            (json!({"pin": "123"}), "pin", "minLength"),
            (json!({"pin": "123456789"}), "pin", "maxLength"),
            (
                json!({"pin": "1234", "amount": 0}),
                "amount",
                "exclusiveMinimum",
            ),
            (
                json!({"pin": "1234", "amount": 10000.5}),
                "amount",
                "maximum",
            ),
            (json!({"pin": "1234", "count": 0}), "count", "minimum"),
            (
                json!({"pin": "1234", "count": 5}),
                "count",
                "exclusiveMaximum",
            ),
            (json!({"pin": "1234", "count": 1.5}), "count", "type"),
            (json!({"pin": "1234", "kind": "gold"}), "kind", "enum"),
            (
                json!({"pin": "1234", "when": "yesterday"}),
                "when",
                "format",
            ),
            (json!({"pin": "1234", "confirm": "yes"}), "confirm", "type"),
            (
                json!({"pin": "1234", "address": {}}),
                "address/zip",
                "required",
            ),
            (
                json!({"pin": "1234", "address": {"zip": "1"}}),
                "address/zip",
                "pattern",
            ),
            (json!({"pin": "1234", "items": [1, "x"]}), "items/1", "type"),
            (
                json!({"pin": "1234", "items": [1, 2, 3]}),
                "items",
                "maxItems",
            ),
            (
                json!({"pin": "1234", "bogus": true}),
                "bogus",
                "additionalProperties",
            ),
            (json!(["pin"]), "", "type"),
            (json!(null), "", "type"),
        ];
        for (args, field, rule) in cases {
            assert_eq!(v.validate(&args), Err(err(field, rule)), "{args}");
        }
    }

    #[test]
    fn first_violation_is_deterministic() {
        let v = validator();
        let args = json!({"pin": "x", "amount": -1, "kind": "gold", "bogus": 1});
        let first = v.validate(&args).unwrap_err();
        for _ in 0..10 {
            assert_eq!(v.validate(&args), Err(first.clone()));
        }
        assert_eq!(first, err("amount", "exclusiveMinimum"));
    }

    #[test]
    fn errors_never_carry_values() {
        let v = validator();
        let e = v.validate(&json!({"pin": "98765432109"})).unwrap_err();
        assert_eq!(e.reason(), "invalid_argument:pin");
        assert!(!e.to_string().contains("98765432109"));
        assert!(!format!("{e:?}").contains("98765432109"));
        assert_eq!(err("", "type").reason(), "invalid_argument");
    }

    fn custom_validator() -> ArgValidator {
        ArgValidator::new(&json!({
            "type": "object",
            "properties": {
                "phone": crate::e164_schema("Caller phone"),
                "account": crate::account_number_schema("Account"),
                "order": crate::order_number_schema("Order"),
                "day": crate::iso_date_schema("Day"),
                "amount": crate::currency_schema("Amount", Some(10000.0)),
                "tip": {"type": "number", "x-currency": true},
                "count": {"type": "integer", "x-currency": true},
                "off": {"type": "number", "x-currency": false},
                "born": {"type": "string", "format": "date"},
                "mail": {"type": "string", "format": "email"},
                "when": {"type": "string", "format": "date-time"},
                "refund": {"$ref": "#/$defs/Money"},
                "maybe": {"type": ["number", "null"], "x-currency": true}
            },
            "$defs": {"Money": {"type": "number", "x-currency": true}}
        }))
        .unwrap()
    }

    #[test]
    fn custom_formats_and_currency_accept_valid_values() {
        let v = custom_validator();
        assert_eq!(
            v.validate(&json!({
                "phone": "+15551234567", "account": "0123456789", "order": "ORD-12345",
                "day": "2024-02-29", "amount": 10000, "tip": 0.07, "count": 3, "off": 1.23456,
                "born": "2000-02-29", "mail": "ada@example.com", "when": "2024-05-01T10:00:00Z",
                "refund": 100.1, "maybe": null
            })),
            Ok(())
        );
        assert_eq!(v.validate(&json!({"maybe": 12.5})), Ok(()));
    }

    #[test]
    fn custom_formats_and_currency_reject_with_field_and_rule() {
        let v = custom_validator();
        let cases = [
            (json!({"phone": "+05551234567"}), "phone", "format"),
            (json!({"phone": "+1234567890123456"}), "phone", "format"),
            (json!({"phone": "555-1234"}), "phone", "format"),
            (json!({"account": "123456789"}), "account", "format"),
            (json!({"order": "ord-12345"}), "order", "format"),
            (json!({"day": "2023-02-29"}), "day", "format"),
            // The pattern accepts this shape; only the calendar check refuses it.
            (json!({"day": "2024-04-31"}), "day", "format"),
            (json!({"amount": 1.005}), "amount", "x-currency"),
            (json!({"amount": -1}), "amount", "minimum"),
            (json!({"amount": 10000.01}), "amount", "maximum"),
            (json!({"tip": -0.5}), "tip", "x-currency"),
            (json!({"tip": 0.001}), "tip", "x-currency"),
            (json!({"count": -2}), "count", "x-currency"),
            (json!({"refund": 19.999}), "refund", "x-currency"),
            (json!({"maybe": 1.234}), "maybe", "x-currency"),
            (json!({"tip": "5.00"}), "tip", "type"),
            (json!({"born": "2023-02-29"}), "born", "format"),
            (json!({"born": "yesterday"}), "born", "format"),
            (json!({"mail": "not-an-email"}), "mail", "format"),
            (json!({"mail": "ada@"}), "mail", "format"),
            (json!({"when": "2024-05-01"}), "when", "format"),
        ];
        for (args, field, rule) in cases {
            assert_eq!(v.validate(&args), Err(err(field, rule)), "{args}");
        }
        // Errors still carry no values.
        let e = v.validate(&json!({"phone": "+0999"})).unwrap_err();
        assert!(!e.to_string().contains("0999") && !format!("{e:?}").contains("0999"));
    }

    #[test]
    fn currency_keyword_schema_errors() {
        for schema in [
            json!({"type": "object", "properties": {"a": {"type": "number", "x-currency": "yes"}}}),
            json!({"type": "object", "properties": {"a": {"type": "string", "x-currency": true}}}),
            json!({"type": "object", "properties": {"a": {"type": ["string", "null"], "x-currency": true}}}),
        ] {
            assert!(
                matches!(ArgValidator::new(&schema), Err(SchemaError::Invalid(_))),
                "{schema}"
            );
        }
        let off = ArgValidator::new(
            &json!({"type": "object", "properties": {"a": {"type": "string", "x-currency": false}}}),
        );
        assert!(off.is_ok());
    }

    #[derive(JsonSchema)]
    #[allow(dead_code)]
    struct PayArgs {
        /// Who to text the receipt to.
        #[schemars(extend("format" = "e164"))]
        phone: String,
        /// Amount in dollars.
        #[schemars(range(min = 0.01, max = 5000), extend("x-currency" = true))]
        amount: f64,
        /// Optional tip.
        #[schemars(extend("x-currency" = true))]
        tip: Option<f64>,
        /// When to pay.
        #[schemars(extend("format" = "iso-date"))]
        on: Option<String>,
    }

    #[test]
    fn custom_vocabulary_renders_as_english() {
        let r = render_ok(&obj(
            json!({
                "phone": crate::e164_schema("Caller phone"),
                "account": crate::account_number_schema("Account to debit"),
                "order": crate::order_number_schema(""),
                "day": crate::iso_date_schema("Delivery day"),
                "amount": crate::currency_schema("Amount in dollars", Some(10000.0)),
                "tip": {"type": ["number", "null"], "x-currency": true},
                "born": {"type": "string", "format": "date"}
            }),
            &["phone", "amount"],
        ));
        assert_eq!(
            prop(&r, "phone"),
            &json!({"type": "string", "pattern": crate::validators::patterns::E164,
                    "description": "Caller phone. Phone number in E.164 format, e.g. +15551234567."})
        );
        assert_eq!(
            prop(&r, "account")["description"],
            "Account to debit. Account number of exactly 10 digits."
        );
        assert_eq!(
            prop(&r, "order")["description"],
            "Order number such as ORD-12345: 2 to 5 capital letters, a dash, then 4 to 10 digits."
        );
        assert_eq!(
            prop(&r, "day")["description"],
            "Delivery day. Date in YYYY-MM-DD format, e.g. 2024-05-01."
        );
        assert_eq!(
            prop(&r, "amount"),
            &json!({"type": "number",
                    "description": "Amount in dollars. Must be at least 0 and at most 10000. Amount with at most two decimal places."})
        );
        assert_eq!(
            prop(&r, "tip"),
            &json!({"type": "number", "nullable": true,
                    "description": "Amount with at most two decimal places."})
        );
        assert_eq!(
            prop(&r, "born"),
            &json!({"type": "string", "format": "date"})
        );
        let text = r.to_string();
        for custom in [
            "e164",
            "account-number",
            "order-number",
            "iso-date",
            "x-currency",
        ] {
            assert!(
                !text.contains(&format!("\"{custom}\"")),
                "{custom} leaked: {text}"
            );
        }

        // The same through schemars, and the server enforces what the platform only reads.
        let schema = serde_json::to_value(schemars::schema_for!(PayArgs)).unwrap();
        let r = render_ok(&schema);
        assert_eq!(
            prop(&r, "phone")["description"],
            "Who to text the receipt to. Phone number in E.164 format, e.g. +15551234567."
        );
        assert_eq!(
            prop(&r, "amount")["description"],
            "Amount in dollars. Must be at least 0.01 and at most 5000. Amount with at most two decimal places."
        );
        assert_eq!(
            prop(&r, "tip")["description"],
            "Optional tip. Amount with at most two decimal places."
        );
        assert_eq!(
            prop(&r, "on")["description"],
            "When to pay. Date in YYYY-MM-DD format, e.g. 2024-05-01."
        );
        let v = ArgValidator::new(&schema).unwrap();
        let mut args =
            json!({"phone": "+15551234567", "amount": 12.5, "tip": 1.25, "on": "2024-02-29"});
        assert_eq!(v.validate(&args), Ok(()));
        args["tip"] = json!(1.255);
        assert_eq!(v.validate(&args), Err(err("tip", "x-currency")));
        args["tip"] = json!(null);
        args["on"] = json!("2023-02-29");
        assert_eq!(v.validate(&args), Err(err("on", "format")));
    }

    #[test]
    fn max_length_follows_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 40},
                "free": {"type": "string"},
                "address": {"$ref": "#/$defs/Address", "description": "Home"},
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}},
                "pair": {"type": "array", "prefixItems": [{"type": "string", "maxLength": 3}],
                         "items": {"type": "string", "maxLength": 5}},
                "both": {"allOf": [{"maxLength": 50}, {"type": "string", "maxLength": 20}]},
                "either": {"anyOf": [{"type": "string", "maxLength": 10},
                                     {"type": "string", "maxLength": 30}, {"type": "null"}]},
                "a/b": {"type": "string", "maxLength": 7},
                "extra": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 9}},
                "tree": {"$ref": "#/$defs/Tree"}
            },
            "$defs": {
                "Address": {"type": "object", "properties": {
                    "street": {"type": "string", "maxLength": 100},
                    "zip": {"$ref": "#/$defs/Zip"}
                }},
                "Zip": {"type": "string", "maxLength": 5},
                "Tree": {"type": "object", "properties": {
                    "label": {"type": "string", "maxLength": 12},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Tree"}}
                }, "anyOf": [{"$ref": "#/$defs/Tree"}]}
            }
        });
        let cases = [
            ("name", Some(40)),
            ("free", None),
            ("missing", None),
            ("", None),
            ("address/street", Some(100)),
            ("address/zip", Some(5)),
            ("address/other", None),
            ("tags/0", Some(8)),
            ("tags/12", Some(8)),
            ("tags/x", None),
            ("pair/0", Some(3)),
            ("pair/1", Some(5)),
            ("both", Some(20)),
            ("either", Some(30)),
            ("a~1b", Some(7)),
            ("extra/anything", Some(9)),
            ("tree/label", Some(12)),
            ("tree/children/0/children/3/label", Some(12)),
            ("tree/children/0/nope", None),
        ];
        for (path, want) in cases {
            assert_eq!(max_length_at(&schema, path), want, "{path}");
        }
        // A bare self-reference terminates.
        assert_eq!(max_length_at(&json!({"$ref": "#"}), "a/b"), None);

        // schemars' Option<String> with a length limit.
        #[derive(JsonSchema)]
        #[allow(dead_code)]
        struct Note {
            #[schemars(length(max = 500))]
            text: Option<String>,
            lines: Vec<Address>,
        }
        let schema = serde_json::to_value(schemars::schema_for!(Note)).unwrap();
        assert_eq!(max_length_at(&schema, "text"), Some(500));
        assert_eq!(max_length_at(&schema, "lines/2/zip"), None);
    }

    #[test]
    fn invalid_schema_is_refused() {
        let e = ArgValidator::new(&json!({"type": 12})).unwrap_err();
        assert!(matches!(e, SchemaError::Invalid(_)));
        let e = ArgValidator::new(
            &json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}),
        );
        assert!(e.is_err());
    }
}
