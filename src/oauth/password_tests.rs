//! Table tests of the password rules: what `hash-password` accepts, which files load,
//! and that a loaded hash verifies the right password only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::sync::OnceLock;

use super::*;

/// One real hash for the verify tests (Argon2id at 19 MiB is slow in a debug build).
fn real_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password("correct horse battery").unwrap())
}

/// A syntactically valid PHC string with these parameters (salt and output made up).
fn phc(id: &str, version: &str, params: &str) -> String {
    format!(
        "${id}${version}${params}$c2FsdHNhbHRzYWx0c2FsdA$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
    )
}

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn hash_password_refuses_short_and_empty_passwords_with_the_minimum() {
    for (password, wanted) in [
        ("", "the password is empty"),
        ("short", "has 5 characters; use at least 12"),
        ("elevenchars", "has 11 characters; use at least 12"),
        // Characters, not bytes: 11 two-byte characters are still too short.
        ("ééééééééééé", "has 11 characters; use at least 12"),
    ] {
        let err = hash_password(password).unwrap_err().to_string();
        assert!(err.contains(wanted), "{password:?}: {err}");
    }
}

#[test]
fn hash_password_writes_an_argon2id_phc_string_with_owasp_parameters_and_a_fresh_salt() {
    let hash = real_hash();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(parse_phc(hash).is_ok());
    let other = hash_password("correct horse battery").unwrap();
    assert_ne!(hash, other, "each hash has its own salt");
}

#[test]
fn a_loaded_hash_verifies_the_password_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "pw", &format!("\n  {}\n\n", real_hash()), 0o600);
    let file = PasswordHashFile::load(&path).unwrap();
    assert!(file.verify("correct horse battery"));
    for wrong in [
        "",
        "correct horse batter",
        "correct horse battery ",
        "Correct horse battery",
    ] {
        assert!(!file.verify(wrong), "{wrong:?} verified");
    }
    assert_eq!(file.path(), path);
    assert!(file.warning().is_none());
    assert!(
        !format!("{file:?}").contains("argon2id"),
        "Debug prints the hash"
    );
}

#[test]
fn load_refuses_each_unusable_file_with_a_specific_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ok = real_hash();
    let cases: Vec<(&str, String, u32, &str)> = vec![
        ("empty", String::new(), 0o600, "is empty"),
        ("blank", " \n\t\n".into(), 0o600, "is empty"),
        (
            "plain",
            "correct horse battery".into(),
            0o600,
            "did you write the password itself?",
        ),
        ("two", format!("{ok}\n{ok}\n"), 0o600, "more than one line"),
        (
            "argon2i",
            phc("argon2i", "v=19", "m=19456,t=2,p=1"),
            0o600,
            "`$argon2i$` hash; only `$argon2id$`",
        ),
        (
            "bcrypt",
            "$2b$12$abcdefghijklmnopqrstuv".into(),
            0o600,
            "`$2b$` hash",
        ),
        (
            "broken",
            "$argon2id$v=19$m=19456,t=2,p=1$!!!$???".into(),
            0o600,
            "is not a valid Argon2id PHC string",
        ),
        (
            "v16",
            phc("argon2id", "v=16", "m=19456,t=2,p=1"),
            0o600,
            "version 19",
        ),
        (
            "no-hash",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA".into(),
            0o600,
            "lacks a salt or a hash",
        ),
        (
            "weak-m",
            phc("argon2id", "v=19", "m=4096,t=10,p=1"),
            0o600,
            "weaker than OWASP's minimum",
        ),
        (
            "weak-mt",
            phc("argon2id", "v=19", "m=19456,t=1,p=1"),
            0o600,
            "m=19456 KiB, t=1: weaker",
        ),
        (
            "huge-m",
            phc("argon2id", "v=19", "m=2097152,t=2,p=1"),
            0o600,
            "more than a sign-in may cost",
        ),
        (
            "huge-t",
            phc("argon2id", "v=19", "m=19456,t=100,p=1"),
            0o600,
            "more than a sign-in may cost",
        ),
        (
            "world-writable",
            ok.to_owned(),
            0o606,
            "writable by every user (mode 606)",
        ),
        (
            "group-writable",
            ok.to_owned(),
            0o660,
            "writable by its group (mode 660)",
        ),
    ];
    for (name, text, mode, wanted) in cases {
        let path = write(dir.path(), name, &text, mode);
        let err = PasswordHashFile::load(&path).unwrap_err().to_string();
        assert!(err.contains(wanted), "{name}: {err}");
        assert!(
            err.starts_with("TWOBOT_OAUTH_PASSWORD_FILE: "),
            "{name}: {err}"
        );
        if name == "plain" {
            assert!(
                !err.contains("horse"),
                "the file's contents are quoted: {err}"
            );
        }
    }
    let big = write(dir.path(), "big", &"$".repeat(5000), 0o600);
    let err = PasswordHashFile::load(&big).unwrap_err().to_string();
    assert!(err.contains("larger than 4096 bytes"), "{err}");
    let err = PasswordHashFile::load(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot read") && err.contains("missing"),
        "{err}"
    );
    let err = PasswordHashFile::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("is not a regular file"), "{err}");
}

#[test]
fn load_accepts_owasp_equivalent_parameters_and_warns_on_a_world_readable_file() {
    let dir = tempfile::tempdir().unwrap();
    for params in ["m=7168,t=5,p=1", "m=47104,t=1,p=1", "m=65536,t=3,p=4"] {
        let path = write(dir.path(), params, &phc("argon2id", "v=19", params), 0o600);
        assert!(PasswordHashFile::load(&path).is_ok(), "{params}");
    }
    let path = write(dir.path(), "readable", real_hash(), 0o644);
    let file = PasswordHashFile::load(&path).unwrap();
    let warning = file.warning().unwrap();
    assert!(
        warning.contains("readable by every user") && warning.contains("chmod 600"),
        "{warning}"
    );
    let path = write(dir.path(), "group-readable", real_hash(), 0o640);
    assert!(PasswordHashFile::load(&path).unwrap().warning().is_none());
}
