//! `2bot-mcp oauth list`, `oauth revoke <client|all>` and `oauth delete-client <client>`:
//! the operator's view of the built-in authorization server's state, the brake on it, and
//! the broom (a client that should not be there at all), usable while the server
//! runs (the store's transactions make the two safe together). They act on the state
//! store the server uses: PostgreSQL with TWOBOT_DATABASE_URL (every instance of the
//! service at once), else `state.db` in the state directory. They need only that, so
//! they run before the configuration is loaded and validated. How `list` draws its table
//! is `listing.rs`.

mod listing;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use self::listing::render;
pub use self::listing::{shown, utc};
use crate::config::OauthCommand;
use crate::state::{Location, StateError, StateStore};

/// What `oauth revoke` records as the reason a grant ended.
const REVOKE_REASON: &str = "revoked by the operator (2bot-mcp oauth revoke)";

/// Why an `oauth` command failed; printed as one `error:` line.
#[derive(Debug, thiserror::Error)]
pub enum OauthCliError {
    /// Neither TWOBOT_DATABASE_URL, TWOBOT_STATE_DIR nor a default (XDG_DATA_HOME, HOME).
    #[error(
        "no TWOBOT_STATE_DIR and no HOME: set TWOBOT_STATE_DIR to the server's state directory (or TWOBOT_DATABASE_URL to its database)"
    )]
    NoStateDir,
    /// The state directory holds no state.
    #[error("no built-in authorization server state in {0}")]
    NoState(String),
    /// `revoke` of a client id the store does not know.
    #[error("no client {id:?} in {db} (`2bot-mcp oauth list` shows the client ids)")]
    UnknownClient {
        /// The id given.
        id: String,
        /// The store.
        db: String,
    },
    /// The store could not be opened or read.
    #[error("{db}: {source}")]
    Store {
        /// The store (a file, or the URL without its password).
        db: String,
        /// What failed.
        source: StateError,
    },
}

impl OauthCliError {
    /// 2 for a set-up that cannot work, 1 for a command that failed.
    fn exit_code(&self) -> u8 {
        match self {
            Self::NoStateDir => 2,
            _ => 1,
        }
    }
}

/// Where the server keeps its state: `database_url` (TWOBOT_DATABASE_URL) if set, else
/// `state_dir` (TWOBOT_STATE_DIR or its default).
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The state directory.
    pub state_dir: Option<&'a Path>,
    /// The shared database.
    pub database_url: Option<&'a str>,
}

/// Run an `oauth` subcommand against `target`.
pub fn run(command: &OauthCommand, target: Target<'_>) -> ExitCode {
    if *command == OauthCommand::HashPassword {
        return crate::cli::hash_password::run();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        match command {
            OauthCommand::List => list(target, now()).await,
            OauthCommand::Revoke { target: which } => revoke(target, which, now()).await,
            OauthCommand::DeleteClient { client_id } => delete_client(target, client_id).await,
            OauthCommand::HashPassword => Ok(String::new()),
        }
    });
    match outcome {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let verb = match command {
                OauthCommand::Revoke { .. } => "revoke",
                OauthCommand::DeleteClient { .. } => "delete-client",
                _ => "list",
            };
            eprintln!("error: oauth {verb}: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// `oauth list`: every client and its live grants, or why there are none.
pub async fn list(target: Target<'_>, now: i64) -> Result<String, OauthCliError> {
    let (store, db) = match open(target).await {
        Err(OauthCliError::NoState(dir)) => {
            return Ok(format!("no built-in authorization server state in {dir}\n"));
        }
        other => other?,
    };
    let listing = store
        .listing(now)
        .await
        .map_err(|source| OauthCliError::Store { db, source })?;
    Ok(render(&listing))
}

/// `oauth revoke <client|all>`: end the grants; says how many ended.
pub async fn revoke(target: Target<'_>, which: &str, now: i64) -> Result<String, OauthCliError> {
    let (store, db) = open(target).await?;
    let failed = |source| OauthCliError::Store {
        db: db.clone(),
        source,
    };
    let (ended, whose) = if which == "all" {
        (
            store
                .revoke_grants(None, REVOKE_REASON, now)
                .await
                .map_err(failed)?,
            "all clients".to_owned(),
        )
    } else {
        let client = store.client(which).await.map_err(failed)?.ok_or_else(|| {
            OauthCliError::UnknownClient {
                id: which.to_owned(),
                db: db.clone(),
            }
        })?;
        let ended = store
            .revoke_grants(Some(&client.id), REVOKE_REASON, now)
            .await
            .map_err(failed)?;
        (
            ended,
            format!("client {} ({})", shown(&client.id), shown(&client.name)),
        )
    };
    Ok(if ended == 0 {
        format!("no live grant of {whose}: nothing to revoke\n")
    } else {
        format!(
            "revoked {ended} grant(s) of {whose}: their refresh tokens stop working now, their access tokens at their next use\n"
        )
    })
}

/// `oauth delete-client <client>`: the client, its grants, codes and refresh tokens go.
pub async fn delete_client(target: Target<'_>, id: &str) -> Result<String, OauthCliError> {
    let (store, db) = open(target).await?;
    let failed = |source| OauthCliError::Store {
        db: db.clone(),
        source,
    };
    let unknown = || OauthCliError::UnknownClient {
        id: id.to_owned(),
        db: db.clone(),
    };
    let client = store
        .client(id)
        .await
        .map_err(failed)?
        .ok_or_else(unknown)?;
    if !store.delete_client(&client.id).await.map_err(failed)? {
        return Err(unknown());
    }
    Ok(format!(
        "deleted client {} ({}) with its grants: its refresh tokens stop working now, its access tokens at their next use\n",
        shown(&client.id),
        shown(&client.name)
    ))
}

/// The store at `target`, and how to name it; a state directory with no state in it
/// yet (neither `state.db` nor an old `oauth.sqlite3` to move in) is not created.
async fn open(target: Target<'_>) -> Result<(Arc<dyn StateStore>, String), OauthCliError> {
    let (location, db) = match (target.database_url, target.state_dir) {
        (Some(url), _) => (
            Location::Postgres(url.to_owned()),
            crate::state::redact_url(url),
        ),
        (None, Some(dir)) => {
            let db = dir.join(crate::state::sqlite::DB_FILE);
            let legacy = dir.join(crate::state::sqlite::LEGACY_OAUTH_FILE);
            if !db.exists() && !legacy.exists() {
                return Err(OauthCliError::NoState(dir.display().to_string()));
            }
            (Location::Dir(dir.to_owned()), db.display().to_string())
        }
        (None, None) => return Err(OauthCliError::NoStateDir),
    };
    let store = crate::state::open(&location)
        .await
        .map_err(|source| OauthCliError::Store {
            db: db.clone(),
            source,
        })?;
    Ok((store, db))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
