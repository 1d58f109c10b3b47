//! One principal cannot starve the rest (issue 11, points 3 and 5; issue 19 point 8):
//! per-principal shares of the run queue and of the running slots, kept runs, sessions and requests in flight; round-robin between
//! principals; finished runs evicted before anyone is refused; session owners recorded
//! atomically with the session.
//!
//! Every test drives the real binary over HTTP with two static-token principals and the
//! fake Codex.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rmcp::RoleClient;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use serde_json::{Value, json};

use crate::common::http::*;
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

/// The prompts of the runs the fake Codex recorded so far.
fn started(server: &HttpServer) -> Result<Vec<String>> {
    Ok(recorded(&server.record)?
        .into_iter()
        .map(|r| r.stdin.trim().to_owned())
        .collect())
}

async fn wait_until(limit: Duration, mut ok: impl FnMut() -> Result<bool>) -> Result<()> {
    let start = Instant::now();
    while !ok()? {
        anyhow::ensure!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

crate::both_stores!(a_backlog_of_one_principal_delays_another_by_at_most_one_run);
/// Alice fills the only run slot and her share of the queue: her next call is refused
/// with the quota, Bob's call still gets a place, and it starts as soon as Alice's
/// running call ends, ahead of her eight queued ones.
async fn a_backlog_of_one_principal_delays_another_by_at_most_one_run() -> Result<()> {
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", TOKENS),
        ("TWOBOT_MAX_CONCURRENT_RUNS", "1"),
        ("FAKE_CODEX_STEPS", "6"),
        ("TWOBOT_METRICS_ADDR", "127.0.0.1:0"),
    ])
    .await?;
    let metrics = metrics_url(&server.log).await?;
    let alice = Arc::new(http_client(&server.url, Some("tok-alice")).await?);
    let bob = http_client(&server.url, Some("tok-bob")).await?;

    let mut backlog = Vec::new();
    for i in 0..9 {
        let alice = alice.clone();
        backlog.push(tokio::spawn(async move {
            call(
                &alice,
                json!({"prompt": format!("scenario:long alice-{i}")}),
            )
            .await
        }));
        if i == 0 {
            wait_until(Duration::from_secs(20), || Ok(started(&server)?.len() == 1)).await?;
        }
    }
    // The eight others wait (the default share, TWOBOT_MAX_QUEUED_RUNS_PER_PRINCIPAL=8):
    // all of them in the queue before the next call.
    wait_for_metric(&metrics, "twobot_runs_queued", 8.0, Duration::from_secs(20)).await?;
    let refused = call(&alice, json!({"prompt": "scenario:ok alice-extra"})).await?;
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text(&refused).starts_with("quota exceeded:")
            && text(&refused).contains("TWOBOT_MAX_QUEUED_RUNS_PER_PRINCIPAL"),
        "{}",
        text(&refused)
    );

    let mine = call(&bob, json!({"prompt": "scenario:ok bob-first"})).await?;
    assert_eq!(text(&mine), "fake answer", "{mine:?}");
    // By the time Bob has his answer, at most Alice's first run and the one that took
    // the slot after Bob's have started.
    let runs = started(&server)?;
    assert!(
        runs.contains(&"scenario:ok bob-first".to_owned()),
        "{runs:?}"
    );
    assert!(
        runs.len() <= 3,
        "Bob waited for more than one run: {runs:?}"
    );
    assert!(
        !runs.iter().any(|r| r.contains("alice-extra")),
        "a refused call never starts Codex: {runs:?}"
    );
    for call in backlog {
        call.abort();
    }
    Ok(())
}

