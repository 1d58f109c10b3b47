//! [`StateStore`] for [`SqliteStore`]: each method one statement or one transaction.

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::{SqliteStore, leases, schema};
use crate::state::{
    BackendKind, InstanceRow, LeaseRow, RunRow, RunState, StateError, StateStore, ThreadRow,
};

const RUN_COLUMNS: &str = "run_id, owner, quota_key, instance, state, created_ms, updated_ms, \
                           ended_ms, expires_ms, snapshot";

/// A `runs` row read with [`RUN_COLUMNS`]; a bad state or snapshot is `Corrupt`.
fn run_row(row: &Row<'_>) -> rusqlite::Result<Result<RunRow, StateError>> {
    let state: String = row.get(4)?;
    let snapshot: Option<String> = row.get(9)?;
    let run_id: String = row.get(0)?;
    let parsed = RunState::parse(&state).and_then(|state| {
        let snapshot = snapshot
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| StateError::Corrupt(format!("run {run_id}: snapshot: {e}")))?;
        Ok((state, snapshot))
    });
    let (owner, quota_key, instance) = (row.get(1)?, row.get(2)?, row.get(3)?);
    let (created_ms, updated_ms, ended_ms, expires_ms) =
        (row.get(5)?, row.get(6)?, row.get(7)?, row.get(8)?);
    Ok(parsed.map(|(state, snapshot)| RunRow {
        run_id,
        owner,
        quota_key,
        instance,
        state,
        created_ms,
        updated_ms,
        ended_ms,
        expires_ms,
        snapshot,
    }))
}

/// Mark `instance`'s unfinished runs lost, in `tx`.
fn lose(tx: &Transaction<'_>, instance: &str, now_ms: i64, ttl_ms: i64) -> rusqlite::Result<u64> {
    let n = tx.execute(
        "UPDATE runs SET state = 'lost', ended_ms = ?2, updated_ms = ?2, expires_ms = ?3
         WHERE instance = ?1 AND state IN ('queued', 'running')",
        params![instance, now_ms, now_ms.saturating_add(ttl_ms)],
    )?;
    Ok(u64::try_from(n).unwrap_or(u64::MAX))
}

