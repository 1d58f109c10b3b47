//! The doctor's check of the shared state database (`TWOBOT_DATABASE_URL`): that it is
//! reachable as configured (TLS included) and at a schema this binary can use.
//!
//! It reads the schema version without migrating, so running `doctor` against a
//! production database changes nothing; the server migrates at its start.

use super::{Check, Level, check};
use crate::config::Config;
use crate::state::postgres::{PostgresStore, SCHEMA_VERSION};
use crate::state::{StateError, redact_url};

const NAME: &str = "state store";

pub(super) async fn state_checks(config: &Config) -> Vec<Check> {
    let Some(url) = &config.database_url else {
        return Vec::new();
    };
    let shown = redact_url(url);
    let result = PostgresStore::inspect(url).await;
    vec![schema_check(&shown, result), peer_check(&config.peers)]
}

/// Whether the other instances can reach this one (`TWOBOT_INSTANCE_URL`, with the
/// shared secret `TWOBOT_INSTANCE_SECRET`; the config refuses a URL without a secret).
fn peer_check(peers: &crate::config::PeerConfig) -> Check {
    const PEERS: &str = "instance address";
    match (&peers.url, &peers.secret) {
        (Some(url), Some(_)) => check(
            Level::Ok,
            PEERS,
            format!(
                "{url}: other instances forward a live run's get, cancel and steer here, signed with TWOBOT_INSTANCE_SECRET"
            ),
        ),
        (None, Some(_)) => check(
            Level::Warn,
            PEERS,
            "TWOBOT_INSTANCE_URL is unset: this instance can forward to the others, but a follow-up of one of its own live runs that reaches another instance is answered from the store (no live progress; cancel and steer refused)",
        ),
        (_, None) => check(
            Level::Warn,
            PEERS,
            "TWOBOT_INSTANCE_SECRET and TWOBOT_INSTANCE_URL are unset: with several instances, a live run's get, cancel and steer work only on the instance that runs it (elsewhere the store answers; cancel and steer are refused)",
        ),
    }
}

/// What the version found (or the failure to read it) means for starting the server.
fn schema_check(shown: &str, found: Result<i64, StateError>) -> Check {
    match found {
        Ok(SCHEMA_VERSION) => check(
            Level::Ok,
            NAME,
            format!("{shown}: connected, schema version {SCHEMA_VERSION} (current)"),
        ),
        Ok(0) => check(
            Level::Ok,
            NAME,
            format!(
                "{shown}: connected, no 2Bot schema yet (version {SCHEMA_VERSION} is created at the first start)"
            ),
        ),
        Ok(found) if found < SCHEMA_VERSION => check(
            Level::Ok,
            NAME,
            format!(
                "{shown}: connected, schema version {found} (migrated to {SCHEMA_VERSION} at the next start)"
            ),
        ),
        Ok(found) => check(
            Level::Fail,
            NAME,
            format!(
                "{shown}: {}",
                StateError::SchemaTooNew {
                    found,
                    known: SCHEMA_VERSION
                }
            ),
        ),
        Err(e) => check(
            Level::Fail,
            NAME,
            format!(
                "{e}; check TWOBOT_DATABASE_URL (host, user, password, sslmode) and that the server is up"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_address_check_says_what_several_instances_can_do() {
        use crate::config::{PeerArgs, PeerConfig};
        let peers = |url: Option<&str>, secret: Option<&str>| {
            let args = PeerArgs {
                instance_url: url.map(str::to_owned),
                instance_secret: secret.map(str::to_owned),
            };
            PeerConfig::from_args(args, true).map_err(|e| e.to_string())
        };
        let secret = Some("0123456789abcdef0123456789abcdef");
        let table = [
            (
                peers(Some("http://10.0.0.5:8811"), secret),
                Level::Ok,
                "forward a live run's",
            ),
            (
                peers(None, secret),
                Level::Warn,
                "TWOBOT_INSTANCE_URL is unset",
            ),
            (
                peers(None, None),
                Level::Warn,
                "work only on the instance that runs it",
            ),
        ];
        for (config, level, needle) in table {
            let got = peer_check(&config.unwrap_or_default());
            assert_eq!(got.level, level, "{got}");
            assert!(got.detail.contains(needle), "{got}");
        }
    }

    #[test]
    fn the_schema_version_found_decides_the_check() {
        let shown = "postgres://u:***@db/x";
        let table: [(Result<i64, StateError>, Level, &str); 5] = [
            (Ok(SCHEMA_VERSION), Level::Ok, "(current)"),
            (Ok(0), Level::Ok, "created at the first start"),
            (
                Ok(SCHEMA_VERSION + 1),
                Level::Fail,
                "newer than this 2Bot knows",
            ),
            (
                Err(StateError::Connect(
                    "postgres://u:***@db/x: connection refused".to_owned(),
                )),
                Level::Fail,
                "connection refused",
            ),
            (
                Err(StateError::Query("42501: permission denied".to_owned())),
                Level::Fail,
                "permission denied",
            ),
        ];
        for (found, level, says) in table {
            let got = schema_check(shown, found);
            assert_eq!(got.level, level, "{got}");
            assert!(got.detail.contains(says), "{got}");
        }
    }
}
