//! A task that resumes a thread another instance holds (issue 21): a task-capable
//! client's call lands on an instance whose Codex home lacks the thread, and the run
//! starts as a task on the instance that holds it. The client follows it where it
//! called (`tasks/get` answered from the store), gets the direct call's result, and a
//! second one is cancelled from there (forwarded to the holder, its process gone).
//! Two instances on one throw-away PostgreSQL, rmcp's Streamable HTTP client.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rmcp::RoleClient;
use rmcp::model::{
    CallToolResponse, CancelTaskParams, DetailedTask, GetTaskParams, TaskPayload, TaskStatus,
};
use rmcp::service::RunningService;
use serde_json::json;

use crate::common::cluster::{Cluster, StaticTokens, run_dirs};
use crate::common::http::{call_as_task, http_task_client};
use crate::common::{Recorder, gone_within, wait_for_run_pid};

const PEOPLE: StaticTokens = StaticTokens(&["alice", "bob"]);

type Client = RunningService<RoleClient, Recorder>;

async fn task(client: &Client, id: &str) -> Result<DetailedTask> {
    Ok(client.get_task(GetTaskParams::new(id)).await?.task)
}

/// Poll `tasks/get` until the task is no longer working (at most `limit`).
async fn settled(client: &Client, id: &str, limit: Duration) -> Result<DetailedTask> {
    let deadline = Instant::now() + limit;
    loop {
        let t = task(client, id).await?;
        if t.task.status != TaskStatus::Working {
            return Ok(t);
        }
        ensure!(Instant::now() < deadline, "task {id} still working: {t:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_resuming_a_thread_held_elsewhere_runs_there_and_is_followed_where_it_was_called()
-> Result<()> {
    let homes = tempfile::tempdir()?;
    let cluster = Cluster::start_apart(2, &PEOPLE, homes.path()).await?;
    let holder = http_task_client(&cluster.members[0].mcp(), Some("tok-alice")).await?;
    let other = http_task_client(&cluster.members[1].mcp(), Some("tok-alice")).await?;
    let runs_on = |m: usize| run_dirs(&cluster.members[m].server.record).len();

    // A thread on the holder's Codex home (a plain call there).
    let started = call_as_task(
        &holder,
        json!({"prompt": "scenario:ok", "ephemeral": false}),
    )
    .await?;
    let CallToolResponse::Task(created) = started else {
        anyhow::bail!("expected a task, got {started:?}")
    };
    let first = settled(&holder, &created.task.task_id, Duration::from_secs(30)).await?;
    let TaskPayload::Completed { result } = first.payload else {
        anyhow::bail!("the first task did not complete: {first:?}")
    };
    let thread = result["structuredContent"]["thread_id"]
        .as_str()
        .context("thread_id")?
        .to_owned();

    // Its resume, as a task, called on the instance without the thread.
    let resumed = call_as_task(
        &other,
        json!({"prompt": "scenario:ok", "thread_id": thread, "ephemeral": false}),
    )
    .await?;
    let CallToolResponse::Task(created) = resumed else {
        anyhow::bail!("the resume did not become a task: {resumed:?}")
    };
    let id = created.task.task_id;
    let done = settled(&other, &id, Duration::from_secs(30)).await?;
    ensure!(done.task.status == TaskStatus::Completed, "{done:?}");
    let TaskPayload::Completed { result } = done.payload else {
        anyhow::bail!("not completed: {done:?}")
    };
    ensure!(
        result["isError"] != true && result["structuredContent"]["thread_id"] == thread.as_str(),
        "{result:?}"
    );
    ensure!(
        (runs_on(0), runs_on(1)) == (2, 0),
        "the resume ran where the thread is not"
    );
    // The holder knows it as the same task.
    let there = task(&holder, &id).await?;
    ensure!(there.task.status == TaskStatus::Completed, "{there:?}");

    // Another principal's resume is refused at the holder, and never becomes a task.
    let bob = http_task_client(&cluster.members[1].mcp(), Some("tok-bob")).await?;
    let stolen = call_as_task(
        &bob,
        json!({"prompt": "scenario:ok", "thread_id": thread, "ephemeral": false}),
    )
    .await?;
    let CallToolResponse::Complete(stolen) = stolen else {
        anyhow::bail!("bob's resume became a task: {stolen:?}")
    };
    ensure!(stolen.is_error == Some(true), "{stolen:?}");
    ensure!(
        format!("{:?}", stolen.content).contains("only your own threads"),
        "{stolen:?}"
    );
    ensure!(runs_on(0) == 2, "bob's resume ran");

    // A hanging resume, cancelled where it was called: forwarded to the holder, whose
    // Codex and its command are gone.
    let hanging = call_as_task(
        &other,
        json!({"prompt": "scenario:hang", "thread_id": thread, "ephemeral": false, "timeout_sec": 600}),
    )
    .await?;
    let CallToolResponse::Task(created) = hanging else {
        anyhow::bail!("the hanging resume did not become a task: {hanging:?}")
    };
    let id = created.task.task_id;
    let record = cluster.members[0].server.record.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let dir = loop {
        let hung = run_dirs(&record)
            .into_iter()
            .find(|d| d.join("grandchild.pid").exists());
        if let Some(dir) = hung {
            break dir;
        }
        ensure!(
            Instant::now() < deadline,
            "the hanging resume never started on the holder"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let limit = Duration::from_secs(20);
    let codex = wait_for_run_pid(&dir.join("codex.pid"), limit).await?;
    let grandchild = wait_for_run_pid(&dir.join("grandchild.pid"), limit).await?;
    ensure!(
        runs_on(1) == 0,
        "the hanging resume ran where the thread is not"
    );
    other.cancel_task(CancelTaskParams::new(id.clone())).await?;
    for (what, pid) in [("Codex", codex), ("its command", grandchild)] {
        ensure!(
            gone_within(pid, Duration::from_secs(15)).await,
            "the holder's {what} survived the cancel"
        );
    }
    let ended = settled(&other, &id, Duration::from_secs(15)).await?;
    ensure!(ended.task.status == TaskStatus::Cancelled, "{ended:?}");
    Ok(())
}

/// A task read on an instance that does not hold it (a stateless client behind a
/// round-robin balancer lands anywhere) shows what the holder shows, its latest
/// progress, not only "running elsewhere"; once it ends, its result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_task_read_on_another_instance_shows_the_holders_progress() -> Result<()> {
    let cluster = Cluster::start(2, &PEOPLE, &[("FAKE_CODEX_STEPS", "4")]).await?;
    let holder = http_task_client(&cluster.members[0].mcp(), Some("tok-alice")).await?;
    let other = http_task_client(&cluster.members[1].mcp(), Some("tok-alice")).await?;
    let CallToolResponse::Task(created) =
        call_as_task(&holder, json!({"prompt": "scenario:long"})).await?
    else {
        anyhow::bail!("expected a task")
    };
    let id = created.task.task_id;
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let t = task(&other, &id).await?;
        let message = t.task.status_message.clone().unwrap_or_default();
        if message.contains("step") {
            break message;
        }
        ensure!(
            t.task.status == TaskStatus::Working && Instant::now() < deadline,
            "no progress read elsewhere: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ensure!(!seen.contains("another 2Bot process"), "{seen}");
    let done = settled(&other, &id, Duration::from_secs(30)).await?;
    let TaskPayload::Completed { result } = done.payload else {
        anyhow::bail!("not completed: {done:?}")
    };
    ensure!(
        result["structuredContent"]["final_message"] == "long answer",
        "{result:?}"
    );
    // Bob asks the other instance: nothing, as for an unknown id.
    let bob = http_task_client(&cluster.members[1].mcp(), Some("tok-bob")).await?;
    ensure!(task(&bob, &id).await.is_err(), "bob reads alice's task");
    Ok(())
}
