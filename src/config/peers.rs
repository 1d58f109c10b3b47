//! How the instances of one service reach each other ([`PeerArgs`]): this instance's
//! internal address (`TWOBOT_INSTANCE_URL`, stored in its instance row so others can
//! forward a run's follow-ups to it) and the secret they sign those requests with
//! (`TWOBOT_INSTANCE_SECRET`). Validated into [`PeerConfig`] at start-up.

use super::ConfigError;

/// The shortest instance secret accepted, in bytes: 256 bits of a random string's worth
/// (`openssl rand -base64 48` gives 64 characters).
pub const MIN_SECRET_BYTES: usize = 32;

/// The peer settings as the operator gives them.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Several instances (with TWOBOT_DATABASE_URL)")]
pub struct PeerArgs {
    /// This instance's internal address for the other instances of the service (http://10.0.0.5:8811): a live run's get, cancel and steer are forwarded here.
    #[arg(long, env = "TWOBOT_INSTANCE_URL")]
    pub instance_url: Option<String>,

    /// The secret every instance of the service shares to sign requests to each other (at least 32 bytes, e.g. `openssl rand -base64 48`).
    #[arg(long, env = "TWOBOT_INSTANCE_SECRET", hide_env_values = true)]
    pub instance_secret: Option<String>,
}

/// The shared secret; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerSecret(String);

impl PeerSecret {
    /// The secret's bytes (the HMAC key).
    pub fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for PeerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerSecret(<redacted>)")
    }
}

/// Validated peer settings: both or neither, and only with a shared store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerConfig {
    /// This instance's internal base URL (no trailing slash).
    pub url: Option<String>,
    /// The secret shared by every instance.
    pub secret: Option<PeerSecret>,
}

impl PeerConfig {
    /// Check `args` (`shared`: a `TWOBOT_DATABASE_URL` is set).
    pub fn from_args(args: PeerArgs, shared: bool) -> Result<Self, ConfigError> {
        let url = args.instance_url.filter(|u| !u.is_empty());
        let secret = args.instance_secret.filter(|s| !s.is_empty());
        let invalid = |var, value: String, reason: &str| ConfigError::Invalid {
            var,
            value,
            reason: reason.to_owned(),
        };
        if let Some(u) = &url {
            let parsed = url::Url::parse(u).map_err(|e| {
                invalid(
                    "TWOBOT_INSTANCE_URL",
                    u.clone(),
                    &format!("is not a URL ({e}); give http(s)://host:port"),
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https")
                || parsed.host_str().is_none()
                || parsed.query().is_some()
                || !matches!(parsed.path(), "" | "/")
            {
                return Err(invalid(
                    "TWOBOT_INSTANCE_URL",
                    u.clone(),
                    "must be http(s)://host:port with no path or query",
                ));
            }
            if !shared {
                return Err(invalid(
                    "TWOBOT_INSTANCE_URL",
                    u.clone(),
                    "needs TWOBOT_DATABASE_URL: instances find each other in the shared store",
                ));
            }
            if secret.is_none() {
                return Err(invalid(
                    "TWOBOT_INSTANCE_URL",
                    u.clone(),
                    "needs TWOBOT_INSTANCE_SECRET, the secret instances sign their requests with",
                ));
            }
        }
        if let Some(s) = &secret
            && s.len() < MIN_SECRET_BYTES
        {
            return Err(invalid(
                "TWOBOT_INSTANCE_SECRET",
                "<redacted>".to_owned(),
                &format!(
                    "is {} bytes; it must be at least {MIN_SECRET_BYTES} (openssl rand -base64 48)",
                    s.len()
                ),
            ));
        }
        Ok(Self {
            url: url.map(|u| u.trim_end_matches('/').to_owned()),
            secret: secret.map(PeerSecret),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn args(url: Option<&str>, secret: Option<&str>) -> PeerArgs {
        PeerArgs {
            instance_url: url.map(str::to_owned),
            instance_secret: secret.map(str::to_owned),
        }
    }

    #[test]
    fn an_instance_url_needs_a_shared_store_a_secret_and_a_bare_origin() {
        // url, secret, shared store, what it gives.
        type Case<'a> = (Option<&'a str>, Option<&'a str>, bool, Result<(), &'a str>);
        let table: [Case; 8] = [
            (None, None, false, Ok(())),
            (Some("http://10.0.0.5:8811/"), Some(SECRET), true, Ok(())),
            (None, Some(SECRET), true, Ok(())),
            (
                Some("http://10.0.0.5:8811"),
                Some(SECRET),
                false,
                Err("needs TWOBOT_DATABASE_URL"),
            ),
            (
                Some("http://10.0.0.5:8811"),
                None,
                true,
                Err("needs TWOBOT_INSTANCE_SECRET"),
            ),
            (
                Some("ftp://10.0.0.5"),
                Some(SECRET),
                true,
                Err("no path or query"),
            ),
            (
                Some("http://h:1/mcp"),
                Some(SECRET),
                true,
                Err("no path or query"),
            ),
            (None, Some("short"), true, Err("at least 32")),
        ];
        for (url, secret, shared, want) in table {
            let got = PeerConfig::from_args(args(url, secret), shared);
            match (got, want) {
                (Ok(c), Ok(())) => assert!(c.url.is_none_or(|u| !u.ends_with('/'))),
                (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{e}"),
                (got, want) => panic!("{url:?} {secret:?} {shared}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_secret_never_shows_in_debug_or_errors() {
        let c = PeerConfig::from_args(args(None, Some(SECRET)), true).unwrap();
        assert!(!format!("{c:?}").contains(SECRET));
        let e = PeerConfig::from_args(args(None, Some("short-secret")), true).unwrap_err();
        assert!(!e.to_string().contains("short-secret"));
    }
}
