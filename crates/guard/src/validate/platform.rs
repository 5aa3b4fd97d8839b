//! The subset of a tool's schema that SignalWire's platform may see, as SWAIG function
//! `parameters`.
//!
//! This module owns [`platform_parameters`]: constraints the platform cannot express (ranges,
//! lengths, item counts, unsupported formats, voxguard's own formats and `x-currency`) are removed
//! from the rendered schema and restated in plain English in the property's description
//! (phrased by `leaf`), so the AI still knows them and [`ArgValidator`](super::ArgValidator)
//! still enforces them. It must not validate arguments or do I/O: `$ref` is resolved only inside
//! the document.

mod leaf;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use super::path::resolve_ref;
use super::{SchemaError, MAX_DEPTH};
use leaf::{
    base_description, compose_description, count_note, enum_note, json_type, render_number,
    render_string,
};

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
        resolve_ref(self.doc, reference).ok_or_else(|| SchemaError::UnresolvedRef {
            reference: reference.to_string(),
        })
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

fn required_list(map: &Map<String, Value>) -> Vec<Value> {
    match map.get("required") {
        Some(Value::Array(names)) => names.iter().filter(|n| n.is_string()).cloned().collect(),
        _ => Vec::new(),
    }
}
