//! `2bot-mcp oauth hash-password` as an operator runs it: a password piped into the real
//! binary comes out as one Argon2id PHC string that the server's loader accepts and that
//! verifies that password only; a password it refuses gets one line and exit code 2.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Output, Stdio};

use anyhow::Result;
use twobot::oauth::password::PasswordHashFile;

/// Run `2bot-mcp oauth hash-password` with `input` on its stdin (a pipe, not a terminal).
fn hash_password(input: &[u8]) -> Result<Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_2bot-mcp"))
        .args(["oauth", "hash-password"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input)?;
    }
    Ok(child.wait_with_output()?)
}

#[test]
fn a_piped_password_becomes_a_phc_string_the_server_verifies() -> Result<()> {
    let out = hash_password(b"correct horse battery staple\nignored second line\n")?;
    let stdout = String::from_utf8(out.stdout)?;
    let stderr = String::from_utf8(out.stderr)?;
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stderr, "", "nothing but the hash, and on stdout");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("$argon2id$v=19$m=19456,t=2,p=1$") && stdout.ends_with('\n'),
        "{stdout}"
    );

    // As the operator makes the file: `… > FILE; chmod 600 FILE`.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("password");
    std::fs::write(&file, &stdout)?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    let loaded = PasswordHashFile::load(&file)?;
    assert!(loaded.verify("correct horse battery staple"));
    assert!(!loaded.verify("correct horse battery stapl"));
    assert!(!loaded.verify("ignored second line"));
    Ok(())
}

#[test]
fn a_short_empty_or_missing_password_gets_one_line_and_exit_2() -> Result<()> {
    for (input, wanted) in [
        (
            &b"too short\n"[..],
            "the password has 9 characters; use at least 12",
        ),
        (b"\n", "the password is empty"),
        (
            b"",
            "no password on stdin (run it at a terminal to type it, or pipe it in)",
        ),
    ] {
        let out = hash_password(input)?;
        let stderr = String::from_utf8(out.stderr)?;
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(out.stdout.is_empty(), "nothing on stdout for {input:?}");
        assert_eq!(stderr, format!("error: {wanted}\n"), "{input:?}");
    }
    Ok(())
}
