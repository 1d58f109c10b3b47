//! `2bot-mcp oauth list`, `oauth revoke <client|all>` and `oauth delete-client <client>`:
//! the operator's view of the built-in authorization server's state, the brake on it, and
//! the broom (a client that should not be there at all), usable while the server
//! runs (the store's transactions make the two safe together). They act on the state
//! store the server uses: PostgreSQL with TWOBOT_DATABASE_URL (every instance of the
//! service at once), else `state.db` in the state directory. They need only that, so
//! they run before the configuration is loaded and validated.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::config::OauthCommand;
use crate::state::oauth::{ClientListing, GrantListing};
use crate::state::{Location, StateError, StateStore};

/// What `oauth revoke` records as the reason a grant ended.
const REVOKE_REASON: &str = "revoked by the operator (2bot-mcp oauth revoke)";
/// Longest client name shown (names come from whoever registered the client).
const NAME_CHARS: usize = 40;

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

/// The listing as a table: one line per client, its live grants indented below it.
fn render(listing: &[ClientListing]) -> String {
    if listing.is_empty() {
        return "no clients\n".to_owned();
    }
    let mut clients = vec![row([
        "CLIENT",
        "KIND",
        "NAME",
        "REDIRECT HOSTS",
        "REGISTERED (UTC)",
    ])];
    clients.extend(listing.iter().map(|l| {
        let c = &l.client;
        vec![
            shown(&c.id),
            c.kind.as_str().to_owned(),
            shown_name(&c.name),
            redirect_hosts(&c.redirect_uris),
            utc(c.created_at),
        ]
    }));
    let clients = aligned(&clients);
    let mut out = format!("{}\n", clients[0]);
    for (l, line) in listing.iter().zip(&clients[1..]) {
        let _ = writeln!(out, "{line}");
        if l.grants.is_empty() {
            out.push_str("    (no live grants)\n");
            continue;
        }
        let mut grants = vec![row([
            "GRANT",
            "SCOPE",
            "CREATED",
            "LAST USED",
            "REFRESH EXPIRES",
        ])];
        grants.extend(l.grants.iter().map(grant_row));
        for line in aligned(&grants) {
            let _ = writeln!(out, "    {line}");
        }
    }
    let live: usize = listing.iter().map(|l| l.grants.len()).sum();
    let _ = writeln!(out, "{} client(s), {live} live grant(s)", listing.len());
    out
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

fn grant_row(g: &GrantListing) -> Vec<String> {
    let scope = if g.grant.scope.is_empty() {
        "-".to_owned()
    } else {
        shown(&g.grant.scope)
    };
    vec![
        shown(&g.grant.id),
        scope,
        utc(g.grant.created_at),
        utc(g.last_used_at),
        g.refresh_expires_at
            .map_or_else(|| "expired".to_owned(), utc),
    ]
}

/// Rows padded to their columns' widths, two spaces apart.
fn aligned(rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = Vec::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(max) => *max = (*max).max(w),
                None => widths.push(w),
            }
        }
    }
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (cell, width) in r.iter().zip(&widths) {
                let _ = write!(line, "{cell:<width$}  ");
            }
            line.trim_end().to_owned()
        })
        .collect()
}

/// The distinct hosts of the redirect URIs (a URI that does not parse is shown whole).
fn redirect_hosts(uris: &[String]) -> String {
    let mut hosts: Vec<String> = Vec::new();
    for uri in uris {
        let host = url::Url::parse(uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| uri.clone());
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    shown(&hosts.join(","))
}

/// A client's name as listed: [`shown`], cut after [`NAME_CHARS`] characters (ids are
/// never cut: the operator copies them into `oauth revoke`).
fn shown_name(name: &str) -> String {
    match name.char_indices().nth(NAME_CHARS) {
        Some((at, _)) => format!("{}…", shown(&name[..at])),
        None => shown(name),
    }
}

/// Text from the database as it may reach a terminal: control and bidirectional
/// formatting characters escaped (a client name or id is chosen by whoever registered the
/// client, and must not move the cursor or reorder the operator's screen).
pub fn shown(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days: days since 1970-01-01 to a proleptic Gregorian date.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn unix_seconds_read_as_utc_dates_across_leap_years_and_centuries() {
        let cases = [
            (0, "1970-01-01 00:00:00"),
            (951_782_400, "2000-02-29 00:00:00"),
            (1_700_000_000, "2023-11-14 22:13:20"),
            (4_107_542_399, "2100-02-28 23:59:59"),
            (4_107_542_400, "2100-03-01 00:00:00"),
            (-1, "1969-12-31 23:59:59"),
        ];
        for (secs, expected) in cases {
            assert_eq!(utc(secs), expected, "{secs}");
        }
    }

    #[test]
    fn text_from_a_client_cannot_drive_the_terminal_and_a_long_name_is_cut() {
        let cases = [
            ("ChatGPT", "ChatGPT"),
            ("evil\x1b[2J", "evil\\u{1b}[2J"),
            ("a\nb", "a\\u{a}b"),
            ("\u{202e}txt.exe", "\\u{202e}txt.exe"),
        ];
        for (raw, expected) in cases {
            assert_eq!(shown(raw), expected);
        }
        let long = "é".repeat(100);
        assert_eq!(shown_name(&long), format!("{}…", "é".repeat(NAME_CHARS)));
        assert_eq!(shown(&long), long, "ids are never cut");
    }

    #[test]
    fn redirect_hosts_are_listed_once_each() {
        let uris = [
            "https://chatgpt.com/a".to_owned(),
            "https://chatgpt.com/b".to_owned(),
            "http://127.0.0.1:33418/cb".to_owned(),
        ];
        assert_eq!(redirect_hosts(&uris), "chatgpt.com,127.0.0.1");
    }
}
