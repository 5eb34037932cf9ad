//! `RestServer`: a REST tool file prepared for serving.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::model::{RestTool, RestToolArg, RestToolsFile, SecurityRequirement, SecurityScheme};
use super::request::{self, ArgPlan, Position};
use super::response::ResponsePlan;
use super::scrub::{sensitive_name, Scrubber, SecretSet};
use super::template::{Context, Data, Template};
use super::{RestError, RestSettings};
use crate::tools::{CallContext, CallOutcome, CallToolResult, HttpCall, ToolAnnotations, ToolDef, ToolServer, UpstreamResponse, UpstreamTarget};

/// How a tool sends its body.
#[derive(Debug)]
enum BodyPlan {
    None,
    Template(Template, bool),
    Json,
    Form,
}

/// Where the upstream credential goes.
#[derive(Debug, Clone)]
enum Credential {
    Header(http::HeaderName, http::HeaderValue),
    Query(String, String),
    Cookie(String, String),
}

/// The credential situation of a tool, resolved at load.
#[derive(Debug, Clone)]
enum Security {
    None,
    Ready(Credential),
    Missing(String),
}

#[derive(Debug)]
struct Prepared {
    method: http::Method,
    /// `None` for direct-response tools; `Err` when the host did not resolve at load (the
    /// call says so; the next reload tries again).
    target: Option<Result<Arc<UpstreamTarget>, String>>,
    url: Template,
    headers: Vec<(http::HeaderName, Template)>,
    body: BodyPlan,
    args: Vec<ArgPlan>,
    security: Security,
    passthrough_auth: bool,
    response: ResponsePlan,
    direct: Option<Template>,
    defaults: DefaultArgs,
    /// Whether any request template (URL, header, body) has an action to render.
    templated: bool,
    /// `scheme://host[:port]` exactly as the URL template renders it.
    origin: String,
    /// The request target of a URL with no template actions (every OpenAPI tool),
    /// split at its `{name}` path placeholders, so a call builds it without rendering,
    /// replacing or parsing a URL.
    target_plan: Option<TargetPlan>,
}

/// A static URL's request target: literal pieces and path arguments, then the query.
#[derive(Debug)]
struct TargetPlan {
    parts: Vec<TargetPart>,
    query: String,
}

#[derive(Debug)]
enum TargetPart {
    /// Text sent as it is (checked clean at load).
    Literal(String),
    /// The encoded value of `args[index]` (a path argument).
    Arg(usize),
}

impl TargetPlan {
    /// Splits the part of `url` after `origin`, if every placeholder names one path
    /// argument and the literal text is what a URL parser would keep unchanged.
    fn new(url: &str, origin: &str, args: &[ArgPlan]) -> Option<TargetPlan> {
        let rest = url.strip_prefix(origin).filter(|r| origin.contains("://") && !origin.contains(['{', '}']) && (r.is_empty() || r.starts_with('/')))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if query.contains(['{', '}', '#']) || split_clean_url(&format!("{origin}/?{query}"), origin).is_none() {
            return None;
        }
        let mut parts = Vec::new();
        let mut tail = path;
        while let Some(open) = tail.find('{') {
            let close = tail[open..].find('}')? + open;
            let name = &tail[open + 1..close];
            let index = args.iter().position(|a| a.position == Position::Path && a.wire == name)?;
            if open > 0 {
                parts.push(TargetPart::Literal(tail[..open].to_string()));
            }
            parts.push(TargetPart::Arg(index));
            tail = &tail[close + 1..];
        }
        if !tail.is_empty() || parts.is_empty() {
            parts.push(TargetPart::Literal(if path.is_empty() { "/".to_string() } else { tail.to_string() }));
        }
        let literal: String = parts.iter().map(|p| if let TargetPart::Literal(l) = p { l.as_str() } else { "x" }).collect();
        if literal.contains('}') || split_clean_url(&format!("{origin}{literal}"), origin).is_none() {
            return None;
        }
        Some(TargetPlan { parts, query: query.to_string() })
    }

    /// The path with `segments` (encoded path values by argument index) in place; `None`
    /// when one is missing or the result would hold a dot segment, and the general path
    /// decides.
    fn path(&self, segments: &[Option<String>]) -> Option<String> {
        let mut out = String::with_capacity(64);
        for part in &self.parts {
            match part {
                TargetPart::Literal(l) => out.push_str(l),
                TargetPart::Arg(i) => out.push_str(segments.get(*i)?.as_deref()?),
            }
        }
        // A dot segment needs a `.` or a `%` (`%2e`); most paths have neither.
        if !out.bytes().any(|b| b == b'.' || b == b'%') {
            return Some(out);
        }
        let dot = |seg: &str| [".", "..", "%2e", "%2e%2e", ".%2e", "%2e."].iter().any(|d| seg.eq_ignore_ascii_case(d));
        (!out.split('/').any(dot)).then_some(out)
    }
}

/// Where position-less ("default") arguments go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DefaultArgs {
    /// `argsToUrlParam`.
    Query,
    /// `argsToJsonBody` / `argsToFormBody`.
    Body,
    /// Only templates see them.
    Template,
}

