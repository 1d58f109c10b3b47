//! The working directory Codex starts in, opened rather than named.
//!
//! The policy decides on a canonical path, maybe long before the spawn (the call may
//! queue). Between that check and `chdir` any component could be swapped for a symlink
//! to outside the roots. So, right before the spawn, the runner opens the checked path
//! beneath the allowed root it lies in, from the root's fd, refusing every symlink on the
//! way (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or one `O_NOFOLLOW`
//! `openat` per component where `openat2` is missing), and the child starts in exactly
//! that directory: `current_dir("/proc/self/fd/N")` resolves, in the child before exec,
//! to the open file description, whatever the names point to by then.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat, openat2};
use nix::sys::stat::{Mode, SFlag, fstat};

/// A directory held open for the spawn.
#[derive(Debug)]
pub struct OpenDir(OwnedFd);

impl std::os::fd::AsFd for OpenDir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl OpenDir {
    /// The name by which the child (before exec) reaches exactly this directory.
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.0.as_raw_fd()))
    }
}

/// Why the checked directory cannot be opened as checked. Says nothing about where any
/// name points now: that could be outside the roots.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// A component is now a symbolic link (or the path left the root).
    #[error("a part of it is now a symbolic link or leads outside its root")]
    Swapped,
    /// A component is missing or no longer a directory.
    #[error("it no longer exists as a directory")]
    Gone,
    /// The path lies in no allowed root (the policy would not have passed it).
    #[error("it is not inside an allowed root")]
    OutsideRoots,
    /// A file that must be a regular one is not (a FIFO, a socket, a device, a directory).
    #[error("it is not a regular file")]
    NotAFile,
    /// Any other failure to open it.
    #[error("it cannot be opened ({0})")]
    Other(Errno),
}

impl From<Errno> for OpenError {
    fn from(e: Errno) -> Self {
        match e {
            Errno::ELOOP | Errno::EXDEV => Self::Swapped,
            Errno::ENOENT | Errno::ENOTDIR => Self::Gone,
            other => Self::Other(other),
        }
    }
}

/// Which root `path` lies in (the longest match) and the path relative to it; no roots
/// means the filesystem root. Pure.
pub fn split_root<'a>(roots: &'a [PathBuf], path: &'a Path) -> Option<(&'a Path, &'a Path)> {
    if roots.is_empty() {
        return path.strip_prefix("/").ok().map(|rel| (Path::new("/"), rel));
    }
    roots
        .iter()
        .filter_map(|root| {
            path.strip_prefix(root)
                .ok()
                .map(|rel| (root.as_path(), rel))
        })
        .max_by_key(|(root, _)| root.as_os_str().len())
}

/// Open the canonical directory `path` beneath its allowed root, following no symlink.
pub fn open_beneath(roots: &[PathBuf], path: &Path) -> Result<OpenDir, OpenError> {
    open_dir_beneath(roots, path, ResolveFlag::empty())
}

/// [`open_beneath`] from the kernel's lookup caches alone (`RESOLVE_CACHED`), so it never
/// waits on a disk or a file server: `None` where the walk would have had to (or the
/// kernel cannot walk that way), and [`open_beneath`] on a thread that may wait then
/// opens it or says why not.
pub fn open_beneath_cached(roots: &[PathBuf], path: &Path) -> Option<OpenDir> {
    open_dir_beneath(roots, path, crate::policy::RESOLVE_CACHED).ok()
}

fn open_dir_beneath(
    roots: &[PathBuf],
    path: &Path,
    extra: ResolveFlag,
) -> Result<OpenDir, OpenError> {
    let (root, rel) = split_root(roots, path).ok_or(OpenError::OutsideRoots)?;
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(OpenError::Swapped);
    }
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    // The root itself: its components are the operator's, still no symlink among them.
    let root_fd = open_no_symlinks(None, root, flags, extra)?;
    if rel.as_os_str().is_empty() {
        return Ok(OpenDir(root_fd));
    }
    Ok(OpenDir(open_no_symlinks(
        Some(&root_fd),
        rel,
        flags,
        extra,
    )?))
}

