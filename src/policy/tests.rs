#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::symlink;

use super::*;
use crate::job::ApprovalPolicy;

type Expect = Box<dyn Fn(&Rule) -> bool>;

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
    policy: Policy,
}

/// root/{app,app/sub,link-out -> outside, file.txt}, a sibling `rootling`, and `outside`.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let root = base.join("root");
    let outside = base.join("outside");
    std::fs::create_dir_all(root.join("app/sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(base.join("rootling")).unwrap();
    std::fs::write(root.join("file.txt"), "x").unwrap();
    symlink(&outside, root.join("link-out")).unwrap();
    symlink(root.join("app"), root.join("link-in")).unwrap();
    let mut policy = Policy::new(root.clone());
    policy.allowed_roots = vec![root.clone()];
    Fixture {
        _tmp: tmp,
        root,
        outside,
        policy,
    }
}

fn req(f: impl FnOnce(&mut RunRequest)) -> RunRequest {
    let mut r = RunRequest::new("do it");
    f(&mut r);
    r
}

fn rule(policy: &Policy, r: &RunRequest) -> Rule {
    check(policy, &Principal::Local, r).unwrap_err().rule
}

#[test]
fn the_seed_defaults_pass_and_run_read_only_in_the_first_root() {
    let fx = fixture();
    let spec = check(&fx.policy, &Principal::Local, &RunRequest::new("hi")).unwrap();
    assert_eq!(spec.cwd, fx.root);
    assert_eq!(spec.sandbox, SandboxMode::ReadOnly);
    assert_eq!(spec.timeout, Duration::from_secs(1800));
    assert!(spec.ephemeral);
}

#[test]
fn relative_and_absolute_paths_inside_a_root_are_canonicalised() {
    let fx = fixture();
    let spec = check(
        &fx.policy,
        &Principal::Local,
        &req(|r| {
            r.cwd = Some("app/sub/..".into());
            r.add_dirs = Some(vec![fx.root.join("link-in").display().to_string()]);
        }),
    )
    .unwrap();
    assert_eq!(spec.cwd, fx.root.join("app"));
    assert_eq!(spec.add_dirs, vec![fx.root.join("app")]);
}

#[test]
fn each_path_rule_refuses_with_its_own_reason() {
    let fx = fixture();
    let sibling = fx.root.parent().unwrap().join("rootling");
    let cases: Vec<(&str, Expect)> = vec![
        (
            "../outside",
            Box::new(|r| matches!(r, Rule::OutsideRoots { .. })),
        ),
        (
            "link-out",
            Box::new(|r| matches!(r, Rule::OutsideRoots { .. })),
        ),
        ("/", Box::new(|r| matches!(r, Rule::OutsideRoots { .. }))),
        (
            "file.txt",
            Box::new(|r| matches!(r, Rule::NotADirectory { .. })),
        ),
        ("missing", Box::new(|r| matches!(r, Rule::Missing { .. }))),
        ("-rf", Box::new(|r| *r == Rule::FlagLike)),
        ("--add-dir=/", Box::new(|r| *r == Rule::FlagLike)),
        ("", Box::new(|r| *r == Rule::EmptyPath)),
        ("a\0b", Box::new(|r| *r == Rule::NulByte)),
    ];
    let sibling_str = sibling.display().to_string();
    let mut all: Vec<(&str, Expect)> = cases;
    all.push((
        &sibling_str,
        Box::new(|r| matches!(r, Rule::OutsideRoots { .. })),
    ));
    for (path, expected) in &all {
        for as_add_dir in [false, true] {
            let r = req(|r| {
                if as_add_dir {
                    r.add_dirs = Some(vec![(*path).to_owned()]);
                } else {
                    r.cwd = Some((*path).to_owned());
                }
            });
            let refusal = check(&fx.policy, &Principal::Local, &r).unwrap_err();
            assert!(expected(&refusal.rule), "{path:?}: {refusal}");
            assert_eq!(
                refusal.param,
                if as_add_dir { "add_dirs[0]" } else { "cwd" }
            );
        }
    }
    let _ = &fx.outside;
}

#[test]
fn a_root_admits_itself_but_not_a_sibling_sharing_its_prefix() {
    let roots = vec![PathBuf::from("/srv/app")];
    assert!(within_roots(&roots, Path::new("/srv/app")));
    assert!(within_roots(&roots, Path::new("/srv/app/x/y")));
    assert!(!within_roots(&roots, Path::new("/srv/application")));
    assert!(!within_roots(&roots, Path::new("/srv")));
    assert!(within_roots(&[], Path::new("/anywhere")));
}

#[test]
fn refusal_text_names_parameter_value_and_rule() {
    let fx = fixture();
    let refusal = check(
        &fx.policy,
        &Principal::Local,
        &req(|r| r.cwd = Some("../outside".into())),
    )
    .unwrap_err();
    let text = refusal.to_string();
    assert_eq!(
        text,
        format!(
            "cwd = \"../outside\": is outside the allowed roots ({}) once `..` and symlinks are resolved (CODEX_ALLOWED_ROOTS)",
            fx.root.display()
        )
    );
}

/// What a refusal may say: the caller's own input and the allowed roots, never where a
/// path really leads outside them, nor the server's own directory; and a path outside the
/// roots gets the same answer whether it exists, is a file or is missing (no oracle).
#[test]
fn refusals_name_the_input_and_the_roots_but_never_a_resolved_path_outside_them() {
    let fx = fixture();
    let base = fx.root.parent().unwrap().to_owned();
    std::fs::write(fx.outside.join("secret.txt"), "x").unwrap();
    symlink(fx.outside.join("secret.txt"), fx.root.join("link-file")).unwrap();
    symlink("/etc", fx.root.join("etc-link")).unwrap();
    std::fs::create_dir_all(fx.outside.join("deeper")).unwrap();
    symlink(fx.outside.join("deeper"), fx.root.join("app/up")).unwrap();
    let outside = fx.outside.display().to_string();
    let server_cwd = std::env::current_dir().unwrap().display().to_string();
    let roots = fx.root.display().to_string();
    let abs = |p: &str| fx.outside.join(p).display().to_string();
    let is_outside: fn(&Rule) -> bool = |r| matches!(r, Rule::OutsideRoots { .. });
    let is_missing: fn(&Rule) -> bool = |r| matches!(r, Rule::Missing { .. });
    let is_not_dir: fn(&Rule) -> bool = |r| matches!(r, Rule::NotADirectory { .. });
    type Case = (String, fn(&Rule) -> bool);
    let cases: Vec<Case> = vec![
        ("../outside".into(), is_outside),
        ("link-out".into(), is_outside),
        ("etc-link".into(), is_outside),
        ("app/up".into(), is_outside),
        ("link-file".into(), is_outside),
        ("../../../../../../../../etc".into(), is_outside),
        ("/".into(), is_outside),
        ("/etc".into(), is_outside),
        (outside.clone(), is_outside),
        (abs("secret.txt"), is_outside),
        (abs("no-such-dir"), is_outside),
        (abs("secret.txt/x"), is_outside),
        (base.join("rootling").display().to_string(), is_outside),
        ("file.txt".into(), is_not_dir),
        ("file.txt/x".into(), is_not_dir),
        ("missing".into(), is_missing),
        ("app/missing/deeper".into(), is_missing),
        ("link-out/../missing".into(), is_missing),
    ];
    for (input, expected) in &cases {
        for as_add_dir in [false, true] {
            let r = req(|r| {
                if as_add_dir {
                    r.add_dirs = Some(vec![input.clone()]);
                } else {
                    r.cwd = Some(input.clone());
                }
            });
            let refusal = check(&fx.policy, &Principal::Local, &r).unwrap_err();
            assert!(expected(&refusal.rule), "{input:?}: {refusal}");
            let text = refusal.to_string();
            let param = if as_add_dir { "add_dirs[0]" } else { "cwd" };
            let said = text
                .strip_prefix(&format!("{param} = {input:?}: "))
                .unwrap_or_else(|| panic!("{input:?}: {text}"));
            assert!(said.contains(&roots), "{input:?}: {text}");
            let said = said.replace(&roots, "<roots>");
            for secret in [outside.as_str(), "/etc", server_cwd.as_str()] {
                assert!(
                    !said.contains(secret),
                    "{input:?} reveals {secret:?}: {text}"
                );
            }
        }
    }
}

#[test]
fn prompt_must_be_non_empty_and_under_the_cap() {
    let mut fx = fixture();
    assert_eq!(
        rule(&fx.policy, &req(|r| r.prompt = "  \n".into())),
        Rule::EmptyPrompt
    );
    fx.policy.max_prompt_bytes = 10;
    let refusal = check(
        &fx.policy,
        &Principal::Local,
        &req(|r| r.prompt = "x".repeat(11)),
    )
    .unwrap_err();
    assert_eq!(refusal.rule, Rule::PromptTooLarge { max: 10 });
    assert_eq!(
        refusal.value, "<11 bytes>",
        "the prompt itself is never echoed"
    );
    assert!(
        check(
            &fx.policy,
            &Principal::Local,
            &req(|r| r.prompt = "x".repeat(10))
        )
        .is_ok()
    );
}

#[test]
fn timeout_must_be_between_one_and_the_maximum() {
    let fx = fixture();
    for bad in [0, -1, 7201, i64::MAX] {
        assert_eq!(
            rule(&fx.policy, &req(|r| r.timeout_sec = Some(bad))),
            Rule::TimeoutRange { max: 7200 },
            "{bad}"
        );
    }
    for good in [1, 7200] {
        assert!(
            check(
                &fx.policy,
                &Principal::Local,
                &req(|r| r.timeout_sec = Some(good))
            )
            .is_ok()
        );
    }
}

#[test]
fn an_absent_timeout_defaults_to_1800_or_the_lower_maximum() {
    let mut fx = fixture();
    let spec = check(&fx.policy, &Principal::Local, &RunRequest::new("p")).unwrap();
    assert_eq!(spec.timeout, Duration::from_secs(1800));
    fx.policy.max_timeout_sec = 600;
    let spec = check(&fx.policy, &Principal::Local, &RunRequest::new("p")).unwrap();
    assert_eq!(spec.timeout, Duration::from_secs(600));
}

#[test]
fn model_and_profile_names_cannot_become_flags() {
    let fx = fixture();
    for bad in [
        "-c",
        "--dangerously-bypass-approvals-and-sandbox",
        "",
        "a b",
        "a;b",
        "é",
        &"a".repeat(129),
    ] {
        assert_eq!(
            rule(&fx.policy, &req(|r| r.model = Some(bad.into()))),
            Rule::BadName,
            "{bad:?}"
        );
        assert_eq!(
            rule(&fx.policy, &req(|r| r.profile = Some(bad.into()))),
            Rule::BadProfileName,
            "{bad:?}"
        );
    }
    for good in ["gpt-5", "o3", "openai/gpt-5.1:latest", "A_b-c"] {
        assert!(is_safe_name(good), "{good}");
    }
    // A profile names `$CODEX_HOME/<profile>.config.toml`: a path in it could load a
    // config file from anywhere.
    for bad in ["a/../../x", "sub/dir", "x..y", "ns:prof"] {
        assert_eq!(
            rule(&fx.policy, &req(|r| r.profile = Some(bad.into()))),
            Rule::BadProfileName,
            "{bad:?}"
        );
    }
}

#[test]
fn listed_models_and_profiles_are_enforced() {
    let mut fx = fixture();
    fx.policy.allowed_models = Some(vec!["gpt-5".into()]);
    fx.policy.allowed_profiles = Some(vec![]);
    assert!(
        check(
            &fx.policy,
            &Principal::Local,
            &req(|r| r.model = Some("gpt-5".into()))
        )
        .is_ok()
    );
    assert!(matches!(
        rule(&fx.policy, &req(|r| r.model = Some("o3".into()))),
        Rule::NotListed(_)
    ));
    assert!(matches!(
        rule(&fx.policy, &req(|r| r.profile = Some("x".into()))),
        Rule::NotListed(_)
    ));
}

#[test]
fn writable_sandboxes_need_allow_edits_and_danger_needs_the_operator() {
    let mut fx = fixture();
    let ww = |edits: bool| {
        req(move |r| {
            r.sandbox = SandboxMode::WorkspaceWrite;
            r.allow_edits = edits;
        })
    };
    assert_eq!(rule(&fx.policy, &ww(false)), Rule::NeedsAllowEdits);
    assert!(
        rule(&fx.policy, &ww(false))
            .to_string()
            .contains("allow_edits=true")
    );
    assert!(check(&fx.policy, &Principal::Local, &ww(true)).is_ok());

    let danger = req(|r| {
        r.sandbox = SandboxMode::DangerFullAccess;
        r.allow_edits = true;
    });
    assert_eq!(rule(&fx.policy, &danger), Rule::DangerDisabled);
    fx.policy.allow_danger_full_access = true;
    fx.policy.sandbox_ceiling = SandboxMode::DangerFullAccess;
    assert!(check(&fx.policy, &Principal::Local, &danger).is_ok());
}

#[test]
fn the_ceiling_caps_every_principal_and_scopes_narrow_it() {
    let mut fx = fixture();
    fx.policy.scope_sandbox = BTreeMap::from([
        ("codex:read".into(), SandboxMode::ReadOnly),
        ("codex:write".into(), SandboxMode::WorkspaceWrite),
    ]);
    let who = |scopes: &[&str]| Principal::Authenticated {
        issuer: None,
        subject: "alice".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    };
    assert_eq!(
        fx.policy.ceiling_for(&who(&["codex:read"])),
        SandboxMode::ReadOnly
    );
    assert_eq!(
        fx.policy.ceiling_for(&who(&["codex:read", "codex:write"])),
        SandboxMode::WorkspaceWrite
    );
    assert_eq!(fx.policy.ceiling_for(&who(&[])), SandboxMode::ReadOnly);
    assert_eq!(
        fx.policy.ceiling_for(&Principal::Local),
        SandboxMode::WorkspaceWrite
    );

    let write = req(|r| {
        r.sandbox = SandboxMode::WorkspaceWrite;
        r.allow_edits = true;
    });
    let refusal = check(&fx.policy, &who(&["codex:read"]), &write).unwrap_err();
    assert_eq!(
        refusal.rule,
        Rule::AboveCeiling {
            ceiling: SandboxMode::ReadOnly
        }
    );

    fx.policy.sandbox_ceiling = SandboxMode::ReadOnly;
    assert!(matches!(
        rule(&fx.policy, &write),
        Rule::AboveCeiling { .. }
    ));
}

#[test]
fn without_roots_any_existing_directory_is_admitted() {
    let fx = fixture();
    let mut open = Policy::new(fx.root.clone());
    open.allowed_roots.clear();
    let spec = check(
        &open,
        &Principal::Local,
        &req(|r| r.cwd = Some(fx.outside.display().to_string())),
    )
    .unwrap();
    assert_eq!(spec.cwd, fx.outside);
}

#[test]
fn approval_policy_passes_through_unchanged() {
    let fx = fixture();
    let spec = check(
        &fx.policy,
        &Principal::Local,
        &req(|r| r.approval_policy = Some(ApprovalPolicy::Never)),
    )
    .unwrap();
    assert_eq!(spec.approval_policy, Some(ApprovalPolicy::Never));
}

#[test]
fn thread_ids_are_uuids_or_names_that_cannot_be_flags_or_paths() {
    for ok in [
        "0199a213-81c0-7800-8aa1-bbab2a035a53",
        "my-thread",
        "fix_bug.2",
    ] {
        assert!(is_thread_id(ok), "{ok}");
    }
    for bad in [
        "--last",
        "-c",
        "../../x",
        "a..b",
        "a/b",
        "",
        " x",
        "x y",
        "x\0",
        ".hidden",
        &"a".repeat(129),
    ] {
        assert!(!is_thread_id(bad), "{bad:?}");
    }
}

// === Codex's own features ===

use crate::job::{ReasoningEffort, Review, ReviewRequest};

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
            Box::new(|r| matches!(r, Rule::OutsideRoots { .. })),
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
