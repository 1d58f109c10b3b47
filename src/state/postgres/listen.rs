//! The PostgreSQL [`RevocationWatch`]: one connection of its own (same URL and TLS as
//! the pool) that `LISTEN`s on [`CHANNEL`], where every revoking transaction notifies
//! the grant it ended (or [`EVERY_GRANT`]) as it commits.
//!
//! A notification is pushed to this instance as soon as the revoking transaction commits,
//! not when the revoking command returns: between the two, a request here may still be
//! served (a round trip on the local network; the tests bound it at 500 ms). That is the
//! one difference from the SQLite watch, which is exact to the request.
//!
//! The connection is proven by a probe: it notifies the channel with a payload of its
//! own and must hear it back within [`PING_TIMEOUT`], after `LISTEN` and every
//! [`RESYNC`]. While it is down (not yet up, broken, or its probe unanswered: a dead
//! link, or a pooler in transaction mode that never delivers notifications) the watch is
//! [`Changes::Blind`]: the view asks the store on every request, logged once. After each (re)connection, and every [`RESYNC`] while up, it reports
//! [`Changes::Anything`], so a notification lost with a connection cannot leave a revoked
//! grant remembered as live.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::DatabaseUrl;
use super::migrate::query;
use crate::state::StateError;
use crate::state::oauth::watch::{CHANNEL, EVERY_GRANT};
use crate::state::oauth::{Changes, RevocationWatch};

/// How often the listening connection is checked with a round trip, and everything
/// remembered is confirmed again.
pub const RESYNC: Duration = Duration::from_secs(30);

/// A check of the listening connection that takes longer than this counts as down.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest wait between two connection attempts.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Grant ids kept between two looks; beyond this, the look says [`Changes::Anything`].
const PENDING_MAX: usize = 1024;

/// The listening connection's `application_name` (as `pg_stat_activity` shows it).
pub const APPLICATION_NAME: &str = "2bot-revocations";

/// How a listener's own probe payload starts (never a grant id, which is base64url).
const PROBE: &str = "~probe-";

/// What the listener heard since the view last looked.
#[derive(Debug, Default)]
struct Heard {
    /// Whether the connection is up and listening.
    up: bool,
    /// Something may have ended any grant.
    anything: bool,
    /// Grants that ended.
    grants: Vec<String>,
}

/// The watch: what the listening task heard, for the view to take.
#[derive(Debug, Default)]
pub struct Listener {
    heard: Mutex<Heard>,
    /// Whether `heard` has news (or the connection is down): the common look is one
    /// atomic load. Set and cleared only with `heard` locked.
    news: AtomicBool,
}

impl RevocationWatch for Listener {
    fn changes(&self) -> Changes {
        if !self.news.load(Ordering::SeqCst) {
            return Changes::Nothing;
        }
        let mut heard = self.lock();
        if !heard.up {
            return Changes::Blind;
        }
        self.news.store(false, Ordering::SeqCst);
        let grants = std::mem::take(&mut heard.grants);
        if std::mem::take(&mut heard.anything) {
            Changes::Anything
        } else if grants.is_empty() {
            Changes::Nothing
        } else {
            Changes::Revoked(grants)
        }
    }
}

impl Listener {
    fn lock(&self) -> std::sync::MutexGuard<'_, Heard> {
        self.heard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A notification's payload.
    fn heard(&self, payload: &str) {
        let mut heard = self.lock();
        if payload == EVERY_GRANT || heard.grants.len() >= PENDING_MAX {
            heard.anything = true;
        } else {
            heard.grants.push(payload.to_owned());
        }
        self.news.store(true, Ordering::SeqCst);
    }

    /// Up (listening: whatever was missed counts as anything) or down.
    fn set_up(&self, up: bool) {
        let mut heard = self.lock();
        heard.up = up;
        heard.anything = true;
        self.news.store(true, Ordering::SeqCst);
    }
}

/// Start listening on `url` in the background. The first connection is awaited, so the
/// watch is normally up when this returns; if it fails, the watch starts blind and the
/// task keeps trying.
pub async fn start(url: &DatabaseUrl) -> Result<Arc<Listener>, StateError> {
    let tls = super::tls::connector(url.ssl, url.root_cert.as_ref())?;
    let listener = Arc::new(Listener::default());
    listener.set_up(false);
    let first = listen(url, &tls, &listener).await;
    if let Err(e) = &first {
        tracing::warn!(error = %e, "cannot listen for revocations; checking grants in the store on each request until it can");
    }
    let (url, owner) = (url.clone(), Arc::downgrade(&listener));
    tokio::spawn(async move { keep_listening(url, tls, owner, first.ok()).await });
    Ok(listener)
}

