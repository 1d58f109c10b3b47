//! How a refused bearer check is answered over HTTP: the [`Rejection`] (and so the
//! status and RFC 6750 `WWW-Authenticate` challenge, with RFC 9728's `resource_metadata`)
//! each [`AuthError`] gets. The decision itself is `crate::auth`'s; this is its one
//! mapping to HTTP.

use crate::auth::{AuthConfig, AuthError};
use crate::http::rescue::Rejection;

/// The refusal `error` gets, with its RFC 6750 challenge (RFC 9728 `resource_metadata`).
pub fn reject(config: &AuthConfig, error: &AuthError, sent_token: bool) -> Rejection {
    let metadata = &config.resource_metadata_url;
    match error {
        AuthError::InsufficientScope(_) => {
            let required = config.required_scopes.join(" ");
            Rejection::InsufficientScope {
                challenge: format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{required}\", resource_metadata=\"{metadata}\""
                ),
                required,
            }
        }
        AuthError::Repeated => Rejection::RepeatedAuthorization {
            challenge: format!(
                "Bearer error=\"invalid_request\", error_description=\"more than one Authorization header\", resource_metadata=\"{metadata}\""
            ),
        },
        AuthError::Unacceptable(reason) => Rejection::UnacceptableToken {
            reason,
            challenge: format!(
                "Bearer error=\"invalid_token\", error_description=\"{reason}\", resource_metadata=\"{metadata}\""
            ),
        },
        _ if sent_token => Rejection::Unauthenticated {
            challenge: format!(
                "Bearer error=\"invalid_token\", resource_metadata=\"{metadata}\"{}",
                scope_param(&config.challenge_scopes)
            ),
        },
        _ => Rejection::Unauthenticated {
            challenge: format!(
                "Bearer resource_metadata=\"{metadata}\"{}",
                scope_param(&config.challenge_scopes)
            ),
        },
    }
}

/// `, scope="a b"` for a challenge, or nothing when no scope is named.
fn scope_param(scopes: &[String]) -> String {
    if scopes.is_empty() {
        String::new()
    } else {
        format!(", scope=\"{}\"", scopes.join(" "))
    }
}