crate::both_stores!(one_principals_long_runs_leave_a_run_slot_for_another);
/// Issue 19 point 8: Alice's long runs fill her running cap (by default one below the
/// four slots) and her next call waits in her queue; Bob's call takes the free slot and
/// is answered at once, while Alice's runs still hang and her queued call has not
/// started. Without the cap Bob waited behind Alice's runs for their whole timeout.
async fn one_principals_long_runs_leave_a_run_slot_for_another() -> Result<()> {
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", TOKENS),
        ("TWOBOT_METRICS_ADDR", "127.0.0.1:0"),
    ])
    .await?;
    let metrics = metrics_url(&server.log).await?;
    let alice = Arc::new(http_client(&server.url, Some("tok-alice")).await?);
    let bob = http_client(&server.url, Some("tok-bob")).await?;
    let mut hers = Vec::new();
    for i in 0..4 {
        let alice = alice.clone();
        hers.push(tokio::spawn(async move {
            call(
                &alice,
                json!({"prompt": format!("scenario:hang alice-{i}")}),
            )
            .await
        }));
    }
    wait_until(Duration::from_secs(30), || Ok(started(&server)?.len() >= 3)).await?;
    // Her fourth call is in the queue (without the cap it would hold the last slot).
    wait_for_metric(&metrics, "twobot_runs_queued", 1.0, Duration::from_secs(20)).await?;
    let asked = Instant::now();
    let mine = tokio::time::timeout(
        Duration::from_secs(20),
        call(&bob, json!({"prompt": "scenario:ok bob-first"})),
    )
    .await
    .context("Bob's call waited behind Alice's long runs")??;
    assert_eq!(text(&mine), "fake answer", "{mine:?}");
    let runs = started(&server)?;
    assert_eq!(
        runs.iter().filter(|r| r.contains("alice-")).count(),
        3,
        "Alice runs at most her cap: {runs:?}"
    );
    assert!(
        hers.iter().all(|c| !c.is_finished()),
        "Alice's calls still wait or run"
    );
    eprintln!("Bob answered {:?} after asking", asked.elapsed());
    for call in hers {
        call.abort();
    }
    Ok(())
}

/// Alice holds her share of sessions: her next initialize is 429 naming the quota,
/// Bob still gets a session, and Alice gets one again once she ends one of hers.
#[tokio::test]
async fn one_principals_sessions_leave_room_for_another() -> Result<()> {
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", TOKENS),
        ("TWOBOT_MAX_SESSIONS", "10"),
        ("TWOBOT_MAX_SESSIONS_PER_PRINCIPAL", "3"),
    ])
    .await?;
    let mut hers = Vec::new();
    for _ in 0..3 {
        hers.push(raw_session(&server.url, Some("tok-alice")).await?);
    }
    let refused = post(&server.url, &initialize_body())
        .bearer_auth("tok-alice")
        .send()
        .await?;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "30");
    let body = refused.text().await?;
    assert!(body.contains("TWOBOT_MAX_SESSIONS_PER_PRINCIPAL"), "{body}");

    raw_session(&server.url, Some("tok-bob")).await?;

    let ended = reqwest::Client::new()
        .delete(&server.url)
        .bearer_auth("tok-alice")
        .header("mcp-session-id", &hers[0])
        .send()
        .await?;
    assert!(ended.status().is_success(), "{}", ended.status());
    raw_session(&server.url, Some("tok-alice")).await?;
    Ok(())
}

