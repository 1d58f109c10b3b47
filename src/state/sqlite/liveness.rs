//! Which earlier 2Bot processes sharing this state directory are gone, at once and for sure.
//!
//! SQLite is one host, yet several 2Bot processes may share its directory: the HTTP server
//! and the stdio sessions desktop clients start use the same default. A heartbeat alone
//! would make a restarted server wait before it could call a killed predecessor's runs
//! lost, and "every earlier process is dead" would lose a live neighbour's runs. So each
//! process holds an exclusive `flock` on `instances/<id>.lock` for its whole life; the
//! kernel drops it when the process ends, however it ends (SIGKILL too). A lock another
//! process can take names a dead instance.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::state::StateError;

/// The directory of lock files, inside the state directory.
pub const DIR: &str = "instances";

/// This process's lock; held until the process ends.
#[derive(Debug)]
pub struct Lock {
    _file: Flock<File>,
    path: PathBuf,
}

impl Lock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |e| StateError::Connect(format!("{}: {e}", path.display()))
}

fn errno(path: &Path) -> impl FnOnce((File, Errno)) -> StateError + '_ {
    move |(_, e)| StateError::Connect(format!("{}: flock: {e}", path.display()))
}

/// Take the lock of instance `id` in `state_dir`. It is locked under a temporary name
/// and then renamed, so nobody ever sees an unlocked `<id>.lock` of a live instance.
pub fn hold(state_dir: &Path, id: &str) -> Result<Lock, StateError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = state_dir.join(DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io(&dir))?;
    let tmp = dir.join(format!(".{id}.tmp"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    let file = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(errno(&tmp))?;
    let path = dir.join(format!("{id}.lock"));
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(Lock { _file: file, path })
}

/// The instances other than `me` whose lock nobody holds: their processes are gone.
/// Their lock files are removed (while locked, so a second reaper skips them).
pub fn dead(state_dir: &Path, me: &str) -> Result<Vec<String>, StateError> {
    let dir = state_dir.join(DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir)(e)),
    };
    let mut dead = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(id) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".lock"))
            .filter(|id| *id != me)
            .map(str::to_owned)
        else {
            continue;
        };
        // Someone else may have reaped and removed it meanwhile: then it is not ours to report.
        let Ok(file) = File::open(&path) else {
            continue;
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(_held) => {
                if std::fs::remove_file(&path).is_ok() {
                    dead.push(id);
                }
            }
            Err((_, Errno::EWOULDBLOCK)) => {}
            Err(e) => return Err(errno(&path)(e)),
        }
    }
    Ok(dead)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_held_lock_is_alive_and_a_released_one_is_dead_once() {
        let dir = tempfile::tempdir().unwrap();
        let me = hold(dir.path(), "me").unwrap();
        let alive = hold(dir.path(), "alive").unwrap();
        let gone = hold(dir.path(), "gone").unwrap();
        drop(gone);
        assert_eq!(dead(dir.path(), "me").unwrap(), ["gone"]);
        // Reaped once: its file is removed.
        assert!(dead(dir.path(), "me").unwrap().is_empty());
        assert!(alive.path().exists() && me.path().exists());
        drop(alive);
        assert_eq!(dead(dir.path(), "me").unwrap(), ["alive"]);
        assert!(me.path().exists(), "my own lock is never reaped");
    }

    #[test]
    fn no_lock_directory_means_nobody_died() {
        let dir = tempfile::tempdir().unwrap();
        assert!(dead(dir.path(), "me").unwrap().is_empty());
    }
}
