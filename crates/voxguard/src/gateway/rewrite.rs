//! The upstream's SWML, made the gateway's: every webhook URL in it points at the gateway,
//! with the gateway's Basic credentials and a function token minted for this call, and what
//! the upstream had there is kept server-side ([`RenderEntry`]) for forwarding.
//!
//! Owns which fields are webhooks — each SWAIG function's `web_hook_url` (or the
//! `SWAIG.defaults` one it inherits), `SWAIG.defaults.web_hook_url`, `post_prompt_url`, and a
//! `pay` verb's `payment_connector_url` and `status_url`, in every section (in `ai` and
//! `amazon_bedrock` verbs) and in a function result's SWML action — and the final checks that
//! none of the upstream's secrets, and no URL on the upstream's origin, is left anywhere in the
//! document. It must not talk to the upstream or the store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use voxguard_guard::KeyRing;
use voxguard_server::{with_query, AgentRoutes, RequestInfo};

use crate::agent::POST_PROMPT_FUNCTION;

/// The function name payment-connector tokens are bound to (the session part holds the render
/// and the `pay` verb's index).
pub(crate) const PAY_FUNCTION: &str = "__gateway_pay";
/// The function name payment-status tokens are bound to.
pub(crate) const PAY_STATUS_FUNCTION: &str = "__gateway_pay_status";

/// What a render keeps server-side for forwarding: the upstream's original URLs and each
/// function's declared schema. Stored in the call's session (so replicas share it) under
/// [`ENTRY_KEY`]; it never leaves the gateway.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct RenderEntry {
    /// Function name → where the upstream takes it and the schema it declared.
    pub(crate) functions: BTreeMap<String, FunctionEntry>,
    /// The upstream's `post_prompt_url`.
    pub(crate) post_prompt_url: Option<String>,
    /// The upstream's payment connector and status URLs, by `pay` verb.
    pub(crate) pay: Vec<PayEntry>,
    /// The secrets of upstream URLs the rewrite took out of the document without keeping them
    /// (`SWAIG.includes`, a `SWAIG.defaults` URL, left-out functions): not forwarded to, but
    /// still never served. At most [`MAX_REMOVED_SECRETS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) removed_secrets: Vec<String>,
}

/// One upstream function.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct FunctionEntry {
    /// The upstream's webhook URL (with whatever credentials and token it embedded).
    pub(crate) url: String,
    /// The `parameters` schema it declared.
    pub(crate) schema: Value,
}

/// One upstream `pay` verb's URLs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct PayEntry {
    pub(crate) connector: Option<String>,
    pub(crate) status: Option<String>,
    /// What the gateway's payment tokens name this entry by: random, so that two answers
    /// adding connectors at once (each writing the entry it read) can never hand one's token
    /// the other's connector — at worst the entry lost to the other write is not found. Empty
    /// in entries stored before ids, which tokens named by position.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) id: String,
}

impl PayEntry {
    /// Whether `other` names the same connector and status URLs.
    fn same_urls(&self, other: &PayEntry) -> bool {
        self.connector == other.connector && self.status == other.status
    }
}

impl RenderEntry {
    /// About the memory this entry takes (its URLs, secrets and schemas as `Value`s), with
    /// `schema_copies` copies of each schema (the entry's own, and any held elsewhere).
    pub(crate) fn memory_bytes(&self, schema_copies: usize) -> usize {
        const ITEM: usize = 64;
        let functions: usize = self
            .functions
            .iter()
            .map(|(name, f)| {
                ITEM + name.len()
                    + f.url.len()
                    + schema_copies * crate::gateway::value_bytes(&f.schema)
            })
            .sum();
        let pay: usize = self
            .pay
            .iter()
            .map(|p| {
                ITEM + p.id.len()
                    + p.connector.as_ref().map_or(0, String::len)
                    + p.status.as_ref().map_or(0, String::len)
            })
            .sum();
        let removed: usize = self.removed_secrets.iter().map(|s| ITEM + s.len()).sum();
        functions + pay + removed + self.post_prompt_url.as_ref().map_or(0, String::len)
    }

    /// The `pay` entry a payment token's session part names: by id, or by position for an
    /// entry stored before ids (tokens minted then).
    pub(crate) fn pay_named(&self, name: &str) -> Option<&PayEntry> {
        match self.pay.iter().find(|p| !p.id.is_empty() && p.id == name) {
            Some(found) => Some(found),
            // Positions are below `MAX_PAY` (16): never mistake an id for one.
            None if name.len() <= 2 => {
                let index: usize = name.parse().ok()?;
                self.pay.get(index).filter(|p| p.id.is_empty())
            }
            None => None,
        }
    }
}

/// The longest webhook URL a function may have (its own or the inherited default): each
/// kept function stores its URL in the render entry, so a long default URL inherited by every
/// function would make the entry hundreds of times the document.
pub(crate) const MAX_URL_BYTES: usize = 8 * 1024;

/// The functions left out of a render that are named (and logged) one by one; the rest are
/// counted, so a render of a million bad functions costs one line, not a million.
pub(crate) const DROPPED_NAMED: usize = 16;

/// The most functions one render keeps (the rest are left out and logged): what a hostile
/// upstream can make one render cost.
pub(crate) const MAX_FUNCTIONS: usize = 256;

/// The most payment connectors one render keeps (a `pay` verb naming the same URLs as an
/// earlier one shares its entry): the entry is stored with the call and read again for each
/// call, so an upstream cannot grow it without bound.
pub(crate) const MAX_PAY: usize = 16;

/// The most distinct secrets a render keeps from the URLs it removed (upstreams reuse one
/// password or token): past it the document is not served, as the rest could not be looked for.
pub(crate) const MAX_REMOVED_SECRETS: usize = 1024;

/// The session key a render's [`RenderEntry`] is stored under.
pub(crate) const ENTRY_KEY: &str = "__vg.gateway";

/// Everything needed to mint the gateway's URLs for one render.
pub(crate) struct Minter<'a> {
    pub(crate) keys: &'a KeyRing,
    pub(crate) info: &'a RequestInfo,
    pub(crate) routes: AgentRoutes,
    pub(crate) call_id: &'a str,
    pub(crate) render_id: &'a str,
    pub(crate) now_unix: u64,
}

impl Minter<'_> {
    fn url(&self, path: &str, function: &str, session: &str) -> String {
        let token = self
            .keys
            .mint_with_session_at(self.call_id, function, session, self.now_unix);
        self.info.webhook_url(path, &[("__token", &token)])
    }

    fn function_url(&self, function: &str) -> String {
        self.url(self.routes.swaig(), function, self.render_id)
    }
}

/// What the rewrite changed besides the URLs, for the operator's log.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    /// Functions left out of the document, with why: the first [`DROPPED_NAMED`] of them.
    pub(crate) dropped: Vec<(String, String)>,
    /// How many functions were left out in all.
    pub(crate) dropped_total: usize,
    /// `SWAIG.includes` entries removed (remote function lists are not proxied).
    pub(crate) includes_removed: usize,
    /// Why webhooks may be left pointing at the upstream (verbs nested deeper than the
    /// rewrite looks, more `pay` verbs than a render keeps): such a document is not served.
    pub(crate) unrewritten: Option<&'static str>,
    /// The secrets already in `RenderEntry::removed_secrets` (one lookup each, not a scan).
    removed_seen: std::collections::HashSet<String>,
    /// Whether `RenderEntry::removed_secrets` is full (the document is then not served).
    removed_overflow: bool,
}

/// A function's schema, compiled or not: the rewrite drops a function whose schema the gateway
/// could not enforce.
pub(crate) type SchemaCheck<'a> = &'a dyn Fn(&Value) -> Result<(), String>;

/// Rewrite the upstream's `document` in place; return what to keep server-side.
pub(crate) fn rewrite_document(
    document: &mut Value,
    minter: &Minter<'_>,
    entry: &mut RenderEntry,
    schema_ok: SchemaCheck<'_>,
    notes: &mut Notes,
) {
    let Some(sections) = document.get_mut("sections") else {
        return;
    };
    rewrite_verbs(sections, minter, entry, schema_ok, notes, 0);
}

/// How deep verbs are looked for (`cond`, `switch` and `execute` nest them); the document is
/// at most 4 MiB and serde_json stops at 128 levels anyway.
const MAX_DEPTH: usize = 64;

