//! Resuming threads: argv, ownership over authenticated HTTP, ephemeral threads.

use anyhow::Result;
use serde_json::json;

use crate::common::http::*;
use crate::common::inproc::serve_in_process;
use crate::common::*;

crate::both_backends!(only_the_principal_who_started_a_thread_can_resume_it);
async fn only_the_principal_who_started_a_thread_can_resume_it() -> Result<()> {
    let state = tempfile::tempdir()?;
    let state_dir = state.path().display().to_string();
    let env = [
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", "alice:tok-alice,bob:tok-bob"),
        ("TWOBOT_STATE_DIR", state_dir.as_str()),
    ];
    let server = serve_in_process(&env).await?;
    let alice = http_client(&server.url, Some("tok-alice")).await?;
    let bob = http_client(&server.url, Some("tok-bob")).await?;

    let first = call(&alice, json!({"prompt": "scenario:ok", "ephemeral": false})).await?;
    let thread = structured(&first)["thread_id"].as_str().unwrap().to_owned();

    // Bob holds the id but not the thread.
    let stolen = call(&bob, json!({"prompt": "scenario:ok", "thread_id": thread})).await?;
    assert_eq!(stolen.is_error, Some(true));
    let msg = text(&stolen);
    assert!(
        msg.contains("thread_id") && msg.contains("only your own threads"),
        "{msg}"
    );
    // A thread 2Bot never started is not resumable by an authenticated caller either.
    let unknown = call(
        &bob,
        json!({"prompt": "scenario:ok", "thread_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"}),
    )
    .await?;
    assert_eq!(unknown.is_error, Some(true));
    let runs_before = recorded(&server.record)?.len();

    // Alice resumes: `codex exec resume`, the sandbox as config, the id after `--`.
    let resumed = call(
        &alice,
        json!({"prompt": "scenario:ok", "thread_id": thread, "ephemeral": false}),
    )
    .await?;
    assert_eq!(resumed.is_error, Some(false), "{}", text(&resumed));
    assert_eq!(structured(&resumed)["thread_id"], thread.as_str());
    let runs = recorded(&server.record)?;
    assert_eq!(
        runs.len(),
        runs_before + 1,
        "the refused resumes spawned nothing"
    );
    let argv = &runs
        .iter()
        .find(|r| r.argv.contains(&"resume".to_owned()))
        .unwrap()
        .argv;
    let tail: Vec<&str> = argv[argv.len() - 3..].iter().map(String::as_str).collect();
    assert_eq!(tail, ["--", thread.as_str(), "-"]);
    assert!(
        argv.contains(&"sandbox_mode=\"read-only\"".to_owned()),
        "{argv:?}"
    );
    // `-s` is an `exec` flag, before `resume` (which rejects it); no `-C` at all.
    assert_eq!(argv[..4], ["exec", "-s", "read-only", "resume"], "{argv:?}");
    assert!(!argv.contains(&"-C".to_owned()), "{argv:?}");

    // An ephemeral thread (the default) cannot be resumed, and the error says why.
    let eph = call(&alice, json!({"prompt": "scenario:ok"})).await?;
    let eph_thread = structured(&eph)["thread_id"].as_str().unwrap().to_owned();
    let again = call(
        &alice,
        json!({"prompt": "scenario:ok", "thread_id": eph_thread}),
    )
    .await?;
    assert_eq!(again.is_error, Some(true));
    assert!(text(&again).contains("ephemeral=true"), "{}", text(&again));

    // Hostile ids never reach Codex.
    for bad in ["--last", "../../x", "-c", "a b"] {
        let r = call(&alice, json!({"prompt": "scenario:ok", "thread_id": bad})).await?;
        assert_eq!(r.is_error, Some(true), "{bad}");
        assert!(text(&r).contains("thread_id"), "{bad}: {}", text(&r));
    }
    alice.cancel().await?;
    bob.cancel().await?;
    drop(server);

    // The record survives a restart.
    let server = serve_in_process(&env).await?;
    let bob = http_client(&server.url, Some("tok-bob")).await?;
    let r = call(&bob, json!({"prompt": "scenario:ok", "thread_id": thread})).await?;
    assert_eq!(r.is_error, Some(true));
    let alice = http_client(&server.url, Some("tok-alice")).await?;
    let r = call(
        &alice,
        json!({"prompt": "scenario:ok", "thread_id": thread}),
    )
    .await?;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    Ok(())
}