/// A served set of REST tools.
pub struct RestServer {
    defs: Vec<ToolDef>,
    tools: Vec<Prepared>,
    config: Value,
    max_response_bytes: usize,
    /// Removes this server's configured secrets from everything upstream-derived a client
    /// sees (error excerpts, echoed requests, headers quoted by error templates).
    scrubber: Scrubber,
    /// What limits the tools served, found at load (a credential not configured, one the
    /// gateway cannot supply), shown in `/readyz` and `/admin/servers`.
    warnings: Vec<String>,
}

fn err(route: &str, tool: &str, msg: impl std::fmt::Display) -> RestError {
    RestError::Tool { route: route.to_string(), tool: tool.to_string(), message: msg.to_string() }
}

impl RestServer {
    /// Prepares a tool file for serving: parses templates, resolves upstream hosts, builds
    /// input schemas. Fails with a message naming the tool and the construct at fault.
    pub async fn new(route: &str, file: RestToolsFile, settings: RestSettings, cx: &crate::runtime::BuildContext<'_>) -> Result<RestServer, RestError> {
        if file.tool_set.is_some() {
            return Err(RestError::Unsupported(format!("server `{route}`: `toolSet` composition is not supported yet; list the tools directly")));
        }
        if let Some(kind) = file.server.kind.as_deref().filter(|k| *k != "rest") {
            return Err(RestError::Unsupported(format!("server `{route}`: server.type `{kind}` is not a REST tool server")));
        }
        let config = Value::Object(file.server.config.clone().unwrap_or_default());
        let allow: Option<Vec<&str>> = file.allow_tools.as_ref().map(|a| a.iter().map(String::as_str).collect());
        let mut targets: HashMap<String, Arc<UpstreamTarget>> = HashMap::new();
        let mut defs = Vec::new();
        let mut tools = Vec::new();
        let mut secrets = SecretSet::default();
        let mut warnings = Vec::new();
        config_secrets(&config, false, &mut secrets);
        for v in cx.env_values.get(route).into_iter().flatten() {
            secrets.add(v);
        }
        for tool in &file.tools {
            if allow.as_ref().is_some_and(|a| !a.contains(&tool.name.as_str())) {
                continue;
            }
            let prepared = prepare(route, tool, &file, &settings, &config, &mut targets, &mut secrets).await?;
            if let Security::Missing(m) = &prepared.security {
                log::warn!("server `{route}`, tool `{}`: {m}", tool.name);
                warnings.push(format!("tool `{}`: {m}; its calls fail", tool.name));
            }
            defs.push(tool_def(tool));
            tools.push(prepared);
        }
        if let Some(a) = &allow {
            for name in a {
                if !file.tools.iter().any(|t| t.name == *name) {
                    log::warn!("server `{route}`: allowTools names `{name}`, which is not defined");
                }
            }
        }
        Ok(RestServer { defs, tools, config, max_response_bytes: settings.max_response_bytes, scrubber: secrets.build(), warnings })
    }

    /// Adds what the server's source knows limits it (an OpenAPI operation whose
    /// credentials the gateway cannot supply) to the warnings its status shows.
    pub fn with_warnings(mut self, mut found: Vec<String>) -> Self {
        found.append(&mut self.warnings);
        self.warnings = found;
        self
    }
}

/// Values in `server.config` under secret-sounding keys (`apiKey`, `token`, ...), at any
/// depth: templates put them into requests.
fn config_secrets(v: &Value, under_secret: bool, out: &mut SecretSet) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| config_secrets(v, under_secret || sensitive_name(k), out)),
        Value::Array(a) => a.iter().for_each(|v| config_secrets(v, under_secret, out)),
        Value::String(s) if under_secret => out.add(s),
        Value::Number(n) if under_secret => out.add(&n.to_string()),
        _ => {}
    }
}

fn arg_schema(a: &RestToolArg) -> Value {
    let mut s = match &a.schema {
        Some(Value::Object(m)) => m.clone(),
        _ => {
            let mut m = Map::new();
            m.insert("type".into(), Value::String(a.kind.clone().unwrap_or_else(|| "string".into())));
            if let Some(e) = &a.enum_values {
                m.insert("enum".into(), Value::Array(e.clone()));
            }
            if let Some(i) = &a.items {
                m.insert("items".into(), i.clone());
            }
            if let Some(p) = &a.properties {
                m.insert("properties".into(), p.clone());
            }
            if let Some(f) = &a.format {
                m.insert("format".into(), Value::String(f.clone()));
            }
            m
        }
    };
    if !a.description.is_empty() && !s.contains_key("description") {
        s.insert("description".into(), Value::String(a.description.clone()));
    }
    if let Some(d) = &a.default {
        s.entry("default").or_insert_with(|| d.clone());
    }
    Value::Object(s)
}

/// The MCP tool definitions of a tool file (all tools, ignoring `allowTools`).
pub fn tool_defs(file: &RestToolsFile) -> Vec<ToolDef> {
    file.tools.iter().map(tool_def).collect()
}