/// Rewrite every `ai`, `amazon_bedrock` and `pay` verb under `node`, at any depth: a verb nested in a `cond`
/// branch or a `switch` case is as much the platform's as one at the top of a section.
fn rewrite_verbs(
    node: &mut Value,
    minter: &Minter<'_>,
    entry: &mut RenderEntry,
    schema_ok: SchemaCheck<'_>,
    notes: &mut Notes,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        notes.unrewritten = Some("verbs nested deeper than the gateway rewrites");
        return;
    }
    match node {
        Value::Array(items) => {
            for item in items {
                rewrite_verbs(item, minter, entry, schema_ok, notes, depth + 1);
            }
        }
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match (key.as_str(), value) {
                    // Amazon Bedrock's agent verb takes the same `SWAIG` and `post_prompt_url`.
                    ("ai" | "amazon_bedrock", Value::Object(ai)) => {
                        rewrite_ai(ai, minter, entry, schema_ok, notes)
                    }
                    ("pay", Value::Object(pay)) => {
                        if !rewrite_pay(pay, minter, entry) {
                            notes.unrewritten =
                                Some("more payment connectors than a render keeps, or a connector URL over 8 KiB");
                        }
                    }
                    (_, value) => rewrite_verbs(value, minter, entry, schema_ok, notes, depth + 1),
                }
            }
        }
        _ => {}
    }
}

