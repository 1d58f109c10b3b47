//! Which approval requests a person may be asked at all. Codex 0.169 runs an approved
//! command outside its sandbox, and writes an approved patch even under `read-only`
//! (measured, docs/app-server-protocol.md), so a person's accept must never give a run
//! more than the policy lets its caller have: what would go beyond the caller's ceiling
//! is declined without asking, with the reason in the result. A permission request
//! (`request_permissions`) is judged like a file change by the paths it would make
//! writable; network access, or a grant 2Bot does not read, only at danger-full-access.

use std::path::{Component, Path, PathBuf};

use crate::run::SandboxMode;
use crate::run::control::ApprovalKind;

/// Why a request is declined without asking anyone: a person's accept would give the
/// run more than its caller's ceiling. The text is the note the result and the audit
/// line carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Declined {
    /// An approved command runs outside Codex's sandbox.
    #[error(
        "declined by policy: an approved command runs outside Codex's sandbox, and this caller may use at most {0}"
    )]
    Command(SandboxMode),
    /// Network access, or a grant 2Bot does not read.
    #[error(
        "declined by policy: network access (or a grant 2Bot does not read) goes beyond {0}, the most this caller may use"
    )]
    Wider(SandboxMode),
    /// A permission request for nothing is not worth a person's time.
    #[error("declined by policy: the request names no path to write")]
    NoPath,
    /// A file change that names no file.
    #[error("declined by policy: the change names no file")]
    NoFile,
    /// The caller's ceiling writes nothing.
    #[error("declined by policy: this caller may use at most {0}, which writes nothing")]
    ReadOnly(SandboxMode),
    /// A path beyond the run's directories.
    #[error(
        "declined by policy: {path} is outside the run's directories, and this caller may use at most {ceiling}"
    )]
    Outside {
        /// The first such path, as Codex gave it.
        path: String,
        /// The caller's ceiling.
        ceiling: SandboxMode,
    },
}

/// `Ok` when `kind` may be put to a person for a caller whose ceiling is `ceiling` and
/// whose run may write in `dirs` (canonical cwd and extra directories); else why not.
pub fn approvable(
    kind: &ApprovalKind,
    ceiling: SandboxMode,
    dirs: &[PathBuf],
) -> Result<(), Declined> {
    if ceiling == SandboxMode::DangerFullAccess {
        return Ok(());
    }
    match kind {
        ApprovalKind::Command { .. } => Err(Declined::Command(ceiling)),
        ApprovalKind::Permissions { wider: true, .. } => Err(Declined::Wider(ceiling)),
        ApprovalKind::Permissions { write, .. } => {
            if write.is_empty() {
                // Reading is what every sandbox allows; nothing to ask a person about
                // beyond what the caller has, but a request for nothing is not asked.
                return Err(Declined::NoPath);
            }
            writable(write, ceiling, dirs)
        }
        ApprovalKind::FileChange { paths, .. } => {
            if paths.is_empty() {
                return Err(Declined::NoFile);
            }
            writable(paths, ceiling, dirs)
        }
    }
}

/// A write to every one of `paths` stays within `ceiling`: workspace-write or more, and
/// each path inside the run's directories.
fn writable(paths: &[String], ceiling: SandboxMode, dirs: &[PathBuf]) -> Result<(), Declined> {
    if ceiling < SandboxMode::WorkspaceWrite {
        return Err(Declined::ReadOnly(ceiling));
    }
    match paths.iter().find(|p| !inside(Path::new(p), dirs)) {
        None => Ok(()),
        Some(outside) => Err(Declined::Outside {
            path: outside.clone(),
            ceiling,
        }),
    }
}

/// `path` is absolute, has no `..`, and (through the symlinks of its existing part) lies
/// beneath one of `dirs`.
fn inside(path: &Path, dirs: &[PathBuf]) -> bool {
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return false;
    }
    // Resolve the longest part that exists: a symlink in it must not lead outside.
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    let resolved = loop {
        if let Ok(real) = existing.canonicalize() {
            break rest
                .iter()
                .rev()
                .fold(real, |acc: PathBuf, part| acc.join(part));
        }
        match (
            existing.file_name().map(ToOwned::to_owned),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return false,
        }
    };
    dirs.iter().any(|d| resolved.starts_with(d))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn change(paths: &[&str]) -> ApprovalKind {
        ApprovalKind::FileChange {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            diff: String::new(),
        }
    }

    #[test]
    fn a_person_is_asked_only_for_what_stays_within_the_callers_ceiling() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let proj = root.join("proj");
        std::fs::create_dir(&proj).unwrap();
        std::os::unix::fs::symlink("/etc", proj.join("etc")).unwrap();
        let dirs = [proj.clone()];
        let p = |rel: &str| proj.join(rel).display().to_string();
        let command = ApprovalKind::Command {
            command: "make".into(),
            cwd: p(""),
        };
        let network = ApprovalKind::Permissions {
            summary: "network".into(),
            write: vec![],
            wider: true,
        };
        let grant = |paths: &[&str]| ApprovalKind::Permissions {
            summary: String::new(),
            write: paths.iter().map(|p| (*p).to_owned()).collect(),
            wider: false,
        };
        use SandboxMode::*;
        let table: Vec<(ApprovalKind, SandboxMode, bool)> = vec![
            (command.clone(), DangerFullAccess, true),
            (command.clone(), WorkspaceWrite, false),
            (command, ReadOnly, false),
            (network.clone(), DangerFullAccess, true),
            (network, WorkspaceWrite, false),
            (grant(&[&p("out")]), WorkspaceWrite, true),
            (grant(&[&p("out")]), ReadOnly, false),
            (grant(&["/etc"]), WorkspaceWrite, false),
            (grant(&["/etc"]), DangerFullAccess, true),
            (grant(&[&p("etc/cron.d")]), WorkspaceWrite, false),
            (grant(&[&p("out"), "/tmp/x"]), WorkspaceWrite, false),
            (grant(&[]), WorkspaceWrite, false),
            (change(&[&p("new/file.rs")]), WorkspaceWrite, true),
            (change(&[&p("src.rs")]), ReadOnly, false),
            (change(&["/etc/passwd"]), WorkspaceWrite, false),
            (change(&["/etc/passwd"]), DangerFullAccess, true),
            (change(&[&p("../outside")]), WorkspaceWrite, false),
            (change(&["relative.rs"]), WorkspaceWrite, false),
            (change(&[&p("etc/passwd")]), WorkspaceWrite, false),
            (change(&[&p("ok.rs"), "/tmp/x"]), WorkspaceWrite, false),
            (change(&[]), WorkspaceWrite, false),
        ];
        for (kind, ceiling, allowed) in table {
            let got = approvable(&kind, ceiling, &dirs);
            assert_eq!(got.is_ok(), allowed, "{kind:?} at {ceiling}: {got:?}");
            if let Err(note) = got {
                assert!(note.to_string().starts_with("declined by policy"), "{note}");
            }
        }
    }
}
