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

/// Debian's packages, as `bash scripts/test` installs them (root, or passwordless sudo).
pub const APT_NGINX: &str = "sudo apt-get install -y nginx-light openssl";
/// Prometheus and promtool.
pub const APT_PROMETHEUS: &str = "sudo apt-get install -y prometheus";
/// Headless Chromium, driven by playwright-core.
pub const APT_CHROMIUM: &str = "sudo apt-get install -y chromium";
/// Node.js, which runs npm's tools.
pub const APT_NODE: &str = "sudo apt-get install -y nodejs npm";
/// Python 3 with its `venv` module.
pub const APT_PYTHON: &str = "sudo apt-get install -y python3 python3-venv";
/// npm's pinned tools (the real Codex CLI, the MCP Inspector, playwright-core,
/// oidc-provider), into ./node_modules.
pub const NPM_CI: &str = "npm ci";

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

/// Root, for the tests that switch Codex to another user; else an error saying why and
/// how to run them.
pub fn require_root(why: &str) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    bail!("this test needs root ({why}); run the tests as root, e.g. `sudo bash scripts/test`")
}

/// The one JSON report a Python client of tests/clients prints, once it exited 0 (its
/// output fails the test otherwise).
pub fn python_report(out: &std::process::Output) -> Result<serde_json::Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_str(stdout.trim())?)
}
