//! Unit tests of the Codex feature parameters (images, reasoning effort, output schema,
//! fork, review), driven through [`crate::policy::check`] as a call would (apart from
//! features.rs so that file reads as the code).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::symlink;

use crate::policy::tests::{Expect, fixture, req, rule};
use crate::policy::{Rule, check};
use crate::run::{Principal, RunRequest, SandboxMode};
use crate::run::{ReasoningEffort, Review, ReviewRequest};

#[test]
fn images_inside_a_root_are_canonical_regular_files_and_everything_else_is_refused() {
    let fx = fixture();
    std::fs::write(fx.outside.join("secret.png"), "x").unwrap();
    std::fs::write(fx.root.join("a,b.png"), "x").unwrap();
    symlink(fx.outside.join("secret.png"), fx.root.join("out.png")).unwrap();
    let spec = check(
        &fx.policy,
        &Principal::Local,
        &req(|r| r.images = Some(vec!["app/../file.txt".into()])),
    )
    .unwrap();
    assert_eq!(spec.images, vec![fx.root.join("file.txt")]);
    let image = |path: &str| req(|r| r.images = Some(vec![path.to_owned()]));
    let outside = fx.outside.join("secret.png").display().to_string();
    let cases: Vec<(String, Expect)> = vec![
        (
            outside,
            Box::new(|r| matches!(r, Rule::OutsideRoots { .. })),
        ),
        (
            "out.png".into(),
            Box::new(|r| matches!(r, Rule::ThroughSymlink { .. })),
        ),
        (
            "app".into(),
            Box::new(|r| matches!(r, Rule::NotAFile { .. })),
        ),
        (
            "missing.png".into(),
            Box::new(|r| matches!(r, Rule::NoSuchFile { .. })),
        ),
        ("-i.png".into(), Box::new(|r| *r == Rule::FlagLike)),
        ("a,b.png".into(), Box::new(|r| *r == Rule::CommaInPath)),
    ];
    for (path, expect) in cases {
        let refusal = check(&fx.policy, &Principal::Local, &image(&path)).unwrap_err();
        assert_eq!(refusal.param, "images[0]", "{path}");
        assert!(expect(&refusal.rule), "{path}: {refusal}");
    }
}

#[test]
fn images_are_capped_in_number_and_size_and_can_be_switched_off() {
    let mut fx = fixture();
    std::fs::write(fx.root.join("big.png"), vec![0u8; 2048]).unwrap();
    fx.policy.features.max_image_bytes = 1024;
    fx.policy.features.max_images = 2;
    let r = |n: usize, name: &str| req(|r| r.images = Some(vec![name.to_owned(); n]));
    assert_eq!(
        rule(&fx.policy, &r(1, "big.png")),
        Rule::ImageTooLarge { max: 1024 }
    );
    assert_eq!(
        rule(&fx.policy, &r(3, "file.txt")),
        Rule::TooManyImages { max: 2 }
    );
    assert!(check(&fx.policy, &Principal::Local, &r(2, "file.txt")).is_ok());
    fx.policy.features.images = false;
    let refusal = check(&fx.policy, &Principal::Local, &r(1, "file.txt")).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "images = \"file.txt\": not allowed by the server's policy ([features] images = false)"
    );
}

#[test]
fn reasoning_effort_passes_unless_the_policy_lists_others() {
    let mut fx = fixture();
    let high = req(|r| r.reasoning_effort = Some(ReasoningEffort::High));
    let spec = check(&fx.policy, &Principal::Local, &high).unwrap();
    assert_eq!(spec.reasoning_effort, Some(ReasoningEffort::High));
    fx.policy.features.reasoning_effort = Some(vec![ReasoningEffort::Low, ReasoningEffort::Medium]);
    let refusal = check(&fx.policy, &Principal::Local, &high).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "reasoning_effort = \"high\": not allowed by the server's policy (allowed: low, medium)"
    );
}

