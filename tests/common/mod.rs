//! Test harness: spawn `2bot-mcp` with the fake (or real) Codex, connect `rmcp`'s
//! client over its stdio, and read what the fake Codex recorded.

pub mod cimd;
pub mod cluster;
pub mod http;
pub mod inproc;
pub mod mock_responses;
pub mod nginx;
pub mod oauth;
pub mod oauth_builtin;
pub mod postgres;
pub mod proc_tree;
pub mod programs;
pub mod stores;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientRequest, ProgressNotificationParam, Request,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestHandle, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

/// The fake `codex` shell script.
pub fn fake_codex() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-codex")
}

/// The real Codex CLI installed by `npm ci` (`scripts/test` runs it).
pub fn real_codex() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules/.bin/codex")
}

/// An MCP client that keeps every progress message it receives; with `tasks`, it
/// declares the MCP tasks extension (SEP-2663).
#[derive(Clone, Default)]
pub struct Recorder {
    pub progress: Arc<Mutex<Vec<String>>>,
    /// When each progress message arrived.
    pub arrived: Arc<Mutex<Vec<std::time::Instant>>>,
    pub tasks: bool,
}

impl ClientHandler for Recorder {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        let mut info = rmcp::model::ClientConfig::default();
        if self.tasks {
            info.capabilities = rmcp::model::ClientCapabilities::builder()
                .enable_tasks()
                .build();
        }
        info
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.arrived.lock().unwrap().push(std::time::Instant::now());
        self.progress
            .lock()
            .unwrap()
            .push(params.message.unwrap_or_default());
    }
}

/// A running `2bot-mcp` on stdio, its client, and its temp dirs.
pub struct StdioServer {
    pub client: RunningService<RoleClient, Recorder>,
    pub recorder: Recorder,
    pub pid: u32,
    /// The allowed root (CODEX_ALLOWED_ROOTS).
    pub root: PathBuf,
    /// Where the fake Codex records each run.
    pub record: PathBuf,
    /// The server's stderr log.
    pub log: PathBuf,
    pub _tmp: tempfile::TempDir,
}

/// Options for [`spawn_stdio`].
pub struct Options {
    pub codex: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            codex: fake_codex(),
            env: Vec::new(),
        }
    }
}

tokio::task_local! {
    /// The Codex backend the current test runs against, set by [`both_backends!`].
    pub static BACKEND: &'static str;
}

/// The backend the current test runs against (`exec` outside [`both_backends!`]).
pub fn backend() -> &'static str {
    BACKEND.try_with(|b| *b).unwrap_or("exec")
}

/// Give `cmd` the current test's `TWOBOT_CODEX_BACKEND`, when it runs on both backends.
pub fn with_backend(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    if let Ok(backend) = BACKEND.try_with(|b| *b) {
        cmd.env("TWOBOT_CODEX_BACKEND", backend);
    }
    cmd
}

/// `both_backends!(name);` before `async fn name() -> Result<()>` makes two tests of it,
/// `name::on_exec` and `name::on_app_server`, each starting its servers with that
/// `TWOBOT_CODEX_BACKEND` ([`with_backend`]).
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn on_exec() -> anyhow::Result<()> {
                $crate::common::BACKEND.scope("exec", super::$name()).await
            }
            #[tokio::test]
            async fn on_app_server() -> anyhow::Result<()> {
                $crate::common::BACKEND
                    .scope("app-server", super::$name())
                    .await
            }
        }
    };
}

/// Start `2bot-mcp` (stdio) with a temp allowed root and connect a client.
pub async fn spawn_stdio(opts: Options) -> Result<StdioServer> {
    let tmp = tempfile::tempdir()?;
    let base = tmp.path().canonicalize()?;
    let root = base.join("root");
    let record = base.join("record");
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&record)?;
    let log = base.join("server.log");

    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()),
        )
        .env("CODEX_BIN", &opts.codex)
        .env("CODEX_ALLOWED_ROOTS", &root)
        .env("FAKE_CODEX_RECORD", &record)
        .env("TWOBOT_LOG_LEVEL", "debug")
        // Never the user's own state directory.
        .env("TWOBOT_STATE_DIR", base.join("state"))
        .current_dir(&base);
    with_backend(&mut cmd);
    stores::with_store(&mut cmd);
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("spawn 2bot-mcp")?;
    let pid = transport.id().context("server pid")?;
    let recorder = Recorder::default();
    let client = recorder
        .clone()
        .serve(transport)
        .await
        .context("initialize over stdio")?;
    Ok(StdioServer {
        client,
        recorder,
        pid,
        root,
        record,
        log,
        _tmp: tmp,
    })
}

