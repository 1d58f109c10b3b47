//! Background runs for clients without MCP tasks: run_codex_prompt(background=true),
//! get_codex_run (long poll), cancel_codex_run; ownership, bounds, expiry.

use std::time::{Duration, Instant};

use anyhow::Result;
use rmcp::RoleClient;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use serde_json::{Value, json};

use crate::common::http::*;
use crate::common::inproc::serve_in_process;
use crate::common::*;

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

const TOKENS: &str = "alice:tok-alice,bob:tok-bob";

#[tokio::test]
async fn background_runs_are_off_by_default_and_the_tool_list_stays_the_seeds() -> Result<()> {
    let server = serve_in_process(&[]).await?;
    let client = http_client(&server.url, None).await?;
    let tools = client.list_all_tools().await?;
    assert_eq!(tools.len(), 1);
    assert!(
        tools[0]
            .input_schema
            .get("properties")
            .unwrap()
            .get("background")
            .is_none()
    );
    let r = call(
        &client,
        json!({"prompt": "scenario:ok", "background": true}),
    )
    .await?;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains("TWOBOT_ENABLE_BACKGROUND_RUNS"),
        "{}",
        text(&r)
    );
    let r = tool(&client, "get_codex_run", json!({"run_id": "x"})).await;
    assert!(r.is_err(), "get_codex_run is not a tool here");
    client.cancel().await?;
    Ok(())
}

crate::both_stores!(a_long_background_run_is_followed_to_completion_and_hidden_from_others);
/// A 90 s run, followed to the end with polls that each return within 55 s.
async fn a_long_background_run_is_followed_to_completion_and_hidden_from_others() -> Result<()> {
    let server = serve_in_process(&[
        ("TWOBOT_ENABLE_BACKGROUND_RUNS", "true"),
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", TOKENS),
        ("FAKE_CODEX_QUIET_SEC", "90"),
    ])
    .await?;
    let alice = http_client(&server.url, Some("tok-alice")).await?;
    let bob = http_client(&server.url, Some("tok-bob")).await?;
    let names: Vec<String> = alice
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "run_codex_prompt",
            "get_codex_run",
            "cancel_codex_run",
            "steer_codex_run",
            "answer_codex_approval"
        ]
    );

    let started = Instant::now();
    let r = call(
        &alice,
        json!({"prompt": "scenario:quiet", "background": true}),
    )
    .await?;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "background start returns at once"
    );
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    let s = structured(&r);
    assert_eq!(s["status"], "working");
    let run_id = s["run_id"].as_str().unwrap().to_owned();

    // Bob cannot see, cancel, steer or answer it.
    for (name, args) in [
        ("get_codex_run", json!({"run_id": run_id})),
        ("cancel_codex_run", json!({"run_id": run_id})),
        (
            "steer_codex_run",
            json!({"run_id": run_id, "message": "stop"}),
        ),
        (
            "answer_codex_approval",
            json!({"run_id": run_id, "approval_id": "a1", "token": "t", "decision": "approve"}),
        ),
    ] {
        let r = tool(&bob, name, args).await?;
        assert_eq!(r.is_error, Some(true));
        assert!(text(&r).contains("no run"), "{name}: {}", text(&r));
    }

    let mut polls = 0;
    let done = loop {
        let t = Instant::now();
        let r = tool(
            &alice,
            "get_codex_run",
            json!({"run_id": run_id, "wait_sec": 55}),
        )
        .await?;
        assert!(
            t.elapsed() <= Duration::from_secs(57),
            "a poll took {:?}",
            t.elapsed()
        );
        polls += 1;
        let s = structured(&r);
        if s["status"] != "working" {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "never finished"
        );
    };
    assert!(polls >= 2, "a 90 s run needs more than one 55 s poll");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["result"]["final_message"], "after silence");
    assert_eq!(done["result"]["ok"], true);
    assert!(started.elapsed() >= Duration::from_secs(85));
    alice.cancel().await?;
    bob.cancel().await?;
    Ok(())
}

crate::both_stores!(cancelling_a_background_run_kills_codex_and_keeps_the_partial_result);
async fn cancelling_a_background_run_kills_codex_and_keeps_the_partial_result() -> Result<()> {
    let server = serve_in_process(&[("TWOBOT_ENABLE_BACKGROUND_RUNS", "true")]).await?;
    let client = http_client(&server.url, None).await?;
    let r = call(
        &client,
        json!({"prompt": "scenario:hang", "background": true}),
    )
    .await?;
    let run_id = structured(&r)["run_id"].as_str().unwrap().to_owned();
    let HangingRun { codex, grandchild } = hanging_run(&server.record).await?;

    let progress = tool(
        &client,
        "get_codex_run",
        json!({"run_id": run_id, "wait_sec": 1}),
    )
    .await?;
    let p = structured(&progress);
    assert_eq!(p["status"], "working");
    assert!(
        p["progress"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().contains("sleep 300")),
        "{p}"
    );

    let r = tool(&client, "cancel_codex_run", json!({"run_id": run_id})).await?;
    let s = structured(&r);
    assert_eq!(s["status"], "cancelled", "{s}");
    assert_eq!(s["result"]["cancelled"], true);
    assert!(
        gone_within(&codex, Duration::from_secs(10)).await,
        "codex survived"
    );
    assert!(
        gone_within(&grandchild, Duration::from_secs(10)).await,
        "grandchild survived"
    );
    // Still fetchable afterwards.
    let again = tool(
        &client,
        "get_codex_run",
        json!({"run_id": run_id, "wait_sec": 0}),
    )
    .await?;
    assert_eq!(structured(&again)["status"], "cancelled");
    client.cancel().await?;
    Ok(())
}

