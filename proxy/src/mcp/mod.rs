//! The MCP protocol: JSON-RPC framing, versions, sessions and the Streamable HTTP and
//! legacy HTTP+SSE transports, independent of where tools come from.

pub mod cursor;
pub mod http;
pub mod jsonrpc;
pub mod session;
pub mod sse;
pub mod version;
