//! Unit tests of the Codex checks: version and flag parsing, credentials, the lookup on
//! `PATH` (apart from codex.rs so that file reads as the code).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn versions_are_read_from_what_codex_prints() {
    for (text, expect) in [
        ("codex-cli 0.169.0", Some((0, 169, 0))),
        ("codex-cli 0.169.2\n", Some((0, 169, 2))),
        ("codex-cli 0.170.0-alpha.1", Some((0, 170, 0))),
        ("codex-cli 0.169.0 (fake)", Some((0, 169, 0))),
        ("codex 1.2", None),
        ("not a version", None),
        ("", None),
    ] {
        assert_eq!(parse_version(text), expect, "{text:?}");
    }
}

#[test]
fn flags_count_only_when_listed_as_options_not_mentioned_in_prose() {
    let help = "Options:\n  -s, --sandbox <SANDBOX_MODE>\n          Persists even with --ephemeral.\n      --json\n  -c, --config <key=value>\n";
    assert_eq!(
        missing_flags(help, &["-s", "--sandbox", "--json", "-c"]),
        Vec::<&str>::new()
    );
    assert_eq!(
        missing_flags(help, &["--ephemeral", "-C"]),
        ["--ephemeral", "-C"]
    );
    assert_eq!(missing_flags("", &["--json"]), ["--json"]);
}

#[test]
fn a_custom_model_provider_counts_as_credentials_and_openai_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "model_provider = \"mock\"\n").unwrap();
    assert_eq!(custom_provider(&path).as_deref(), Some("mock"));
    std::fs::write(&path, "model_provider = \"openai\"\n").unwrap();
    assert_eq!(custom_provider(&path), None);
    std::fs::write(&path, "not toml [").unwrap();
    assert_eq!(custom_provider(&path), None);
}

#[test]
fn a_bare_name_is_looked_up_on_path_and_a_path_is_taken_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("codex");
    std::fs::write(&bin, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = OsString::from(format!("/nonexistent:{}", dir.path().display()));
    assert_eq!(
        find_program(Path::new("codex"), Some(&path)),
        Some(bin.clone())
    );
    assert_eq!(find_program(&bin, None), Some(bin.clone()));
    assert_eq!(find_program(Path::new("codex"), None), None);
    assert_eq!(find_program(&dir.path().join("nope"), Some(&path)), None);
}