fn rewrite_ai(
    ai: &mut Map<String, Value>,
    minter: &Minter<'_>,
    entry: &mut RenderEntry,
    schema_ok: SchemaCheck<'_>,
    notes: &mut Notes,
) {
    if let Some(url) = ai.get("post_prompt_url").and_then(Value::as_str) {
        if let Some(earlier) = entry.post_prompt_url.replace(url.to_string()) {
            // Another `ai` verb's: no longer forwarded to, but still never served.
            keep_removed(&earlier, entry, notes);
        }
        let ours = minter.url(
            minter.routes.post_prompt(),
            POST_PROMPT_FUNCTION,
            minter.render_id,
        );
        ai.insert("post_prompt_url".into(), Value::String(ours));
    }
    let Some(swaig) = ai.get_mut("SWAIG").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(includes) = swaig.remove("includes") {
        notes.includes_removed += includes.as_array().map_or(1, Vec::len);
        let listed = match &includes {
            Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        for include in listed {
            if let Some(url) = include.get("url").and_then(Value::as_str) {
                keep_removed(url, entry, notes);
            }
        }
    }
    let default_url = swaig
        .get("defaults")
        .and_then(|d| d.get("web_hook_url"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(url) = &default_url {
        // Whether or not a function inherits it, it leaves the document.
        keep_removed(url, entry, notes);
    }
    if let Some(defaults) = swaig.get_mut("defaults").and_then(Value::as_object_mut) {
        if defaults.contains_key("web_hook_url") {
            // Tokenless: a function that reaches it is refused `token_missing`.
            let ours = with_query(minter.info.webhook_base(minter.routes.swaig()), &[]);
            defaults.insert("web_hook_url".into(), Value::String(ours));
        }
    }
    let Some(functions) = swaig.get_mut("functions").and_then(Value::as_array_mut) else {
        return;
    };
    functions.retain_mut(|function| {
        let Some(function) = function.as_object_mut() else {
            return true;
        };
        let name = function
            .get("function")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        // Borrowed until the function is kept: a long default URL is not copied for every
        // function that inherits it (a render of many functions would cost its square).
        let url = function
            .get("web_hook_url")
            .and_then(Value::as_str)
            .or(default_url.as_deref());
        let schema = function
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
        match (
            why_left_out(function, &name, &schema, url, entry, schema_ok),
            url,
        ) {
            (None, Some(url)) => {
                let url = url.to_string();
                function.insert(
                    "web_hook_url".into(),
                    Value::String(minter.function_url(&name)),
                );
                entry.functions.insert(name, FunctionEntry { url, schema });
                true
            }
            (why, _) => {
                let why = why.unwrap_or_else(|| "it has no webhook URL".into());
                notes.dropped_total += 1;
                if notes.dropped.len() < DROPPED_NAMED {
                    notes.dropped.push((name, why));
                }
                if let Some(own) = function.get("web_hook_url").and_then(Value::as_str) {
                    // Out of the document, but its secrets are still never served.
                    keep_removed(own, entry, notes);
                }
                false
            }
        }
    });
}

/// Whether the gateway may serve an upstream function called `name`: 1–64 bytes, not starting
/// with `__` (the runtime's own names, and the metrics' overflow label). Checked when a render
/// is rewritten and again when a render is rebuilt from the session store.
pub(crate) fn forwardable_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && !name.starts_with("__")
}

/// Why the upstream's function `name` (declaring `schema`; with a webhook URL of its own or
/// inherited, or not) is left out of the document, if it is. The checks run in this order, so
/// the reason logged is the first that applies, and a schema is compiled only for a function
/// that is otherwise kept.
fn why_left_out(
    function: &Map<String, Value>,
    name: &str,
    schema: &Value,
    url: Option<&str>,
    entry: &RenderEntry,
    schema_ok: SchemaCheck<'_>,
) -> Option<String> {
    if function.contains_key("data_map") {
        // Run by the platform itself: nothing of it would pass through the gateway (its
        // actions, transfers included, would never meet the allow-list).
        return Some("data_map functions run on the platform, past the gateway".into());
    }
    if entry.functions.len() >= MAX_FUNCTIONS {
        return Some(format!("a render keeps at most {MAX_FUNCTIONS} functions"));
    }
    match url {
        None => return Some("it has no webhook URL".into()),
        Some(url) if url.len() > MAX_URL_BYTES => {
            return Some(format!("its webhook URL is over {MAX_URL_BYTES} bytes"))
        }
        Some(_) => {}
    }
    if !forwardable_name(name) {
        return Some("its name is empty, too long or reserved (__)".into());
    }
    if entry.functions.contains_key(name) {
        return Some("it is declared twice".into());
    }
    schema_ok(schema)
        .err()
        .map(|why| format!("its parameters cannot be enforced: {why}"))
}

/// Point a `pay` verb's connector and status URLs at the gateway, keeping the upstream's.
/// `false` when the render already keeps [`MAX_PAY`] other connectors, or a URL is over
/// [`MAX_URL_BYTES`]: the verb's URLs are then removed, and the document or answer must not
/// be served.
pub(crate) fn rewrite_pay(
    pay: &mut Map<String, Value>,
    minter: &Minter<'_>,
    entry: &mut RenderEntry,
) -> bool {
    let connector = pay
        .get("payment_connector_url")
        .and_then(Value::as_str)
        .map(str::to_string);
    let status = pay
        .get("status_url")
        .and_then(Value::as_str)
        .map(str::to_string);
    if connector.is_none() && status.is_none() {
        return true;
    }
    if [&connector, &status]
        .into_iter()
        .flatten()
        .any(|url| url.len() > MAX_URL_BYTES)
    {
        // Kept with the call and read back at each call: not served, as past `MAX_PAY`.
        pay.remove("payment_connector_url");
        pay.remove("status_url");
        return false;
    }
    let kept = PayEntry {
        connector,
        status,
        id: String::new(),
    };
    // The same URLs share one entry (and tokens for it), so that repeating them costs nothing.
    let index = match entry.pay.iter().position(|p| p.same_urls(&kept)) {
        Some(index) => index,
        None if entry.pay.len() >= MAX_PAY => {
            // Not pointed at the gateway, so not served: the platform must not reach the
            // upstream's connector directly.
            pay.remove("payment_connector_url");
            pay.remove("status_url");
            return false;
        }
        None => {
            use rand::Rng as _;
            entry.pay.push(PayEntry {
                id: format!("{:032x}", rand::thread_rng().gen::<u128>()),
                ..kept.clone()
            });
            entry.pay.len() - 1
        }
    };
    let named = match &entry.pay[index].id {
        id if id.is_empty() => index.to_string(),
        id => id.clone(),
    };
    let session = format!("{}|{named}", minter.render_id);
    if kept.connector.is_some() {
        let ours = minter.url(minter.routes.pay(), PAY_FUNCTION, &session);
        pay.insert("payment_connector_url".into(), Value::String(ours));
    }
    if kept.status.is_some() {
        let ours = minter.url(minter.routes.pay_status(), PAY_STATUS_FUNCTION, &session);
        pay.insert("status_url".into(), Value::String(ours));
    }
    true
}

/// Query keys whose values are secrets: a key containing any of these (in any case)…
const SECRET_QUERY_KEYS: &[&str] = &[
    "token",
    "key",
    "secret",
    "sig",
    "auth",
    "password",
    "passwd",
    "pwd",
    "jwt",
    "credential",
    "bearer",
    "hmac",
    "passcode",
    "passphrase",
];

/// …or has `pass` as a whole word (`pass`, `api-pass`, `apiPass`; not `passthrough`), or is
/// exactly `code` (Azure Functions' function key; not `promo_code`).
fn secret_query_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    if lower == "code" || SECRET_QUERY_KEYS.iter().any(|k| lower.contains(k)) {
        return true;
    }
    // Words: split at anything not a letter or digit, and where camelCase turns upper.
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in key.chars() {
        let boundary = !c.is_ascii_alphanumeric() || (c.is_ascii_uppercase() && previous_lower);
        if boundary && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        if c.is_ascii_alphanumeric() {
            word.push(c.to_ascii_lowercase());
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    words.push(word);
    words.iter().any(|w| w == "pass")
}

/// Keep the secrets of `url`, which the rewrite took out of the document, in
/// `entry.removed_secrets`; past [`MAX_REMOVED_SECRETS`] the document is not served.
fn keep_removed(url: &str, entry: &mut RenderEntry, notes: &mut Notes) {
    if notes.removed_overflow {
        return;
    }
    let mut found = Vec::new();
    url_credentials(url, &mut found);
    for secret in found {
        // Kept by its prefix only, as it is looked for (a removed URL's credentials can be
        // megabytes long; the session and the finder hold 256 bytes of each).
        let secret = secret_prefix(&secret).to_string();
        if secret.len() < MIN_SECRET || !notes.removed_seen.insert(secret.clone()) {
            continue;
        }
        if entry.removed_secrets.len() >= MAX_REMOVED_SECRETS {
            notes.removed_overflow = true;
            notes.unrewritten =
                Some("more distinct credentials in removed URLs than a render keeps");
            return;
        }
        entry.removed_secrets.push(secret);
    }
}

/// Secrets shorter than this are not looked for (they would match ordinary text).
const MIN_SECRET: usize = 4;

/// The bytes of a secret that are kept and looked for: its start, long enough to be unique.
const SECRET_PREFIX: usize = 256;

/// The first [`SECRET_PREFIX`] bytes of `secret` (cut at a character boundary).
fn secret_prefix(secret: &str) -> &str {
    voxguard_guard::redact::prefix(secret, SECRET_PREFIX)
}

/// Every spelling of a credential pair a document could carry: the password (or
/// `user:password` when the password alone is too short to look for), and the pair as a Basic
/// `Authorization` value (without its `=` padding, which a padded value contains). A user
/// without a password counts as a key (an API key given as the user name) when it is at least
/// 8 characters long.
fn credential_forms(user: &str, password: &str, out: &mut Vec<String>) {
    if password.is_empty() {
        if user.len() < 8 {
            return;
        }
        out.push(user.to_string());
    } else if password.len() >= MIN_SECRET {
        out.push(password.to_string());
    } else if !user.is_empty() {
        out.push(format!("{user}:{password}"));
    }
    let header = voxguard_guard::basic_authorization(user, password);
    let encoded = header.trim_start_matches("Basic ").trim_end_matches('=');
    out.push(encoded.to_string());
}

/// [`credential_forms`] of `user` and `password` both as given and percent-encoded the way
/// a URL's userinfo carries them (`p@ss` is written `p%40ss` there).
fn credential_spellings(user: &str, password: &str, out: &mut Vec<String>) {
    credential_forms(user, password, out);
    if let Ok(mut url) = url::Url::parse("http://host/") {
        if url.set_username(user).is_ok() && url.set_password(Some(password)).is_ok() {
            let (user, password) = (url.username(), url.password().unwrap_or(""));
            credential_forms(user, password, out);
        }
    }
}

/// The secrets one upstream URL carries besides the URL itself: its credentials (as written
/// and decoded, in every form of [`credential_forms`]) and the values of token-like query keys
/// (as written and decoded).
fn url_credentials(text: &str, out: &mut Vec<String>) {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let Ok(url) = url::Url::parse(text) else {
        return;
    };
    let (user, password) = (url.username(), url.password().unwrap_or(""));
    credential_forms(user, password, out);
    credential_forms(&decode(user), &decode(password), out);
    for pair in url.query().unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if value.len() >= 8 && secret_query_key(&decode(key)) {
            out.push(value.to_string());
            out.extend(
                url::form_urlencoded::parse(pair.as_bytes()).map(|(_, value)| value.into_owned()),
            );
        }
    }
}

/// The upstream's secrets a rendered document must not contain: the configured credentials
/// (user, password), every original URL kept in `entry` with its [`url_credentials`], and the
/// credentials of the URLs the rewrite removed.
pub(crate) fn secrets(entry: &RenderEntry, configured: Option<(&str, &str)>) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Some((user, password)) = configured {
        credential_spellings(user, password, &mut secrets);
    }
    let urls = entry
        .functions
        .values()
        .map(|f| f.url.as_str())
        .chain(entry.post_prompt_url.as_deref())
        .chain(
            entry
                .pay
                .iter()
                .flat_map(|p| p.connector.iter().chain(p.status.iter()))
                .map(String::as_str),
        );
    for text in urls {
        url_credentials(text, &mut secrets);
        secrets.push(text.to_string());
    }
    secrets.extend(entry.removed_secrets.iter().cloned());
    secrets.retain(|s| s.len() >= MIN_SECRET);
    secrets.sort();
    secrets.dedup();
    secrets
}

/// The upstream's secrets, compiled once to look for all of them in one pass over a text
/// (Aho-Corasick): a document with hundreds of functions costs O(size) to check.
pub(crate) struct SecretFinder(Option<aho_corasick::AhoCorasick>);

impl SecretFinder {
    /// The heap memory of the automaton.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, aho_corasick::AhoCorasick::memory_usage)
    }

    /// A finder for `secrets` (none: finds nothing). An automaton too large to build becomes
    /// one that matches every text (the empty pattern): fail closed.
    pub(crate) fn new(secrets: &[String]) -> Self {
        if secrets.is_empty() {
            return Self(None);
        }
        // Each looked for by its first SECRET_PREFIX bytes: whatever holds a secret holds
        // them (so nothing is missed), and the automaton stays small however long the
        // upstream made its credentials.
        let secrets: Vec<&str> = secrets.iter().map(|s| secret_prefix(s)).collect();
        // A contiguous NFA, not the DFA the builder picks for a few patterns: one finder is
        // built per render and kept while its calls last, and the DFA of a handful of
        // 200-character tokens took about 400 KiB (BENCHMARKS.md, gateway); the NFA is a
        // small fraction of that and still one pass over the text.
        let finder = aho_corasick::AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
            .build(&secrets);
        match finder {
            Ok(finder) => Self(Some(finder)),
            Err(_) => Self(aho_corasick::AhoCorasick::new([""]).ok()),
        }
    }

    /// `text` cut to 64 characters for a log line, or a placeholder when it holds a secret: what
    /// the upstream names (an action, a function) is logged before its answer is checked.
    pub(crate) fn loggable(&self, text: &str) -> String {
        match &self.0 {
            Some(finder) if finder.is_match(text) => "<holds an upstream secret>".to_string(),
            _ => text.chars().take(64).collect(),
        }
    }

    /// The JSON path of the first string, number or key in `value` that contains a secret, if any;
    /// a key that holds one is shown as `<key>`, since the path is logged.
    pub(crate) fn find(&self, value: &Value) -> Option<String> {
        let finder = self.0.as_ref()?;
        first_path(
            value,
            &|text| finder.is_match(text),
            // A numeric password or token sent as a JSON number (8 digits or more: a shorter
            // one would match ordinary amounts and numbers).
            &|number| {
                finder
                    .find_overlapping_iter(number.to_string().as_str())
                    .any(|found| found.len() >= 8)
            },
        )
    }
}

/// The JSON path of the first string or key in `value` for which `text` holds, or number for
/// which `number` does; a key is shown as `<key>` (the path is logged, and the key may be the
/// very thing looked for).
fn first_path(
    value: &Value,
    text: &dyn Fn(&str) -> bool,
    number: &dyn Fn(&serde_json::Number) -> bool,
) -> Option<String> {
    fn walk(
        value: &Value,
        path: &mut String,
        text: &dyn Fn(&str) -> bool,
        number: &dyn Fn(&serde_json::Number) -> bool,
    ) -> Option<String> {
        match value {
            Value::String(s) => text(s).then(|| path.clone()),
            Value::Number(n) => number(n).then(|| path.clone()),
            Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                let found = walk(item, path, text, number);
                path.truncate(len);
                found
            }),
            Value::Object(map) => map.iter().find_map(|(key, item)| {
                if text(key) {
                    return Some(format!("{path}/<key>"));
                }
                let len = path.len();
                path.push('/');
                path.push_str(key);
                let found = walk(item, path, text, number);
                path.truncate(len);
                found
            }),
            Value::Null | Value::Bool(_) => None,
        }
    }
    walk(value, &mut String::new(), text, number)
}

