//! The one place a Codex process is started: runs, `/readyz` and every `doctor` probe.
//!
//! Whatever the reason for starting Codex, it gets the same treatment, decided here once:
//! the run supervisor in front of it (the Codex user, the namespaces, nothing outliving
//! it), an environment built from nothing (`env_clear` + the scrubbed variables: no
//! `TWOBOT_*` secret reaches a probe either), an explicit working directory, its own
//! process group, and `kill_on_drop`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::child::RunChild;
use super::namespace::Isolation;
use super::spawner::SpawnError;
use super::{RunnerConfig, supervise};

/// One start of Codex.
#[derive(Debug)]
pub struct Launch<'a> {
    /// Codex's arguments (after the program name).
    pub args: Vec<OsString>,
    /// Where the supervisor (or Codex) starts: for a run, the `/proc/self/fd/N` name of the
    /// directory the runner opened.
    pub cwd: &'a Path,
    /// The run's private namespaces, when the runner isolates runs.
    pub isolation: Option<Isolation>,
    /// The whole environment of the child.
    pub env: &'a BTreeMap<OsString, OsString>,
}

/// A run's environment: the scrubbed one ([`super::env::child_env`]), plus the `RUST_LOG`
/// that makes Codex report sandbox refusals.
pub fn run_env(
    policy: &crate::policy::EnvPolicy,
    request_id: Option<&str>,
) -> BTreeMap<OsString, OsString> {
    let mut vars = super::env::child_env(std::env::vars_os(), policy, request_id);
    let log = crate::codex::stderr::rust_log(
        vars.get(std::ffi::OsStr::new("RUST_LOG"))
            .and_then(|v| v.to_str()),
    );
    vars.insert("RUST_LOG".into(), log.into());
    vars
}

/// What the supervisor is told for `args` and `isolation`.
fn supervisor_args(
    config: &RunnerConfig,
    args: Vec<OsString>,
    isolation: Option<Isolation>,
) -> supervise::Args {
    supervise::Args {
        parent: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
        grace: config.kill_grace,
        user: config.codex_user.clone(),
        isolation,
        program: config.program.clone().into_os_string(),
        args,
    }
}

/// The `Command` for `launch`: stdin, stdout and stderr piped, its own process group.
pub fn command(config: &RunnerConfig, launch: Launch<'_>) -> Command {
    let mut command = match &config.supervisor {
        Some(supervisor) => {
            let args = supervisor_args(config, launch.args, launch.isolation);
            let mut c = Command::new(supervisor);
            c.arg0("2bot-mcp")
                .arg(supervise::SUBCOMMAND)
                .args(args.to_argv());
            c
        }
        None => {
            let mut c = Command::new(&config.program);
            c.args(&launch.args);
            c
        }
    };
    command
        .current_dir(launch.cwd)
        .env_clear()
        .envs(launch.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: one signal reaches Codex and every command it started.
        .process_group(0)
        .kill_on_drop(true);
    command
}

impl RunnerConfig {
    /// Start Codex the way the `2bot-mcp` binary does: through its own run supervisor
    /// (`/proc/self/exe`), the cwd opened beneath `roots`, as `codex_user` when named
    /// (`TWOBOT_CODEX_USER`, checked: 2Bot must be able to switch to it), and in private
    /// namespaces when `isolate`. Shared by serving and `doctor`, whose probes start Codex
    /// exactly as runs do.
    pub fn for_this_binary(
        &mut self,
        roots: Vec<PathBuf>,
        codex_user: Option<&str>,
    ) -> Result<(), super::user::UserError> {
        self.supervisor = Some("/proc/self/exe".into());
        self.roots = roots;
        if let Some(spec) = codex_user.filter(|s| !s.is_empty()) {
            let user = super::user::prepare(spec)?;
            self.codex_user = Some((user.uid, user.gid, user.groups));
        }
        Ok(())
    }
}

/// Why a probe of Codex gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Codex could not be started at all.
    #[error("cannot start {program}: {reason}")]
    Start {
        /// The Codex program.
        program: String,
        /// The operating system's or the supervisor's reason.
        reason: String,
    },
    /// Codex did not finish in time (it was killed).
    #[error("`{0}` did not answer within {1} s")]
    Timeout(String, u64),
}