/// `tools/call run_codex_prompt` with `args`.
pub async fn call(
    client: &RunningService<RoleClient, Recorder>,
    args: Value,
) -> Result<CallToolResult> {
    let Value::Object(map) = args else {
        anyhow::bail!("arguments must be an object");
    };
    Ok(client
        .call_tool(CallToolRequestParams::new("run_codex_prompt").with_arguments(map))
        .await?)
}

/// Start a call without waiting, so the test can cancel it.
pub async fn start_call(
    client: &RunningService<RoleClient, Recorder>,
    args: Value,
) -> Result<RequestHandle<RoleClient>> {
    let Value::Object(map) = args else {
        anyhow::bail!("arguments must be an object");
    };
    let request = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("run_codex_prompt").with_arguments(map),
    ));
    Ok(client
        .peer()
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await?)
}

/// The text of the first content block.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

/// The structured content.
pub fn structured(result: &CallToolResult) -> Value {
    result.structured_content.clone().unwrap_or(json!(null))
}

/// What the fake Codex recorded for each run, keyed by its pid.
#[derive(Debug)]
pub struct Recorded {
    pub argv: Vec<String>,
    pub stdin: String,
    pub env: BTreeMap<String, String>,
    pub cwd: String,
    pub dir: PathBuf,
}

/// Every run the fake Codex recorded under `record`.
pub fn recorded(record: &Path) -> Result<Vec<Recorded>> {
    let mut runs = Vec::new();
    for entry in std::fs::read_dir(record)? {
        let dir = entry?.path();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        runs.push(Recorded {
            argv: read("argv").lines().map(str::to_owned).collect(),
            stdin: read("stdin"),
            env: read("env")
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            cwd: read("cwd").trim().to_owned(),
            dir: dir.clone(),
        });
    }
    Ok(runs)
}

/// The one run recorded, failing if there is not exactly one.
pub fn only_run(record: &Path) -> Result<Recorded> {
    let mut runs = recorded(record)?;
    anyhow::ensure!(
        runs.len() == 1,
        "expected one recorded run, found {}",
        runs.len()
    );
    Ok(runs.remove(0))
}

/// Whether `pid` is a live process (zombies count as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            !matches!(state, Some('Z' | 'X'))
        }
        Err(_) => false,
    }
}

/// A process the fake Codex recorded from inside its run: 2Bot runs Codex in its own PID
/// namespace, where a pid means nothing on the host, so the fake writes its pid there and
/// its start time (ticks since boot, the same in every namespace). With the test's own
/// record directory (in the process's environment, `FAKE_CODEX_RECORD`) the triple names
/// one process on the host, alive or not: runs of parallel tests, each in its own
/// namespace, share small pids and may share a 10 ms tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPid {
    /// The pid inside the run's namespace (the host pid when the run had none).
    pub inner: i32,
    /// Field 22 of its `/proc/<pid>/stat`.
    pub start: u64,
    /// The record directory of the server that ran it (`FAKE_CODEX_RECORD`), when known.
    pub record: Option<PathBuf>,
}

impl std::str::FromStr for RunPid {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let (inner, start) = s
            .trim()
            .split_once(' ')
            .with_context(|| format!("a recorded pid is `<pid> <start>`, not {s:?}"))?;
        Ok(Self {
            inner: inner.parse()?,
            start: start.parse()?,
            record: None,
        })
    }
}

impl std::fmt::Display for RunPid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (started at tick {})", self.inner, self.start)
    }
}

impl RunPid {
    /// Its pid on the host while it lives (zombies count as gone).
    pub fn host(&self) -> Option<i32> {
        let dir = std::fs::read_dir("/proc").ok()?;
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let fields: Vec<&str> = stat
                    .rsplit_once(") ")
                    .map(|(_, rest)| rest.split(' ').collect())
                    .unwrap_or_default();
                // After the command name: state is field 3, starttime field 22.
                let start = fields.get(19).and_then(|f| f.parse::<u64>().ok());
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let innermost = status
                    .lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .and_then(|l| l.split_whitespace().last())
                    .and_then(|p| p.parse::<i32>().ok());
                start == Some(self.start)
                    && innermost == Some(self.inner)
                    && !matches!(fields.first(), Some(&"Z" | &"X"))
                    && self.record.as_ref().is_none_or(|record| {
                        let environ =
                            std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                        let wanted = format!("FAKE_CODEX_RECORD={}", record.display());
                        environ
                            .split(|b| *b == 0)
                            .any(|var| var == wanted.as_bytes())
                    })
            })
    }
}

