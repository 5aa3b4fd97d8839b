//! Gateway mode: voxguard in front of an SWML agent it did not build (an official Python or
//! TypeScript SDK agent, say), so that the platform talks to voxguard and voxguard to the
//! agent ([docs/gateway.md](../../docs/gateway.md)).
//!
//! Owns what a gateway adds to an ordinary agent: its configuration (`config`), the upstream
//! client (`upstream`), the SWML rewrite (`rewrite`), the `Gate` a `Pipeline` holds in
//! gateway mode (compiled schemas, the rules of `gateway.toml`, the official schema checker),
//! and the gateway's `Agent` (name, route, limits, transfer allow-list, summary forwarding).
//! The request path itself stays the pipeline's (`pipeline/gateway.rs`): the same steps,
//! refusals and audit records as for an agent's own tools. It must not run upstream code or
//! let an upstream credential or token reach the platform.

pub mod config;
pub(crate) mod rewrite;
pub(crate) mod upstream;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use voxguard_swml::conformance::SchemaChecker;

use crate::agent::{Agent, AgentError};
use crate::tool::{closable, compile_enforcing, force_closed, Compiled, Tool, ToolError};

pub use config::{GatewayConfig, GatewayConfigError, UpstreamCredentials};
use rewrite::{FunctionEntry, RenderEntry, ENTRY_KEY};
use upstream::{Target, Upstream};

/// Compiled schemas kept (distinct schemas; a gateway's upstream declares a few dozen).
const COMPILED_CACHE: usize = 1024;

/// The most schema text (JSON bytes) the compiled schemas are kept for together; their
/// validators grow with it. Past it the cache starts over (renders keep what they use).
const COMPILED_BYTES: usize = 16 * 1024 * 1024;

/// The largest function schema the gateway enforces (as JSON text); a larger one leaves its
/// function out of the render.
const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// Renders kept prepared in memory (most recent calls); a miss reads the call's session.
const PREPARED_CACHE: usize = 4 * 1024;

/// The most memory the prepared renders may hold together, as [`Prepared::bytes`] estimates
/// it (the entry and the tools' copies of its schemas as `serde_json::Value`s, the secret
/// finder's automaton). Past it the stale renders go, then the oldest; a render larger than
/// the whole budget is not kept. A miss only costs preparing the render again from the call's
/// session.
const PREPARED_BYTES: usize = 64 * 1024 * 1024;

/// Every this many renders kept, the ones older than [`PREPARED_FOR`] are dropped, so that
/// memory follows the calls of the last half minute rather than the cache's bound.
const SWEEP_EVERY: u64 = 256;

/// How long a prepared render is trusted without reading the session again (so an expired or
/// cleared session stops being served within this, as on a replica that never had it).
const PREPARED_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// A render as every call of it needs it, built once: the upstream's URLs, a checked tool per
/// function (schema compiled), and the finder of the upstream's secrets.
pub(crate) struct Prepared {
    pub(crate) entry: RenderEntry,
    pub(crate) tools: HashMap<String, Arc<Tool>>,
    pub(crate) secrets: rewrite::SecretFinder,
    /// Each function's webhook URL as the upstream client checked it, at its first call.
    targets: HashMap<String, OnceLock<Result<Target, String>>>,
    at: std::time::Instant,
    /// About the memory it holds, for [`PREPARED_BYTES`].
    bytes: usize,
}