/// Alice holds her share of requests in flight with two open event streams: her next
/// request is 429 naming the quota, with `Connection: close`; Bob is served; once her
/// streams close, Alice is served again.
#[tokio::test]
async fn one_principals_open_streams_leave_connections_for_another() -> Result<()> {
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", TOKENS),
        ("TWOBOT_MAX_INFLIGHT_PER_PRINCIPAL", "2"),
        ("FAKE_CODEX_STEPS", "30"),
    ])
    .await?;
    let session = raw_session(&server.url, Some("tok-alice")).await?;
    let bob_session = raw_session(&server.url, Some("tok-bob")).await?;
    let list = json!({"jsonrpc":"2.0","id":99,"method":"tools/list"});
    let mut streams = Vec::new();
    for id in 1..=2 {
        let body = json!({"jsonrpc":"2.0","id": id,"method":"tools/call","params":{"name":"run_codex_prompt","arguments":{"prompt":"scenario:long"}}});
        let response = post(&server.url, &body)
            .bearer_auth("tok-alice")
            .header("mcp-session-id", &session)
            .send()
            .await?;
        assert_eq!(response.status(), 200);
        streams.push(response);
    }
    let refused = post(&server.url, &list)
        .bearer_auth("tok-alice")
        .header("mcp-session-id", &session)
        .send()
        .await?;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["connection"], "close");
    let body = refused.text().await?;
    assert!(body.contains("TWOBOT_MAX_INFLIGHT_PER_PRINCIPAL"), "{body}");

    let served = post(&server.url, &list)
        .bearer_auth("tok-bob")
        .header("mcp-session-id", &bob_session)
        .send()
        .await?;
    assert_eq!(served.status(), 200);

    drop(streams);
    let start = Instant::now();
    loop {
        let again = post(&server.url, &list)
            .bearer_auth("tok-alice")
            .header("mcp-session-id", &session)
            .send()
            .await?;
        if again.status() == 200 {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(20),
            "closed streams never gave their places back: {}",
            again.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn background(
    client: &RunningService<RoleClient, Recorder>,
    prompt: &str,
) -> Result<rmcp::model::CallToolResult> {
    call(client, json!({"prompt": prompt, "background": true})).await
}

fn run_id(result: &rmcp::model::CallToolResult) -> Result<String> {
    anyhow::ensure!(result.is_error == Some(false), "{}", text(result));
    Ok(structured(result)["run_id"]
        .as_str()
        .context("run_id")?
        .to_owned())
}

async fn finished(client: &RunningService<RoleClient, Recorder>, id: &str) -> Result<Value> {
    let r = tool(
        client,
        "get_codex_run",
        json!({"run_id": id, "wait_sec": 30}),
    )
    .await?;
    let s = structured(&r);
    anyhow::ensure!(s["status"] == "completed", "{s}");
    Ok(s)
}

async fn gone(client: &RunningService<RoleClient, Recorder>, id: &str) -> Result<bool> {
    let r = tool(
        client,
        "get_codex_run",
        json!({"run_id": id, "wait_sec": 0}),
    )
    .await?;
    Ok(r.is_error == Some(true) && text(&r).contains("no run"))
}

crate::both_stores!(finished_runs_are_evicted_before_anyone_is_refused);
/// Finished runs make room before anyone is refused: Alice's own oldest first when she
/// is over her share, anyone's oldest when the registry is full; only running runs
/// lead to a refusal, which names the quota or the cap.
async fn finished_runs_are_evicted_before_anyone_is_refused() -> Result<()> {
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", TOKENS),
        ("TWOBOT_ENABLE_BACKGROUND_RUNS", "true"),
        ("TWOBOT_MAX_RUNS", "3"),
        ("TWOBOT_MAX_RUNS_PER_PRINCIPAL", "2"),
    ])
    .await?;
    let alice = http_client(&server.url, Some("tok-alice")).await?;
    let bob = http_client(&server.url, Some("tok-bob")).await?;

    let r1 = run_id(&background(&alice, "scenario:ok").await?)?;
    finished(&alice, &r1).await?;
    let r2 = run_id(&background(&alice, "scenario:ok").await?)?;
    finished(&alice, &r2).await?;
    // Over her share: her oldest finished run makes room.
    let r3 = run_id(&background(&alice, "scenario:ok").await?)?;
    finished(&alice, &r3).await?;
    assert!(
        gone(&alice, &r1).await?,
        "her oldest finished run is evicted"
    );
    finished(&alice, &r2).await?;

    // The registry fills with Alice's finished runs and Bob's running ones: Bob is
    // not refused while a finished run can go.
    let b1 = run_id(&background(&bob, "scenario:hang").await?)?;
    let b2 = run_id(&background(&bob, "scenario:hang").await?)?;
    assert!(
        gone(&alice, &r2).await?,
        "the oldest finished run made room for Bob"
    );
    // Bob's share is two running runs: refused with the quota, nothing evicted.
    let b3 = background(&bob, "scenario:ok").await?;
    assert_eq!(b3.is_error, Some(true));
    assert!(
        text(&b3).contains("TWOBOT_MAX_RUNS_PER_PRINCIPAL"),
        "{}",
        text(&b3)
    );
    finished(&alice, &r3).await?;

    // Registry full: Alice's own finished run goes for her next one.
    let a4 = run_id(&background(&alice, "scenario:hang").await?)?;
    assert!(gone(&alice, &r3).await?);
    // Full of running runs only: refused with the cap.
    let a5 = background(&alice, "scenario:ok").await?;
    assert_eq!(a5.is_error, Some(true));
    assert!(text(&a5).contains("TWOBOT_MAX_RUNS)"), "{}", text(&a5));

    for (client, id) in [(&bob, &b1), (&bob, &b2), (&alice, &a4)] {
        tool(client, "cancel_codex_run", json!({"run_id": id})).await?;
    }
    Ok(())
}

