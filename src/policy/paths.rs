//! Where a run may work and what it may read: a path parameter (`cwd`, each of `add_dirs`,
//! each image) resolved to a canonical path inside an allowed root, or refused with words
//! that give nothing away.
//!
//! The half of the policy decision that touches the file system, apart from the rules
//! on names and values in `mod.rs`.

use std::path::{Path, PathBuf};

use super::{Policy, Refusal, Rule, quoted, refuse};

/// Resolve a path parameter (a directory, or with `dir = false` a regular file):
/// absolute or relative to the default cwd, symlinks followed, and inside an allowed
/// root by whole path components.
///
/// A refusal names the caller's input and the allowed roots, never a resolved path: a
/// symlink's target or `..` outside the roots (or the server's own directory) is none of the
/// caller's business. For the same reason a path that is outside the roots by its very
/// spelling is refused as outside whether or not it exists, so refusals are no oracle for
/// what exists elsewhere on the machine.
pub(super) fn resolve_path(
    policy: &Policy,
    param: &str,
    raw: &str,
    dir: bool,
) -> Result<PathBuf, Refusal> {
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
    let roots = roots_text(&policy.allowed_roots);
    let joined = policy.default_cwd.join(raw);
    let resolved = match std::fs::canonicalize(&joined) {
        Ok(p) => p,
        Err(_) if !within_roots(&policy.allowed_roots, &lexically_normal(&joined)) => {
            return Err(refuse(param, value, Rule::OutsideRoots { roots }));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir => {
            return Err(refuse(param, value, Rule::NoSuchFile { roots }));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse(param, value, Rule::Missing { roots }));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(refuse(param, value, Rule::NotADirectory { roots }));
        }
        // The kind only: an `io::Error`'s text could carry a path one day.
        Err(e) => {
            return Err(refuse(
                param,
                value,
                Rule::Unresolvable(e.kind().to_string()),
            ));
        }
    };
    // Roots before the type: a file outside the roots is "outside", not "not a directory".
    if !within_roots(&policy.allowed_roots, &resolved) {
        return Err(refuse(param, value, Rule::OutsideRoots { roots }));
    }
    if dir && !resolved.is_dir() {
        return Err(refuse(param, value, Rule::NotADirectory { roots }));
    }
    if !dir && !resolved.is_file() {
        return Err(refuse(param, value, Rule::NotAFile { roots }));
    }
    Ok(resolved)
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
