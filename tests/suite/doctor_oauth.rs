//! `2bot-mcp doctor` and `--print-config` for the built-in authorization server, run as an
//! operator would: the real binary, a password file made by `2bot-mcp oauth
//! hash-password`, then one broken thing at a time.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, ensure};

use super::doctor::Setup;

/// `2bot-mcp oauth hash-password > FILE; chmod MODE FILE`, as deploy/README says.
fn password_file(setup: &Setup, password: &str, mode: u32) -> Result<PathBuf> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_2bot-mcp"))
        .args(["oauth", "hash-password"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{password}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "hash-password failed");
    let path = setup.path("oauth-password");
    std::fs::write(&path, out.stdout)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(path)
}

/// The healthy set-up of doctor.rs, as the built-in authorization server: auth on (with a
/// static token beside it, which may coexist), an HTTPS issuer, a password file.
fn builtin() -> Result<Setup> {
    let setup = Setup::healthy()?;
    let password = password_file(&setup, "correct horse battery staple", 0o600)?;
    Ok(setup
        .with("TWOBOT_ENABLE_NO_AUTH", "false")
        .with("TWOBOT_AUTH_TOKENS", "ops:tok-ops-static-secret")
        .with("TWOBOT_OAUTH_BUILTIN", "true")
        .with("TWOBOT_BASE_URL", "https://mcp.example.com")
        .with("TWOBOT_OAUTH_PASSWORD_FILE", password.display().to_string())
        .with("TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER", "true"))
}

/// A P-256 key in PKCS#8 PEM, as the server writes `oauth-signing-key.pem`.
fn write_signing_key(state: &Path, mode: u32) -> Result<PathBuf> {
    use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
    let key = p256::SecretKey::from_slice(&[7u8; 32])?;
    let pem = key.to_pkcs8_pem(LineEnding::LF)?;
    std::fs::create_dir_all(state)?;
    let path = state.join("oauth-signing-key.pem");
    std::fs::write(&path, pem.as_bytes())?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(path)
}

/// A healthy built-in set-up passes with one line per check; the signing key is checked
/// once it exists.
#[tokio::test]
async fn doctor_checks_the_builtin_authorization_server_one_line_each() -> Result<()> {
    let setup = builtin()?;
    let (code, out, err) = setup.run(&["doctor"]).await?;
    assert_eq!(code, Some(0), "{out}{err}");
    for line in [
        "holds an Argon2id hash",
        "[ok  ] oauth issuer: https://mcp.example.com (https)",
        "[ok  ] oauth no-auth: TWOBOT_ENABLE_NO_AUTH=false",
        "(created at first start)",
        "[ok  ] oauth signing key: kept in the state store (made at first start, rotated there)",
        "[ok  ] oauth redirect hosts: chatgpt.com, chat.openai.com, claude.ai, claude.com (and http on loopback)",
        "[ok  ] oauth issuer settings: no external issuer configured",
        "doctor: no problem found",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(out.contains("[ok  ] oauth password: "), "{out}");
    assert!(!out.contains("$argon2id$"), "the hash is printed:\n{out}");

    // The key as the server leaves it: 0600, ES256; Codex runs as 2Bot's own user here.
    let state = setup.path("state");
    let key = write_signing_key(&state, 0o600)?;
    let (code, out, _) = setup.run(&["doctor"]).await?;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("[warn] oauth codex user: Codex runs as 2Bot's own user")
            && out.contains("accepted with TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER=true"),
        "{out}"
    );
    assert!(out.contains("[ok  ] oauth signing key: "), "{out}");
    // Readable by others: anyone who reads it mints tokens.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644))?;
    let (code, out, _) = setup.run(&["doctor"]).await?;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("[FAIL] oauth signing key: ")
            && out.contains("has mode 644")
            && out.contains("chmod 600"),
        "{out}"
    );
    std::fs::write(&key, "not a key")?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    let (code, out, _) = setup.run(&["doctor"]).await?;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("not a P-256 (ES256) PKCS#8 PEM key"), "{out}");
    assert!(!out.contains("not a key\n"), "{out}");
    Ok(())
}

