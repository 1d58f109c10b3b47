//! The README's test command: one line naming `scripts/test`, the script CI runs too,
//! which sets up what the tests need (`scripts/setup`); and a test whose program is missing fails, naming
//! the command that installs it, instead of passing by skipping.

use std::path::Path;

use anyhow::{Context, Result};

use crate::common::programs::{PYTHON_SDK_INSTALL, require};

fn read(path: &str) -> Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).with_context(|| path.display().to_string())
}

/// The README's first block has the line `bash scripts/test`; `.ci/run` installs with
/// `scripts/setup`, checks the README still names that line, then runs it; the test script lints, runs the set-up
/// (the Python SDK's venv, `npm ci`, Debian's packages where it may), then every test and
/// the soak.
#[test]
fn the_readmes_test_command_is_the_script_ci_runs_and_it_sets_everything_up() -> Result<()> {
    let readme = read("README.md")?;
    let first_block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .context("the README's first sh block")?;
    assert!(
        first_block.lines().any(|l| l == "bash scripts/test"),
        "{first_block}"
    );
    let ci = read(".ci/run")?;
    let commands: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    // .ci/run installs, checks that the line after "# Run every test" in the README is
    // still the test command above, then runs that command as its last step.
    assert_eq!(commands.get(2), Some(&"bash scripts/setup"), "{ci}");
    assert!(
        ci.contains("awk '/^# Run every test/ { getline; print; exit }' README.md"),
        "{ci}"
    );
    assert!(
        ci.contains(r#"if [ "$readme_command" != "bash scripts/test" ]; then"#),
        "{ci}"
    );
    assert_eq!(commands.last(), Some(&"bash scripts/test"), "{ci}");
    let after_marker = readme
        .lines()
        .skip_while(|l| !l.starts_with("# Run every test"))
        .nth(1);
    assert_eq!(after_marker, Some("bash scripts/test"), "{first_block}");
    let script = read("scripts/test")?;
    for step in [
        "cargo fmt --all -- --check",
        "cargo clippy --all-targets --locked -- -D warnings",
        "bash scripts/setup\n",
        "cargo test --locked\n",
        "cargo test --locked --test soak -- --ignored",
    ] {
        assert!(script.contains(step), "scripts/test lacks {step:?}");
    }
    let setup = read("scripts/setup")?;
    for step in [
        "python3 -m venv .venv",
        ".venv/bin/pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt",
        "npm ci",
        "apt-get install",
        "sudo -n true",
        "missing+=(nginx-light openssl)",
        "missing+=(prometheus)",
        "missing+=(chromium)",
    ] {
        assert!(setup.contains(step), "scripts/setup lacks {step:?}");
    }
    Ok(())
}

/// A missing program is an error naming what is missing and the command that installs
/// it (and the script that installs everything).
#[test]
fn a_missing_program_is_an_error_naming_its_install_command() {
    let err = require(
        &["/nonexistent/.venv/bin/python"],
        "the official Python MCP SDK (.venv)",
        PYTHON_SDK_INSTALL,
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        err.contains("the official Python MCP SDK (.venv) is not installed"),
        "{err}"
    );
    assert!(err.contains(PYTHON_SDK_INSTALL), "{err}");
    assert!(err.contains("bash scripts/test"), "{err}");
}

/// No test source returns early with a "skipped" note any more.
#[test]
fn no_test_passes_by_skipping() -> Result<()> {
    let mut offenders = Vec::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)?;
                if text.contains(concat!("eprintln!(\"", "skipped")) {
                    offenders.push(path.display().to_string());
                }
            }
        }
    }
    assert!(offenders.is_empty(), "tests that skip: {offenders:?}");
    Ok(())
}
