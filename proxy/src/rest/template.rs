//! The subset of Go `text/template` (Higress's gjson_template dialect: GJSON paths, Sprig
//! functions) that real REST tool configs use, with escaping by where a value lands.
//!
//! Supported: text, `{{ pipeline }}` with `{{-`/`-}}` trimming, `.field.chains`, `$var`
//! chains, string/number/bool literals, pipelines (`a | f`), `if`/`else if`/`else`,
//! `range` (with `$i, $v :=`), `with`, `end`, and the functions in [`FUNCTIONS`].
//! Anything else is rejected when the template is parsed (at config load), with the
//! construct named — a template never silently renders something other than intended.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use thiserror::Error;

/// Functions a template may call.
pub const FUNCTIONS: &[&str] = &["toJson", "toPrettyJson", "urlquery", "b64enc", "b64dec", "add", "sub", "mul", "default", "uuidv4", "gjson", "getRealIP", "getSocketIP", "upper", "lower", "trim", "quote", "len"];

/// A template that cannot be used.
#[derive(Debug, Error, PartialEq)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// Where rendered values land; decides how they are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Plain text (response templates, non-JSON bodies): values as text.
    Text,
    /// A JSON document: inside a string literal values are string-escaped; elsewhere they
    /// are written as JSON values, so an argument can never change the document's shape.
    Json,
    /// A header value: CR, LF and NUL are refused.
    Header,
    /// A URL: values are percent-encoded as one path segment before `?`, as a form
    /// component after it.
    Url,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Num(f64),
    Bool(bool),
    Nil,
}

#[derive(Debug, Clone, PartialEq)]
struct Command {
    func: Option<String>,
    args: Vec<Operand>,
}

type Pipeline = Vec<Command>;

/// Escaping state of a substitution in a JSON template, fixed at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Plain,
    JsonString,
    JsonValue,
    UrlPath,
    UrlQuery,
    UrlAuthority,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Out(Pipeline, Slot),
    If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
    Range { vars: (Option<String>, Option<String>), pipe: Pipeline, body: Vec<Node>, otherwise: Vec<Node> },
    With(Pipeline, Vec<Node>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
    context: Context,
    source: String,
}

/// Values a render reads.
pub struct Data<'a> {
    /// The root (`.`).
    pub root: &'a Value,
    /// The root as JSON text, for `gjson` (serialized on demand when `None`).
    pub root_text: Option<&'a str>,
    /// The client's address for `getRealIP`/`getSocketIP` (formatted only when used).
    pub client_ip: Option<std::net::IpAddr>,
}

/// A value in flight: JSON text from `toJson`/`gjson` must not be re-encoded.
#[derive(Debug, Clone)]
enum Out {
    Val(Value),
    JsonText(String),
    Text(String),
}

impl Template {
    /// Parses `source` for rendering in `context`.
    pub fn parse(source: &str, context: Context) -> Result<Template, TemplateError> {
        let tokens = lex(source)?;
        let mut pos = 0;
        let (mut nodes, stop) = parse_list(&tokens, &mut pos)?;
        if let Some(s) = stop {
            return Err(TemplateError(format!("unexpected `{{{{{s}}}}}` without a matching block")));
        }
        assign_slots(&mut nodes, context, &mut SlotState::default());
        Ok(Template { nodes, context, source: source.to_string() })
    }

    /// The text it was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template is plain text (no actions).
    pub fn is_static(&self) -> bool {
        self.nodes.iter().all(|n| matches!(n, Node::Text(_)))
    }

    /// Whether any action reads `.args` or a variable (used to keep hosts static).
    pub fn mentions_args_before_path(&self) -> bool {
        self.nodes.iter().any(|n| matches!(n, Node::Out(p, Slot::UrlAuthority) if !pipeline_is_config_only(p)) || matches!(n, Node::If(..) | Node::Range { .. } | Node::With(..)))
    }

    /// Renders with `data`.
    pub fn render(&self, data: &Data<'_>) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.source.len() + 32);
        let mut scope = Scope { dot: data.root.clone(), vars: Vec::new() };
        render_nodes(&self.nodes, data, &mut scope, self.context, &mut out)?;
        Ok(out)
    }
}

