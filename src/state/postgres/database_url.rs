//! `TWOBOT_DATABASE_URL` read the way libpq reads it, and shown without its password.
//!
//! tokio-postgres parses the URL but knows only `sslmode=disable|prefer|require` and no
//! `sslrootcert`; operators copy URLs from libpq tools and managed databases that say
//! `verify-full` and name a CA file. So those two parameters are taken out here and
//! become the TLS set-up (`tls.rs`), and the rest goes to tokio-postgres unchanged.
//! The URL carries a password, so every message and `--print-config` show
//! [`redact_url`]'s form instead.

use std::path::PathBuf;
use std::time::Duration;

use crate::state::StateError;

/// How the connection to the database is protected (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// TLS when the server offers it (unverified), else plain text: libpq's default.
    Prefer,
    /// TLS or no connection; the certificate is checked only against `sslrootcert` if given.
    Require,
    /// TLS with a certificate chained to a trusted root; any host name.
    VerifyCa,
    /// TLS with a certificate chained to a trusted root and naming the host.
    VerifyFull,
}

impl SslMode {
    /// The name as the URL spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }
}

/// Where trusted roots come from when the certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// The system's store (`sslrootcert` unset or `system`).
    System,
    /// A PEM file of CA certificates.
    File(PathBuf),
}

/// Why a `TWOBOT_DATABASE_URL` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// Another scheme, or no URL at all.
    #[error("not a PostgreSQL URL (postgres://user:password@host:port/database?sslmode=…)")]
    Scheme,
    /// An `sslmode` libpq does not know.
    #[error("sslmode={0} is not one of disable, prefer, require, verify-ca, verify-full")]
    SslMode(String),
    /// tokio-postgres refused the rest (its message names the option, never its value).
    #[error("{0}")]
    Config(#[from] tokio_postgres::Error),
}

/// A parsed `TWOBOT_DATABASE_URL`.
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    /// What tokio-postgres connects with (its `ssl_mode` set from [`Self::ssl`]).
    pub config: tokio_postgres::Config,
    /// The protection asked for.
    pub ssl: SslMode,
    /// The roots a certificate is checked against, if `sslrootcert` was given.
    pub root_cert: Option<RootCerts>,
    /// The URL with its password hidden, for messages.
    pub redacted: String,
}

/// How long a connection attempt may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl DatabaseUrl {
    /// Parse `url` (`postgres://` or `postgresql://`, libpq's parameters).
    pub fn parse(url: &str) -> Result<Self, StateError> {
        Self::read(url).map_err(|why| {
            StateError::Connect(format!("TWOBOT_DATABASE_URL {}: {why}", redact_url(url)))
        })
    }

    /// Why `url` cannot be used, if it cannot (for the configuration's own message).
    pub fn problem(url: &str) -> Option<UrlError> {
        Self::read(url).err()
    }

    fn read(url: &str) -> Result<Self, UrlError> {
        let redacted = redact_url(url);
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(UrlError::Scheme);
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut ssl = SslMode::Prefer;
        let mut root_cert = None;
        // The other parameters go on as typed: tokio-postgres percent-decodes them itself
        // (and, like libpq, reads `+` as a plus sign, so no form decoding here).
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
            match key {
                "sslmode" => {
                    ssl = SslMode::parse(&value)
                        .ok_or_else(|| UrlError::SslMode(value.clone().into_owned()))?;
                }
                "sslrootcert" if value == "system" => root_cert = Some(RootCerts::System),
                "sslrootcert" => root_cert = Some(RootCerts::File(PathBuf::from(&*value))),
                _ => rest.push(pair),
            }
        }
        let rest = rest.join("&");
        let plain = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{rest}")
        };
        // tokio-postgres's parse errors name the option, never its value.
        let mut config: tokio_postgres::Config = plain.parse()?;
        config.ssl_mode(match ssl {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("2bot");
        }
        Ok(Self {
            config,
            ssl,
            root_cert,
            redacted,
        })
    }
}