/// Each broken built-in set-up is named in one `[FAIL] oauth …` line that says what to do.
#[tokio::test]
async fn doctor_names_each_broken_builtin_setup_in_one_line() -> Result<()> {
    let plain = builtin()?;
    let plain_file = plain.path("plain-password");
    std::fs::write(&plain_file, "correct horse battery staple\n")?;
    std::fs::set_permissions(&plain_file, std::fs::Permissions::from_mode(0o600))?;
    let weak = builtin()?;
    let weak_file = password_file(&weak, "another long password", 0o666)?;

    let cases: Vec<(Setup, &str, &str)> = vec![
        (
            builtin()?.without("TWOBOT_OAUTH_PASSWORD_FILE"),
            "[FAIL] oauth password: TWOBOT_OAUTH_PASSWORD_FILE is not set",
            "2bot-mcp oauth hash-password",
        ),
        (
            plain.with(
                "TWOBOT_OAUTH_PASSWORD_FILE",
                plain_file.display().to_string(),
            ),
            "[FAIL] oauth password: TWOBOT_OAUTH_PASSWORD_FILE:",
            "did you write the password itself?",
        ),
        (
            weak.with(
                "TWOBOT_OAUTH_PASSWORD_FILE",
                weak_file.display().to_string(),
            ),
            "[FAIL] oauth password: TWOBOT_OAUTH_PASSWORD_FILE:",
            "writable by every user",
        ),
        (
            builtin()?.with("TWOBOT_BASE_URL", "http://mcp.example.com"),
            "[FAIL] oauth issuer: TWOBOT_BASE_URL=http://mcp.example.com is not https",
            "behind HTTPS",
        ),
        (
            builtin()?.without("TWOBOT_BASE_URL"),
            "[FAIL] oauth issuer: TWOBOT_BASE_URL is not set",
            "public HTTPS URL",
        ),
        (
            builtin()?.with(
                "TWOBOT_OAUTH_REDIRECT_HOSTS",
                "chatgpt.com,https://claude.ai/cb",
            ),
            "[FAIL] oauth redirect hosts: TWOBOT_OAUTH_REDIRECT_HOSTS: \"https://claude.ai/cb\" has a scheme",
            "give the host alone",
        ),
        (
            builtin()?.with("TWOBOT_JWT_ISSUER", "https://issuer.example.com"),
            "[FAIL] oauth issuer settings: TWOBOT_JWT_ISSUER set beside TWOBOT_OAUTH_BUILTIN=true",
            "unset them",
        ),
    ];
    for (setup, line, hint) in cases {
        let (code, out, err) = setup.run(&["doctor"]).await?;
        assert_eq!(code, Some(1), "{line}: {out}{err}");
        let failures: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("[FAIL] oauth"))
            .collect();
        assert_eq!(failures.len(), 1, "one oauth failure for {line}:\n{out}");
        assert!(failures[0].starts_with(line), "{line}:\n{out}");
        assert!(failures[0].contains(hint), "{hint} in:\n{out}");
    }
    Ok(())
}

/// `--print-config` shows the six TWOBOT_OAUTH_* settings with their sources, and the
/// password file's path but never what it holds.
#[tokio::test]
async fn print_config_shows_the_builtin_settings_and_no_password_hash() -> Result<()> {
    let setup = builtin()?.with("TWOBOT_OAUTH_ACCESS_TOKEN_TTL_SEC", "600");
    let file = setup.path("oauth-password");
    let (code, out, err) = setup.run(&["--print-config"]).await?;
    assert_eq!(code, Some(0), "{out}{err}");
    for line in [
        "TWOBOT_OAUTH_BUILTIN=true  # environment".to_owned(),
        format!(
            "TWOBOT_OAUTH_PASSWORD_FILE={}  # environment",
            file.display()
        ),
        "TWOBOT_OAUTH_REDIRECT_HOSTS=chatgpt.com,chat.openai.com,claude.ai,claude.com  # default"
            .to_owned(),
        "TWOBOT_OAUTH_ACCESS_TOKEN_TTL_SEC=600  # environment".to_owned(),
        "TWOBOT_OAUTH_REFRESH_TOKEN_TTL_SEC=2592000  # default".to_owned(),
        "TWOBOT_OAUTH_CIMD_ALLOW_PRIVATE=false  # default".to_owned(),
        "TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER=true  # environment".to_owned(),
    ] {
        assert!(out.contains(&line), "missing {line:?} in:\n{out}");
    }
    let hash = std::fs::read_to_string(&file)?;
    for secret in [hash.trim(), "$argon2id$", "tok-ops-static-secret"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} leaked:\n{out}{err}"
        );
    }
    Ok(())
}

/// Codex that can read the state directory (and so the signing key) is a failure naming
/// both ways out; a separate user shut out of a 0700 directory passes; the opt-in turns
/// the failure into a warning (issue 19, point 4).
#[tokio::test]
async fn doctor_fails_when_codex_can_read_the_builtin_state_directory() -> Result<()> {
    let setup = builtin()?.without("TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER");
    let state = setup.path("state");
    write_signing_key(&state, 0o600)?;
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700))?;
    let (code, out, _) = setup.run(&["doctor"]).await?;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("[FAIL] oauth codex user: Codex runs as 2Bot's own user")
            && out.contains("TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER=true"),
        "{out}"
    );
    let apart = setup.with("TWOBOT_CODEX_USER", "nobody");
    let (_, out, _) = apart.run(&["doctor"]).await?;
    assert!(
        out.contains("[ok  ] oauth codex user: Codex runs as nobody and cannot read"),
        "{out}"
    );
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755))?;
    let (code, out, _) = apart.run(&["doctor"]).await?;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("[FAIL] oauth codex user: TWOBOT_STATE_DIR (mode 755"),
        "{out}"
    );
    Ok(())
}

/// With only the built-in authorization server, the `auth` line says what its tokens are
/// checked against (issuer, audience, signing key, grant store, password file), not
/// nothing.
#[tokio::test]
async fn doctor_says_what_the_auth_line_checked_with_the_builtin_server() -> Result<()> {
    let setup = builtin()?.without("TWOBOT_AUTH_TOKENS");
    let (code, out, err) = setup.run(&["doctor"]).await?;
    assert_eq!(code, Some(0), "{out}{err}");
    let auth = out
        .lines()
        .find(|l| l.starts_with("[ok  ] auth:"))
        .with_context(|| format!("an auth line in:\n{out}"))?;
    let state = setup.path("state");
    let password = setup.path("oauth-password");
    for fact in [
        "built-in authorization server".to_owned(),
        "issuer https://mcp.example.com".to_owned(),
        "audience https://mcp.example.com/mcp".to_owned(),
        format!(
            "signing keys and grants (revocable) in the state store {}/state.db",
            state.display()
        ),
        format!("operator password file {}", password.display()),
    ] {
        assert!(auth.contains(&fact), "{fact:?} missing from {auth:?}");
    }
    Ok(())
}
