//! The HTTP transport's settings as the operator gives them ([`HttpArgs`], validated into
//! `http::HttpSettings` at start), and the one question about exposure that both the
//! server and `doctor` ask: would a server without auth be reachable from elsewhere?

use std::net::IpAddr;
use std::path::PathBuf;

use super::parse::parse_bool;
use super::principal::PrincipalLimits;

/// Settings of the Streamable HTTP transport (ignored in stdio mode).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "HTTP transport")]
pub struct HttpArgs {
    /// Path of the MCP endpoint.
    #[arg(long, env = "TWOBOT_HTTP_PATH", default_value = "/mcp", value_parser = parse_http_path)]
    pub http_path: String,

    /// Seconds an idle MCP session lives.
    #[arg(long, env = "TWOBOT_SESSION_IDLE_SEC", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub session_idle_sec: u64,

    /// Seconds a finished response stream stays resumable (`Last-Event-ID`); its events are held in memory that long.
    #[arg(long, env = "TWOBOT_SSE_RESUME_SEC", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub sse_resume_sec: u64,

    /// Largest request body, in bytes (413 beyond; a body declared larger is discarded, up to 16 MiB, so the client reads the 413).
    #[arg(long, env = "TWOBOT_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_body_bytes: u64,

    /// Extra allowed `Origin` values, comma-separated (the base URL's origin and loopback are always allowed).
    #[arg(long, env = "TWOBOT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Extra allowed `Host` values, comma-separated (loopback and the base URL's host are always allowed).
    #[arg(long, env = "TWOBOT_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Most live MCP sessions at once (503 for a new session beyond).
    #[arg(long, env = "TWOBOT_MAX_SESSIONS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sessions: u32,

    /// Most live MCP sessions one principal holds (no-auth: one client address); 429 beyond.
    #[arg(long, env = "TWOBOT_MAX_SESSIONS_PER_PRINCIPAL", default_value_t = PrincipalLimits::SESSIONS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sessions_per_principal: u32,

    /// Most open TCP connections at once (503 and close beyond).
    #[arg(long, env = "TWOBOT_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Most HTTP requests one principal has in flight, open SSE streams included (no-auth: one client address); 429 and close beyond.
    #[arg(long, env = "TWOBOT_MAX_INFLIGHT_PER_PRINCIPAL", default_value_t = PrincipalLimits::INFLIGHT, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_inflight_per_principal: u32,

    /// Seconds a connection may take to send a request's headers, idle keep-alive included (slowloris).
    #[arg(long, env = "TWOBOT_HEADER_READ_TIMEOUT_SEC", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout_sec: u64,

    /// Seconds a request may take to send its body once its headers are in (408 and close beyond).
    #[arg(long, env = "TWOBOT_BODY_READ_TIMEOUT_SEC", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_read_timeout_sec: u64,

    /// Static bearer tokens, comma-separated, each `name:token` (or a bare token).
    #[arg(long, env = "TWOBOT_AUTH_TOKENS", hide_env_values = true)]
    pub auth_tokens: Option<String>,

    /// File of static bearer tokens, one `name:token` per line.
    #[arg(long, env = "TWOBOT_AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<PathBuf>,

    /// HMAC secret for HS256/HS384/HS512 JWTs.
    #[arg(long, env = "TWOBOT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// PEM public key for RS*/PS*/ES*/EdDSA JWTs.
    #[arg(long, env = "TWOBOT_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,

    /// JWKS URL of the authorization server (https, or http on loopback): fetched at start, cached, refreshed on an unknown `kid`.
    #[arg(long, env = "TWOBOT_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,

    /// Least seconds between two JWKS fetches triggered by tokens with an unknown `kid`.
    #[arg(long, env = "TWOBOT_JWT_JWKS_MIN_REFRESH_SEC", default_value_t = 30)]
    pub jwt_jwks_min_refresh_sec: u64,

