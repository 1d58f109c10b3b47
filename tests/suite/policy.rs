//! Every policy refusal, through the real binary: a tool error naming parameter, value
//! and rule, and no Codex process started (the fake Codex recorded nothing).

use std::os::unix::fs::symlink;

use anyhow::Result;
use serde_json::{Value, json};

use crate::common::*;

async fn refused(server: &StdioServer, args: Value, expect: &[&str]) -> Result<()> {
    let r = call(&server.client, args.clone()).await?;
    assert_eq!(r.is_error, Some(true), "{args}: {r:?}");
    let t = text(&r);
    assert!(t.starts_with("refused by policy: "), "{args}: {t}");
    for part in expect {
        assert!(t.contains(part), "{args}: {t:?} lacks {part:?}");
    }
    assert!(
        recorded(&server.record)?.is_empty(),
        "{args}: Codex was spawned"
    );
    Ok(())
}

/// Each way out of the allowed roots, and each bad value, is refused before anything runs.
#[tokio::test]
async fn each_policy_violation_is_refused_without_spawning_codex() -> Result<()> {
    let server = spawn_stdio(Options {
        env: vec![
            ("TWOBOT_MAX_PROMPT_BYTES".into(), "1000".into()),
            ("TWOBOT_MAX_TIMEOUT_SEC".into(), "600".into()),
        ],
        ..Options::default()
    })
    .await?;
    let root = server.root.clone();
    let base = root.parent().unwrap().to_owned();
    std::fs::create_dir_all(root.join("app"))?;
    std::fs::create_dir_all(base.join("rootling"))?;
    std::fs::create_dir_all(base.join("secret"))?;
    std::fs::write(root.join("notes.txt"), "x")?;
    symlink(base.join("secret"), root.join("escape"))?;
    let sibling = base.join("rootling").display().to_string();

    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"prompt": "p", "cwd": "../secret"}),
            vec!["cwd = \"../secret\"", "outside the allowed roots"],
        ),
        (
            json!({"prompt": "p", "cwd": "app/../../secret"}),
            vec!["cwd", "outside the allowed roots"],
        ),
        (
            json!({"prompt": "p", "cwd": "escape"}),
            vec!["cwd = \"escape\"", "outside the allowed roots"],
        ),
        (
            json!({"prompt": "p", "cwd": sibling}),
            vec!["rootling", "outside the allowed roots"],
        ),
        (
            json!({"prompt": "p", "cwd": "notes.txt"}),
            vec!["cwd = \"notes.txt\"", "not a directory"],
        ),
        (
            json!({"prompt": "p", "cwd": "missing"}),
            vec!["cwd = \"missing\"", "no such directory"],
        ),
        (
            json!({"prompt": "p", "add_dirs": ["app", "escape"]}),
            vec!["add_dirs[1] = \"escape\"", "outside"],
        ),
        (
            json!({"prompt": "p", "add_dirs": ["--dangerously-bypass-approvals-and-sandbox"]}),
            vec!["add_dirs[0]", "must not start with '-'"],
        ),
        (
            json!({"prompt": "p", "model": "-c"}),
            vec!["model = \"-c\"", "must match"],
        ),
        (
            json!({"prompt": "p", "model": "gpt 5; rm -rf /"}),
            vec!["model", "must match"],
        ),
        (
            json!({"prompt": "p", "profile": "--sandbox=danger-full-access"}),
            vec!["profile", "must match"],
        ),
        (
            json!({"prompt": "p", "sandbox": "workspace-write"}),
            vec!["sandbox = \"workspace-write\"", "allow_edits=true"],
        ),
        (
            json!({"prompt": "p", "sandbox": "danger-full-access", "allow_edits": true}),
            vec![
                "sandbox = \"danger-full-access\"",
                "TWOBOT_ALLOW_DANGER_FULL_ACCESS",
            ],
        ),
        (
            json!({"prompt": "p", "timeout_sec": 0}),
            vec!["timeout_sec = 0", "between 1 and 600"],
        ),
        (
            json!({"prompt": "p", "timeout_sec": 601}),
            vec!["timeout_sec = 601"],
        ),
        (
            json!({"prompt": "p", "timeout_sec": -5}),
            vec!["timeout_sec = -5"],
        ),
        (json!({"prompt": ""}), vec!["prompt", "must not be empty"]),
        (
            json!({"prompt": "x".repeat(1001)}),
            vec!["prompt = <1001 bytes>", "at most 1000 bytes"],
        ),
    ];
    for (args, expect) in cases {
        refused(&server, args, &expect).await?;
    }
    server.client.cancel().await?;
    Ok(())
}

