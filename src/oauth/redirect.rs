//! Which redirect URIs the authorization server sends codes to: the one decision that keeps
//! a code (and the user's consent) from being delivered to a stranger.
//!
//! A redirect URI is accepted when it is `https` on a host the operator allows
//! (`TWOBOT_OAUTH_REDIRECT_HOSTS`, exact match after normalisation: no subdomains unless
//! listed), or `http` on a loopback host, any port (RFC 8252 §7.3, for native and
//! command-line clients). Everything else is refused with the specific reason, so a client
//! developer can fix it, and the endpoints show it on an error page, never as a redirect.
//!
//! The URL parser is the WHATWG one (`url`), the same one browsers use to follow the
//! redirect: what is checked is what the browser will visit (`https://chatgpt.com@evil.com/`
//! is a user name on `evil.com`, `https://evil.com\@chatgpt.com/` is a path on `evil.com`).

use url::{Host, Url};

/// Longest redirect URI accepted; real ones are well under 300 characters.
pub const MAX_REDIRECT_URI_LEN: usize = 2000;

/// Why a redirect URI is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    /// Longer than [`MAX_REDIRECT_URI_LEN`].
    #[error("redirect URI is longer than {MAX_REDIRECT_URI_LEN} characters")]
    TooLong,
    /// Browsers strip tabs and newlines silently; a URI that needs that is not what it shows.
    #[error("redirect URI contains whitespace or a control character")]
    Whitespace,
    /// Not an absolute URL (relative, or unparsable).
    #[error("redirect URI is not an absolute URL: {reason}")]
    NotAbsolute {
        /// The parser's reason.
        reason: String,
    },
    /// A scheme other than https and http (javascript:, data:, custom app schemes, …).
    #[error(
        "redirect URI scheme `{scheme}:` is not allowed: only https, or http on a loopback host"
    )]
    Scheme {
        /// The scheme, lower-case.
        scheme: String,
    },
    /// A user name or password before the host (`https://user@host/`).
    #[error("redirect URI carries a user name or password before its host; remove it")]
    Userinfo,
    /// A fragment (`#…`), which RFC 6749 §3.1.2 forbids in a redirection endpoint.
    #[error("redirect URI has a fragment (#…), which a redirect URI may not have")]
    Fragment,
    /// No host at all.
    #[error("redirect URI has no host")]
    NoHost,
    /// `chatgpt.com.` names the same site as `chatgpt.com` but is a different string.
    #[error("redirect URI host `{host}` ends with a dot; write it without the trailing dot")]
    TrailingDot {
        /// The host as parsed.
        host: String,
    },
    /// An https host that the operator did not allow.
    #[error(
        "redirect URI host `{host}` is not an allowed redirect host (TWOBOT_OAUTH_REDIRECT_HOSTS)"
    )]
    HostNotAllowed {
        /// The host as parsed (lower-case, punycode).
        host: String,
    },
    /// Plain http to anything but the user's own machine.
    #[error(
        "redirect URI uses http on `{host}`: http is allowed only on a loopback host (127.0.0.1, [::1] or localhost); use https"
    )]
    HttpNotLoopback {
        /// The host as parsed.
        host: String,
    },
}

/// Checks a redirect URI against the rules in the [module docs](self); returns it parsed.
pub fn check_redirect_uri(uri: &str, allowed_hosts: &[String]) -> Result<Url, RedirectError> {
    if uri.len() > MAX_REDIRECT_URI_LEN {
        return Err(RedirectError::TooLong);
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(RedirectError::Whitespace);
    }
    let url = Url::parse(uri).map_err(|e| RedirectError::NotAbsolute {
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(RedirectError::Scheme {
            scheme: url.scheme().to_owned(),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RedirectError::Userinfo);
    }
    if url.fragment().is_some() {
        return Err(RedirectError::Fragment);
    }
    let host = url.host().ok_or(RedirectError::NoHost)?;
    let shown = host.to_string();
    if shown.ends_with('.') {
        return Err(RedirectError::TrailingDot { host: shown });
    }
    let ok = match url.scheme() {
        "https" => allowed_hosts
            .iter()
            .any(|allowed| normalize_host(allowed).is_some_and(|a| a == shown)),
        _ => is_loopback(&host),
    };
    match (ok, url.scheme()) {
        (true, _) => Ok(url),
        (false, "https") => Err(RedirectError::HostNotAllowed { host: shown }),
        (false, _) => Err(RedirectError::HttpNotLoopback { host: shown }),
    }
}

/// Whether a redirect URI given in a request names a registered one: exact string
/// equality, except that for a loopback `http` URI the port may differ (RFC 8252 §7.3:
/// a native client listens on whatever port is free at the time).
pub fn redirect_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Some(registered), Some(requested)) = (
        loopback_without_port(registered),
        loopback_without_port(requested),
    ) else {
        return false;
    };
    registered == requested
}

/// Why `host` cannot be a redirect host: it must be a bare host name as in a URL's
/// authority, compared exactly (no scheme, port, path, wildcard or trailing dot).
pub fn host_problem(host: &str) -> Option<&'static str> {
    if host.is_empty() {
        return Some("is empty");
    }
    if host.contains("://") {
        return Some("has a scheme; give the host alone");
    }
    if host.contains('*') {
        return Some("has a wildcard; list each host");
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '@'))
    {
        return Some("has a path, space or userinfo; give the host alone");
    }
    if host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
        return Some("is an IP address; redirect URIs on https need a host name");
    }
    if host.contains(':') {
        return Some("has a port; any port of a listed host is allowed");
    }
    if host.ends_with('.') {
        return Some("ends with a dot; redirect hosts are compared exactly");
    }
    match url::Host::parse(host) {
        Ok(url::Host::Domain(_)) => None,
        Ok(_) => Some("is an IP address; redirect URIs on https need a host name"),
        Err(_) => Some("is not a valid host name"),
    }
}

/// An allowed-host entry as the parser would write it (lower-case, punycode), or `None`
/// if it is not a host name (so it can never match). `settings` uses it to refuse a bad
/// `TWOBOT_OAUTH_REDIRECT_HOSTS` entry at start.
pub fn normalize_host(allowed: &str) -> Option<String> {
    let allowed = allowed.trim();
    if allowed.is_empty() || allowed.ends_with('.') {
        return None;
    }
    match Host::parse(allowed).ok()? {
        Host::Domain(d) => Some(d),
        ip => Some(ip.to_string()),
    }
}

/// 127.0.0.0/8, `[::1]` or `localhost` (which RFC 8252 discourages but real clients use).
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
        Host::Domain(d) => *d == "localhost",
    }
}

/// A loopback `http` redirect URI written in its normal form, with its port removed;
/// `None` for anything else (those must match exactly).
fn loopback_without_port(uri: &str) -> Option<String> {
    let mut url = Url::parse(uri).ok()?;
    // Only the port may differ: a URI the parser would rewrite (case, dot segments, …)
    // must match exactly, so two spellings cannot be made to look alike.
    if url.as_str() != uri || url.scheme() != "http" || !is_loopback(&url.host()?) {
        return None;
    }
    url.set_port(None).ok()?;
    Some(url.into())
}

#[cfg(test)]
#[path = "redirect_tests.rs"]
mod tests;