impl Prepared {
    /// `function`'s webhook URL as `upstream` checked it ([`Upstream::target`]), checked at
    /// the function's first call and kept for the render's others; the error says why not.
    /// `upstream` must be the gate's own (a `Target` holds no origin): a `Prepared` lives only
    /// in the cache of the `Gate` that made it.
    pub(crate) fn target(&self, function: &str, upstream: &Upstream) -> Result<&Target, String> {
        let (Some(cell), Some(entry)) = (
            self.targets.get(function),
            self.entry.functions.get(function),
        ) else {
            return Err("the render holds no such function".into());
        };
        cell.get_or_init(|| upstream.target(&entry.url).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// About the memory `value` takes as a `serde_json::Value`: every node, key and string.
pub(crate) fn value_bytes(value: &Value) -> usize {
    const NODE: usize = std::mem::size_of::<Value>() + 16;
    NODE + match value {
        Value::String(text) => text.len(),
        Value::Array(items) => items.iter().map(value_bytes).sum(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| NODE + k.len() + value_bytes(v))
            .sum(),
        _ => 0,
    }
}

/// The compiled schemas by their JSON text, and the text's bytes.
#[derive(Default)]
struct CompiledCache {
    schemas: HashMap<String, Arc<Compiled>>,
    bytes: usize,
}

/// The prepared renders by session scope, and the bytes they hold.
#[derive(Default)]
struct PreparedCache {
    renders: HashMap<String, Arc<Prepared>>,
    bytes: usize,
}

impl PreparedCache {
    fn insert(&mut self, scope: String, prepared: Arc<Prepared>) {
        self.bytes += prepared.bytes;
        if let Some(old) = self.renders.insert(scope, prepared) {
            self.bytes -= old.bytes;
        }
    }

    fn remove(&mut self, scope: &str) {
        if let Some(old) = self.renders.remove(scope) {
            self.bytes -= old.bytes;
        }
    }

    /// Keep only the renders `keep` says to.
    fn retain(&mut self, keep: impl Fn(&Prepared) -> bool) {
        self.renders.retain(|_, p| keep(p));
        self.bytes = self.renders.values().map(|p| p.bytes).sum();
    }
}

/// What a pipeline in gateway mode holds besides its agent.
pub(crate) struct Gate {
    pub(crate) upstream: Upstream,
    pub(crate) strict: bool,
    pub(crate) sensitive_args: Vec<String>,
    pub(crate) emergency_tools: HashSet<String>,
    pub(crate) checker: Option<SchemaChecker>,
    compiled: Mutex<CompiledCache>,
    /// [`COMPILED_BYTES`], lower in tests.
    compiled_bytes: usize,
    prepared: Mutex<PreparedCache>,
    /// [`PREPARED_BYTES`], lower in tests.
    prepared_bytes: usize,
    /// Renders kept so far (for [`SWEEP_EVERY`]).
    kept: std::sync::atomic::AtomicU64,
    /// Renders forgotten so far: a render prepared from an entry read before a forget is not
    /// kept (see [`Gate::generation`]).
    forgets: std::sync::atomic::AtomicU64,
}

impl Gate {
    /// The gate for `config`: the upstream client and the schema checker (read now, so a bad
    /// path stops start-up).
    pub(crate) fn new(config: &GatewayConfig) -> Result<Self, GatewayConfigError> {
        let checker = match &config.swml_schema {
            Some(path) => {
                Some(
                    SchemaChecker::from_path(path).map_err(|e| GatewayConfigError::Invalid {
                        key: "swml_schema".into(),
                        message: e.to_string(),
                    })?,
                )
            }
            None => {
                tracing::warn!("gateway: no swml_schema (VOXGUARD_SWML_SCHEMA) configured: the upstream's SWML is not checked against the official schema");
                None
            }
        };
        let upstream = Upstream::new(config).map_err(|message| GatewayConfigError::Invalid {
            key: "upstream".into(),
            message,
        })?;
        Ok(Self {
            upstream,
            strict: config.strict,
            sensitive_args: config.sensitive_args.clone(),
            emergency_tools: config.emergency_tools.iter().cloned().collect(),
            checker,
            compiled: Mutex::new(CompiledCache::default()),
            compiled_bytes: COMPILED_BYTES,
            prepared: Mutex::new(PreparedCache::default()),
            prepared_bytes: PREPARED_BYTES,
            kept: std::sync::atomic::AtomicU64::new(0),
            forgets: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// `schema` compiled for enforcement (closed to undeclared arguments in strict mode), from
    /// the cache when the same schema was seen before.
    ///
    /// The errors are fixed sentences: they are logged, and the validator's own messages quote
    /// the schema — a `$ref` to `https://user:password@…`, cut anywhere, say.
    pub(crate) fn compiled(&self, schema: &Value) -> Result<Arc<Compiled>, String> {
        let key = schema.to_string();
        if key.len() > MAX_SCHEMA_BYTES {
            return Err(format!("the schema is over {MAX_SCHEMA_BYTES} bytes"));
        }
        if let Some(found) = self.lock().schemas.get(&key) {
            return Ok(found.clone());
        }
        let compiled = if self.strict {
            closable(schema).map_err(|_| {
                "it refers to another schema ($ref), which strict mode cannot close to undeclared arguments".to_string()
            })?;
            compile_enforcing(schema, force_closed(schema.clone()), true)
        } else {
            compile_enforcing(schema, schema.clone(), true)
        }
        .map_err(|_| {
            "it is not a valid JSON Schema, or it refers to one the gateway cannot resolve"
                .to_string()
        })?;
        let mut cache = self.lock();
        // Another caller may have compiled the same schema meanwhile: counted once.
        if !cache.schemas.contains_key(&key) {
            let bytes = key.len() + compiled.paths.heap_bytes();
            if cache.schemas.len() >= COMPILED_CACHE || cache.bytes + bytes > self.compiled_bytes {
                *cache = CompiledCache::default();
            }
            cache.bytes += bytes;
        }
        cache.schemas.insert(key, compiled.clone());
        Ok(compiled)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CompiledCache> {
        self.compiled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Which forget is the newest: read it *before* reading a render's entry from the store
    /// and hand it to [`Gate::prepare`], so that an entry a forget has since replaced is not
    /// kept (the writer stores the new entry, then forgets).
    pub(crate) fn generation(&self) -> u64 {
        self.forgets.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `entry` (the render stored under session `scope`, read at [`Gate::generation`]
    /// `since`) prepared for its calls, and kept unless a render was forgotten meanwhile.
    pub(crate) fn prepare(
        &self,
        scope: &str,
        entry: RenderEntry,
        since: u64,
    ) -> Result<Arc<Prepared>, String> {
        let prepared = self.assemble(entry)?;
        self.keep_since(scope, prepared.clone(), Some(since));
        Ok(prepared)
    }

    /// `entry` prepared for its calls (schemas compiled, secret finder built), not kept.
    pub(crate) fn assemble(&self, entry: RenderEntry) -> Result<Arc<Prepared>, String> {
        let mut tools = HashMap::with_capacity(entry.functions.len());
        for (name, function) in &entry.functions {
            tools.insert(name.clone(), Arc::new(self.tool(name, function)?));
        }
        let secrets = self.secrets(&entry);
        // The entry, with each tool's own copy of its schema (the validators are the compiled
        // cache's, bounded there), and the finder.
        // The targets, once checked: a copy of each URL and an `Authorization` value.
        let targets_bytes: usize = entry.functions.values().map(|f| 128 + f.url.len()).sum();
        let bytes = entry.memory_bytes(2) + secrets.memory_bytes() + targets_bytes;
        let targets = entry
            .functions
            .keys()
            .map(|name| (name.clone(), OnceLock::new()))
            .collect();
        Ok(Arc::new(Prepared {
            secrets,
            targets,
            entry,
            tools,
            at: std::time::Instant::now(),
            bytes,
        }))
    }

    /// The finder of the upstream's secrets that `entry` holds, with its configured credentials.
    pub(crate) fn secrets(&self, entry: &RenderEntry) -> rewrite::SecretFinder {
        rewrite::SecretFinder::new(&rewrite::secrets(entry, self.upstream.credentials()))
    }

    /// Keep `prepared` as the render of session `scope`: past [`PREPARED_CACHE`] renders or
    /// [`PREPARED_BYTES`] the stale ones go first, then the oldest until it fits. A render
    /// larger than the whole budget is not kept (and takes nothing from the others).
    pub(crate) fn keep(&self, scope: &str, prepared: Arc<Prepared>) {
        self.keep_since(scope, prepared, None);
    }

    /// [`Gate::keep`], unless a render was forgotten since generation `since`.
    fn keep_since(&self, scope: &str, prepared: Arc<Prepared>, since: Option<u64>) {
        if prepared.bytes > self.prepared_bytes {
            // Not kept; nor is the scope's older render, whose entry this one replaces.
            self.forget(scope);
            return;
        }
        let mut cache = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        // Forgets count under the same lock, so no forget falls between this check and the
        // insert below.
        if since.is_some_and(|since| since != self.generation()) {
            return;
        }
        let kept = self.kept.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        cache.remove(scope);
        let full = |cache: &PreparedCache| {
            cache.renders.len() >= PREPARED_CACHE
                || cache.bytes + prepared.bytes > self.prepared_bytes
        };
        if full(&cache) || kept % SWEEP_EVERY == SWEEP_EVERY - 1 {
            cache.retain(|p| p.at.elapsed() < PREPARED_FOR);
        }
        if full(&cache) {
            // Down to three quarters of both bounds at once, so that the next renders do not
            // sort the cache again.
            let roomy = |cache: &PreparedCache| {
                cache.renders.len() < PREPARED_CACHE * 3 / 4
                    && cache.bytes + prepared.bytes <= self.prepared_bytes * 3 / 4
            };
            let mut by_age: Vec<(std::time::Instant, String)> = cache
                .renders
                .iter()
                .map(|(scope, p)| (p.at, scope.clone()))
                .collect();
            by_age.sort();
            for (_, oldest) in by_age {
                if roomy(&cache) {
                    break;
                }
                cache.remove(&oldest);
            }
        }
        cache.insert(scope.to_string(), prepared);
    }

    /// The prepared render of session `scope`, if kept and recent.
    pub(crate) fn prepared(&self, scope: &str) -> Option<Arc<Prepared>> {
        let cache = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .renders
            .get(scope)
            .filter(|p| p.at.elapsed() < PREPARED_FOR)
            .cloned()
    }

    /// Forget the prepared render of `scope` (its entry changed).
    pub(crate) fn forget(&self, scope: &str) {
        let mut cache = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        cache.remove(scope);
        self.forgets
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The tool the pipeline checks a call to upstream function `name` as: its declared schema,
    /// the configured sensitive argument names, sensitive for the emergency switch when listed.
    pub(crate) fn tool(&self, name: &str, entry: &FunctionEntry) -> Result<Tool, String> {
        if !rewrite::forwardable_name(name) {
            // The rewrite never keeps such a name; only an altered session store could.
            return Err("a stored render names a reserved or unfit function".into());
        }
        let compiled = self.compiled(&entry.schema)?;
        let mut tool = Tool::forwarded(name, entry.schema.clone(), compiled);
        tool.policy.sensitive = self.emergency_tools.contains(name);
        tool.policy.sensitive_args = self.sensitive_args.clone();
        Ok(tool)
    }
}

/// The agent a gateway is served as: its name and route, rate limits and transfer allow-list
/// from `config`, and a summary handler that forwards the (redacted) end-of-call summary to the
/// upstream's `post_prompt_url`. It declares no tools: they come from each render.
pub(crate) fn agent(config: &GatewayConfig, gate: Arc<Gate>) -> Result<Agent, AgentError> {
    let mut builder = Agent::builder(&config.name)
        .route(&config.route)
        .prompt_text("(gateway)")
        .allow_transfers_to(config.allow_transfers_to.iter().cloned())
        .on_summary(move |summary, ctx| {
            let gate = gate.clone();
            async move {
                let entry: Option<RenderEntry> = ctx.session().get(ENTRY_KEY).await?;
                let Some(url) = entry.and_then(|e| e.post_prompt_url) else {
                    return Ok(());
                };
                let body = serde_json::to_vec(&summary).map_err(ToolError::internal)?;
                gate.upstream
                    .call(&url, body)
                    .await
                    .map(drop)
                    .map_err(ToolError::internal)
            }
        });
    if let Some(limit) = config.per_caller {
        builder = builder.rate_limit_per_caller(limit.max(), limit.per());
    }
    if let Some(limit) = config.global {
        builder = builder.rate_limit_global(limit.max(), limit.per());
    }
    let mut agent = builder.build()?;
    // Just built, so not shared yet: the per-function limits go in as a declared tool's would.
    let def = Arc::get_mut(&mut agent.inner).expect("a freshly built agent is not shared");
    def.limits.tools = config.function_limits.clone();
    Ok(agent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tool::compile;
    use serde_json::json;

    /// Strict mode reaches every object a call can fill: a `$ref` may lead only to schemas the
    /// closing walk visits, and a tuple's positions past its `prefixItems` are undeclared.
    #[test]
    fn strict_mode_leaves_no_reference_or_tuple_open() {
        let mut config = GatewayConfig::new(url::Url::parse("http://127.0.0.1:9/").unwrap());
        config.strict = true;
        let gate = Gate::new(&config).unwrap();
        // A reference into a keyword the walk does not visit is refused, not left open.
        for target in [
            "#/$defs/H/x-order",
            "#/$defs/H%2Fx-order",
            "#/$defs/A/not",
            "#/$defs/A%2Fnot",
            "#/$defs/A/if",
            "#/x",
            "#/$defs",
        ] {
            let via_ref = json!({"type": "object", "properties": {"order": {"$ref": target}},
                "$defs": {"H": {"x-order": {"type": "object",
                    "properties": {"sku": {"type": "string"}}}},
                    "A": {"not": {"type": "object", "properties": {"sku": {"type": "string"}}}}}});
            assert!(gate.compiled(&via_ref).is_err(), "{target}");
        }
        // References the walk does visit are closed.
        for target in [
            "#/$defs/O",
            "#/$defs/W/properties/o",
            "#/$defs/L/items",
            "#/$defs/U/anyOf/0",
        ] {
            let schema = json!({"type": "object", "properties": {"order": {"$ref": target}},
                "$defs": {
                    "O": {"type": "object", "properties": {"sku": {"type": "string"}}},
                    "W": {"type": "object", "properties": {"o": {"type": "object",
                        "properties": {"sku": {"type": "string"}}}}},
                    "L": {"type": "array", "items": {"type": "object",
                        "properties": {"sku": {"type": "string"}}}},
                    "U": {"anyOf": [{"type": "object", "properties": {"sku": {"type": "string"}}}]}}});
            let compiled = gate
                .compiled(&schema)
                .unwrap_or_else(|e| panic!("{target}: {e}"));
            assert!(
                compiled
                    .validator
                    .validate(&json!({"order": {"sku": "a"}}))
                    .is_ok(),
                "{target}"
            );
            assert!(
                compiled
                    .validator
                    .validate(&json!({"order": {"sku": "a", "admin": true}}))
                    .is_err(),
                "{target}"
            );
        }
        let tuple = json!({"type": "object", "properties": {"lines": {"type": "array",
            "prefixItems": [{"type": "object", "properties": {"sku": {"type": "string"}}}]}}});
        let compiled = gate.compiled(&tuple).unwrap();
        assert!(compiled
            .validator
            .validate(&json!({"lines": [{"sku": "a"}]}))
            .is_ok());
        assert!(compiled
            .validator
            .validate(&json!({"lines": [{"sku": "a"}, {"admin": true}]}))
            .is_err());
        assert!(compiled
            .validator
            .validate(&json!({"lines": [{"sku": "a", "admin": true}]}))
            .is_err());
        // A draft-07 tuple (`items` as a list): its positions closed, its tail refused.
        let draft7 = json!({"type": "object", "properties": {"lines": {"$id": "urn:lines",
            "$schema": "http://json-schema.org/draft-07/schema#", "type": "array",
            "items": [{"type": "object", "properties": {"sku": {"type": "string"}}}]}}});
        let compiled = gate.compiled(&draft7).unwrap();
        assert!(compiled
            .validator
            .validate(&json!({"lines": [{"sku": "a"}]}))
            .is_ok());
        for undeclared in [
            json!({"lines": [{"sku": "a", "admin": true}]}),
            json!({"lines": [{"sku": "a"}, {"admin": true}]}),
        ] {
            assert!(
                compiled.validator.validate(&undeclared).is_err(),
                "{undeclared}"
            );
        }
        // A tail the schema declares with `unevaluatedItems` stays allowed.
        let tail = json!({"type": "object", "properties": {"lines": {"type": "array",
            "prefixItems": [{"type": "string"}], "unevaluatedItems": {"type": "string"}}}});
        let compiled = gate.compiled(&tail).unwrap();
        assert!(compiled
            .validator
            .validate(&json!({"lines": ["a", "b"]}))
            .is_ok());
        assert!(compiled
            .validator
            .validate(&json!({"lines": ["a", 2]}))
            .is_err());
        // … and closed like any schema: an object tail takes no undeclared member.
        let object_tail = json!({"type": "object", "properties": {"lines": {"type": "array",
            "prefixItems": [{"type": "string"}], "unevaluatedItems": {"type": "object",
                "properties": {"sku": {"type": "string"}}}}}});
        let compiled = gate.compiled(&object_tail).unwrap();
        assert!(compiled
            .validator
            .validate(&json!({"lines": ["a", {"sku": "b"}]}))
            .is_ok());
        assert!(compiled
            .validator
            .validate(&json!({"lines": ["a", {"admin": true}]}))
            .is_err());
        // A draft-07 tuple with a keyword draft 7 does not read is closed all the same, and
        // so is an `additionalItems` schema.
        for extra in [
            json!({"unevaluatedItems": false}),
            json!({"additionalItems": true}),
            json!({"additionalItems": {"type": "object", "properties": {"sku": {"type": "string"}}}}),
        ] {
            let mut lines = json!({"$id": "urn:lines7",
                "$schema": "http://json-schema.org/draft-07/schema#", "type": "array",
                "items": [{"type": "object", "properties": {"sku": {"type": "string"}}}]});
            for (k, v) in extra.as_object().unwrap() {
                lines[k] = v.clone();
            }
            let schema = json!({"type": "object", "properties": {"lines": lines}});
            let compiled = gate.compiled(&schema).unwrap();
            assert!(
                compiled
                    .validator
                    .validate(&json!({"lines": [{"sku": "a"}, {"admin": true}]}))
                    .is_err(),
                "{extra}"
            );
        }
    }

    /// Past the records budget, refusals are folded by reason alone, however many functions a
    /// sender names: the trail's growth stays bounded.
    #[test]
    fn folded_refusals_stay_one_per_reason_whatever_the_functions() {
        let mut windows = crate::audit::FailureWindows::with_budget(60_000, 4096, 4);
        let mut written = 0;
        for i in 0..1_000 {
            let failure = crate::audit::Failures::refused_call_for_tests(i, &format!("f{i}"));
            written += windows.observe(failure, 1_000).len();
        }
        written += windows.take_closed(61_000).len();
        assert!(written <= 4 + 1, "{written} records");
    }

    /// Closing a schema to undeclared arguments only ever refuses more: the rules of `not`,
    /// `if`/`then` and `oneOf` keep their meaning, in strict mode and for a runtime tool.
    #[test]
    fn closing_keeps_negated_conditional_and_exclusive_rules() {
        let mut config = GatewayConfig::new(url::Url::parse("http://127.0.0.1:9/").unwrap());
        config.strict = true;
        let gate = Gate::new(&config).unwrap();
        let negated = json!({"type": "object",
            "properties": {"role": {"type": "string"}, "note": {"type": "string"}},
            "not": {"properties": {"role": {"const": "admin"}}, "required": ["role"]}});
        let conditional = json!({"type": "object",
            "properties": {"kind": {"type": "string"}, "amount": {"type": "number"}},
            "if": {"properties": {"kind": {"const": "refund"}}, "required": ["kind"]},
            "then": {"properties": {"amount": {"maximum": 100}}}});
        let exclusive = json!({"type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "oneOf": [{"properties": {"a": {"type": "string"}}},
                      {"properties": {"b": {"type": "string"}}}]});
        // The same rules reached through `$ref`s into `$defs`, which are closed.
        let negated_ref = json!({"type": "object",
            "properties": {"role": {"type": "string"}, "note": {"type": "string"}},
            "not": {"$ref": "#/$defs/Admin"},
            "$defs": {"Admin": {"properties": {"role": {"const": "admin"}}, "required": ["role"]}}});
        let conditional_ref = json!({"type": "object",
            "properties": {"kind": {"type": "string"}, "amount": {"type": "number"}},
            "if": {"$ref": "#/$defs/Refund"},
            "then": {"properties": {"amount": {"maximum": 100}}},
            "$defs": {"Refund": {"properties": {"kind": {"const": "refund"}}, "required": ["kind"]}}});
        // A pattern that constrains a declared member (strict mode drops patternProperties).
        let patterned = json!({"type": "object", "properties": {"x-id": {"type": "string"}},
            "patternProperties": {"^x-": {"maxLength": 3}}});
        let cases = [
            (&negated_ref, json!({"role": "admin", "note": "x"}), false),
            (&negated_ref, json!({"role": "clerk", "note": "x"}), true),
            (
                &conditional_ref,
                json!({"kind": "refund", "amount": 5000}),
                false,
            ),
            (
                &conditional_ref,
                json!({"kind": "refund", "amount": 50}),
                true,
            ),
            (&patterned, json!({"x-id": "abcdef"}), false),
            (&patterned, json!({"x-id": "abc"}), true),
            (&negated, json!({"role": "admin", "note": "x"}), false),
            (&negated, json!({"role": "admin"}), false),
            (&negated, json!({"role": "clerk", "note": "x"}), true),
            (
                &conditional,
                json!({"kind": "refund", "amount": 5000}),
                false,
            ),
            (&conditional, json!({"kind": "refund", "amount": 50}), true),
            (&conditional, json!({"kind": "sale", "amount": 5000}), true),
            // Both branches match a value with `a` alone, as declared: exactly one must.
            (&exclusive, json!({"a": "x"}), false),
            (&negated, json!({"role": "clerk", "admin": true}), false),
        ];
        for (schema, args, ok) in cases {
            for (how, compiled) in [
                ("strict", gate.compiled(schema).unwrap()),
                ("runtime", compile(schema, true).unwrap()),
            ] {
                assert_eq!(
                    compiled.validator.validate(&args).is_ok(),
                    ok,
                    "{how}: {args} under {schema}"
                );
            }
        }
    }

    #[test]
    fn strict_mode_closes_schemas_that_open_themselves() {
        let mut config = GatewayConfig::new(url::Url::parse("http://127.0.0.1:9/").unwrap());
        config.strict = true;
        let gate = Gate::new(&config).unwrap();
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"},
            "inner": {"type": "object", "properties": {"b": {"type": "string"}}, "additionalProperties": true}},
            "additionalProperties": true, "patternProperties": {"^x": {}}});
        let compiled = gate.compiled(&schema).unwrap();
        assert!(compiled.validator.validate(&json!({"a": "ok"})).is_ok());
        assert!(compiled
            .validator
            .validate(&json!({"a": "ok", "admin": true}))
            .is_err());
        assert!(compiled.validator.validate(&json!({"x1": 1})).is_err());
        assert!(compiled
            .validator
            .validate(&json!({"inner": {"b": "ok", "c": 1}}))
            .is_err());
        // A reference the walk would not follow, and a type list, are closed or refused too.
        let elsewhere = json!({"$ref": "#/x", "x": {"type": "object", "properties": {"a": {"type": "string"}}}});
        assert!(gate.compiled(&elsewhere).is_err());
        let defs = json!({"$ref": "#/$defs/x", "$defs": {"x": {"type": "object", "properties": {"a": {"type": "string"}}}}});
        let compiled = gate.compiled(&defs).unwrap();
        assert!(compiled.validator.validate(&json!({"a": "ok"})).is_ok());
        assert!(compiled
            .validator
            .validate(&json!({"a": "ok", "admin": true}))
            .is_err());
        let nullable =
            json!({"type": "object", "properties": {"inner": {"type": ["object", "null"]}}});
        let compiled = gate.compiled(&nullable).unwrap();
        assert!(compiled.validator.validate(&json!({"inner": null})).is_ok());
        assert!(compiled.validator.validate(&json!({"inner": {}})).is_ok());
        assert!(compiled
            .validator
            .validate(&json!({"inner": {"admin": true}}))
            .is_err());
        config.strict = false;
        let open = Gate::new(&config).unwrap();
        assert!(open
            .compiled(&schema)
            .unwrap()
            .validator
            .validate(&json!({"a": "ok", "admin": true}))
            .is_ok());
        let huge = json!({"type": "object", "description": "x".repeat(MAX_SCHEMA_BYTES)});
        assert!(gate.compiled(&huge).is_err());
        // Why a schema is refused is logged: it never quotes the schema, whose `$ref` can
        // carry the upstream's credentials (cut at any length by a quoting message).
        let remote = json!({"type": "object", "properties": {"a": {"$ref": "https://agent:pw-in-ref-123456@127.0.0.1:9/s.json"}}});
        let invalid = json!({"type": "object", "properties": {"a": {"type": "pw-in-ref-123456"}}});
        for (gate, schema) in [
            (&gate, &remote),
            (&open, &remote),
            (&gate, &invalid),
            (&open, &invalid),
        ] {
            let why = gate.compiled(schema).err().expect("refused");
            assert!(!why.contains("pw-in-ref"), "{why}");
        }
    }

    /// A gate in front of an upstream nothing listens on (these tests never call it).
    fn unreachable_gate() -> Gate {
        Gate::new(&GatewayConfig::new(
            url::Url::parse("http://127.0.0.1:9/").unwrap(),
        ))
        .unwrap()
    }

    /// Prepared renders older than `PREPARED_FOR` are dropped at the next sweep, not kept
    /// until the cache's bound: a gateway's memory follows its recent calls.
    #[test]
    fn stale_prepared_renders_are_swept() {
        let gate = unreachable_gate();
        let stale = |gate: &Gate| {
            let mut prepared =
                Arc::into_inner(gate.assemble(RenderEntry::default()).unwrap()).expect("one owner");
            prepared.at = std::time::Instant::now()
                .checked_sub(PREPARED_FOR + std::time::Duration::from_secs(1))
                .expect("the clock is past the window");
            Arc::new(prepared)
        };
        for i in 0..SWEEP_EVERY - 1 {
            gate.keep(&format!("old-{i}"), stale(&gate));
        }
        assert_eq!(
            gate.prepared.lock().unwrap().renders.len() as u64,
            SWEEP_EVERY - 1
        );
        assert!(
            gate.prepared("old-0").is_none(),
            "stale renders are not served"
        );
        let fresh = gate.assemble(RenderEntry::default()).unwrap();
        gate.keep("fresh", fresh);
        let cache = gate.prepared.lock().unwrap();
        assert_eq!(
            cache.renders.len(),
            1,
            "the sweep dropped every stale render"
        );
        assert!(cache.renders.contains_key("fresh"));
        assert_eq!(cache.bytes, cache.renders["fresh"].bytes);
    }

    /// A render prepared from an entry read before a forget (a pay answer grew the entry
    /// meanwhile) is served to its call but not kept; one read after it is.
    #[test]
    fn a_render_read_before_a_forget_is_not_kept() {
        let gate = unreachable_gate();
        let since = gate.generation();
        gate.forget("s");
        assert!(gate.prepare("s", RenderEntry::default(), since).is_ok());
        assert!(gate.prepared("s").is_none(), "the old entry is not kept");
        let since = gate.generation();
        gate.prepare("s", RenderEntry::default(), since).unwrap();
        assert!(gate.prepared("s").is_some());
    }

    /// A render rebuilt from the session store is held to the rewrite's name rule: a stored
    /// entry naming a reserved (`__`), empty or over-long function is refused as a whole, so
    /// only names the rewrite could have kept ever reach the pipeline (and the metrics).
    #[test]
    fn a_stored_render_with_a_reserved_name_is_refused() {
        let gate = unreachable_gate();
        let entry = |name: &str| RenderEntry {
            functions: [(
                name.to_string(),
                FunctionEntry {
                    url: "http://127.0.0.1:9/swaig".to_string(),
                    schema: json!({"type": "object"}),
                },
            )]
            .into_iter()
            .collect(),
            ..RenderEntry::default()
        };
        assert!(gate.assemble(entry(&"f".repeat(64))).is_ok());
        // A render with fit names is prepared and kept under its scope…
        let since = gate.generation();
        gate.prepare("good", entry("get_balance"), since).unwrap();
        assert!(gate.prepared("good").is_some());
        for (i, name) in ["__other", "__pay", "", &"f".repeat(65)]
            .into_iter()
            .enumerate()
        {
            let why = gate.assemble(entry(name)).err().expect("refused");
            assert!(why.contains("reserved"), "{why}");
            // …one naming an unfit function is refused and kept nowhere.
            let scope = format!("bad-{i}");
            let since = gate.generation();
            assert!(gate.prepare(&scope, entry(name), since).is_err());
            assert!(gate.prepared(&scope).is_none(), "nothing kept for {name:?}");
        }
        assert!(
            gate.prepared("good").is_some(),
            "the good render is untouched"
        );
    }

    /// The compiled schemas are kept for at most their budget of schema text.
    #[test]
    fn compiled_schemas_hold_at_most_their_byte_budget() {
        let mut gate = unreachable_gate();
        gate.compiled_bytes = 100 * 1024;
        for i in 0..20 {
            let schema =
                json!({"type": "object", "description": format!("{i}{}", "x".repeat(30 * 1024))});
            gate.compiled(&schema).unwrap();
            gate.compiled(&schema).unwrap();
            let cache = gate.lock();
            assert!(cache.bytes <= gate.compiled_bytes, "{} bytes", cache.bytes);
            assert_eq!(
                cache.bytes,
                cache.schemas.keys().map(String::len).sum::<usize>()
            );
        }
    }

    /// However large the upstream's documents, the prepared renders hold at most their byte
    /// budget together; one larger than the budget alone is not kept (it is prepared again
    /// from the call's session at each call).
    #[test]
    fn prepared_renders_hold_at_most_their_byte_budget() {
        let mut gate = unreachable_gate();
        gate.prepared_bytes = 1024 * 1024;
        let entry = |functions: usize| RenderEntry {
            functions: (0..functions)
                .map(|i| {
                    let schema = json!({"type": "object", "description": "x".repeat(40 * 1024)});
                    let url = "http://127.0.0.1:9/swaig".to_string();
                    (format!("f{i}"), FunctionEntry { url, schema })
                })
                .collect(),
            ..RenderEntry::default()
        };
        for i in 0..40 {
            gate.keep(&format!("r{i}"), gate.assemble(entry(3)).unwrap());
            let cache = gate.prepared.lock().unwrap();
            assert!(
                cache.bytes <= gate.prepared_bytes,
                "{} bytes held",
                cache.bytes
            );
            assert_eq!(
                cache.bytes,
                cache.renders.values().map(|p| p.bytes).sum::<usize>()
            );
        }
        assert!(gate.prepared("r39").is_some(), "the newest render is kept");
        assert!(gate.prepared("r0").is_none(), "the oldest went for it");
        let huge = gate.assemble(entry(15)).unwrap();
        assert!(huge.bytes > gate.prepared_bytes);
        gate.keep("huge", huge);
        assert!(gate.prepared("huge").is_none());
        assert!(
            gate.prepared("r39").is_some() && gate.prepared("r38").is_some(),
            "a render over the whole budget takes nothing from the others"
        );
        // Forgetting a render gives its bytes back.
        gate.forget("r39");
        let cache = gate.prepared.lock().unwrap();
        assert_eq!(
            cache.bytes,
            cache.renders.values().map(|p| p.bytes).sum::<usize>()
        );
    }
}