    /// Required JWT issuer (`iss`).
    #[arg(long, env = "TWOBOT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required JWT audience (`aud`) [default: TWOBOT_BASE_URL + TWOBOT_HTTP_PATH].
    #[arg(long, env = "TWOBOT_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Clock leeway for `exp`/`nbf`, in seconds.
    #[arg(long, env = "TWOBOT_JWT_LEEWAY_SEC", default_value_t = 30)]
    pub jwt_leeway_sec: u64,

    /// Scopes every JWT must carry, comma- or space-separated (403 insufficient_scope otherwise).
    #[arg(long, env = "TWOBOT_REQUIRED_SCOPES")]
    pub required_scopes: Option<String>,

    /// OAuth authorization servers advertised in the protected-resource metadata, comma-separated.
    #[arg(long, env = "TWOBOT_AUTH_SERVERS", value_delimiter = ',')]
    pub auth_servers: Vec<String>,

    /// Serve no-auth although the bind address or TWOBOT_BASE_URL's host is not loopback (warned at every start).
    #[arg(long, env = "TWOBOT_ALLOW_PUBLIC_NO_AUTH", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub allow_public_no_auth: bool,

    /// Your proxies' addresses (IPs or CIDRs, comma-separated): X-Forwarded-For / Forwarded are read only from these peers, and the client is the right-most address there that is not one of them [default: none, headers ignored].
    #[arg(long, env = "TWOBOT_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Removed: `true` refuses to start (use TWOBOT_TRUSTED_PROXIES with your proxy's address); `false` does nothing.
    #[arg(long, env = "TWOBOT_TRUST_PROXY_HEADERS", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub trust_proxy_headers: bool,

    /// Requests per minute per client address, counted before auth (IPv6 by /64); 429 beyond.
    #[arg(long, env = "TWOBOT_ADDRESS_RATE_PER_MINUTE", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    pub address_rate_per_minute: u32,

    /// Requests one client address may send in a burst, before auth.
    #[arg(long, env = "TWOBOT_ADDRESS_RATE_BURST", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub address_rate_burst: u32,

    /// Most open TCP connections from one client address (IPv6 by /64; TWOBOT_TRUSTED_PROXIES peers exempt); 429 and close beyond.
    #[arg(long, env = "TWOBOT_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: u32,

    /// Requests per minute per principal (or client address).
    #[arg(long, env = "TWOBOT_RATE_LIMIT_PER_MINUTE", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_minute: u32,

    /// Requests allowed in a burst.
    #[arg(long, env = "TWOBOT_RATE_LIMIT_BURST", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,

    /// Seconds running calls may finish after SIGTERM before they are killed.
    #[arg(long, env = "TWOBOT_SHUTDOWN_GRACE_SEC", default_value_t = 30)]
    pub shutdown_grace_sec: u64,
}

/// `/` followed by a path without query, fragment or trailing slash.
fn parse_http_path(s: &str) -> Result<String, String> {
    let ok = s.starts_with('/')
        && s.len() > 1
        && !s.ends_with('/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err("expected a path such as /mcp".to_owned())
    }
}

/// Where a server without auth would be reachable from beyond this machine, if anywhere:
/// a non-loopback bind address, a base URL whose host is not loopback (the proxy or
/// tunnel layout, where the server binds 127.0.0.1 and the world reaches it anyway), or
/// a non-loopback allowed host or origin (the same layout, named another way: allowing
/// `mcp.example.com` says requests for it arrive).
pub fn public_exposure(
    host: IpAddr,
    base_url: Option<&str>,
    allowed_hosts: &[String],
    allowed_origins: &[String],
) -> Option<String> {
    if !host.is_loopback() {
        return Some(format!("the non-loopback address {host}"));
    }
    if let Some(base) = base_url
        && let Some(name) = url_host(base)
        && !is_loopback_name(&name)
    {
        return Some(format!("the public base URL {base} (TWOBOT_BASE_URL)"));
    }
    if let Some(h) = allowed_hosts
        .iter()
        .map(|h| h.trim())
        .find(|h| !h.is_empty() && !is_loopback_name(strip_port(h)))
    {
        return Some(format!(
            "the non-loopback allowed host {h} (TWOBOT_ALLOWED_HOSTS)"
        ));
    }
    allowed_origins
        .iter()
        .map(|o| o.trim())
        .find(|o| !o.is_empty() && url_host(o).is_none_or(|name| !is_loopback_name(&name)))
        .map(|o| format!("the non-loopback allowed origin {o} (TWOBOT_ALLOWED_ORIGINS)"))
}

