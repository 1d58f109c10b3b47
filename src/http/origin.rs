//! `Host` and `Origin` validation against DNS rebinding (MCP Streamable HTTP security).
//!
//! A browser page on an attacker's site can make a victim's browser talk to a 2Bot on
//! loopback, so: a present `Origin` must be the base URL's origin, a loopback origin,
//! or explicitly allowed; `Host` must be loopback, the base URL's host, or allowed.
//! `Origin: null`, two `Origin` headers and look-alike hosts (`localhost.evil.com`)
//! are refused with 403. [`HostOriginPolicy::check`] is the pure decision.

use std::sync::Arc;

use axum::body::Body;
use http::header::{HOST, ORIGIN};
use http::{HeaderMap, Request, Response};
use tower_http::validate_request::ValidateRequest;

use super::rescue::{self, Rejection};

/// Which hosts and origins may reach the MCP endpoint. Shared lists: the stack that holds
/// this check is cloned for every request.
#[derive(Clone, Debug, Default)]
pub struct HostOriginPolicy {
    /// Hosts (lower-case, without port) accepted besides loopback.
    pub hosts: Arc<[String]>,
    /// Origins (`scheme://host[:port]`, lower-case) accepted besides loopback.
    pub origins: Arc<[String]>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// `Host` missing or not allowed.
    #[error("host not allowed: {0}")]
    Host(String),
    /// `Origin` not allowed.
    #[error("origin not allowed: {0}")]
    Origin(String),
}

impl HostOriginPolicy {
    /// Allow `base_url`'s host and origin plus the extra `hosts` and `origins`.
    pub fn new(base_url: Option<&str>, hosts: &[String], origins: &[String]) -> Self {
        let mut hosts: Vec<String> = hosts
            .iter()
            .map(|h| strip_port(&h.to_ascii_lowercase()).to_owned())
            .collect();
        let mut origins: Vec<String> = origins.iter().filter_map(|o| normalize_origin(o)).collect();
        if let Some(base) = base_url
            && let Some(origin) = normalize_origin(base)
        {
            if let Some((_, authority)) = origin.split_once("://") {
                hosts.push(strip_port(authority).to_owned());
            }
            origins.push(origin);
        }
        Self {
            hosts: hosts.into(),
            origins: origins.into(),
        }
    }

    /// The decision for one request's headers.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Refused> {
        let mut hosts = headers.get_all(HOST).iter();
        let host = match (hosts.next(), hosts.next()) {
            (Some(h), None) => h
                .to_str()
                .map_err(|_| Refused::Host("<non-ascii>".into()))?,
            (None, _) => return Err(Refused::Host("<missing>".into())),
            (Some(_), Some(_)) => return Err(Refused::Host("<several>".into())),
        };
        // Compared without case and without a lower-cased copy: this runs on every request.
        let host_name = strip_port(host);
        if !is_loopback(host_name)
            && !self
                .hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(host_name))
        {
            return Err(Refused::Host(host.to_owned()));
        }

        let mut origins = headers.get_all(ORIGIN).iter();
        match (origins.next(), origins.next()) {
            (None, _) => Ok(()),
            (Some(_), Some(_)) => Err(Refused::Origin("<several>".into())),
            (Some(value), None) => {
                let raw = value.to_str().unwrap_or("<non-ascii>");
                let Some(origin) = normalize_origin(raw) else {
                    return Err(Refused::Origin(raw.to_owned()));
                };
                let loopback = origin.split_once("://").is_some_and(|(scheme, authority)| {
                    matches!(scheme, "http" | "https") && is_loopback(strip_port(authority))
                });
                if loopback || self.origins.contains(&origin) {
                    Ok(())
                } else {
                    Err(Refused::Origin(raw.to_owned()))
                }
            }
        }
    }
}

impl<B> ValidateRequest<B> for HostOriginPolicy {
    type ResponseBody = Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<Body>> {
        self.check(request.headers()).map_err(|refused| {
            tracing::warn!(%refused, "request refused (DNS rebinding protection)");
            rescue::render(&match refused {
                Refused::Host(host) => Rejection::HostNotAllowed(host),
                Refused::Origin(origin) => Rejection::OriginNotAllowed(origin),
            })
        })
    }
}

/// `scheme://host[:port]` in lower case, with the scheme's default port dropped;
/// `None` for `null`, paths, userinfo or anything else that is not an origin.
fn normalize_origin(raw: &str) -> Option<String> {
    let uri: http::Uri = raw.trim().parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || uri.path().len() > 1 || uri.query().is_some() {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    Some(match authority.port_u16() {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// `host` without `:port` (IPv6 literals keep their brackets).
fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |i| &authority[..=i]);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use http::HeaderValue;

    use super::*;

    fn headers(host: &str, origins: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_str(host).unwrap());
        for o in origins {
            h.append(ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    fn policy() -> HostOriginPolicy {
        HostOriginPolicy::new(
            Some("https://mcp.example.com"),
            &["internal.example.com".into()],
            &["https://chatgpt.com".into()],
        )
    }

    #[test]
    fn loopback_base_url_and_listed_hosts_and_origins_pass() {
        let p = policy();
        for (host, origins) in [
            ("127.0.0.1:9000", vec![]),
            ("localhost", vec!["http://localhost:6274"]),
            ("[::1]:9000", vec!["http://127.0.0.1:3000"]),
            ("mcp.example.com", vec!["https://mcp.example.com"]),
            ("mcp.example.com:443", vec!["https://mcp.example.com:443"]),
            ("internal.example.com", vec!["https://chatgpt.com"]),
            // Host names are compared without case.
            ("LocalHost:9000", vec![]),
            ("MCP.Example.COM", vec![]),
            ("Internal.Example.com:8443", vec![]),
        ] {
            assert_eq!(
                p.check(&headers(host, &origins)),
                Ok(()),
                "{host} {origins:?}"
            );
        }
    }

    #[test]
    fn evil_origins_and_hosts_are_refused() {
        let p = policy();
        for (host, origins) in [
            ("127.0.0.1", vec!["https://evil.com"]),
            ("127.0.0.1", vec!["null"]),
            ("127.0.0.1", vec!["http://localhost.evil.com"]),
            ("127.0.0.1", vec!["http://127.0.0.1.evil.com"]),
            ("127.0.0.1", vec!["https://mcp.example.com.evil.com"]),
            ("127.0.0.1", vec!["https://mcp.example.com:8443"]),
            (
                "127.0.0.1",
                vec!["http://localhost:3000", "https://evil.com"],
            ),
            ("127.0.0.1", vec!["file://localhost"]),
            ("evil.com", vec![]),
            ("localhost.evil.com", vec![]),
            ("mcp.example.com.evil.com:443", vec![]),
        ] {
            assert!(
                p.check(&headers(host, &origins)).is_err(),
                "{host} {origins:?}"
            );
        }
        assert!(p.check(&HeaderMap::new()).is_err(), "missing Host");
    }
}
