//! Client ID Metadata Documents (CIMD): a client whose id is an HTTPS URL needs no
//! registration; 2Bot fetches the JSON document at that URL to learn the client's name and
//! redirect URIs (draft-ietf-oauth-client-id-metadata-document; ChatGPT and the MCP
//! authorization spec use it).
//!
//! The URL comes from whoever opens the authorize page, so the fetch is a request a
//! stranger chooses. It is fenced:
//! - the host is resolved once, and refused if ANY of its addresses is forbidden
//!   ([`forbidden_address`]); the connection then goes only to the addresses checked
//!   (pinned in the client), so a second DNS answer cannot swap in 127.0.0.1 (rebinding);
//! - https only, no proxy (a proxy would resolve the name itself), no redirects (a 3xx
//!   is an error: it could point anywhere);
//! - [`FETCH_TIMEOUT`] for everything, resolution included; at most
//!   [`MAX_DOCUMENT_BYTES`], refused from `Content-Length` or as soon as the stream passes it.
//!
//! HTTPS trust is reqwest's default: on Linux the system roots, read when a fetch starts,
//! or only the PEM file named by `SSL_CERT_FILE` when it is set (rustls-native-certs).

mod address;
mod document;
mod error;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_LENGTH, LOCATION};
use url::{Host, Url};

pub use address::forbidden_address;
pub use document::{ClientMetadata, MAX_CLIENT_NAME_CHARS};
pub use error::CimdError;

/// The whole fetch, name resolution to last byte.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// Longest client id accepted.
pub const MAX_CLIENT_ID_LEN: usize = 2000;

/// Whether `id` is a client metadata document URL (https, a path other than `/`, no
/// fragment, userinfo or dot segments, written in normal form); see [`cimd_url`] for why not.
pub fn is_cimd_client_id(id: &str) -> bool {
    cimd_url(id).is_ok()
}

/// `id` parsed as a client metadata document URL, or the rule it breaks.
pub fn cimd_url(id: &str) -> Result<Url, CimdError> {
    let refuse = |reason| CimdError::ClientId {
        client_id: id.chars().take(200).collect(),
        reason,
    };
    if id.len() > MAX_CLIENT_ID_LEN {
        return Err(refuse("it is longer than 2000 characters"));
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("it contains whitespace or a control character"));
    }
    let url = Url::parse(id).map_err(|_| refuse("it is not an absolute URL"))?;
    if url.scheme() != "https" {
        return Err(refuse("it must be an https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("it carries a user name or password"));
    }
    if url.fragment().is_some() || id.contains('#') {
        return Err(refuse("it has a fragment"));
    }
    // The parser removes dot segments, so look at the path as written.
    let written_path = id
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..]))
        .unwrap_or("");
    let written_path = written_path.split('?').next().unwrap_or("");
    if written_path.split('/').any(|seg| {
        matches!(
            seg.to_ascii_lowercase().as_str(),
            "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e."
        )
    }) {
        return Err(refuse("its path has a . or .. segment"));
    }
    if url.path() == "/" {
        return Err(refuse(
            "it has no path (a document cannot be the site root)",
        ));
    }
    if url.as_str() != id {
        // Upper-case host, default port, percent-encoding: the draft compares client ids as
        // strings, so one client must not have two spellings.
        return Err(refuse(
            "it is not in normal form (lower-case host, no default port)",
        ));
    }
    Ok(url)
}

/// Fetches client metadata documents behind the SSRF guard in the [module docs](self).
#[derive(Debug, Clone)]
pub struct CimdFetcher {
    allow_private: bool,
    extra_roots: Vec<reqwest::Certificate>,
}

impl CimdFetcher {
    /// A fetcher; `allow_private` is `TWOBOT_OAUTH_CIMD_ALLOW_PRIVATE`.
    pub fn new(allow_private: bool) -> CimdFetcher {
        CimdFetcher {
            allow_private,
            extra_roots: Vec::new(),
        }
    }