#[async_trait::async_trait]
impl StateStore for SqliteStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    async fn schema_version(&self) -> Result<i64, StateError> {
        self.call(|conn| schema::version(conn)).await
    }

    async fn thread(&self, thread_id: &str) -> Result<Option<ThreadRow>, StateError> {
        let thread_id = thread_id.to_owned();
        self.call(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT thread_id, owner, instance, codex_home, created_ms
                     FROM threads WHERE thread_id = ?1",
                    params![thread_id],
                    |r| {
                        Ok(ThreadRow {
                            thread_id: r.get(0)?,
                            owner: r.get(1)?,
                            instance: r.get(2)?,
                            codex_home: r.get(3)?,
                            created_ms: r.get(4)?,
                        })
                    },
                )
                .optional()?)
        })
        .await
    }

    async fn insert_thread(&self, row: &ThreadRow) -> Result<bool, StateError> {
        let row = row.clone();
        self.call(move |conn| {
            // First owner wins: a resume (or a second record) never changes the owner.
            let n = conn.execute(
                "INSERT INTO threads (thread_id, owner, instance, codex_home, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (thread_id) DO NOTHING",
                params![
                    row.thread_id,
                    row.owner,
                    row.instance,
                    row.codex_home,
                    row.created_ms
                ],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn upsert_run(&self, row: &RunRow) -> Result<(), StateError> {
        let row = row.clone();
        let snapshot = row
            .snapshot
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StateError::Query(format!("run {}: snapshot: {e}", row.run_id)))?;
        self.call(move |conn| {
            conn.execute(
                &format!(
                    "INSERT OR REPLACE INTO runs ({RUN_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    row.run_id,
                    row.owner,
                    row.quota_key,
                    row.instance,
                    row.state.as_str(),
                    row.created_ms,
                    row.updated_ms,
                    row.ended_ms,
                    row.expires_ms,
                    snapshot
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn run(&self, run_id: &str, now_ms: i64) -> Result<Option<RunRow>, StateError> {
        let run_id = run_id.to_owned();
        self.call(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs
                     WHERE run_id = ?1 AND (expires_ms IS NULL OR expires_ms > ?2)"
                ),
                params![run_id, now_ms],
                run_row,
            )
            .optional()?
            .transpose()
        })
        .await
    }

    async fn delete_expired_runs(&self, now_ms: i64) -> Result<u64, StateError> {
        self.call(move |conn| {
            let n = conn.execute(
                "DELETE FROM runs WHERE expires_ms IS NOT NULL AND expires_ms <= ?1",
                params![now_ms],
            )?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
        .await
    }

    async fn mark_lost(&self, instance: &str, now_ms: i64, ttl_ms: i64) -> Result<u64, StateError> {
        let instance = instance.to_owned();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let n = lose(&tx, &instance, now_ms, ttl_ms)?;
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    async fn heartbeat(&self, row: &InstanceRow) -> Result<(), StateError> {
        let row = row.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO instances (instance, url, started_ms, heartbeat_ms)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (instance) DO UPDATE
                 SET url = excluded.url, heartbeat_ms = excluded.heartbeat_ms",
                params![row.instance, row.url, row.started_ms, row.heartbeat_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn instance(&self, instance: &str) -> Result<Option<InstanceRow>, StateError> {
        let instance = instance.to_owned();
        self.call(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT instance, url, started_ms, heartbeat_ms
                     FROM instances WHERE instance = ?1",
                    params![instance],
                    |r| {
                        Ok(InstanceRow {
                            instance: r.get(0)?,
                            url: r.get(1)?,
                            started_ms: r.get(2)?,
                            heartbeat_ms: r.get(3)?,
                        })
                    },
                )
                .optional()?)
        })
        .await
    }

    async fn reap_dead_instances(
        &self,
        stale_before_ms: i64,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Vec<String>, StateError> {
        self.call(move |conn| {
            // One immediate transaction: two reapers never both see the same instance
            // half-reaped, and an instance's heartbeat cannot land between the two steps.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let dead: Vec<String> = tx
                .prepare("SELECT instance FROM instances WHERE heartbeat_ms < ?1")?
                .query_map(params![stale_before_ms], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for instance in &dead {
                lose(&tx, instance, now_ms, ttl_ms)?;
                tx.execute(
                    "DELETE FROM instances WHERE instance = ?1",
                    params![instance],
                )?;
            }
            tx.commit()?;
            Ok(dead)
        })
        .await
    }

    async fn acquire_lease(
        &self,
        lease: &LeaseRow,
        limit: u64,
        now_ms: i64,
    ) -> Result<bool, StateError> {
        let lease = lease.clone();
        self.call(move |conn| leases::acquire(conn, &lease, limit, now_ms))
            .await
    }

    async fn live_leases(&self, quota_key: &str, now_ms: i64) -> Result<u64, StateError> {
        let key = quota_key.to_owned();
        self.call(move |conn| leases::live(conn, &key, now_ms))
            .await
    }

    async fn release_lease(&self, lease_id: &str) -> Result<(), StateError> {
        let id = lease_id.to_owned();
        self.call(move |conn| leases::release(conn, &id)).await
    }

    async fn renew_leases(
        &self,
        instance: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<u64, StateError> {
        let me = instance.to_owned();
        self.call(move |conn| leases::renew(conn, &me, expires_ms, now_ms))
            .await
    }

    async fn drop_leases(&self, instance: &str) -> Result<(), StateError> {
        let me = instance.to_owned();
        self.call(move |conn| leases::drop_instance(conn, &me))
            .await
    }
}