/// `url` with its password replaced by `***`: the one in the user part
/// (`postgres://user:***@host/db`) and any `password=` parameter. Pure; a string that is
/// not a URL at all is hidden whole, since where its secret sits is unknown.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, after)) = url.split_once("://") else {
        return "***".to_owned();
    };
    let authority_end = after.find(['/', '?']).unwrap_or(after.len());
    let (authority, path) = after.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{user_info}@{host}"),
        },
        None => authority.to_owned(),
    };
    let path = match path.split_once('?') {
        None => path.to_owned(),
        Some((before, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{before}?{}", params.join("&"))
        }
    };
    format!("{scheme}://{authority}{path}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_password_is_hidden_wherever_the_url_carries_it() {
        let table = [
            (
                "postgres://u:s3cret@db:5432/twobot",
                "postgres://u:***@db:5432/twobot",
            ),
            (
                "postgresql://u:p%40ss@db/x?sslmode=require",
                "postgresql://u:***@db/x?sslmode=require",
            ),
            ("postgres://u@db/x", "postgres://u@db/x"),
            (
                "postgres://db/x?user=u&password=s3cret&sslmode=verify-full",
                "postgres://db/x?user=u&password=***&sslmode=verify-full",
            ),
            ("postgres://u:a:b@c@db", "postgres://u:***@db"),
            (
                "postgres://u@/x?host=/run/pg&port=5433",
                "postgres://u@/x?host=/run/pg&port=5433",
            ),
            ("host=db password=s3cret", "***"),
        ];
        for (url, shown) in table {
            assert_eq!(redact_url(url), shown, "{url}");
            assert!(!redact_url(url).contains("s3cret"));
        }
    }

    #[test]
    fn sslmode_and_sslrootcert_are_read_like_libpq_and_the_rest_reaches_tokio_postgres() {
        let url = DatabaseUrl::parse(
            "postgres://u:pw@db:6543/twobot?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(url.ssl, SslMode::VerifyFull);
        assert_eq!(
            url.root_cert,
            Some(RootCerts::File(PathBuf::from("/etc/ca.pem")))
        );
        assert_eq!(url.config.get_ports(), &[6543]);
        assert_eq!(url.config.get_dbname(), Some("twobot"));
        assert_eq!(
            url.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
        assert_eq!(
            url.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(
            url.redacted,
            "postgres://u:***@db:6543/twobot?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3"
        );

        let table = [
            ("postgres://db/x", SslMode::Prefer),
            ("postgres://db/x?sslmode=disable", SslMode::Disable),
            ("postgres://db/x?sslmode=require", SslMode::Require),
            ("postgres://db/x?sslmode=verify-ca", SslMode::VerifyCa),
        ];
        for (text, mode) in table {
            assert_eq!(DatabaseUrl::parse(text).unwrap().ssl, mode, "{text}");
        }
    }

    #[test]
    fn a_unix_socket_directory_is_a_host_parameter() {
        let url =
            DatabaseUrl::parse("postgres://me@/twobot?host=/tmp/pg%20sock&port=5999").unwrap();
        assert_eq!(
            url.config.get_hosts(),
            &[tokio_postgres::config::Host::Unix(PathBuf::from(
                "/tmp/pg sock"
            ))]
        );
        assert_eq!(url.config.get_user(), Some("me"));
        assert_eq!(url.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        // Like libpq: `+` is a plus sign, `%2B` too.
        let url =
            DatabaseUrl::parse("postgres://db/x?user=u&password=a+b%2Bc&sslmode=disable").unwrap();
        assert_eq!(url.config.get_password(), Some(&b"a+b+c"[..]));
    }

    #[test]
    fn a_bad_url_is_refused_naming_the_problem_but_not_the_password() {
        let table = [
            ("mysql://u:s3cret@db/x", "not a PostgreSQL URL"),
            (
                "postgres://u:s3cret@db/x?sslmode=sometimes",
                "sslmode=sometimes is not one of",
            ),
            ("postgres://u:s3cret@db/x?frobnicate=1", "frobnicate"),
        ];
        for (text, reason) in table {
            let err = DatabaseUrl::parse(text).unwrap_err().to_string();
            assert!(err.contains(reason), "{text}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }
}
