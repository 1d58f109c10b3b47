//! Who is asking ([`Principal`]) and whose share of the server a call uses ([`QuotaKey`]):
//! the identity every layer passes along, from the transports' authentication to the
//! ownership checks and per-principal quotas of the stack.

/// Who is asking. Policy may narrow what a principal can do; the runner never sees credentials.
/// Serialisable so a run forwarded to the instance holding its thread carries its caller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Principal {
    /// The local user on the other end of stdio.
    Local,
    /// An HTTP caller in no-auth mode.
    Anonymous,
    /// An HTTP caller holding one of the operator's static tokens (not scope-limited).
    Token {
        /// The token's name.
        name: String,
    },
    /// An HTTP caller with a valid JWT: its `iss`, `sub` and scopes. The same subject from
    /// two issuers is two principals.
    Authenticated {
        /// The JWT issuer (`None` only when `TWOBOT_JWT_ISSUER` is unset and the token has none).
        issuer: Option<String>,
        /// The JWT subject (never empty: a token without one is refused).
        subject: String,
        /// The JWT's scopes (`scope` or `scp`).
        scopes: Vec<String>,
    },
}

impl Principal {
    /// A short label for logs.
    pub fn label(&self) -> &str {
        match self {
            Self::Local => "local",
            Self::Anonymous => "anonymous",
            Self::Token { name } => name,
            Self::Authenticated { subject, .. } => subject,
        }
    }

    /// A stable identity for ownership checks; kinds never collide (the static token
    /// named `bob` is not the JWT subject `bob`). A JWT principal is its issuer and subject
    /// as a JSON array, so no choice of either can forge the other's boundary; the prefix
    /// `jwt-iss-sub:` differs from the subject-only `jwt:` of earlier versions, so a record
    /// they wrote never matches a JWT caller (see SECURITY.md).
    pub fn owner_key(&self) -> String {
        match self {
            Self::Local => "local".to_owned(),
            Self::Anonymous => "anonymous".to_owned(),
            // Asked for several times per HTTP request: joined, not formatted.
            Self::Token { name } => ["token:", name.as_str()].concat(),
            Self::Authenticated {
                issuer, subject, ..
            } => format!("jwt-iss-sub:{}", serde_json::json!([issuer, subject])),
        }
    }
}

/// The key per-principal quotas (queue places, kept runs, sessions, requests in flight)
/// count against: the principal's [`Principal::owner_key`], except in no-auth mode,
/// where every HTTP caller is the one shared principal "anonymous" and the transport
/// keys each client address apart (see `http::inflight`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaKey(pub String);

impl QuotaKey {
    /// The key of an identified principal (or of all anonymous callers together).
    pub fn of(principal: &Principal) -> Self {
        Self(principal.owner_key())
    }

    /// The key as text, for logs and maps.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for QuotaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
