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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError, channel, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::cut::{CUT_AT, cut_strings};
use super::now_rfc3339;
use super::unauthenticated::Unauthenticated;
pub use super::writer::OpenError;
use super::writer::{Job, Writer, open_append};

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

/// How long a dropped log waits for its writer to write what it holds.
pub const DRAIN_ON_DROP: Duration = Duration::from_secs(10);

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
        self.flush_within(Duration::MAX)
    }

    /// [`Self::flush`], waiting at most `limit`: `false` when records are still queued
    /// then (the file takes no writes) or the writer is gone.
    pub fn flush_within(&self, limit: Duration) -> bool {
        let Some(queue) = &self.queue else {
            return false;
        };
        // `None`: no deadline (`flush`).
        let deadline = Instant::now().checked_add(limit);
        let (done, written) = channel();
        // A full queue of a file that takes no writes must not hold this wait past the
        // limit either, so the request to say "done" waits its turn by polling.
        let mut job = Job::Flush(done);
        loop {
            match queue.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return false;
                    }
                    job = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        match deadline {
            Some(d) => written
                .recv_timeout(d.saturating_duration_since(Instant::now()))
                .is_ok(),
            None => written.recv().is_ok(),
        }
    }

    /// Wait, at most [`DRAIN_ON_DROP`], until everything queued is written: what the
    /// server does before it exits. A file that takes no writes then loses what is left,
    /// said (`AUDIT RECORDS LOST`), rather than keep the process from ending.
    pub fn drain_at_exit(&self) -> bool {
        let drained = self.flush_within(DRAIN_ON_DROP);
        if !drained && self.queue.is_some() {
            tracing::error!(
                path = %self.path.display(),
                "AUDIT RECORDS LOST: the audit log took no writes for {DRAIN_ON_DROP:?} at exit; the records still queued are dropped"
            );
        }
        drained
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

impl Drop for AuditLog {
    /// Wait (at most [`DRAIN_ON_DROP`]) for the writer to write what it holds, so
    /// nothing queued is lost when the server stops; a file that takes no writes then
    /// loses what is left, said once, rather than keep the process from ending.
    fn drop(&mut self) {
        let drained = self.drain_at_exit();
        drop(self.queue.take());
        if let Some(writer) = self.writer.take()
            && drained
        {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