fn tool_def(tool: &RestTool) -> ToolDef {
    let visible: Vec<&RestToolArg> = tool.args.iter().filter(|a| a.fixed.is_none()).collect();
    let properties: Map<String, Value> = visible.iter().map(|a| (a.name.clone(), arg_schema(a))).collect();
    let required: Vec<Value> = visible.iter().filter(|a| a.required).map(|a| Value::String(a.name.clone())).collect();
    let mut input = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        input["required"] = Value::Array(required);
    }
    let method = tool.request_template.method.to_ascii_uppercase();
    let annotations = tool.annotations.clone().or_else(|| {
        (!tool.request_template.url.is_empty()).then(|| ToolAnnotations {
            read_only_hint: matches!(method.as_str(), "GET" | "HEAD" | "").then_some(true),
            destructive_hint: (method == "DELETE").then_some(true),
            idempotent_hint: matches!(method.as_str(), "PUT" | "DELETE" | "GET" | "HEAD" | "").then_some(true),
            open_world_hint: Some(true),
            ..Default::default()
        })
    });
    ToolDef {
        name: tool.name.clone(),
        title: tool.title.clone(),
        description: (!tool.description.is_empty()).then(|| tool.description.clone()),
        input_schema: input,
        output_schema: tool.output_schema.clone().filter(|s| s.get("type").and_then(Value::as_str) == Some("object")),
        annotations,
    }
}

