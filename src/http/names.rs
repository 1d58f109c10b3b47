//! The header names the stack reads on every request, parsed once. Looking a header up
//! by `&str` parses and lower-cases the name on each call; a `HeaderName` is hashed
//! directly (statics, not consts: a `HeaderName` holds `Bytes`).

use http::HeaderName;

/// The session id of a legacy (pre-2026-07-28) MCP session.
pub static MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
/// The protocol version the request speaks.
pub static MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
/// The JSON-RPC method, repeated in a header from 2026-07-28 on.
pub static MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
/// The tool (or resource) a request names, from 2026-07-28 on.
pub static MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
/// The request id `SetRequestIdLayer` makes or keeps.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
