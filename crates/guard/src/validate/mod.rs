//! Tool argument validation: the compiled checker a tool's arguments must pass before its handler
//! runs, and the errors it reports.
//!
//! This module owns invariant 3 of the design: arguments are checked against the tool's *full*
//! JSON schema (draft 2020-12, as produced by schemars 1.x) before a handler runs
//! ([`ArgValidator`]), including voxguard's own schema vocabulary ([`validators`]): the formats
//! `e164`, `account-number`, `order-number` and `iso-date` and the keyword `x-currency`.
//! Validation errors name only the field and the failed rule, never the offending value, so they
//! are safe to return and to log. Two jobs live beside it: `platform` renders the subset of a
//! schema SignalWire's platform accepts ([`platform_parameters`]), and `path` walks a schema
//! along an argument path ([`declared_path`], [`max_length_at`]). This module must not do I/O or
//! fetch remote schemas: `$ref` is resolved only inside the document.

mod path;
mod platform;
#[cfg(test)]
mod tests;

pub use path::{declared_path, max_length_at, push_path_segment, SchemaPaths};
pub use platform::platform_parameters;
use std::fmt;

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::Location;
use jsonschema::{Draft, Keyword, ValidationError};
use serde_json::{Map, Value};

use crate::validators::{self, formats, CURRENCY_KEYWORD};

/// The most memory one `pattern` (or `patternProperties` key) of a schema may take compiled,
/// and its lazy matching cache as much again: 256 KiB. Ordinary patterns take a few KiB.
pub const MAX_PATTERN_BYTES: usize = 256 * 1024;

/// The most patterns (`pattern` values and `patternProperties` keys) a schema from outside
/// the deployment may have ([`ArgValidator::new_untrusted`]): with [`MAX_PATTERN_BYTES`], at
/// most 16 MiB of compiled patterns and caches for one schema.
pub const MAX_UNTRUSTED_PATTERNS: usize = 32;

/// How many patterns `schema` holds: every string `pattern` and every `patternProperties` key,
/// at any depth (a member that merely has one of these names counts too: only ever more).
fn count_patterns(schema: &Value) -> usize {
    match schema {
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| {
                let own = match (key.as_str(), value) {
                    ("pattern", Value::String(_)) => 1,
                    ("patternProperties", Value::Object(patterns)) => patterns.len(),
                    _ => 0,
                };
                own + count_patterns(value)
            })
            .sum(),
        Value::Array(items) => items.iter().map(count_patterns).sum(),
        _ => 0,
    }
}

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
    /// other than a boolean or on a property that is not a number, or a `pattern` whose
    /// compiled form would exceed [`MAX_PATTERN_BYTES`].
    pub fn new(schema: &Value) -> Result<Self, SchemaError> {
        Self::build(schema, false)
    }

    /// [`ArgValidator::new`] for a schema from outside the deployment (an upstream agent's, in
    /// gateway mode): its patterns compile with the `regex` engine, which applies
    /// [`MAX_PATTERN_BYTES`] wherever a pattern is compiled (the `fancy-regex` engine leaves
    /// the parts of a pattern it splits off unlimited) and never backtracks, and there may be
    /// at most [`MAX_UNTRUSTED_PATTERNS`] of them.
    ///
    /// # Errors
    ///
    /// As [`ArgValidator::new`]; also a pattern with lookaround or a backreference (which the
    /// `regex` engine does not take), and a schema with more patterns than allowed.
    pub fn new_untrusted(schema: &Value) -> Result<Self, SchemaError> {
        let patterns = count_patterns(schema);
        if patterns > MAX_UNTRUSTED_PATTERNS {
            return Err(SchemaError::Invalid(format!(
                "{patterns} patterns; a schema from outside may have {MAX_UNTRUSTED_PATTERNS}"
            )));
        }
        Self::build(schema, true)
    }

    fn build(schema: &Value, untrusted: bool) -> Result<Self, SchemaError> {
        let options = jsonschema::options().with_draft(Draft::Draft202012);
        // A pattern compiles to at most this much, and its matching cache stays as small:
        // `(?:.{100}){30}` would otherwise take the regex crate's default of about 10 MiB.
        let options = if untrusted {
            options.with_pattern_options(
                jsonschema::PatternOptions::regex()
                    .size_limit(MAX_PATTERN_BYTES)
                    .dfa_size_limit(MAX_PATTERN_BYTES),
            )
        } else {
            options.with_pattern_options(
                jsonschema::PatternOptions::fancy_regex()
                    .size_limit(MAX_PATTERN_BYTES)
                    .dfa_size_limit(MAX_PATTERN_BYTES),
            )
        };
        let validator = options
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
        let mut path = here.clone();
        push_path_segment(&mut path, name);
        path
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