async fn prepare(route: &str, tool: &RestTool, file: &RestToolsFile, settings: &RestSettings, config: &Value, targets: &mut HashMap<String, Arc<UpstreamTarget>>, secrets: &mut SecretSet) -> Result<Prepared, RestError> {
    let e = |m: String| err(route, &tool.name, m);
    let rt = &tool.request_template;
    let resp = &tool.response_template;
    if resp.body.is_some() && (resp.prepend_body.is_some() || resp.append_body.is_some()) {
        return Err(e("responseTemplate.body cannot be combined with prependBody/appendBody".into()));
    }
    if [rt.args_to_json_body, rt.args_to_url_param, rt.args_to_form_body].iter().filter(|b| **b).count() > 1 {
        return Err(e("only one of argsToJsonBody, argsToUrlParam, or argsToFormBody can be set to true".into()));
    }
    let parse = |src: &str, ctx: Context, field: &str| Template::parse(src, ctx).map_err(|t| e(format!("{field}: {t}")));
    let response = ResponsePlan {
        // A template that writes JSON escapes values as JSON; one that writes prose does not.
        body: resp.body.as_deref().map(|b| parse(b, if b.trim_start().starts_with(['{', '[']) { Context::Json } else { Context::Text }, "responseTemplate.body")).transpose()?,
        prepend: resp.prepend_body.clone(),
        append: resp.append_body.clone(),
        error: tool.error_response_template.as_deref().map(|b| parse(b, Context::Text, "errorResponseTemplate")).transpose()?,
        label: String::new(),
        structured_required: tool.output_schema.as_ref().is_some_and(|s| s.get("type").and_then(Value::as_str) == Some("object")),
    };
    let args = tool
        .args
        .iter()
        .map(|a| {
            let position = Position::parse(a.position.as_deref()).map_err(|m| e(format!("argument `{}`: {m}", a.name)))?;
            let wire = a.wire_name.clone().unwrap_or_else(|| a.name.clone());
            if position == Position::Header && http::HeaderName::from_bytes(wire.as_bytes()).is_err() {
                return Err(e(format!("argument `{}`: `{wire}` is not a valid header name", a.name)));
            }
            Ok(ArgPlan { name: a.name.clone(), wire, position, style: a.style.clone(), explode: a.explode, default: a.default.clone(), fixed: a.fixed.clone() })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if rt.url.is_empty() {
        let body = response.body.clone().ok_or_else(|| e("a tool without requestTemplate.url is a direct-response tool and needs responseTemplate.body".into()))?;
        return Ok(Prepared {
            method: http::Method::GET,
            target: None,
            url: parse("", Context::Url, "url")?,
            headers: vec![],
            body: BodyPlan::None,
            args,
            security: Security::None,
            passthrough_auth: false,
            response,
            direct: Some(body),
            defaults: DefaultArgs::Template,
            templated: true,
            origin: String::new(),
            target_plan: None,
        });
    }
    let method_text = if rt.method.is_empty() { "GET".to_string() } else { rt.method.to_ascii_uppercase() };
    let method = http::Method::from_bytes(method_text.as_bytes()).map_err(|_| e(format!("invalid method `{}`", rt.method)))?;
    // `.config` is static: render it now, so only `.args` remain for call time.
    let url_src = render_config(&rt.url, config).map_err(|m| e(format!("requestTemplate.url: {m}")))?;
    let url = parse(&url_src, Context::Url, "requestTemplate.url")?;
    if url.mentions_args_before_path() {
        return Err(e("requestTemplate.url: the scheme and host must not depend on arguments".into()));
    }
    let probe = url.render(&Data { root: &json!({"config": config, "args": {}}), root_text: None, client_ip: None }).map_err(|t| e(format!("requestTemplate.url: {t}")))?;
    let parsed = url::Url::parse(&probe).map_err(|p| e(format!("requestTemplate.url `{probe}` is not an absolute URL: {p}")))?;
    let origin = origin_of(&probe).to_string();
    let target = match resolve(&parsed, settings, targets).await {
        Ok(t) => Ok(t),
        Err(m) if m.starts_with("cannot resolve") || m.ends_with("has no address") => {
            log::warn!("server `{route}`, tool `{}`: {m}; calls fail until a reload resolves it", tool.name);
            Err(m)
        }
        Err(m) => return Err(e(m)),
    };
    let mut headers = Vec::with_capacity(rt.headers.len());
    let mut content_type = None;
    for h in &rt.headers {
        let name = http::HeaderName::from_bytes(h.key.as_bytes()).map_err(|_| e(format!("requestTemplate.headers: `{}` is not a valid header name", h.key)))?;
        if name == http::header::CONTENT_TYPE {
            content_type = Some(h.value.to_ascii_lowercase());
        }
        headers.push((name, parse(&h.value, Context::Header, &format!("requestTemplate.headers[{}]", h.key))?));
    }
    let form_ct = content_type.as_deref().is_some_and(|c| c.contains("x-www-form-urlencoded"));
    let body = match &rt.body {
        Some(b) => {
            let json_ctx = content_type.as_deref().map_or_else(|| b.trim_start().starts_with(['{', '[']), |c| c.contains("json"));
            BodyPlan::Template(parse(b, if json_ctx { Context::Json } else { Context::Text }, "requestTemplate.body")?, json_ctx)
        }
        None if rt.args_to_json_body => BodyPlan::Json,
        None if rt.args_to_form_body => BodyPlan::Form,
        None if args.iter().any(|a| a.position == Position::Body) => {
            if form_ct {
                BodyPlan::Form
            } else {
                BodyPlan::Json
            }
        }
        None => BodyPlan::None,
    };
    let requirement = rt.security.as_ref().or(file.server.default_upstream_security.as_ref());
    let security = match requirement {
        None => Security::None,
        Some(r) => resolve_security(r, &file.server.security_schemes, settings, secrets).map_err(e)?,
    };
    literal_secrets(tool, &parsed, &headers, config, secrets);
    let passthrough_auth = file.server.passthrough_auth_header.unwrap_or(false) || tool.security.as_ref().or(file.server.default_downstream_security.as_ref()).is_some_and(|s| s.passthrough);
    let label = format!("{method} {}", parsed.path());
    let defaults = if rt.args_to_url_param {
        DefaultArgs::Query
    } else if rt.args_to_json_body || rt.args_to_form_body {
        DefaultArgs::Body
    } else {
        DefaultArgs::Template
    };
    let templated = !url.is_static() || headers.iter().any(|(_, t)| !t.is_static()) || matches!(&body, BodyPlan::Template(t, _) if !t.is_static());
    let target_plan = if url.is_static() { TargetPlan::new(&probe, &origin, &args) } else { None };
    Ok(Prepared {
        defaults,
        method,
        target: Some(target),
        url,
        headers,
        body,
        args,
        security,
        passthrough_auth,
        response: ResponsePlan { label: percent_encoding::percent_decode_str(&label).decode_utf8_lossy().into_owned(), ..response },
        direct: None,
        templated,
        origin,
        target_plan,
    })
}

fn render_config(src: &str, config: &Value) -> Result<String, String> {
    // Replace only `{{.config.x}}` actions; everything else is kept for call time.
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find("}}").ok_or("unclosed action")? + i + 2;
        let action = &rest[i..end];
        let inner = action.trim_start_matches("{{").trim_end_matches("}}").trim_matches(|c: char| c == '-' || c.is_whitespace());
        match inner.strip_prefix(".config.") {
            Some(path) if !path.contains(char::is_whitespace) => {
                let v = path.split('.').try_fold(config, |v, k| v.get(k)).ok_or_else(|| format!("`.config.{path}` is not set in server.config"))?;
                out.push_str(&request::scalar_text(v));
            }
            _ => out.push_str(action),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    Ok(out)
}

async fn resolve(url: &url::Url, settings: &RestSettings, cache: &mut HashMap<String, Arc<UpstreamTarget>>) -> Result<Arc<UpstreamTarget>, String> {
    let tls = match url.scheme() {
        "https" => true,
        "http" => false,
        other => return Err(format!("unsupported URL scheme `{other}` (http or https)")),
    };
    let host = url.host_str().ok_or("the URL has no host")?.to_string();
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let key = format!("{tls}|{host}|{port}");
    if let Some(t) = cache.get(&key) {
        return Ok(t.clone());
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addr = tokio::net::lookup_host((bare, port)).await.map_err(|e| format!("cannot resolve `{host}`: {e}"))?.next().ok_or_else(|| format!("`{host}` has no address"))?;
    let default_port = (tls && port == 443) || (!tls && port == 80);
    let host_header = if default_port { host.clone() } else { format!("{host}:{port}") };
    let target = Arc::new(UpstreamTarget::new(addr, tls, bare.to_string(), host_header, settings.connect_timeout, settings.timeout).ok_or_else(|| format!("`{host}` cannot be sent as a Host header"))?);
    cache.insert(key, target.clone());
    Ok(target)
}

/// Secrets a tool sends from its own definition: values of secret-sounding query
/// parameters in its URL, the URL's password, secret-sounding headers (as they render
/// from `server.config`) and fixed arguments.
fn literal_secrets(tool: &RestTool, url: &url::Url, headers: &[(http::HeaderName, Template)], config: &Value, out: &mut SecretSet) {
    if let Some(p) = url.password() {
        out.add(&percent_encoding::percent_decode_str(p).decode_utf8_lossy());
    }
    for (_, v) in url.query_pairs().filter(|(k, _)| sensitive_name(k)) {
        out.add(&v);
    }
    let root = json!({"config": config, "args": {}});
    for (_, t) in headers.iter().filter(|(n, _)| sensitive_name(n.as_str())) {
        if let Ok(v) = t.render(&Data { root: &root, root_text: None, client_ip: None }) {
            out.add_header_value(&v);
        }
    }
    for a in tool.args.iter().filter(|a| sensitive_name(&a.name) || a.wire_name.as_deref().is_some_and(sensitive_name)) {
        if let Some(v) = &a.fixed {
            out.add(&request::scalar_text(v));
        }
    }
}

fn resolve_security(r: &SecurityRequirement, schemes: &[SecurityScheme], settings: &RestSettings, secrets: &mut SecretSet) -> Result<Security, String> {
    let scheme = schemes.iter().find(|s| s.id == r.id).ok_or_else(|| format!("security scheme `{}` is not defined in server.securitySchemes", r.id))?;
    let Some(cred) = settings.credentials.get(&r.id).cloned().or_else(|| r.credential.clone()).or_else(|| scheme.default_credential.clone()).filter(|c| !c.is_empty()) else {
        return Ok(Security::Missing(format!("no credential for security scheme `{}`: set `credentials: {{{}: ...}}` in the server's config", r.id, r.id)));
    };
    if cred.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!("the credential for `{}` contains a line break", r.id));
    }
    let hv = |s: String| http::HeaderValue::from_str(&s).map_err(|_| format!("the credential for `{}` is not a valid header value", r.id));
    if scheme.scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("basic")) {
        secrets.add_basic(&cred);
    } else {
        secrets.add(&cred);
    }
    let cred = match (scheme.kind.as_str(), scheme.scheme.as_deref().map(str::to_ascii_lowercase).as_deref(), scheme.location.as_deref()) {
        ("http", Some("basic"), _) => Credential::Header(http::header::AUTHORIZATION, hv(format!("Basic {}", STANDARD.encode(cred)))?),
        ("http", Some("bearer"), _) => Credential::Header(http::header::AUTHORIZATION, hv(format!("Bearer {cred}"))?),
        ("apiKey", _, loc) => {
            let name = scheme.name.clone().ok_or_else(|| format!("apiKey scheme `{}` has no `name`", r.id))?;
            match loc {
                Some("header") | None => Credential::Header(http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("`{name}` is not a header name"))?, hv(cred)?),
                Some("query") => Credential::Query(name, cred),
                Some("cookie") => Credential::Cookie(name, cred),
                Some(other) => return Err(format!("apiKey scheme `{}`: unsupported location `{other}`", r.id)),
            }
        }
        (kind, s, _) => return Ok(Security::Missing(format!("security scheme `{}` ({kind}{}) cannot be injected by the gateway; use apiKey, http basic or http bearer", r.id, s.map(|s| format!(" {s}")).unwrap_or_default()))),
    };
    Ok(Security::Ready(cred))
}