crate::both_stores!(the_registry_is_bounded_refusals_are_immediate_and_finished_runs_expire);
async fn the_registry_is_bounded_refusals_are_immediate_and_finished_runs_expire() -> Result<()> {
    let server = serve_in_process(&[
        ("TWOBOT_ENABLE_BACKGROUND_RUNS", "true"),
        ("TWOBOT_MAX_RUNS", "2"),
        ("TWOBOT_TASK_TTL_SEC", "2"),
    ])
    .await?;
    let client = http_client(&server.url, None).await?;

    // A policy refusal is answered at once and takes no place.
    let r = call(
        &client,
        json!({"prompt": "scenario:ok", "background": true, "cwd": "/etc"}),
    )
    .await?;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("cwd"), "{}", text(&r));

    let a = call(
        &client,
        json!({"prompt": "scenario:hang", "background": true}),
    )
    .await?;
    // Still running when c asks (a finished run would be evicted to make room).
    let b = call(
        &client,
        json!({"prompt": "scenario:hang", "background": true, "timeout_sec": 5}),
    )
    .await?;
    let c = call(
        &client,
        json!({"prompt": "scenario:ok", "background": true}),
    )
    .await?;
    assert_eq!(a.is_error, Some(false));
    assert_eq!(b.is_error, Some(false));
    assert_eq!(c.is_error, Some(true));
    assert!(text(&c).contains("TWOBOT_MAX_RUNS"), "{}", text(&c));

    // The finished run expires after the TTL and frees its place; the running one stays.
    let b_id = structured(&b)["run_id"].as_str().unwrap().to_owned();
    let done = tool(
        &client,
        "get_codex_run",
        json!({"run_id": b_id, "wait_sec": 20}),
    )
    .await?;
    assert_eq!(structured(&done)["status"], "failed");
    assert_eq!(structured(&done)["result"]["timed_out"], true);
    // Polled, not slept: expiry is the server's clock (a 1 s TTL, swept at its pace).
    let deadline = Instant::now() + Duration::from_secs(15);
    let gone = loop {
        let now = tool(
            &client,
            "get_codex_run",
            json!({"run_id": b_id, "wait_sec": 0}),
        )
        .await?;
        // A failed run's snapshot is an error result too: wait for the expiry's text.
        if text(&now).contains("expired") || Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(gone.is_error, Some(true), "not expired within 15 s");
    assert!(text(&gone).contains("expired"), "{}", text(&gone));
    let d = call(
        &client,
        json!({"prompt": "scenario:ok", "background": true}),
    )
    .await?;
    assert_eq!(d.is_error, Some(false), "{}", text(&d));

    // Bad arguments get specific errors.
    let a_id = structured(&a)["run_id"].as_str().unwrap().to_owned();
    let r = tool(
        &client,
        "get_codex_run",
        json!({"run_id": a_id, "wait_sec": 56}),
    )
    .await?;
    assert!(text(&r).contains("between 0 and 55"), "{}", text(&r));
    let r = call(
        &client,
        json!({"prompt": "scenario:ok", "background": "yes"}),
    )
    .await?;
    assert!(
        text(&r).contains("background must be true or false"),
        "{}",
        text(&r)
    );
    tool(&client, "cancel_codex_run", json!({"run_id": a_id})).await?;
    client.cancel().await?;
    Ok(())
}

/// Many small runs: the registry never holds more than its cap and memory stays flat.
#[tokio::test]
async fn many_small_background_runs_keep_the_registry_and_memory_bounded() -> Result<()> {
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_BACKGROUND_RUNS", "true"),
        ("TWOBOT_MAX_RUNS", "20"),
        ("TWOBOT_TASK_TTL_SEC", "1"),
        ("TWOBOT_MAX_CONCURRENT_RUNS", "8"),
        ("TWOBOT_RATE_LIMIT_PER_MINUTE", "100000"),
        ("TWOBOT_RATE_LIMIT_BURST", "100000"),
        ("TWOBOT_ADDRESS_RATE_PER_MINUTE", "100000"),
        ("TWOBOT_ADDRESS_RATE_BURST", "100000"),
    ])
    .await?;
    let client = http_client(&server.url, None).await?;
    let pid = server.child.id().unwrap();
    let mut accepted = 0;
    let mut refused = 0;
    let mut baseline = None;
    for round in 0..10 {
        for _ in 0..20 {
            let r = call(
                &client,
                json!({"prompt": "scenario:ok", "background": true}),
            )
            .await?;
            if r.is_error == Some(true) {
                // Room (TWOBOT_MAX_RUNS*), or a slot: the server's or this caller's
                // share of the queue, on a machine slow enough to let runs pile up.
                let why = text(&r);
                assert!(
                    why.contains("TWOBOT_MAX_RUNS")
                        || why.starts_with("busy")
                        || why.contains("TWOBOT_MAX_QUEUED_RUNS_PER_PRINCIPAL"),
                    "{why}"
                );
                refused += 1;
            } else {
                accepted += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if round == 1 {
            baseline = current_rss_kib(pid);
        }
    }
    assert!(accepted >= 100, "accepted {accepted}, refused {refused}");
    let rss = current_rss_kib(pid).unwrap();
    let base = baseline.unwrap();
    assert!(
        rss < base + 20 * 1024,
        "RSS grew from {base} KiB to {rss} KiB"
    );
    client.cancel().await?;
    Ok(())
}