fn pipeline_is_config_only(p: &Pipeline) -> bool {
    p.iter().all(|c| c.args.iter().all(|a| matches!(a, Operand::Field(f) if f.first().map(String::as_str) == Some("config")) || matches!(a, Operand::Str(_) | Operand::Num(_) | Operand::Bool(_))))
}

// ---------- lexing ----------

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Text(String),
    Action(String),
}

fn lex(src: &str) -> Result<Vec<Token>, TemplateError> {
    let mut tokens = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[start + 2..];
        let trim_prev = after.starts_with('-') && after[1..].starts_with(|c: char| c.is_whitespace());
        if trim_prev {
            text = text.trim_end();
        }
        if !text.is_empty() {
            tokens.push(Token::Text(text.to_string()));
        }
        let end = after.find("}}").ok_or_else(|| TemplateError("unclosed action: missing `}}`".into()))?;
        let mut inner = &after[..end];
        if trim_prev {
            inner = &inner[1..];
        }
        trim_next = inner.ends_with('-') && inner[..inner.len() - 1].ends_with(|c: char| c.is_whitespace());
        if trim_next {
            inner = &inner[..inner.len() - 1];
        }
        let inner = inner.trim();
        if inner.starts_with("/*") {
            // comment
        } else {
            tokens.push(Token::Action(inner.to_string()));
        }
        rest = &after[end + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        tokens.push(Token::Text(text.to_string()));
    }
    Ok(tokens)
}

// ---------- parsing ----------

fn parse_list(tokens: &[Token], pos: &mut usize) -> Result<(Vec<Node>, Option<String>), TemplateError> {
    let mut nodes = Vec::new();
    while *pos < tokens.len() {
        let tok = &tokens[*pos];
        *pos += 1;
        match tok {
            Token::Text(t) => nodes.push(Node::Text(t.clone())),
            Token::Action(a) => {
                let (kw, rest) = split_keyword(a);
                match kw {
                    "end" | "else" => return Ok((nodes, Some(a.clone()))),
                    "if" => nodes.push(parse_if(rest, tokens, pos)?),
                    "range" => nodes.push(parse_range(rest, tokens, pos)?),
                    "with" => nodes.push(parse_with(rest, tokens, pos)?),
                    "define" | "template" | "block" | "break" | "continue" => return Err(TemplateError(format!("`{kw}` is not supported"))),
                    _ => nodes.push(Node::Out(parse_pipeline(a)?, Slot::Plain)),
                }
            }
        }
    }
    Ok((nodes, None))
}

fn split_keyword(action: &str) -> (&str, &str) {
    let end = action.find(char::is_whitespace).unwrap_or(action.len());
    let kw = &action[..end];
    if matches!(kw, "if" | "else" | "end" | "range" | "with" | "define" | "template" | "block" | "break" | "continue") {
        (kw, action[end..].trim())
    } else {
        ("", action)
    }
}

/// A block's body, its `else` branch, and the action of a chained `else if`/`else with`.
type Branches = (Vec<Node>, Vec<Node>, Option<String>);

fn expect_end(tokens: &[Token], pos: &mut usize, what: &str) -> Result<Branches, TemplateError> {
    let (body, stop) = parse_list(tokens, pos)?;
    match stop.as_deref() {
        Some("end") => Ok((body, Vec::new(), None)),
        Some("else") => {
            let (otherwise, stop) = parse_list(tokens, pos)?;
            if stop.as_deref() != Some("end") {
                return Err(TemplateError(format!("`{what}` block is missing `{{{{end}}}}`")));
            }
            Ok((body, otherwise, None))
        }
        Some(s) if s.starts_with("else ") => Ok((body, Vec::new(), Some(s["else ".len()..].trim().to_string()))),
        _ => Err(TemplateError(format!("`{what}` block is missing `{{{{end}}}}`"))),
    }
}

fn parse_if(cond: &str, tokens: &[Token], pos: &mut usize) -> Result<Node, TemplateError> {
    let mut branches = vec![];
    let mut cond = cond.to_string();
    loop {
        let pipe = parse_pipeline(&cond)?;
        let (body, otherwise, chained) = expect_end(tokens, pos, "if")?;
        branches.push((pipe, body));
        match chained {
            Some(next) => {
                let next = next.strip_prefix("if ").ok_or_else(|| TemplateError(format!("`else {next}` is not supported (only `else if`)")))?;
                cond = next.trim().to_string();
            }
            None => return Ok(Node::If(branches, otherwise)),
        }
    }
}

