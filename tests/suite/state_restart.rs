//! Restarts lose nothing finished: background runs and thread owners live in the state
//! store (`state.db` in `TWOBOT_STATE_DIR`), so a restarted server on the same directory
//! serves finished runs until they expire, reports a run its predecessor was running
//! when it was killed as `lost` (never `working`), and keeps refusing another
//! principal's resume of a thread, including threads from the old `threads.jsonl`.
//! Each test runs on both stores (`both_stores!`): SQLite, and a PostgreSQL database.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rmcp::RoleClient;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use serde_json::{Value, json};

use crate::common::http::*;
use crate::common::stores::{stored_run_state as stored_state, wait_stored};
use crate::common::*;

const TOKENS: &str = "alice:tok-alice,bob:tok-bob";

async fn tool(
    client: &RunningService<RoleClient, Recorder>,
    name: &'static str,
    args: Value,
) -> Result<rmcp::model::CallToolResult> {
    let Value::Object(map) = args else {
        anyhow::bail!("arguments must be an object")
    };
    Ok(client
        .call_tool(CallToolRequestParams::new(name).with_arguments(map))
        .await?)
}

/// A server with background runs and two token principals on the state directory `state`.
async fn server_on(state: &Path, extra: &[(&str, &str)]) -> Result<HttpServer> {
    let dir = state.display().to_string();
    let mut env = vec![
        ("TWOBOT_ENABLE_BACKGROUND_RUNS", "true"),
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", TOKENS),
        ("TWOBOT_STATE_DIR", dir.as_str()),
    ];
    env.extend_from_slice(extra);
    spawn_http(&env).await
}

/// SIGKILL, as a crash or an OOM kill would end it: nothing is flushed on the way out.
async fn kill(mut server: HttpServer) -> Result<()> {
    server.child.start_kill()?;
    server.child.wait().await?;
    Ok(())
}

/// Start a background run that hangs until it is killed; its run id.
async fn start_hanging(client: &RunningService<RoleClient, Recorder>) -> Result<String> {
    let r = call(
        client,
        json!({"prompt": "scenario:hang", "background": true, "timeout_sec": 600}),
    )
    .await?;
    Ok(structured(&r)["run_id"]
        .as_str()
        .context("run_id")?
        .to_owned())
}

/// Start a background run and follow it to its end; its final snapshot.
async fn finished_run(client: &RunningService<RoleClient, Recorder>) -> Result<Value> {
    let r = call(client, json!({"prompt": "scenario:ok", "background": true})).await?;
    let run_id = structured(&r)["run_id"]
        .as_str()
        .context("run_id")?
        .to_owned();
    let done = tool(
        client,
        "get_codex_run",
        json!({"run_id": run_id, "wait_sec": 30}),
    )
    .await?;
    let s = structured(&done);
    anyhow::ensure!(s["status"] == "completed", "{s}");
    Ok(s)
}

crate::both_stores!(a_finished_background_run_is_served_after_a_restart_with_the_same_result);
async fn a_finished_background_run_is_served_after_a_restart_with_the_same_result() -> Result<()> {
    let state = tempfile::tempdir()?;
    let server = server_on(state.path(), &[]).await?;
    let alice = http_client(&server.url, Some("tok-alice")).await?;
    let before = finished_run(&alice).await?;
    let run_id = before["run_id"].as_str().context("run_id")?.to_owned();
    wait_stored(state.path(), &run_id, "completed").await?;
    kill(server).await?;

    let server = server_on(state.path(), &[]).await?;
    let alice = http_client(&server.url, Some("tok-alice")).await?;
    let bob = http_client(&server.url, Some("tok-bob")).await?;
    let after = tool(&alice, "get_codex_run", json!({"run_id": run_id})).await?;
    assert_eq!(after.is_error, Some(false), "{}", text(&after));
    let s = structured(&after);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["run_id"], run_id.as_str());
    assert_eq!(s["result"], before["result"], "the same result");
    assert_eq!(s["result"]["final_message"], "fake answer");
    assert_eq!(text(&after), "fake answer");

    // Still owner-checked: to anyone else it does not exist, exactly as before.
    for name in ["get_codex_run", "cancel_codex_run"] {
        let r = tool(&bob, name, json!({"run_id": run_id})).await?;
        assert_eq!(r.is_error, Some(true), "{name}");
        assert!(text(&r).contains("no run"), "{name}: {}", text(&r));
    }
    // Cancelling it now says it is over, and changes nothing.
    let r = tool(&alice, "cancel_codex_run", json!({"run_id": run_id})).await?;
    assert!(text(&r).contains("already over"), "{}", text(&r));
    assert_eq!(structured(&r)["status"], "completed");
    Ok(())
}

