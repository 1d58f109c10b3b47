//! Every refusal the HTTP edge makes, as one typed [`Rejection`], and the one place
//! ([`render`]) where a rejection becomes an HTTP response.
//!
//! Modelled on linkerd2-proxy's `ServerRescue`: the layers decide *that* and *why* a
//! request is refused; how that looks on the wire is decided here alone, so every
//! refusal carries the same body shape and the right headers, and a new refusal cannot
//! invent a fifth shape.
//!
//! # The body
//!
//! Every rejection's body is `{"error": "<code>", "reason": "<text>"}` with
//! `Content-Type: application/json`: `error` is a stable machine code (snake case, never
//! reworded; clients and alerts may match on it), `reason` is for a human and says what
//! to change (often the `TWOBOT_*` setting involved). Secrets and verification details
//! never appear in it: a bad token gets the same reason whatever was wrong with it.
//!
//! # The JSON-RPC shape, where MCP needs it
//!
//! A POST to the MCP endpoint carries a JSON-RPC message, and the MCP Streamable HTTP
//! transport lets the server answer one it cannot accept with an HTTP error whose body is
//! a JSON-RPC error response without an id. MCP clients read that body as JSON-RPC (an
//! rmcp or TypeScript SDK client reports its `message`), so the refusals *of the body
//! itself* — not JSON ([`Rejection::MalformedJson`], `-32700`), not one message
//! ([`Rejection::NotOneMessage`], `-32600`), a request id already in flight
//! ([`Rejection::RequestIdInFlight`], `-32600`) and a body over the size limit
//! ([`Rejection::BodyTooLarge`], `-32600`) — keep that shape, and carry the common body
//! unchanged as the error's `data`:
//!
//! ```json
//! {"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"<reason>",
//!   "data":{"error":"malformed_json","reason":"<reason>"}}}
//! ```
//!
//! So a client that knows only the common shape finds it at `error.data`; everything
//! else (auth, Host/Origin, limits, sessions, the raw-socket 503) uses the common body
//! at the top level.

use std::time::Duration;

use axum::body::Body;
use http::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Response, StatusCode};
use serde::Serialize;

