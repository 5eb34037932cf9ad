//! One REST tool per operation.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::load::Documents;
use super::schema::{is_object, merge_all_of, normalize, relax};
use super::{OpenApiError, Skipped};
use crate::rest::model::{RequestTemplate, RestServerSection, RestTool, RestToolArg, RestToolHeader, RestToolsFile, SecurityRequirement, SecurityScheme};
use crate::tools::ToolAnnotations;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// A converted operation with what include/exclude rules match on.
pub struct Operation {
    /// The tool.
    pub tool: RestTool,
    /// `operationId`, if the document has one.
    pub operation_id: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Path template.
    pub path: String,
    /// The credentials its security requirement asks for when the gateway can supply none
    /// of them (`OAuth 2 (scheme \`auth\`)`): the call is sent without credentials.
    pub unsupplied_auth: Option<String>,
}

impl Operation {
    /// The sentence a tool's description carries when its credentials are not supplied.
    pub fn auth_note(&self) -> Option<String> {
        self.unsupplied_auth.as_ref().map(|auth| format!("Requires {auth}, which this gateway does not supply: calls are sent without it."))
    }

    /// A warning naming the operation and its tool, when its credentials are not supplied.
    pub fn auth_warning(&self) -> Option<String> {
        let auth = self.unsupplied_auth.as_ref()?;
        Some(format!("{} {} (tool `{}`): requires {auth}, which this gateway does not supply: calls are sent without it", self.tool.request_template.method, self.path, self.tool.name))
    }
}

/// The whole conversion.
pub struct Converted {
    /// Operations that became tools, in document order.
    pub operations: Vec<Operation>,
    /// Operations that did not.
    pub skipped: Vec<Skipped>,
    /// Server section (security schemes).
    pub server: RestServerSection,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    Swagger2,
    OpenApi3,
}

/// Converts a loaded document.
pub fn convert(docs: &Documents, base_override: Option<&str>, server_name: &str) -> Result<Converted, OpenApiError> {
    let root = &docs.root;
    let version = if root.get("swagger").and_then(Value::as_str).is_some_and(|v| v.starts_with('2')) {
        Version::Swagger2
    } else if root.get("openapi").and_then(Value::as_str).is_some_and(|v| v.starts_with('3')) {
        Version::OpenApi3
    } else {
        return Err(OpenApiError::NotOpenApi("neither `swagger: \"2.0\"` nor `openapi: 3.x` is present".into()));
    };
    let base = match base_override {
        Some(b) => b.trim_end_matches('/').to_string(),
        None => base_url(docs, root.get("servers"), version),
    };
    let schemes = security_schemes(docs, version);
    let server = RestServerSection { name: server_name.to_string(), security_schemes: schemes.clone(), ..Default::default() };
    let mut names = HashSet::new();
    let mut operations = Vec::new();
    let mut skipped = Vec::new();
    let paths = root.get("paths").and_then(Value::as_object).cloned().unwrap_or_default();
    for (path, item) in &paths {
        let Some(item) = docs.deref(item).and_then(Value::as_object) else {
            skipped.push(Skipped { operation: path.clone(), reason: "the path item is not an object or its $ref cannot be resolved".into() });
            continue;
        };
        for (method, op) in item.iter().filter(|(k, _)| METHODS.contains(&k.as_str())) {
            let label = format!("{} {path}", method.to_uppercase());
            let cx = OpCx { docs, version, path, method, item, base: &base, forced_base: base_override.is_some(), schemes: &schemes };
            match convert_op(&cx, op, &mut names) {
                Ok(o) => operations.push(o),
                Err(reason) => {
                    log::warn!("{server_name}: skipping {label}: {reason}");
                    skipped.push(Skipped { operation: label, reason });
                }
            }
        }
    }
    Ok(Converted { operations, skipped, server })
}

