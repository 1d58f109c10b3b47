//! The model endpoint Codex is configured to talk to, and a connect-only probe of it.
//!
//! A Codex that cannot reach its model retries for minutes while saying only
//! "Reconnecting...". 2Bot names the endpoint instead: `base_url` of the active
//! `model_provider` in `$CODEX_HOME/config.toml` (OpenAI's when none is set), and a TCP
//! connect tells why it cannot be reached. The probe sends nothing (no request, no
//! credentials) and gives up after a short timeout. Both `2bot-mcp doctor` and a run that
//! stops for an unreachable model use it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where OpenAI's own provider sends requests unless configured otherwise.
const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Codex's built-in local provider (`oss`, Ollama).
const OSS_BASE_URL: &str = "http://localhost:11434/v1";
/// How long a probe waits for the TCP handshake.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the endpoint could not be worked out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    /// config.toml is there but is not TOML.
    #[error("{path} is not valid TOML: {reason}")]
    Config {
        /// The file.
        path: String,
        /// The parser's message.
        reason: String,
    },
    /// A custom provider without a `base_url`.
    #[error("model provider {provider:?} has no base_url in {path}")]
    NoBaseUrl {
        /// The provider's name.
        provider: String,
        /// The file.
        path: String,
    },
    /// A `base_url` that is not an http(s) URL with a host.
    #[error("base_url {url:?} of model provider {provider:?} is not an http(s) URL with a host")]
    BadUrl {
        /// The provider's name.
        provider: String,
        /// What was configured.
        url: String,
    },
}

/// The model endpoint of one Codex configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The active `model_provider`.
    pub provider: String,
    /// Its `base_url`.
    pub url: String,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (the scheme's default when the URL has none).
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Codex's home in the environment Codex gets: `CODEX_HOME`, else `$HOME/.codex`.
pub fn codex_home(env: &BTreeMap<OsString, OsString>) -> Option<PathBuf> {
    let var = |name: &str| {
        env.get(&OsString::from(name))
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("CODEX_HOME").or_else(|| var("HOME").map(|h| h.join(".codex")))
}

/// The endpoint `config.toml` (its text, `None` when there is no file) selects.
pub fn from_config(text: Option<&str>, path: &Path) -> Result<Endpoint, EndpointError> {
    let shown = path.display().to_string();
    let table: toml::Table = match text {
        Some(text) => text
            .parse()
            .map_err(|e: toml::de::Error| EndpointError::Config {
                path: shown.clone(),
                reason: e.message().to_owned(),
            })?,
        None => toml::Table::new(),
    };
    let provider = table
        .get("model_provider")
        .and_then(toml::Value::as_str)
        .unwrap_or("openai")
        .to_owned();
    let configured = table
        .get("model_providers")
        .and_then(|p| p.get(&provider))
        .and_then(|p| p.get("base_url"))
        .and_then(toml::Value::as_str);
    let url = match (configured, provider.as_str()) {
        (Some(url), _) => url.to_owned(),
        (None, "openai") => table
            .get("openai_base_url")
            .and_then(toml::Value::as_str)
            .unwrap_or(OPENAI_BASE_URL)
            .to_owned(),
        (None, "oss" | "ollama") => OSS_BASE_URL.to_owned(),
        (None, _) => {
            return Err(EndpointError::NoBaseUrl {
                provider,
                path: shown,
            });
        }
    };
    let parsed = url::Url::parse(&url).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    });
    let Some((host, port)) = parsed.and_then(|u| {
        let host = u.host_str()?.trim_matches(['[', ']']).to_owned();
        Some((host, u.port_or_known_default()?))
    }) else {
        return Err(EndpointError::BadUrl { provider, url });
    };
    Ok(Endpoint {
        provider,
        url,
        host,
        port,
    })
}

/// The endpoint for the Codex that gets `env`, read from its config.toml.
pub fn for_env(env: &BTreeMap<OsString, OsString>) -> Result<Endpoint, EndpointError> {
    let path = codex_home(env)
        .unwrap_or_else(|| PathBuf::from(".codex"))
        .join("config.toml");
    let text = std::fs::read_to_string(&path).ok();
    from_config(text.as_deref(), &path)
}

/// Why a TCP connect to the endpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Refused, no route, a name that does not resolve: said the short way.
    #[error("{}", io_reason(.0))]
    Io(std::io::Error),
    /// Nothing answered at all (a firewall that drops, say).
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
}

