//! Who started which Codex thread, so that only they can resume it.
//!
//! A thread id is all `codex exec resume` needs, and thread ids travel in results,
//! logs and screenshots. Over authenticated HTTP that must not be enough: 2Bot records
//! each resumable thread it started, for whom, and which instance and `CODEX_HOME` hold
//! it, in the state store ([`crate::state`]), and admission ([`crate::runs`]) checks it
//! before a resume takes a queue place. The record of older releases, `threads.jsonl`
//! in `TWOBOT_STATE_DIR`, is moved into the store once at start ([`ThreadOwners::migrate`])
//! and renamed `threads.jsonl.migrated`, never read again. Ephemeral threads, which
//! Codex does not save and so can never be resumed, are remembered in memory only (for
//! a clear refusal): the default `ephemeral=true` call writes nothing lasting.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::policy::Rule;
use crate::run::Principal;
use crate::state::{Lasting, StateError, ThreadRow, now_ms};

/// Ephemeral threads remembered at most (the most recent ones), only so that a resume
/// of one is refused with the reason; older ones are simply unknown.
pub const MAX_EPHEMERAL: usize = 4_096;

/// The file older releases kept the record in, and its name once migrated.
pub const LEGACY_FILE: &str = "threads.jsonl";
/// [`LEGACY_FILE`] after its records moved into the store.
pub const MIGRATED_FILE: &str = "threads.jsonl.migrated";

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

/// The record: resumable threads in the store, ephemeral ones in memory.
#[derive(Debug)]
pub struct ThreadOwners {
    lasting: Lasting,
    /// Where this instance's Codex keeps its threads (a resume must run there).
    codex_home: String,
    ephemeral: Mutex<Ephemeral>,
}

#[derive(Debug, Default)]
struct Ephemeral {
    owners: HashMap<String, String>,
    order: VecDeque<String>,
}

impl ThreadOwners {
    /// The record in `lasting`'s store, for threads started under `codex_home`.
    pub fn new(lasting: Lasting, codex_home: String) -> Self {
        Self {
            lasting,
            codex_home,
            ephemeral: Mutex::default(),
        }
    }

    /// Where this instance's Codex keeps its threads.
    pub fn codex_home(&self) -> &str {
        &self.codex_home
    }

    /// Move `threads.jsonl` in `dir` into the store, once: afterwards it is renamed
    /// [`MIGRATED_FILE`] and never read again. Torn lines (a crash mid-write) and
    /// ephemeral records are skipped; a thread the store knows keeps its owner. Returns
    /// how many records were read (0 when there is no file). On a store error the file
    /// stays, so the next start tries again.
    pub async fn migrate(&self, dir: &Path) -> Result<usize, MigrateError> {
        let file = dir.join(LEGACY_FILE);
        let text = match tokio::fs::read_to_string(&file).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(MigrateError::Read(file.display().to_string(), e)),
        };
        let records: Vec<ThreadRecord> = text
            .lines()
            .filter_map(|line| serde_json::from_str::<ThreadRecord>(line).ok())
            .filter(|r| !r.ephemeral)
            .collect();
        for record in &records {
            self.lasting.store.insert_thread(&self.row(record)).await?;
        }
        let migrated = dir.join(MIGRATED_FILE);
        tokio::fs::rename(&file, &migrated)
            .await
            .map_err(|e| MigrateError::Read(migrated.display().to_string(), e))?;
        tracing::info!(threads = records.len(), from = %file.display(), "thread owners moved into the state store");
        Ok(records.len())
    }

    fn row(&self, record: &ThreadRecord) -> ThreadRow {
        ThreadRow {
            thread_id: record.thread_id.clone(),
            owner: record.owner.clone(),
            instance: self.lasting.instance.id().to_owned(),
            codex_home: self.codex_home.clone(),
            created_ms: now_ms(),
        }
    }

    /// Check a resume of `thread_id` by `caller`. A store that cannot answer refuses
    /// (nobody resumes a thread whose owner is unknown because the database is down).
    pub async fn check(&self, thread_id: &str, caller: &Principal) -> Result<(), Rule> {
        let ephemeral = self
            .ephemeral
            .lock()
            .map_err(|_| Rule::Unresolvable("thread record unavailable".into()))?
            .owners
            .get(thread_id)
            .map(|owner| ThreadRecord {
                thread_id: thread_id.to_owned(),
                owner: owner.clone(),
                ephemeral: true,
            });
        if ephemeral.is_some() {
            return may_resume(ephemeral.as_ref(), caller);
        }
        let stored = match self.lasting.store.thread(thread_id).await {
            Ok(row) => row.map(|r| ThreadRecord {
                thread_id: r.thread_id,
                owner: r.owner,
                ephemeral: false,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "thread owner check: the state store did not answer");
                return Err(Rule::Unresolvable(
                    "the thread record is unavailable; try again".into(),
                ));
            }
        };
        may_resume(stored.as_ref(), caller)
    }

    /// Remember a thread (first owner wins: a resume never changes the owner). A store
    /// error is logged, never the run's failure.
    pub async fn record(&self, record: ThreadRecord) {
        if record.ephemeral {
            if let Ok(mut e) = self.ephemeral.lock()
                && !e.owners.contains_key(&record.thread_id)
            {
                e.owners.insert(record.thread_id.clone(), record.owner);
                e.order.push_back(record.thread_id);
                while e.order.len() > MAX_EPHEMERAL {
                    if let Some(old) = e.order.pop_front() {
                        e.owners.remove(&old);
                    }
                }
            }
            return;
        }
        if let Err(e) = self.lasting.store.insert_thread(&self.row(&record)).await {
            tracing::warn!(error = %e, thread_id = %record.thread_id, "cannot save the thread's owner");
        }
    }
}

