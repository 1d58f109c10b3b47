#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::symlink;

use super::*;
use crate::run::ApprovalPolicy;

pub(super) type Expect = Box<dyn Fn(&Rule) -> bool>;

pub(super) struct Fixture {
    pub(super) _tmp: tempfile::TempDir,
    pub(super) root: PathBuf,
    pub(super) outside: PathBuf,
    pub(super) policy: Policy,
}

/// root/{app,app/sub,link-out -> outside, file.txt}, a sibling `rootling`, and `outside`.
pub(super) fn fixture() -> Fixture {
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

pub(super) fn req(f: impl FnOnce(&mut RunRequest)) -> RunRequest {
    let mut r = RunRequest::new("do it");
    f(&mut r);
    r
}

pub(super) fn rule(policy: &Policy, r: &RunRequest) -> Rule {
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