fn base_url(docs: &Documents, servers: Option<&Value>, version: Version) -> String {
    let raw = match version {
        Version::Swagger2 => {
            let r = &docs.root;
            let host = r.get("host").and_then(Value::as_str);
            let base_path = r.get("basePath").and_then(Value::as_str).unwrap_or("");
            let schemes: Vec<&str> = r.get("schemes").and_then(Value::as_array).map(|s| s.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            let scheme = if schemes.contains(&"https") || schemes.is_empty() { "https" } else { schemes[0] };
            match host {
                Some(h) => format!("{scheme}://{h}{base_path}"),
                None => base_path.to_string(),
            }
        }
        Version::OpenApi3 => match servers.and_then(Value::as_array).and_then(|s| s.first()) {
            Some(s) => {
                let mut url = s.get("url").and_then(Value::as_str).unwrap_or("").to_string();
                if let Some(vars) = s.get("variables").and_then(Value::as_object) {
                    for (k, v) in vars {
                        let d = v.get("default").map(crate::rest::request::scalar_text).unwrap_or_default();
                        url = url.replace(&format!("{{{k}}}"), &d);
                    }
                }
                url
            }
            None => String::new(),
        },
    };
    // Relative server URLs resolve against where the document came from.
    let resolved = match (docs.url(), url::Url::parse(&raw)) {
        (_, Ok(u)) => u.to_string(),
        (Some(doc_url), Err(_)) => doc_url.join(&raw).map(|u| u.to_string()).unwrap_or(raw),
        (None, Err(_)) => raw,
    };
    resolved.trim_end_matches('/').to_string()
}

fn security_schemes(docs: &Documents, version: Version) -> Vec<SecurityScheme> {
    let defs = match version {
        Version::Swagger2 => docs.root.get("securityDefinitions"),
        Version::OpenApi3 => docs.root.pointer("/components/securitySchemes"),
    };
    let Some(defs) = defs.and_then(Value::as_object) else { return Vec::new() };
    defs.iter()
        .filter_map(|(id, s)| {
            let s = docs.deref(s)?;
            let t = s.get("type").and_then(Value::as_str).unwrap_or("");
            let str_of = |k: &str| s.get(k).and_then(Value::as_str).map(str::to_owned);
            Some(match t {
                "basic" => SecurityScheme { id: id.clone(), kind: "http".into(), scheme: Some("basic".into()), ..Default::default() },
                "http" => SecurityScheme { id: id.clone(), kind: "http".into(), scheme: str_of("scheme").map(|x| x.to_ascii_lowercase()), ..Default::default() },
                "apiKey" => SecurityScheme { id: id.clone(), kind: "apiKey".into(), location: str_of("in"), name: str_of("name"), ..Default::default() },
                other => SecurityScheme { id: id.clone(), kind: other.to_string(), ..Default::default() },
            })
        })
        .collect()
}

fn usable(s: &SecurityScheme) -> bool {
    (s.kind == "http" && matches!(s.scheme.as_deref(), Some("basic" | "bearer"))) || (s.kind == "apiKey" && matches!(s.location.as_deref(), Some("header" | "query" | "cookie")))
}

struct OpCx<'a> {
    docs: &'a Documents,
    version: Version,
    path: &'a str,
    method: &'a str,
    item: &'a Map<String, Value>,
    base: &'a str,
    /// A configured base URL wins over per-operation `servers`.
    forced_base: bool,
    schemes: &'a [SecurityScheme],
}

/// Makes `raw` a valid, unique MCP tool name.
pub fn tool_name(raw: &str, taken: &mut HashSet<String>) -> String {
    let mut name: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '_' }).collect();
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    let mut name = name.trim_matches('_').to_string();
    if name.is_empty() {
        name = "operation".into();
    }
    name.truncate(120);
    let mut candidate = name.clone();
    let mut n = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{name}_{n}");
        n += 1;
    }
    candidate
}

