//! The doctor's checks of the built-in authorization server (`TWOBOT_OAUTH_BUILTIN=true`),
//! one line each: the password file, the base URL (the issuer), auth being on, the state
//! directory and its signing key, the redirect hosts, and no external-issuer setting
//! beside it. What the server would refuse at start is a failure here; what works but
//! weakens it (a world-readable hash, an http issuer on loopback, a signing key Codex
//! can read with TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER=true) is a warning.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use super::{Check, Level, check};
use crate::config::{Config, Transport};
use crate::oauth::password::PasswordHashFile;

/// The signing key's file name in the state directory.
use crate::oauth::signing::KEY_FILE;

/// Every check of the built-in set-up; one skip line when it is off. `codex_user`:
/// `TWOBOT_CODEX_USER`, the user Codex runs as when it is not 2Bot's own.
pub(super) fn oauth_checks(config: &Config, codex_user: Option<&str>) -> Vec<Check> {
    let args = &config.oauth;
    if !args.oauth_builtin {
        return vec![check(
            Level::Skip,
            "oauth",
            "built-in authorization server off (TWOBOT_OAUTH_BUILTIN=false)",
        )];
    }
    let mut report = Vec::new();
    if config.transport != Transport::Http {
        report.push(check(
            Level::Warn,
            "oauth",
            "TWOBOT_OAUTH_BUILTIN=true does nothing with the stdio transport; set TWOBOT_TRANSPORT=http",
        ));
    }
    report.push(password_check(args.oauth_password_file.as_deref()));
    report.push(base_url_check(config.base_url.as_deref()));
    report.push(if config.enable_no_auth {
        check(
            Level::Fail,
            "oauth no-auth",
            "TWOBOT_ENABLE_NO_AUTH is true: set TWOBOT_ENABLE_NO_AUTH=false, or nobody is asked to sign in",
        )
    } else {
        check(Level::Ok, "oauth no-auth", "TWOBOT_ENABLE_NO_AUTH=false")
    });
    report.extend(state_checks(config.state_dir.as_deref()));
    if let Some(dir) = config.state_dir.as_deref() {
        report.push(codex_user_check(
            codex_user,
            dir,
            args.oauth_allow_shared_codex_user,
        ));
    }
    report.push(redirect_hosts_check(&args.oauth_redirect_hosts));
    report.push(conflicts_check(config));
    report
}

fn password_check(file: Option<&Path>) -> Check {
    const NAME: &str = "oauth password";
    let Some(path) = file else {
        return check(
            Level::Fail,
            NAME,
            "TWOBOT_OAUTH_PASSWORD_FILE is not set; make the file with `2bot-mcp oauth hash-password > FILE; chmod 600 FILE`",
        );
    };
    match PasswordHashFile::load(path) {
        Ok(file) => match file.warning() {
            Some(warning) => check(Level::Warn, NAME, warning),
            None => check(
                Level::Ok,
                NAME,
                format!("{} holds an Argon2id hash", path.display()),
            ),
        },
        Err(e) => check(Level::Fail, NAME, e.to_string()),
    }
}

fn base_url_check(base: Option<&str>) -> Check {
    const NAME: &str = "oauth issuer";
    let Some(base) = base else {
        return check(
            Level::Fail,
            NAME,
            "TWOBOT_BASE_URL is not set: it is the issuer and the address ChatGPT signs in at; set it to the public HTTPS URL",
        );
    };
    let url = match url::Url::parse(base) {
        Ok(url) => url,
        Err(e) => return check(Level::Fail, NAME, format!("TWOBOT_BASE_URL={base}: {e}")),
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => check(Level::Ok, NAME, format!("{base} (https)")),
        "http" if loopback => check(
            Level::Warn,
            NAME,
            format!(
                "TWOBOT_BASE_URL={base} is http on loopback: for local tests only (ChatGPT needs https)"
            ),
        ),
        _ => check(
            Level::Fail,
            NAME,
            format!(
                "TWOBOT_BASE_URL={base} is not https: passwords, codes and tokens would cross the network in clear; put 2Bot behind HTTPS (http only on a loopback host)"
            ),
        ),
    }
}

/// The state directory (required: clients, grants and revocations live there) and the
/// signing key in it.
fn state_checks(dir: Option<&Path>) -> Vec<Check> {
    let Some(dir) = dir else {
        return vec![check(
            Level::Fail,
            "oauth state",
            "no TWOBOT_STATE_DIR (and no HOME): the built-in authorization server keeps its clients, grants and signing key there; set it",
        )];
    };
    // The directory, or the nearest existing one it would be created in.
    let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(dir);
    let writable = nix::unistd::access(existing, nix::unistd::AccessFlags::W_OK).is_ok();
    let mut report = vec![match (existing == dir, writable) {
        (_, false) => check(
            Level::Fail,
            "oauth state",
            format!(
                "{} is not writable by this user; fix TWOBOT_STATE_DIR or its owner",
                existing.display()
            ),
        ),
        (true, true) => check(
            Level::Ok,
            "oauth state",
            format!("{} is writable", dir.display()),
        ),
        (false, true) => check(
            Level::Ok,
            "oauth state",
            format!("{} (created at first start)", dir.display()),
        ),
    }];
    report.push(signing_key_check(&dir.join(KEY_FILE)));
    report
}

