//! Where the HTTP endpoint listens: a socket the service manager already opened
//! (systemd socket activation: `LISTEN_FDS=1`, the socket at fd 3), else one 2Bot binds
//! at `TWOBOT_HOST:TWOBOT_PORT`.
//!
//! An inherited socket lets an operator serve port 443 or 80 without running 2Bot as
//! root, keep the port open across restarts (connections wait in the kernel's backlog
//! while the new process starts), and lets the tests name the address before the
//! server starts with no bind-then-drop race. The socket is validated (a TCP stream
//! socket) and marked close-on-exec before anything else runs, so no Codex process ever
//! holds the listener.

use std::net::TcpListener;

/// Why the inherited socket cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// More or fewer sockets than the one 2Bot serves.
    #[error(
        "LISTEN_FDS={0}: 2Bot serves one socket; pass exactly one (systemd: one ListenStream= in the .socket unit)"
    )]
    Count(usize),
    /// Fd 3 is not a TCP stream socket.
    #[error("LISTEN_FDS=1: the passed socket (fd 3) cannot be served: {0}")]
    Invalid(std::io::Error),
}

/// The number of sockets passed must be exactly one, or none at all.
pub fn check_count(count: usize) -> Result<bool, ListenError> {
    match count {
        0 => Ok(false),
        1 => Ok(true),
        n => Err(ListenError::Count(n)),
    }
}

/// The socket the service manager passed, if any (`LISTEN_FDS` for this process:
/// `LISTEN_PID` unset or ours). Reads and clears the variables, so it must run before
/// any other thread starts; the socket comes back close-on-exec and non-blocking, ready
/// for the async runtime.
pub fn inherited() -> Result<Option<TcpListener>, ListenError> {
    let mut passed = listenfd::ListenFd::from_env();
    if !check_count(passed.len())? {
        return Ok(None);
    }
    let listener = passed.take_tcp_listener(0).map_err(ListenError::Invalid)?;
    if let Some(l) = &listener {
        l.set_nonblocking(true).map_err(ListenError::Invalid)?;
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn one_socket_is_served_none_means_bind_and_more_are_refused() {
        assert!(!check_count(0).unwrap());
        assert!(check_count(1).unwrap());
        for n in [2, 3, 10] {
            let e = check_count(n).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("LISTEN_FDS={n}: 2Bot serves one socket")),
                "{e}"
            );
        }
    }
}