/// Why `threads.jsonl` could not be moved into the store.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The old file could not be read or renamed.
    #[error("{0}: {1}")]
    Read(String, #[source] std::io::Error),
    /// The store refused a record.
    #[error(transparent)]
    State(#[from] StateError),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::Arc;

    use super::*;
    use crate::state::{SqliteStore, StateStore};

    fn rec(owner: &str, ephemeral: bool) -> ThreadRecord {
        ThreadRecord {
            thread_id: "t".into(),
            owner: owner.into(),
            ephemeral,
        }
    }

    async fn owners() -> (ThreadOwners, Arc<dyn StateStore>) {
        let store: Arc<dyn StateStore> = Arc::new(SqliteStore::open_in_memory().unwrap());
        let instance = crate::state::Instance::start(
            store.clone(),
            &crate::state::Location::Memory,
            None,
            std::time::Duration::from_secs(60),
            None,
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap();
        let lasting = Lasting {
            store: store.clone(),
            instance: Arc::new(instance),
        };
        (ThreadOwners::new(lasting, "/home/u/.codex".into()), store)
    }

    fn token(name: &str) -> Principal {
        Principal::Token { name: name.into() }
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

    /// The old file moves in once: torn lines and ephemeral records are skipped, the
    /// owner check holds afterwards, and the file is renamed so it is never read again.
    #[tokio::test]
    async fn threads_jsonl_is_migrated_once_and_then_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join(LEGACY_FILE);
        std::fs::write(
            &legacy,
            "{\"thread_id\":\"t1\",\"owner\":\"token:alice\",\"ephemeral\":false}\n\
             {\"thread_id\":\"e1\",\"owner\":\"token:alice\",\"ephemeral\":true}\n\
             {\"thread_id\":\"t1\",\"owner\":\"token:mallory\",\"ephemeral\":false}\n\
             {\"thread_id\":\"t2\",\"own",
        )
        .unwrap();
        let (owners, store) = owners().await;
        assert_eq!(owners.migrate(dir.path()).await.unwrap(), 2);
        assert!(!legacy.exists());
        assert!(dir.path().join(MIGRATED_FILE).exists());
        assert_eq!(owners.check("t1", &token("alice")).await, Ok(()));
        assert_eq!(
            owners.check("t1", &token("mallory")).await,
            Err(Rule::NotYourThread)
        );
        let row = store.thread("t1").await.unwrap().unwrap();
        assert_eq!(
            (row.instance.as_str(), row.codex_home.as_str()),
            (owners.lasting.instance.id(), "/home/u/.codex")
        );
        assert!(store.thread("e1").await.unwrap().is_none());
        // Nothing left to migrate: the renamed file is not read again.
        assert_eq!(owners.migrate(dir.path()).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn the_first_owner_stays_and_ephemeral_threads_stay_out_of_the_store() {
        let (owners, store) = owners().await;
        owners
            .record(ThreadRecord {
                thread_id: "t1".into(),
                owner: "token:alice".into(),
                ephemeral: false,
            })
            .await;
        owners
            .record(ThreadRecord {
                thread_id: "t1".into(),
                owner: "token:mallory".into(),
                ephemeral: false,
            })
            .await;
        owners
            .record(ThreadRecord {
                thread_id: "e1".into(),
                owner: "local".into(),
                ephemeral: true,
            })
            .await;
        assert_eq!(
            store.thread("t1").await.unwrap().unwrap().owner,
            "token:alice"
        );
        assert!(store.thread("e1").await.unwrap().is_none());
        assert_eq!(
            owners.check("e1", &Principal::Local).await,
            Err(Rule::EphemeralThread)
        );
    }

    /// Ephemeral records are capped, so memory stays small however many default calls run.
    #[tokio::test]
    async fn ephemeral_records_are_capped_apart_from_resumable_ones() {
        let (owners, _store) = owners().await;
        owners
            .record(ThreadRecord {
                thread_id: "keep".into(),
                owner: "token:alice".into(),
                ephemeral: false,
            })
            .await;
        for i in 0..MAX_EPHEMERAL + 500 {
            owners
                .record(ThreadRecord {
                    thread_id: format!("e{i}"),
                    owner: "local".into(),
                    ephemeral: true,
                })
                .await;
        }
        let alice = token("alice");
        assert_eq!(owners.check("keep", &alice).await, Ok(()));
        assert_eq!(
            owners.check("e0", &alice).await,
            Err(Rule::NotYourThread),
            "forgotten"
        );
        let last = format!("e{}", MAX_EPHEMERAL + 499);
        assert_eq!(
            owners.check(&last, &alice).await,
            Err(Rule::EphemeralThread)
        );
    }
}
