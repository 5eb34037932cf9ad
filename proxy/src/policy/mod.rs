//! Who may use a server, and which of its tools (`servers[].policy`).
//!
//! [`ServerAccess`] is built per route at snapshot build from the server's `policy:` and
//! the route's tools: the connect rule ([`ServerAccess::admit`], asked by the
//! authenticator) and the per-tool rules compiled into one bit per tool per rule, so a
//! caller's [`ToolMask`] is a few word operations. A configured consumer's mask is built
//! once per snapshot; a JWT caller's is computed on use (rules × tools / 64 words).
//!
//! Rules: each names tools (exact names or globs) and either `allow` or `deny` subjects
//! (consumers, groups, scopes, claims; an empty subject set matches every caller). With no
//! rules every tool is allowed. Once any rule exists a tool is allowed to a caller when an
//! `allow` rule matching the caller names it and no matching `deny` rule does.
//! `tools/list` shows the caller only its allowed tools; a denied `tools/call` is answered
//! exactly like an unknown tool.

pub mod quota;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::auth::{AuthFailure, Method, Principal};
use crate::tools::{ToolDef, ToolRef};

/// A server's `policy:` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// Whether callers without a credential may use the server. Default: true when the
    /// gateway has no consumers with keys and no JWT issuers, false otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    /// Credential kinds accepted (`api_key`, `jwt`; default both).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Consumers that may connect (with `groups`: default any authenticated caller).
    #[serde(default)]
    pub consumers: Vec<String>,
    /// Groups whose members may connect.
    #[serde(default)]
    pub groups: Vec<String>,
    /// OAuth scopes a JWT caller's token must carry to connect (403 `insufficient_scope`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Per-tool allow/deny rules.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Per-tool rate limits and quotas.
    #[serde(default)]
    pub quotas: Vec<quota::QuotaRuleConfig>,
}

/// One per-tool rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Tool names or globs (`get_*`); default every tool.
    #[serde(default = "every_tool")]
    pub tools: Vec<String>,
    /// Callers these tools are allowed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Subjects>,
    /// Callers these tools are denied to (wins over `allow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Subjects>,
}

/// Every tool.
pub fn every_tool() -> Vec<String> {
    vec!["*".into()]
}

/// Whom a rule is about: a caller matches when it is any listed consumer, in any listed
/// group, holds any listed scope, or carries any listed claim value. Empty: everyone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subjects {
    /// Consumer names.
    #[serde(default)]
    pub consumers: Vec<String>,
    /// Group names.
    #[serde(default)]
    pub groups: Vec<String>,
    /// JWT scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// JWT claims and a value each must have (a string, or an element of an array claim).
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
}

impl Subjects {
    fn is_everyone(&self) -> bool {
        self.consumers.is_empty() && self.groups.is_empty() && self.scopes.is_empty() && self.claims.is_empty()
    }

    /// Whether `p` (or an anonymous caller, `None`) is one of these subjects.
    fn matches(&self, p: Option<&Principal>) -> bool {
        if self.is_everyone() {
            return true;
        }
        let Some(p) = p else { return false };
        (p.consumer_index().is_some() && self.consumers.iter().any(|c| c == p.name())) || self.groups.iter().any(|g| p.in_group(g)) || self.scopes.iter().any(|s| p.has_scope(s)) || self.claims.iter().any(|(k, v)| claim_has(p.claim(k), v))
    }
}

fn claim_has(claim: Option<&serde_json::Value>, value: &str) -> bool {
    match claim {
        Some(serde_json::Value::String(s)) => s == value || s.split(' ').any(|part| part == value),
        Some(serde_json::Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(value)),
        Some(serde_json::Value::Bool(b)) => b.to_string() == value,
        Some(serde_json::Value::Number(n)) => n.to_string() == value,
        _ => false,
    }
}

/// The tools a caller may use on a route, one bit per tool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ToolMask(Box<[u64]>);

impl ToolMask {
    fn empty(tools: usize) -> Self {
        ToolMask(vec![0; tools.div_ceil(64)].into())
    }

    fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    /// Whether tool `i` is in the mask.
    pub fn has(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn or(&mut self, other: &ToolMask) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    fn and_not(&mut self, other: &ToolMask) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a &= !b;
        }
    }

    /// The positions in the mask, in order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, bits)| (0..64).filter(move |b| bits & (1u64 << b) != 0).map(move |b| w * 64 + b))
    }
}