#[test]
fn an_output_schema_becomes_compact_json_within_its_cap() {
    let mut fx = fixture();
    let schema = serde_json::json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let with = |s: &serde_json::Value| req(|r| r.output_schema = s.as_object().cloned());
    let spec = check(&fx.policy, &Principal::Local, &with(&schema)).unwrap();
    assert_eq!(
        spec.output_schema.as_deref(),
        Some(schema.to_string().as_str())
    );
    let huge = serde_json::json!({"description": "x".repeat(70_000)});
    assert!(matches!(
        rule(&fx.policy, &with(&huge)),
        Rule::SchemaTooLarge { .. }
    ));
    fx.policy.features.output_schema = false;
    assert_eq!(
        rule(&fx.policy, &with(&schema)),
        Rule::FeatureDisabled {
            feature: "output_schema"
        }
    );
}

#[test]
fn a_fork_takes_the_thread_id_and_needs_one() {
    let mut fx = fixture();
    let spec = check(
        &fx.policy,
        &Principal::Local,
        &req(|r| {
            r.fork = true;
            r.thread_id = Some("0199a213-81c0-7800-8aa1-bbab2a035a53".into());
        }),
    )
    .unwrap();
    assert_eq!(spec.resume, None);
    assert_eq!(
        spec.fork.as_deref(),
        Some("0199a213-81c0-7800-8aa1-bbab2a035a53")
    );
    assert_eq!(
        rule(&fx.policy, &req(|r| r.fork = true)),
        Rule::ForkNeedsThread
    );
    fx.policy.features.fork = false;
    let forked = req(|r| {
        r.fork = true;
        r.thread_id = Some("t1".into());
    });
    assert_eq!(
        rule(&fx.policy, &forked),
        Rule::FeatureDisabled { feature: "fork" }
    );
}

#[test]
fn a_review_is_exactly_one_safe_target_read_only_and_alone() {
    let mut fx = fixture();
    let review = |f: fn(&mut ReviewRequest)| {
        let mut r = ReviewRequest::default();
        f(&mut r);
        req(move |q| q.review = Some(r))
    };
    let ok = |r: &RunRequest| check(&fx.policy, &Principal::Local, r).map(|s| s.review);
    assert_eq!(
        ok(&review(|r| r.uncommitted = true)),
        Ok(Some(Review::Uncommitted))
    );
    assert_eq!(
        ok(&review(|r| r.base = Some("origin/main".into()))),
        Ok(Some(Review::Base("origin/main".into())))
    );
    assert_eq!(
        ok(&review(|r| r.commit = Some("DEADbeef".into()))),
        Ok(Some(Review::Commit("DEADbeef".into())))
    );
    assert_eq!(ok(&review(|r| r.custom = true)), Ok(Some(Review::Custom)));

    for base in [
        "--output=x",
        "-b",
        "a..b",
        "../x",
        "a//b",
        "x/",
        "x.lock",
        "a@{1}",
        "a b",
        "",
    ] {
        let r = req(|q| {
            q.review = Some(ReviewRequest {
                base: Some(base.into()),
                ..ReviewRequest::default()
            })
        });
        let refusal = check(&fx.policy, &Principal::Local, &r).unwrap_err();
        assert_eq!(
            (refusal.param.as_str(), refusal.rule),
            ("review.base", Rule::BadBranch),
            "{base}"
        );
    }
    for sha in ["--all", "abc", "xyz123", &"a".repeat(65)] {
        let r = req(|q| {
            q.review = Some(ReviewRequest {
                commit: Some(sha.into()),
                ..ReviewRequest::default()
            })
        });
        assert_eq!(rule(&fx.policy, &r), Rule::BadCommit, "{sha}");
    }
    assert_eq!(rule(&fx.policy, &review(|_| {})), Rule::ReviewTarget);
    assert_eq!(
        rule(
            &fx.policy,
            &review(|r| {
                r.uncommitted = true;
                r.custom = true;
            })
        ),
        Rule::ReviewTarget
    );
    let mut with_thread = review(|r| r.uncommitted = true);
    with_thread.thread_id = Some("t1".into());
    assert_eq!(
        rule(&fx.policy, &with_thread),
        Rule::ReviewWith("thread_id")
    );
    let mut with_images = review(|r| r.uncommitted = true);
    with_images.images = Some(vec!["file.txt".into()]);
    assert_eq!(rule(&fx.policy, &with_images), Rule::ReviewWith("images"));

    // Read-only unless the policy raises reviews.
    let mut writing = review(|r| r.uncommitted = true);
    writing.sandbox = SandboxMode::WorkspaceWrite;
    writing.allow_edits = true;
    let refusal = check(&fx.policy, &Principal::Local, &writing).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "sandbox = \"workspace-write\": reviews run at most read-only on this server ([features] review_sandbox)"
    );
    fx.policy.features.review_sandbox = SandboxMode::WorkspaceWrite;
    assert!(check(&fx.policy, &Principal::Local, &writing).is_ok());
    fx.policy.features.review = false;
    assert_eq!(
        rule(&fx.policy, &review(|r| r.custom = true)),
        Rule::FeatureDisabled { feature: "review" }
    );
}

