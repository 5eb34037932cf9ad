//! Loading OpenAPI documents (file or URL, JSON or YAML) and resolving `$ref`s, including
//! refs into other local files, without looping on recursive schemas.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::OpenApiError;

/// Expansion depth after which a schema is cut (keeps pathological documents bounded).
const MAX_DEPTH: usize = 24;

/// A loaded document and the documents its refs point into.
pub struct Documents {
    /// The root document.
    pub root: Value,
    root_key: String,
    others: HashMap<String, Value>,
    base: Base,
}

#[derive(Clone)]
enum Base {
    File(PathBuf),
    Url(url::Url),
}

/// Parses JSON or YAML text into a JSON value.
pub fn parse_text(text: &str, what: &str) -> Result<Value, OpenApiError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(v) = serde_json::from_str(trimmed) {
            return Ok(v);
        }
    }
    serde_yaml::from_str::<Value>(text).map_err(|e| OpenApiError::Parse { location: what.to_string(), message: e.to_string() })
}

/// Bounds on reading one server's OpenAPI documents (the spec and every file its `$ref`s
/// name, together): a spec URL that serves an endless body or never answers fails the
/// build quickly instead of holding a reload and its memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes read in all (`upstream.max_spec_bytes`).
    pub max_bytes: usize,
    /// Deadline for all fetches by URL, connecting included (`upstream.spec_timeout`).
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_upstream(&crate::config::UpstreamDefaults::default())
    }
}

impl Limits {
    /// The limits a config sets.
    pub fn from_upstream(u: &crate::config::UpstreamDefaults) -> Self {
        Limits { max_bytes: u.max_spec_bytes.0, timeout: u.spec_timeout.0 }
    }

    fn too_large(&self) -> String {
        format!("the OpenAPI document(s) exceed the {} limit (upstream.max_spec_bytes)", human_size(self.max_bytes))
    }
}

