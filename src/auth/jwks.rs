//! The authorization server's signing keys, fetched from `TWOBOT_JWT_JWKS_URL`.
//!
//! Keys rotate: the set is fetched at start, refreshed every [`PERIODIC_REFRESH`], and
//! refreshed at once when a token names a `kid` we do not hold. That last path is
//! reachable by anyone who can send a header, so it is throttled
//! (`TWOBOT_JWT_JWKS_MIN_REFRESH_SEC`, default 30 s) and the document is size-capped:
//! a flood of made-up `kid`s costs at most one fetch per interval.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use tokio_util::sync::CancellationToken;

use super::keys::JwtKey;

/// How often keys are refreshed without being asked.
pub const PERIODIC_REFRESH: Duration = Duration::from_secs(600);
/// Largest JWKS document accepted.
const MAX_DOCUMENT: usize = 256 * 1024;
/// Most keys kept from one document.
const MAX_KEYS: usize = 64;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// Network or HTTP failure.
    #[error("fetching {url}: {reason}")]
    Fetch {
        /// The JWKS URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The document is not a usable JWK set.
    #[error("{url} is not a usable JWK set: {reason}")]
    Document {
        /// The JWKS URL.
        url: String,
        /// What went wrong.
        reason: DocumentError,
    },
    /// The configured URL does not parse.
    #[error("is not a URL: {0}")]
    NotUrl(#[from] url::ParseError),
    /// Keys fetched over plain http from a remote host could be swapped in transit.
    #[error("must be an https URL (plain http only to a loopback host)")]
    Insecure,
    /// The HTTP client could not be built.
    #[error("{0}")]
    Client(#[from] reqwest::Error),
}

/// Why a fetched document gave no keys.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Not JSON, or not shaped like a JWK set.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// Every key in it was skipped.
    #[error("no usable signature key")]
    NoKey,
}

/// A cached, refreshable JWK set.
#[derive(Debug)]
pub struct Jwks {
    url: String,
    client: reqwest::Client,
    keys: RwLock<Arc<Vec<JwtKey>>>,
    /// Bumped each time the key set is replaced.
    generation: AtomicU64,
    /// Serialises fetches; holds when the last fetch was attempted.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    min_refresh: Duration,
}

/// Check that `url` is one we may fetch keys from: https, or http to a loopback host
/// (a local identity provider, or a test).
pub fn validate_url(url: &str) -> Result<reqwest::Url, JwksError> {
    let parsed = reqwest::Url::parse(url)?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err(JwksError::Insecure),
    }
}

/// The signature keys of a JWKS document; keys we cannot or must not use are skipped.
pub fn parse(document: &[u8]) -> Result<(Vec<JwtKey>, Vec<String>), DocumentError> {
    let set: JwkSet = serde_json::from_slice(document)?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for jwk in set.keys.iter().take(MAX_KEYS) {
        match JwtKey::from_jwk(jwk) {
            Ok(key) => keys.push(key),
            Err(why) => skipped.push(format!(
                "kid {:?}: {why}",
                jwk.common.key_id.as_deref().unwrap_or("")
            )),
        }
    }
    Ok((keys, skipped))
}

impl Jwks {
    /// A key set fetched from `url` (already validated), refreshed on unknown kids at
    /// most once per `min_refresh`.
    pub fn new(url: &str, min_refresh: Duration) -> Result<Self, JwksError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("2bot-mcp/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            url: url.to_owned(),
            client,
            keys: RwLock::new(Arc::default()),
            generation: AtomicU64::new(0),
            last_fetch: tokio::sync::Mutex::new(None),
            min_refresh,
        })
    }

    /// The keys held now.
    pub fn keys(&self) -> Arc<Vec<JwtKey>> {
        self.keys.read().map(|k| Arc::clone(&k)).unwrap_or_default()
    }

    /// The keys held now, with their generation: pass it to [`Self::refresh_throttled`]
    /// when they did not verify a token. (The generation is read first, so it is never
    /// newer than the keys.)
    pub fn snapshot(&self) -> (u64, Arc<Vec<JwtKey>>) {
        let generation = self.generation.load(Ordering::Acquire);
        (generation, self.keys())
    }

    /// Fetch now unless a fetch happened within the minimum interval; `true` when the
    /// key set was replaced since generation `seen` (by this call or by another fetch
    /// that finished meanwhile, such as the start-up one).
    pub async fn refresh_throttled(&self, seen: u64) -> bool {
        let mut last = self.last_fetch.lock().await;
        // A fetch finished while we waited (the start-up one, say): use its keys.
        if self.generation.load(Ordering::Acquire) != seen {
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < self.min_refresh) {
            return false;
        }
        *last = Some(Instant::now());
        self.fetch_and_log().await
    }

    async fn fetch_and_log(&self) -> bool {
        match self.fetch().await {
            Ok(count) => {
                tracing::info!(url = %self.url, keys = count, "JWKS fetched");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the keys held");
                false
            }
        }
    }

    async fn fetch(&self) -> Result<usize, JwksError> {
        let fetch_err = |reason: String| JwksError::Fetch {
            url: self.url.clone(),
            reason,
        };
        let mut response = self
            .client
            .get(&self.url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| fetch_err(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fetch_err(format!("HTTP {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fetch_err(e.to_string()))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(fetch_err(format!(
                    "document larger than {MAX_DOCUMENT} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let (keys, skipped) = parse(&body).map_err(|reason| JwksError::Document {
            url: self.url.clone(),
            reason,
        })?;
        for why in skipped {
            tracing::debug!(url = %self.url, "JWKS key skipped: {why}");
        }
        if keys.is_empty() {
            return Err(JwksError::Document {
                url: self.url.clone(),
                reason: DocumentError::NoKey,
            });
        }
        let count = keys.len();
        if let Ok(mut held) = self.keys.write() {
            *held = Arc::new(keys);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(count)
    }

    /// Fetch now, then every [`PERIODIC_REFRESH`] until `stop`.
    pub fn spawn_refresher(self: &Arc<Self>, stop: CancellationToken) {
        let jwks = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                {
                    let mut last = jwks.last_fetch.lock().await;
                    *last = Some(Instant::now());
                    jwks.fetch_and_log().await;
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(PERIODIC_REFRESH) => {}
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_urls_are_accepted() {
        for ok in [
            "https://idp.example.com/.well-known/jwks.json",
            "http://127.0.0.1:8080/jwks",
            "http://[::1]/jwks",
            "http://localhost/jwks",
        ] {
            assert!(validate_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://idp.example.com/jwks",
            "http://localhost.evil.com/jwks",
            "ftp://127.0.0.1/jwks",
            "file:///etc/jwks.json",
            "not a url",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn symmetric_encryption_and_mismatched_keys_are_skipped() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "enc", "use": "enc", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "kid": "wrong-alg", "alg": "RS256", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "kid": "good", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
        ]});
        let (keys, skipped) = parse(doc.to_string().as_bytes()).unwrap_or_default();
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert!(format!("{:?}", keys[0]).contains("good"));
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(skipped[0].contains("symmetric"), "{skipped:?}");
        assert!(parse(b"{\"nope\": 1}").is_err());
        assert!(parse(b"not json").is_err());
    }
}
