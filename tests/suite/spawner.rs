//! The run spawner (issue 22, per-call overhead): each run's supervisor is forked by a
//! small process the server started before its runtime, instead of a second exec of the
//! binary; driven through the real binary and a real MCP client, checked in `/proc`.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use crate::common::proc_tree::{assert_all_gone, children, cmdline, comm, descendants, ns_pids};
use crate::common::*;

const WITHIN: Duration = Duration::from_secs(5);

/// A stdio server with one call of `prompt` started (and left running: 600 s).
async fn serving(
    prompt: &str,
) -> Result<(StdioServer, rmcp::service::RequestHandle<rmcp::RoleClient>)> {
    let server = spawn_stdio(Options::default()).await?;
    let call = start_call(
        &server.client,
        json!({"prompt": prompt, "timeout_sec": 600}),
    )
    .await?;
    Ok((server, call))
}

/// A stdio server with one run hanging (its Codex and Codex's child started), and the
/// server's spawner.
async fn hanging() -> Result<(
    StdioServer,
    rmcp::service::RequestHandle<rmcp::RoleClient>,
    i32,
)> {
    let (server, call) = serving("scenario:hang").await?;
    hanging_run(&server.record).await?;
    let spawner = spawner_of(server.pid)?;
    Ok((server, call, spawner))
}

/// The server's one spawner: its only `2bot-spawner` child.
fn spawner_of(server: u32) -> Result<i32> {
    let server = i32::try_from(server)?;
    let spawners: Vec<i32> = children(server)
        .into_iter()
        .filter(|c| comm(*c) == "2bot-spawner")
        .collect();
    anyhow::ensure!(spawners.len() == 1, "spawners of {server}: {spawners:?}");
    Ok(spawners[0])
}

crate::both_backends!(a_run_s_supervisor_is_forked_by_the_spawner_not_exec_d_by_the_server);
/// While a run hangs, its supervisor is a child of the server's spawner, named
/// `2bot-supervise`; the server itself has exec'd no `__supervise` child.
async fn a_run_s_supervisor_is_forked_by_the_spawner_not_exec_d_by_the_server() -> Result<()> {
    let (server, _call, spawner) = hanging().await?;
    let supervisors = children(spawner);
    assert_eq!(supervisors.len(), 1, "{supervisors:?}");
    assert_eq!(comm(supervisors[0]), "2bot-supervise");
    let pid = i32::try_from(server.pid)?;
    let exec_d: Vec<String> = children(pid)
        .into_iter()
        .map(cmdline)
        .filter(|c| c.contains("__supervise"))
        .collect();
    assert!(exec_d.is_empty(), "supervisors started by exec: {exec_d:?}");
    let log = std::fs::read_to_string(&server.log)?;
    assert!(!log.contains("spawner"), "{log}");
    Ok(())
}

crate::both_backends!(a_run_s_init_is_cloned_by_the_spawner_into_the_run_s_pid_namespace);
/// The spawner's child is the run's init itself, pid 1 of the run's own PID namespace,
/// and Codex is its child: no supervisor outside the namespace forks an init per run.
async fn a_run_s_init_is_cloned_by_the_spawner_into_the_run_s_pid_namespace() -> Result<()> {
    let (_server, _call, spawner) = hanging().await?;
    let inits = children(spawner);
    assert_eq!(inits.len(), 1, "{inits:?}");
    let init = inits[0];
    assert_eq!(ns_pids(init), vec![init, 1], "the spawner's child");
    let codex: Vec<i32> = children(init)
        .into_iter()
        .filter(|c| cmdline(*c).contains("exec") || cmdline(*c).contains("app-server"))
        .collect();
    assert_eq!(
        codex.len(),
        1,
        "Codex, a child of the init: {:?}",
        children(init)
    );
    assert_eq!(
        ns_pids(codex[0]).len(),
        2,
        "Codex is inside the run's namespace"
    );
    Ok(())
}

