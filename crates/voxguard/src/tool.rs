//! Tools: what the AI may call, with which arguments, and the async handler that runs.
//!
//! Owns [`Tool`] — name, description, full argument schema (enforced by the server) and its
//! platform subset (rendered into SWML), the `secure` flag (on by default: a per-call function
//! token is required), and the type-erased handler. Typed tools take an argument struct that
//! derives `Deserialize + JsonSchema`; untyped tools take a JSON schema and a closure. It does
//! not run handlers — see `dispatch`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use voxguard_guard::{
    platform_parameters, ArgError, ArgValidator, InvalidRateLimit, RateLimit, SchemaError,
    SchemaPaths,
};
use voxguard_swml::FunctionResult;

use crate::context::{CallContext, SessionError};

/// What a handler returns.
pub type ToolResult = Result<FunctionResult, ToolError>;

/// A boxed handler future.
pub(crate) type BoxFuture =
    Pin<Box<dyn Future<Output = Result<FunctionResult, HandlerFailure>> + Send>>;

/// A handler failure. The caller (and the AI) only ever sees a generic sentence; the message
/// is logged for operators.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// Something the handler could not do (a backend down, a bug). Logged, never shown.
    #[error("{0}")]
    Internal(String),
    /// The handler refuses on purpose, with a stable machine reason and a sentence for the AI
    /// (e.g. a business rule: "requires additional verification"). Logged as a security event.
    #[error("refused: {reason}")]
    Refused {
        /// Stable machine-readable reason.
        reason: String,
        /// Sentence for the AI.
        sentence: String,
    },
    /// The call's server-side session could not be read or written.
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl ToolError {
    /// An internal failure with a message for the logs.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        ToolError::Internal(message.to_string())
    }

    /// A deliberate refusal: `reason` goes to the machine field, `sentence` to the AI.
    pub fn refuse(reason: impl Into<String>, sentence: impl Into<String>) -> Self {
        ToolError::Refused {
            reason: reason.into(),
            sentence: sentence.into(),
        }
    }
}

/// Builds the read-back sentence of a confirmation from the (validated) arguments; `None` when
/// they do not deserialize into the summary's argument type.
pub(crate) type ConfirmSummary = Arc<dyn Fn(&Value) -> Option<String> + Send + Sync>;

/// Declarative checks the runtime runs before the handler (see `dispatch`).
#[derive(Clone, Default)]
pub(crate) struct ToolPolicy {
    /// Session flags that must all be `true`.
    pub(crate) requires: Vec<String>,
    /// Roles, one of which the verified caller must hold.
    pub(crate) roles: Vec<String>,
    /// Two-step confirmation.
    pub(crate) confirm: Option<ConfirmSummary>,
    /// Per-caller limit on this tool (an impossible one is refused by `Agent::build`).
    pub(crate) rate_limit: Option<Result<RateLimit, InvalidRateLimit>>,
    /// Explicitly marked sensitive (emergency switch).
    pub(crate) sensitive: bool,
    /// Input guards (normalization, length cap, injection screen) — on unless opted out.
    pub(crate) skip_input_guard: bool,
    /// Argument names masked in audit records and logs on top of the redactor's defaults.
    pub(crate) sensitive_args: Vec<String>,
    /// The tool handles protected health information (HIPAA mode requires verification).
    pub(crate) phi: bool,
}

/// Why a handler did not produce a result.
pub(crate) enum HandlerFailure {
    /// Arguments passed the schema but did not deserialize into the typed struct.
    Arguments(serde_json::Error),
    /// The handler returned an error.
    Tool(ToolError),
}

pub(crate) trait ErasedHandler: Send + Sync {
    fn call(&self, args: Value, ctx: CallContext) -> BoxFuture;
}

struct TypedHandler<A, F> {
    handler: F,
    _args: std::marker::PhantomData<fn(A)>,
}

