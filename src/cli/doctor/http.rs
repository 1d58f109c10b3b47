//! The doctor's checks of the HTTP set-up: the settings the server would validate at
//! start, auth settings that start but will not work with a real authorization server,
//! and whether the port is free.

use super::{Check, Level, check};
use crate::config::{Config, Transport};

pub(super) async fn http_checks(config: &Config) -> Vec<Check> {
    if config.transport != Transport::Http {
        return vec![check(
            Level::Skip,
            "http",
            "transport is stdio (TWOBOT_TRANSPORT=http to check the HTTP set-up)",
        )];
    }
    let mut report = Vec::new();
    let bind = std::net::SocketAddr::new(config.host, config.port);
    let settings = match crate::http::HttpSettings::new(config, bind) {
        Ok(settings) => settings,
        Err(e) => {
            report.push(check(Level::Fail, "auth", e.to_string()));
            return report;
        }
    };
    report.extend(auth_coherence(config, &settings));
    report.push(proxies(config, &settings));
    match tokio::net::TcpListener::bind(bind).await {
        Ok(_) => report.push(check(Level::Ok, "port", format!("{bind} is free"))),
        Err(e) => report.push(check(
            Level::Fail,
            "port",
            format!("cannot listen on {bind}: {e}; stop what holds it or set TWOBOT_PORT"),
        )),
    }
    report
}

/// Whose forwarding headers are read, and the proxy layout that reads none: bound to
/// loopback behind a public base URL, every caller arrives from the proxy's address and
/// shares one per-address budget (429 for everyone at once under load).
fn proxies(config: &Config, settings: &crate::http::HttpSettings) -> Check {
    if !settings.trusted_proxies.is_empty() {
        return check(
            Level::Ok,
            "proxies",
            format!(
                "X-Forwarded-For / Forwarded read only from {} (TWOBOT_TRUSTED_PROXIES)",
                settings.trusted_proxies
            ),
        );
    }
    let behind_proxy = config.host.is_loopback()
        && crate::config::public_exposure(config.host, config.base_url.as_deref(), &[], &[])
            .is_some();
    if behind_proxy {
        check(
            Level::Warn,
            "proxies",
            "TWOBOT_BASE_URL is public but the server listens on loopback, behind a proxy or tunnel, and TWOBOT_TRUSTED_PROXIES is not set: every caller shares the proxy's per-address budget; set it to the proxy's address (e.g. 127.0.0.1)",
        )
    } else {
        check(
            Level::Ok,
            "proxies",
            "none trusted: every limit keys on the TCP peer's address (X-Forwarded-For ignored)",
        )
    }
}

/// Auth settings that start but will not work with a real authorization server.
fn auth_coherence(config: &Config, settings: &crate::http::HttpSettings) -> Vec<Check> {
    let mut report = Vec::new();
    let Some(auth) = &settings.auth else {
        report.push(match &settings.public_no_auth {
            None => check(
                Level::Ok,
                "auth",
                "no-auth mode on loopback (for first tests; set TWOBOT_ENABLE_NO_AUTH=false with credentials before exposing it)",
            ),
            Some(exposure) => check(
                Level::Warn,
                "auth",
                format!(
                    "no-auth mode on {exposure} (TWOBOT_ALLOW_PUBLIC_NO_AUTH=true): anyone who reaches it can run Codex"
                ),
            ),
        });
        return report;
    };
    let mut kinds = Vec::new();
    if config.oauth.oauth_builtin {
        kinds.push(builtin_tokens(config, auth));
    }
    if !auth.tokens.is_empty() {
        kinds.push(format!("{} static token(s)", auth.tokens.len()));
    }
    if !auth.jwt_keys.is_empty() {
        kinds.push(format!("{} JWT key(s)", auth.jwt_keys.len()));
    }
    if let Some(url) = &auth.jwks_url {
        kinds.push(format!("JWKS {url}"));
    }
    report.push(check(Level::Ok, "auth", kinds.join(", ")));
    let jwt = !auth.jwt_keys.is_empty() || auth.jwks_url.is_some();
    let resource = settings.resource();
    if jwt && config.base_url.is_none() {
        report.push(check(
            Level::Warn,
            "auth",
            format!(
                "TWOBOT_BASE_URL is not set: the JWT audience and the OAuth resource are {resource}, which no public authorization server issues tokens for; set TWOBOT_BASE_URL to the public HTTPS URL"
            ),
        ));
    }
    if jwt && auth.audience != resource {
        report.push(check(
            Level::Warn,
            "auth",
            format!(
                "TWOBOT_JWT_AUDIENCE={:?} differs from the resource URL {resource:?} in the protected-resource metadata; OAuth clients (ChatGPT) ask for tokens whose audience is the resource",
                auth.audience
            ),
        ));
    }
    if jwt && auth.issuer.is_none() {
        report.push(check(
            Level::Warn,
            "auth",
            "TWOBOT_JWT_ISSUER is not set: tokens from any issuer holding the key are accepted",
        ));
    }
    if let Some(base) = &config.base_url
        && base.starts_with("http://")
    {
        report.push(check(
            Level::Warn,
            "base url",
            format!("TWOBOT_BASE_URL={base} is not https; ChatGPT needs an HTTPS URL"),
        ));
    }
    report
}

/// What the built-in authorization server's tokens are checked against, for the `auth`
/// line (its keys are loaded at start, so the settings hold no JWT key yet): the
/// issuer, the audience, the state store (keys and grants) and the operator's password,
/// each of which an `oauth …` line checks.
fn builtin_tokens(config: &Config, auth: &crate::auth::AuthConfig) -> String {
    let store = match (&config.database_url, config.state_dir.as_deref()) {
        (Some(url), _) => crate::state::redact_url(url),
        (None, Some(dir)) => dir
            .join(crate::state::sqlite::DB_FILE)
            .display()
            .to_string(),
        (None, None) => "(no state directory)".to_owned(),
    };
    let password = config
        .oauth
        .oauth_password_file
        .as_deref()
        .map_or_else(|| "not set".to_owned(), |p| p.display().to_string());
    format!(
        "tokens of the built-in authorization server: ES256, issuer {}, audience {}, signing keys and grants (revocable) in the state store {store}, operator password file {password} (each checked on its `oauth` line)",
        auth.issuer.as_deref().unwrap_or("(none)"),
        auth.audience,
    )
}
