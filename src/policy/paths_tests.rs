//! Unit tests of directory resolution, driven through [`crate::policy::check`] as a call
//! would: canonical paths inside a root, one reason per refusal, and refusals that never
//! say where a path really leads (apart from paths.rs so that file reads as the code).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::policy::tests::{Expect, fixture, req};
use crate::policy::{Policy, Rule, check, check_cached, within_roots};
use crate::run::Principal;

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
            Box::new(|r| matches!(r, Rule::ThroughSymlink { .. })),
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
    let is_through: fn(&Rule) -> bool = |r| matches!(r, Rule::ThroughSymlink { .. });
    let is_missing: fn(&Rule) -> bool = |r| matches!(r, Rule::Missing { .. });
    let is_not_dir: fn(&Rule) -> bool = |r| matches!(r, Rule::NotADirectory { .. });
    type Case = (String, fn(&Rule) -> bool);
    let cases: Vec<Case> = vec![
        ("../outside".into(), is_outside),
        ("link-out".into(), is_through),
        ("etc-link".into(), is_through),
        ("app/up".into(), is_through),
        ("link-file".into(), is_through),
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
        ("link-out/../missing".into(), is_through),
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

/// Issue 19 point 10: through a symlink in a root, `etc/shadow` was "outside the roots"
/// and `etc/no-such-file` "no such file". Every refusal of a path spelled inside the
/// roots that crossed a symlink now reads the same, whatever lies behind the link.
#[test]
fn every_refusal_of_a_path_through_a_symlink_reads_the_same_whatever_lies_behind_it() {
    let fx = fixture();
    symlink("/etc", fx.root.join("etc")).unwrap();
    std::fs::write(fx.outside.join("secret.txt"), "x").unwrap();
    symlink(fx.outside.join("secret.txt"), fx.root.join("link-file")).unwrap();
    symlink(fx.root.join("file.txt"), fx.root.join("link-in-file")).unwrap();
    let through = [
        "etc/shadow",
        "etc/passwd",
        "etc/no-such-file",
        "etc/no-such-dir/x",
        "etc",
        "link-out/no-such-file",
        "link-out/../no-such-file",
        "link-file",
        "link-file/x",
        "link-in/no-such-file",
        "link-in/sub/../no-such-file",
        "link-in-file/x",
    ];
    for (param, dir) in [("cwd", true), ("images[0]", false)] {
        let said: std::collections::BTreeSet<String> = through
            .iter()
            .map(|path| {
                let r = req(|r| {
                    if dir {
                        r.cwd = Some((*path).into());
                    } else {
                        r.images = Some(vec![(*path).into()]);
                    }
                });
                let refusal = check(&fx.policy, &Principal::Local, &r).unwrap_err();
                assert_eq!(refusal.param, param);
                assert!(
                    matches!(refusal.rule, Rule::ThroughSymlink { .. }),
                    "{path}: {refusal}"
                );
                refusal.rule.to_string()
            })
            .collect();
        assert_eq!(said.len(), 1, "{param}: {said:?}");
    }
    // A symlink to a directory in the root still admits what is really there, and a
    // path that crossed none keeps its specific reason.
    let spec = check(
        &fx.policy,
        &Principal::Local,
        &req(|r| r.cwd = Some("link-in/sub".into())),
    )
    .unwrap();
    assert_eq!(spec.cwd, fx.root.join("app/sub"));
    let missing = check(
        &fx.policy,
        &Principal::Local,
        &req(|r| r.cwd = Some("app/no-such-dir".into())),
    )
    .unwrap_err();
    assert!(matches!(missing.rule, Rule::Missing { .. }), "{missing}");
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

/// A walk from the caches cannot follow a symlink whose access time is due (relatime
/// writes it, and a write may wait): such a call waits on the pool instead, as it must.
/// The fixture's links, just made, are due; an access time a minute ahead settles them.
fn settle_links(root: &Path) {
    use nix::sys::stat::{UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let ahead = TimeSpec::from_duration(now + std::time::Duration::from_secs(60));
    for link in ["link-in", "link-out"] {
        let at = root.join(link);
        utimensat(
            nix::fcntl::AT_FDCWD,
            &at,
            &ahead,
            &TimeSpec::from_duration(now),
            UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }
}

#[test]
fn the_check_from_the_kernels_caches_admits_exactly_what_the_waiting_check_admits() {
    let fx = fixture();
    settle_links(&fx.root);
    let root = fx.root.display().to_string();
    let sibling = fx.root.parent().unwrap().join("rootling");
    let sibling = sibling.display().to_string();
    let inside = [
        "app",
        "app/sub/..",
        "./app/./sub/",
        "link-in",
        "link-in/sub",
        root.as_str(),
    ];
    let refused = [
        "../outside",
        "link-out",
        "/",
        "/proc",
        "file.txt",
        "missing",
        "app/missing/..",
        "-rf",
        "",
        "a\0b",
        sibling.as_str(),
    ];
    let mut from_caches = 0;
    for cwd in inside.iter().chain(refused.iter()) {
        let r = req(|r| r.cwd = Some((*cwd).into()));
        // The waiting check first: it leaves every path it resolved in the kernel's caches.
        let waiting = check(&fx.policy, &Principal::Local, &r);
        match (&waiting, check_cached(&fx.policy, &Principal::Local, &r)) {
            (Ok(waited), Some(cached)) => {
                assert_eq!(cached.cwd, waited.cwd, "{cwd:?}");
                from_caches += 1;
            }
            (Err(refusal), Some(cached)) => panic!(
                "{cwd:?}: refused waiting ({refusal}) but admitted from the caches as {}",
                cached.cwd.display()
            ),
            (_, None) => {}
        }
        assert_eq!(
            waiting.is_ok(),
            inside.contains(cwd),
            "{cwd:?}: {waiting:?}"
        );
    }
    // A path the waiting check has just resolved is in the caches: each one inside the
    // roots is admitted without waiting, where the kernel can walk that way.
    let expected = if crate::policy::kernel_walks_cached() {
        inside.len()
    } else {
        0
    };
    assert_eq!(from_caches, expected);
}

#[test]
fn extra_directories_come_from_the_caches_too_and_images_always_wait() {
    let fx = fixture();
    settle_links(&fx.root);
    let dirs = req(|r| r.add_dirs = Some(vec!["app/sub".into(), "link-in".into()]));
    let waited = check(&fx.policy, &Principal::Local, &dirs).unwrap();
    if crate::policy::kernel_walks_cached() {
        let cached = check_cached(&fx.policy, &Principal::Local, &dirs).unwrap();
        assert_eq!(cached.add_dirs, waited.add_dirs);
    }
    let outside = req(|r| r.add_dirs = Some(vec!["app".into(), "link-out".into()]));
    assert!(check(&fx.policy, &Principal::Local, &outside).is_err());
    assert!(check_cached(&fx.policy, &Principal::Local, &outside).is_none());
    // An image's size needs a look at its inode that may wait: the pool measures it.
    std::fs::write(fx.root.join("a.png"), b"png").unwrap();
    let image = req(|r| r.images = Some(vec!["a.png".into()]));
    assert!(check(&fx.policy, &Principal::Local, &image).is_ok());
    assert!(check_cached(&fx.policy, &Principal::Local, &image).is_none());
}