/// Something whose process may be alive: a host pid, or a pid recorded inside a run.
pub trait Process {
    /// Whether it is alive now.
    fn is_alive(&self) -> bool;
}

impl Process for i32 {
    fn is_alive(&self) -> bool {
        alive(*self)
    }
}

impl<T: Process> Process for &T {
    fn is_alive(&self) -> bool {
        (*self).is_alive()
    }
}

impl Process for RunPid {
    fn is_alive(&self) -> bool {
        self.host().is_some()
    }
}

/// Read a pid the fake Codex recorded at `<record>/<run>/<file>` (see [`RunPid`]).
pub fn read_run_pid(path: &Path) -> Result<RunPid> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    with_record(text.parse()?, path)
}

/// Wait (bounded) for a pid the fake Codex records, and read it.
pub async fn wait_for_run_pid(path: &Path, limit: Duration) -> Result<RunPid> {
    with_record(wait_for_file(path, limit).await?.parse()?, path)
}

fn with_record(pid: RunPid, path: &Path) -> Result<RunPid> {
    let record = path
        .parent()
        .and_then(Path::parent)
        .with_context(|| format!("{} lies in no record directory", path.display()))?;
    Ok(RunPid {
        record: Some(record.to_owned()),
        ..pid
    })
}

/// Wait (bounded) until `pid` is gone; returns whether it is.
pub async fn gone_within(pid: impl Process, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if !pid.is_alive() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    !pid.is_alive()
}

/// Wait (bounded) until a file exists and return its trimmed content.
pub async fn wait_for_file(path: &Path, limit: Duration) -> Result<String> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.trim().is_empty()
        {
            return Ok(s.trim().to_owned());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A file's text once `ready` says it holds what the test waits for (bounded): a server's
/// log, or its audit log, whose writer thread appends a record a moment after the call
/// that made it answered.
pub async fn file_when(path: &Path, ready: impl Fn(&str) -> bool) -> Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if ready(&text) {
            return Ok(text);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{} never got there:\n{text}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait (bounded) for the single run directory the fake Codex creates.
pub async fn wait_for_run_dir(record: &Path, limit: Duration) -> Result<PathBuf> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(entry) = std::fs::read_dir(record)?.next() {
            return Ok(entry?.path());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no run started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A run of the fake Codex's `scenario:hang` (exec or app-server): Codex and the
/// `sleep 300` it started, both recorded, so a test can stop the run and check that
/// nothing of it is left.
#[derive(Debug)]
pub struct HangingRun {
    /// The fake Codex.
    pub codex: RunPid,
    /// The grandchild it left sleeping (in Codex's process group).
    pub grandchild: RunPid,
}

/// Wait (bounded, 20 s each) for the single run in `record` to be hanging: its
/// directory, then both recorded pids. The caller has started the `scenario:hang` call.
pub async fn hanging_run(record: &Path) -> Result<HangingRun> {
    let limit = Duration::from_secs(20);
    let dir = wait_for_run_dir(record, limit).await?;
    let codex = wait_for_run_pid(&dir.join("codex.pid"), limit).await?;
    let grandchild = wait_for_run_pid(&dir.join("grandchild.pid"), limit).await?;
    Ok(HangingRun { codex, grandchild })
}

/// Peak resident memory of `pid`, in KiB (VmHWM).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Current resident set (VmRSS) of `pid`, in KiB.
pub fn current_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Processes (Codex, or anything it started) still carrying `record` as their
/// `FAKE_CODEX_RECORD`; the server itself, which passes the variable on, does not count.
/// (Used by `tests/adversarial.rs` and `tests/soak.rs`, not by every test binary.)
#[allow(dead_code)]
pub fn codex_leftovers(record: &Path) -> Vec<u32> {
    let marker = format!("FAKE_CODEX_RECORD={}", record.display());
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
                && std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| !c.contains("2bot-mcp"))
        })
        .collect()
}

/// Exchanges two names (`renameat2(RENAME_EXCHANGE)`) in a tight loop on its own thread,
/// as an attacker racing 2Bot's checks would, until dropped.
pub struct SwapLoop {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Start swapping `a` and `b` (see [`SwapLoop`]).
pub fn swap_loop(a: &Path, b: &Path) -> SwapLoop {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        let (a, b) = (a.to_owned(), b.to_owned());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    &a,
                    nix::fcntl::AT_FDCWD,
                    &b,
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                );
            }
        })
    };
    SwapLoop {
        stop,
        thread: Some(thread),
    }
}

impl Drop for SwapLoop {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