/// `scheme://authority` of an absolute URL: everything before the path.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..].find(['/', '?', '#']).map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// Splits a rendered URL into path and query without a URL parser when nothing in it
/// needs one: it starts with the tool's fixed origin, holds only characters a parser
/// would keep as they are, and has no dot segment. Anything else returns `None` and goes
/// through `url::Url::parse`, which normalizes (and checks the host).
fn split_clean_url<'u>(url: &'u str, origin: &str) -> Option<(&'u str, &'u str)> {
    let rest = url.strip_prefix(origin).filter(|r| origin.contains("://") && (r.is_empty() || r.starts_with('/')))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let keeps = |b: u8, extra: &[u8]| b.is_ascii_alphanumeric() || b"-._~!$&()*+,;=:@/%".contains(&b) || extra.contains(&b);
    if !path.bytes().all(|b| keeps(b, b"'")) || !query.bytes().all(|b| keeps(b, b"?")) {
        return None;
    }
    let dot = |seg: &str| [".", "..", "%2e", "%2e%2e", ".%2e", "%2e."].iter().any(|d| seg.eq_ignore_ascii_case(d));
    if path.split('/').any(dot) {
        return None;
    }
    Some((if path.is_empty() { "/" } else { path }, query))
}

// Header values every call sends, built at compile time (`from_static` at run time checks
// each byte again on every call).
const JSON: http::HeaderValue = http::HeaderValue::from_static("application/json");
const JSON_UTF8: http::HeaderValue = http::HeaderValue::from_static("application/json; charset=utf-8");
const FORM: http::HeaderValue = http::HeaderValue::from_static("application/x-www-form-urlencoded");
const ANY: http::HeaderValue = http::HeaderValue::from_static("*/*");
const IDENTITY: http::HeaderValue = http::HeaderValue::from_static("identity");
const USER_AGENT: http::HeaderValue = http::HeaderValue::from_static(concat!("mcpgate/", env!("CARGO_PKG_VERSION")));