/// Why the HTTP edge refused a request (one variant per reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No bearer token, or one that does not verify. What was wrong is logged, never
    /// sent: the answer is the same for every bad token.
    #[error(
        "this endpoint requires a valid bearer token (Authorization: Bearer <token>); WWW-Authenticate names the resource metadata"
    )]
    Unauthenticated {
        /// The `WWW-Authenticate` challenge.
        challenge: String,
    },
    /// A verifying token 2Bot must not accept; the reason names what it lacks.
    #[error("invalid token: {reason}")]
    UnacceptableToken {
        /// What the token lacks (nothing secret).
        reason: &'static str,
        /// The `WWW-Authenticate` challenge.
        challenge: String,
    },
    /// A valid token without a scope the server requires.
    #[error("the token lacks a required scope; this server requires: {required}")]
    InsufficientScope {
        /// The required scopes, space-separated (the configuration, not the token).
        required: String,
        /// The `WWW-Authenticate` challenge.
        challenge: String,
    },
    /// Two `Authorization` headers: which one counts is ambiguous (RFC 6750 §3.1).
    #[error("more than one Authorization header; send exactly one")]
    RepeatedAuthorization {
        /// The `WWW-Authenticate` challenge.
        challenge: String,
    },
    /// `Host` missing or not allowed (DNS-rebinding protection).
    #[error("host not allowed: {0} (allowed through TWOBOT_BASE_URL or TWOBOT_ALLOWED_HOSTS)")]
    HostNotAllowed(String),
    /// `Origin` not allowed (DNS-rebinding protection).
    #[error("origin not allowed: {0} (allowed through TWOBOT_BASE_URL or TWOBOT_ALLOWED_ORIGINS)")]
    OriginNotAllowed(String),
    /// The caller is over its request rate.
    #[error(
        "this caller is over its request rate (TWOBOT_RATE_LIMIT_PER_MINUTE, TWOBOT_RATE_LIMIT_BURST); retry in {retry_after_secs} s"
    )]
    RateLimited {
        /// Seconds until the next request is admitted (at least 1).
        retry_after_secs: u64,
    },
    /// The client address is over its request rate (before auth).
    #[error(
        "this client address is over its request rate (TWOBOT_ADDRESS_RATE_PER_MINUTE, TWOBOT_ADDRESS_RATE_BURST); retry in {retry_after_secs} s"
    )]
    AddressRateLimited {
        /// Seconds until the next request is admitted (at least 1).
        retry_after_secs: u64,
    },
    /// The client address already holds its share of open connections (answered on
    /// the raw socket, see `server.rs`).
    #[error(
        "this client address already holds {max} open connections (TWOBOT_MAX_CONNECTIONS_PER_ADDRESS); close unused ones, then retry"
    )]
    TooManyConnectionsFromAddress {
        /// `TWOBOT_MAX_CONNECTIONS_PER_ADDRESS`.
        max: usize,
    },
    /// The caller already has its share of requests in flight.
    #[error(
        "this caller already has {max} requests or event streams open, its share of the server's connections (TWOBOT_MAX_INFLIGHT_PER_PRINCIPAL); let one finish or close unused streams, then retry"
    )]
    TooManyInFlight {
        /// `TWOBOT_MAX_INFLIGHT_PER_PRINCIPAL`.
        max: usize,
    },
    /// A new session would exceed the server's cap.
    #[error(
        "the server holds its maximum of {max} live MCP sessions (TWOBOT_MAX_SESSIONS); end unused sessions with DELETE or retry later"
    )]
    TooManySessions {
        /// `TWOBOT_MAX_SESSIONS`.
        max: usize,
    },
    /// A new session would exceed the caller's share.
    #[error(
        "this caller already holds {max} live MCP sessions, its share of the server (TWOBOT_MAX_SESSIONS_PER_PRINCIPAL); end unused sessions with DELETE or retry later"
    )]
    SessionQuota {
        /// `TWOBOT_MAX_SESSIONS_PER_PRINCIPAL`.
        max: usize,
    },
    /// The session id is unknown, expired, or someone else's (one answer for all, so a
    /// session's existence is not revealed).
    #[error("the Mcp-Session-Id is unknown or has expired; initialize a new session")]
    SessionNotFound,
    /// The body did not arrive in time.
    #[error("the request body was not received within {0:?} (TWOBOT_BODY_READ_TIMEOUT_SEC)")]
    BodyTimedOut(Duration),
    /// The body is over the size limit (declared, or counted while reading).
    #[error("{}", too_large(*declared, *limit))]
    BodyTooLarge {
        /// The declared `Content-Length`, when that is how it was found.
        declared: Option<u64>,
        /// `TWOBOT_MAX_BODY_BYTES`.
        limit: u64,
    },
    /// The body is not JSON (bad UTF-8, lone surrogates, too deep, truncated).
    #[error("Parse error: {0}")]
    MalformedJson(String),
    /// JSON, but not one JSON-RPC message object (a batch, a bare value).
    #[error("Invalid Request: {0}")]
    NotOneMessage(&'static str),
    /// A request id another request of the same session still uses.
    #[error(
        "Invalid Request: request id {0} is already in flight in this session; ids must be unique among requests in flight"
    )]
    RequestIdInFlight(String),
    /// Every connection slot is taken (answered on the raw socket, see `server.rs`).
    #[error(
        "the server holds its maximum of {max} open connections (TWOBOT_MAX_CONNECTIONS); retry shortly"
    )]
    TooManyConnections {
        /// `TWOBOT_MAX_CONNECTIONS`.
        max: usize,
    },
}

fn too_large(declared: Option<u64>, limit: u64) -> String {
    match declared {
        Some(declared) => format!(
            "request body of {declared} bytes is over the limit of {limit} bytes (TWOBOT_MAX_BODY_BYTES)"
        ),
        None => format!("request body is over the limit of {limit} bytes (TWOBOT_MAX_BODY_BYTES)"),
    }
}

// === impl Rejection ===

impl Rejection {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated { .. } | Self::UnacceptableToken { .. } => {
                StatusCode::UNAUTHORIZED
            }
            Self::InsufficientScope { .. }
            | Self::HostNotAllowed(_)
            | Self::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            Self::RepeatedAuthorization { .. }
            | Self::MalformedJson(_)
            | Self::NotOneMessage(_)
            | Self::RequestIdInFlight(_) => StatusCode::BAD_REQUEST,
            Self::RateLimited { .. }
            | Self::AddressRateLimited { .. }
            | Self::TooManyConnectionsFromAddress { .. }
            | Self::TooManyInFlight { .. }
            | Self::SessionQuota { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::TooManySessions { .. } | Self::TooManyConnections { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::SessionNotFound => StatusCode::NOT_FOUND,
            Self::BodyTimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// The stable machine code, the body's `error`. Never reworded.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated { .. } => "unauthorized",
            // RFC 6750's error codes, as the challenge spells them.
            Self::UnacceptableToken { .. } => "invalid_token",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::RepeatedAuthorization { .. } => "invalid_request",
            Self::HostNotAllowed(_) => "host_not_allowed",
            Self::OriginNotAllowed(_) => "origin_not_allowed",
            Self::RateLimited { .. } => "rate_limited",
            Self::AddressRateLimited { .. } => "address_rate_limited",
            Self::TooManyConnectionsFromAddress { .. } => "too_many_connections_from_address",
            Self::TooManyInFlight { .. } => "too_many_in_flight",
            Self::TooManySessions { .. } => "too_many_sessions",
            Self::SessionQuota { .. } => "session_quota_exceeded",
            Self::SessionNotFound => "session_not_found",
            Self::BodyTimedOut(_) => "body_timeout",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::MalformedJson(_) => "malformed_json",
            Self::NotOneMessage(_) => "not_one_jsonrpc_message",
            Self::RequestIdInFlight(_) => "request_id_in_flight",
            Self::TooManyConnections { .. } => "too_many_connections",
        }
    }

