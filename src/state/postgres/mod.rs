//! The shared backend: every instance of one service keeps its state in one PostgreSQL
//! database (`TWOBOT_DATABASE_URL`).
//!
//! tokio-postgres speaks the protocol and deadpool keeps a small pool of connections per
//! instance ([`POOL_SIZE`]), so a slow statement on one request does not queue the
//! others behind it while the database still sees a bounded number of connections from
//! each instance. TLS follows the URL's `sslmode` (`tls.rs`); the schema is migrated at
//! connect (`migrate.rs`). Every method of [`StateStore`] is one statement in its own
//! transaction, or one short explicit transaction where two statements must agree
//! (`reap_dead_instances`), so a crashed instance never leaves half a change behind.

use std::fmt;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};

use crate::state::{StateError, now_ms};

mod database_url;
mod leases;
mod listen;
mod migrate;
mod oauth;
mod oauth_schema;
mod oauth_tokens;
mod sign_ins;
mod store;
mod tls;

pub use self::database_url::{DatabaseUrl, RootCerts, SslMode, redact_url};
pub use self::migrate::SCHEMA_VERSION;

/// Connections one instance holds at most.
pub const POOL_SIZE: usize = 8;

/// How long a request waits for a free pooled connection (or a new one) before it fails.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// The state of one service, in PostgreSQL.
pub struct PostgresStore {
    pool: Pool,
    url: DatabaseUrl,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.url.redacted)
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PostgresStore {
    /// Connect to `url` (a libpq-style URL), check it is reachable, and migrate its
    /// schema to [`SCHEMA_VERSION`] (refusing one that is newer).
    pub async fn connect(url: &str) -> Result<Self, StateError> {
        let url = DatabaseUrl::parse(url)?;
        let pool = pool(&url)?;
        let store = Self { pool, url };
        let mut client = store.client().await?;
        migrate::migrate(&mut client, now_ms()).await?;
        Ok(store)
    }

    /// The schema version the database at `url` is at, without migrating it (0: 2Bot
    /// never ran there): what `doctor` reports before anything is changed.
    pub async fn inspect(url: &str) -> Result<i64, StateError> {
        let url = DatabaseUrl::parse(url)?;
        let pool = pool(&url)?;
        let store = Self { pool, url };
        let client = store.client().await?;
        migrate::version(&**client).await
    }

    /// The URL connected to, its password hidden.
    pub fn redacted_url(&self) -> &str {
        &self.url.redacted
    }

    /// A pooled connection, or why none could be had.
    async fn client(&self) -> Result<Object, StateError> {
        self.pool
            .get()
            .await
            .map_err(|e| connect_error(&e, &self.url))
    }
}

fn pool(url: &DatabaseUrl) -> Result<Pool, StateError> {
    let tls = tls::connector(url.ssl, url.root_cert.as_ref())?;
    let manager = Manager::from_config(
        url.config.clone(),
        tls,
        ManagerConfig {
            // A connection the server closed fails its next statement once; checking
            // each one before use would add a round trip to every call.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(POOL_WAIT))
        .build()
        .map_err(|e| StateError::Connect(format!("{}: {e}", url.redacted)))
}

/// Why no connection could be had, saying what to do in the cases operators meet.
fn connect_error(e: &PoolError, url: &DatabaseUrl) -> StateError {
    let why = match e {
        PoolError::Backend(pg) => migrate::describe(pg),
        PoolError::Timeout(_) => format!(
            "no connection within {}s (the database is unreachable or every pooled connection is busy)",
            POOL_WAIT.as_secs()
        ),
        other => other.to_string(),
    };
    if why.contains("server does not support TLS") {
        return StateError::Connect(format!(
            "{}: the server does not offer TLS, and sslmode={} refuses a plain-text connection; turn on ssl in the server, or set sslmode=prefer (or disable) only on a network you trust",
            url.redacted,
            url.ssl.as_str()
        ));
    }
    StateError::Connect(format!("{}: {why}", url.redacted))
}