struct Rule {
    tools: ToolMask,
    allow: bool,
    who: Subjects,
}

/// Which tools a caller sees and may call.
#[derive(Clone)]
pub enum Allowed {
    /// Every tool (no rules).
    All,
    /// The tools in the mask.
    Some(Arc<ToolMask>),
}

/// A route's compiled `policy:`.
pub struct ServerAccess {
    public: bool,
    api_key: bool,
    jwt: bool,
    connect: Subjects,
    scopes: Vec<String>,
    rules: Vec<Rule>,
    tools: usize,
    /// Masks of the configured consumers (by `consumers:` position) and of an anonymous caller.
    consumer_masks: Vec<Arc<ToolMask>>,
    anonymous_mask: Option<Arc<ToolMask>>,
    /// The route's rate limits and quotas.
    pub quotas: quota::RouteQuotas,
}

impl std::fmt::Debug for ServerAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerAccess").field("public", &self.public).field("rules", &self.rules.len()).field("tools", &self.tools).finish_non_exhaustive()
    }
}

/// A rule or access setting that names what does not exist.
pub type AccessError = String;

impl ServerAccess {
    /// Compiles `policy` for a route serving `tools`; `auth_configured` says whether the
    /// gateway checks any credential (the default of `public`); `consumers` are the
    /// configured ones in order.
    ///
    /// `strict`: the route serves every tool of its config entry, so a pattern naming none
    /// of them is a typo; a toolset's route serves a subset and takes what it has.
    pub fn build(access: &AccessConfig, tools: &[ToolDef], auth_configured: bool, consumers: &[crate::auth::ConsumerConfig], quotas: &Arc<quota::QuotaStore>, route: &str, strict: bool) -> Result<Self, AccessError> {
        let known_consumer = |c: &String| -> Result<(), AccessError> {
            if consumers.iter().any(|k| &k.name == c) {
                Ok(())
            } else {
                Err(format!("policy: no consumer named `{c}`"))
            }
        };
        access.consumers.iter().try_for_each(known_consumer)?;
        let (mut api_key, mut jwt) = (access.methods.is_empty(), access.methods.is_empty());
        for m in &access.methods {
            match m.as_str() {
                "api_key" => api_key = true,
                "jwt" => jwt = true,
                other => return Err(format!("policy.methods: unknown method `{other}`; one of api_key, jwt")),
            }
        }
        let public = access.public.unwrap_or(!auth_configured);
        if !public && !auth_configured {
            return Err("policy.public is false but no caller can authenticate: add consumers with api_keys or auth.jwt issuers".into());
        }
        let mut rules = Vec::with_capacity(access.rules.len());
        for (i, r) in access.rules.iter().enumerate() {
            let (allow, who) = match (&r.allow, &r.deny) {
                (Some(a), None) => (true, a.clone()),
                (None, Some(d)) => (false, d.clone()),
                _ => return Err(format!("policy.rules[{i}]: give exactly one of allow, deny")),
            };
            who.consumers.iter().try_for_each(known_consumer).map_err(|e| format!("policy.rules[{i}].{}", e.trim_start_matches("policy: ")))?;
            let mask = route_mask(&r.tools, tools, strict).map_err(|e| format!("policy.rules[{i}].tools: {e}"))?;
            rules.push(Rule { tools: mask, allow, who });
        }
        let connect = Subjects { consumers: access.consumers.clone(), groups: access.groups.clone(), ..Subjects::default() };
        let quotas = quota::RouteQuotas::build(&access.quotas, tools, consumers, quotas, route, strict).map_err(|e| format!("policy.quotas{e}"))?;
        let mut built = ServerAccess { public, api_key, jwt, connect, scopes: access.scopes.clone(), rules, tools: tools.len(), consumer_masks: Vec::new(), anonymous_mask: None, quotas };
        if !built.rules.is_empty() {
            built.consumer_masks = consumers.iter().enumerate().map(|(i, c)| Arc::new(built.compute(Some(&Principal::consumer(&c.name, &c.groups, i))))).collect();
            built.anonymous_mask = Some(Arc::new(built.compute(None)));
        }
        Ok(built)
    }

    /// Access for a route with no `policy:` on a gateway that checks no credential.
    pub fn open(tools: usize) -> Self {
        ServerAccess { public: true, api_key: true, jwt: true, connect: Subjects::default(), scopes: Vec::new(), rules: Vec::new(), tools, consumer_masks: Vec::new(), anonymous_mask: None, quotas: quota::RouteQuotas::none() }
    }

