//! Unit tests of the private image copies: where they go, what is refused (a swapped
//! name, /proc, /sys, /dev, a FIFO) and what the reader's exit status says (apart from
//! images.rs so that file reads as the code).

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::runner::cwd::OpenError;

#[test]
fn images_are_copied_privately_and_removed_when_the_run_ends() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path().canonicalize().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.join("shots")).unwrap();
    std::fs::write(root.join("shots/a.png"), b"png bytes").unwrap();
    let copies = PrivateImages::copy(
        &[root.join("shots/a.png")],
        std::slice::from_ref(&root),
        tmp.path(),
        None,
        &Reader::Server,
    )
    .unwrap();
    let copy = copies.paths()[0].clone();
    assert_eq!(std::fs::read(&copy).unwrap(), b"png bytes");
    assert_eq!(copy.extension().unwrap(), "png");
    assert!(!copy.starts_with(&root));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&copy), 0o600);
    assert_eq!(mode(copy.parent().unwrap()), 0o700);
    drop(copies);
    assert!(!copy.parent().unwrap().exists());
}

#[test]
fn an_image_swapped_for_a_symlink_after_the_check_is_refused_and_nothing_is_left() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path().canonicalize().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.png");
    std::fs::write(&secret, b"secret").unwrap();
    std::fs::write(root.join("ok.png"), b"ok").unwrap();
    // Checked as a file in the root, then swapped for a link to outside.
    std::os::unix::fs::symlink(&secret, root.join("swapped.png")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let err = PrivateImages::copy(
        &[root.join("ok.png"), root.join("swapped.png")],
        std::slice::from_ref(&root),
        tmp.path(),
        None,
        &Reader::Server,
    )
    .unwrap_err();
    assert_eq!(err.0, 1);
    assert!(
        matches!(err.1, ImageError::Changed(OpenError::Swapped)),
        "{:?}",
        err.1
    );
    assert!(!err.1.to_string().contains("secret"));
    // The partial copy went with the error.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    // A directory, or a path outside every root, is refused too.
    std::fs::create_dir(root.join("dir.png")).unwrap();
    for bad in [root.join("dir.png"), secret] {
        assert!(
            PrivateImages::copy(
                &[bad],
                std::slice::from_ref(&root),
                tmp.path(),
                None,
                &Reader::Server
            )
            .is_err()
        );
    }
}

/// Issue 19 point 3: `/proc`, `/sys` and `/dev` are never read, a FIFO neither (and it
/// does not hang the open), even without roots and by whoever reads.
#[test]
fn system_files_fifos_and_devices_are_refused_at_once_without_roots() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let fifo = dir.join("fifo.png");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let out = tempfile::tempdir().unwrap();
    type Case = (PathBuf, fn(&ImageError) -> bool);
    let cases: Vec<Case> = vec![
        ("/proc/self/environ".into(), |e| {
            matches!(e, ImageError::System)
        }),
        ("/proc/1/environ".into(), |e| {
            matches!(e, ImageError::System)
        }),
        ("/dev/zero".into(), |e| matches!(e, ImageError::System)),
        ("/sys/kernel/uevent_seqnum".into(), |e| {
            matches!(e, ImageError::System)
        }),
        (fifo, |e| {
            matches!(e, ImageError::Changed(OpenError::NotAFile))
        }),
        // A path with a symlink in it is refused before anything behind it is read.
        (dir.join("link.png"), |e| {
            matches!(e, ImageError::Changed(OpenError::Swapped))
        }),
    ];
    std::os::unix::fs::symlink("/proc/self/environ", dir.join("link.png")).unwrap();
    let started = std::time::Instant::now();
    for (path, expected) in cases {
        let err = PrivateImages::copy(
            std::slice::from_ref(&path),
            &[],
            out.path(),
            None,
            &Reader::Server,
        )
        .unwrap_err();
        assert!(expected(&err.1), "{}: {:?}", path.display(), err.1);
        assert!(!err.1.to_string().contains("environ"), "{}", err.1);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn a_procfs_mounted_elsewhere_is_recognised_by_what_it_is() {
    // /proc/self is procfs wherever it is reached from; the path check alone would miss
    // a bind mount, the filesystem type does not.
    let file = std::fs::File::open("/proc/self/status").unwrap();
    let kind = nix::sys::statfs::fstatfs(&file).unwrap().filesystem_type();
    assert_eq!(kind, nix::sys::statfs::PROC_SUPER_MAGIC);
}

#[test]
fn without_a_binary_to_read_as_codexs_user_images_are_refused() {
    assert_eq!(Reader::for_run(None, None), Reader::Server);
    assert_eq!(
        Reader::for_run(Some(Path::new("/bin/x")), None),
        Reader::Server
    );
    assert_eq!(
        Reader::for_run(None, Some((65534, 65534))),
        Reader::Unavailable
    );
    let root = tempfile::tempdir().unwrap();
    let root = root.path().canonicalize().unwrap();
    std::fs::write(root.join("a.png"), b"png").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let err = PrivateImages::copy(
        &[root.join("a.png")],
        std::slice::from_ref(&root),
        tmp.path(),
        None,
        &Reader::Unavailable,
    )
    .unwrap_err();
    assert!(matches!(err.1, ImageError::NoReader), "{:?}", err.1);
}