/// Open (and close) a TCP connection to the endpoint; the error says why it failed.
pub async fn probe(endpoint: &Endpoint, timeout: Duration) -> Result<(), ConnectError> {
    let target = (endpoint.host.as_str(), endpoint.port);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(target)).await {
        Ok(Ok(_stream)) => Ok(()),
        Ok(Err(e)) => Err(ConnectError::Io(e)),
        Err(_) => Err(ConnectError::Timeout(timeout)),
    }
}

/// "Connection refused (os error 111)" → "connection refused".
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "unknown error".to_owned(),
    }
}

/// The sentence a run stopped for an unreachable model ends with: the endpoint, what a
/// connect to it says now, and Codex's own last error.
pub async fn unreachable_reason(
    env: &BTreeMap<OsString, OsString>,
    waited: Duration,
    last_error: Option<&str>,
) -> String {
    let codex_said = last_error
        .map(|e| format!("; Codex's last error: {e}"))
        .unwrap_or_default();
    let waited = waited.as_secs();
    match for_env(env) {
        Ok(endpoint) => {
            let why = match probe(&endpoint, PROBE_TIMEOUT).await {
                Err(reason) => reason.to_string(),
                Ok(()) => "a TCP connect from 2Bot works, so look at proxies, TLS or the URL path"
                    .to_owned(),
            };
            format!(
                "Codex cannot reach its model endpoint {endpoint}: {why} (model provider {:?}, {}; Codex kept retrying for {waited} s, so 2Bot stopped it, see TWOBOT_MODEL_UNREACHABLE_SEC){codex_said}",
                endpoint.provider, endpoint.url
            )
        }
        Err(e) => format!(
            "Codex cannot reach its model endpoint (which one is unknown: {e}); Codex kept retrying for {waited} s, so 2Bot stopped it, see TWOBOT_MODEL_UNREACHABLE_SEC{codex_said}"
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn endpoint(text: Option<&str>) -> Result<Endpoint, EndpointError> {
        from_config(text, Path::new("/h/config.toml"))
    }

    #[test]
    fn no_config_means_openai() {
        let e = endpoint(None).unwrap();
        assert_eq!(
            (e.provider.as_str(), e.host.as_str(), e.port),
            ("openai", "api.openai.com", 443)
        );
        assert_eq!(e.to_string(), "api.openai.com:443");
    }

    #[test]
    fn the_active_custom_provider_gives_the_base_url() {
        let text = "model_provider = \"mock\"\n[model_providers.mock]\nbase_url = \"http://127.0.0.1:9/v1\"\n[model_providers.other]\nbase_url = \"http://10.0.0.1/v1\"\n";
        let e = endpoint(Some(text)).unwrap();
        assert_eq!(e.to_string(), "127.0.0.1:9");
        assert_eq!(e.url, "http://127.0.0.1:9/v1");
    }

    #[test]
    fn ipv6_and_default_ports_are_written_as_an_address() {
        let text = "model_provider = \"l\"\n[model_providers.l]\nbase_url = \"http://[::1]/v1\"\n";
        assert_eq!(endpoint(Some(text)).unwrap().to_string(), "[::1]:80");
    }

    #[test]
    fn bad_configurations_are_named() {
        assert!(matches!(
            endpoint(Some("model_provider = ")),
            Err(EndpointError::Config { .. })
        ));
        assert_eq!(
            endpoint(Some("model_provider = \"x\"")),
            Err(EndpointError::NoBaseUrl {
                provider: "x".into(),
                path: "/h/config.toml".into()
            })
        );
        let text = "model_provider = \"x\"\n[model_providers.x]\nbase_url = \"unix:/sock\"\n";
        assert!(matches!(
            endpoint(Some(text)),
            Err(EndpointError::BadUrl { .. })
        ));
    }

    #[test]
    fn io_errors_read_as_a_short_reason() {
        let e = std::io::Error::from_raw_os_error(111);
        assert_eq!(io_reason(&e), "connection refused");
    }

    #[tokio::test]
    async fn a_dead_loopback_port_is_refused() {
        // Bind then drop: the port is free, so nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let e = Endpoint {
            provider: "mock".into(),
            url: String::new(),
            host: "127.0.0.1".into(),
            port,
        };
        assert_eq!(
            probe(&e, PROBE_TIMEOUT).await.map_err(|e| e.to_string()),
            Err("connection refused".to_owned())
        );
    }
}
