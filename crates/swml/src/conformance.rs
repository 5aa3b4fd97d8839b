//! Validation of rendered SWML and SWAIG actions against the official SWML JSON schema.
//!
//! Compiled only with the `conformance` feature (tests, the CLI's `check`, gateway mode): it owns loading
//! `swml-schema.json` and compiling two validators from it — one for whole documents, one for a
//! single SWAIG action (`$defs/Action`). On a request path only in gateway mode, once per render
//! of the upstream's document (renders are rate-limited per address).

use serde_json::Value;

/// Validators for SWML documents and SWAIG actions, built from the official schema.
pub struct SchemaChecker {
    document: jsonschema::Validator,
    action: jsonschema::Validator,
}

/// Why a schema check failed.
#[derive(Debug)]
pub struct ConformanceError(pub String);

impl std::fmt::Display for ConformanceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConformanceError {}

impl SchemaChecker {
    /// Compile the checkers from the text of `swml-schema.json`.
    pub fn from_schema_text(text: &str) -> Result<Self, ConformanceError> {
        let schema: Value = serde_json::from_str(text)
            .map_err(|e| ConformanceError(format!("schema is not JSON: {e}")))?;
        let document = compile(&schema)?;
        // The action schema refers back to the whole document as `SWMLObject.json` (the root's
        // `$id`). Keep the root's rules reachable as `$defs/SWMLDocument` before the root
        // becomes a plain `$ref` to `$defs/Action`.
        let mut action_schema = schema.clone();
        if let Value::Object(map) = &mut action_schema {
            let mut root = serde_json::Map::new();
            for key in [
                "type",
                "properties",
                "required",
                "unevaluatedProperties",
                "title",
            ] {
                if let Some(value) = map.remove(key) {
                    root.insert(key.to_string(), value);
                }
            }
            if let Some(Value::Object(defs)) = map.get_mut("$defs") {
                defs.insert("SWMLDocument".into(), Value::Object(root));
            }
            map.insert("$ref".into(), Value::String("#/$defs/Action".into()));
        }
        redirect_root_refs(&mut action_schema);
        let action = compile(&action_schema)?;
        Ok(Self { document, action })
    }

    /// Compile the checkers from the schema file at `path`.
    pub fn from_path(path: impl AsRef<std::path::Path>) -> Result<Self, ConformanceError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConformanceError(format!("cannot read {}: {e}", path.display())))?;
        Self::from_schema_text(&text)
    }

    /// Check a whole SWML document (as JSON).
    pub fn check_document(&self, document: &Value) -> Result<(), ConformanceError> {
        report(&self.document, document)
    }

    /// Where `document` breaks the schema, as instance paths with the failing keyword's
    /// schema path (at most 5), and never the values found there: for logging documents that
    /// may hold credentials (gateway mode).
    pub fn document_problem_paths(&self, document: &Value) -> Vec<String> {
        self.document
            .iter_errors(document)
            .take(5)
            .map(|e| format!("{} (schema {})", e.instance_path(), e.schema_path()))
            .collect()
    }

    /// Check one SWAIG action (as JSON).
    pub fn check_action(&self, action: &Value) -> Result<(), ConformanceError> {
        report(&self.action, action)
    }

    /// Check every action of a SWAIG response body (`{"response", "action": [...]}`).
    pub fn check_response(&self, response: &Value) -> Result<(), ConformanceError> {
        if !response.get("response").is_some_and(Value::is_string) {
            return Err(ConformanceError(
                "response is missing the `response` string".into(),
            ));
        }
        for action in response
            .get("action")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check_action(action)?;
        }
        Ok(())
    }
}

fn redirect_root_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("$ref").and_then(Value::as_str) == Some("SWMLObject.json") {
                map.insert("$ref".into(), Value::String("#/$defs/SWMLDocument".into()));
            }
            map.values_mut().for_each(redirect_root_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(redirect_root_refs),
        _ => {}
    }
}

fn compile(schema: &Value) -> Result<jsonschema::Validator, ConformanceError> {
    jsonschema::draft202012::new(schema)
        .map_err(|e| ConformanceError(format!("schema does not compile: {e}")))
}

fn report(validator: &jsonschema::Validator, instance: &Value) -> Result<(), ConformanceError> {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConformanceError(errors.join("; ")))
    }
}
