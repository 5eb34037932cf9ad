//! mcpgate: an MCP gateway on Pingora.
//!
//! See `docs/ARCHITECTURE.md` for the map of modules and the path of a request.

pub mod admin;
pub mod auth;
pub mod config;
pub mod database;
pub mod gateway;
pub mod listener;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod pipeline;
pub mod policy;
pub mod rest;
pub mod runtime;
pub mod tools;
pub mod upstream;