crate::both_stores!(a_run_running_when_the_server_is_killed_is_lost_after_a_restart);
async fn a_run_running_when_the_server_is_killed_is_lost_after_a_restart() -> Result<()> {
    let state = tempfile::tempdir()?;
    let server = server_on(state.path(), &[]).await?;
    let alice = http_client(&server.url, Some("tok-alice")).await?;
    let run_id = start_hanging(&alice).await?;
    let HangingRun { codex, grandchild } = hanging_run(&server.record).await?;
    wait_stored(state.path(), &run_id, "running").await?;
    kill(server).await?;
    assert!(
        gone_within(&codex, Duration::from_secs(10)).await,
        "codex survived its server"
    );
    assert!(
        gone_within(&grandchild, Duration::from_secs(10)).await,
        "codex's command survived its server"
    );

    let server = server_on(state.path(), &[]).await?;
    // Lost at start-up, not after a heartbeat timeout.
    assert_eq!(
        stored_state(state.path(), &run_id).await?.as_deref(),
        Some("lost")
    );
    let alice = http_client(&server.url, Some("tok-alice")).await?;
    let r = tool(
        &alice,
        "get_codex_run",
        json!({"run_id": run_id, "wait_sec": 5}),
    )
    .await?;
    let s = structured(&r);
    assert_eq!(s["status"], "lost", "{s}");
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("lost"), "{}", text(&r));
    assert!(
        s["error"]
            .as_str()
            .is_some_and(|e| e.contains("restarted or died")),
        "{s}"
    );
    let r = tool(&alice, "cancel_codex_run", json!({"run_id": run_id})).await?;
    assert!(text(&r).contains("already over (lost)"), "{}", text(&r));
    Ok(())
}

crate::both_stores!(threads_jsonl_is_migrated_once_and_still_refuses_another_principals_resume);
async fn threads_jsonl_is_migrated_once_and_still_refuses_another_principals_resume() -> Result<()>
{
    let state = tempfile::tempdir()?;
    let legacy = state.path().join("threads.jsonl");
    std::fs::write(
        &legacy,
        "{\"thread_id\":\"0199a213-81c0-7800-8aa1-bbab2a035a53\",\"owner\":\"token:alice\",\"ephemeral\":false}\n",
    )?;
    let thread = "0199a213-81c0-7800-8aa1-bbab2a035a53";
    for start in ["first start", "after a restart"] {
        let server = server_on(state.path(), &[]).await?;
        assert!(!legacy.exists(), "{start}: threads.jsonl is gone");
        let migrated = std::fs::read_to_string(state.path().join("threads.jsonl.migrated"))?;
        assert!(migrated.contains(thread), "{start}: kept, renamed");
        let bob = http_client(&server.url, Some("tok-bob")).await?;
        let stolen = call(&bob, json!({"prompt": "scenario:ok", "thread_id": thread})).await?;
        assert_eq!(stolen.is_error, Some(true), "{start}");
        assert!(
            text(&stolen).contains("only your own threads"),
            "{start}: {}",
            text(&stolen)
        );
        let alice = http_client(&server.url, Some("tok-alice")).await?;
        let own = call(
            &alice,
            json!({"prompt": "scenario:ok", "thread_id": thread, "ephemeral": false}),
        )
        .await?;
        assert_eq!(own.is_error, Some(false), "{start}: {}", text(&own));
        assert_eq!(structured(&own)["thread_id"], thread);
        kill(server).await?;
    }
    Ok(())
}

crate::both_stores!(an_expired_run_is_gone_after_a_restart);
async fn an_expired_run_is_gone_after_a_restart() -> Result<()> {
    let state = tempfile::tempdir()?;
    let ttl = [("TWOBOT_TASK_TTL_SEC", "2")];
    let server = server_on(state.path(), &ttl).await?;
    let alice = http_client(&server.url, Some("tok-alice")).await?;
    let done = finished_run(&alice).await?;
    let run_id = done["run_id"].as_str().context("run_id")?.to_owned();
    wait_stored(state.path(), &run_id, "completed").await?;
    kill(server).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let server = server_on(state.path(), &ttl).await?;
    let alice = http_client(&server.url, Some("tok-alice")).await?;
    let r = tool(&alice, "get_codex_run", json!({"run_id": run_id})).await?;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("no run"), "{}", text(&r));
    // The start-up heartbeat forgot it in the file too.
    assert_eq!(stored_state(state.path(), &run_id).await?, None);
    Ok(())
}