/// With the operator's consent, danger-full-access is allowed (and still needs allow_edits).
#[tokio::test]
async fn danger_full_access_needs_the_operator_and_allow_edits() -> Result<()> {
    let server = spawn_stdio(Options {
        env: vec![("TWOBOT_ALLOW_DANGER_FULL_ACCESS".into(), "true".into())],
        ..Options::default()
    })
    .await?;
    refused(
        &server,
        json!({"prompt": "p", "sandbox": "danger-full-access"}),
        &["allow_edits=true"],
    )
    .await?;
    let r = call(
        &server.client,
        json!({"prompt": "scenario:ok", "sandbox": "danger-full-access", "allow_edits": true}),
    )
    .await?;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    assert!(
        only_run(&server.record)?
            .argv
            .contains(&"danger-full-access".to_owned())
    );
    server.client.cancel().await?;
    Ok(())
}

/// The policy file's ceiling and model list apply; the environment overrides the file.
#[tokio::test]
async fn the_policy_file_narrows_what_calls_may_do() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("policy.toml");
    std::fs::write(
        &file,
        "sandbox_ceiling = \"read-only\"\nallowed_models = [\"gpt-5\"]\nmax_timeout_sec = 100\n",
    )?;
    let server = spawn_stdio(Options {
        env: vec![
            ("TWOBOT_POLICY_FILE".into(), file.display().to_string()),
            ("TWOBOT_MAX_TIMEOUT_SEC".into(), "50".into()),
        ],
        ..Options::default()
    })
    .await?;
    refused(
        &server,
        json!({"prompt": "p", "sandbox": "workspace-write", "allow_edits": true}),
        &["above the sandbox this caller may use (read-only)"],
    )
    .await?;
    refused(
        &server,
        json!({"prompt": "p", "model": "o3"}),
        &["model = \"o3\"", "allowed: gpt-5"],
    )
    .await?;
    refused(
        &server,
        json!({"prompt": "p", "timeout_sec": 60}),
        &["between 1 and 50"],
    )
    .await?;
    let r = call(
        &server.client,
        json!({"prompt": "scenario:ok", "model": "gpt-5", "timeout_sec": 50}),
    )
    .await?;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    let log = std::fs::read_to_string(&server.log)?;
    assert!(
        log.contains("effective policy"),
        "the effective policy is logged at start-up"
    );
    server.client.cancel().await?;
    Ok(())
}

/// Issue 19 point 10: through a symlink in the root, `etc/shadow` was refused as
/// "outside the roots" but `etc/no-such-file` as "no such file", an oracle for what
/// exists in `/etc`. Every refusal of a path that crossed a symlink now reads the same,
/// for `cwd`, `add_dirs` and `images` alike, and nothing is started.
#[tokio::test]
async fn a_path_through_a_symlink_is_refused_in_the_same_words_whether_its_target_exists()
-> Result<()> {
    let server = spawn_stdio(Options::default()).await?;
    symlink("/etc", server.root.join("etc"))?;
    let targets = [
        "etc/shadow",
        "etc/passwd",
        "etc/no-such-file",
        "etc/no/such",
    ];
    for (param, make) in [
        (
            "cwd",
            (|p: &str| json!({"prompt": "p", "cwd": p})) as fn(&str) -> Value,
        ),
        ("add_dirs[0]", |p| json!({"prompt": "p", "add_dirs": [p]})),
        ("images[0]", |p| json!({"prompt": "p", "images": [p]})),
    ] {
        let mut said = std::collections::BTreeSet::new();
        for target in targets {
            let r = call(&server.client, make(target)).await?;
            assert_eq!(r.is_error, Some(true), "{param} {target}: {r:?}");
            let t = text(&r);
            let prefix = format!("refused by policy: {param} = {target:?}: ");
            let rest = t
                .strip_prefix(&prefix)
                .ok_or_else(|| anyhow::anyhow!("{t}"))?;
            assert!(rest.contains("outside the allowed roots"), "{t}");
            said.insert(rest.to_owned());
        }
        assert_eq!(said.len(), 1, "{param}: {said:?}");
    }
    assert!(recorded(&server.record)?.is_empty(), "Codex was spawned");
    server.client.cancel().await?;
    Ok(())
}