impl<A, F, Fut> ErasedHandler for TypedHandler<A, F>
where
    A: DeserializeOwned + Send + 'static,
    F: Fn(A, CallContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ToolResult> + Send + 'static,
{
    fn call(&self, args: Value, ctx: CallContext) -> BoxFuture {
        match serde_json::from_value::<A>(args) {
            Ok(args) => {
                let fut = (self.handler)(args, ctx);
                Box::pin(async move { fut.await.map_err(HandlerFailure::Tool) })
            }
            Err(e) => Box::pin(async move { Err(HandlerFailure::Arguments(e)) }),
        }
    }
}

struct UntypedHandler<F> {
    handler: F,
}

impl<F, Fut> ErasedHandler for UntypedHandler<F>
where
    F: Fn(Value, CallContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ToolResult> + Send + 'static,
{
    fn call(&self, args: Value, ctx: CallContext) -> BoxFuture {
        let fut = (self.handler)(args, ctx);
        Box::pin(async move { fut.await.map_err(HandlerFailure::Tool) })
    }
}

/// A tool the AI can call.
#[derive(Clone)]
pub struct Tool {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) schema: Value,
    pub(crate) compiled: Result<Arc<Compiled>, Arc<SchemaError>>,
    pub(crate) secure: bool,
    pub(crate) active: bool,
    pub(crate) fillers: Option<Map<String, Value>>,
    pub(crate) wait_file: Option<String>,
    pub(crate) policy: ToolPolicy,
    pub(crate) handler: Arc<dyn ErasedHandler>,
}

/// Compile `schema` for the server (closed to undeclared arguments when `closed`) and derive
/// the subset rendered for the platform (always from the schema as declared).
///
/// The platform subset comes first: it refuses what the platform cannot take (recursive
/// `$ref`s among others) in linear time, before the validator compiles a schema that could
/// cost it exponential time (found by the `validator` fuzz target: a self-referencing `allOf`
/// under an `anyOf` kept `jsonschema` busy for minutes).
pub(crate) fn compile(schema: &Value, closed: bool) -> Result<Arc<Compiled>, Arc<SchemaError>> {
    let enforced = if closed {
        close_objects(schema.clone())
    } else {
        schema.clone()
    };
    compile_enforcing(schema, enforced, false)
}

/// [`compile`] with the schema to enforce given: `enforced` is `schema` closed to undeclared
/// arguments (or `schema` itself). An `untrusted` schema (an upstream's) is compiled with
/// [`ArgValidator::new_untrusted`].
pub(crate) fn compile_enforcing(
    schema: &Value,
    enforced: Value,
    untrusted: bool,
) -> Result<Arc<Compiled>, Arc<SchemaError>> {
    let validator = |schema: &Value| {
        if untrusted {
            ArgValidator::new_untrusted(schema)
        } else {
            ArgValidator::new(schema)
        }
    };
    let closed = enforced != *schema;
    platform_parameters(schema)
        .and_then(|parameters| {
            // Closing a schema that a negation or an exclusive choice reaches — a `$defs` entry
            // under `not`/`if`/`contains` through a `$ref`, the branches of a `oneOf` — or
            // dropping its `patternProperties` (strict mode) can make it accept a value it
            // refuses as declared: such a schema is also checked as declared, so that closing
            // only ever refuses more. Others (most tools) close only where a closed schema can
            // only refuse more, and are checked once.
            let declared = (closed && mentions_any(schema, &LOOSENING))
                .then(|| validator(schema))
                .transpose()?;
            Ok(Compiled {
                validator: Validator {
                    closed: validator(&enforced)?,
                    declared,
                },
                parameters,
                paths: SchemaPaths::new(schema),
            })
        })
        .map(Arc::new)
        .map_err(Arc::new)
}

/// The keywords under which closing a schema can loosen it (see [`compile_enforcing`]).
const LOOSENING: [&str; 6] = [
    "not",
    "if",
    "oneOf",
    "contains",
    "patternProperties",
    "dependentSchemas",
];

/// Whether any of `keys` is a member name anywhere in `value`, in one walk (a property of that
/// name counts too: the answer may only be too cautious).
fn mentions_any(value: &Value, keys: &[&str]) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(key, v)| keys.contains(&key.as_str()) || mentions_any(v, keys)),
        Value::Array(items) => items.iter().any(|v| mentions_any(v, keys)),
        _ => false,
    }
}