/// `16 MiB`, `512 KiB`, `1000 bytes`.
fn human_size(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// An error and its causes on one line (reqwest's own text is only the outermost).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What one server's document loading has used of its [`Limits`].
struct Budget {
    limits: Limits,
    deadline: Instant,
    used: usize,
    client: Option<reqwest::Client>,
}

impl Budget {
    fn new(limits: Limits) -> Self {
        Budget { limits, deadline: Instant::now() + limits.timeout, used: 0, client: None }
    }

    fn room(&self) -> usize {
        self.limits.max_bytes.saturating_sub(self.used)
    }

    /// Fetches a document by URL within what is left of the deadline and the byte budget;
    /// the body is read chunk by chunk and abandoned once past the budget.
    async fn fetch(&mut self, url: &url::Url) -> Result<String, OpenApiError> {
        let fail = |m: String| OpenApiError::Fetch { location: url.to_string(), message: m };
        let timeout = self.limits.timeout;
        let late = || fail(format!("no complete answer within {} (upstream.spec_timeout)", humantime::format_duration(timeout)));
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(late());
        }
        let client = match &self.client {
            Some(c) => c.clone(),
            None => {
                let c = reqwest::Client::builder().connect_timeout(timeout).build().map_err(|e| fail(e.to_string()))?;
                self.client.insert(c).clone()
            }
        };
        let room = self.room();
        let too_large = self.limits.too_large();
        let body = async {
            let mut resp = client.get(url.clone()).send().await.map_err(|e| fail(causes(&e.without_url())))?;
            if !resp.status().is_success() {
                return Err(fail(format!("HTTP {}", resp.status())));
            }
            if resp.content_length().is_some_and(|n| n > room as u64) {
                return Err(fail(too_large.clone()));
            }
            // Chunks are kept as they came and joined once at the end: a growing buffer
            // would briefly hold twice the cap while it reallocates.
            let (mut chunks, mut len) = (Vec::new(), 0usize);
            while let Some(chunk) = resp.chunk().await.map_err(|e| fail(causes(&e.without_url())))? {
                if chunk.len() > room - len {
                    return Err(fail(too_large.clone()));
                }
                len += chunk.len();
                chunks.push(chunk);
            }
            Ok(chunks.concat())
        };
        let buf = tokio::time::timeout(left, body).await.map_err(|_| late())??;
        self.used += buf.len();
        Ok(String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// Reads a local document within the byte budget (read through a cap, not by its
    /// stated size, so a FIFO or device cannot run on).
    async fn read(&mut self, path: &Path) -> Result<String, OpenApiError> {
        use tokio::io::AsyncReadExt;
        let fail = |m: String| OpenApiError::Read { location: path.display().to_string(), message: m };
        let file = tokio::fs::File::open(path).await.map_err(|e| fail(e.to_string()))?;
        let room = self.room();
        let mut bytes = Vec::new();
        file.take(room as u64 + 1).read_to_end(&mut bytes).await.map_err(|e| fail(e.to_string()))?;
        if bytes.len() > room {
            return Err(fail(self.limits.too_large()));
        }
        self.used += bytes.len();
        String::from_utf8(bytes).map_err(|e| fail(format!("not UTF-8 text: {e}")))
    }
}

/// The spec's location: a URL or a path relative to `base_dir`.
pub fn locate(source: &str, base_dir: &Path) -> Result<(String, bool), OpenApiError> {
    if source.starts_with("http://") || source.starts_with("https://") {
        return Ok((source.to_string(), true));
    }
    let p = base_dir.join(source);
    Ok((p.display().to_string(), false))
}

impl Documents {
    /// Loads the root document and the documents it refers to, under the default
    /// [`Limits`].
    pub async fn load(source: &str, base_dir: &Path) -> Result<Documents, OpenApiError> {
        Self::load_with(source, base_dir, Limits::default()).await
    }

    /// Loads the root document and the documents it refers to, under `limits`.
    pub async fn load_with(source: &str, base_dir: &Path, limits: Limits) -> Result<Documents, OpenApiError> {
        let mut budget = Budget::new(limits);
        let (loc, is_url) = locate(source, base_dir)?;
        let (text, base) = if is_url {
            let url = url::Url::parse(&loc).map_err(|e| OpenApiError::Fetch { location: loc.clone(), message: e.to_string() })?;
            (budget.fetch(&url).await?, Base::Url(url))
        } else {
            let path = PathBuf::from(&loc);
            (budget.read(&path).await?, Base::File(path))
        };
        let root = parse_text(&text, &loc)?;
        drop(text);
        let mut docs = Documents { root, root_key: loc, others: HashMap::new(), base };
        docs.preload_external(&mut budget).await;
        Ok(docs)
    }

    /// A document from an already parsed value (tests, embedded specs).
    pub fn from_value(root: Value, path: &Path) -> Documents {
        Documents { root, root_key: path.display().to_string(), others: HashMap::new(), base: Base::File(path.to_path_buf()) }
    }

    /// The URL the document was fetched from, if any.
    pub fn url(&self) -> Option<&url::Url> {
        match &self.base {
            Base::Url(u) => Some(u),
            Base::File(_) => None,
        }
    }

    fn resolve_location(&self, file: &str) -> Option<(String, Base)> {
        match &self.base {
            Base::File(p) => {
                let path = p.parent().unwrap_or(Path::new(".")).join(file);
                Some((path.display().to_string(), Base::File(path)))
            }
            Base::Url(u) => u.join(file).ok().map(|u| (u.to_string(), Base::Url(u))),
        }
    }

    /// Loads every other document referenced (transitively), so resolution is synchronous.
    async fn preload_external(&mut self, budget: &mut Budget) {
        let mut pending: Vec<String> = Vec::new();
        collect_files(&self.root, &mut pending);
        let mut seen = 0;
        while let Some(file) = pending.pop() {
            seen += 1;
            if seen > 64 {
                log::warn!("{}: more than 64 referenced documents; the rest are not loaded", self.root_key);
                break;
            }
            let Some((key, base)) = self.resolve_location(&file) else { continue };
            if self.others.contains_key(&file) {
                continue;
            }
            let text = match &base {
                Base::File(p) => budget.read(p).await,
                Base::Url(u) => budget.fetch(u).await,
            };
            match text.map_err(|e| e.to_string()).and_then(|t| parse_text(&t, &key).map_err(|e| e.to_string())) {
                Ok(v) => {
                    collect_files(&v, &mut pending);
                    self.others.insert(file, v);
                }
                Err(e) => log::warn!("{}: cannot load referenced document `{key}`: {e}", self.root_key),
            }
        }
    }

    /// Resolves a `$ref` string to its target.
    pub fn lookup(&self, reference: &str) -> Option<&Value> {
        let (file, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let doc = if file.is_empty() { &self.root } else { self.others.get(file)? };
        if pointer.is_empty() {
            return Some(doc);
        }
        doc.pointer(&decode_pointer(pointer))
    }

    /// Follows `$ref` chains on one value (not inside it); `None` if broken or circular.
    pub fn deref<'a>(&'a self, mut v: &'a Value) -> Option<&'a Value> {
        for _ in 0..MAX_DEPTH {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => v = self.lookup(r)?,
                None => return Some(v),
            }
        }
        None
    }

    /// Fully expands a schema: refs are inlined, recursion is cut with a note, depth is
    /// bounded.
    pub fn expand(&self, v: &Value) -> Value {
        self.expand_inner(v, &mut Vec::new(), 0)
    }

    fn expand_inner(&self, v: &Value, stack: &mut Vec<String>, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::Object(Map::new());
        }
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    if stack.iter().any(|s| s == r) {
                        let name = r.rsplit('/').next().unwrap_or(r);
                        return serde_json::json!({"description": format!("(recursive reference to {name})")});
                    }
                    let Some(target) = self.lookup(r) else {
                        return serde_json::json!({"description": format!("(unresolvable reference {r})")});
                    };
                    stack.push(r.to_string());
                    let mut out = self.expand_inner(target, stack, depth + 1);
                    stack.pop();
                    // Sibling keywords next to $ref (3.1) refine the target.
                    if let Value::Object(o) = &mut out {
                        for (k, val) in m.iter().filter(|(k, _)| *k != "$ref") {
                            o.insert(k.clone(), self.expand_inner(val, stack, depth + 1));
                        }
                    }
                    return out;
                }
                Value::Object(m.iter().map(|(k, val)| (k.clone(), if k == "example" || k == "examples" { val.clone() } else { self.expand_inner(val, stack, depth + 1) })).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.expand_inner(x, stack, depth + 1)).collect()),
            other => other.clone(),
        }
    }
}