impl Prepared {
    fn build(&self, args: &Map<String, Value>, config: &Value, cx: CallContext<'_>, max: usize) -> Result<HttpCall, String> {
        let target = match &self.target {
            Some(Ok(t)) => t,
            Some(Err(m)) => return Err(format!("the API is unreachable: {m}")),
            None => return Err("direct-response tool".into()),
        };
        // OpenAPI tools have no template actions at all: no root to build for them.
        let root = if self.templated { json!({"config": config, "args": Value::Object(args.clone())}) } else { Value::Null };
        let data = Data { root: &root, root_text: None, client_ip: cx.client_ip };
        // With a target plan the path values are collected by argument index and the
        // URL is only rendered if the plan cannot place them.
        let mut segments: Vec<Option<String>> = if self.target_plan.is_some() { vec![None; self.args.len()] } else { Vec::new() };
        let mut url = if self.target_plan.is_some() { String::new() } else { self.url.render(&data).map_err(|e| format!("requestTemplate.url: {e}"))? };
        let mut query: Vec<(String, String)> = Vec::new();
        let mut headers: Vec<(http::HeaderName, http::HeaderValue)> = Vec::with_capacity(self.headers.len() + 4);
        let mut cookies: Vec<String> = Vec::new();
        let mut body_args = Map::new();
        for (index, plan, value) in request::effective_args(&self.args, args) {
            match plan.position {
                Position::Path => {
                    let segment = request::path_value(plan, value);
                    // URL parsers (and most servers) resolve `.` and `..` — encoded or not —
                    // as dot segments, which would move the call to another path.
                    if segment == "." || segment == ".." {
                        return Err(format!("argument `{}`: `{segment}` cannot be a path segment (it would change the request path)", plan.name));
                    }
                    match segments.get_mut(index) {
                        Some(slot) => *slot = Some(segment),
                        None => url = url.replace(&format!("{{{}}}", plan.wire), &segment),
                    }
                }
                Position::Query => request::query_pairs(plan, value, &mut query),
                Position::Header => headers.push((http::HeaderName::from_bytes(plan.wire.as_bytes()).map_err(|e| e.to_string())?, request::header_value(&plan.name, value).map_err(|e| e.0)?)),
                Position::Cookie => cookies.push(format!("{}={}", plan.wire, request::cookie_value(value))),
                Position::Body => {
                    body_args.insert(plan.wire.clone(), value.clone());
                }
                Position::Default => match self.defaults {
                    DefaultArgs::Query => request::query_pairs(plan, value, &mut query),
                    DefaultArgs::Body => {
                        body_args.insert(plan.wire.clone(), value.clone());
                    }
                    DefaultArgs::Template => {}
                },
            }
        }
        let planned = self.target_plan.as_ref().and_then(|t| Some((t.path(&segments)?, t.query.clone())));
        if planned.is_none() && self.target_plan.is_some() {
            url = self.url.render(&data).map_err(|e| format!("requestTemplate.url: {e}"))?;
            for (index, plan, _) in request::effective_args(&self.args, args) {
                if let Some(Some(segment)) = segments.get(index) {
                    url = url.replace(&format!("{{{}}}", plan.wire), segment);
                }
            }
        }
        let split = match planned {
            Some(p) => Some(p),
            None => split_clean_url(&url, &self.origin).map(|(path, query)| (path.to_string(), query.to_string())),
        };
        let (mut path_and_query, mut q) = match split {
            Some(split) => split,
            None => {
                let parsed = url::Url::parse(&url).map_err(|e| format!("the request URL is invalid: {e}"))?;
                if parsed.host_str().map(|h| h.trim_start_matches('[').trim_end_matches(']')) != Some(target.sni.as_str()) {
                    return Err("the request URL's host changed; refusing to send".into());
                }
                (parsed.path().to_string(), parsed.query().map(str::to_owned).unwrap_or_default())
            }
        };
        if let Security::Ready(Credential::Query(k, v)) = &self.security {
            query.push((k.clone(), v.clone()));
        }
        if !query.is_empty() {
            if !q.is_empty() {
                q.push('&');
            }
            q.push_str(&request::form_encode(&query));
        }
        if !q.is_empty() {
            path_and_query.push('?');
            path_and_query.push_str(&q);
        }
        for (name, t) in &self.headers {
            let v = t.render(&data).map_err(|e| format!("header `{name}`: {e}"))?;
            headers.push((name.clone(), http::HeaderValue::from_str(&v).map_err(|_| format!("header `{name}` rendered to an invalid value"))?));
        }
        match &self.security {
            Security::None => {}
            Security::Missing(m) => return Err(m.clone()),
            Security::Ready(Credential::Header(n, v)) => headers.push((n.clone(), v.clone())),
            Security::Ready(Credential::Cookie(n, v)) => cookies.push(format!("{n}={}", request::cookie_value(&Value::String(v.clone())))),
            Security::Ready(Credential::Query(..)) => {}
        }
        if self.passthrough_auth {
            if let Some(a) = cx.headers.get(http::header::AUTHORIZATION) {
                headers.retain(|(n, _)| n != http::header::AUTHORIZATION);
                headers.push((http::header::AUTHORIZATION, a.clone()));
            }
        }
        if !cookies.is_empty() {
            headers.push((http::header::COOKIE, http::HeaderValue::from_str(&cookies.join("; ")).map_err(|_| "invalid cookie".to_string())?));
        }
        let has = |hs: &Vec<(http::HeaderName, http::HeaderValue)>, n: &http::HeaderName| hs.iter().any(|(k, _)| k == n);
        let body: Bytes = match &self.body {
            BodyPlan::None => Bytes::new(),
            BodyPlan::Template(t, json_ctx) => {
                let mut b = t.render(&data).map_err(|e| format!("requestTemplate.body: {e}"))?;
                if *json_ctx && matches!(b.trim(), "" | "null") {
                    // An optional body argument that was not given: send no body.
                    b.clear();
                }
                let is_json = serde_json::from_str::<Value>(&b).is_ok_and(|v| v.is_object() || v.is_array());
                if *json_ctx && !b.is_empty() && !is_json {
                    return Err("requestTemplate.body did not render to valid JSON".into());
                }
                if b.is_empty() {
                    headers.retain(|(n, _)| n != http::header::CONTENT_TYPE);
                } else if is_json && !has(&headers, &http::header::CONTENT_TYPE) {
                    headers.push((http::header::CONTENT_TYPE, JSON_UTF8));
                }
                Bytes::from(b)
            }
            BodyPlan::Json => {
                if !has(&headers, &http::header::CONTENT_TYPE) {
                    headers.push((http::header::CONTENT_TYPE, JSON));
                }
                Bytes::from(Value::Object(body_args).to_string())
            }
            BodyPlan::Form => {
                let mut pairs = Vec::new();
                for (k, v) in &body_args {
                    let plan = ArgPlan { name: k.clone(), wire: k.clone(), position: Position::Body, style: None, explode: Some(true), default: None, fixed: None };
                    request::query_pairs(&plan, v, &mut pairs);
                }
                if !has(&headers, &http::header::CONTENT_TYPE) {
                    headers.push((http::header::CONTENT_TYPE, FORM));
                }
                Bytes::from(request::form_encode(&pairs))
            }
        };
        if !has(&headers, &http::header::ACCEPT) {
            headers.push((http::header::ACCEPT, ANY));
        }
        headers.push((http::header::ACCEPT_ENCODING, IDENTITY));
        headers.push((http::header::USER_AGENT, USER_AGENT));
        Ok(HttpCall { target: target.clone(), method: self.method.clone(), path_and_query, headers, body, max_response_bytes: max })
    }
}

