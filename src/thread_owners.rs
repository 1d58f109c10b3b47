//! Who started which Codex thread, so that only they can resume it.
//!
//! A thread id is all `codex exec resume` needs, and thread ids travel in results,
//! logs and screenshots. Over authenticated HTTP that must not be enough: 2Bot keeps a
//! small record (`threads.jsonl` in `TWOBOT_STATE_DIR`) of each thread it started and
//! for whom, and admission ([`crate::runs`]) checks it before a resume takes a queue place. The record
//! is append-only, loaded at start, compacted when it grows past twice its live size,
//! and capped at [`MAX_THREADS`] (oldest forgotten first). Ephemeral threads, which
//! Codex does not save and so can never be resumed, are remembered in memory only (for
//! a clear refusal): the default `ephemeral=true` call writes nothing to disk.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::job::Principal;
use crate::policy::Rule;

/// Resumable threads remembered at most.
pub const MAX_THREADS: usize = 100_000;
/// Ephemeral threads remembered at most (the most recent ones), only so that a resume
/// of one is refused with the reason; older ones are simply unknown.
pub const MAX_EPHEMERAL: usize = 4_096;

/// One thread 2Bot started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRecord {
    /// Codex's thread id.
    pub thread_id: String,
    /// [`Principal::owner_key`] of who started it.
    pub owner: String,
    /// Started with `--ephemeral` (not saved by Codex).
    pub ephemeral: bool,
}

/// The decision, pure: may `caller` resume the thread whose record is `record`?
pub fn may_resume(record: Option<&ThreadRecord>, caller: &Principal) -> Result<(), Rule> {
    match (record, caller) {
        (Some(r), _) if r.ephemeral => Err(Rule::EphemeralThread),
        (Some(r), _) if r.owner == caller.owner_key() => Ok(()),
        // The local user owns this machine's Codex home and every thread in it.
        (_, Principal::Local) => Ok(()),
        (Some(_), _) => Err(Rule::NotYourThread),
        // Without auth there is nobody to tell apart; threads from elsewhere may resume.
        (None, Principal::Anonymous) => Ok(()),
        (None, _) => Err(Rule::NotYourThread),
    }
}

/// The record, in memory and (when a state dir is set) on disk.
#[derive(Debug, Default)]
pub struct ThreadOwners {
    inner: Mutex<Inner>,
    file: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Inner {
    threads: HashMap<String, ThreadRecord>,
    order: VecDeque<String>,
    ephemeral_order: VecDeque<String>,
    lines_on_disk: usize,
}

impl Inner {
    fn insert(&mut self, record: ThreadRecord) {
        let (order, cap) = if record.ephemeral {
            (&mut self.ephemeral_order, MAX_EPHEMERAL)
        } else {
            (&mut self.order, MAX_THREADS)
        };
        if self
            .threads
            .insert(record.thread_id.clone(), record.clone())
            .is_none()
        {
            order.push_back(record.thread_id);
        }
        while order.len() > cap {
            if let Some(old) = order.pop_front() {
                self.threads.remove(&old);
            }
        }
    }
}

impl ThreadOwners {
    /// A store that forgets everything at exit.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Load (or create) the record in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        create_private_dir(dir)?;
        let file = dir.join("threads.jsonl");
        let mut inner = Inner::default();
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                if !text.is_empty() && !text.ends_with('\n') {
                    // End a torn last line so the next append starts a fresh one.
                    open_private(&file, true)?.write_all(b"\n")?;
                }
                for line in text.lines() {
                    inner.lines_on_disk += 1;
                    // A torn last line (crash mid-write) is skipped, not fatal.
                    if let Ok(record) = serde_json::from_str::<ThreadRecord>(line) {
                        inner.insert(record);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Self {
            inner: Mutex::new(inner),
            file: Some(file),
        })
    }

    /// Number of threads remembered.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.threads.len()).unwrap_or(0)
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Check a resume of `thread_id` by `caller`.
    pub fn check(&self, thread_id: &str, caller: &Principal) -> Result<(), Rule> {
        let inner = self
            .inner
            .lock()
            .map_err(|_| Rule::Unresolvable("thread record unavailable".into()))?;
        may_resume(inner.threads.get(thread_id), caller)
    }