fn parse_range(spec: &str, tokens: &[Token], pos: &mut usize) -> Result<Node, TemplateError> {
    let (vars, pipe_src) = match spec.split_once(":=") {
        Some((lhs, rhs)) => {
            let names: Vec<&str> = lhs.split(',').map(str::trim).collect();
            let valid = |n: &str| n.starts_with('$') && n.len() > 1 && n[1..].chars().all(|c| c.is_alphanumeric() || c == '_');
            match names.as_slice() {
                [v] if valid(v) => ((None, Some(v[1..].to_string())), rhs),
                [i, v] if valid(i) && valid(v) => ((Some(i[1..].to_string()), Some(v[1..].to_string())), rhs),
                _ => return Err(TemplateError(format!("invalid range variables `{lhs}`"))),
            }
        }
        None => ((None, None), spec),
    };
    let pipe = parse_pipeline(pipe_src.trim())?;
    let (body, otherwise, chained) = expect_end(tokens, pos, "range")?;
    if chained.is_some() {
        return Err(TemplateError("`else if` inside `range` is not supported".into()));
    }
    Ok(Node::Range { vars, pipe, body, otherwise })
}

fn parse_with(spec: &str, tokens: &[Token], pos: &mut usize) -> Result<Node, TemplateError> {
    let pipe = parse_pipeline(spec)?;
    let (body, otherwise, chained) = expect_end(tokens, pos, "with")?;
    if chained.is_some() {
        return Err(TemplateError("`else if` inside `with` is not supported".into()));
    }
    Ok(Node::With(pipe, body, otherwise))
}

fn parse_pipeline(src: &str) -> Result<Pipeline, TemplateError> {
    if src.trim().is_empty() {
        return Err(TemplateError("empty action `{{}}`".into()));
    }
    if src.contains(":=") || src.contains(" = ") {
        return Err(TemplateError(format!("variable assignment `{src}` is not supported")));
    }
    split_outside_quotes(src, '|').into_iter().map(|c| parse_command(c.trim())).collect()
}

fn split_outside_quotes(src: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut in_str, mut escaped) = (0, None::<char>, false);
    for (i, c) in src.char_indices() {
        match in_str {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    in_str = None;
                }
            }
            None if c == '"' || c == '`' => in_str = Some(c),
            None if c == sep => {
                parts.push(&src[start..i]);
                start = i + c.len_utf8();
            }
            None => {}
        }
    }
    parts.push(&src[start..]);
    parts
}

fn words(src: &str) -> Result<Vec<String>, TemplateError> {
    let mut out = Vec::new();
    let mut chars = src.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '(' || c == ')' {
            return Err(TemplateError(format!("parenthesized expressions are not supported in `{src}`")));
        }
        let mut w = String::new();
        if c == '"' || c == '`' {
            let q = c;
            w.push(chars.next().unwrap_or(q));
            let mut escaped = false;
            for c in chars.by_ref() {
                w.push(c);
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    break;
                }
            }
            if w.len() < 2 || !w.ends_with(q) {
                return Err(TemplateError(format!("unterminated string in `{src}`")));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                w.push(c);
                chars.next();
            }
        }
        out.push(w);
    }
    Ok(out)
}

fn parse_command(src: &str) -> Result<Command, TemplateError> {
    let ws = words(src)?;
    let Some(first) = ws.first() else {
        return Err(TemplateError("empty command in pipeline".into()));
    };
    let is_ident = |w: &str| w.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if is_ident(first) && !matches!(first.as_str(), "true" | "false" | "nil") {
        if !FUNCTIONS.contains(&first.as_str()) {
            return Err(TemplateError(format!("function `{first}` is not supported (supported: {})", FUNCTIONS.join(", "))));
        }
        let args = ws[1..].iter().map(|w| parse_operand(w)).collect::<Result<_, _>>()?;
        return Ok(Command { func: Some(first.clone()), args });
    }
    if ws.len() > 1 {
        return Err(TemplateError(format!("`{src}`: only a function can take arguments")));
    }
    Ok(Command { func: None, args: vec![parse_operand(first)?] })
}