/// 2 000 concurrent initializes by Alice; afterwards Bob presents every fresh session
/// id (DELETE) and must get 404 for each, while each still serves Alice.
#[tokio::test]
async fn no_fresh_session_of_one_principal_is_usable_by_another() -> Result<()> {
    const TRIES: usize = 2_000;
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", TOKENS),
        ("TWOBOT_MAX_SESSIONS", "4096"),
        ("TWOBOT_MAX_SESSIONS_PER_PRINCIPAL", "4096"),
        ("TWOBOT_RATE_LIMIT_PER_MINUTE", "1000000"),
        ("TWOBOT_RATE_LIMIT_BURST", "1000000"),
        ("TWOBOT_ADDRESS_RATE_PER_MINUTE", "1000000"),
        ("TWOBOT_ADDRESS_RATE_BURST", "1000000"),
        // Connections come and go from one loopback address faster than they close.
        ("TWOBOT_MAX_CONNECTIONS_PER_ADDRESS", "4096"),
        ("TWOBOT_LOG_LEVEL", "warn"),
        // The race needs one initialize to finish while another is between reading the
        // live sessions and recording its owner: more runtime threads than this
        // machine's cores make that interleaving common, as on a bigger server.
        ("TOKIO_WORKER_THREADS", "16"),
    ])
    .await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let gate = Arc::new(tokio::sync::Semaphore::new(32));
    let mut creating = Vec::new();
    for _ in 0..TRIES {
        let (http, url, gate) = (http.clone(), server.url.clone(), gate.clone());
        creating.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let response = http
                .post(&url)
                .bearer_auth("tok-alice")
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(initialize_body().to_string())
                .send()
                .await?;
            anyhow::ensure!(
                response.status() == 200,
                "initialize: {}",
                response.status()
            );
            let id = response
                .headers()
                .get("mcp-session-id")
                .context("session id")?
                .to_str()?
                .to_owned();
            anyhow::Ok(id)
        }));
    }
    let mut ids = Vec::new();
    for c in creating {
        ids.push(c.await??);
    }
    let mut usable_by_bob = 0;
    for chunk in ids.chunks(32) {
        let probes = chunk.iter().map(|id| {
            http.delete(&server.url)
                .bearer_auth("tok-bob")
                .header("mcp-session-id", id)
                .send()
        });
        for response in futures::future::join_all(probes).await {
            if response?.status() != 404 {
                usable_by_bob += 1;
            }
        }
    }
    assert_eq!(
        usable_by_bob, 0,
        "of {TRIES} fresh sessions of Alice's, Bob could use {usable_by_bob}"
    );
    // Each still serves Alice (spot-check a spread of them).
    for id in ids.iter().step_by(100) {
        let own = http
            .delete(&server.url)
            .bearer_auth("tok-alice")
            .header("mcp-session-id", id)
            .send()
            .await?;
        assert!(own.status().is_success(), "{}", own.status());
    }
    Ok(())
}
