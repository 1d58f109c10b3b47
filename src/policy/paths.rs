//! Where a run may work and what it may read: a path parameter (`cwd`, each of `add_dirs`,
//! each image) resolved to a canonical path inside an allowed root, or refused with words
//! that give nothing away.
//!
//! The half of the policy decision that touches the file system, apart from the rules
//! on names and values in `mod.rs`.

use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2, readlink};

use super::Policy;
use super::refusal::{Refusal, Rule, quoted, refuse};

/// Resolve a path parameter (a directory, or with `dir = false` a regular file):
/// absolute or relative to the default cwd, symlinks followed, and inside an allowed
/// root by whole path components.
///
/// A refusal names the caller's input and the allowed roots, never a resolved path: a
/// symlink's target or `..` outside the roots (or the server's own directory) is none of the
/// caller's business. For the same reason refusals are no oracle for what exists elsewhere
/// on the machine: a path outside the roots by its very spelling is refused as outside
/// whether or not it exists, and a path spelled inside them that crossed a symlink on the
/// way is refused with one wording ([`Rule::ThroughSymlink`]) whatever lies behind the link.
pub(super) fn resolve_path(
    policy: &Policy,
    param: &str,
    raw: &str,
    dir: bool,
    look: Look,
) -> Result<PathBuf, Refusal> {
    if look == Look::CachedOnly {
        return dir
            .then(|| resolve_dir_cached(policy, raw))
            .flatten()
            .ok_or_else(|| refuse(param, quoted(raw), Rule::Unresolvable(NOT_CACHED.into())));
    }
    let value = quoted(raw);
    if raw.is_empty() {
        return Err(refuse(param, value, Rule::EmptyPath));
    }
    if raw.contains('\0') {
        return Err(refuse(param, value, Rule::NulByte));
    }
    if raw.starts_with('-') {
        return Err(refuse(param, value, Rule::FlagLike));
    }
    let roots = &policy.allowed_roots;
    let joined = policy.default_cwd.join(raw);
    let outside_by_spelling = !within_roots(roots, &lexically_normal(&joined));
    let resolved = std::fs::canonicalize(&joined);
    let admitted = resolved.as_ref().ok().filter(|r| within_roots(roots, r));
    // Without roots any path may be named, so there is nothing to hide.
    let hide = !roots.is_empty() && (outside_by_spelling || crossed_symlink(roots, &joined));
    let why = match admitted {
        Some(resolved) => match system_dir(resolved) {
            Some(system) if !dir => Rule::SystemPath(system),
            _ if dir && !resolved.is_dir() => Rule::NotADirectory {
                roots: roots_text(roots),
            },
            _ if !dir && !resolved.is_file() => Rule::NotAFile {
                roots: roots_text(roots),
            },
            _ => return Ok(resolved.clone()),
        },
        None => match resolved {
            Ok(_) => Rule::OutsideRoots {
                roots: roots_text(roots),
            },
            Err(e) => match e.kind() {
                std::io::ErrorKind::NotFound if !dir => Rule::NoSuchFile {
                    roots: roots_text(roots),
                },
                std::io::ErrorKind::NotFound => Rule::Missing {
                    roots: roots_text(roots),
                },
                std::io::ErrorKind::NotADirectory => Rule::NotADirectory {
                    roots: roots_text(roots),
                },
                // The kind only: an `io::Error`'s text could carry a path one day.
                other => Rule::Unresolvable(other.to_string()),
            },
        },
    };
    let why = match why {
        _ if hide && outside_by_spelling => Rule::OutsideRoots {
            roots: roots_text(roots),
        },
        _ if hide => Rule::ThroughSymlink {
            roots: roots_text(roots),
            what: if dir { "directory" } else { "regular file" },
        },
        why => why,
    };
    Err(refuse(param, value, why))
}

/// How a path parameter may be looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Look {
    /// Whatever it takes: on tokio's blocking pool, where a hung mount holds only its call.
    Waiting,
    /// From the kernel's lookup caches alone, never waiting on a disk or a server: a
    /// directory admitted as [`Look::Waiting`] would admit it, anything else refused
    /// (and then looked up again, waiting).
    CachedOnly,
}

