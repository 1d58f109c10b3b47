//! The signature on a request between instances: HMAC-SHA256 with the secret every
//! instance shares (`TWOBOT_INSTANCE_SECRET`), over the method, the path, the sending
//! instance, a timestamp, a nonce and the body's hash.
//!
//! What each part stops: the body hash binds the owner the request speaks for (a caller
//! cannot re-aim a captured request at another owner or run); the timestamp bounds a
//! captured request's life to [`WINDOW_MS`]; the nonce, remembered for that window
//! ([`Nonces`]), makes even a fresh copy useless. Pure functions, table-tested; the
//! HTTP route only calls [`verify`].

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// How far a request's timestamp may be from the receiver's clock, either way.
pub const WINDOW_MS: i64 = 30_000;

/// The sending instance's id.
pub const H_PEER: &str = "x-2bot-peer";
/// When it was signed, ms since the Unix epoch.
pub const H_TIME: &str = "x-2bot-peer-time";
/// A value used once.
pub const H_NONCE: &str = "x-2bot-peer-nonce";
/// The HMAC, base64url.
pub const H_SIGNATURE: &str = "x-2bot-peer-signature";

/// What a signature covers besides method, path and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The sending instance.
    pub from: String,
    /// When it was signed, ms since the Unix epoch.
    pub time_ms: i64,
    /// Used once.
    pub nonce: String,
}

/// Why a request is not from a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// A signature header is absent (a caller's request, or a misconfigured peer).
    #[error("not signed by a 2Bot instance: no {0} header")]
    Missing(&'static str),
    /// The timestamp is not a number.
    #[error("the {H_TIME} header is not a timestamp")]
    BadTime,
    /// Signed too long ago, or in the future.
    #[error("the signature is {age_ms} ms from this instance's clock, more than {WINDOW_MS} ms")]
    Stale {
        /// Receiver's clock minus the timestamp.
        age_ms: i64,
    },
    /// Not made with the shared secret (or the request was altered).
    #[error("the signature does not match (another secret, or an altered request)")]
    BadSignature,
    /// This nonce was seen already.
    #[error("this signed request was already used")]
    Replayed,
}

#[expect(
    clippy::expect_used,
    reason = "HMAC takes a key of any length, so new_from_slice cannot fail"
)]
fn mac(secret: &[u8], method: &str, path: &str, stamp: &Stamp, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    let body_hash = URL_SAFE_NO_PAD.encode(Sha256::digest(body));
    // One field per line; none may hold a newline (ids, a number, a path, base64).
    let text = format!(
        "2bot-peer-v1\n{method}\n{path}\n{}\n{}\n{}\n{body_hash}",
        stamp.from, stamp.time_ms, stamp.nonce
    );
    mac.update(text.as_bytes());
    mac
}

/// The signature of a request.
pub fn sign(secret: &[u8], method: &str, path: &str, stamp: &Stamp, body: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(
        mac(secret, method, path, stamp, body)
            .finalize()
            .into_bytes(),
    )
}

/// The headers a signed request carries, as read from it (`None`: absent).
#[derive(Debug, Default, Clone)]
pub struct Presented<'a> {
    /// [`H_PEER`].
    pub from: Option<&'a str>,
    /// [`H_TIME`].
    pub time: Option<&'a str>,
    /// [`H_NONCE`].
    pub nonce: Option<&'a str>,
    /// [`H_SIGNATURE`].
    pub signature: Option<&'a str>,
}

/// Check a request's signature at `now_ms`; the nonce is spent in `nonces` only when
/// everything else holds (a forged request cannot burn a real one's nonce).
pub fn verify(
    secret: &[u8],
    method: &str,
    path: &str,
    presented: &Presented<'_>,
    body: &[u8],
    now_ms: i64,
    nonces: &Nonces,
) -> Result<Stamp, Rejected> {
    let from = presented.from.ok_or(Rejected::Missing(H_PEER))?;
    let time = presented.time.ok_or(Rejected::Missing(H_TIME))?;
    let nonce = presented.nonce.ok_or(Rejected::Missing(H_NONCE))?;
    let signature = presented.signature.ok_or(Rejected::Missing(H_SIGNATURE))?;
    let time_ms: i64 = time.parse().map_err(|_| Rejected::BadTime)?;
    let age_ms = now_ms.saturating_sub(time_ms);
    if age_ms.abs() > WINDOW_MS {
        return Err(Rejected::Stale { age_ms });
    }
    let stamp = Stamp {
        from: from.to_owned(),
        time_ms,
        nonce: nonce.to_owned(),
    };
    let given = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| Rejected::BadSignature)?;
    // Constant time: a byte-by-byte comparison would tell a guesser how far it got.
    mac(secret, method, path, &stamp, body)
        .verify_slice(&given)
        .map_err(|_| Rejected::BadSignature)?;
    if !nonces.first_use(nonce, now_ms) {
        return Err(Rejected::Replayed);
    }
    Ok(stamp)
}

