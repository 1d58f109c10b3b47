//! The session guard's decision, pure: whether a request may pass, given its session id,
//! that session's owner, the caller, and how many sessions are live and the caller's.
//! Apart from the guard ([`super::SessionGuard`]) so it is table-tested without a server.

use http::{HeaderMap, HeaderName, Method};
use rmcp::model::ProtocolVersion;

use crate::http::names::{MCP_METHOD, MCP_PROTOCOL_VERSION};

/// What the guard decides for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the request on.
    Pass,
    /// A new session would exceed the server's cap.
    TooManySessions,
    /// A new session would exceed the caller's share.
    TooManyForPrincipal,
    /// The session has no owner or belongs to someone else: answer as if it did not exist.
    NotYours,
}

/// What the guard knows when it decides.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The presented session id, if any.
    pub session: Option<&'a str>,
    /// That session's recorded owner.
    pub owner: Option<&'a str>,
    /// The caller's owner key.
    pub caller: &'a str,
    /// Live sessions now.
    pub live: usize,
    /// Sessions the caller's quota key holds (or is creating).
    pub held: usize,
}

/// Whether a request without a session id may make rmcp open one: a POST that may be an
/// `initialize`. Every other POST holds no place under the session caps while it runs.
///
/// From the headers alone, before the body is read: rmcp refuses, before any session
/// exists, an `initialize` whose one `Mcp-Method` value is not exactly `initialize`
/// (SEP-2243), but checks that header only on requests whose `MCP-Protocol-Version` is
/// 2026-07-28 or later. So a request on such a version that names another method (every
/// stateless 2026-07-28 request names its method) cannot open a session. Without the
/// header, with several values, or on an older version, any POST might be an
/// `initialize`, and counts.
pub fn opens_session(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::POST {
        return false;
    }
    let only = |name: &HeaderName| {
        let mut values = headers.get_all(name).iter();
        values.next().filter(|_| values.next().is_none())
    };
    let checked_version = only(&MCP_PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v >= ProtocolVersion::STANDARD_HEADERS.as_str());
    let other_method =
        only(&MCP_METHOD).is_some_and(|m| !m.as_bytes().eq_ignore_ascii_case(b"initialize"));
    !(checked_version && other_method)
}

/// The decision, pure. `opens`: the request has no session id and may open one
/// ([`opens_session`]).
pub fn decide(opens: bool, seen: Seen<'_>, max: usize, max_per_principal: usize) -> Verdict {
    match seen.session {
        Some(_) => match seen.owner {
            Some(owner) if owner == seen.caller => Verdict::Pass,
            // Unknown, ended, ownerless or someone else's: one answer for all.
            _ => Verdict::NotYours,
        },
        None if !opens => Verdict::Pass,
        None if seen.live >= max => Verdict::TooManySessions,
        None if seen.held >= max_per_principal => Verdict::TooManyForPrincipal,
        None => Verdict::Pass,
    }
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
