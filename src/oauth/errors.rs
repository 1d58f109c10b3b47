//! The OAuth error codes the authorization server answers with, typed (RFC 6749
//! §4.1.2.1 for the authorization endpoint's redirects and §5.2 for the token endpoint,
//! RFC 7591 §3.2.2 for registration, RFC 8707 §2 for resources), and the one JSON
//! rendering of a refusal: `{"error", "error_description"}`, `Cache-Control: no-store`,
//! the status the code calls for unless the refusal says otherwise, and
//! `WWW-Authenticate: Basic` when a client's Basic credentials failed (RFC 6749 §5.2).
//! A code is never a free string, so a typo cannot reach a client.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use serde_json::json;

/// An OAuth error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A parameter is missing, repeated, malformed or not supported.
    InvalidRequest,
    /// The client is unknown or its credentials are wrong.
    InvalidClient,
    /// The code or refresh token is unknown, spent, expired, revoked or not this client's.
    InvalidGrant,
    /// A scope that is unknown or was not granted.
    InvalidScope,
    /// A resource that is not this server's MCP endpoint.
    InvalidTarget,
    /// A grant type other than `authorization_code` and `refresh_token`.
    UnsupportedGrantType,
    /// A response type other than `code`.
    UnsupportedResponseType,
    /// The operator said no.
    AccessDenied,
    /// A registration's redirect URI that may not be used.
    InvalidRedirectUri,
    /// A registration that cannot be honoured as sent.
    InvalidClientMetadata,
    /// The server failed (its state cannot be read or written).
    ServerError,
    /// The server cannot take this now (too many registered clients).
    TemporarilyUnavailable,
    /// Too many requests from this address (registration).
    TooManyRequests,
}

impl Code {
    /// The code as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::AccessDenied => "access_denied",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::TooManyRequests => "too_many_requests",
        }
    }

    /// The status a JSON refusal with this code gets.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidClient => StatusCode::UNAUTHORIZED,
            Self::AccessDenied => StatusCode::FORBIDDEN,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A refusal answered as JSON (the token, revocation and registration endpoints).
#[derive(Debug)]
pub struct Refused {
    /// What went wrong.
    pub code: Code,
    /// The status (the code's, unless [`Self::with_status`] said otherwise).
    pub status: StatusCode,
    /// Why, for the client's developer; never a secret.
    pub description: String,
    /// Whether to challenge for Basic credentials (they were sent and failed).
    pub basic_challenge: bool,
}

/// A refusal with `code`'s status.
pub fn refused(code: Code, description: impl Into<String>) -> Refused {
    Refused {
        code,
        status: code.status(),
        description: description.into(),
        basic_challenge: false,
    }
}

impl Refused {
    /// The same refusal with another status (a too-large body: 413).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The same refusal, challenging for Basic credentials when `basic` is set.
    pub fn with_basic_challenge(mut self, basic: bool) -> Self {
        self.basic_challenge = basic;
        self
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({"error": self.code.as_str(), "error_description": self.description})),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.basic_challenge {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"2Bot\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn each_code_has_its_rfc_spelling_and_status() {
        let cases = [
            (Code::InvalidRequest, "invalid_request", 400),
            (Code::InvalidClient, "invalid_client", 401),
            (Code::InvalidGrant, "invalid_grant", 400),
            (Code::InvalidScope, "invalid_scope", 400),
            (Code::InvalidTarget, "invalid_target", 400),
            (Code::UnsupportedGrantType, "unsupported_grant_type", 400),
            (
                Code::UnsupportedResponseType,
                "unsupported_response_type",
                400,
            ),
            (Code::AccessDenied, "access_denied", 403),
            (Code::InvalidRedirectUri, "invalid_redirect_uri", 400),
            (Code::InvalidClientMetadata, "invalid_client_metadata", 400),
            (Code::ServerError, "server_error", 500),
            (Code::TemporarilyUnavailable, "temporarily_unavailable", 503),
            (Code::TooManyRequests, "too_many_requests", 429),
        ];
        for (code, text, status) in cases {
            assert_eq!(code.as_str(), text);
            assert_eq!(code.status().as_u16(), status, "{text}");
        }
    }

    #[tokio::test]
    async fn a_refusal_renders_as_json_never_cached_and_challenges_only_failed_basic() {
        let response = refused(Code::InvalidClient, "wrong client secret")
            .with_basic_challenge(true)
            .into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Basic realm=\"2Bot\"");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({"error": "invalid_client", "error_description": "wrong client secret"})
        );
        let plain = refused(Code::InvalidClientMetadata, "too large")
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
            .into_response();
        assert_eq!(plain.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(plain.headers().get(WWW_AUTHENTICATE).is_none());
    }
}