/// Issue 19 point 3: without roots any path may be named, but an image is never read
/// from `/proc`, `/sys` or `/dev` (after symlinks), nor is anything but a regular file.
#[test]
fn images_in_proc_sys_or_dev_are_refused_even_without_roots() {
    let fx = fixture();
    let mut open = fx.policy.clone();
    open.allowed_roots.clear();
    symlink("/proc/self/environ", fx.root.join("env.png")).unwrap();
    let fifo = fx.root.join("fifo.png");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let cases: Vec<(&str, Expect)> = vec![
        (
            "/proc/self/environ",
            Box::new(|r| *r == Rule::SystemPath("/proc")),
        ),
        ("env.png", Box::new(|r| *r == Rule::SystemPath("/proc"))),
        ("/dev/zero", Box::new(|r| *r == Rule::SystemPath("/dev"))),
        (
            "/sys/kernel/uevent_seqnum",
            Box::new(|r| *r == Rule::SystemPath("/sys")),
        ),
        ("fifo.png", Box::new(|r| matches!(r, Rule::NotAFile { .. }))),
    ];
    for (path, expect) in cases {
        let r = req(|r| r.images = Some(vec![path.to_owned()]));
        let refusal = check(&open, &Principal::Local, &r).unwrap_err();
        assert_eq!(refusal.param, "images[0]", "{path}");
        assert!(expect(&refusal.rule), "{path}: {refusal}");
    }
    let etc = check(
        &open,
        &Principal::Local,
        &req(|r| r.images = Some(vec!["/etc/hostname".into()])),
    );
    assert!(etc.is_ok() || !std::path::Path::new("/etc/hostname").exists());
}

#[test]
fn a_review_target_needs_no_prompt_and_its_own_error_shows_through_an_empty_one() {
    let fx = fixture();
    let review = |f: fn(&mut ReviewRequest)| {
        let mut r = ReviewRequest::default();
        f(&mut r);
        req(move |q| {
            q.prompt = String::new();
            q.review = Some(r);
        })
    };
    type Want = Result<Option<Review>, (&'static str, Rule)>;
    let cases: Vec<(RunRequest, Want)> = vec![
        (
            review(|r| r.uncommitted = true),
            Ok(Some(Review::Uncommitted)),
        ),
        (
            review(|r| r.base = Some("main".into())),
            Ok(Some(Review::Base("main".into()))),
        ),
        (
            review(|r| r.base = Some("-bad..name".into())),
            Err(("review.base", Rule::BadBranch)),
        ),
        (
            review(|r| r.commit = Some("zz".into())),
            Err(("review.commit", Rule::BadCommit)),
        ),
        // `custom` reviews as the prompt says: without one there is nothing to review.
        (
            review(|r| r.custom = true),
            Err(("prompt", Rule::EmptyPrompt)),
        ),
        (
            req(|q| q.prompt = " ".into()),
            Err(("prompt", Rule::EmptyPrompt)),
        ),
    ];
    for (request, want) in cases {
        let got = check(&fx.policy, &Principal::Local, &request)
            .map(|s| s.review)
            .map_err(|e| (e.param, e.rule));
        let got = got.as_ref().map_err(|(p, r)| (p.as_str(), r.clone()));
        assert_eq!(
            got,
            want.as_ref().map_err(|(p, r)| (*p, r.clone())),
            "{request:?}"
        );
    }
}