#[async_trait]
impl ToolServer for RestServer {
    fn tools(&self) -> &[ToolDef] {
        &self.defs
    }

    async fn call(&self, index: usize, args: Map<String, Value>, cx: CallContext<'_>) -> CallOutcome {
        let Some(tool) = self.tools.get(index) else {
            return CallOutcome::Done(CallToolResult::error("unknown tool"));
        };
        if let Some(direct) = &tool.direct {
            let root = json!({"config": self.config, "args": Value::Object(args)});
            return CallOutcome::Done(match direct.render(&Data { root: &root, root_text: None, client_ip: cx.client_ip }) {
                Ok(text) => match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => CallToolResult { structured_content: Some(v.into()), ..CallToolResult::text(text) },
                    _ => CallToolResult::text(text),
                },
                Err(e) => CallToolResult::error(format!("responseTemplate failed: {e}")),
            });
        }
        match tool.build(&args, &self.config, cx, self.max_response_bytes) {
            Ok(call) => CallOutcome::Http(Box::new(call)),
            Err(message) => CallOutcome::Done(CallToolResult::error(message)),
        }
    }

    fn finish_http(&self, index: usize, response: &UpstreamResponse<'_>) -> CallToolResult {
        match self.tools.get(index) {
            Some(t) => self.scrubber.scrub_result(t.response.map(response, None)),
            None => CallToolResult::error("unknown tool"),
        }
    }

    fn status(&self) -> Option<Value> {
        (!self.warnings.is_empty()).then(|| json!({"warnings": self.warnings}))
    }
}

#[cfg(test)]
mod tests {
    use super::{origin_of, split_clean_url, ArgPlan, Position, TargetPlan};
    use crate::tools::{Content, UpstreamResponse};

