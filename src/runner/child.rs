//! [`RunChild`]: the run's supervisor (or Codex) as the runner drives it, whichever way
//! it was started: forked by the run spawner ([`super::spawner`]) or spawned by exec
//! (`tokio::process`, the fallback and library use). The runner reads its stdout and
//! stderr, writes its stdin and waits for its status the same way for both.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use super::spawner::Forked;

/// A started run process: its stdio (taken by the runner) and its exit status.
#[derive(Debug)]
pub struct RunChild {
    /// Its stdin.
    pub stdin: Option<pipe::Sender>,
    /// Its stdout.
    pub stdout: Option<pipe::Receiver>,
    /// Its stderr.
    pub stderr: Option<pipe::Receiver>,
    exit: Exit,
}

#[derive(Debug)]
enum Exit {
    /// Spawned by exec: tokio reaps it (and kills it when dropped).
    Spawned(tokio::process::Child),
    /// Forked by the spawner, which reaps it and sends its status.
    Forked(u32, Waiting),
}

#[derive(Debug)]
enum Waiting {
    Pending(oneshot::Receiver<i32>),
    /// Reaped (`None`: the spawner died before it said how).
    Done(Option<ExitStatus>),
}

impl RunChild {
    /// A child spawned by exec, its stdio piped.
    pub fn spawned(mut child: tokio::process::Child) -> io::Result<Self> {
        let stdin = child.stdin.take().map(|s| s.into_owned_fd()).transpose()?;
        let stdout = child.stdout.take().map(|s| s.into_owned_fd()).transpose()?;
        let stderr = child.stderr.take().map(|s| s.into_owned_fd()).transpose()?;
        Ok(Self {
            stdin: stdin.map(pipe::Sender::from_owned_fd).transpose()?,
            stdout: stdout.map(pipe::Receiver::from_owned_fd).transpose()?,
            stderr: stderr.map(pipe::Receiver::from_owned_fd).transpose()?,
            exit: Exit::Spawned(child),
        })
    }

    /// A supervisor forked by the spawner.
    pub fn forked(forked: Forked) -> Self {
        Self {
            stdin: Some(forked.stdin),
            stdout: Some(forked.stdout),
            stderr: Some(forked.stderr),
            exit: Exit::Forked(forked.pid, Waiting::Pending(forked.exit)),
        }
    }

    /// Its pid, while it has one.
    pub fn id(&self) -> Option<u32> {
        match &self.exit {
            Exit::Spawned(child) => child.id(),
            Exit::Forked(pid, Waiting::Pending(_)) => Some(*pid),
            Exit::Forked(_, Waiting::Done(_)) => None,
        }
    }

    /// Wait until it has ended; its status. Cancel-safe, and again after the end.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        match &mut self.exit {
            Exit::Spawned(child) => child.wait().await,
            Exit::Forked(_, waiting) => {
                if let Waiting::Pending(rx) = waiting {
                    let status = rx.await.ok().map(ExitStatus::from_raw);
                    *waiting = Waiting::Done(status);
                }
                match waiting {
                    Waiting::Done(Some(status)) => Ok(*status),
                    _ => Err(io::Error::other(
                        "the run spawner is gone: the run's exit status is unknown",
                    )),
                }
            }
        }
    }
}

impl Drop for RunChild {
    fn drop(&mut self) {
        // As `kill_on_drop` does for a spawned child: an abandoned run leaves nothing.
        if let Exit::Forked(pid, Waiting::Pending(_)) = &self.exit
            && let Ok(pid) = i32::try_from(*pid)
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}
