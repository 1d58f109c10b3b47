//! Codex's own features through `run_codex_prompt` (issue 13, point 4): reasoning
//! effort, images, an output schema, a code review and a forked thread, each with the
//! real Codex 0.169 against the mock Responses API. Every test asserts what reached the
//! model (the request body) and what the caller reads; refusals assert that nothing ran.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::common::http::*;
use crate::common::mock_responses::{MockResponses, exec_command, message};
use crate::common::*;

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0xfc, 0xcf, 0xc0, 0x50,
    0x0f, 0x00, 0x04, 0x85, 0x01, 0x80, 0x84, 0xa9, 0x8c, 0x21, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// `2bot-mcp` on stdio with the real Codex pointed at `mock`, and `env` on top.
async fn real_server(
    mock: &MockResponses,
    env: Vec<(String, String)>,
) -> Result<(StdioServer, tempfile::TempDir)> {
    let codex = real_codex();
    assert!(
        codex.exists(),
        "{} is missing: run `npm ci` in the repository root (`bash scripts/test` does)",
        codex.display()
    );
    let home = tempfile::tempdir()?;
    mock.write_codex_home(home.path())?;
    let mut env = env;
    env.push(("CODEX_HOME".into(), home.path().display().to_string()));
    let server = spawn_stdio(Options { codex, env }).await?;
    Ok((server, home))
}

/// The user-role content items of a request body.
fn user_content(request: &Value) -> Vec<Value> {
    request["input"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "user")
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .collect()
}

crate::both_backends!(the_reasoning_effort_reaches_the_model_and_absent_leaves_codexs_own);
async fn the_reasoning_effort_reaches_the_model_and_absent_leaves_codexs_own() -> Result<()> {
    let mock =
        MockResponses::start(vec![vec![message("thought hard")], vec![message("ok")]]).await?;
    let (server, _home) = real_server(&mock, vec![]).await?;
    let r = call(
        &server.client,
        json!({"prompt": "think", "reasoning_effort": "high", "skip_git_repo_check": true,
               "timeout_sec": 120}),
    )
    .await?;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    assert_eq!(text(&r), "thought hard");
    let argv = structured(&r)["argv"].to_string();
    assert!(
        argv.contains("model_reasoning_effort=\\\"high\\\""),
        "{argv}"
    );
    let plain = call(
        &server.client,
        json!({"prompt": "think", "skip_git_repo_check": true, "timeout_sec": 120}),
    )
    .await?;
    assert_eq!(plain.is_error, Some(false), "{}", text(&plain));
    let requests = mock.requests();
    assert_eq!(
        requests[0]["reasoning"]["effort"], "high",
        "{:#}",
        requests[0]
    );
    assert!(
        requests[1]["reasoning"].get("effort").is_none(),
        "{:#}",
        requests[1]
    );

    let bad = call(
        &server.client,
        json!({"prompt": "think", "reasoning_effort": "max"}),
    )
    .await?;
    assert_eq!(bad.is_error, Some(true));
    // The schema's enum, as the argument parser words it: what was sent and what is accepted.
    assert!(
        text(&bad).contains("unknown variant `max`") && text(&bad).contains("`xhigh`"),
        "{}",
        text(&bad)
    );
    server.client.cancel().await?;
    Ok(())
}

