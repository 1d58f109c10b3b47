//! Programs the tests run for real (the Python SDK's venv, nginx, Prometheus, Chromium,
//! the Codex CLI, npm's tools): found, or the test fails naming the command that installs
//! it. A test never passes by skipping: `bash scripts/test` installs them all.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// The repository's own path for `path`.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The first of `candidates` that exists (absolute, or on `PATH`); else an error saying
/// `what` is missing and that `install` installs it.
pub fn require(candidates: &[&str], what: &str, install: &str) -> Result<PathBuf> {
    match candidates.iter().find_map(|c| find(c)) {
        Some(found) => Ok(found),
        None => bail!(
            "{what} is not installed ({}); install it with `{install}` (or run `bash scripts/test`, which sets up everything the tests need)",
            candidates.join(", ")
        ),
    }
}

/// `name` as is when absolute, else the first match on `PATH`.
pub fn find(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.exists().then(|| p.to_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.exists())
}

/// The command that makes `.venv` with the pinned official Python MCP SDK.
pub const PYTHON_SDK_INSTALL: &str =
    "python3 -m venv .venv && .venv/bin/pip install -r tests/clients/requirements.txt";

/// The official Python MCP SDK's interpreter (`.venv/bin/python`).
pub fn python_sdk() -> Result<PathBuf> {
    let python = repo(".venv/bin/python");
    require(
        &[&python.display().to_string()],
        "the official Python MCP SDK (.venv)",
        PYTHON_SDK_INSTALL,
    )
}