    /// Whether callers without a credential may use the route.
    pub fn public(&self) -> bool {
        self.public
    }

    /// Scopes a JWT caller must hold.
    pub fn required_scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether any per-tool rule exists (lists are then filtered per caller).
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The connect check: the credential kind, who may connect, the scopes.
    pub fn admit(&self, p: &Principal) -> Result<(), AuthFailure> {
        match p.method() {
            Method::ApiKey if !self.api_key => return Err(AuthFailure::MethodNotAccepted("API key")),
            Method::Jwt if !self.jwt => return Err(AuthFailure::MethodNotAccepted("JWT")),
            _ => {}
        }
        if !self.connect.is_everyone() && !self.connect.matches(Some(p)) {
            return Err(AuthFailure::NotAllowed(p.name().to_string()));
        }
        if p.method() == Method::Jwt && !self.scopes.iter().all(|s| p.has_scope(s)) {
            return Err(AuthFailure::InsufficientScope(self.scopes.join(" ")));
        }
        Ok(())
    }

    /// The tools `p` may see and call.
    pub fn allowed(&self, p: Option<&Principal>) -> Allowed {
        if self.rules.is_empty() {
            return Allowed::All;
        }
        match p {
            None => self.anonymous_mask.clone().map_or(Allowed::All, Allowed::Some),
            // An API-key caller is exactly its consumer entry: the mask built at load.
            Some(p) if p.method() == Method::ApiKey => match p.consumer_index().and_then(|i| self.consumer_masks.get(i)) {
                Some(m) => Allowed::Some(m.clone()),
                None => Allowed::Some(Arc::new(self.compute(Some(p)))),
            },
            Some(p) => Allowed::Some(Arc::new(self.compute(Some(p)))),
        }
    }

    /// Whether `p` may call `tool`: the prebuilt mask of a consumer or an anonymous caller,
    /// or the rules asked for this one tool, so a `tools/call` never builds a mask.
    pub fn permits(&self, p: Option<&Principal>, tool: ToolRef) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        let i = tool.index();
        match p {
            None => return self.anonymous_mask.as_ref().is_some_and(|m| m.has(i)),
            Some(p) if p.method() == Method::ApiKey => {
                if let Some(m) = p.consumer_index().and_then(|c| self.consumer_masks.get(c)) {
                    return m.has(i);
                }
            }
            Some(_) => {}
        }
        let (mut allow, mut deny) = (false, false);
        for r in self.rules.iter().filter(|r| r.tools.has(i) && r.who.matches(p)) {
            if r.allow {
                allow = true;
            } else {
                deny = true;
            }
        }
        allow && !deny
    }

    fn compute(&self, p: Option<&Principal>) -> ToolMask {
        let mut allow = ToolMask::empty(self.tools);
        let mut deny = ToolMask::empty(self.tools);
        for r in &self.rules {
            if r.who.matches(p) {
                if r.allow {
                    allow.or(&r.tools);
                } else {
                    deny.or(&r.tools);
                }
            }
        }
        allow.and_not(&deny);
        allow
    }
}

/// [`tool_mask`], or for a route serving part of its entry's tools, the tools it has.
pub fn route_mask(patterns: &[String], tools: &[ToolDef], strict: bool) -> Result<ToolMask, String> {
    if strict {
        return tool_mask(patterns, tools);
    }
    let mut mask = ToolMask::empty(tools.len());
    for p in patterns {
        if let Ok(m) = tool_mask(std::slice::from_ref(p), tools) {
            mask.or(&m);
        }
    }
    Ok(mask)
}

/// The tools `patterns` name among `tools`; a pattern that names none is an error (a typo
/// would otherwise silently allow or deny nothing).
pub fn tool_mask(patterns: &[String], tools: &[ToolDef]) -> Result<ToolMask, String> {
    let mut mask = ToolMask::empty(tools.len());
    for pat in patterns {
        let glob = globset::Glob::new(pat).map_err(|e| format!("`{pat}` is not a glob: {e}"))?.compile_matcher();
        let mut any = false;
        for (i, t) in tools.iter().enumerate() {
            if glob.is_match(&t.name) {
                mask.set(i);
                any = true;
            }
        }
        if !any {
            return Err(format!("`{pat}` names no tool of this server"));
        }
    }
    Ok(mask)
}

#[cfg(test)]
mod tests;