    #[tokio::test]
    async fn env_values_under_innocent_names_are_scrubbed_too() {
        std::env::set_var("MCPGATE_TEST_TENANT_SECRET", "tenant-9f8e7d6c");
        let yaml = "servers:\n  - name: t\n    type: rest\n    description: \"${MCPGATE_TEST_TENANT_SECRET}\"\n    server: {name: t}\n    tools:\n      - name: x\n        requestTemplate:\n          url: http://127.0.0.1:9/x\n          headers: [{key: X-Tenant, value: \"${MCPGATE_TEST_TENANT_SECRET}\"}]\n";
        let config = crate::config::Config::parse(yaml, std::path::Path::new("/tmp/t.yaml")).unwrap();
        // Once for the header; the description only describes.
        assert_eq!(config.env_values.get("t"), Some(&vec!["tenant-9f8e7d6c".to_string()]));
        let crate::config::ServerKind::Rest(rest) = &config.servers[0].kind else { panic!("a rest server") };
        let cx = crate::runtime::BuildContext { base_dir: std::path::Path::new("/tmp"), upstream: &config.upstream, previous: None, env_values: &config.env_values };
        let routes = crate::rest::build("t", rest, &cx).await.unwrap();
        let headers = http::HeaderMap::new();
        let r = routes[0].server.finish_http(0, &UpstreamResponse { status: 500, headers: &headers, body: b"X-Tenant: tenant-9f8e7d6c", truncated: false });
        assert!(r.is_error && matches!(&r.content[0], Content::Text { text } if text.ends_with("X-Tenant: [redacted]")), "{r:?}");
    }

    fn path_arg(wire: &str) -> ArgPlan {
        ArgPlan { name: wire.into(), wire: wire.into(), position: Position::Path, style: None, explode: None, default: None, fixed: None }
    }

    #[test]
    fn static_urls_split_into_a_target_plan() {
        let o = "http://api:8080";
        let args = [path_arg("id"), path_arg("sub"), ArgPlan { position: Position::Query, ..path_arg("q") }];
        let plan = TargetPlan::new("http://api:8080/v1/items/{id}/parts/{sub}?fixed=1", o, &args).expect("a plan");
        let seg = |v: &[Option<&str>]| v.iter().map(|s| s.map(String::from)).collect::<Vec<_>>();
        assert_eq!(plan.path(&seg(&[Some("42"), Some("a%2Fb"), None])).as_deref(), Some("/v1/items/42/parts/a%2Fb"));
        assert_eq!(plan.query, "fixed=1");
        // A missing value, or values that would make a dot segment, go the general way.
        assert_eq!(plan.path(&seg(&[Some("42"), None, None])), None);
        let dots = TargetPlan::new("http://api:8080/a/.{id}", o, &args).expect("a plan");
        assert_eq!(dots.path(&seg(&[Some("."), None, None])), None, "`.` + `.` would make `..`");
        assert_eq!(TargetPlan::new("http://api:8080", o, &args).expect("a plan").path(&[]).as_deref(), Some("/"));
        // No plan: a placeholder naming no path argument, text a parser would change, a
        // placeholder in the host or the query.
        for url in ["http://api:8080/x/{q}", "http://api:8080/x/{nope}", "http://api:8080/a b/{id}", "http://api:8080/a/../{id}", "http://api:8080/x?a={id}", "http://api:8080/x/{id"] {
            assert!(TargetPlan::new(url, o, &args).is_none(), "{url}");
        }
        assert!(TargetPlan::new("http://{id}:8080/x", "http://{id}:8080", &args).is_none());
    }

    #[test]
    fn clean_urls_split_without_a_parser_and_the_rest_falls_back() {
        assert_eq!(origin_of("http://api:8080/v1/items?x=1"), "http://api:8080");
        assert_eq!(origin_of("https://api"), "https://api");
        let o = "http://api:8080";
        assert_eq!(split_clean_url("http://api:8080/v1/items/a%2F..%2Fb?q=x+y&z=1", o), Some(("/v1/items/a%2F..%2Fb", "q=x+y&z=1")));
        assert_eq!(split_clean_url("http://api:8080", o), Some(("/", "")));
        // Another host, a port suffix, dot segments, spaces, fragments: the parser decides.
        for url in ["http://evil:8080/x", "http://api:80801/x", "http://api:8080/a/../b", "http://api:8080/a/%2E%2e/b", "http://api:8080/a b", "http://api:8080/a#f", "http://api:8080/a?q='1'", "http://api:8080/{id}"] {
            assert_eq!(split_clean_url(url, o), None, "{url}");
        }
        // Whatever the parser would keep as is must come out the same.
        for url in ["http://api:8080/v1/a~b/c;d=1/@x:y?p=a%20b&q=1,2", "http://api:8080/?a=1"] {
            let parsed = url::Url::parse(url).unwrap();
            assert_eq!(split_clean_url(url, o), Some((parsed.path(), parsed.query().unwrap_or(""))), "{url}");
        }
    }
}