    /// The JSON-RPC error code, for the refusals of a JSON-RPC body (see the module docs).
    pub fn jsonrpc_code(&self) -> Option<i64> {
        match self {
            Self::MalformedJson(_) => Some(-32700),
            Self::NotOneMessage(_) | Self::RequestIdInFlight(_) | Self::BodyTooLarge { .. } => {
                Some(-32600)
            }
            _ => None,
        }
    }

    /// Headers besides `Content-Type`.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let challenge = |c: &str| {
            // A challenge is built from configuration; one that is not a valid header
            // value (a control character in a URL) is left out rather than sent broken.
            HeaderValue::from_str(c)
                .ok()
                .map(|v| (WWW_AUTHENTICATE, v))
                .into_iter()
                .collect::<Vec<_>>()
        };
        let retry = |secs: u64| (RETRY_AFTER, HeaderValue::from(secs));
        // The caller holds a socket it should give back, or the rest of its body may
        // still be arriving: either way this connection is done.
        let close = || (CONNECTION, HeaderValue::from_static("close"));
        match self {
            Self::Unauthenticated { challenge: c }
            | Self::UnacceptableToken { challenge: c, .. }
            | Self::InsufficientScope { challenge: c, .. }
            | Self::RepeatedAuthorization { challenge: c } => challenge(c),
            Self::RateLimited { retry_after_secs }
            | Self::AddressRateLimited { retry_after_secs } => {
                vec![retry((*retry_after_secs).max(1))]
            }
            Self::TooManyConnectionsFromAddress { .. } => vec![retry(1), close()],
            Self::TooManyInFlight { .. } => vec![retry(5), close()],
            Self::TooManySessions { .. } | Self::SessionQuota { .. } => vec![retry(30)],
            Self::TooManyConnections { .. } => vec![retry(1), close()],
            Self::BodyTimedOut(_) | Self::BodyTooLarge { .. } => vec![close()],
            Self::HostNotAllowed(_)
            | Self::OriginNotAllowed(_)
            | Self::SessionNotFound
            | Self::MalformedJson(_)
            | Self::NotOneMessage(_)
            | Self::RequestIdInFlight(_) => Vec::new(),
        }
    }

    /// The body's bytes (see the module docs for its two shapes).
    pub fn body(&self) -> String {
        let reason = self.to_string();
        let common = Common {
            error: self.code(),
            reason: &reason,
        };
        let json = match self.jsonrpc_code() {
            Some(code) => serde_json::to_string(&JsonRpc {
                jsonrpc: "2.0",
                id: (),
                error: JsonRpcError {
                    code,
                    message: &reason,
                    data: common,
                },
            }),
            None => serde_json::to_string(&common),
        };
        // Strings and integers only: serializing cannot fail; the fallback is still valid.
        json.unwrap_or_else(|_| format!(r#"{{"error":"{}","reason":""}}"#, self.code()))
    }

    /// The whole response as HTTP/1.1 bytes, for a socket no HTTP stack serves (the
    /// connection cap in `server.rs`): the same status, headers and body as [`render`].
    pub fn to_http1(&self) -> Vec<u8> {
        let status = self.status();
        let body = self.body();
        let mut head = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        );
        for (name, value) in self.headers() {
            head.push_str(&format!(
                "{name}: {}\r\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        bytes
    }
}

/// The common body.
#[derive(Serialize)]
struct Common<'a> {
    error: &'static str,
    reason: &'a str,
}

/// A JSON-RPC error response without an id; fields in the order JSON-RPC writes them.
#[derive(Serialize)]
struct JsonRpc<'a> {
    jsonrpc: &'static str,
    id: (),
    error: JsonRpcError<'a>,
}

#[derive(Serialize)]
struct JsonRpcError<'a> {
    code: i64,
    message: &'a str,
    data: Common<'a>,
}

/// THE place a rejection becomes a response: status, headers and body.
pub fn render(rejection: &Rejection) -> Response<Body> {
    let mut response = Response::new(Body::from(rejection.body()));
    *response.status_mut() = rejection.status();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in rejection.headers() {
        headers.insert(name, value);
    }
    response
}

impl From<Rejection> for Response<Body> {
    fn from(rejection: Rejection) -> Self {
        render(&rejection)
    }
}

#[cfg(test)]
#[path = "rescue_tests.rs"]
mod tests;