fn parse_operand(w: &str) -> Result<Operand, TemplateError> {
    let chain = |s: &str| -> Result<Vec<String>, TemplateError> {
        if s.is_empty() {
            return Ok(vec![]);
        }
        s.split('.').map(|p| if p.is_empty() { Err(TemplateError(format!("invalid field path `{w}`"))) } else { Ok(p.to_string()) }).collect()
    };
    match w {
        "true" => Ok(Operand::Bool(true)),
        "false" => Ok(Operand::Bool(false)),
        "nil" => Ok(Operand::Nil),
        _ if w == "." => Ok(Operand::Field(vec![])),
        _ if w.starts_with('.') => Ok(Operand::Field(chain(&w[1..])?)),
        _ if w.starts_with('$') => {
            let (name, rest) = w[1..].split_once('.').unwrap_or((&w[1..], ""));
            Ok(Operand::Var(name.to_string(), chain(rest)?))
        }
        _ if w.starts_with('"') => serde_json::from_str::<String>(w).map(Operand::Str).map_err(|_| TemplateError(format!("invalid string literal {w}"))),
        _ if w.starts_with('`') => Ok(Operand::Str(w.trim_matches('`').to_string())),
        _ => w.parse::<f64>().map(Operand::Num).map_err(|_| TemplateError(format!("`{w}` is not supported"))),
    }
}

// ---------- escaping slots ----------

#[derive(Default)]
struct SlotState {
    in_string: bool,
    escaped: bool,
    seen_query: bool,
    seen_path: bool,
}

fn assign_slots(nodes: &mut [Node], context: Context, st: &mut SlotState) {
    for n in nodes {
        match n {
            Node::Text(t) => match context {
                Context::Json => {
                    for c in t.chars() {
                        if st.escaped {
                            st.escaped = false;
                        } else if st.in_string && c == '\\' {
                            st.escaped = true;
                        } else if c == '"' {
                            st.in_string = !st.in_string;
                        }
                    }
                }
                Context::Url => {
                    if !st.seen_path {
                        let after_scheme = t.find("://").map_or(Some(t.as_str()), |i| Some(&t[i + 3..]));
                        if after_scheme.is_some_and(|rest| rest.contains('/')) || (t.starts_with('/') && !t.starts_with("//")) {
                            st.seen_path = true;
                        }
                    }
                    if t.contains('?') {
                        st.seen_query = true;
                    }
                }
                _ => {}
            },
            Node::Out(_, slot) => {
                *slot = match context {
                    Context::Json if st.in_string => Slot::JsonString,
                    Context::Json => Slot::JsonValue,
                    Context::Url if st.seen_query => Slot::UrlQuery,
                    Context::Url if st.seen_path => Slot::UrlPath,
                    Context::Url => Slot::UrlAuthority,
                    _ => Slot::Plain,
                }
            }
            Node::If(branches, otherwise) => {
                for (_, body) in branches {
                    assign_slots(body, context, st);
                }
                assign_slots(otherwise, context, st);
            }
            Node::Range { body, otherwise, .. } | Node::With(_, body, otherwise) => {
                assign_slots(body, context, st);
                assign_slots(otherwise, context, st);
            }
        }
    }
}

// ---------- rendering ----------

struct Scope {
    dot: Value,
    vars: Vec<(String, Value)>,
}

