//! The state store a test runs on: the embedded SQLite in `TWOBOT_STATE_DIR` (the
//! default), or PostgreSQL through `TWOBOT_DATABASE_URL` (a fresh database on the shared
//! throw-away cluster, [`super::postgres`]). [`both_stores!`](crate::both_stores) runs a
//! suite's test once on each, so the behaviour a user sees (finished runs after a
//! restart, thread owners, quotas, the built-in authorization server's records) is
//! proven on both backends, not only in the stores' conformance tests.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

tokio::task_local! {
    /// The PostgreSQL URL the current test's servers use, set by [`both_stores!`]
    /// (`None`: SQLite).
    pub static STORE: Option<String>;
}

/// The current test's database URL, when it runs on PostgreSQL.
pub fn database_url() -> Option<String> {
    STORE.try_with(Clone::clone).ok().flatten()
}

/// Give `cmd` the current test's `TWOBOT_DATABASE_URL`, when it runs on PostgreSQL.
pub fn with_store(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    if let Some(url) = database_url() {
        cmd.env("TWOBOT_DATABASE_URL", url);
    }
    cmd
}

/// Run `test` on a fresh PostgreSQL database (held until it ends).
pub async fn on_postgres<F: std::future::Future<Output = Result<()>>>(test: F) -> Result<()> {
    let db = super::postgres::database();
    let url = db.url();
    let outcome = STORE.scope(Some(url), test).await;
    if outcome.is_err() {
        eprintln!("PostgreSQL log:\n{}", db.cluster.log());
    }
    outcome
}

/// A run's `state` column as the store holds it, read by the database itself (SQLite's
/// `state.db` in `state_dir`, or the test's PostgreSQL database), not through 2Bot.
pub async fn stored_run_state(state_dir: &Path, run_id: &str) -> Result<Option<String>> {
    if let Some(url) = database_url() {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(connection);
        let row = client
            .query_opt("SELECT state FROM runs WHERE run_id = $1", &[&run_id])
            .await?;
        drop(client);
        let _ = driver.await;
        return Ok(row.map(|r| r.get(0)));
    }
    let db = rusqlite::Connection::open_with_flags(
        state_dir.join("state.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let mut stmt = db.prepare("SELECT state FROM runs WHERE run_id = ?1")?;
    let mut rows = stmt.query([run_id])?;
    Ok(match rows.next()? {
        Some(row) => Some(row.get(0)?),
        None => None,
    })
}

/// Wait until the store holds `want` for the run (its writer is off the run's path, so
/// the row lands a moment after the caller saw the end).
pub async fn wait_stored(state_dir: &Path, run_id: &str, want: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = stored_run_state(state_dir, run_id).await?;
        if got.as_deref() == Some(want) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "run {run_id} is stored as {got:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `both_stores!(name);` before `async fn name() -> Result<()>` makes two tests of it,
/// `name::on_sqlite` and `name::on_postgres`, each starting its servers on that store
/// ([`with_store`]).
#[macro_export]
macro_rules! both_stores {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn on_sqlite() -> anyhow::Result<()> {
                $crate::common::stores::STORE
                    .scope(None, super::$name())
                    .await
            }
            #[tokio::test]
            async fn on_postgres() -> anyhow::Result<()> {
                $crate::common::stores::on_postgres(super::$name()).await
            }
        }
    };
}
