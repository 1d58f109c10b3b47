//! The policy's sandbox against everything in `$CODEX_HOME` that could raise it: a named
//! profile (`NAME.config.toml`, chosen by the caller's `profile`), the operator's own
//! `config.toml`, and a sandbox that cannot start at all. Real Codex 0.169 against the
//! mock Responses API; every test asserts the effect (a file is or is not written) and
//! what the caller reads, never only Codex's event shape.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{Value, json};

use crate::common::mock_responses::{MockResponses, exec_command, message};
use crate::common::*;

/// A directory outside the allowed root and outside `/tmp` (which workspace-write
/// always lets Codex write).
///
/// The clone itself may live under `/tmp` (CI's does, sometimes), so the target
/// directory is used only when it is not; otherwise a scratch directory under the home
/// directory. Codex also ignores a `bwrap` found under a temporary directory.
fn outside_dir() -> Result<tempfile::TempDir> {
    let temp = std::env::temp_dir().canonicalize()?;
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let outside_tmp = |p: &Path| {
        p.canonicalize()
            .is_ok_and(|p| !p.starts_with(&temp) && !p.starts_with("/tmp"))
    };
    if outside_tmp(target) {
        return Ok(tempfile::tempdir_in(target)?);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/tmp".into());
    let scratch = home.join(".cache").join("twobot-test-scratch");
    std::fs::create_dir_all(&scratch)?;
    anyhow::ensure!(
        outside_tmp(&scratch),
        "no scratch directory outside /tmp for this test ({})",
        scratch.display()
    );
    Ok(tempfile::tempdir_in(&scratch)?)
}

/// A profile that asks for everything: no sandbox, and `outside` writable.
fn raising_profile(outside: &Path) -> String {
    format!(
        "sandbox_mode = \"danger-full-access\"\napproval_policy = \"never\"\napprovals_reviewer = \"auto_review\"\n\
         [sandbox_workspace_write]\nwritable_roots = [\"{}\"]\nnetwork_access = true\n",
        outside.display()
    )
}

/// `2bot-mcp` with the real Codex, `config.toml` headed by `top`, the given profiles and
/// extra environment.
async fn server(
    mock: &MockResponses,
    top: &str,
    profiles: &[(&str, String)],
    env: Vec<(String, String)>,
) -> Result<(StdioServer, tempfile::TempDir)> {
    let codex = real_codex();
    assert!(
        codex.exists(),
        "{} is missing: run `npm ci` in the repository root",
        codex.display()
    );
    let home = tempfile::tempdir()?;
    mock.write_codex_home_with(home.path(), top)?;
    for (name, body) in profiles {
        std::fs::write(home.path().join(format!("{name}.config.toml")), body)?;
    }
    let mut env = env;
    env.push(("CODEX_HOME".into(), home.path().display().to_string()));
    let server = spawn_stdio(Options { codex, env }).await?;
    Ok((server, home))
}

/// The model's turn: one command that writes `name` in cwd and in `outside`, then a message.
fn write_both(name: &str, outside: &Path) -> Vec<Vec<Value>> {
    vec![
        vec![exec_command(&format!(
            "touch {name}; touch {}",
            outside.join(name).display()
        ))],
        vec![message(&format!("tried {name}"))],
    ]
}

fn assert_not_written(root: &Path, outside: &Path, name: &str, r: &rmcp::model::CallToolResult) {
    let s = structured(r);
    assert!(!root.join(name).exists(), "{name} written in cwd: {s:#}");
    assert!(
        !outside.join(name).exists(),
        "{name} written outside: {s:#}"
    );
    // What the caller reads says the sandbox stopped something.
    assert!(
        s["sandbox_refused"].as_u64().is_some_and(|n| n >= 1),
        "{s:#}"
    );
    assert!(text(r).contains("sandbox refused"), "{}", text(r));
}

/// A profile that sets `sandbox_mode`, `default_permissions`, writable roots and approval
/// keys does not lift a read-only run, new or resumed; and resuming with a profile works.
#[tokio::test]
async fn no_profile_lifts_a_new_or_resumed_read_only_run() -> Result<()> {
    let outside = outside_dir()?;
    let out = outside.path();
    let mut script = write_both("p-new.txt", out);
    script.extend(write_both("p-resumed.txt", out));
    script.extend(write_both("p-perm.txt", out));
    let mock = MockResponses::start(script).await?;
    let profiles = [
        ("raise", raising_profile(out)),
        (
            "perm",
            "default_permissions = \":danger-full-access\"\n".to_owned(),
        ),
    ];
    let (server, _home) = server(&mock, "", &profiles, vec![]).await?;

    let first = call(
        &server.client,
        json!({"prompt": "write", "profile": "raise", "ephemeral": false,
               "skip_git_repo_check": true, "timeout_sec": 120}),
    )
    .await?;
    assert_eq!(first.is_error, Some(false), "{}", text(&first));
    assert_not_written(&server.root, out, "p-new.txt", &first);
    let thread = structured(&first)["thread_id"].as_str().unwrap().to_owned();

    let resumed = call(
        &server.client,
        json!({"prompt": "write again", "profile": "raise", "thread_id": thread,
               "ephemeral": false, "skip_git_repo_check": true, "timeout_sec": 120}),
    )
    .await?;
    assert_eq!(
        resumed.is_error,
        Some(false),
        "resume with a profile works: {}",
        text(&resumed)
    );
    assert!(
        text(&resumed).starts_with("tried p-resumed.txt"),
        "{}",
        text(&resumed)
    );
    assert_eq!(structured(&resumed)["thread_id"], thread.as_str());
    assert_not_written(&server.root, out, "p-resumed.txt", &resumed);

    let perm = call(
        &server.client,
        json!({"prompt": "write", "profile": "perm", "skip_git_repo_check": true,
               "timeout_sec": 120}),
    )
    .await?;
    assert_eq!(perm.is_error, Some(false), "{}", text(&perm));
    assert_not_written(&server.root, out, "p-perm.txt", &perm);
    server.client.cancel().await?;
    Ok(())
}

/// The operator's `config.toml` saying `danger-full-access` does not lift a read-only
/// run either, new or resumed.
#[tokio::test]
async fn the_user_config_does_not_lift_a_new_or_resumed_read_only_run() -> Result<()> {
    let outside = outside_dir()?;
    let out = outside.path();
    let mut script = write_both("c-new.txt", out);
    script.extend(write_both("c-resumed.txt", out));
    let mock = MockResponses::start(script).await?;
    let top = "sandbox_mode = \"danger-full-access\"\napproval_policy = \"on-request\"\napprovals_reviewer = \"auto_review\"";
    let (server, _home) = server(&mock, top, &[], vec![]).await?;

    let first = call(
        &server.client,
        json!({"prompt": "write", "ephemeral": false, "skip_git_repo_check": true,
               "timeout_sec": 120}),
    )
    .await?;
    assert_eq!(first.is_error, Some(false), "{}", text(&first));
    assert_not_written(&server.root, out, "c-new.txt", &first);
    let thread = structured(&first)["thread_id"].as_str().unwrap().to_owned();

    let resumed = call(
        &server.client,
        json!({"prompt": "write again", "thread_id": thread, "ephemeral": false,
               "skip_git_repo_check": true, "timeout_sec": 120}),
    )
    .await?;
    assert_eq!(resumed.is_error, Some(false), "{}", text(&resumed));
    assert_not_written(&server.root, out, "c-resumed.txt", &resumed);
    server.client.cancel().await?;
    Ok(())
}

/// Under workspace-write a profile's `writable_roots` add nothing: cwd is writable (when
/// the sandbox works here), the profile's extra root is not.
#[tokio::test]
async fn a_profile_cannot_add_writable_roots_to_workspace_write() -> Result<()> {
    let outside = outside_dir()?;
    let out = outside.path();
    let mock = MockResponses::start(write_both("w.txt", out)).await?;
    let (server, _home) = server(&mock, "", &[("raise", raising_profile(out))], vec![]).await?;
    let r = call(
        &server.client,
        json!({"prompt": "write", "profile": "raise", "sandbox": "workspace-write",
               "allow_edits": true, "skip_git_repo_check": true, "timeout_sec": 120}),
    )
    .await?;
    let s = structured(&r);
    assert_eq!(r.is_error, Some(false), "{}\n{s:#}", text(&r));
    assert!(
        !out.join("w.txt").exists(),
        "the profile's root was writable: {s:#}"
    );
    assert!(
        s["sandbox_refused"].as_u64().is_some_and(|n| n >= 1),
        "{s:#}"
    );
    server.client.cancel().await?;
    Ok(())
}

/// A `bwrap` that Codex accepts (its `--help` lists what Codex needs) but that cannot
/// create a sandbox, as Debian's bubblewrap does where user namespaces are restricted.
/// Codex prefers a `bwrap` on PATH outside its cwd, so only this server sees it.
fn failing_bwrap() -> Result<(tempfile::TempDir, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let dir = outside_dir()?;
    let bwrap = dir.path().join("bwrap");
    std::fs::write(
        &bwrap,
        "#!/bin/sh\nif [ \"$1\" = --help ]; then\n  echo 'usage: bwrap --args --argv0 --unshare-all --share-net --unshare-user --unshare-pid --unshare-ipc --unshare-net --unshare-uts --unshare-cgroup --bind --ro-bind --dev-bind --remount-ro --proc --dev --tmpfs --dir --file --symlink --seccomp --new-session --die-with-parent --as-pid-1 --cap-add --cap-drop --perms --chmod --chdir --setenv --unsetenv --clearenv'\n  exit 0\nfi\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n",
    )?;
    std::fs::set_permissions(&bwrap, std::fs::Permissions::from_mode(0o755))?;
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Ok((dir, PathBuf::from(path)))
}

/// When Codex's sandbox cannot run any command, Codex reports no command and a clean
/// turn; 2Bot's result says the sandbox refused, in the text and in structuredContent.
#[tokio::test]
async fn a_run_whose_sandbox_refused_every_command_says_so() -> Result<()> {
    let (_bwrap, path) = failing_bwrap()?;
    let mock = MockResponses::start(vec![
        vec![exec_command("echo twobot-was-here > ran.txt")],
        vec![message("all done")],
    ])
    .await?;
    let env = vec![("PATH".into(), path.display().to_string())];
    let (server, _home) = server(&mock, "", &[], env).await?;
    let r = call(
        &server.client,
        json!({"prompt": "run it", "sandbox": "workspace-write", "allow_edits": true,
               "skip_git_repo_check": true, "timeout_sec": 120}),
    )
    .await?;
    let s = structured(&r);
    assert!(!server.root.join("ran.txt").exists(), "{s:#}");
    assert!(
        s["sandbox_refused"].as_u64().is_some_and(|n| n >= 1),
        "{s:#}"
    );
    assert!(
        s["warnings"].to_string().contains("sandbox refused"),
        "{s:#}"
    );
    let text = text(&r);
    assert!(text.starts_with("all done"), "{text}");
    assert!(
        text.contains("Codex's sandbox refused") && text.contains("2bot-mcp doctor"),
        "{text}"
    );
    server.client.cancel().await?;
    Ok(())
}

/// `2bot-mcp doctor` runs one command in Codex's sandbox, as a run would, and when the
/// sandbox cannot start it fails with the reason and what to do.
#[tokio::test]
async fn doctor_says_when_codexs_sandbox_cannot_run_a_command() -> Result<()> {
    let (_bwrap, broken_path) = failing_bwrap()?;
    let dir = tempfile::tempdir()?;
    let base = dir.path().canonicalize()?;
    let root = base.join("root");
    let home = base.join("codex-home");
    std::fs::create_dir_all(&root)?;
    let mock = MockResponses::start(vec![]).await?;
    mock.write_codex_home(&home)?;
    let doctor = |path: String| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"));
        cmd.arg("doctor")
            .env_clear()
            .env("PATH", path)
            .env("HOME", &base)
            .env("CODEX_HOME", &home)
            .env("CODEX_BIN", real_codex())
            .env("CODEX_ALLOWED_ROOTS", &root)
            .env("TWOBOT_STATE_DIR", base.join("state"))
            .stdin(std::process::Stdio::null());
        cmd
    };
    let healthy = doctor(std::env::var("PATH").unwrap_or_default())
        .output()
        .await?;
    let out = String::from_utf8_lossy(&healthy.stdout);
    assert!(
        out.contains("[ok  ] codex sandbox: runs a command"),
        "{out}"
    );

    let broken = doctor(broken_path.display().to_string()).output().await?;
    let out = String::from_utf8_lossy(&broken.stdout);
    assert_eq!(broken.status.code(), Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("codex sandbox:"))
        .unwrap_or_default();
    assert!(line.starts_with("[FAIL] codex sandbox:"), "{out}");
    for needed in [
        "cannot run a command here",
        "bwrap: setting up uid map: Permission denied",
        "user namespaces",
        "off the PATH",
    ] {
        assert!(line.contains(needed), "{needed:?} missing from {line}");
    }
    Ok(())
}