    /// Also trusts the CA certificates in `pem`, beside the system's (for in-process tests,
    /// which cannot set `SSL_CERT_FILE` safely in a multi-threaded process).
    pub fn with_root_pem(mut self, pem: &[u8]) -> Result<CimdFetcher, CimdError> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| CimdError::Client { reason: chain(&e) })?;
        self.extra_roots.extend(certs);
        Ok(self)
    }

    /// Fetches and checks the document at `client_id`; redirect URIs are checked against
    /// `allowed_hosts` (`TWOBOT_OAUTH_REDIRECT_HOSTS`).
    pub async fn fetch(
        &self,
        client_id: &str,
        allowed_hosts: &[String],
    ) -> Result<ClientMetadata, CimdError> {
        let url = cimd_url(client_id)?;
        tokio::time::timeout(FETCH_TIMEOUT, self.fetch_checked(&url, allowed_hosts))
            .await
            .unwrap_or_else(|_| {
                Err(CimdError::Timeout {
                    url: url.to_string(),
                })
            })
    }

    async fn fetch_checked(
        &self,
        url: &Url,
        allowed_hosts: &[String],
    ) -> Result<ClientMetadata, CimdError> {
        let host = url.host().ok_or_else(|| CimdError::ClientId {
            client_id: url.to_string(),
            reason: "it has no host",
        })?;
        let host_name = host.to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs = self.resolve(&host, port).await?;
        let mut client = reqwest::Client::builder()
            .https_only(true)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!(
                "2bot-mcp/",
                env!("CARGO_PKG_VERSION"),
                " (client metadata fetch)"
            ));
        if let Host::Domain(domain) = host {
            // Pinned: reqwest connects to these addresses and never asks DNS again.
            client = client.resolve_to_addrs(domain, &addrs);
        }
        if !self.extra_roots.is_empty() {
            client = client.tls_certs_merge(self.extra_roots.iter().cloned());
        }
        let client = client
            .build()
            .map_err(|e| CimdError::Client { reason: chain(&e) })?;
        let failed = |e: reqwest::Error| match e.is_timeout() {
            true => CimdError::Timeout {
                url: url.to_string(),
            },
            false => CimdError::Request {
                url: url.to_string(),
                reason: chain(&e.without_url()),
            },
        };
        let mut response = client
            .get(url.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        if status.is_redirection() {
            let location = response.headers().get(LOCATION);
            return Err(CimdError::Redirected {
                url: url.to_string(),
                status: status.as_u16(),
                location: location
                    .and_then(|l| l.to_str().ok())
                    .map_or_else(|| "?".to_owned(), |l| l.chars().take(200).collect()),
            });
        }
        if status != reqwest::StatusCode::OK {
            return Err(CimdError::Status {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) {
            return Err(CimdError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(CimdError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        document::parse(&body, url.as_str(), &host_name, allowed_hosts)
    }

    /// Every address `host` has, each checked; an IP literal is checked as it is.
    async fn resolve(&self, host: &Host<&str>, port: u16) -> Result<Vec<SocketAddr>, CimdError> {
        let addrs: Vec<SocketAddr> = match host {
            Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), port)],
            Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), port)],
            Host::Domain(domain) => tokio::net::lookup_host((*domain, port))
                .await
                .map_err(|e| CimdError::Resolve {
                    host: domain.to_string(),
                    reason: e.to_string(),
                })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(CimdError::Resolve {
                host: host.to_string(),
                reason: "no addresses".to_owned(),
            });
        }
        for addr in &addrs {
            let ip = addr.ip();
            if let Some(reason) = forbidden_address(ip, self.allow_private) {
                let hint = match address::allowed_when_private(ip) {
                    true => " (TWOBOT_OAUTH_CIMD_ALLOW_PRIVATE=true allows it on a closed network)",
                    false => "",
                };
                return Err(CimdError::Forbidden {
                    host: host.to_string(),
                    ip,
                    reason,
                    hint,
                });
            }
        }
        Ok(addrs)
    }
}

/// An error and its causes, outermost first (reqwest's own message omits them: "error
/// sending request" says nothing about an unknown certificate authority).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
#[path = "cimd_tests.rs"]
mod tests;