fn convert_op(cx: &OpCx<'_>, op: &Value, names: &mut HashSet<String>) -> Result<Operation, String> {
    let op = cx.docs.deref(op).and_then(Value::as_object).ok_or("the operation is not an object")?;
    let operation_id = op.get("operationId").and_then(Value::as_str).map(str::to_owned);
    let raw_name = operation_id.clone().unwrap_or_else(|| format!("{}_{}", cx.method, cx.path.replace(['{', '}'], "")));
    let mut args: Vec<RestToolArg> = Vec::new();
    let mut used: HashSet<String> = HashSet::new();
    let mut headers = Vec::new();
    let mut body_template = None;
    let mut notes = Vec::new();

    for p in merged_parameters(cx, op)? {
        add_parameter(cx, &p, &mut args, &mut used, &mut notes)?;
    }
    // Path placeholders the document forgot to declare still need a value.
    for placeholder in placeholders(cx.path) {
        if !args.iter().any(|a| a.position.as_deref() == Some("path") && a.wire_name.as_deref().unwrap_or(&a.name) == placeholder) {
            let name = unique(&placeholder, "path", &mut used);
            args.push(RestToolArg { wire_name: (name != placeholder).then(|| placeholder.clone()), name, kind: Some("string".into()), required: true, position: Some("path".into()), ..Default::default() });
        }
    }
    match cx.version {
        Version::OpenApi3 => {
            if let Some(rb) = op.get("requestBody") {
                let rb = cx.docs.deref(rb).ok_or("the requestBody $ref cannot be resolved")?;
                add_body_v3(cx, rb, &mut args, &mut used, &mut headers, &mut body_template, &mut notes)?;
            }
        }
        Version::Swagger2 => add_body_v2(cx, op, &mut args, &mut used, &mut headers, &mut body_template, &mut notes)?,
    }

    let summary = op.get("summary").and_then(Value::as_str).unwrap_or("").trim();
    let details = op.get("description").and_then(Value::as_str).unwrap_or("").trim();
    let mut description = match (summary.is_empty(), details.is_empty()) {
        (false, false) if details.starts_with(summary) => details.to_string(),
        (false, false) => format!("{summary}\n\n{details}"),
        (false, true) => summary.to_string(),
        (true, false) => details.to_string(),
        (true, true) => format!("{} {}", cx.method.to_uppercase(), cx.path),
    };
    if op.get("deprecated") == Some(&Value::Bool(true)) {
        description.push_str("\n\n(Deprecated.)");
    }
    for n in notes {
        description.push_str(&format!("\n\nNote: {n}"));
    }
    let unsupplied_auth = unsupplied_auth(cx, op);
    let method = cx.method.to_uppercase();
    let annotations = ToolAnnotations {
        read_only_hint: matches!(method.as_str(), "GET" | "HEAD").then_some(true),
        destructive_hint: match method.as_str() {
            "DELETE" => Some(true),
            "GET" | "HEAD" | "OPTIONS" => None,
            _ => Some(false),
        },
        idempotent_hint: (method == "PUT").then_some(true),
        open_world_hint: Some(true),
        ..Default::default()
    };
    let base = op_base(cx, op);
    let tool = RestTool {
        name: tool_name(&raw_name, names),
        description,
        args,
        output_schema: output_schema(cx, op),
        request_template: RequestTemplate { url: format!("{base}{}", cx.path), method: method.clone(), headers, body: body_template, security: security_for(cx, op), ..Default::default() },
        annotations: Some(annotations),
        ..Default::default()
    };
    check_schema(&tool)?;
    let tags = op.get("tags").and_then(Value::as_array).map(|t| t.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default();
    let mut operation = Operation { tool, operation_id, tags, path: cx.path.to_string(), unsupplied_auth };
    if let Some(note) = operation.auth_note() {
        operation.tool.description.push_str(&format!("\n\n{note}"));
    }
    Ok(operation)
}

fn op_base(cx: &OpCx<'_>, op: &Map<String, Value>) -> String {
    let servers = op.get("servers").or_else(|| cx.item.get("servers"));
    match (cx.version, servers) {
        (Version::OpenApi3, Some(s)) if !cx.forced_base && s.as_array().is_some_and(|a| !a.is_empty()) => base_url(cx.docs, Some(s), cx.version),
        _ => cx.base.to_string(),
    }
}

fn placeholders(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = path;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else { break };
        out.push(rest[i + 1..i + j].to_string());
        rest = &rest[i + j + 1..];
    }
    out
}