/// Nonces seen within the window; older ones are forgotten (their timestamps are
/// refused anyway).
#[derive(Debug, Default)]
pub struct Nonces {
    seen: Mutex<HashMap<String, i64>>,
}

impl Nonces {
    /// Whether `nonce` is new (and remember it).
    pub fn first_use(&self, nonce: &str, now_ms: i64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, at| now_ms.saturating_sub(*at) <= 2 * WINDOW_MS);
        seen.insert(nonce.to_owned(), now_ms).is_none()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const PATH: &str = "/_2bot/internal/runs/r1/get";

    fn stamp(time_ms: i64, nonce: &str) -> Stamp {
        Stamp {
            from: "i-1".into(),
            time_ms,
            nonce: nonce.into(),
        }
    }

    fn check(
        key: &[u8],
        signed: (&Stamp, &[u8]),
        presented_body: &[u8],
        now: i64,
        nonces: &Nonces,
        strip: Option<&str>,
    ) -> Result<Stamp, Rejected> {
        let (s, body) = signed;
        let sig = sign(KEY, "POST", PATH, s, body);
        let time = s.time_ms.to_string();
        let mut p = Presented {
            from: Some(&s.from),
            time: Some(&time),
            nonce: Some(&s.nonce),
            signature: Some(&sig),
        };
        match strip {
            Some(H_SIGNATURE) => p.signature = None,
            Some(H_TIME) => p.time = None,
            _ => {}
        }
        verify(key, "POST", PATH, &p, presented_body, now, nonces)
    }

    #[test]
    fn only_a_fresh_unaltered_request_signed_with_the_shared_secret_passes() {
        let now = 1_000_000;
        let body: &[u8] = br#"{"owner":"token:alice"}"#;
        let other: &[u8] = br#"{"owner":"token:mallory"}"#;
        let wrong_key: &[u8] = b"another-secret-another-secret-xx";
        // key verified with, signed at, body presented, header stripped, outcome.
        type Case<'a> = (
            &'a [u8],
            i64,
            &'a [u8],
            Option<&'a str>,
            Result<(), Rejected>,
        );
        let table: [Case; 7] = [
            (KEY, now, body, None, Ok(())),
            (
                KEY,
                now,
                body,
                Some(H_SIGNATURE),
                Err(Rejected::Missing(H_SIGNATURE)),
            ),
            (KEY, now, body, Some(H_TIME), Err(Rejected::Missing(H_TIME))),
            (wrong_key, now, body, None, Err(Rejected::BadSignature)),
            (KEY, now, other, None, Err(Rejected::BadSignature)),
            (
                KEY,
                now - WINDOW_MS - 1,
                body,
                None,
                Err(Rejected::Stale {
                    age_ms: WINDOW_MS + 1,
                }),
            ),
            (
                KEY,
                now + WINDOW_MS + 1,
                body,
                None,
                Err(Rejected::Stale {
                    age_ms: -WINDOW_MS - 1,
                }),
            ),
        ];
        for (i, (key, signed_at, presented, strip, want)) in table.into_iter().enumerate() {
            let s = stamp(signed_at, &format!("n{i}"));
            let got = check(key, (&s, body), presented, now, &Nonces::default(), strip);
            assert_eq!(got.map(|_| ()), want, "case {i}");
        }
    }

    #[test]
    fn a_signed_request_works_once() {
        let nonces = Nonces::default();
        let s = stamp(5_000, "once");
        assert!(check(KEY, (&s, b"{}"), b"{}", 5_000, &nonces, None).is_ok());
        assert_eq!(
            check(KEY, (&s, b"{}"), b"{}", 5_001, &nonces, None),
            Err(Rejected::Replayed)
        );
    }

    #[test]
    fn a_forged_request_does_not_spend_the_real_ones_nonce() {
        let nonces = Nonces::default();
        let s = stamp(5_000, "mine");
        let forged = check(
            b"wrong-wrong-wrong-wrong-wrong-wr",
            (&s, b"{}"),
            b"{}",
            5_000,
            &nonces,
            None,
        );
        assert_eq!(forged, Err(Rejected::BadSignature));
        assert!(check(KEY, (&s, b"{}"), b"{}", 5_000, &nonces, None).is_ok());
    }
}