crate::both_backends!(
    an_image_inside_the_root_reaches_the_model_and_one_outside_never_starts_codex
);
async fn an_image_inside_the_root_reaches_the_model_and_one_outside_never_starts_codex()
-> Result<()> {
    let mock = MockResponses::start(vec![vec![message("a tiny image")]]).await?;
    let (server, _home) = real_server(&mock, vec![]).await?;
    std::fs::write(server.root.join("pixel.png"), PNG)?;
    let r = call(
        &server.client,
        json!({"prompt": "describe it", "images": ["pixel.png"], "skip_git_repo_check": true,
               "timeout_sec": 120}),
    )
    .await?;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    assert_eq!(text(&r), "a tiny image");
    // Codex got a private copy (opened beneath the root, so a name swapped after the
    // check cannot reach outside it), removed once the run ended: named by `--image` on
    // exec's argv; on app-server a `localImage` input, whose copy is gone the same way.
    let argv = structured(&r)["argv"].to_string();
    if backend() == "exec" {
        let copy = argv
            .split('"')
            .find_map(|a| a.strip_prefix("--image="))
            .with_context(|| format!("no --image in {argv}"))?
            .to_owned();
        assert!(
            copy.contains("2bot-images-") && copy.ends_with(".png"),
            "{copy}"
        );
        assert!(!std::path::Path::new(&copy).exists(), "{copy} left behind");
    } else {
        assert!(
            argv.contains("app-server") && !argv.contains("--image"),
            "{argv}"
        );
    }
    let content = user_content(&mock.requests()[0]);
    let image = content
        .iter()
        .find(|c| c["type"] == "input_image")
        .with_context(|| format!("no input_image in {content:#?}"))?;
    let url = image["image_url"].as_str().unwrap_or_default();
    assert!(url.starts_with("data:image/png;base64,"), "{url}");
    assert!(content.iter().any(|c| {
        c["text"]
            .as_str()
            .is_some_and(|t| t.contains("describe it"))
    }));

    let outside = tempfile::tempdir()?;
    let secret = outside.path().join("secret.png");
    std::fs::write(&secret, PNG)?;
    std::os::unix::fs::symlink(&secret, server.root.join("link.png"))?;
    for path in [secret.display().to_string(), "link.png".to_owned()] {
        let refused = call(
            &server.client,
            json!({"prompt": "describe it", "images": [path]}),
        )
        .await?;
        assert_eq!(refused.is_error, Some(true));
        let t = text(&refused);
        assert!(
            t.starts_with("refused by policy: images[0] = ")
                && t.contains("outside the allowed roots"),
            "{t}"
        );
        assert!(!t.contains(&outside.path().display().to_string()) || path.starts_with('/'));
    }
    let big = server.root.join("big.png");
    std::fs::write(&big, vec![0u8; 21 * 1024 * 1024])?;
    let refused = call(
        &server.client,
        json!({"prompt": "describe it", "images": ["big.png"]}),
    )
    .await?;
    assert!(
        text(&refused).contains("larger than 20971520 bytes"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        mock.requests().len(),
        1,
        "no refused call reached the model"
    );
    server.client.cancel().await?;
    Ok(())
}

crate::both_backends!(an_output_schema_reaches_the_model_and_a_json_answer_comes_back_as_output);
/// The schema reaches the model as the response format, a JSON answer comes back as
/// `output`, a prose answer gets a warning instead, and the schema file is gone (exec;
/// app-server takes the schema inline in `turn/start`, no file).
async fn an_output_schema_reaches_the_model_and_a_json_answer_comes_back_as_output() -> Result<()> {
    let mock = MockResponses::start(vec![
        vec![message("{\"answer\": 42, \"unit\": \"apples\"}")],
        vec![message("forty-two apples")],
    ])
    .await?;
    let (server, _home) = real_server(&mock, vec![]).await?;
    let schema = json!({
        "type": "object",
        "properties": {"answer": {"type": "integer"}, "unit": {"type": "string"}},
        "required": ["answer", "unit"],
        "additionalProperties": false
    });
    let args = json!({"prompt": "how many?", "output_schema": schema,
                      "skip_git_repo_check": true, "timeout_sec": 120});
    let r = call(&server.client, args.clone()).await?;
    let s = structured(&r);
    assert_eq!(r.is_error, Some(false), "{}\n{s:#}", text(&r));
    assert_eq!(s["output"], json!({"answer": 42, "unit": "apples"}));
    let format = &mock.requests()[0]["text"]["format"];
    assert_eq!(format["type"], "json_schema", "{format:#}");
    assert_eq!(format["schema"], schema, "{format:#}");
    let argv: Vec<String> = serde_json::from_value(s["argv"].clone())?;
    if backend() == "exec" {
        let file = argv
            .iter()
            .position(|a| a == "--output-schema")
            .and_then(|i| argv.get(i + 1))
            .context("--output-schema on argv")?;
        assert!(
            !std::path::Path::new(file).exists(),
            "{file} outlived its run"
        );
    } else {
        assert!(!argv.iter().any(|a| a == "--output-schema"), "{argv:?}");
    }

    let prose = call(&server.client, args).await?;
    let s = structured(&prose);
    assert_eq!(prose.is_error, Some(false), "{}", text(&prose));
    assert_eq!(text(&prose), "forty-two apples");
    assert!(s.get("output").is_none(), "{s:#}");
    assert!(
        s["warnings"]
            .to_string()
            .contains("output_schema: the final message is not JSON"),
        "{s:#}"
    );
    server.client.cancel().await?;
    Ok(())
}

/// A git repository in the root with one committed and one uncommitted change.
fn git_repo(root: &std::path::Path) -> Result<String> {
    let git = |args: &[&str]| -> Result<String> {
        let out = std::process::Command::new("git")
            .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
            .args(args)
            .current_dir(root)
            .output()?;
        anyhow::ensure!(out.status.success(), "git {args:?}: {out:?}");
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    git(&["init", "-q", "-b", "main"])?;
    std::fs::write(root.join("lib.rs"), "fn a() {}\n")?;
    git(&["add", "."])?;
    git(&["commit", "-q", "-m", "first"])?;
    std::fs::write(root.join("lib.rs"), "fn a() { panic!() }\n")?;
    git(&["rev-parse", "HEAD"])
}

crate::both_backends!(a_review_runs_read_only_with_its_target_and_a_custom_review_sends_the_prompt);
/// A review of a target runs `codex exec review` under read-only (a write the model
/// asks for does not land), with Codex's review instructions, and the caller is told
/// the prompt was not sent; a custom review sends the prompt as its instructions.
async fn a_review_runs_read_only_with_its_target_and_a_custom_review_sends_the_prompt() -> Result<()>
{
    let mock = MockResponses::start(vec![
        vec![exec_command("touch review-wrote.txt")],
        vec![message("no findings")],
        vec![message("custom findings")],
        vec![message("commit findings")],
    ])
    .await?;
    let (server, _home) = real_server(&mock, vec![]).await?;
    let head = git_repo(&server.root)?;
    let r = call(
        &server.client,
        json!({"prompt": "look closely", "review": {"uncommitted": true}, "timeout_sec": 120}),
    )
    .await?;
    let s = structured(&r);
    assert_eq!(r.is_error, Some(false), "{}\n{s:#}", text(&r));
    assert!(text(&r).starts_with("no findings"), "{}", text(&r));
    let argv: Vec<String> = serde_json::from_value(s["argv"].clone())?;
    // exec says the review on its argv; app-server in `review/start` (the target reaching
    // the model is asserted below for both).
    if backend() == "exec" {
        let review = argv.iter().position(|a| a == "review").context("review")?;
        assert_eq!(
            argv[review - 2..review],
            // The root, at its private name in the run's mount namespace.
            ["-C".to_owned(), "/mnt/root".to_owned()]
        );
        assert_eq!(argv.last().map(String::as_str), Some("--uncommitted"));
    }
    assert!(!server.root.join("review-wrote.txt").exists(), "{s:#}");
    assert!(
        s["warnings"]
            .to_string()
            .contains("the prompt was not sent"),
        "{s:#}"
    );
    let first = mock.requests()[0].to_string();
    assert!(first.contains("Review guidelines"), "{first}");
    assert!(!first.contains("look closely"), "{first}");

    let custom = call(
        &server.client,
        json!({"prompt": "FOCUS-ON-PANICS in lib.rs", "review": {"custom": true},
               "timeout_sec": 120}),
    )
    .await?;
    assert_eq!(custom.is_error, Some(false), "{}", text(&custom));
    assert_eq!(text(&custom), "custom findings");
    let requests = mock.requests();
    assert!(
        requests[requests.len() - 1]
            .to_string()
            .contains("FOCUS-ON-PANICS in lib.rs"),
        "the custom review's prompt reached the model"
    );

    let commit = call(
        &server.client,
        json!({"prompt": "x", "review": {"commit": head}, "timeout_sec": 120}),
    )
    .await?;
    assert_eq!(commit.is_error, Some(false), "{}", text(&commit));
    let last = mock
        .requests()
        .last()
        .map(Value::to_string)
        .unwrap_or_default();
    assert!(last.contains(&head), "the commit reached the model: {last}");

    let before = mock.requests().len();
    let cases = [
        (
            json!({"base": "--output=/tmp/x"}),
            "review.base = \"--output=/tmp/x\": must be a branch name",
        ),
        (
            json!({"commit": "HEAD~1"}),
            "review.commit = \"HEAD~1\": must be a commit SHA",
        ),
        (json!({"uncommitted": true, "base": "main"}), "review = "),
        (json!({}), "must be exactly one of"),
    ];
    for (review, expected) in cases {
        let r = call(&server.client, json!({"prompt": "x", "review": review})).await?;
        assert_eq!(r.is_error, Some(true));
        assert!(text(&r).contains(expected), "{review}: {}", text(&r));
    }
    let writing = call(
        &server.client,
        json!({"prompt": "x", "review": {"uncommitted": true}, "sandbox": "workspace-write",
               "allow_edits": true}),
    )
    .await?;
    assert!(
        text(&writing)
            .contains("reviews run at most read-only on this server ([features] review_sandbox)"),
        "{}",
        text(&writing)
    );
    assert_eq!(
        mock.requests().len(),
        before,
        "no refused review reached the model"
    );
    server.client.cancel().await?;
    Ok(())
}

crate::both_backends!(only_the_owner_forks_a_thread_and_the_fork_is_a_new_thread_they_own);
/// Over authenticated HTTP only the owner of a thread may fork it; the fork is a new
/// thread that carries the conversation and belongs to whoever forked it.
async fn only_the_owner_forks_a_thread_and_the_fork_is_a_new_thread_they_own() -> Result<()> {
    let mock = MockResponses::start(vec![
        vec![message("noted: pineapple")],
        vec![message("forked: it was pineapple")],
        vec![message("fork resumed")],
    ])
    .await?;
    let home = tempfile::tempdir()?;
    mock.write_codex_home(home.path())?;
    let state = tempfile::tempdir()?;
    let (home_dir, state_dir) = (
        home.path().display().to_string(),
        state.path().display().to_string(),
    );
    let codex = real_codex().display().to_string();
    let server = spawn_http(&[
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", "alice:tok-alice,bob:tok-bob"),
        ("TWOBOT_STATE_DIR", state_dir.as_str()),
        ("CODEX_BIN", codex.as_str()),
        ("CODEX_HOME", home_dir.as_str()),
    ])
    .await?;
    let alice = http_client(&server.url, Some("tok-alice")).await?;
    let bob = http_client(&server.url, Some("tok-bob")).await?;
    let first = call(
        &alice,
        json!({"prompt": "remember the word pineapple", "ephemeral": false,
               "skip_git_repo_check": true, "timeout_sec": 120}),
    )
    .await?;
    assert_eq!(first.is_error, Some(false), "{}", text(&first));
    let thread = structured(&first)["thread_id"]
        .as_str()
        .context("thread")?
        .to_owned();

    let stolen = call(
        &bob,
        json!({"prompt": "which word?", "thread_id": thread, "fork": true}),
    )
    .await?;
    assert_eq!(stolen.is_error, Some(true));
    assert!(
        text(&stolen).contains("only your own threads"),
        "{}",
        text(&stolen)
    );
    assert_eq!(
        mock.requests().len(),
        1,
        "bob's fork never reached the model"
    );

    let fork = call(
        &alice,
        json!({"prompt": "which word?", "thread_id": thread, "fork": true, "ephemeral": false,
               "skip_git_repo_check": true, "timeout_sec": 120}),
    )
    .await?;
    let s = structured(&fork);
    assert_eq!(fork.is_error, Some(false), "{}\n{s:#}", text(&fork));
    assert_eq!(text(&fork), "forked: it was pineapple");
    let forked = s["thread_id"].as_str().context("fork's thread")?.to_owned();
    assert_ne!(forked, thread, "a fork is a new thread");
    // exec forks on its argv (`exec fork`); app-server with `thread/fork` (no argv trace).
    if backend() == "exec" {
        assert!(s["argv"].to_string().contains("\"fork\""), "{s:#}");
    }
    let sent = mock.requests()[1]["input"].to_string();
    assert!(
        sent.contains("remember the word pineapple") && sent.contains("which word?"),
        "the fork carries the conversation: {sent}"
    );

    let resumed_by_bob = call(&bob, json!({"prompt": "x", "thread_id": forked})).await?;
    assert_eq!(
        resumed_by_bob.is_error,
        Some(true),
        "{}",
        text(&resumed_by_bob)
    );
    let resumed = call(
        &alice,
        json!({"prompt": "again", "thread_id": forked, "skip_git_repo_check": true,
               "timeout_sec": 120}),
    )
    .await?;
    assert_eq!(resumed.is_error, Some(false), "{}", text(&resumed));
    assert_eq!(structured(&resumed)["thread_id"], forked.as_str());
    alice.cancel().await?;
    bob.cancel().await?;
    Ok(())
}

/// A policy file can forbid each feature; the refusal names the parameter and the
/// `[features]` rule, and Codex never starts.
#[tokio::test]
async fn a_policy_file_forbids_each_feature_with_a_refusal_naming_the_rule() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[features]\nreasoning_effort = [\"low\"]\nimages = false\noutput_schema = false\nreview = false\nfork = false\n",
    )?;
    let server = spawn_stdio(Options {
        env: vec![("TWOBOT_POLICY_FILE".into(), policy.display().to_string())],
        ..Options::default()
    })
    .await?;
    std::fs::write(server.root.join("pixel.png"), PNG)?;
    let cases = [
        (
            json!({"reasoning_effort": "high"}),
            "refused by policy: reasoning_effort = \"high\": not allowed by the server's policy (allowed: low)",
        ),
        (
            json!({"images": ["pixel.png"]}),
            "refused by policy: images = \"pixel.png\": not allowed by the server's policy ([features] images = false)",
        ),
        (
            json!({"output_schema": {"type": "object"}}),
            "refused by policy: output_schema = <17 bytes>: not allowed by the server's policy ([features] output_schema = false)",
        ),
        (
            json!({"review": {"uncommitted": true}}),
            "refused by policy: review = {\"uncommitted\":true}: not allowed by the server's policy ([features] review = false)",
        ),
        (
            json!({"thread_id": "0199a213-81c0-7800-8aa1-bbab2a035a53", "fork": true}),
            "refused by policy: fork = true: not allowed by the server's policy ([features] fork = false)",
        ),
        (
            json!({"fork": true}),
            "refused by policy: fork = true: fork=true needs thread_id, the thread to fork",
        ),
    ];
    for (mut args, expected) in cases {
        args["prompt"] = json!("scenario:ok");
        let r = call(&server.client, args.clone()).await?;
        assert_eq!(r.is_error, Some(true), "{args}");
        assert_eq!(text(&r), expected, "{args}");
    }
    let allowed = call(
        &server.client,
        json!({"prompt": "scenario:ok", "reasoning_effort": "low"}),
    )
    .await?;
    assert_eq!(allowed.is_error, Some(false), "{}", text(&allowed));
    let run = only_run(&server.record)?;
    assert!(
        run.argv
            .contains(&"model_reasoning_effort=\"low\"".to_owned()),
        "{:?}",
        run.argv
    );
    server.client.cancel().await?;
    Ok(())
}