fn decode_pointer(p: &str) -> String {
    percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned()
}

fn collect_files(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                let file = r.split('#').next().unwrap_or("");
                if !file.is_empty() && !out.iter().any(|f| f == file) {
                    out.push(file.to_string());
                }
            }
            m.values().for_each(|x| collect_files(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_files(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recursive_schemas_are_cut() {
        let doc = json!({"components": {"schemas": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/components/schemas/Node"}}}}}});
        let d = Documents::from_value(doc, Path::new("/tmp/x.json"));
        let e = d.expand(&json!({"$ref": "#/components/schemas/Node"}));
        assert_eq!(e["properties"]["child"]["description"], "(recursive reference to Node)");
    }

    #[tokio::test]
    async fn refs_into_other_files_resolve() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("common.yaml"), "Pet:\n  type: object\n  properties:\n    name: {type: string}\n").unwrap();
        std::fs::write(dir.path().join("api.yaml"), "openapi: 3.0.0\npaths: {}\ncomponents:\n  schemas:\n    P: {$ref: 'common.yaml#/Pet'}\n").unwrap();
        let d = Documents::load("api.yaml", dir.path()).await.unwrap();
        let e = d.expand(&json!({"$ref": "#/components/schemas/P"}));
        assert_eq!(e["properties"]["name"]["type"], "string");
    }

    #[tokio::test]
    async fn documents_past_the_byte_budget_fail_naming_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big.yaml"), format!("openapi: 3.0.0\npaths: {{}}\nx: '{}'\n", "a".repeat(4096))).unwrap();
        let small = Limits { max_bytes: 2048, timeout: Duration::from_secs(1) };
        let e = Documents::load_with("big.yaml", dir.path(), small).await.err().unwrap().to_string();
        assert!(e.contains("big.yaml") && e.contains("exceed the 2 KiB limit (upstream.max_spec_bytes)"), "{e}");
        assert!(Documents::load_with("big.yaml", dir.path(), Limits { max_bytes: 8192, ..small }).await.is_ok());
    }
}