/// The JSON path of the first string (or key) in `value` holding a URL on `origin`'s host and
/// port, the upstream's: after the rewrite, such a URL can only be one the gateway does not
/// proxy — a `transfer`/`execute` destination the platform would fetch SWML from, an
/// `ai_sidecar` or `request` URL, a webhook inside an SWML document given as a string — through
/// which the platform would reach the upstream without the gateway's checks. URLs are found
/// wherever they stand in a text, read as a URL parser reads them: any scheme (`ws:` reaches
/// the same socket as `http:`), `http:/host` and `http:\\host`, a tab or newline inside,
/// JSON escapes (`\/`, `\u002f`, nested documents) decoded, a trailing dot on the host. Each
/// costs one parse of its scheme and authority, so a text costs O(its length).
pub(crate) fn url_on_origin(value: &Value, origin: &url::Origin) -> Option<String> {
    let url::Origin::Tuple(scheme, host, port) = origin else {
        return None;
    };
    let host = host.to_string();
    let host = host.trim_end_matches('.');
    let upstream = Upstream {
        scheme,
        host,
        port: *port,
    };
    first_path(value, &|text| text_names(text, &upstream), &|_| false)
}

/// Whether `text` holds a URL whose host is `host` and whose port is `port`.
///
/// At each scheme's colon, the authority runs to the next `/`, `?`, `#` or `\\`. Two readings
/// of it are tried: up to the first character no host holds (a quote, a space: the URL ended
/// there, as in JSON held in a string), and after its last `@` (user-info may hold such
/// characters, which a URL parser percent-encodes). The scans are cached while the candidates
/// stay in one authority, so a text costs O(its length).
/// The upstream's origin as [`text_names`] compares with it.
struct Upstream<'a> {
    /// Its scheme: how a URL whose scheme is an SWML variable (`%{…}://`) is read.
    scheme: &'a str,
    host: &'a str,
    port: u16,
}

fn text_names(text: &str, upstream: &Upstream<'_>) -> bool {
    // Every reading the platform may make of it: as it stands (where `\` after an authority is
    // a path separator to a URL parser), and after each round of JSON decoding (documents held
    // in strings). Text still holding escapes after the last round is taken to name the
    // upstream (fail closed).
    let mut level = std::borrow::Cow::Borrowed(text);
    for round in 0..=MAX_UNESCAPES {
        let reading = without_tabs_and_breaks(&level);
        if reading_names(&reading, upstream) {
            return true;
        }
        match unescape_once(&level) {
            None => return false,
            // Only a colon, or an escape that may decode to one, can still make a URL.
            Some(_) if round == MAX_UNESCAPES => {
                return level.contains(':') || level.contains("\\u")
            }
            Some(next) => level = std::borrow::Cow::Owned(next),
        }
    }
    false
}

/// How many rounds of JSON decoding [`text_names`] reads through (documents nested in strings).
const MAX_UNESCAPES: usize = 4;

/// [`text_names`] on one reading of a text.
fn reading_names(text: &str, upstream: &Upstream<'_>) -> bool {
    /// Longer than any host and port: not parsed.
    const MAX_HOST: usize = 300;
    let (host, port) = (upstream.host, upstream.port);
    let bytes = text.as_bytes();
    let ends_host = |c: char| {
        matches!(c, '"' | '\'' | '<' | '>' | '`' | '{' | '}' | '|' | '^')
            || c.is_whitespace()
            || c.is_control()
    };
    let names = |scheme: &str, authority: &str| {
        if authority.is_empty() {
            return false;
        }
        if authority.len() > MAX_HOST {
            return long_authority_may_name(authority, host);
        }
        let Ok(url) = url::Url::parse(&format!("{scheme}://{authority}/")) else {
            return false;
        };
        let same_host = match url.host() {
            Some(url::Host::Ipv6(address)) => {
                address
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.to_string() == host)
                    || url.host_str().is_some_and(|h| h == host)
            }
            Some(_) => url
                .host_str()
                .is_some_and(|h| h.trim_end_matches('.').eq_ignore_ascii_case(host)),
            None => false,
        };
        same_host && url.port_or_known_default() == Some(port)
    };
    // The current authority: where it ends, its last `@`, and whether the reading after that
    // `@` names the upstream, for each scheme it was read as (each at most once per
    // authority: the scheme gives the default port).
    let mut region_end = 0;
    let mut after_at: Option<(usize, usize)> = None;
    let mut after_at_named: Vec<(String, bool)> = Vec::new();
    // The first character that ends a host, at or after the last place looked from; the last
    // `@` before it (the user-info of a reading cut there); and whether the host after that
    // `@` names the upstream, per scheme and reading end.
    let mut next_end = 0;
    let mut direct_at: Option<usize> = None;
    let mut direct_named: Vec<(String, usize, bool)> = Vec::new();
    let mut from = 0;
    while let Some(colon) = text[from..].find(':').map(|i| from + i) {
        let scheme_start = bytes[from..colon]
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
            .map_or(from, |i| from + i + 1);
        let mut scheme = text[scheme_start..colon].to_ascii_lowercase();
        let after = &text[colon + 1..];
        if scheme.is_empty() && colon > 0 && bytes[colon - 1] == b'}' && after.starts_with("//") {
            // A scheme the platform fills in from an SWML variable (`%{params.s}://…`): read
            // as the upstream's own.
            scheme = upstream.scheme.to_string();
        }
        let special = matches!(scheme.as_str(), "http" | "https" | "ws" | "wss");
        // A special scheme takes its authority after any number of `/` and `\\`; any other
        // after `//`.
        let slashes = after
            .bytes()
            .take_while(|b| *b == b'/' || (special && *b == b'\\'))
            .count();
        if scheme.is_empty() || !(special || slashes >= 2) {
            from = colon + 1;
            continue;
        }
        // Parsed as the scheme's own URL when special (its default port), else as http.
        let parse_as = if special { scheme.as_str() } else { "http" };
        let start = colon + 1 + slashes;
        if start >= region_end {
            region_end = text[start..]
                .find(['/', '?', '#', '\\'])
                .map_or(text.len(), |i| start + i);
            after_at = text[start..region_end].rfind('@').map(|i| {
                let host_start = start + i + 1;
                let host_end = text[host_start..region_end]
                    .find(ends_host)
                    .map_or(region_end, |j| host_start + j);
                (host_start, host_end)
            });
            after_at_named.clear();
        }
        if let Some((host_start, host_end)) = after_at.filter(|(at, _)| *at > start) {
            let named = match after_at_named.iter().find(|(s, _)| s == parse_as) {
                Some((_, named)) => *named,
                None => {
                    let named = names(parse_as, &text[host_start..host_end]);
                    after_at_named.push((parse_as.to_string(), named));
                    named
                }
            };
            if named {
                return true;
            }
        }
        if next_end < start {
            next_end = text[start..]
                .find(ends_host)
                .map_or(text.len(), |i| start + i);
            direct_at = text[start..next_end].rfind('@').map(|i| start + i);
            direct_named.clear();
        }
        let reading_end = next_end.min(region_end);
        // An authority the platform fills in from an SWML variable (`http://%{params.h}/`,
        // `http://host:%{p}/`) could be anything, the upstream's included: fail closed.
        if text[start..].starts_with("%{")
            || (reading_end > start
                && bytes[reading_end - 1] == b'%'
                && bytes.get(reading_end) == Some(&b'{'))
        {
            return true;
        }
        if reading_end - start > MAX_HOST {
            // Too long to parse whole: its host is what follows its last `@`, if it has one.
            if let Some(at) = direct_at.filter(|at| (start..reading_end).contains(at)) {
                let named = match direct_named
                    .iter()
                    .find(|(s, end, _)| s == parse_as && *end == reading_end)
                {
                    Some((_, _, named)) => *named,
                    None => {
                        let named = names(parse_as, &text[at + 1..reading_end]);
                        direct_named.push((parse_as.to_string(), reading_end, named));
                        named
                    }
                };
                if named {
                    return true;
                }
            }
        }
        if names(parse_as, &text[start..reading_end]) {
            return true;
        }
        // The colons inside the authority (a port, a password) are looked at in turn.
        from = start.max(colon + 1);
    }
    false
}

