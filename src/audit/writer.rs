//! The audit log's writer thread: it owns the open file and does, in order, what
//! [`super::file::AuditLog`] queues: append a line (rotating first when the line would
//! take the file past its cap), reopen the file by name, or say that everything before
//! has been written. Only this thread touches the file, so a stalled disk stalls nothing
//! else.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};

use super::file::AuditLimits;

/// What the writer thread is asked to do, in the order asked.
#[derive(Debug)]
pub(super) enum Job {
    /// Append one whole line.
    Line(Vec<u8>),
    /// Reopen the file by name.
    Reopen,
    /// Say when everything queued before has been written.
    Flush(Sender<()>),
}

/// The writer thread's side: the open file, how to rotate it, and whom to tell when a
/// record is lost.
pub(super) struct Writer {
    pub(super) path: PathBuf,
    pub(super) current: Current,
    pub(super) limits: AuditLimits,
    pub(super) on_lost: Box<dyn Fn() + Send>,
}

#[derive(Debug)]
pub(super) struct Current {
    file: File,
    size: u64,
}

/// The audit file could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the audit log {path:?} (TWOBOT_AUDIT_LOG): {source}")]
pub struct OpenError {
    /// The file asked for.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

pub(super) fn open_append(path: &Path) -> Result<Current, OpenError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| OpenError {
            path: path.to_owned(),
            source,
        })?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(Current { file, size })
}

impl Writer {
    /// Do the jobs in order until every sender is gone (the log dropped).
    pub(super) fn run(mut self, jobs: Receiver<Job>) {
        for job in jobs {
            match job {
                Job::Line(line) => {
                    if let Err(e) = self.append(&line) {
                        (self.on_lost)();
                        tracing::error!(
                            error = %e,
                            path = %self.path.display(),
                            "AUDIT RECORD LOST: the audit log could not be written"
                        );
                    }
                }
                Job::Reopen => self.reopen(),
                Job::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    fn reopen(&mut self) {
        match open_append(&self.path) {
            Ok(file) => {
                self.current = file;
                tracing::info!(path = %self.path.display(), "audit log reopened");
            }
            Err(e) => {
                tracing::error!(error = %e, "audit log not reopened; still writing to the old file")
            }
        }
    }

    fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        let len = line.len() as u64;
        if self.current.size > 0 && self.current.size + len > self.limits.max_bytes {
            self.rotate()?;
        }
        // One write call per record: O_APPEND keeps lines whole even if another
        // process appends to the same file.
        self.current.file.write_all(line)?;
        self.current.file.flush()?;
        self.current.size += len;
        Ok(())
    }

    /// `path` → `path.1` → … → `path.KEEP` (dropped), then a new `path`.
    fn rotate(&mut self) -> std::io::Result<()> {
        let numbered = |n: u32| {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        let gone_is_fine = |r: std::io::Result<()>| match r {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        if self.limits.keep == 0 {
            gone_is_fine(std::fs::remove_file(&self.path))?;
        } else {
            for n in (1..self.limits.keep).rev() {
                gone_is_fine(std::fs::rename(numbered(n), numbered(n + 1)))?;
            }
            gone_is_fine(std::fs::rename(&self.path, numbered(1)))?;
        }
        self.current = open_append(&self.path).map_err(|e| e.source)?;
        tracing::info!(path = %self.path.display(), keep = self.limits.keep, "audit log rotated");
        Ok(())
    }
}
