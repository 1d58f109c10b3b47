//! What the server and the run spawner say to each other over their socket: one
//! datagram per message (`SOCK_SEQPACKET` keeps the boundaries), the descriptors beside
//! it. Pure encoding and decoding, so every shape is a table test.
//!
//! - server → spawner: [`Request`] (the supervisor's argv and the run's environment; the
//!   cwd, stdin, stdout and stderr descriptors ride along as `SCM_RIGHTS`);
//! - spawner → server: [`Reply::Started`] or [`Reply::Failed`] for each request, then
//!   [`Reply::Exited`] when that supervisor has been reaped. A `Started` always comes
//!   before the `Exited` of the same pid: the spawner reaps only after it has answered.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use nix::sys::wait::WaitStatus;

/// One start of a run supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Matches the reply to its request.
    pub id: u64,
    /// The supervisor's command line after its subcommand ([`super::super::supervise::Args`]).
    pub argv: Vec<OsString>,
    /// The whole environment of the supervisor, and so of Codex.
    pub env: Vec<(OsString, OsString)>,
}

/// What the spawner answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Request `id` runs as `pid` (the leader of its own process group).
    Started {
        /// The request's id.
        id: u64,
        /// The supervisor's pid.
        pid: i32,
    },
    /// Request `id` could not be started, and why.
    Failed {
        /// The request's id.
        id: u64,
        /// The reason, for the run's error.
        reason: String,
    },
    /// Supervisor `pid` ended with the wait status `status` (as `waitpid` gives it).
    Exited {
        /// The supervisor's pid.
        pid: i32,
        /// The raw wait status, for `ExitStatus::from_raw`.
        status: i32,
    },
}

/// A message that does not parse (only a bug on either side could write one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The message ends inside a field.
    #[error("truncated message")]
    Truncated,
    /// The message's first byte names no message.
    #[error("unknown message kind {0:#04x}")]
    Kind(u8),
}

const REQUEST: u8 = b'R';
const STARTED: u8 = b'S';
const FAILED: u8 = b'F';
const EXITED: u8 = b'X';

/// The bytes of `request`.
pub fn encode_request(request: &Request) -> Vec<u8> {
    let mut out = vec![REQUEST];
    out.extend_from_slice(&request.id.to_le_bytes());
    put_len(&mut out, request.argv.len());
    for arg in &request.argv {
        put_bytes(&mut out, arg.as_bytes());
    }
    put_len(&mut out, request.env.len());
    for (key, value) in &request.env {
        put_bytes(&mut out, key.as_bytes());
        put_bytes(&mut out, value.as_bytes());
    }
    out
}

/// The request in `bytes`.
pub fn decode_request(bytes: &[u8]) -> Result<Request, WireError> {
    let mut r = Reader(bytes);
    match r.byte()? {
        REQUEST => {}
        other => return Err(WireError::Kind(other)),
    }
    let id = r.u64()?;
    let argv = (0..r.len()?)
        .map(|_| r.os())
        .collect::<Result<Vec<_>, _>>()?;
    let env = (0..r.len()?)
        .map(|_| Ok((r.os()?, r.os()?)))
        .collect::<Result<Vec<_>, _>>()?;
    r.end()?;
    Ok(Request { id, argv, env })
}

/// The id of the request in `bytes`, read from its fixed prefix alone: a request that is
/// truncated or does not decode still gets its `Failed` answer (0 when even the prefix is
/// missing, an id never given out).
pub fn request_id(bytes: &[u8]) -> u64 {
    let mut r = Reader(bytes);
    match r.byte() {
        Ok(REQUEST) => r.u64().unwrap_or(0),
        _ => 0,
    }
}

/// The bytes of `reply`.
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    match reply {
        Reply::Started { id, pid } => {
            let mut out = vec![STARTED];
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&pid.to_le_bytes());
            out
        }
        Reply::Failed { id, reason } => {
            let mut out = vec![FAILED];
            out.extend_from_slice(&id.to_le_bytes());
            put_bytes(&mut out, reason.as_bytes());
            out
        }
        Reply::Exited { pid, status } => {
            let mut out = vec![EXITED];
            out.extend_from_slice(&pid.to_le_bytes());
            out.extend_from_slice(&status.to_le_bytes());
            out
        }
    }
}

/// The reply in `bytes`.
pub fn decode_reply(bytes: &[u8]) -> Result<Reply, WireError> {
    let mut r = Reader(bytes);
    let reply = match r.byte()? {
        STARTED => Reply::Started {
            id: r.u64()?,
            pid: r.i32()?,
        },
        FAILED => Reply::Failed {
            id: r.u64()?,
            reason: String::from_utf8_lossy(r.bytes()?).into_owned(),
        },
        EXITED => Reply::Exited {
            pid: r.i32()?,
            status: r.i32()?,
        },
        other => return Err(WireError::Kind(other)),
    };
    r.end()?;
    Ok(reply)
}

