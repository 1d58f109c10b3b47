//! Why a client id or its document is refused: one variant per reason, each message a
//! lower-case sentence specific enough for the client's developer to fix it (the
//! authorize endpoint shows it on its error page, less what the network says of the host:
//! [`CimdError::page_reason`]).

use std::net::IpAddr;

use super::{FETCH_TIMEOUT, MAX_DOCUMENT_BYTES};
use crate::oauth::redirect::RedirectError;

/// Why a client id or its document is refused. Messages are lower-case sentences that can
/// be shown to the person on the authorize page.
#[derive(Debug, thiserror::Error)]
pub enum CimdError {
    /// The client id is not a URL a document may live at.
    #[error("client_id {client_id} is not a client metadata document URL: {reason}")]
    ClientId {
        /// The client id (as given).
        client_id: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// Name resolution failed.
    #[error("could not resolve {host}: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// The resolver's reason.
        reason: String,
    },
    /// The host resolves to an address the SSRF guard refuses.
    #[error("{host} resolves to {ip}, {reason}{hint}")]
    Forbidden {
        /// The host.
        host: String,
        /// The first forbidden address.
        ip: IpAddr,
        /// Which range it is in.
        reason: &'static str,
        /// How an operator of a closed network lifts it, when it can be lifted.
        hint: &'static str,
    },
    /// [`FETCH_TIMEOUT`] passed.
    #[error("fetching {url} timed out after {} s", FETCH_TIMEOUT.as_secs())]
    Timeout {
        /// The document URL.
        url: String,
    },
    /// The request failed (connection, TLS, protocol); the chain of causes is in `reason`.
    #[error("fetching {url} failed: {reason}")]
    Request {
        /// The document URL.
        url: String,
        /// Every cause, outermost first.
        reason: String,
    },
    /// The server answered with a redirect, which is never followed.
    #[error("{url} redirected (not followed) with HTTP {status} to {location}")]
    Redirected {
        /// The document URL.
        url: String,
        /// The 3xx status.
        status: u16,
        /// Where it pointed (`?` if nowhere).
        location: String,
    },
    /// Any status but 200.
    #[error("{url} answered HTTP {status}, not 200")]
    Status {
        /// The document URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// Over [`MAX_DOCUMENT_BYTES`].
    #[error("the client metadata document is larger than {} KiB", MAX_DOCUMENT_BYTES / 1024)]
    TooLarge,
    /// The body does not parse as JSON.
    #[error("the client metadata document is not JSON: {reason}")]
    NotJson {
        /// The parser's reason.
        reason: String,
    },
    /// JSON, but not an object.
    #[error("the client metadata document is not a JSON object")]
    NotAnObject,
    /// A required member is missing.
    #[error("the client metadata document has no {0}")]
    MissingField(&'static str),
    /// A member of the wrong JSON type.
    #[error("the client metadata document's {field} must be {expected}")]
    WrongType {
        /// The member.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// `client_id` in the document is not the URL it was fetched from.
    #[error("client_id in the document ({document}) differs from its URL ({url})")]
    ClientIdMismatch {
        /// The document's `client_id` (shortened).
        document: String,
        /// The URL.
        url: String,
    },
    /// `redirect_uris` is an empty list.
    #[error("the client metadata document's redirect_uris is empty")]
    NoRedirectUris,
    /// A redirect URI breaks the redirect rules.
    #[error("redirect URI {uri} is refused: {source}")]
    RedirectUri {
        /// The URI (shortened).
        uri: String,
        /// Which rule.
        source: RedirectError,
    },
    /// A client authentication method other than `none`.
    #[error(
        "token_endpoint_auth_method `{method}` is not allowed: a client metadata document client has no shared secret, so it must be `none`"
    )]
    AuthMethod {
        /// The method (shortened).
        method: String,
    },
    /// The document carries a shared secret.
    #[error(
        "the client metadata document carries a client_secret; a client metadata document client has no shared secret"
    )]
    SharedSecret,
    /// `client_name` cannot be shown.
    #[error("the client metadata document's client_name {0}")]
    ClientName(&'static str),
    /// The HTTP client could not be built (bad extra roots, no system roots).
    #[error("cannot set up the HTTPS client for client metadata documents: {reason}")]
    Client {
        /// Every cause.
        reason: String,
    },
}

impl CimdError {
    /// What the authorize page may say to whoever opened it: the full message, except for
    /// the network's view of the host. Whether a name resolves, and to what kind of
    /// address, would let any visitor map the server's network, so those refusals share
    /// one reason (the operator's log has the details).
    pub fn page_reason(&self) -> String {
        match self {
            Self::Resolve { .. } | Self::Forbidden { .. } | Self::Request { .. } => {
                "its host cannot be fetched from (it does not resolve to a public address, or the connection failed; the server's log says which)".to_owned()
            }
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_reason_never_names_what_a_host_resolves_to() {
        let forbidden = CimdError::Forbidden {
            host: "intranet.example".into(),
            ip: "10.1.2.3".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            reason: "a private address",
            hint: " (TWOBOT_OAUTH_CIMD_ALLOW_PRIVATE=true allows it on a closed network)",
        };
        let resolve = CimdError::Resolve {
            host: "intranet.example".into(),
            reason: "no such host".into(),
        };
        assert_eq!(forbidden.page_reason(), resolve.page_reason());
        for secret in ["10.1.2.3", "private", "no such host", "ALLOW_PRIVATE"] {
            assert!(!forbidden.page_reason().contains(secret), "{secret}");
        }
        assert_eq!(
            CimdError::TooLarge.page_reason(),
            CimdError::TooLarge.to_string()
        );
    }
}