fn merged_parameters(cx: &OpCx<'_>, op: &Map<String, Value>) -> Result<Vec<Value>, String> {
    let mut out: Vec<Value> = Vec::new();
    for list in [cx.item.get("parameters"), op.get("parameters")].into_iter().flatten() {
        for p in list.as_array().into_iter().flatten() {
            let p = cx.docs.deref(p).ok_or("a parameter $ref cannot be resolved")?;
            let key = |v: &Value| (v.get("name").cloned(), v.get("in").cloned());
            out.retain(|e| key(e) != key(p));
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn unique(name: &str, position: &str, used: &mut HashSet<String>) -> String {
    if used.insert(name.to_string()) {
        return name.to_string();
    }
    let mut candidate = format!("{position}_{name}");
    let mut n = 2;
    while !used.insert(candidate.clone()) {
        candidate = format!("{position}_{name}_{n}");
        n += 1;
    }
    candidate
}

fn swagger2_param_schema(p: &Value) -> Value {
    let mut m = Map::new();
    for k in ["type", "format", "items", "enum", "default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems", "multipleOf"] {
        if let Some(v) = p.get(k) {
            m.insert(k.to_string(), v.clone());
        }
    }
    Value::Object(m)
}

fn add_parameter(cx: &OpCx<'_>, p: &Value, args: &mut Vec<RestToolArg>, used: &mut HashSet<String>, notes: &mut Vec<String>) -> Result<(), String> {
    let name = p.get("name").and_then(Value::as_str).ok_or("a parameter has no name")?;
    let location = p.get("in").and_then(Value::as_str).ok_or_else(|| format!("parameter `{name}` has no `in`"))?;
    if matches!(location, "body" | "formData") {
        return Ok(()); // Swagger 2 bodies are handled with the request body.
    }
    if !matches!(location, "path" | "query" | "header" | "cookie") {
        return Err(format!("parameter `{name}` has an unknown location `{location}`"));
    }
    // OpenAPI: these header parameters are ignored; the gateway sets them.
    if location == "header" && ["accept", "content-type", "authorization"].contains(&name.to_ascii_lowercase().as_str()) {
        return Ok(());
    }
    let raw_schema = match cx.version {
        Version::OpenApi3 => p.get("schema").cloned().or_else(|| p.get("content").and_then(Value::as_object).and_then(|c| c.values().next()).and_then(|m| m.get("schema")).cloned()).unwrap_or(json!({"type": "string"})),
        Version::Swagger2 => swagger2_param_schema(p),
    };
    let mut schema = normalize(&merge_all_of(&cx.docs.expand(&raw_schema)));
    let description = p.get("description").and_then(Value::as_str).unwrap_or("").trim().to_string();
    if !description.is_empty() {
        if let Value::Object(m) = &mut schema {
            m.insert("description".into(), Value::String(description.clone()));
        }
    }
    let (style, explode) = match cx.version {
        Version::OpenApi3 => (p.get("style").and_then(Value::as_str).map(str::to_owned), p.get("explode").and_then(Value::as_bool)),
        Version::Swagger2 => match p.get("collectionFormat").and_then(Value::as_str) {
            Some("multi") => (Some("form".into()), Some(true)),
            Some("ssv") => (Some("spaceDelimited".into()), None),
            Some("pipes") => (Some("pipeDelimited".into()), None),
            _ if p.get("type").and_then(Value::as_str) == Some("array") => (Some(if location == "query" { "form" } else { "simple" }.into()), Some(false)),
            _ => (None, None),
        },
    };
    if p.get("deprecated") == Some(&Value::Bool(true)) {
        notes.push(format!("parameter `{name}` is deprecated"));
    }
    let arg_name = unique(name, location, used);
    args.push(RestToolArg {
        wire_name: (arg_name != name).then(|| name.to_string()),
        name: arg_name,
        description,
        required: location == "path" || p.get("required") == Some(&Value::Bool(true)),
        position: Some(location.to_string()),
        schema: Some(schema),
        style,
        explode,
        ..Default::default()
    });
    Ok(())
}

fn pick_media(content: &Map<String, Value>) -> Option<(&String, &Value)> {
    let json_like = |k: &str| {
        let k = k.to_ascii_lowercase();
        k == "application/json" || k.ends_with("+json") || k.starts_with("application/json")
    };
    content.iter().find(|(k, _)| json_like(k)).or_else(|| content.iter().find(|(k, _)| k.eq_ignore_ascii_case("application/x-www-form-urlencoded"))).or_else(|| content.iter().find(|(k, _)| *k == "*/*"))
}

#[allow(clippy::too_many_arguments)]
fn add_body_schema(cx: &OpCx<'_>, media: &str, raw_schema: &Value, required: bool, args: &mut Vec<RestToolArg>, used: &mut HashSet<String>, headers: &mut Vec<RestToolHeader>, body_template: &mut Option<String>) {
    let form = media.eq_ignore_ascii_case("application/x-www-form-urlencoded");
    let media = if media == "*/*" { "application/json" } else { media };
    let schema = normalize(&merge_all_of(&cx.docs.expand(raw_schema)));
    let props = schema.get("properties").and_then(Value::as_object).filter(|p| !p.is_empty());
    if let (true, Some(props)) = (is_object(&schema), props) {
        let req: Vec<&str> = schema.get("required").and_then(Value::as_array).map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        for (prop, s) in props {
            if s.get("readOnly") == Some(&Value::Bool(true)) {
                continue;
            }
            let name = unique(prop, "body", used);
            args.push(RestToolArg {
                wire_name: (name != *prop).then(|| prop.clone()),
                name,
                description: s.get("description").and_then(Value::as_str).unwrap_or("").to_string(),
                required: required && req.contains(&prop.as_str()),
                position: Some("body".into()),
                schema: Some(s.clone()),
                ..Default::default()
            });
        }
        if form || !media.eq_ignore_ascii_case("application/json") {
            headers.push(RestToolHeader { key: "Content-Type".into(), value: media.to_string() });
        }
    } else {
        let name = unique("body", "request", used);
        args.push(RestToolArg { name: name.clone(), description: schema.get("description").and_then(Value::as_str).unwrap_or("The request body.").to_string(), required, schema: Some(schema), ..Default::default() });
        *body_template = Some(format!("{{{{toJson .args.{name}}}}}"));
        headers.push(RestToolHeader { key: "Content-Type".into(), value: if form { "application/json".into() } else { media.to_string() } });
    }
}

fn add_body_v3(cx: &OpCx<'_>, rb: &Value, args: &mut Vec<RestToolArg>, used: &mut HashSet<String>, headers: &mut Vec<RestToolHeader>, body_template: &mut Option<String>, notes: &mut Vec<String>) -> Result<(), String> {
    let required = rb.get("required") == Some(&Value::Bool(true));
    let Some(content) = rb.get("content").and_then(Value::as_object).filter(|c| !c.is_empty()) else { return Ok(()) };
    match pick_media(content) {
        Some((media, m)) => {
            add_body_schema(cx, media, m.get("schema").unwrap_or(&json!({})), required, args, used, headers, body_template);
            Ok(())
        }
        None => {
            let types: Vec<&str> = content.keys().map(String::as_str).collect();
            if required {
                Err(format!("the required request body is {}, which the gateway cannot send (JSON and form-urlencoded bodies are supported)", types.join(" or ")))
            } else {
                notes.push(format!("the optional {} request body is not sent by this tool", types.join("/")));
                Ok(())
            }
        }
    }
}

fn add_body_v2(cx: &OpCx<'_>, op: &Map<String, Value>, args: &mut Vec<RestToolArg>, used: &mut HashSet<String>, headers: &mut Vec<RestToolHeader>, body_template: &mut Option<String>, notes: &mut Vec<String>) -> Result<(), String> {
    let params = merged_parameters(cx, op)?;
    let consumes: Vec<String> = op.get("consumes").or_else(|| cx.docs.root.get("consumes")).and_then(Value::as_array).map(|c| c.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_else(|| vec!["application/json".into()]);
    if let Some(body) = params.iter().find(|p| p.get("in").and_then(Value::as_str) == Some("body")) {
        let media = consumes.iter().find(|c| c.contains("json")).cloned().unwrap_or_else(|| "application/json".into());
        add_body_schema(cx, &media, body.get("schema").unwrap_or(&json!({})), body.get("required") == Some(&Value::Bool(true)), args, used, headers, body_template);
        return Ok(());
    }
    let form: Vec<&Value> = params.iter().filter(|p| p.get("in").and_then(Value::as_str) == Some("formData")).collect();
    if form.is_empty() {
        return Ok(());
    }
    let url_encoded = consumes.iter().any(|c| c.contains("x-www-form-urlencoded"));
    for p in form {
        let name = p.get("name").and_then(Value::as_str).unwrap_or("field");
        let required = p.get("required") == Some(&Value::Bool(true));
        if p.get("type").and_then(Value::as_str) == Some("file") || !url_encoded {
            if required {
                return Err(format!("form field `{name}` must be sent as multipart/form-data, which the gateway cannot send"));
            }
            notes.push(format!("the optional multipart field `{name}` is not sent by this tool"));
            continue;
        }
        let arg_name = unique(name, "form", used);
        args.push(RestToolArg {
            wire_name: (arg_name != name).then(|| name.to_string()),
            name: arg_name,
            description: p.get("description").and_then(Value::as_str).unwrap_or("").to_string(),
            required,
            position: Some("body".into()),
            schema: Some(normalize(&swagger2_param_schema(p))),
            ..Default::default()
        });
    }
    if args.iter().any(|a| a.position.as_deref() == Some("body")) {
        headers.push(RestToolHeader { key: "Content-Type".into(), value: "application/x-www-form-urlencoded".into() });
    }
    Ok(())
}

fn output_schema(cx: &OpCx<'_>, op: &Map<String, Value>) -> Option<Value> {
    let responses = op.get("responses")?.as_object()?;
    let (_, resp) = responses.iter().find(|(code, _)| code.starts_with('2'))?;
    let resp = cx.docs.deref(resp)?;
    let schema = match cx.version {
        Version::OpenApi3 => pick_media(resp.get("content")?.as_object()?)?.1.get("schema")?,
        Version::Swagger2 => resp.get("schema")?,
    };
    let s = relax(&normalize(&merge_all_of(&cx.docs.expand(schema))));
    is_object(&s).then_some(s)
}

fn security_for(cx: &OpCx<'_>, op: &Map<String, Value>) -> Option<SecurityRequirement> {
    let reqs = op.get("security").or_else(|| cx.docs.root.get("security"))?.as_array()?;
    // An empty alternative means the operation can be called without credentials.
    if reqs.iter().any(|r| r.as_object().is_some_and(Map::is_empty)) {
        return None;
    }
    // Schemes the gateway cannot inject (oauth2, openIdConnect) are left to the API: the
    // call goes without credentials rather than never.
    reqs.iter().filter_map(Value::as_object).flat_map(|r| r.keys()).find(|id| cx.schemes.iter().any(|s| &s.id == *id && usable(s))).map(|id| SecurityRequirement { id: id.clone(), ..Default::default() })
}

/// When the operation needs credentials and no alternative of its requirement names a
/// scheme the gateway can inject, the schemes it asks for (`OAuth 2 (scheme \`a\`)`).
/// `security_for` then leaves the call without credentials, which the tool should say.
fn unsupplied_auth(cx: &OpCx<'_>, op: &Map<String, Value>) -> Option<String> {
    let reqs = op.get("security").or_else(|| cx.docs.root.get("security"))?.as_array()?;
    let alternatives: Vec<&Map<String, Value>> = reqs.iter().filter_map(Value::as_object).collect();
    if alternatives.is_empty() || alternatives.iter().any(|r| r.is_empty()) || security_for(cx, op).is_some() {
        return None;
    }
    let mut asked: Vec<String> = Vec::new();
    for id in alternatives.iter().flat_map(|r| r.keys()) {
        let label = match cx.schemes.iter().find(|s| &s.id == id) {
            Some(s) => format!("{} (scheme `{id}`)", scheme_label(s)),
            None => format!("the undeclared security scheme `{id}`"),
        };
        if !asked.contains(&label) {
            asked.push(label);
        }
    }
    Some(asked.join(" or "))
}

/// What a scheme the gateway cannot inject is, in words.
fn scheme_label(s: &SecurityScheme) -> String {
    match (s.kind.as_str(), s.scheme.as_deref(), s.location.as_deref()) {
        ("oauth2", ..) => "OAuth 2".into(),
        ("openIdConnect", ..) => "OpenID Connect".into(),
        ("mutualTLS", ..) => "mutual TLS".into(),
        ("http", Some(scheme), _) => format!("HTTP {scheme} authentication"),
        ("apiKey", _, Some(location)) => format!("an API key in `{location}`"),
        (kind, ..) => format!("`{kind}` authentication"),
    }
}

fn check_schema(tool: &RestTool) -> Result<(), String> {
    let file = RestToolsFile { tools: vec![tool.clone()], ..Default::default() };
    let def = crate::rest::server::tool_defs(&file).into_iter().next().ok_or("no tool")?;
    jsonschema::options().should_validate_formats(false).build(&def.input_schema).map(|_| ()).map_err(|e| format!("its input schema does not compile: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn conv(doc: Value) -> Converted {
        convert(&Documents::from_value(doc, Path::new("/tmp/spec.json")), None, "t").unwrap()
    }

    #[test]
    fn names_are_sanitized_and_unique() {
        let mut taken = HashSet::new();
        assert_eq!(tool_name("get pet/by id!", &mut taken), "get_pet_by_id");
        assert_eq!(tool_name("get pet/by id!", &mut taken), "get_pet_by_id_2");
        assert_eq!(tool_name("", &mut taken), "operation");
    }

    #[test]
    fn parameters_body_and_collisions_are_flattened() {
        let c = conv(json!({"openapi": "3.0.0", "servers": [{"url": "https://{env}.example.com/v1", "variables": {"env": {"default": "api"}}}],
            "paths": {"/pets/{id}": {"put": {"operationId": "updatePet", "parameters": [{"name": "id", "in": "path", "schema": {"type": "integer"}}, {"name": "dry", "in": "query", "schema": {"type": "boolean", "default": false}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name"], "properties": {"id": {"type": "integer"}, "name": {"type": "string", "nullable": true}}}}}},
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}}}}}}}}}));
        let t = &c.operations[0].tool;
        assert_eq!(t.name, "updatePet");
        assert_eq!(t.request_template.url, "https://api.example.com/v1/pets/{id}");
        let names: Vec<_> = t.args.iter().map(|a| (a.name.as_str(), a.wire_name.as_deref(), a.position.as_deref(), a.required)).collect();
        assert_eq!(names, vec![("id", None, Some("path"), true), ("dry", None, Some("query"), false), ("body_id", Some("id"), Some("body"), false), ("name", None, Some("body"), true)]);
        assert_eq!(t.args[3].schema.as_ref().unwrap()["type"], json!(["string", "null"]));
        assert_eq!(t.output_schema, Some(json!({"type": "object", "properties": {"id": {"type": "integer"}}})));
        assert_eq!(t.annotations.as_ref().unwrap().idempotent_hint, Some(true));
    }

    #[test]
    fn swagger2_bodies_forms_and_security() {
        let c = conv(json!({"swagger": "2.0", "host": "api.example.com", "basePath": "/v2", "schemes": ["https"],
            "securityDefinitions": {"key": {"type": "apiKey", "in": "header", "name": "X-Key"}}, "security": [{"key": []}],
            "paths": {"/a": {"post": {"consumes": ["application/x-www-form-urlencoded"], "parameters": [{"name": "x", "in": "formData", "type": "string", "required": true}], "responses": {}}},
                      "/b": {"get": {"parameters": [{"name": "ids", "in": "query", "type": "array", "items": {"type": "string"}}], "security": [], "responses": {}}},
                      "/c": {"post": {"consumes": ["multipart/form-data"], "parameters": [{"name": "f", "in": "formData", "type": "file", "required": true}], "responses": {}}}}}));
        assert_eq!(c.operations.len(), 2);
        assert_eq!(c.skipped.len(), 1);
        let a = &c.operations[0].tool;
        assert_eq!(a.request_template.url, "https://api.example.com/v2/a");
        assert_eq!(a.request_template.security.as_ref().unwrap().id, "key");
        assert_eq!(a.request_template.headers[0].value, "application/x-www-form-urlencoded");
        let b = &c.operations[1].tool;
        assert_eq!(b.name, "get_b");
        assert!(b.request_template.security.is_none());
        assert_eq!((b.args[0].style.as_deref(), b.args[0].explode), (Some("form"), Some(false)));
        assert!(c.skipped[0].reason.contains("multipart"));
    }

    #[test]
    fn credentials_the_gateway_cannot_supply_are_named() {
        let c = conv(json!({"swagger": "2.0", "host": "api", "security": [{"auth": []}],
            "securityDefinitions": {"auth": {"type": "oauth2", "flow": "implicit", "authorizationUrl": "https://a/x", "scopes": {}}, "key": {"type": "apiKey", "in": "header", "name": "K"}, "digest": {"type": "http", "scheme": "digest"}},
            "paths": {"/a": {"get": {"responses": {}}},
                      "/b": {"get": {"security": [{"auth": []}, {"key": []}], "responses": {}}},
                      "/c": {"get": {"security": [{"auth": [], "ghost": []}, {"auth": []}], "responses": {}}},
                      "/d": {"get": {"security": [{}, {"auth": []}], "responses": {}}}}}));
        let auth: Vec<_> = c.operations.iter().map(|o| o.unsupplied_auth.as_deref()).collect();
        assert_eq!(auth, [Some("OAuth 2 (scheme `auth`)"), None, Some("OAuth 2 (scheme `auth`) or the undeclared security scheme `ghost`"), None]);
        assert!(c.operations[0].tool.description.ends_with("\n\nRequires OAuth 2 (scheme `auth`), which this gateway does not supply: calls are sent without it."));
        assert_eq!(c.operations[0].auth_warning().as_deref(), Some("GET /a (tool `get_a`): requires OAuth 2 (scheme `auth`), which this gateway does not supply: calls are sent without it"));
        assert!(!c.operations[1].tool.description.contains("Requires"));
        assert_eq!(scheme_label(&c.server.security_schemes.iter().find(|s| s.id == "digest").cloned().unwrap()), "HTTP digest authentication");
    }

    #[test]
    fn non_object_bodies_become_one_argument() {
        let c = conv(json!({"openapi": "3.1.0", "paths": {"/x": {"post": {"requestBody": {"content": {"application/json": {"schema": {"type": "array", "items": {"type": "string"}}}}}, "responses": {}}}}}));
        let t = &c.operations[0].tool;
        assert_eq!(t.args[0].name, "body");
        assert_eq!(t.request_template.body.as_deref(), Some("{{toJson .args.body}}"));
    }

    #[test]
    fn not_openapi_is_an_error() {
        assert!(convert(&Documents::from_value(json!({"hello": 1}), Path::new("x")), None, "t").is_err());
    }
}