fn lookup<'v>(mut v: &'v Value, chain: &[String]) -> Option<&'v Value> {
    for key in chain {
        v = match v {
            Value::Object(m) => m.get(key)?,
            Value::Array(a) => a.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

fn eval_operand(op: &Operand, data: &Data<'_>, scope: &Scope) -> Result<Out, TemplateError> {
    Ok(match op {
        Operand::Field(chain) => Out::Val(lookup(&scope.dot, chain).cloned().unwrap_or(Value::Null)),
        Operand::Var(name, chain) => {
            let base = if name.is_empty() { Some(data.root) } else { scope.vars.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v) };
            let base = base.ok_or_else(|| TemplateError(format!("undefined variable `${name}`")))?;
            Out::Val(lookup(base, chain).cloned().unwrap_or(Value::Null))
        }
        Operand::Str(s) => Out::Val(Value::String(s.clone())),
        Operand::Num(n) => Out::Val(number(*n)),
        Operand::Bool(b) => Out::Val(Value::Bool(*b)),
        Operand::Nil => Out::Val(Value::Null),
    })
}

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

fn as_text(o: &Out) -> String {
    match o {
        Out::Val(Value::String(s)) => s.clone(),
        Out::Val(Value::Null) => String::new(),
        Out::Val(v) => v.to_string(),
        Out::JsonText(t) | Out::Text(t) => t.clone(),
    }
}

fn as_value(o: &Out) -> Value {
    match o {
        Out::Val(v) => v.clone(),
        Out::JsonText(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        Out::Text(t) => Value::String(t.clone()),
    }
}

fn as_f64(o: &Out) -> Result<f64, TemplateError> {
    match as_value(o) {
        Value::Number(n) => n.as_f64().ok_or_else(|| TemplateError("number out of range".into())),
        Value::String(s) => s.trim().parse().map_err(|_| TemplateError(format!("`{s}` is not a number"))),
        Value::Bool(b) => Ok(f64::from(u8::from(b))),
        Value::Null => Ok(0.0),
        other => Err(TemplateError(format!("`{other}` is not a number"))),
    }
}

fn truthy(o: &Out) -> bool {
    match as_value(o) {
        Value::Null => false,
        Value::Bool(b) => b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn call(func: &str, args: &[Out], data: &Data<'_>) -> Result<Out, TemplateError> {
    let arg = |i: usize| args.get(i).ok_or_else(|| TemplateError(format!("`{func}` needs {} argument(s)", i + 1)));
    Ok(match func {
        "toJson" => Out::JsonText(serde_json::to_string(&as_value(arg(0)?)).unwrap_or_default()),
        "toPrettyJson" => Out::JsonText(serde_json::to_string_pretty(&as_value(arg(0)?)).unwrap_or_default()),
        "urlquery" => Out::Text(url::form_urlencoded::byte_serialize(as_text(arg(0)?).as_bytes()).collect()),
        "b64enc" => Out::Text(STANDARD.encode(as_text(arg(0)?))),
        "b64dec" => Out::Text(STANDARD.decode(as_text(arg(0)?)).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(|| TemplateError("b64dec: invalid base64".into()))?),
        "add" => Out::Val(number(args.iter().map(as_f64).sum::<Result<f64, _>>()?)),
        "sub" => Out::Val(number(as_f64(arg(0)?)? - as_f64(arg(1)?)?)),
        "mul" => Out::Val(number(args.iter().map(as_f64).product::<Result<f64, _>>()?)),
        // Sprig: `default DEFAULT VALUE` (VALUE usually piped in last).
        "default" => {
            let v = arg(1)?;
            if truthy(v) {
                v.clone()
            } else {
                arg(0)?.clone()
            }
        }
        "uuidv4" => Out::Text(uuid::Uuid::new_v4().to_string()),
        "getRealIP" | "getSocketIP" => Out::Text(data.client_ip.map(|ip| ip.to_string()).unwrap_or_default()),
        "upper" => Out::Text(as_text(arg(0)?).to_uppercase()),
        "lower" => Out::Text(as_text(arg(0)?).to_lowercase()),
        "trim" => Out::Text(as_text(arg(0)?).trim().to_string()),
        "quote" => Out::JsonText(serde_json::to_string(&as_text(arg(0)?)).unwrap_or_default()),
        "len" => Out::Val(Value::from(match as_value(arg(0)?) {
            Value::Array(a) => a.len(),
            Value::Object(m) => m.len(),
            Value::String(s) => s.chars().count(),
            _ => 0,
        })),
        "gjson" => {
            let path = as_text(arg(0)?);
            let owned;
            let text = match data.root_text {
                Some(t) => t,
                None => {
                    owned = data.root.to_string();
                    &owned
                }
            };
            let r = gjson::get(text, &path);
            if r.exists() {
                Out::Val(serde_json::from_str(r.json()).unwrap_or_else(|_| Value::String(r.str().to_string())))
            } else {
                Out::Val(Value::Null)
            }
        }
        other => return Err(TemplateError(format!("function `{other}` is not supported"))),
    })
}

fn eval_pipeline(p: &Pipeline, data: &Data<'_>, scope: &Scope) -> Result<Out, TemplateError> {
    let mut prev: Option<Out> = None;
    for cmd in p {
        let mut args: Vec<Out> = cmd.args.iter().map(|a| eval_operand(a, data, scope)).collect::<Result<_, _>>()?;
        if let Some(v) = prev.take() {
            args.push(v);
        }
        prev = Some(match &cmd.func {
            Some(f) => call(f, &args, data)?,
            None if args.len() == 1 => args.remove(0),
            None => return Err(TemplateError("a piped value can only go into a function".into())),
        });
    }
    prev.ok_or_else(|| TemplateError("empty pipeline".into()))
}

fn emit(o: &Out, slot: Slot, context: Context, out: &mut String) -> Result<(), TemplateError> {
    match slot {
        Slot::JsonString => {
            let s = serde_json::to_string(&as_text(o)).unwrap_or_default();
            out.push_str(&s[1..s.len() - 1]);
        }
        Slot::JsonValue => match o {
            Out::JsonText(t) => out.push_str(t),
            Out::Val(v) => out.push_str(&v.to_string()),
            Out::Text(t) => out.push_str(&serde_json::to_string(t).unwrap_or_default()),
        },
        Slot::UrlPath => out.extend(percent_encoding::utf8_percent_encode(&as_text(o), crate::rest::request::SEGMENT)),
        Slot::UrlQuery => out.extend(url::form_urlencoded::byte_serialize(as_text(o).as_bytes())),
        Slot::UrlAuthority => out.push_str(&as_text(o)),
        Slot::Plain => {
            let t = as_text(o);
            if context == Context::Header && t.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(TemplateError("a header value may not contain CR, LF or NUL".into()));
            }
            out.push_str(&t);
        }
    }
    Ok(())
}

fn render_nodes(nodes: &[Node], data: &Data<'_>, scope: &mut Scope, context: Context, out: &mut String) -> Result<(), TemplateError> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Out(p, slot) => emit(&eval_pipeline(p, data, scope)?, *slot, context, out)?,
            Node::If(branches, otherwise) => {
                let mut done = false;
                for (cond, body) in branches {
                    if truthy(&eval_pipeline(cond, data, scope)?) {
                        render_nodes(body, data, scope, context, out)?;
                        done = true;
                        break;
                    }
                }
                if !done {
                    render_nodes(otherwise, data, scope, context, out)?;
                }
            }
            Node::With(p, body, otherwise) => {
                let v = eval_pipeline(p, data, scope)?;
                if truthy(&v) {
                    let saved = std::mem::replace(&mut scope.dot, as_value(&v));
                    render_nodes(body, data, scope, context, out)?;
                    scope.dot = saved;
                } else {
                    render_nodes(otherwise, data, scope, context, out)?;
                }
            }
            Node::Range { vars, pipe, body, otherwise } => {
                let items: Vec<(Value, Value)> = match as_value(&eval_pipeline(pipe, data, scope)?) {
                    Value::Array(a) => a.into_iter().enumerate().map(|(i, v)| (Value::from(i), v)).collect(),
                    Value::Object(m) => m.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
                    Value::Null => Vec::new(),
                    Value::Number(n) => (0..n.as_u64().unwrap_or(0).min(10_000)).map(|i| (Value::from(i), Value::from(i))).collect(),
                    other => return Err(TemplateError(format!("cannot range over `{other}`"))),
                };
                if items.is_empty() {
                    render_nodes(otherwise, data, scope, context, out)?;
                    continue;
                }
                for (k, v) in items {
                    let depth = scope.vars.len();
                    if let Some(name) = &vars.0 {
                        scope.vars.push((name.clone(), k));
                    }
                    if let Some(name) = &vars.1 {
                        scope.vars.push((name.clone(), v.clone()));
                    }
                    let saved = std::mem::replace(&mut scope.dot, v);
                    let r = render_nodes(body, data, scope, context, out);
                    scope.dot = saved;
                    scope.vars.truncate(depth);
                    r?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(src: &str, ctx: Context, root: Value) -> Result<String, TemplateError> {
        Template::parse(src, ctx)?.render(&Data { root: &root, root_text: None, client_ip: Some(std::net::IpAddr::from([10, 1, 2, 3])) })
    }

    #[test]
    fn fields_pipelines_and_functions() {
        let root = json!({"args": {"q": "a b&c", "n": 2, "f": {"k": [1, 2]}}, "config": {"region": "eu"}});
        assert_eq!(render("{{.config.region}}/{{.args.n}}", Context::Text, root.clone()).unwrap(), "eu/2");
        assert_eq!(render("{{.args.q | urlquery}}", Context::Text, root.clone()).unwrap(), "a+b%26c");
        assert_eq!(render("{{toJson .args.f}}", Context::Text, root.clone()).unwrap(), r#"{"k":[1,2]}"#);
        assert_eq!(render("{{add .args.n 1}} {{.args.missing | default \"x\"}}", Context::Text, root.clone()).unwrap(), "3 x");
        assert_eq!(render("{{gjson \"args.f.k.1\"}}", Context::Text, root.clone()).unwrap(), "2");
        assert_eq!(render("{{getRealIP}}", Context::Text, root).unwrap(), "10.1.2.3");
        assert_eq!(render("{{uuidv4}}", Context::Text, json!({})).unwrap().len(), 36);
    }

    #[test]
    fn control_flow_and_trimming() {
        let root = json!({"items": [{"name": "a", "price": 1}, {"name": "b", "price": 2}], "ok": true});
        let t = "# Results\n{{- range $i, $p := .items }}\n{{add $i 1}}. {{$p.name}} — {{$p.price}}\n{{- end }}";
        assert_eq!(render(t, Context::Text, root.clone()).unwrap(), "# Results\n1. a — 1\n2. b — 2");
        assert_eq!(render("{{if .ok}}yes{{else}}no{{end}}", Context::Text, root.clone()).unwrap(), "yes");
        assert_eq!(render("{{if .nope}}1{{else if .ok}}2{{end}}", Context::Text, root.clone()).unwrap(), "2");
        assert_eq!(render("{{range .items}}{{.name}},{{end}}", Context::Text, root.clone()).unwrap(), "a,b,");
        assert_eq!(render("{{with .items}}{{len .}}{{end}}", Context::Text, root).unwrap(), "2");
    }

    #[test]
    fn json_context_escapes_by_position() {
        let root = json!({"args": {"msg": "say \"hi\"\n", "n": 5, "tags": ["x"]}});
        let out = render(r#"{"m":"{{.args.msg}}","n":{{.args.n}},"t":{{toJson .args.tags}},"raw":{{.args.msg}}}"#, Context::Json, root).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["m"], "say \"hi\"\n");
        assert_eq!(v["n"], 5);
        assert_eq!(v["t"], json!(["x"]));
        assert_eq!(v["raw"], "say \"hi\"\n");
    }

    #[test]
    fn injection_attempts_stay_in_their_slot() {
        let root = json!({"args": {"evil": "\",\"admin\":true,\"x\":\"", "crlf": "a\r\nX-Evil: 1", "path": "../../admin?x=1#f"}});
        let v: Value = serde_json::from_str(&render(r#"{"a":"{{.args.evil}}"}"#, Context::Json, root.clone()).unwrap()).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1);
        assert!(render("{{.args.crlf}}", Context::Header, root.clone()).is_err());
        assert_eq!(render("https://api.example.com/v1/{{.args.path}}?q={{.args.path}}", Context::Url, root).unwrap(), "https://api.example.com/v1/..%2F..%2Fadmin%3Fx%3D1%23f?q=..%2F..%2Fadmin%3Fx%3D1%23f");
    }

    #[test]
    fn unsupported_constructs_are_rejected_by_name() {
        assert!(Template::parse("{{printf \"%s\" .x}}", Context::Text).unwrap_err().0.contains("`printf`"));
        assert!(Template::parse("{{define \"x\"}}{{end}}", Context::Text).unwrap_err().0.contains("`define`"));
        assert!(Template::parse("{{if .x}}open", Context::Text).unwrap_err().0.contains("missing"));
        assert!(Template::parse("{{.x", Context::Text).is_err());
        assert!(Template::parse("{{$x := 1}}", Context::Text).unwrap_err().0.contains("assignment"));
        assert!(Template::parse("{{(.x)}}", Context::Text).unwrap_err().0.contains("parenthesized"));
    }

    #[test]
    fn hosts_cannot_depend_on_arguments() {
        assert!(Template::parse("https://{{.args.host}}/x", Context::Url).unwrap().mentions_args_before_path());
        assert!(!Template::parse("https://{{.config.host}}/x/{{.args.id}}", Context::Url).unwrap().mentions_args_before_path());
    }
}