/// The host of an absolute URL, without brackets.
fn url_host(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    let name = uri.host()?;
    Some(
        name.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
}

/// `host` of `host[:port]` or `[v6][:port]`, without brackets.
fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        // More than one colon: a bare IPv6 address, no port.
        Some((h, _)) if !h.contains(':') => h,
        _ => authority,
    }
}

fn is_loopback_name(name: &str) -> bool {
    match name.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn no_auth_is_public_when_the_bind_address_or_the_base_url_is_not_loopback() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let lan: IpAddr = "192.168.1.5".parse().unwrap();
        let cases: [(IpAddr, Option<&str>, Option<&str>); 11] = [
            (lo, None, None),
            (lo6, None, None),
            (lo, Some("http://127.0.0.1:9000"), None),
            (lo, Some("http://[::1]:9000"), None),
            (lo, Some("http://localhost:9000"), None),
            (lo, Some("http://LOCALHOST."), None),
            (lo, Some("http://app.localhost"), None),
            (
                lo,
                Some("https://mcp.example.com"),
                Some("https://mcp.example.com"),
            ),
            (lo, Some("http://192.168.1.5:9000"), Some("192.168.1.5")),
            (any, None, Some("0.0.0.0")),
            (lan, Some("http://127.0.0.1"), Some("192.168.1.5")),
        ];
        for (host, base, expect) in cases {
            let got = public_exposure(host, base, &[], &[]);
            match expect {
                None => assert_eq!(got, None, "{host} {base:?}"),
                Some(part) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(part)),
                    "{host} {base:?}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn any_non_loopback_allowed_host_or_origin_makes_no_auth_public() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let v = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: [(Vec<String>, Vec<String>, Option<&str>); 9] = [
            (
                v(&["localhost", "127.0.0.1:9000", "[::1]:80", "app.localhost"]),
                v(&[]),
                None,
            ),
            (
                v(&[]),
                v(&[
                    "http://localhost:6274",
                    "http://127.0.0.1:3000",
                    "http://[::1]",
                ]),
                None,
            ),
            (v(&[""]), v(&[""]), None),
            (
                v(&["mcp.example.com"]),
                v(&[]),
                Some("mcp.example.com (TWOBOT_ALLOWED_HOSTS)"),
            ),
            (
                v(&["localhost", "10.0.0.5:9000"]),
                v(&[]),
                Some("10.0.0.5:9000 (TWOBOT_ALLOWED_HOSTS)"),
            ),
            (
                v(&["localhost.evil.com"]),
                v(&[]),
                Some("TWOBOT_ALLOWED_HOSTS"),
            ),
            (
                v(&[]),
                v(&["https://chatgpt.com"]),
                Some("https://chatgpt.com (TWOBOT_ALLOWED_ORIGINS)"),
            ),
            (
                v(&[]),
                v(&["http://localhost.evil.com"]),
                Some("TWOBOT_ALLOWED_ORIGINS"),
            ),
            (v(&[]), v(&["not a url"]), Some("TWOBOT_ALLOWED_ORIGINS")),
        ];
        for (hosts, origins, expect) in cases {
            let got = public_exposure(lo, None, &hosts, &origins);
            match expect {
                None => assert_eq!(got, None, "{hosts:?} {origins:?}"),
                Some(part) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(part)),
                    "{hosts:?} {origins:?}: {got:?}"
                ),
            }
        }
    }
}
