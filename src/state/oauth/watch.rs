//! [`RevocationWatch`]: how a process learns, without a query per request, that a grant
//! was revoked (or deleted) through another connection: `2bot-mcp oauth revoke` against
//! the same database, or another instance of the service. The built-in authorization
//! server keeps the grants it has confirmed live in memory and asks the watch before
//! trusting that memory; each backend answers as cheaply as it can (SQLite: the file's
//! change counter; PostgreSQL: `LISTEN`/`NOTIFY` on [`CHANNEL`]).

/// The PostgreSQL channel a revoking transaction notifies: the payload is the grant id,
/// or [`EVERY_GRANT`] when it may have ended several (a client's grants, a deleted client).
pub const CHANNEL: &str = "twobot_revocations";

/// The payload that means "any grant may have ended".
pub const EVERY_GRANT: &str = "*";

/// What may have changed since the watch was last asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// Nothing was revoked or deleted since the last look.
    Nothing,
    /// Exactly these grants were revoked, and nothing else ended.
    Revoked(Vec<String>),
    /// Something changed that may have revoked or deleted any grant.
    Anything,
    /// The watch cannot tell now (its connection is down): every decision must ask the
    /// store until it can again, and then it reports [`Changes::Anything`] once.
    Blind,
}

/// A watch on revocations made through other connections. Asked before every decision
/// that would trust remembered grants, so it must be cheap and must not wait: no await,
/// no network round trip.
pub trait RevocationWatch: Send + Sync + std::fmt::Debug {
    /// What changed since the previous call (the first call: since the watch began).
    fn changes(&self) -> Changes;
}

/// A watch for a store no other connection can write (an in-memory database): only
/// this process revokes, and it tells its view itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOtherWriter;

impl RevocationWatch for NoOtherWriter {
    fn changes(&self) -> Changes {
        Changes::Nothing
    }
}