    /// Remember a thread (first owner wins: a resume never changes the owner).
    pub fn record(&self, record: ThreadRecord) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.threads.contains_key(&record.thread_id) {
            return;
        }
        inner.insert(record.clone());
        let Some(file) = &self.file else {
            return;
        };
        if record.ephemeral {
            return;
        }
        let result = if inner.lines_on_disk >= 2 * inner.order.len().max(1024) {
            let lines: Vec<String> = inner
                .order
                .iter()
                .filter_map(|id| inner.threads.get(id))
                .filter(|r| !r.ephemeral)
                .filter_map(|r| serde_json::to_string(r).ok())
                .collect();
            inner.lines_on_disk = lines.len();
            rewrite(file, &lines)
        } else {
            inner.lines_on_disk += 1;
            append(file, &record)
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, file = %file.display(), "cannot save the thread record");
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn open_private(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .mode(0o600)
        .open(path)
}

fn append(file: &Path, record: &ThreadRecord) -> std::io::Result<()> {
    let line = serde_json::to_string(record).map_err(std::io::Error::other)?;
    let mut f = open_private(file, true)?;
    writeln!(f, "{line}")
}

fn rewrite(file: &Path, lines: &[String]) -> std::io::Result<()> {
    let tmp = file.with_extension("jsonl.tmp");
    {
        let mut f = open_private(&tmp, false)?;
        for line in lines {
            writeln!(f, "{line}")?;
        }
        f.sync_all()?;
    }
    std::fs::rename(tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(owner: &str, ephemeral: bool) -> ThreadRecord {
        ThreadRecord {
            thread_id: "t".into(),
            owner: owner.into(),
            ephemeral,
        }
    }

    #[test]
    fn only_the_owner_resumes_and_ephemeral_threads_never_do() {
        let alice = Principal::Token {
            name: "alice".into(),
        };
        let jwt_alice = Principal::Authenticated {
            issuer: Some("https://idp.example".into()),
            subject: "alice".into(),
            scopes: vec![],
        };
        let cases = [
            (Some(rec("token:alice", false)), alice.clone(), Ok(())),
            (
                Some(rec("token:alice", false)),
                jwt_alice.clone(),
                Err(Rule::NotYourThread),
            ),
            (
                Some(rec("token:alice", true)),
                alice.clone(),
                Err(Rule::EphemeralThread),
            ),
            (None, alice, Err(Rule::NotYourThread)),
            (None, jwt_alice, Err(Rule::NotYourThread)),
            (None, Principal::Anonymous, Ok(())),
            (
                Some(rec("token:alice", false)),
                Principal::Anonymous,
                Err(Rule::NotYourThread),
            ),
            (Some(rec("anonymous", false)), Principal::Anonymous, Ok(())),
            (None, Principal::Local, Ok(())),
            (Some(rec("token:alice", false)), Principal::Local, Ok(())),
            (
                Some(rec("local", true)),
                Principal::Local,
                Err(Rule::EphemeralThread),
            ),
        ];
        for (record, caller, want) in cases {
            assert_eq!(
                may_resume(record.as_ref(), &caller),
                want,
                "{record:?} {caller:?}"
            );
        }
    }

    #[test]
    fn the_record_survives_a_restart_and_skips_a_torn_line() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = ThreadOwners::open(dir.path())?;
        store.record(ThreadRecord {
            thread_id: "t1".into(),
            owner: "token:alice".into(),
            ephemeral: false,
        });
        // A second record for the same thread does not change its owner.
        store.record(ThreadRecord {
            thread_id: "t1".into(),
            owner: "token:mallory".into(),
            ephemeral: false,
        });
        drop(store);
        let path = dir.path().join("threads.jsonl");
        let mut text = std::fs::read_to_string(&path)?;
        text.push_str("{\"thread_id\":\"t2\",\"own");
        std::fs::write(&path, text)?;
        let store = ThreadOwners::open(dir.path())?;
        assert_eq!(store.len(), 1);
        let alice = Principal::Token {
            name: "alice".into(),
        };
        assert_eq!(store.check("t1", &alice), Ok(()));
        let mallory = Principal::Token {
            name: "mallory".into(),
        };
        assert_eq!(store.check("t1", &mallory), Err(Rule::NotYourThread));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path)?.permissions().mode() & 0o777,
            0o600
        );
        Ok(())
    }

    /// The default call (ephemeral) writes nothing; it is still refused clearly on resume.
    #[test]
    fn ephemeral_threads_are_remembered_in_memory_only() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = ThreadOwners::open(dir.path())?;
        for i in 0..100 {
            store.record(ThreadRecord {
                thread_id: format!("e{i}"),
                owner: "local".into(),
                ephemeral: true,
            });
        }
        assert_eq!(
            store.check("e7", &Principal::Local),
            Err(Rule::EphemeralThread)
        );
        let path = dir.path().join("threads.jsonl");
        assert!(
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .is_empty()
        );
        Ok(())
    }

    /// Ephemeral records are capped on their own, so they never push out resumable ones
    /// and memory stays small however many default calls run.
    #[test]
    fn ephemeral_records_are_capped_apart_from_resumable_ones() {
        let store = ThreadOwners::in_memory();
        store.record(ThreadRecord {
            thread_id: "keep".into(),
            owner: "token:alice".into(),
            ephemeral: false,
        });
        for i in 0..MAX_EPHEMERAL + 500 {
            store.record(ThreadRecord {
                thread_id: format!("e{i}"),
                owner: "local".into(),
                ephemeral: true,
            });
        }
        assert_eq!(store.len(), MAX_EPHEMERAL + 1);
        let alice = Principal::Token {
            name: "alice".into(),
        };
        assert_eq!(store.check("keep", &alice), Ok(()));
        assert_eq!(
            store.check("e0", &alice),
            Err(Rule::NotYourThread),
            "forgotten"
        );
        let last = format!("e{}", MAX_EPHEMERAL + 499);
        assert_eq!(store.check(&last, &alice), Err(Rule::EphemeralThread));
    }
}