/// Open this process's working directory: for the run supervisor, the very directory the
/// runner opened and started it in (`current_dir("/proc/self/fd/N")`), whatever its name.
pub fn open_current() -> Result<OpenDir, OpenError> {
    let fd = open(
        ".",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    Ok(OpenDir(fd))
}

/// Open the canonical regular file `path` beneath its allowed root for reading,
/// following no symlink (the same walk as [`open_beneath`]).
pub fn open_file_beneath(roots: &[PathBuf], path: &Path) -> Result<std::fs::File, OpenError> {
    let (root, rel) = split_root(roots, path).ok_or(OpenError::OutsideRoots)?;
    if rel.as_os_str().is_empty()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(OpenError::Swapped);
    }
    let root_fd = open_no_symlinks(
        None,
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        ResolveFlag::empty(),
    )?;
    let fd = open_no_symlinks(
        Some(&root_fd),
        rel,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        ResolveFlag::empty(),
    )?;
    // O_NONBLOCK above: a FIFO opens at once (and is refused here) instead of hanging.
    let kind = SFlag::from_bits_truncate(fstat(&fd)?.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFREG {
        return Err(OpenError::NotAFile);
    }
    Ok(std::fs::File::from(fd))
}

/// `openat2(dir or /, path, RESOLVE_NO_SYMLINKS [| RESOLVE_BENEATH] | extra)`, or per
/// component with `O_NOFOLLOW` where the kernel has no `openat2` (unless `extra` asks for
/// more than that walk can promise).
fn open_no_symlinks(
    dir: Option<&OwnedFd>,
    path: &Path,
    flags: OFlag,
    extra: ResolveFlag,
) -> Result<OwnedFd, Errno> {
    let resolve = match dir {
        Some(_) => ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS,
        None => ResolveFlag::RESOLVE_NO_SYMLINKS,
    };
    let how = OpenHow::new().flags(flags).resolve(resolve | extra);
    let result = match dir {
        Some(fd) => openat2(fd, path, how),
        None => openat2(nix::fcntl::AT_FDCWD, path, how),
    };
    match result {
        Err(Errno::ENOSYS) if extra.is_empty() => open_by_components(dir, path, flags),
        other => other,
    }
}

fn open_by_components(dir: Option<&OwnedFd>, path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    // Without O_PATH, O_NOFOLLOW on a symlink is ELOOP (with it, the link itself would open).
    let flags = flags.difference(OFlag::O_PATH);
    let mut current = match dir {
        Some(fd) => fd
            .try_clone()
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?,
        None => open(Path::new("/"), flags, Mode::empty())?,
    };
    let names = path
        .components()
        .filter_map(|component| match component {
            Component::RootDir | Component::CurDir => None,
            Component::Normal(name) => Some(Ok(name)),
            Component::ParentDir | Component::Prefix(_) => Some(Err(Errno::EXDEV)),
        })
        .collect::<Result<Vec<&OsStr>, Errno>>()?;
    let want_dir = flags.contains(OFlag::O_DIRECTORY);
    for (i, name) in names.iter().enumerate() {
        // Without O_DIRECTORY too, or a symlink reads as ENOTDIR rather than ELOOP.
        let next = openat(
            &current,
            *name,
            flags.difference(OFlag::O_DIRECTORY) | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )?;
        let kind = SFlag::from_bits_truncate(fstat(&next)?.st_mode) & SFlag::S_IFMT;
        // Every component on the way is a directory; the last one too unless a file is asked for.
        if kind != SFlag::S_IFDIR && (want_dir || i + 1 < names.len()) {
            return Err(Errno::ENOTDIR);
        }
        current = next;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_longest_matching_root_is_used_and_strangers_have_none() {
        let roots = vec![PathBuf::from("/srv"), PathBuf::from("/srv/app")];
        assert_eq!(
            split_root(&roots, Path::new("/srv/app/x")),
            Some((Path::new("/srv/app"), Path::new("x")))
        );
        assert_eq!(
            split_root(&roots, Path::new("/srv/app")),
            Some((Path::new("/srv/app"), Path::new("")))
        );
        assert_eq!(split_root(&roots, Path::new("/srvx")), None);
        assert_eq!(
            split_root(&[], Path::new("/a/b")),
            Some((Path::new("/"), Path::new("a/b")))
        );
    }

    #[test]
    fn a_real_directory_opens_and_a_swapped_one_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        let roots = vec![root.clone()];
        let dir = open_beneath(&roots, &root.join("a/b")).unwrap();
        assert_eq!(
            std::fs::canonicalize(dir.proc_path()).unwrap(),
            root.join("a/b")
        );
        std::fs::remove_dir(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/b")).unwrap();
        assert_eq!(
            open_beneath(&roots, &root.join("a/b")).unwrap_err(),
            OpenError::Swapped
        );
        assert_eq!(
            open_beneath(&roots, &root.join("gone")).unwrap_err(),
            OpenError::Gone
        );
        assert_eq!(
            open_beneath(&roots, Path::new("/etc")).unwrap_err(),
            OpenError::OutsideRoots
        );
    }

    #[test]
    fn a_directory_opens_from_the_caches_as_it_opens_waiting_and_a_swapped_one_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        let roots = vec![root.clone()];
        // The waiting walk first: it leaves the path in the kernel's caches.
        open_beneath(&roots, &root.join("a/b")).unwrap();
        let cached = open_beneath_cached(&roots, &root.join("a/b"));
        assert_eq!(cached.is_some(), crate::policy::kernel_walks_cached());
        if let Some(dir) = cached {
            assert_eq!(
                std::fs::canonicalize(dir.proc_path()).unwrap(),
                root.join("a/b")
            );
        }
        std::fs::remove_dir(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/b")).unwrap();
        assert!(open_beneath_cached(&roots, &root.join("a/b")).is_none());
        assert!(open_beneath_cached(&roots, &root.join("gone")).is_none());
        assert!(open_beneath_cached(&roots, Path::new("/etc")).is_none());
    }

    #[test]
    fn the_per_component_fallback_refuses_symlinks_too() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let root_fd = open_by_components(None, &root, flags).unwrap();
        assert!(open_by_components(Some(&root_fd), Path::new("a"), flags).is_ok());
        assert_eq!(
            open_by_components(Some(&root_fd), Path::new("link"), flags).unwrap_err(),
            Errno::ELOOP
        );
        // A file at the end opens when a file is asked for, never through a link.
        std::fs::write(root.join("a/f.png"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("a/l.png")).unwrap();
        let file = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        assert!(open_by_components(Some(&root_fd), Path::new("a/f.png"), file).is_ok());
        assert_eq!(
            open_by_components(Some(&root_fd), Path::new("a/l.png"), file).unwrap_err(),
            Errno::ELOOP
        );
        assert_eq!(
            open_by_components(Some(&root_fd), Path::new("a/f.png"), flags).unwrap_err(),
            Errno::ENOTDIR
        );
    }
}