fn signing_key_check(path: &Path) -> Check {
    const NAME: &str = "oauth signing key";
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return check(
                Level::Ok,
                NAME,
                "kept in the state store (made at first start, rotated there)",
            );
        }
        Err(e) => return check(Level::Fail, NAME, format!("{}: {e}", path.display())),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.is_file() || mode & 0o077 != 0 {
        return check(
            Level::Fail,
            NAME,
            format!(
                "{} has mode {mode:o}; whoever reads it can mint access tokens: chmod 600 it (or delete it, which ends every access token, to have a new one made)",
                path.display()
            ),
        );
    }
    let key = std::fs::read_to_string(path).map_err(|e| e.to_string());
    let parsed = key.and_then(|pem| {
        use p256::pkcs8::DecodePrivateKey as _;
        p256::SecretKey::from_pkcs8_pem(&pem)
            .map(drop)
            .map_err(|_| "not a P-256 (ES256) PKCS#8 PEM key".to_owned())
    });
    match parsed {
        Err(e) => check(
            Level::Fail,
            NAME,
            format!(
                "{}: {e}; move it away to have a new one made (every access token ends)",
                path.display()
            ),
        ),
        Ok(()) => check(
            Level::Ok,
            NAME,
            format!(
                "{} (ES256, 0600; moved into the state store at the next start with SQLite)",
                path.display()
            ),
        ),
    }
}

/// Whether Codex can read the state directory (and so the signing key): what the
/// server refuses at start (`oauth::isolation`), a warning when the operator opted in.
fn codex_user_check(codex_user: Option<&str>, dir: &Path, opted_in: bool) -> Check {
    const NAME: &str = "oauth codex user";
    let reader = match codex_user.map(crate::runner::user::resolve).transpose() {
        Ok(user) => user.map(|u| crate::oauth::isolation::Reader {
            uid: u.uid,
            groups: u.groups,
        }),
        Err(e) => return check(Level::Fail, NAME, e.to_string()),
    };
    match crate::oauth::isolation::current(reader.as_ref(), dir) {
        None => check(
            Level::Ok,
            NAME,
            format!(
                "Codex runs as {} and cannot read {}",
                codex_user.unwrap_or_default(),
                dir.display()
            ),
        ),
        Some(exposure) if opted_in => check(
            Level::Warn,
            NAME,
            format!("{exposure}; accepted with TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER=true"),
        ),
        Some(exposure) => check(
            Level::Fail,
            NAME,
            format!(
                "{exposure}: the server refuses to start; set TWOBOT_CODEX_USER to a separate user that cannot read TWOBOT_STATE_DIR, or TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER=true to accept the risk"
            ),
        ),
    }
}

fn redirect_hosts_check(hosts: &[String]) -> Check {
    const NAME: &str = "oauth redirect hosts";
    let problems: Vec<String> = hosts
        .iter()
        .filter_map(|h| crate::oauth::redirect::host_problem(h).map(|why| format!("{h:?} {why}")))
        .collect();
    if !problems.is_empty() {
        return check(
            Level::Fail,
            NAME,
            format!("TWOBOT_OAUTH_REDIRECT_HOSTS: {}", problems.join("; ")),
        );
    }
    check(
        Level::Ok,
        NAME,
        format!("{} (and http on loopback)", hosts.join(", ")),
    )
}

/// Settings of an external issuer cannot sit beside the built-in one: 2Bot is the issuer.
fn conflicts_check(config: &Config) -> Check {
    let set = crate::config::builtin_conflicts(&config.http);
    if set.is_empty() {
        check(
            Level::Ok,
            "oauth issuer settings",
            "no external issuer configured (2Bot is the issuer)",
        )
    } else {
        check(
            Level::Fail,
            "oauth issuer settings",
            format!(
                "{} set beside TWOBOT_OAUTH_BUILTIN=true: with the built-in server 2Bot is the issuer; unset them (static TWOBOT_AUTH_TOKENS may stay)",
                set.join(", ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn redirect_hosts_must_be_bare_host_names() {
        for ok in [
            "chatgpt.com",
            "chat.openai.com",
            "Claude.AI",
            "xn--bcher-kva.example",
        ] {
            assert_eq!(crate::oauth::redirect::host_problem(ok), None, "{ok}");
        }
        for (bad, wanted) in [
            ("", "is empty"),
            ("https://chatgpt.com", "has a scheme"),
            ("chatgpt.com/callback", "has a path"),
            ("*.openai.com", "wildcard"),
            ("chatgpt.com:443", "has a port"),
            ("chatgpt.com.", "ends with a dot"),
            ("user@chatgpt.com", "userinfo"),
            (" chatgpt.com", "space"),
            ("127.0.0.1", "is an IP address"),
            ("[::1]", "is an IP address"),
            ("exa mple", "space"),
            ("bad_%host", "is not a valid host name"),
        ] {
            let why = crate::oauth::redirect::host_problem(bad).unwrap_or_default();
            assert!(why.contains(wanted), "{bad:?}: {why:?}");
        }
    }

    #[test]
    fn an_http_issuer_is_a_warning_on_loopback_and_a_failure_elsewhere() {
        for (base, level) in [
            (Some("https://mcp.example.com"), Level::Ok),
            (Some("http://127.0.0.1:9000"), Level::Warn),
            (Some("http://localhost:9000"), Level::Warn),
            (Some("http://[::1]:9000"), Level::Warn),
            (Some("http://mcp.example.com"), Level::Fail),
            (Some("http://10.0.0.5:9000"), Level::Fail),
            (None, Level::Fail),
        ] {
            assert_eq!(base_url_check(base).level, level, "{base:?}");
        }
    }
}