/// Whether an authority too long to parse here (over 300 bytes: no host and port is this
/// long) may still name the upstream's `host`: a URL parser reads any number of leading zeros
/// in a port or an IP number, and IDNA drops ignorable characters and maps compatibility forms
/// (`ｈ`, `𝐡`) to ASCII, so it may — and is taken to (fail closed) — unless something in it
/// rules a host and port out: user-info (its host is the reading after the last `@`, looked at
/// on its own), a second `:` outside brackets or a second bracket, or a character that cannot
/// become part of an ASCII host (kana, ideographs: text that merely runs on after a URL). The
/// scan stops at the first of those, so the candidates of one text, whose own colons and
/// brackets end each other's scans, cost O(its length) together. An upstream whose host is not
/// ASCII (an IDN) is matched by any long authority without user-info.
fn long_authority_may_name(authority: &str, host: &str) -> bool {
    let ascii_host = host.is_ascii() && !host.contains("xn--");
    let (mut colons, mut opened, mut closed, mut inside) = (0, 0, 0, false);
    for c in authority.chars() {
        match c {
            '@' => return false,
            '[' => {
                opened += 1;
                inside = true;
            }
            ']' => {
                closed += 1;
                inside = false;
            }
            ':' if !inside => colons += 1,
            _ if ascii_host && !voxguard_guard::sanitize::may_fold_to_ascii(c) => return false,
            _ => {}
        }
        if colons > 1 || opened > 1 || closed > 1 {
            return false;
        }
    }
    true
}