/// The raw wait status (`ExitStatus::from_raw`) of an ended process; `None` for a
/// status that is not an end (stopped, continued, still alive).
pub fn raw_status(status: WaitStatus) -> Option<(i32, i32)> {
    match status {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), (code & 0xff) << 8)),
        WaitStatus::Signaled(pid, signal, core) => {
            Some((pid.as_raw(), signal as i32 | if core { 0x80 } else { 0 }))
        }
        _ => None,
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(WireError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }

    fn byte(&mut self) -> Result<u8, WireError> {
        Ok(self.take::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    fn i32(&mut self) -> Result<i32, WireError> {
        Ok(i32::from_le_bytes(self.take()?))
    }

    fn len(&mut self) -> Result<usize, WireError> {
        let len = u32::from_le_bytes(self.take()?);
        let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
        // A count can never exceed the bytes left: no allocation on a lie.
        if len > self.0.len() {
            return Err(WireError::Truncated);
        }
        Ok(len)
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.len()?;
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn os(&mut self) -> Result<OsString, WireError> {
        Ok(OsString::from_vec(self.bytes()?.to_vec()))
    }

    fn end(&self) -> Result<(), WireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(WireError::Truncated)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    use super::*;

    #[test]
    fn requests_round_trip_whatever_bytes_their_words_hold() {
        let cases = [
            Request {
                id: 0,
                argv: vec![],
                env: vec![],
            },
            Request {
                id: u64::MAX,
                argv: vec![
                    "1".into(),
                    "".into(),
                    OsString::from_vec(vec![0xff, 0, b'x']),
                ],
                env: vec![
                    ("PATH".into(), "/usr/bin".into()),
                    ("EMPTY".into(), "".into()),
                ],
            },
        ];
        for request in cases {
            assert_eq!(decode_request(&encode_request(&request)), Ok(request));
        }
    }

    #[test]
    fn replies_round_trip() {
        for reply in [
            Reply::Started { id: 7, pid: 4242 },
            Reply::Failed {
                id: 8,
                reason: "fork: EAGAIN".into(),
            },
            Reply::Failed {
                id: 9,
                reason: String::new(),
            },
            Reply::Exited {
                pid: 4242,
                status: 0x0300,
            },
        ] {
            assert_eq!(decode_reply(&encode_reply(&reply)), Ok(reply));
        }
    }

    #[test]
    fn a_short_long_or_unknown_message_is_refused_without_a_panic() {
        let request = encode_request(&Request {
            id: 1,
            argv: vec!["a".into()],
            env: vec![("K".into(), "V".into())],
        });
        for cut in 0..request.len() {
            assert!(decode_request(&request[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = request;
        longer.push(0);
        assert_eq!(decode_request(&longer), Err(WireError::Truncated));
        // A count larger than the message is refused before anything is allocated.
        let mut lying = vec![REQUEST];
        lying.extend_from_slice(&1u64.to_le_bytes());
        lying.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_request(&lying), Err(WireError::Truncated));
        assert_eq!(decode_request(b"Z"), Err(WireError::Kind(b'Z')));
        // The id is read from the prefix alone, so even a cut request is answered.
        assert_eq!(request_id(&longer[..9]), 1);
        assert_eq!(request_id(&longer[..5]), 0);
        assert_eq!(request_id(b"X\x01\0\0\0\0\0\0\0"), 0);
        assert_eq!(decode_reply(b"R"), Err(WireError::Kind(b'R')));
        let started = encode_reply(&Reply::Started { id: 1, pid: 2 });
        for cut in 0..started.len() {
            assert!(decode_reply(&started[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_raw_status_reads_back_as_the_same_exit_status() {
        let pid = Pid::from_raw(10);
        let cases: [(WaitStatus, Option<i32>, Option<i32>); 4] = [
            (WaitStatus::Exited(pid, 0), Some(0), None),
            (WaitStatus::Exited(pid, 3), Some(3), None),
            (
                WaitStatus::Signaled(pid, Signal::SIGKILL, false),
                None,
                Some(9),
            ),
            (
                WaitStatus::Signaled(pid, Signal::SIGSEGV, true),
                None,
                Some(11),
            ),
        ];
        for (status, code, signal) in cases {
            let read_back = raw_status(status).map(|(pid, raw)| {
                let exit = ExitStatus::from_raw(raw);
                (pid, exit.code(), exit.signal())
            });
            assert_eq!(read_back, Some((10, code, signal)), "{status:?}");
        }
        assert_eq!(raw_status(WaitStatus::StillAlive), None);
        assert_eq!(raw_status(WaitStatus::Stopped(pid, Signal::SIGSTOP)), None);
    }
}
