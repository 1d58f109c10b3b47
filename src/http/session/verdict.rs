//! The session guard's decision, pure: whether a request may pass, given its session id,
//! that session's owner, the caller, and how many sessions are live and the caller's.
//! Apart from the guard ([`super::SessionGuard`]) so it is table-tested without a server.

use http::Method;

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

/// The decision, pure.
pub fn decide(method: &Method, seen: Seen<'_>, max: usize, max_per_principal: usize) -> Verdict {
    match seen.session {
        Some(_) => match seen.owner {
            Some(owner) if owner == seen.caller => Verdict::Pass,
            // Unknown, ended, ownerless or someone else's: one answer for all.
            _ => Verdict::NotYours,
        },
        None if method != Method::POST => Verdict::Pass,
        None if seen.live >= max => Verdict::TooManySessions,
        None if seen.held >= max_per_principal => Verdict::TooManyForPrincipal,
        None => Verdict::Pass,
    }
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