/// `schema` with `additionalProperties: false` on every object schema that lists `properties`
/// and says nothing about additional ones: the root, nested objects, array items, `$defs`
/// entries and the branches of `anyOf`/`allOf`/`oneOf` (walked by keyword, so a property that
/// happens to be *named* `properties` is never mistaken for a schema).
///
/// The negated and conditional schemas (`not`, `if`, `then`, `else`) are left as declared:
/// closed, a `not` would pass any value with one member more than it names, and an `if` would
/// stop matching, so their rules would never apply; a `then`/`else` (or an object it refines)
/// would refuse the members the schema beside it declares. Where closing can still loosen a
/// schema (through a `$ref` from a negation, a `oneOf`), [`compile_enforcing`] also checks the
/// schema as declared.
fn close_objects(schema: Value) -> Value {
    walk_objects(schema, false)
}

/// `schema` closed to undeclared arguments whatever it says (the gateway's strict mode, where
/// the rule is the gateway's and not the upstream's): like [`close_objects`], but an object
/// schema's own `additionalProperties` and `patternProperties` are replaced as well.
pub(crate) fn force_closed(schema: Value) -> Value {
    walk_objects(schema, true)
}

/// Whether every schema `schema` can reach is one [`force_closed`] closes: a `$ref` may point
/// only at the document itself or at a schema the walk reaches (`#/$defs/A`,
/// `#/$defs/A/properties/b`, `#/definitions/A/items`, … — see [`walked_pointer`]; a reference
/// anywhere else — `#/$defs/A/not`, `#/x`, another document — would lead to a schema the walk
/// never saw, left open), and the dynamic references are refused outright. The `Err` says what
/// was found.
pub(crate) fn closable(schema: &Value) -> Result<(), String> {
    match schema {
        Value::Object(map) => {
            for (keyword, child) in map {
                match (keyword.as_str(), child) {
                    ("$ref", Value::String(target)) if walked_pointer(target) => {}
                    ("$ref" | "$dynamicRef" | "$recursiveRef", _) => {
                        return Err(format!(
                            "`{keyword}` to {} cannot be closed to undeclared arguments",
                            child.to_string().chars().take(64).collect::<String>()
                        ))
                    }
                    _ => closable(child)?,
                }
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(closable),
        _ => Ok(()),
    }
}

/// Whether `target` is `#` or a JSON pointer into `$defs` / `definitions` made only of the
/// keywords [`walk_objects`] follows: each `properties`, `$defs` or `definitions` followed by a
/// name, each `anyOf`, `allOf`, `oneOf` or `prefixItems` by a position, and `items` alone.
fn walked_pointer(target: &str) -> bool {
    if target == "#" {
        return true;
    }
    // A fragment is percent-decoded before it is split (`%2F` is a `/`): refused outright
    // rather than read two ways.
    let Some(pointer) = target.strip_prefix("#/").filter(|p| !p.contains('%')) else {
        return false;
    };
    let mut segments = pointer.split('/');
    let mut first = true;
    while let Some(keyword) = segments.next() {
        let named = match keyword {
            "$defs" | "definitions" => true,
            "properties" if !first => true,
            "anyOf" | "allOf" | "oneOf" | "prefixItems" if !first => {
                match segments.next() {
                    Some(at) if !at.is_empty() && at.bytes().all(|b| b.is_ascii_digit()) => {}
                    _ => return false,
                }
                false
            }
            "items" if !first => false,
            _ => return false,
        };
        if named && segments.next().is_none() {
            return false;
        }
        first = false;
    }
    !first
}

fn walk_objects(mut schema: Value, force: bool) -> Value {
    fn close(node: &mut Value, force: bool) {
        let Value::Object(map) = node else {
            return;
        };
        // An object with declared properties, or an object type with none at all (a typed
        // tool's `struct NoArgs {}`): nothing undeclared gets in either way.
        let object = map.contains_key("properties")
            || match map.get("type") {
                Some(Value::String(kind)) => kind == "object",
                // `["object", "null"]`: an object when it is one.
                Some(Value::Array(kinds)) => kinds.iter().any(|k| k == "object"),
                _ => false,
            };
        // Strict: positions past a tuple's `prefixItems` (or a draft-07 tuple's `items` list)
        // are undeclared too, unless the schema says what they take.
        // (A tail given as a schema — `unevaluatedItems`, draft 7's `additionalItems` — is
        // declared, and closed by the walk below like any schema.)
        if force {
            let tail_declared = map.get("unevaluatedItems").is_some_and(Value::is_object);
            if map.contains_key("prefixItems") && !map.contains_key("items") && !tail_declared {
                map.insert("items".into(), Value::Bool(false));
            }
            if map.get("items").is_some_and(Value::is_array)
                && !map.get("additionalItems").is_some_and(Value::is_object)
            {
                map.insert("additionalItems".into(), Value::Bool(false));
            }
        }
        if object && force {
            map.remove("patternProperties");
            map.insert("additionalProperties".into(), Value::Bool(false));
        } else if object
            && !map.contains_key("additionalProperties")
            && !map.contains_key("patternProperties")
        {
            map.insert("additionalProperties".into(), Value::Bool(false));
        }
        for (keyword, child) in map.iter_mut() {
            match keyword.as_str() {
                "properties" | "$defs" | "definitions" => {
                    if let Value::Object(schemas) = child {
                        schemas.values_mut().for_each(|s| close(s, force));
                    }
                }
                "anyOf" | "allOf" | "oneOf" | "prefixItems" => {
                    if let Value::Array(schemas) = child {
                        schemas.iter_mut().for_each(|s| close(s, force));
                    }
                }
                "unevaluatedItems" | "additionalItems" => close(child, force),
                // A schema, or (draft 7) a list of them by position.
                "items" => match child {
                    Value::Array(schemas) => schemas.iter_mut().for_each(|s| close(s, force)),
                    _ => close(child, force),
                },
                _ => {}
            }
        }
    }
    close(&mut schema, force);
    schema
}

/// A tool's argument check: the schema as enforced (closed to undeclared arguments when the
/// tool is), and, where closing could have loosened it, the schema as declared too.
pub(crate) struct Validator {
    closed: ArgValidator,
    declared: Option<ArgValidator>,
}

impl Validator {
    /// The first error of the enforced schema, then of the schema as declared.
    pub(crate) fn validate(&self, args: &Value) -> Result<(), ArgError> {
        self.closed.validate(args)?;
        match &self.declared {
            Some(declared) => declared.validate(args),
            None => Ok(()),
        }
    }
}

/// The schema forms derived once when the tool is declared.
pub(crate) struct Compiled {
    pub(crate) validator: Validator,
    pub(crate) parameters: Value,
    /// The path questions about the schema as declared (`Tool::schema`; asked with it), each
    /// answered once per root member.
    pub(crate) paths: SchemaPaths,
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.name)
            .field("secure", &self.secure)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl Tool {
    /// A typed tool: arguments arrive as `A`, validated against `A`'s JSON schema first.
    /// Arguments the schema does not declare are refused (`invalid_argument`, rule
    /// `additionalProperties`) unless [`Tool::allow_undeclared_args`].
    ///
    /// ```
    /// use schemars::JsonSchema;
    /// use serde::Deserialize;
    /// use voxguard::prelude::*;
    ///
    /// #[derive(Deserialize, JsonSchema)]
    /// struct Lookup {
    ///     /// Order number, e.g. ORD-12345
    ///     #[schemars(regex(pattern = r"^ORD-[0-9]{5}$"))]
    ///     order: String,
    /// }
    ///
    /// let tool = Tool::typed("lookup_order", "Look up an order", |args: Lookup, _ctx| async move {
    ///     Ok(FunctionResult::new(format!("Order {} has shipped.", args.order)))
    /// });
    /// ```
    pub fn typed<A, F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        handler: F,
    ) -> Self
    where
        A: DeserializeOwned + JsonSchema + Send + 'static,
        F: Fn(A, CallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ToolResult> + Send + 'static,
    {
        let schema = schemars::schema_for!(A).to_value();
        Self::with_handler(
            name.into(),
            description.into(),
            schema,
            Arc::new(TypedHandler {
                handler,
                _args: std::marker::PhantomData,
            }),
            true,
        )
    }

    /// An untyped tool: arguments arrive as JSON, validated against `schema` (a JSON schema of
    /// type `object`) first.
    pub fn untyped<F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        schema: Value,
        handler: F,
    ) -> Self
    where
        F: Fn(Value, CallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ToolResult> + Send + 'static,
    {
        Self::with_handler(
            name.into(),
            description.into(),
            schema,
            Arc::new(UntypedHandler { handler }),
            false,
        )
    }

    fn with_handler(
        name: String,
        description: String,
        schema: Value,
        handler: Arc<dyn ErasedHandler>,
        closed: bool,
    ) -> Self {
        let compiled = compile(&schema, closed);
        Self {
            name,
            description,
            schema,
            compiled,
            secure: true,
            active: true,
            fillers: None,
            wait_file: None,
            policy: ToolPolicy::default(),
            handler,
        }
    }

    /// A function of an upstream agent behind the gateway (`crate::gateway`): its schema as the
    /// upstream declared it, compiled once per schema by the gateway's cache, and a handler
    /// that is never run — the pipeline forwards a gateway call to the upstream instead of
    /// running a handler (`Pipeline::run_handler` is not reached for it). Always `secure`.
    pub(crate) fn forwarded(name: &str, schema: Value, compiled: Arc<Compiled>) -> Self {
        Self {
            name: name.to_string(),
            description: String::new(),
            schema,
            compiled: Ok(compiled),
            secure: true,
            active: true,
            fillers: None,
            wait_file: None,
            policy: ToolPolicy::default(),
            handler: Arc::new(UntypedHandler {
                handler: |_args: Value, _ctx: CallContext| async {
                    Err(ToolError::internal(
                        "a gateway function is forwarded to its upstream, never run here",
                    ))
                },
            }),
        }
    }

    /// Accept arguments the schema does not declare (typed tools refuse them by default). They
    /// are still never written to the audit trail, and the handler of a typed tool never sees
    /// them (serde drops unknown fields).
    pub fn allow_undeclared_args(mut self) -> Self {
        self.compiled = compile(&self.schema, false);
        self
    }

    /// Require a per-call function token (the default). `secure(false)` is an explicit,
    /// documented opt-out for tools that expose nothing sensitive.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Render the tool inactive; a `toggle_functions` action activates it later.
    pub fn inactive(mut self) -> Self {
        self.active = false;
        self
    }

    /// Filler phrases the platform plays while the tool runs. The platform accepts phrases for
    /// exactly one language per function (a code from [`voxguard_swml::FILLER_LANGUAGES`], or
    /// `default`); a later call replaces an earlier one, and `Agent::build` refuses an unknown
    /// code.
    pub fn fillers<I, S>(mut self, language: impl Into<String>, phrases: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let phrases: Vec<Value> = phrases
            .into_iter()
            .map(|p| Value::String(p.into()))
            .collect();
        let mut fillers = Map::new();
        fillers.insert(language.into(), Value::Array(phrases));
        self.fillers = Some(fillers);
        self
    }

    /// Run only when the server-side session flag `flag` is `true` for this call (set by a
    /// verification, see `CallContext::verify_secret`); otherwise refuse with
    /// `verification_required`. Several calls require all flags.
    pub fn requires(mut self, flag: impl Into<String>) -> Self {
        self.policy.requires.push(flag.into());
        self
    }

    /// Run only when the *verified* caller holds `role` (from the agent's caller allow-list);
    /// otherwise refuse with `forbidden`. Several calls accept any of the roles. Caller ID alone
    /// never grants a role: the session must have been verified first.
    pub fn requires_role(mut self, role: impl Into<String>) -> Self {
        self.policy.roles.push(role.into());
        self
    }

    /// Two-step confirmation: the first call stores the pending action server-side and answers
    /// `summary(args)`, which the AI reads back; the handler runs only on a second call with
    /// `confirmed: true` and identical arguments within 5 minutes, and only once.
    ///
    /// The summary reads the validated arguments as the type it names: the tool's argument
    /// struct for a typed tool, `serde_json::Value` for an untyped one.
    ///
    /// ```
    /// use schemars::JsonSchema;
    /// use serde::Deserialize;
    /// use voxguard::prelude::*;
    ///
    /// #[derive(Deserialize, JsonSchema)]
    /// struct Transfer {
    ///     /// Amount in dollars
    ///     amount: u32,
    /// }
    ///
    /// let tool = Tool::typed("transfer", "Move money", |args: Transfer, _ctx| async move {
    ///     Ok(FunctionResult::new(format!("Moved {} dollars.", args.amount)))
    /// })
    /// .confirm(|args: &Transfer| format!("Shall I move {} dollars?", args.amount));
    /// ```
    pub fn confirm<A, F>(mut self, summary: F) -> Self
    where
        A: DeserializeOwned + 'static,
        F: Fn(&A) -> String + Send + Sync + 'static,
    {
        self.policy.confirm = Some(Arc::new(move |args: &Value| {
            A::deserialize(args).ok().map(|args| summary(&args))
        }));
        self
    }

    /// At most `max` calls per `per` for each caller on this tool (HTTP 429 beyond).
    ///
    /// An impossible limit (0 calls, zero period) is reported by `Agent::build`.
    pub fn rate_limit(mut self, max: u32, per: std::time::Duration) -> Self {
        self.policy.rate_limit = Some(RateLimit::new(max, per));
        self
    }

    /// Mark the tool sensitive: the emergency switch disables it. Tools with `requires`,
    /// `requires_role` or `confirm` are sensitive without saying so.
    pub fn sensitive(mut self) -> Self {
        self.policy.sensitive = true;
        self
    }

    /// Mark the tool as handling protected health information. It is sensitive (the emergency
    /// switch disables it), and under HIPAA mode the agent does not build unless the tool
    /// [`requires`](Self::requires) a verification flag.
    pub fn phi(mut self) -> Self {
        self.policy.phi = true;
        self.policy.sensitive = true;
        self
    }

    /// Opt out of the input guards (Unicode normalization, length cap, prompt-injection
    /// screen) for this tool's string arguments. Schema validation still applies.
    pub fn without_input_guard(mut self) -> Self {
        self.policy.skip_input_guard = true;
        self
    }

    /// Argument names to mask in audit records on top of the defaults (`pin`, `cvv`, `ssn`,
    /// `password`, …), e.g. `["member_id"]`.
    pub fn sensitive_args<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.policy
            .sensitive_args
            .extend(names.into_iter().map(Into::into));
        self
    }

    /// Whether the emergency switch covers this tool.
    pub fn is_sensitive(&self) -> bool {
        self.policy.sensitive
            || !self.policy.requires.is_empty()
            || !self.policy.roles.is_empty()
            || self.policy.confirm.is_some()
    }

    /// Audio to play while the tool runs.
    pub fn wait_file(mut self, url: impl Into<String>) -> Self {
        self.wait_file = Some(url.into());
        self
    }

    /// The tool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The full argument schema the server enforces.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Whether the tool requires a function token.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// [`declared_path`](voxguard_guard::declared_path) on the schema as declared: whether
    /// the schema itself names every member on `path`.
    pub(crate) fn declares_path(&self, path: &str) -> bool {
        match &self.compiled {
            Ok(compiled) => compiled.paths.declared(&self.schema, path),
            Err(_) => voxguard_guard::declared_path(&self.schema, path),
        }
    }

    /// [`max_length_at`](voxguard_guard::max_length_at) on the schema as declared.
    pub(crate) fn max_length_at(&self, path: &str) -> Option<usize> {
        match &self.compiled {
            Ok(compiled) => compiled.paths.max_length(&self.schema, path),
            Err(_) => voxguard_guard::max_length_at(&self.schema, path),
        }
    }

    /// Whether `field` is a top-level property the schema declares (safe to name to the AI).
    pub(crate) fn declares(&self, field: &str) -> bool {
        self.schema
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|props| props.contains_key(field))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    /// A schema whose `$ref`s recurse through `allOf` under an `anyOf` is refused at once
    /// (before the fix, compiling it for the validator took minutes: a fuzz finding).
    #[test]
    fn recursive_all_of_schema_is_refused_quickly() {
        let d = json!({"$ref": "#/$defs/D"});
        let schema = json!({
            "type": "object",
            "properties": {"x": {"anyOf": [{"type": "boolean"}, d, d, d, d, d]}},
            "$defs": {"D": {"allOf": [d, d, d, d, d, d]}}
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let tool = Tool::untyped("t", "d", schema, |_args, _ctx| async {
                Ok(FunctionResult::new("ok"))
            });
            let _ = tx.send(
                tool.compiled
                    .err()
                    .map(|e| matches!(*e, SchemaError::RecursiveRef { .. })),
            );
        });
        let refused = rx.recv_timeout(Duration::from_secs(10));
        assert_eq!(refused, Ok(Some(true)), "refused as recursive within 10 s");
    }
}
