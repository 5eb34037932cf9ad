//! The REST tool file format: Higress's `mcp-server` REST config, accepted unchanged,
//! plus a few optional extensions (marked below) that the OpenAPI converter needs to keep
//! a spec's full fidelity. `mcpgate openapi-to-tools` prints this format.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A whole REST tool file (Higress `mcp-server` plugin config, `rest` type).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestToolsFile {
    /// Server-level settings.
    pub server: RestServerSection,
    /// Whitelist of tool names; absent means all.
    #[serde(rename = "allowTools", default, skip_serializing_if = "Option::is_none")]
    pub allow_tools: Option<Vec<String>>,
    /// The tools.
    #[serde(default)]
    pub tools: Vec<RestTool>,
    /// Higress tool-set composition (a later issue: rejected at load with a clear error).
    #[serde(rename = "toolSet", default, skip_serializing_if = "Option::is_none")]
    pub tool_set: Option<Value>,
}

/// The `server:` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestServerSection {
    /// Server name (informational; the route name comes from mcpgate's config).
    #[serde(default)]
    pub name: String,
    /// Server type; only `rest` (the default) is served by this format.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Free-form values exposed to templates as `.config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    /// Security schemes for client->gateway extraction and gateway->backend injection.
    #[serde(rename = "securitySchemes", default, skip_serializing_if = "Vec::is_empty")]
    pub security_schemes: Vec<SecurityScheme>,
    /// Default client->gateway security for every tool.
    #[serde(rename = "defaultDownstreamSecurity", default, skip_serializing_if = "Option::is_none")]
    pub default_downstream_security: Option<SecurityRequirement>,
    /// Default gateway->backend security for every tool.
    #[serde(rename = "defaultUpstreamSecurity", default, skip_serializing_if = "Option::is_none")]
    pub default_upstream_security: Option<SecurityRequirement>,
    /// Forward the client's `Authorization` header upstream (default false).
    #[serde(rename = "passthroughAuthHeader", default, skip_serializing_if = "Option::is_none")]
    pub passthrough_auth_header: Option<bool>,
}

/// A security scheme (`http` basic/bearer or `apiKey` in header/query/cookie).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecurityScheme {
    /// Scheme id, referenced by requirements (and by mcpgate's `credentials:` map).
    pub id: String,
    /// `http` or `apiKey` (`oauth2`/`openIdConnect` are accepted but cannot inject).
    #[serde(rename = "type")]
    pub kind: String,
    /// For `http`: `basic` or `bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// For `apiKey`: `header`, `query` or `cookie`.
    #[serde(rename = "in", default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// For `apiKey`: the header, query or cookie name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Credential used when no other is given (`user:pass` for basic).
    #[serde(rename = "defaultCredential", default, skip_serializing_if = "Option::is_none")]
    pub default_credential: Option<String>,
}

/// A reference to a security scheme.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecurityRequirement {
    /// The scheme id.
    pub id: String,
    /// Explicit credential (overrides the scheme's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// Forward the extracted client credential upstream (downstream requirements only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub passthrough: bool,
}

/// One REST tool.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestTool {
    /// Tool name.
    pub name: String,
    /// Description for the model.
    #[serde(default)]
    pub description: String,
    /// Extension: display title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Client->gateway security override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<SecurityRequirement>,
    /// Arguments.
    #[serde(default)]
    pub args: Vec<RestToolArg>,
    /// Output schema; enables `structuredContent`.
    #[serde(rename = "outputSchema", default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// How to build the upstream request.
    #[serde(rename = "requestTemplate", default)]
    pub request_template: RequestTemplate,
    /// How to render the response.
    #[serde(rename = "responseTemplate", default, skip_serializing_if = "ResponseTemplate::is_empty")]
    pub response_template: ResponseTemplate,
    /// Template for non-2xx responses (root: body plus `_headers`).
    #[serde(rename = "errorResponseTemplate", default, skip_serializing_if = "Option::is_none")]
    pub error_response_template: Option<String>,
    /// Extension: MCP annotations (`readOnlyHint`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<crate::tools::ToolAnnotations>,
}

/// One argument.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestToolArg {
    /// Argument name as the MCP client sees it.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// `string|number|integer|boolean|array|object` (default `string`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether the argument is required.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// Default value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Allowed values.
    #[serde(rename = "enum", default, skip_serializing_if = "Option::is_none")]
    pub enum_values: Option<Vec<Value>>,
    /// Array item schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Value>,
    /// Object properties schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Value>,
    /// `query|path|header|cookie|body`; absent means "default args" (see `argsTo*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// Extension: JSON Schema `format` (e.g. `date-time`, `int64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Extension: the complete JSON Schema of the argument; when set it is used verbatim
    /// in `inputSchema` instead of the fields above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Extension: the name sent upstream when it differs from `name` (flattened names
    /// that would collide are renamed; this keeps the wire name).
    #[serde(rename = "wireName", default, skip_serializing_if = "Option::is_none")]
    pub wire_name: Option<String>,
    /// Extension: OpenAPI serialization style for query/path/header/cookie values
    /// (`form`, `spaceDelimited`, `pipeDelimited`, `deepObject`, `simple`, `label`, `matrix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    /// Extension: OpenAPI `explode` (default true for `form`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explode: Option<bool>,
    /// Extension: a fixed value always sent; the argument is hidden from `inputSchema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<Value>,
}

/// A request header template.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestToolHeader {
    /// Header name.
    pub key: String,
    /// Header value template.
    pub value: String,
}

/// How the upstream request is built.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RequestTemplate {
    /// URL template; empty means a direct-response tool (no HTTP call).
    #[serde(default)]
    pub url: String,
    /// HTTP method (default GET).
    #[serde(default)]
    pub method: String,
    /// Header templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<RestToolHeader>,
    /// Body template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Send position-less args as a JSON body.
    #[serde(rename = "argsToJsonBody", default, skip_serializing_if = "std::ops::Not::not")]
    pub args_to_json_body: bool,
    /// Send position-less args as query parameters.
    #[serde(rename = "argsToUrlParam", default, skip_serializing_if = "std::ops::Not::not")]
    pub args_to_url_param: bool,
    /// Send position-less args as a form body.
    #[serde(rename = "argsToFormBody", default, skip_serializing_if = "std::ops::Not::not")]
    pub args_to_form_body: bool,
    /// Gateway->backend security override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<SecurityRequirement>,
}

/// How the response is rendered.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResponseTemplate {
    /// Full body template (root: the upstream JSON body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Text prepended to the raw body.
    #[serde(rename = "prependBody", default, skip_serializing_if = "Option::is_none")]
    pub prepend_body: Option<String>,
    /// Text appended to the raw body.
    #[serde(rename = "appendBody", default, skip_serializing_if = "Option::is_none")]
    pub append_body: Option<String>,
}

impl ResponseTemplate {
    /// Whether no response template is set.
    pub fn is_empty(&self) -> bool {
        self.body.is_none() && self.prepend_body.is_none() && self.append_body.is_none()
    }
}
