//! Loading OpenAPI documents (file or URL, JSON or YAML) and resolving `$ref`s, including
//! refs into other local files, without looping on recursive schemas.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

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

async fn fetch(url: &url::Url) -> Result<String, OpenApiError> {
    let fail = |m: String| OpenApiError::Fetch { location: url.to_string(), message: m };
    let resp = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().map_err(|e| fail(e.to_string()))?.get(url.clone()).send().await.map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("HTTP {}", resp.status())));
    }
    resp.text().await.map_err(|e| fail(e.to_string()))
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
    /// Loads the root document.
    pub async fn load(source: &str, base_dir: &Path) -> Result<Documents, OpenApiError> {
        let (loc, is_url) = locate(source, base_dir)?;
        let (text, base) = if is_url {
            let url = url::Url::parse(&loc).map_err(|e| OpenApiError::Fetch { location: loc.clone(), message: e.to_string() })?;
            (fetch(&url).await?, Base::Url(url))
        } else {
            let path = PathBuf::from(&loc);
            let text = tokio::fs::read_to_string(&path).await.map_err(|e| OpenApiError::Read { location: loc.clone(), message: e.to_string() })?;
            (text, Base::File(path))
        };
        let root = parse_text(&text, &loc)?;
        let mut docs = Documents { root, root_key: loc, others: HashMap::new(), base };
        docs.preload_external().await;
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
    async fn preload_external(&mut self) {
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
                Base::File(p) => tokio::fs::read_to_string(p).await.map_err(|e| e.to_string()),
                Base::Url(u) => fetch(u).await.map_err(|e| e.to_string()),
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
}
