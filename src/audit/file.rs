//! The audit file: one JSON line per record, appended and flushed, every caller string
//! cut ([`super::cut`]), its size bounded by rotation.
//!
//! Created `0600` (records name principals, directories and models). When a line would
//! take the file past `TWOBOT_AUDIT_MAX_BYTES` it is rotated first: `audit.jsonl` becomes
//! `audit.jsonl.1`, `.1` becomes `.2`, and so on, keeping `TWOBOT_AUDIT_KEEP` old files
//! (the oldest is deleted; `0` keeps none). So the log never takes more than
//! `TWOBOT_AUDIT_MAX_BYTES × (TWOBOT_AUDIT_KEEP + 1)` of disk, whatever callers send.
//! An operator's logrotate still works alongside (move the file, send `SIGHUP`).
//!
//! The file is written by one thread of its own (`2bot-audit`), never by a runtime
//! thread: a record is serialized by its caller and queued, in order, and a slow or
//! stalled disk (or a full pipe, when the log is a FIFO to a shipper) holds up only that
//! thread. A reopen goes through the same queue, so every record lands in the file it was
//! written before or after. [`AuditLog::flush`] waits until everything queued is written;
//! the server flushes before it exits, and dropping the log drains the queue too.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use super::cut::{CUT_AT, cut_strings};
use super::now_rfc3339;
use super::unauthenticated::Unauthenticated;

/// How big the audit log may grow, and how often unauthenticated refusals are summed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditLimits {
    /// Bytes one file may hold before it is rotated (`TWOBOT_AUDIT_MAX_BYTES`).
    pub max_bytes: u64,
    /// Rotated files kept (`TWOBOT_AUDIT_KEEP`).
    pub keep: u32,
    /// Interval of the unauthenticated-refusal lines (`TWOBOT_AUDIT_SUMMARY_SEC`).
    pub summary_every: Duration,
}

impl Default for AuditLimits {
    fn default() -> Self {
        Self {
            max_bytes: 100 * 1024 * 1024,
            keep: 5,
            summary_every: Duration::from_secs(60),
        }
    }
}

/// Records waiting for the writer thread, at most. A caller beyond them waits for the
/// disk, as every caller did when records were written in place: an audit record is
/// never dropped for want of room.
const QUEUED_RECORDS: usize = 4096;

/// Where audit records go: the operator's file, reopened on demand, rotated by size,
/// written by its own thread.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    /// To the writer thread; `None` only while the log is dropped.
    queue: Option<SyncSender<Job>>,
    writer: Option<JoinHandle<()>>,
    keep_prompts: bool,
    limits: AuditLimits,
    unauthenticated: Unauthenticated,
}

/// What the writer thread is asked to do, in the order asked.
#[derive(Debug)]
enum Job {
    /// Append one whole line.
    Line(Vec<u8>),
    /// Reopen the file by name.
    Reopen,
    /// Say when everything queued before has been written.
    Flush(Sender<()>),
}

/// The writer thread's side: the open file, how to rotate it, and whom to tell when a
/// record is lost.
struct Writer {
    path: PathBuf,
    current: Current,
    limits: AuditLimits,
    on_lost: Box<dyn Fn() + Send>,
}