/// `text` as a URL parser meets it: tabs and line breaks dropped.
fn without_tabs_and_breaks(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\t', '\n', '\r']) {
        std::borrow::Cow::Owned(text.replace(['\t', '\n', '\r'], ""))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// One round of JSON string decoding of `text` — `\/`, `\"`, `\\`, `\uXXXX` (a surrogate pair
/// as its one character, a lone surrogate as U+FFFD) and the other escapes (`\n`, `\t`, … as
/// nothing: a URL parser drops them) — or `None` when it holds nothing to decode. A backslash
/// before anything else is kept (a special scheme reads it as `/`).
fn unescape_once(text: &str) -> Option<String> {
    if !text.contains('\\') {
        return None;
    }
    let hex4 = |chars: &mut std::str::Chars<'_>| -> Option<u32> {
        let hex: String = chars.by_ref().take(4).collect();
        u32::from_str_radix(&hex, 16).ok()
    };
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.clone().next() {
            Some('u') => {
                chars.next();
                let Some(unit) = hex4(&mut chars) else {
                    continue;
                };
                let decoded = match unit {
                    0xD800..=0xDBFF => {
                        // A high surrogate: the pair's character, when a low one follows.
                        let mut ahead = chars.clone();
                        let low = (ahead.next() == Some('\\') && ahead.next() == Some('u'))
                            .then(|| hex4(&mut ahead))
                            .flatten()
                            .filter(|low| (0xDC00..=0xDFFF).contains(low));
                        match low {
                            Some(low) => {
                                chars = ahead;
                                char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                            }
                            None => None,
                        }
                    }
                    unit => char::from_u32(unit),
                };
                out.push(decoded.unwrap_or('\u{FFFD}'));
            }
            Some('n' | 't' | 'r' | 'b' | 'f') => {
                chars.next();
            }
            Some(escaped @ ('/' | '"' | '\\')) => {
                chars.next();
                out.push(escaped);
            }
            _ => out.push('\\'),
        }
    }
    (out != text).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;
    use voxguard_guard::{BasicCredentials, SecretKey};

    fn info() -> RequestInfo {
        RequestInfo::new(
            "127.0.0.1:1".parse().unwrap(),
            url::Url::parse("https://gw.example.com/").unwrap(),
            Arc::new(BasicCredentials::new("gw", "gateway-password-1234")),
            None,
        )
    }

    /// Rewrite [`upstream_doc`] for call `call-1`, render `r1`, checking schemas with `check`.
    fn rewritten(keys: &KeyRing, check: SchemaCheck<'_>) -> (Value, RenderEntry, Notes) {
        let info = info();
        let minter = Minter {
            keys,
            info: &info,
            routes: AgentRoutes::new("/"),
            call_id: "call-1",
            render_id: "r1",
            now_unix: 1_000,
        };
        let mut doc = upstream_doc();
        let mut entry = RenderEntry::default();
        let mut notes = Notes::default();
        rewrite_document(&mut doc, &minter, &mut entry, check, &mut notes);
        (doc, entry, notes)
    }

    fn upstream_doc() -> Value {
        json!({"version": "1.0.0", "sections": {"main": [
            {"answer": {}},
            {"ai": {
                "prompt": {"text": "hi"},
                "post_prompt_url": "http://agent:s3cret-pass@127.0.0.1:5000/post_prompt",
                "SWAIG": {
                    "defaults": {"web_hook_url": "http://agent:s3cret-pass@127.0.0.1:5000/swaig"},
                    "includes": [{"url": "http://agent:s3cret-pass@127.0.0.1:5000/other", "functions": ["x"]}],
                    "functions": [
                        {"function": "lookup", "description": "d", "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
                         "web_hook_url": "http://agent:s3cret-pass@127.0.0.1:5000/swaig?__token=upstream-token-abcdef"},
                        {"function": "inherits", "description": "d"},
                        {"function": "weather", "description": "d", "data_map": {"webhooks": []}},
                        {"function": "__post_prompt", "description": "sneaky"}
                    ]
                }
            }},
            {"pay": {"payment_connector_url": "http://agent:s3cret-pass@127.0.0.1:5000/pay", "status_url": "http://127.0.0.1:5000/pay/status"}}
        ]}})
    }

    #[test]
    fn every_webhook_points_at_the_gateway_and_no_upstream_secret_is_left() {
        let keys = KeyRing::new(SecretKey::generate());
        let (doc, entry, notes) = rewritten(&keys, &|_| Ok(()));
        assert_eq!(entry.functions.len(), 2, "{entry:?}");
        assert!(
            notes.dropped.iter().any(|(name, _)| name == "weather"),
            "data_map functions are left out"
        );
        assert!(entry.functions["lookup"]
            .url
            .contains("upstream-token-abcdef"));
        assert!(entry.functions["inherits"].url.ends_with("/swaig"));
        assert_eq!(notes.includes_removed, 1);
        assert_eq!(notes.dropped.len(), 2);
        assert_eq!(entry.pay.len(), 1);
        let secrets = secrets(&entry, Some(("configured-user", "configured-pass")));
        assert!(secrets.iter().any(|s| s == "s3cret-pass"));
        assert!(secrets.iter().any(|s| s == "upstream-token-abcdef"));
        assert_eq!(SecretFinder::new(&secrets).find(&doc), None, "{doc:#}");
        let text = doc.to_string();
        assert!(!text.contains("5000"), "{text}");
        let functions = &doc["sections"]["main"][1]["ai"]["SWAIG"]["functions"];
        let url = functions[0]["web_hook_url"].as_str().unwrap();
        assert!(
            url.starts_with("https://gw:gateway-password-1234@gw.example.com/swaig?__token="),
            "{url}"
        );
        let token = url.split("__token=").nth(1).unwrap();
        assert_eq!(
            keys.verify_with_session_at(token, "call-1", "lookup", 1_000)
                .unwrap(),
            "r1"
        );
        assert!(
            functions[2].get("web_hook_url").is_none(),
            "data_map functions stay as they are"
        );
    }

    #[test]
    fn verbs_nested_in_cond_and_switch_are_rewritten_too() {
        let keys = KeyRing::new(SecretKey::generate());
        let info = info();
        let minter = Minter {
            keys: &keys,
            info: &info,
            routes: AgentRoutes::new("/"),
            call_id: "c",
            render_id: "r",
            now_unix: 1,
        };
        let mut doc = json!({"sections": {"main": [{"cond": [{"when": "true", "then": [
            {"pay": {"payment_connector_url": "http://u:pw-nested-1@up/pay"}},
            {"switch": {"variable": "x", "case": {"a": [{"ai": {"post_prompt_url": "http://u:pw-nested-1@up/pp"}}]}}}
        ]}]}]}});
        let mut entry = RenderEntry::default();
        rewrite_document(
            &mut doc,
            &minter,
            &mut entry,
            &|_| Ok(()),
            &mut Notes::default(),
        );
        assert_eq!(entry.pay.len(), 1);
        assert!(entry.post_prompt_url.is_some());
        assert_eq!(
            SecretFinder::new(&secrets(&entry, None)).find(&doc),
            None,
            "{doc}"
        );
    }

    #[test]
    fn every_spelling_of_an_upstream_secret_is_looked_for() {
        let keys = KeyRing::new(SecretKey::generate());
        let mut doc = json!({"sections": {"main": [{"ai": {"SWAIG": {
            "defaults": {"web_hook_url": "https://dflt:default-pass-77@up.example.com/unused"},
            "includes": [{"url": "https://inc:include-pass-88@up.example.com/list", "functions": ["x"]}],
            "functions": [
                {"function": "lookup", "web_hook_url": "https://agent:s3cret-pass@up.example.com/swaig?token=ab+cD/ef%3D%3D9xYz"},
                {"function": "__reserved", "web_hook_url": "https://up.example.com/swaig?api_key=dropped-key-123456"},
                {"function": "keyed", "web_hook_url": "https://sk_live_9f8e7d6c@up.example.com/swaig"}
            ]
        }}}]}});
        let (entry, notes) = rewrite_all(&mut doc, &keys);
        assert_eq!(notes.unrewritten, None);
        assert_eq!(entry.functions.len(), 2, "{entry:?}");
        let finder = SecretFinder::new(&secrets(&entry, Some(("cfg-user", "cfg-password-1"))));
        assert_eq!(
            finder.find(&doc),
            None,
            "the rewritten document is clean: {doc:#}"
        );
        let basic = |user: &str, password: &str| {
            voxguard_guard::basic_authorization(user, password).to_string()
        };
        let unpadded = basic("agent", "s3cret-pass")
            .trim_end_matches('=')
            .to_string();
        let leaks = [
            // A query token as written, and decoded.
            json!({"debug_webhook_url": "https://up.example.com/dbg?token=ab+cD/ef%3D%3D9xYz"}),
            json!({"note": "ab cD/ef==9xYz"}),
            // Credentials as a Basic header value (padded or not) and as the pair.
            json!({"headers": {"Authorization": basic("agent", "s3cret-pass")}}),
            json!({"headers": {"Authorization": unpadded}}),
            json!({"headers": {"Authorization": basic("cfg-user", "cfg-password-1")}}),
            json!({"pair": "agent:s3cret-pass"}),
            // From URLs the rewrite removed: a left-out function, the defaults, the includes.
            json!({"url": "https://up.example.com/other?k=dropped-key-123456"}),
            json!({"x": "default-pass-77"}),
            json!({"x": "include-pass-88"}),
            // A key given as the user name.
            json!({"x": "sk_live_9f8e7d6c"}),
        ];
        for leak in leaks {
            assert!(finder.find(&leak).is_some(), "not found: {leak}");
        }
        let numeric = SecretFinder::new(&secrets(&RenderEntry::default(), Some(("u", "31415926"))));
        assert_eq!(
            numeric.find(&json!({"pin": 31415926})).as_deref(),
            Some("/pin")
        );
        // Stored with the call (replicas read it back), the removed secrets survive.
        let stored: RenderEntry =
            serde_json::from_value(serde_json::to_value(&entry).unwrap()).unwrap();
        assert_eq!(stored, entry);
        assert!(stored
            .removed_secrets
            .iter()
            .any(|s| s == "include-pass-88"));
    }

    #[test]
    fn ordinary_query_values_and_numbers_are_not_taken_for_secrets() {
        let keys = KeyRing::new(SecretKey::generate());
        let url = "https://up.example.com/swaig?session_id=3f2a9c1e-77aa&promo_code=SUMMER2024&passthrough=abcdefgh12&call_id=c-123456789&api-pass=pass-word-1234";
        let mut doc = json!({"sections": {"main": [{"ai": {
            "prompt": {"text": "Offer SUMMER2024; session 3f2a9c1e-77aa; ref abcdefgh12; call c-123456789; total 4321.5"},
            "SWAIG": {"functions": [{"function": "lookup", "web_hook_url": url}]}
        }}]}});
        let (entry, _) = rewrite_all(&mut doc, &keys);
        let finder = SecretFinder::new(&secrets(&entry, Some(("agent", "cfg-password-77"))));
        assert_eq!(finder.find(&doc), None, "{doc:#}");
        // A short numeric password is looked for in text, not in every number.
        let short = SecretFinder::new(&secrets(&entry, Some(("agent", "4321"))));
        assert_eq!(short.find(&json!({"amount": 4321, "zip": 43210})), None);
        assert!(short.find(&json!({"note": "pin 4321"})).is_some());
        // A long numeric secret is found even where a short one matches inside it first.
        let both = SecretFinder::new(&["1415".to_string(), "31415926".to_string()]);
        assert!(both.find(&json!({"n": 31415926})).is_some());
        assert_eq!(both.find(&json!({"n": 14150})), None);
        assert!(
            finder.find(&json!({"x": "pass-word-1234"})).is_some(),
            "`pass` as a word of the key"
        );
        for (key, secret) in [
            ("code", true),
            ("apiPass", true),
            ("userPass", true),
            ("passcode", true),
            ("passphrase", true),
            ("api_key", true),
            ("promo_code", false),
            ("zipcode", false),
            ("passthrough", false),
            ("session_id", false),
            ("call_id", false),
            ("compass", false),
        ] {
            assert_eq!(secret_query_key(key), secret, "{key}");
        }
    }

    #[test]
    fn secrets_of_replaced_or_single_urls_and_encoded_credentials_are_found() {
        let keys = KeyRing::new(SecretKey::generate());
        let mut doc = json!({"sections": {"main": [
            {"ai": {"post_prompt_url": "https://u:first-pp-pass@up.example.com/pp"}},
            {"ai": {"post_prompt_url": "https://u:second-pp-pass@up.example.com/pp",
                    "SWAIG": {"includes": {"url": "https://i:single-include-pass@up.example.com/l"}}}}
        ]}});
        let (entry, notes) = rewrite_all(&mut doc, &keys);
        assert_eq!(notes.includes_removed, 1);
        let finder = SecretFinder::new(&secrets(&entry, Some(("agent", "p@ss/w0rd-9"))));
        assert_eq!(finder.find(&doc), None, "{doc:#}");
        for leak in [
            json!({"x": "first-pp-pass"}),
            json!({"x": "second-pp-pass"}),
            json!({"x": "single-include-pass"}),
            json!({"debug_webhook_url": "https://agent:p%40ss%2Fw0rd-9@up.example.com/dbg"}),
        ] {
            assert!(finder.find(&leak).is_some(), "not found: {leak}");
        }
    }

    #[test]
    fn urls_on_the_upstreams_origin_are_found_wherever_they_stand() {
        let origin = url::Url::parse("http://127.0.0.1:3000/agent")
            .unwrap()
            .origin();
        let found = |text: &str| url_on_origin(&json!({"x": text}), &origin).is_some();
        for text in [
            "http://127.0.0.1:3000/agent/swaig",
            "see HTTP://127.0.0.1:3000?x",
            "http://user:pw@127.0.0.1:3000",
            r#"{"web_hook_url":"http:\\/\\/127.0.0.1:3000\\/agent"}"#,
            r#"{"u":"http:\\u002f\\u002f127.0.0.1:3000"}"#,
            r#"{"u":"\\u0068ttp://127.0.0.1:3000"}"#,
            "x://y http://127.0.0.1:3000/",
            "ws://127.0.0.1:3000/socket",
            "http:/127.0.0.1:3000/",
            "http:\\\\127.0.0.1:3000\\agent",
            "http://127.0.0.1:30\n00/",
            "http://127.0.0.1.:3000/",
            "foo://127.0.0.1:3000/",
            "http://x'@127.0.0.1:3000/swml",
            "http://a\"b@127.0.0.1:3000/",
            "http://a b@127.0.0.1:3000/",
            "http://[::ffff:127.0.0.1]:3000/",
            r#"{"u":"http://127.0.0.1:3000"} and "a@b""#,
            r#"http://127.0.0.1:30\\\\\\\\u0009\\\\\\\\u000900/"#,
        ] {
            assert!(found(text), "{text}");
        }
        for text in [
            "http://127.0.0.1:3001/agent",
            "https://127.0.0.1/agent",
            "http://127.0.0.1/agent",
            "http://127.0.0.1:30000/",
            "127.0.0.1:3000 without a scheme",
            "://127.0.0.1:3000",
            "mailto:someone@127.0.0.1",
            "time 10:30:00, ratio 3:1",
            "",
        ] {
            assert!(!found(text), "{text}");
        }
        // A URL parser reads any number of leading zeros, drops what IDNA ignores and maps
        // compatibility forms: an authority too long to parse counts as the upstream's when it
        // could become an ASCII host and port.
        for text in [
            format!("http://127.0.0.1:{}3000/swml", "0".repeat(300)),
            format!("http://0x{}7f000001:3000/", "0".repeat(300)),
            format!("http://x'@127.0.0.1:{}3000/", "0".repeat(400)),
            format!("http://127.0.0.1{}:3000/", "\u{AD}".repeat(200)),
            format!("http://x{}.example:3000/", "y".repeat(400)),
            format!("http://１２７.0.0.1:{}3000/", "０".repeat(150)),
        ] {
            assert!(url_on_origin(&json!([text]), &origin).is_some(), "{text}");
        }
        let named = url::Url::parse("http://agent:3000/").unwrap().origin();
        for text in [
            format!("http://agent:{}3000/swml", "0".repeat(300)),
            format!("http://𝐚𝐠𝐞𝐧𝐭:{}3000/swml", "0".repeat(300)),
        ] {
            assert!(url_on_origin(&json!([text]), &named).is_some(), "{text}");
        }
        // Long user-info before the upstream, with another `@` later in the same stretch (the
        // reading ends at the quote, its host is after its own last `@`).
        let doc = json!({"sections": {"main": [
            {"transfer": {"dest": format!("http://{}@127.0.0.1:3000", "u".repeat(301))}},
            {"play": {"url": "say:write to ops@example.com"}}
        ]}})
        .to_string();
        assert!(url_on_origin(&json!([doc]), &origin).is_some());
        // An escape right after the authority is a path to a URL parser, and part of the
        // authority once decoded: every reading is looked at.
        for text in [
            r"http://127.0.0.1:3000\u0030/swml",
            r"http://127.0.0.1:3000\n1",
            r#"{"dest":"http://\ud835\udfcf27.0.0.1:3000/swml"}"#,
        ] {
            assert!(url_on_origin(&json!([text]), &origin).is_some(), "{text}");
        }
        let https = url::Url::parse("https://upstream.example/")
            .unwrap()
            .origin();
        let text = r"https://upstream.example\u0078";
        assert!(url_on_origin(&json!([text]), &https).is_some(), "{text}");
        // Filled in by the platform from SWML variables: could be the upstream.
        for text in [
            "http://%{params.h}/swml",
            "http://127.0.0.1:%{params.p}/swml",
            "%{params.s}://127.0.0.1:3000/swml",
        ] {
            assert!(url_on_origin(&json!([text]), &origin).is_some(), "{text}");
        }
        // Backslashes that no round of decoding turns into a URL are served.
        let art = format!("{} the end", "\\".repeat(32));
        assert!(url_on_origin(&json!([art]), &origin).is_none());
        // Still escaped after four rounds of decoding: taken to name the upstream.
        let mut nested = "http://\\u0031\\u0032\\u0037.0.0.1:3000/".to_string();
        for _ in 0..4 {
            nested = serde_json::to_string(&nested).unwrap();
        }
        assert!(
            url_on_origin(&json!([nested]), &origin).is_some(),
            "{nested}"
        );
        // Long user-info is no reason: its host is read after the last `@`. Nor is text that
        // runs on after a URL in a language written without spaces.
        for text in [
            format!("http://{}@elsewhere.example:3000/", "u".repeat(400)),
            format!(
                "詳しくはhttps://example.jpをご覧ください。{}",
                "あ".repeat(150)
            ),
            format!("see http://127.0.0.1:3000{}", "ข".repeat(150)),
        ] {
            assert!(url_on_origin(&json!([text]), &origin).is_none(), "{text}");
        }
        // One authority read as two schemes: each with its own default port.
        let port_80 = url::Url::parse("http://127.0.0.1/").unwrap().origin();
        for text in [
            r#"{"a":"https://q","dest":"http:x'@127.0.0.1/swml"}"#,
            "https://q http:x'@127.0.0.1/",
        ] {
            assert!(url_on_origin(&json!([text]), &port_80).is_some(), "{text}");
        }
        let default_port = url::Url::parse("https://agent.example.com/")
            .unwrap()
            .origin();
        let found = |text: &str| url_on_origin(&json!([text]), &default_port).is_some();
        assert!(found("https://Agent.Example.com:443/x"));
        assert!(found("wss://agent.example.com/x"));
        assert!(found("https://agent.example.com./x"));
        assert!(!found("https://agent.example.com.evil/x"));
        assert!(!found("http://agent.example.com/x"));
        // Every `:` costs one look at what follows it up to the next `/`, colons inside an
        // authority included (one too long to be a host counts as the upstream's).
        for (many, long_authority) in [
            ("a://b".repeat(100_000), false),
            (format!("http://{}", "g:".repeat(200_000)), false),
            (format!("http://{}", "g".repeat(400_000)), true),
            ("http:ahttp:[a".repeat(50_000), false),
            ("http:a".repeat(100_000), false),
            (":".repeat(300_000), false),
        ] {
            let found = url_on_origin(&json!({"x": many}), &origin).is_some();
            assert_eq!(found, long_authority);
        }
        let doc =
            json!({"sections": {"main": [{"transfer": {"dest": "http://127.0.0.1:3000/x"}}]}});
        assert_eq!(
            url_on_origin(&doc, &origin).as_deref(),
            Some("/sections/main/0/transfer/dest")
        );
    }

    /// Two answers of one render, each adding its own connector to the entry it read, then
    /// each writing it back: the second write loses the first's connector, and the first's
    /// token must find nothing rather than the second's connector.
    #[test]
    fn connectors_added_at_once_never_get_each_others_tokens() {
        let keys = KeyRing::new(SecretKey::generate());
        let info = info();
        let minter = minter(&keys, &info);
        let stored = RenderEntry::default();
        let (mut a, mut b) = (stored.clone(), stored.clone());
        let pay = |url: &str| {
            json!({ "payment_connector_url": url })
                .as_object()
                .cloned()
                .unwrap()
        };
        let (mut pay_a, mut pay_b) = (
            pay("https://up.example.com/pay-a"),
            pay("https://up.example.com/pay-b"),
        );
        assert!(rewrite_pay(&mut pay_a, &minter, &mut a));
        assert!(rewrite_pay(&mut pay_b, &minter, &mut b));
        let named = |pay: &Map<String, Value>| {
            let url = pay["payment_connector_url"].as_str().unwrap();
            let token = url.split("__token=").nth(1).unwrap();
            let session = keys
                .verify_with_session_at(token, "c", PAY_FUNCTION, 1)
                .unwrap();
            session.split_once('|').unwrap().1.to_string()
        };
        let (name_a, name_b) = (named(&pay_a), named(&pay_b));
        assert_ne!(name_a, name_b);
        assert_eq!(
            b.pay_named(&name_a),
            None,
            "a's token finds nothing in b's entry"
        );
        assert_eq!(
            b.pay_named(&name_b).and_then(|p| p.connector.as_deref()),
            Some("https://up.example.com/pay-b")
        );
        assert_eq!(
            b.pay_named("0"),
            None,
            "entries with ids are never named by position"
        );
        // An entry stored before ids keeps answering the tokens minted then, by position.
        let legacy: RenderEntry = serde_json::from_value(
            json!({"functions": {}, "post_prompt_url": null, "pay": [{"connector": "https://up.example.com/old", "status": null}]}),
        )
        .unwrap();
        assert_eq!(
            legacy.pay_named("0").and_then(|p| p.connector.as_deref()),
            Some("https://up.example.com/old")
        );
    }

    #[test]
    fn a_function_whose_webhook_url_is_too_long_is_left_out() {
        let keys = KeyRing::new(SecretKey::generate());
        let long = format!(
            "https://up.example.com/swaig?pad={}",
            "a".repeat(MAX_URL_BYTES)
        );
        let mut doc = json!({"sections": {"main": [{"ai": {"SWAIG": {
            "defaults": {"web_hook_url": long},
            "functions": [{"function": "inherits"}, {"function": "own", "web_hook_url": "https://up.example.com/swaig"}]
        }}}]}});
        let (entry, notes) = rewrite_all(&mut doc, &keys);
        assert_eq!(entry.functions.keys().collect::<Vec<_>>(), ["own"]);
        assert!(
            notes
                .dropped
                .iter()
                .any(|(name, why)| name == "inherits" && why.contains("over")),
            "{:?}",
            notes.dropped
        );
    }

    #[test]
    fn many_functions_left_out_are_counted_not_named_and_a_long_default_is_not_copied_each() {
        let keys = KeyRing::new(SecretKey::generate());
        // A default URL over the cap inherited by many functions: each is left out. The URL
        // is borrowed until a function is kept (copied per function, this render alone would
        // copy 200 GB), and only the first few are named.
        let long = format!("https://up.example.com/swaig?pad={}", "a".repeat(2 << 20));
        let functions: Vec<Value> = (0..100_000)
            .map(|i| json!({"function": format!("f{i}")}))
            .collect();
        let mut doc = json!({"sections": {"main": [{"ai": {"SWAIG": {
            "defaults": {"web_hook_url": long},
            "functions": functions
        }}}]}});
        let (entry, notes) = rewrite_all(&mut doc, &keys);
        assert!(entry.functions.is_empty());
        assert_eq!(notes.dropped_total, 100_000);
        assert_eq!(notes.dropped.len(), DROPPED_NAMED);
        assert!(notes.dropped.iter().all(|(_, why)| why.contains("over")));
    }

    #[test]
    fn a_long_upstream_secret_is_kept_and_looked_for_by_its_start() {
        let keys = KeyRing::new(SecretKey::generate());
        // A removed URL (an include) with a megabyte of password: the session keeps 256 bytes
        // of it, the finder looks for them, and a document holding the password is refused.
        let password: String = (0..120_000).map(|i| format!("{i:x}")).collect();
        let mut doc = json!({"sections": {"main": [{"ai": {"SWAIG": {
            "includes": [{"url": format!("http://u:{password}@x.example/")}],
            "functions": [{"function": "f", "description": "d", "web_hook_url": "https://up.example.com/f"}]
        }}}]}});
        let (entry, _) = rewrite_all(&mut doc, &keys);
        assert!(!entry.removed_secrets.is_empty());
        assert!(entry
            .removed_secrets
            .iter()
            .all(|s| s.len() <= SECRET_PREFIX));
        let finder = SecretFinder::new(&secrets(&entry, None));
        assert!(finder.memory_bytes() < 1 << 20, "{}", finder.memory_bytes());
        let leaked = json!({"x": format!("say {password} now")});
        assert!(finder.find(&leaked).is_some());
        // A configured secret of any length is looked for the same way.
        let finder = SecretFinder::new(std::slice::from_ref(&password));
        assert!(finder.find(&leaked).is_some());
        assert!(finder.find(&json!({"x": "nothing here"})).is_none());
    }

    #[test]
    fn a_pay_verb_with_a_too_long_url_is_not_served() {
        let keys = KeyRing::new(SecretKey::generate());
        let info = info();
        let long = format!(
            "https://up.example.com/pay?pad={}",
            "a".repeat(MAX_URL_BYTES)
        );
        let mut pay =
            json!({"payment_connector_url": long, "status_url": "https://up.example.com/st"})
                .as_object()
                .cloned()
                .unwrap();
        let mut entry = RenderEntry::default();
        assert!(!rewrite_pay(&mut pay, &minter(&keys, &info), &mut entry));
        assert!(pay.get("payment_connector_url").is_none() && pay.get("status_url").is_none());
        assert!(entry.pay.is_empty());
    }

    #[test]
    fn the_secrets_of_removed_urls_are_bounded() {
        let keys = KeyRing::new(SecretKey::generate());
        let info = info();
        let functions: Vec<Value> = (0..=MAX_REMOVED_SECRETS)
            .map(|i| json!({"function": format!("__{i}"), "web_hook_url": format!("https://up.example.com/s?token=token-{i:08}")}))
            .collect();
        let mut doc = json!({"sections": {"main": [{"ai": {"SWAIG": {"functions": functions}}}]}});
        let mut entry = RenderEntry::default();
        let mut notes = Notes::default();
        rewrite_document(
            &mut doc,
            &minter(&keys, &info),
            &mut entry,
            &|_| Ok(()),
            &mut notes,
        );
        assert_eq!(entry.removed_secrets.len(), MAX_REMOVED_SECRETS);
        assert!(
            notes.unrewritten.is_some(),
            "a document whose removed secrets could not all be kept is not served"
        );
    }

    /// `doc` rewritten for call `c`, render `r`, every schema accepted: what it keeps and the
    /// notes.
    fn rewrite_all(doc: &mut Value, keys: &KeyRing) -> (RenderEntry, Notes) {
        let info = info();
        let mut entry = RenderEntry::default();
        let mut notes = Notes::default();
        rewrite_document(
            doc,
            &minter(keys, &info),
            &mut entry,
            &|_| Ok(()),
            &mut notes,
        );
        (entry, notes)
    }

    /// A minter for call `c`, render `r`.
    fn minter<'a>(keys: &'a KeyRing, info: &'a RequestInfo) -> Minter<'a> {
        Minter {
            keys,
            info,
            routes: AgentRoutes::new("/"),
            call_id: "c",
            render_id: "r",
            now_unix: 1,
        }
    }

    #[test]
    fn a_verb_deeper_than_the_rewrite_looks_is_reported_not_left_silently() {
        let keys = KeyRing::new(SecretKey::generate());
        let info = info();
        let mut nested =
            json!([{"ai": {"post_prompt_url": "http://up/pp?token=upstream-tok-123"}}]);
        for _ in 0..40 {
            nested = json!([{"cond": [{"when": "true", "then": nested}]}]);
        }
        let unrewritten = |mut doc: Value| {
            let mut notes = Notes::default();
            let minter = minter(&keys, &info);
            rewrite_document(
                &mut doc,
                &minter,
                &mut RenderEntry::default(),
                &|_| Ok(()),
                &mut notes,
            );
            notes.unrewritten
        };
        assert!(
            unrewritten(json!({"sections": {"main": nested}})).is_some(),
            "a deep verb left pointing at the upstream"
        );
        // Within the depth it looks at, nothing is reported.
        let shallow = json!({"sections": {"main": [{"cond": [{"when": "true", "then": [
            {"ai": {"post_prompt_url": "http://up/pp"}}]}]}]}});
        assert_eq!(unrewritten(shallow), None);
    }

    #[test]
    fn pay_connectors_are_shared_by_url_and_capped_per_render() {
        let keys = KeyRing::new(SecretKey::generate());
        let info = info();
        let minter = minter(&keys, &info);
        let mut entry = RenderEntry::default();
        let pay = |n: usize| {
            json!({"payment_connector_url": format!("http://u:pw@up/pay/{n}")})
                .as_object()
                .cloned()
                .unwrap()
        };
        // The same URLs again and again: one entry.
        for _ in 0..100 {
            assert!(rewrite_pay(&mut pay(0), &minter, &mut entry));
        }
        assert_eq!(entry.pay.len(), 1);
        for n in 1..MAX_PAY {
            assert!(rewrite_pay(&mut pay(n), &minter, &mut entry));
        }
        assert_eq!(entry.pay.len(), MAX_PAY);
        // One more is refused, and its upstream URL does not stay in the verb.
        let mut over = pay(MAX_PAY);
        assert!(!rewrite_pay(&mut over, &minter, &mut entry));
        assert_eq!(entry.pay.len(), MAX_PAY);
        assert!(over.get("payment_connector_url").is_none(), "{over:?}");
        // A known one still is not.
        let mut known = pay(3);
        assert!(rewrite_pay(&mut known, &minter, &mut entry));
        assert!(known["payment_connector_url"]
            .as_str()
            .is_some_and(|u| u.contains("gw.example.com/pay?")));
    }

    #[test]
    fn a_secret_held_in_a_key_is_not_written_into_the_path() {
        let doc = json!({"action": [{"set_global_data": {"k-topsecret-1": 1}}]});
        assert_eq!(
            SecretFinder::new(&["topsecret".to_string()])
                .find(&doc)
                .as_deref(),
            Some("/action/0/set_global_data/<key>")
        );
    }

    #[test]
    fn a_secret_left_anywhere_is_found() {
        let doc =
            json!({"sections": {"main": [{"ai": {"params": {"x": "a http://u:topsecret@h/ b"}}}]}});
        assert_eq!(
            SecretFinder::new(&["topsecret".to_string()])
                .find(&doc)
                .as_deref(),
            Some("/sections/main/0/ai/params/x")
        );
        assert_eq!(SecretFinder::new(&["other".to_string()]).find(&doc), None);
    }

    #[test]
    fn a_function_whose_schema_cannot_be_enforced_is_dropped() {
        let keys = KeyRing::new(SecretKey::generate());
        let refuse_declared = |s: &Value| {
            if s.get("properties").is_some() {
                Err("no".to_string())
            } else {
                Ok(())
            }
        };
        let (_, entry, notes) = rewritten(&keys, &refuse_declared);
        assert!(!entry.functions.contains_key("lookup"));
        assert!(notes.dropped.iter().any(|(name, _)| name == "lookup"));
    }
}