/// Run Codex with `args` as a probe (`--version`, `exec --help`, `sandbox -- true`): no
/// stdin, started in `cwd`, at most `timeout`; its output, whatever its exit status.
pub async fn probe(
    config: &RunnerConfig,
    args: &[&str],
    cwd: &Path,
    timeout: Duration,
) -> Result<std::process::Output, ProbeError> {
    let env = super::env::child_env(std::env::vars_os(), &config.env, None);
    let mut command = command(
        config,
        Launch {
            args: args.iter().map(OsString::from).collect(),
            cwd,
            isolation: None,
            env: &env,
        },
    );
    command.stdin(Stdio::null());
    let start_error = |reason: String| ProbeError::Start {
        program: config.program.display().to_string(),
        reason,
    };
    let output = match tokio::time::timeout(timeout, command.output()).await {
        Err(_) => return Err(ProbeError::Timeout(args.join(" "), timeout.as_secs())),
        Ok(Err(e)) => return Err(start_error(e.to_string())),
        Ok(Ok(output)) => output,
    };
    if config.supervisor.is_some()
        && output.status.code() == Some(i32::from(supervise::SPAWN_FAILED))
        && let Some(reason) = supervise::spawn_failure(&String::from_utf8_lossy(&output.stderr))
    {
        return Err(start_error(reason));
    }
    Ok(output)
}

/// Start one run's Codex in the opened `workdir` (closed in this process once the child
/// has it): its supervisor forked by the run spawner, or else started by exec through
/// [`command`]. The only failure is Codex not starting.
pub(super) async fn start_run(
    config: &RunnerConfig,
    args: Vec<OsString>,
    workdir: super::cwd::OpenDir,
    isolation: Option<Isolation>,
    env: &BTreeMap<OsString, OsString>,
) -> Result<RunChild, crate::error::ToolError> {
    let spawn_error = |source: std::io::Error| crate::error::ToolError::Spawn {
        program: config.program.display().to_string(),
        source,
    };
    if let (Some(spawner), Some(_)) = (&config.spawner, &config.supervisor) {
        use std::os::fd::AsFd;
        let argv = supervisor_args(config, args.clone(), isolation.clone()).to_argv();
        match spawner.spawn(argv, env, workdir.as_fd()).await {
            Ok(forked) => return Ok(RunChild::forked(forked)),
            Err(SpawnError::Refused(reason)) => {
                return Err(spawn_error(std::io::Error::other(reason)));
            }
            Err(SpawnError::Unavailable(reason)) if spawner.first_fallback() => tracing::warn!(
                %reason,
                "the run spawner cannot start this run: starting its supervisor by exec (said once)"
            ),
            Err(SpawnError::Unavailable(reason)) => {
                tracing::debug!(%reason, "run supervisor started by exec");
            }
        }
    }
    let cwd = workdir.proc_path();
    let mut command = command(
        config,
        Launch {
            args,
            cwd: &cwd,
            isolation,
            env,
        },
    );
    let spawned = command.spawn();
    drop(workdir);
    spawned.and_then(RunChild::spawned).map_err(spawn_error)
}

/// Read a run's stderr to its end in the background: the bounded tail, and Codex's
/// sandbox refusals counted on the way.
pub(super) fn stderr_task(
    child: &mut RunChild,
    max: usize,
) -> Option<tokio::task::JoinHandle<(String, u64)>> {
    use tokio::io::AsyncReadExt;
    child.stderr.take().map(|mut stderr| {
        tokio::spawn(async move {
            let mut tail = super::io::TailBuffer::new(max);
            let mut refusals = crate::codex::stderr::RefusalCounter::default();
            let mut chunk = vec![0u8; 8192];
            while let Ok(n) = stderr.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                tail.push(&chunk[..n]);
                refusals.feed(&chunk[..n]);
            }
            (tail.into_string(), refusals.finish())
        })
    })
}

/// What the stderr task kept, waiting at most a second (a grandchild may hold stderr).
pub(super) async fn stderr_of(
    task: Option<tokio::task::JoinHandle<(String, u64)>>,
) -> (String, u64) {
    match task {
        Some(task) => tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default(),
        None => (String::new(), 0),
    }
}

/// The supervisor started but Codex did not: the same error as a direct spawn.
pub(super) fn supervised_spawn_failure(
    config: &RunnerConfig,
    status: Option<std::process::ExitStatus>,
    stderr: &str,
) -> Option<crate::error::ToolError> {
    if config.supervisor.is_none()
        || status.and_then(|s| s.code()) != Some(i32::from(supervise::SPAWN_FAILED))
    {
        return None;
    }
    supervise::spawn_failure(stderr).map(|reason| crate::error::ToolError::Spawn {
        program: config.program.display().to_string(),
        source: std::io::Error::other(reason),
    })
}