#[derive(Debug)]
struct Current {
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

fn open_append(path: &Path) -> Result<Current, OpenError> {
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

impl AuditLog {
    /// Open (or create, `0600`) `path` for appending, and start its writer thread, which
    /// calls `on_lost` for every record it could not write (the owner counts them).
    pub fn open(
        path: &Path,
        keep_prompts: bool,
        limits: AuditLimits,
        on_lost: impl Fn() + Send + 'static,
    ) -> Result<Self, OpenError> {
        let writer = Writer {
            path: path.to_owned(),
            current: open_append(path)?,
            limits,
            on_lost: Box::new(on_lost),
        };
        let (queue, jobs) = sync_channel(QUEUED_RECORDS);
        let thread = std::thread::Builder::new()
            .name("2bot-audit".into())
            .spawn(move || writer.run(jobs))
            .map_err(|source| OpenError {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            path: path.to_owned(),
            queue: Some(queue),
            writer: Some(thread),
            keep_prompts,
            limits,
            unauthenticated: Unauthenticated::default(),
        })
    }

    /// Whether records carry the prompt's text.
    pub fn keeps_prompts(&self) -> bool {
        self.keep_prompts
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reopen the file by name (after logrotate moved it), after the records queued so
    /// far. On failure the old file is kept, so records still land somewhere.
    pub fn reopen(&self) {
        self.send(Job::Reopen);
    }

    /// Wait until every record queued so far is written (or failed, and said so);
    /// `false` when the writer thread is gone.
    pub fn flush(&self) -> bool {
        let (done, written) = channel();
        self.send(Job::Flush(done)) && written.recv().is_ok()
    }

    fn send(&self, job: Job) -> bool {
        self.queue
            .as_ref()
            .is_some_and(|queue| queue.send(job).is_ok())
    }

    /// Reopen the file on every SIGHUP (logrotate moves it away, then sends one), on a
    /// task of the current runtime for as long as the process runs.
    pub fn reopen_on_sighup(self: &Arc<Self>) {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => {
                let log = self.clone();
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        log.reopen();
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: the audit log will not be reopened")
            }
        }
    }

    /// Queue `record` as one line (its strings cut) for the writer thread. Never fails
    /// the caller: `false` when it could not be queued (it did not serialize, or the
    /// writer is gone), logged. A record the writer then fails to write is logged there,
    /// and given to `on_lost`.
    pub fn write(&self, record: &impl Serialize) -> bool {
        let line = match self.line(record) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "audit record did not serialize");
                return false;
            }
        };
        let queued = self.send(Job::Line(line));
        if !queued {
            tracing::error!(
                path = %self.path.display(),
                "AUDIT RECORD LOST: the audit log's writer is gone"
            );
        }
        queued
    }

    /// The line for `record`: as serialized when no string is longer than [`CUT_AT`];
    /// otherwise with every such string cut (a kept prompt too, if the line would not fit
    /// in a file), its keys then in alphabetical order.
    fn line(&self, record: &impl Serialize) -> Result<Vec<u8>, serde_json::Error> {
        let mut line = serde_json::to_vec(record)?;
        if line.len() > CUT_AT {
            let mut value = serde_json::to_value(record)?;
            let spare: &[&str] = &["prompt", "text"];
            if cut_strings(&mut value, self.keep_prompts.then_some(spare)) {
                line = serde_json::to_vec(&value)?;
            }
            if line.len() as u64 >= self.limits.max_bytes {
                cut_strings(&mut value, None);
                line = serde_json::to_vec(&value)?;
            }
        }
        line.push(b'\n');
        Ok(line)
    }

    /// Count an unauthenticated refusal from `client` (an address key) for `reason`;
    /// `true` when it may also get a detailed record.
    pub fn unauthenticated(&self, client: &str, reason: &'static str) -> bool {
        self.unauthenticated.note(client, reason, now_rfc3339)
    }

    /// Write the interval's unauthenticated-refusal lines, one per address. `false`
    /// when one could not be written.
    pub fn write_summaries(&self) -> bool {
        let now = now_rfc3339();
        let mut ok = true;
        for record in self.unauthenticated.drain(&now) {
            ok &= self.write(&record);
        }
        ok
    }

    /// Write the summaries every interval until `shutdown`, and once more then.
    pub fn spawn_summaries(self: &Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let log = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(log.limits.summary_every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => { log.write_summaries(); }
                    () = shutdown.cancelled() => break,
                }
            }
            log.write_summaries();
        });
    }
}

impl Writer {
    /// Do the jobs in order until every sender is gone (the log dropped).
    fn run(mut self, jobs: Receiver<Job>) {
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

impl Drop for AuditLog {
    /// Close the queue and wait for the writer to write what it holds: nothing queued
    /// is lost when the server stops.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