crate::both_backends!(the_spawner_holds_nothing_of_the_server_or_of_a_run_but_its_report_pipe);
/// While a run hangs, the spawner's descriptors are /dev/null on stdin and stdout, the
/// server's stderr, its one socket to the server, its signalfd and pidfd, and the one
/// report pipe of the run; no listener, no file, no run's directory (its cwd is `/`).
async fn the_spawner_holds_nothing_of_the_server_or_of_a_run_but_its_report_pipe() -> Result<()> {
    let (_server, _call, spawner) = hanging().await?;
    assert_eq!(
        std::fs::read_link(format!("/proc/{spawner}/cwd"))?,
        std::path::PathBuf::from("/")
    );
    let mut held: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{spawner}/fd"))?
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((fd, target.display().to_string()))
        })
        .collect();
    held.sort();
    let kinds: Vec<&str> = held
        .iter()
        .filter(|(fd, _)| *fd > 2)
        .map(|(_, target)| target.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(held[0].1, "/dev/null", "{held:?}");
    assert_eq!(held[1].1, "/dev/null", "{held:?}");
    let count = |kind: &str| kinds.iter().filter(|k| **k == kind).count();
    assert_eq!(count("socket"), 1, "one socket, to the server: {held:?}");
    assert_eq!(count("pipe"), 1, "the hanging run's report pipe: {held:?}");
    assert_eq!(
        count("anon_inode"),
        2,
        "its signalfd and its own pidfd: {held:?}"
    );
    assert_eq!(kinds.len(), 4, "nothing else: {held:?}");
    Ok(())
}

crate::both_backends!(every_process_of_a_run_dies_with_the_server_through_the_spawner);
/// SIGKILL of the server mid-run: the spawner, the supervisor, Codex and the command
/// that left Codex's session all go.
async fn every_process_of_a_run_dies_with_the_server_through_the_spawner() -> Result<()> {
    let (server, _call) = serving("scenario:setsid_hang").await?;
    let run = wait_for_run_dir(&server.record, Duration::from_secs(20)).await?;
    let setsid = wait_for_run_pid(&run.join("setsid.pid"), Duration::from_secs(20)).await?;
    let pid = i32::try_from(server.pid)?;
    let spawner = spawner_of(server.pid)?;
    let everything = descendants(pid);
    assert!(
        everything.len() >= 4,
        "spawner, supervisor, Codex...: {everything:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    assert!(gone_within(&setsid, WITHIN).await, "{setsid:?} survived");
    assert!(gone_within(spawner, WITHIN).await, "the spawner survived");
    assert_all_gone(&everything, WITHIN).await;
    Ok(())
}

crate::both_backends!(runs_start_by_exec_with_a_warning_once_the_spawner_is_gone);
/// A spawner killed mid-run ends that run at once (with what it had said), and later
/// runs start their supervisor by exec; the log says why, once.
async fn runs_start_by_exec_with_a_warning_once_the_spawner_is_gone() -> Result<()> {
    let (server, hanging) = serving("scenario:hang").await?;
    let run = hanging_run(&server.record).await?;
    let spawner = spawner_of(server.pid)?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(spawner),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    let ended = tokio::time::timeout(Duration::from_secs(20), hanging.await_response())
        .await
        .context("the run outlived its spawner")??;
    let rmcp::model::ServerResult::CallToolResult(ended) = ended else {
        anyhow::bail!("not a tool result: {ended:?}");
    };
    assert_eq!(structured(&ended)["ok"], false, "{}", structured(&ended));
    assert!(
        gone_within(&run.codex, WITHIN).await,
        "Codex survived its spawner"
    );
    assert!(
        gone_within(&run.grandchild, WITHIN).await,
        "its child survived"
    );

    for _ in 0..2 {
        let next = call(&server.client, json!({"prompt": "hello"})).await?;
        assert_eq!(next.is_error, Some(false), "{}", text(&next));
        assert_eq!(structured(&next)["ok"], true, "{}", structured(&next));
    }
    let log = std::fs::read_to_string(&server.log)?;
    assert!(log.contains("the run spawner has gone"), "{log}");
    // Said once, not once per run.
    assert_eq!(
        log.matches("starting its supervisor by exec").count(),
        1,
        "{log}"
    );
    Ok(())
}