async fn task(
    client: &RunningService<RoleClient, Recorder>,
    id: &str,
) -> Result<rmcp::model::DetailedTask> {
    Ok(client
        .get_task(rmcp::model::GetTaskParams::new(id))
        .await?
        .task)
}

crate::both_stores!(tasks_survive_a_restart_finished_or_lost);
/// Tasks too: a finished one's result comes back after a restart, and one its server
/// was running when killed fails as lost, never working.
async fn tasks_survive_a_restart_finished_or_lost() -> Result<()> {
    use rmcp::model::{TaskPayload, TaskStatus};
    let state = tempfile::tempdir()?;
    let server = server_on(state.path(), &[]).await?;
    let alice = http_task_client(&server.url, Some("tok-alice")).await?;
    let done = start_as_task(&alice, json!({"prompt": "scenario:ok", "timeout_sec": 600})).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let t = task(&alice, &done).await?;
        if t.task.status != TaskStatus::Working {
            break t;
        }
        anyhow::ensure!(Instant::now() < deadline, "task never finished");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let TaskPayload::Completed { result: before } = before.payload else {
        anyhow::bail!("not completed: {before:?}")
    };
    wait_stored(state.path(), &done, "completed").await?;
    let hung = start_as_task(
        &alice,
        json!({"prompt": "scenario:hang", "timeout_sec": 600}),
    )
    .await?;
    wait_stored(state.path(), &hung, "running").await?;
    kill(server).await?;

    let server = server_on(state.path(), &[]).await?;
    let alice = http_task_client(&server.url, Some("tok-alice")).await?;
    let after = task(&alice, &done).await?;
    assert_eq!(after.task.status, TaskStatus::Completed);
    let TaskPayload::Completed { result: after } = after.payload else {
        anyhow::bail!("not completed")
    };
    assert_eq!(after["structuredContent"], before["structuredContent"]);
    assert_eq!(after["content"], before["content"]);

    let lost = task(&alice, &hung).await?;
    assert_eq!(lost.task.status, TaskStatus::Failed, "{lost:?}");
    assert!(
        lost.task
            .status_message
            .as_deref()
            .is_some_and(|m| m.contains("lost")),
        "{lost:?}"
    );
    let bob = http_task_client(&server.url, Some("tok-bob")).await?;
    assert!(
        task(&bob, &done).await.is_err(),
        "another principal sees nothing"
    );
    Ok(())
}

/// The run card (in headless Chromium, through the official AppBridge) shows a run lost
/// with its server as ended, says why, and offers no Cancel.
#[tokio::test]
async fn the_card_shows_a_lost_run_as_ended_with_the_reason() -> Result<()> {
    use crate::common::programs::{APT_CHROMIUM, APT_NODE, require};
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = require(&["chromium", "/usr/bin/chromium"], "chromium", APT_CHROMIUM)?;
    let node = require(&["node"], "node", APT_NODE)?;
    assert!(
        repo.join("node_modules/playwright-core").exists(),
        "playwright-core is missing; `npm ci` installs it"
    );
    let state = tempfile::tempdir()?;
    let server = server_on(state.path(), &[]).await?;
    let alice = http_client(&server.url, Some("tok-alice")).await?;
    let run_id = start_hanging(&alice).await?;
    wait_stored(state.path(), &run_id, "running").await?;
    kill(server).await?;

    let server = server_on(state.path(), &[]).await?;
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(node)
            .arg(repo.join("tests/run_card/host.mjs"))
            .current_dir(repo)
            .env("TWOBOT_URL", &server.url)
            .env("TWOBOT_TOKEN", "tok-alice")
            .env("LOST_RUN_ID", &run_id)
            .env("CHROMIUM", &chromium)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("the browser test host did not finish in 300 s")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passed = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["ok"] == true)
        .count();
    assert!(passed >= 8, "only {passed} checks ran:\n{stdout}");
    Ok(())
}
