//! [`StateStore`] on PostgreSQL: each method's SQL, and rows read back into plain data.
//!
//! Statements are prepared once per pooled connection (deadpool's statement cache), so
//! a call costs one round trip. Conflicts are settled by the database, not by reading
//! first: the first owner of a thread wins through `ON CONFLICT DO NOTHING`, and two
//! instances reaping the same dead one cannot both mark its runs (the `DELETE … RETURNING`
//! locks the rows, and the second finds them gone).

use tokio_postgres::Row;

use super::migrate::{self, query};
use super::{PostgresStore, leases};
use crate::state::{
    BackendKind, InstanceRow, LeaseRow, RunRow, RunState, StateError, StateStore, ThreadRow,
};

/// The states `mark_lost` and the reaper end.
const NOT_FINAL: [&str; 2] = ["queued", "running"];

const RUN_COLUMNS: &str = "run_id, owner, quota_key, instance, state, created_ms, updated_ms, ended_ms, expires_ms, snapshot";

#[async_trait::async_trait]
impl StateStore for PostgresStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Postgres
    }

    async fn schema_version(&self) -> Result<i64, StateError> {
        let client = self.client().await?;
        migrate::version(&**client).await
    }

    async fn thread(&self, thread_id: &str) -> Result<Option<ThreadRow>, StateError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT thread_id, owner, instance, codex_home, created_ms FROM threads WHERE thread_id = $1",
            )
            .await
            .map_err(query)?;
        let row = client
            .query_opt(&stmt, &[&thread_id])
            .await
            .map_err(query)?;
        Ok(row.map(|r| ThreadRow {
            thread_id: r.get(0),
            owner: r.get(1),
            instance: r.get(2),
            codex_home: r.get(3),
            created_ms: r.get(4),
        }))
    }

    async fn insert_thread(&self, row: &ThreadRow) -> Result<bool, StateError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO threads (thread_id, owner, instance, codex_home, created_ms)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (thread_id) DO NOTHING",
            )
            .await
            .map_err(query)?;
        let inserted = client
            .execute(
                &stmt,
                &[
                    &row.thread_id,
                    &row.owner,
                    &row.instance,
                    &row.codex_home,
                    &row.created_ms,
                ],
            )
            .await
            .map_err(query)?;
        Ok(inserted == 1)
    }

    async fn upsert_run(&self, row: &RunRow) -> Result<(), StateError> {
        let snapshot = row.snapshot.as_ref().map(serde_json::Value::to_string);
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "INSERT INTO runs ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (run_id) DO UPDATE SET owner = EXCLUDED.owner,
                   quota_key = EXCLUDED.quota_key, instance = EXCLUDED.instance,
                   state = EXCLUDED.state, created_ms = EXCLUDED.created_ms,
                   updated_ms = EXCLUDED.updated_ms, ended_ms = EXCLUDED.ended_ms,
                   expires_ms = EXCLUDED.expires_ms, snapshot = EXCLUDED.snapshot"
            ))
            .await
            .map_err(query)?;
        client
            .execute(
                &stmt,
                &[
                    &row.run_id,
                    &row.owner,
                    &row.quota_key,
                    &row.instance,
                    &row.state.as_str(),
                    &row.created_ms,
                    &row.updated_ms,
                    &row.ended_ms,
                    &row.expires_ms,
                    &snapshot,
                ],
            )
            .await
            .map_err(query)?;
        Ok(())
    }

    async fn run(&self, run_id: &str, now_ms: i64) -> Result<Option<RunRow>, StateError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE run_id = $1 AND (expires_ms IS NULL OR expires_ms > $2)"
            ))
            .await
            .map_err(query)?;
        let row = client
            .query_opt(&stmt, &[&run_id, &now_ms])
            .await
            .map_err(query)?;
        row.as_ref().map(run_row).transpose()
    }

    async fn delete_expired_runs(&self, now_ms: i64) -> Result<u64, StateError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("DELETE FROM runs WHERE expires_ms <= $1")
            .await
            .map_err(query)?;
        client.execute(&stmt, &[&now_ms]).await.map_err(query)
    }

    async fn mark_lost(&self, instance: &str, now_ms: i64, ttl_ms: i64) -> Result<u64, StateError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE runs SET state = 'lost', updated_ms = $2::BIGINT, ended_ms = $2::BIGINT, expires_ms = $2::BIGINT + $3::BIGINT
                 WHERE instance = $1 AND state = ANY($4)",
            )
            .await
            .map_err(query)?;
        client
            .execute(&stmt, &[&instance, &now_ms, &ttl_ms, &&NOT_FINAL[..]])
            .await
            .map_err(query)
    }

    async fn heartbeat(&self, row: &InstanceRow) -> Result<(), StateError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO instances (instance, url, started_ms, heartbeat_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (instance) DO UPDATE SET url = EXCLUDED.url,
                   started_ms = EXCLUDED.started_ms, heartbeat_ms = EXCLUDED.heartbeat_ms",
            )
            .await
            .map_err(query)?;
        client
            .execute(
                &stmt,
                &[&row.instance, &row.url, &row.started_ms, &row.heartbeat_ms],
            )
            .await
            .map_err(query)?;
        Ok(())
    }

    async fn instance(&self, instance: &str) -> Result<Option<InstanceRow>, StateError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT instance, url, started_ms, heartbeat_ms FROM instances WHERE instance = $1",
            )
            .await
            .map_err(query)?;
        let row = client.query_opt(&stmt, &[&instance]).await.map_err(query)?;
        Ok(row.map(|r| InstanceRow {
            instance: r.get(0),
            url: r.get(1),
            started_ms: r.get(2),
            heartbeat_ms: r.get(3),
        }))
    }

    async fn reap_dead_instances(
        &self,
        stale_before_ms: i64,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Vec<String>, StateError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(query)?;
        let dead: Vec<String> = tx
            .query(
                "DELETE FROM instances WHERE heartbeat_ms < $1 RETURNING instance",
                &[&stale_before_ms],
            )
            .await
            .map_err(query)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !dead.is_empty() {
            tx.execute(
                "UPDATE runs SET state = 'lost', updated_ms = $2::BIGINT, ended_ms = $2::BIGINT, expires_ms = $2::BIGINT + $3::BIGINT
                 WHERE instance = ANY($1) AND state = ANY($4)",
                &[&dead, &now_ms, &ttl_ms, &&NOT_FINAL[..]],
            )
            .await
            .map_err(query)?;
        }
        tx.commit().await.map_err(query)?;
        Ok(dead)
    }

    async fn acquire_lease(
        &self,
        lease: &LeaseRow,
        limit: u64,
        now_ms: i64,
    ) -> Result<bool, StateError> {
        let mut client = self.client().await?;
        leases::acquire(&mut client, lease, limit, now_ms).await
    }

    async fn live_leases(&self, quota_key: &str, now_ms: i64) -> Result<u64, StateError> {
        leases::live(&self.client().await?, quota_key, now_ms).await
    }

    async fn release_lease(&self, lease_id: &str) -> Result<(), StateError> {
        leases::release(&self.client().await?, lease_id).await
    }

    async fn renew_leases(
        &self,
        instance: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<u64, StateError> {
        leases::renew(&self.client().await?, instance, expires_ms, now_ms).await
    }

    async fn drop_leases(&self, instance: &str) -> Result<(), StateError> {
        leases::drop_instance(&self.client().await?, instance).await
    }
}

/// A `runs` row (selected as [`RUN_COLUMNS`]) as plain data.
fn run_row(r: &Row) -> Result<RunRow, StateError> {
    let state: String = r.get(4);
    let snapshot: Option<String> = r.get(9);
    let run_id: String = r.get(0);
    let snapshot = snapshot
        .map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| StateError::Corrupt(format!("run {run_id}: snapshot: {e}")))?;
    Ok(RunRow {
        owner: r.get(1),
        quota_key: r.get(2),
        instance: r.get(3),
        state: RunState::parse(&state)?,
        created_ms: r.get(5),
        updated_ms: r.get(6),
        ended_ms: r.get(7),
        expires_ms: r.get(8),
        snapshot,
        run_id,
    })
}