/// Why a listening connection failed its probe.
#[derive(Debug, thiserror::Error)]
enum EchoError {
    /// The `pg_notify` itself failed: the connection is gone.
    #[error("{0}")]
    Notify(tokio_postgres::Error),
    /// Sent but never delivered: `LISTEN` works in name only.
    #[error(
        "its own notification did not come back within {}s (a pooler in transaction mode?)",
        PING_TIMEOUT.as_secs()
    )]
    NoEcho,
}

/// A listening connection: its client (for the checks), the task driving it, the
/// payload of its own probe and the signal that the probe came back.
struct Session {
    client: tokio_postgres::Client,
    driver: tokio::task::JoinHandle<String>,
    probe: String,
    echoed: Arc<tokio::sync::Notify>,
}

impl Session {
    /// Notify the channel with this connection's own probe and wait for it to come back:
    /// proof that the connection is alive and that notifications reach it (behind a
    /// pooler in transaction mode `LISTEN` succeeds, yet nothing ever arrives).
    async fn probe(&self) -> Result<(), EchoError> {
        let echo = async {
            self.client
                .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &self.probe])
                .await
                .map_err(EchoError::Notify)?;
            self.echoed.notified().await;
            Ok(())
        };
        tokio::time::timeout(PING_TIMEOUT, echo)
            .await
            .unwrap_or(Err(EchoError::NoEcho))
    }
}

/// Connect, start the task that reads notifications into `listener`, `LISTEN`, and
/// check that notifications arrive.
async fn listen(
    url: &DatabaseUrl,
    tls: &MakeRustlsConnect,
    listener: &Arc<Listener>,
) -> Result<Session, StateError> {
    let mut config = url.config.clone();
    config.application_name(APPLICATION_NAME);
    let (client, mut connection) = config
        .connect(tls.clone())
        .await
        .map_err(|e| StateError::Connect(format!("{}: {e}", url.redacted)))?;
    let owner = Arc::downgrade(listener);
    let probe = format!("{PROBE}{}", uuid::Uuid::new_v4());
    let echoed = Arc::new(tokio::sync::Notify::new());
    let (mine, echo) = (probe.clone(), echoed.clone());
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => match owner.upgrade() {
                    None => return "no longer watched".to_owned(),
                    Some(_) if n.payload() == mine => echo.notify_one(),
                    // Another instance's probe.
                    Some(_) if n.payload().starts_with(PROBE) => {}
                    Some(listener) => listener.heard(n.payload()),
                },
                Some(Ok(_notice)) => {}
                Some(Err(e)) => return e.to_string(),
                None => return "closed".to_owned(),
            }
        }
    });
    let listening = client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(query);
    let session = Session {
        client,
        driver,
        probe,
        echoed,
    };
    let checked = match listening {
        Ok(()) => session
            .probe()
            .await
            .map_err(|e| StateError::Connect(e.to_string())),
        Err(e) => Err(e),
    };
    if let Err(e) = checked {
        session.driver.abort();
        return Err(e);
    }
    listener.set_up(true);
    Ok(session)
}

/// Serve `first` (if any), then reconnect whenever the connection ends, until the watch
/// is dropped.
async fn keep_listening(
    url: DatabaseUrl,
    tls: MakeRustlsConnect,
    owner: Weak<Listener>,
    mut session: Option<Session>,
) {
    let mut retry = Duration::from_secs(1);
    loop {
        if let Some(listening) = session.take() {
            retry = Duration::from_secs(1);
            let why = serve(listening, &owner).await;
            let Some(listener) = owner.upgrade() else {
                return;
            };
            listener.set_up(false);
            tracing::warn!(reason = %why, "the revocation listener is down; checking grants in the store on each request until it is back");
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
        let Some(listener) = owner.upgrade() else {
            return;
        };
        match listen(&url, &tls, &listener).await {
            Ok(listening) => {
                tracing::info!("the revocation listener is back");
                session = Some(listening);
            }
            Err(e) => tracing::debug!(error = %e, "the revocation listener cannot connect yet"),
        }
    }
}

/// Probe the connection every [`RESYNC`] (asking for a resync each time) until it ends
/// or the watch is dropped; why it ended.
async fn serve(mut session: Session, owner: &Weak<Listener>) -> String {
    let mut every = tokio::time::interval(RESYNC);
    every.tick().await;
    let why = loop {
        tokio::select! {
            ended = &mut session.driver => break ended.unwrap_or_else(|e| e.to_string()),
            _ = every.tick() => {
                let Some(listener) = owner.upgrade() else {
                    break "no longer watched".to_owned();
                };
                match session.probe().await {
                    Ok(()) => listener.set_up(true),
                    Err(e) => break e.to_string(),
                }
            }
        }
    };
    session.driver.abort();
    why
}