/// `RESOLVE_CACHED` (Linux 5.12), which nix 0.30 does not name; older kernels refuse the
/// unknown flag with `EINVAL`, and the lookup then waits as before.
pub const RESOLVE_CACHED: ResolveFlag = ResolveFlag::from_bits_retain(0x20);

/// Whether this kernel walks paths from its lookup caches alone: with `false` (before
/// Linux 5.12) every check and preparation that names a path waits on the blocking pool.
pub fn kernel_walks_cached() -> bool {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(RESOLVE_CACHED);
    openat2(nix::fcntl::AT_FDCWD, "/", how).is_ok()
}

/// The refusal's reason for a path the kernel's caches could not answer for; never
/// shown, the check runs again on the blocking pool.
const NOT_CACHED: &str = "not in the kernel's lookup caches";

/// The directory `raw` names, when it resolves from the kernel's caches alone to a
/// canonical path inside the roots: the success of [`resolve_path`] with `dir`, and
/// nothing else (every refusal's wording needs looks that may wait).
///
/// `openat2` with `RESOLVE_CACHED` (Linux 5.12) walks the path, symlinks and `..`
/// included, in the dentry cache only and fails with `EAGAIN` where it would have to
/// ask a file system (a disk read, a FUSE or NFS server's revalidation); `O_DIRECTORY`
/// settles the type from the inode the walk found. The canonical name is the open
/// directory's, read back from `/proc/self/fd` as `realpath` would spell it.
fn resolve_dir_cached(policy: &Policy, raw: &str) -> Option<PathBuf> {
    if raw.is_empty() || raw.contains('\0') || raw.starts_with('-') {
        return None;
    }
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(RESOLVE_CACHED);
    let dir = openat2(nix::fcntl::AT_FDCWD, &policy.default_cwd.join(raw), how).ok()?;
    let name =
        PathBuf::from(readlink(&PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()))).ok()?);
    // A removed directory reads back as "NAME (deleted)", and a directory outside this
    // process's root without a leading "/": neither is a name to admit.
    let whole = name.is_absolute() && !name.as_os_str().as_bytes().ends_with(b" (deleted)");
    (whole && within_roots(&policy.allowed_roots, &name)).then_some(name)
}

/// Whether resolving `path` (spelled inside `roots`) meets a symlink: each prefix is
/// looked at with `lstat` while it is still inside the roots by its spelling, up to the
/// first symlink or the first prefix that does not exist. Before the first symlink, the
/// spelling is where the prefix really is, so nothing outside the roots is ever looked at.
fn crossed_symlink(roots: &[PathBuf], path: &Path) -> bool {
    let mut prefix = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => continue,
            std::path::Component::ParentDir => {
                prefix.pop();
            }
            other => prefix.push(other),
        }
        if !within_roots(roots, &prefix) {
            continue;
        }
        match std::fs::symlink_metadata(&prefix) {
            Ok(meta) if meta.file_type().is_symlink() => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// The system directory (`/proc`, `/sys`, `/dev`) a canonical path lies in, if any:
/// their files are the kernel's (another process's environment, devices), never images.
fn system_dir(path: &Path) -> Option<&'static str> {
    ["/proc", "/sys", "/dev"]
        .into_iter()
        .find(|dir| path.starts_with(dir))
}

/// The allowed roots as a refusal names them.
fn roots_text(roots: &[PathBuf]) -> String {
    if roots.is_empty() {
        return "any directory; CODEX_ALLOWED_ROOTS is not set".to_owned();
    }
    roots
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// `path` with `.` and `..` resolved by spelling alone (no symlinks followed): where the
/// caller asked to go, for deciding how to word a refusal, never for admitting a path.
fn lexically_normal(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// True when `path` is one of `roots` or below one, compared by components
/// (`/srv/app` admits `/srv/app/x` but not `/srv/application`). No roots admit everything.
pub fn within_roots(roots: &[PathBuf], path: &Path) -> bool {
    roots.is_empty() || roots.iter().any(|root| path.starts_with(root))
}

#[cfg(test)]
#[path = "paths_tests.rs"]
mod tests;
