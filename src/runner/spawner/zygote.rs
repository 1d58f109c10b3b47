//! The run spawner's own side: a process forked from the server before its runtime
//! started, so single-threaded and holding nothing but its socket, that forks one process
//! per request: a run's init, cloned straight into the run's namespaces, or a run
//! supervisor for a run without them ([`super::start`]). A fork of this small process
//! costs a fraction of an exec of the 30 MB `2bot-mcp` binary, which on a VM pays for the
//! dynamic loader's CPUID traps and the page faults of a fresh image (BENCHMARKS.md,
//! "Where the per-call overhead goes").
//!
//! The spawner reaps what it forked and reports each exit status, which the server reads
//! as its own child's: for an init, how its Codex ended, from the init's report pipe.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigHandler, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::MsgFlags;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpid, getppid, setpgid};

use super::clone;
use super::sock::{self, MAX_MESSAGE};
use super::start::{Launched, Start, Unstartable};
use super::wire::{Reply, encode_reply, raw_status, request_id};
use crate::runner::run_init::reported_status;

/// The spawner's loop, until the server closes its socket (or dies: the spawner's parent
/// death signal is SIGKILL). Returns the spawner's exit code.
pub(super) fn serve(sock: OwnedFd, server: Pid) -> i32 {
    use nix::sys::prctl;
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    if getppid() != server {
        return 0;
    }
    let _ = prctl::set_name(c"2bot-spawner");
    keep_only(&[sock.as_raw_fd(), 2]);
    // A terminal's Ctrl-C or systemd's SIGTERM to the whole unit is the server's to act
    // on: the spawner lives until the server closes its socket, so the server still
    // learns how each of its runs ended.
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        // SAFETY: SIG_IGN installs no handler, so no code of ours runs in signal context.
        #[allow(unsafe_code)]
        let _ = unsafe { nix::sys::signal::signal(signal, SigHandler::SigIgn) };
    }
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    if mask.thread_block().is_err() {
        return 1;
    }
    let Ok(signals) = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
    else {
        return 1;
    };
    let me = getpid();
    let pidfd = clone::own_pidfd();
    let mut reports: HashMap<i32, Report> = HashMap::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let (request_ready, child_ended, reported) = {
            let waiting: Vec<(i32, &OwnedFd)> = reports
                .iter()
                .filter_map(|(pid, r)| match r {
                    Report::Waiting(fd) => Some((*pid, fd)),
                    Report::Sent | Report::Missing => None,
                })
                .collect();
            let mut fds = vec![
                PollFd::new(sock.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            ];
            fds.extend(
                waiting
                    .iter()
                    .map(|(_, fd)| PollFd::new(fd.as_fd(), PollFlags::POLLIN)),
            );
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => return 1,
            }
            let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
            let reported: Vec<i32> = waiting
                .iter()
                .zip(fds.iter().skip(2))
                .filter(|(_, fd)| ready(fd))
                .map(|((pid, _), _)| *pid)
                .collect();
            (ready(&fds[0]), ready(&fds[1]), reported)
        };
        for pid in reported {
            if forward_report(&sock, &mut reports, pid).is_err() {
                return 1;
            }
        }
        if child_ended {
            while let Ok(Some(_)) = signals.read_signal() {}
            if reap(&sock, &mut reports).is_err() {
                return 1;
            }
        }
        if !request_ready {
            continue;
        }
        let received = match sock::recv(sock.as_fd(), &mut buf, MsgFlags::empty()) {
            Ok(Some(received)) => received,
            // The server closed its end: it is done, and so are we.
            Ok(None) => return 0,
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(_) => return 1,
        };
        let bytes = buf.get(..received.len).unwrap_or_default();
        let id = request_id(bytes);
        let start = if received.truncated {
            Err(Unstartable::TooLarge)
        } else {
            Start::new(bytes, received.fds, me)
        };
        let reply = match start {
            Err(why) => Reply::Failed {
                id,
                reason: why.to_string(),
            },
            Ok(start) => match start.launch(&mut reports) {
                Err(why) => Reply::Failed {
                    id,
                    reason: why.to_string(),
                },
                Ok(Launched::Child(role)) => {
                    drop(sock);
                    drop(signals);
                    drop(reports);
                    std::process::exit(start.become_run(role, pidfd))
                }
                Ok(Launched::Parent(child)) => {
                    // Its own group before the server hears of it, so a stop that
                    // follows at once reaches the group (the child sets it too).
                    let _ = setpgid(child, child);
                    drop(start);
                    Reply::Started {
                        id,
                        pid: child.as_raw(),
                    }
                }
            },
        };
        if sock::send(sock.as_fd(), &encode_reply(&reply), &[], MsgFlags::empty()).is_err() {
            return 1;
        }
    }
}

/// Where a cloned init's report stands. The init writes it once everything of its run is
/// killed and reaped, just before it exits; the spawner passes it on at once, without
/// waiting for the init's own exit and the tear-down of its namespaces.
pub(super) enum Report {
    /// Not written yet: its pipe is watched.
    Waiting(OwnedFd),
    /// Passed on to the server: the init's own exit is not.
    Sent,
    /// The pipe closed empty (the init was killed first): its wait status tells.
    Missing,
}

/// The report of `pid`'s init is readable: pass it on as its run's exit, or note that
/// none will come.
fn forward_report(
    sock: &OwnedFd,
    reports: &mut HashMap<i32, Report>,
    pid: i32,
) -> Result<(), Errno> {
    let Some(Report::Waiting(fd)) = reports.get(&pid) else {
        return Ok(());
    };
    let text = match read_report(fd) {
        Err(Errno::EAGAIN | Errno::EINTR) => return Ok(()),
        Err(_) => String::new(),
        Ok(text) => text,
    };
    if text.is_empty() {
        reports.insert(pid, Report::Missing);
        return Ok(());
    }
    reports.insert(pid, Report::Sent);
    let status = reported_status(0, &text);
    send_exit(sock, pid, status)
}

/// Reap every ended supervisor or init and tell the server how each ended, unless an
/// init's report already did.
fn reap(sock: &OwnedFd, reports: &mut HashMap<i32, Report>) -> Result<(), Errno> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return Ok(()),
            Ok(status) => {
                let Some((pid, raw)) = raw_status(status) else {
                    continue;
                };
                let status = match reports.remove(&pid) {
                    None => raw,
                    Some(Report::Sent) => continue,
                    Some(Report::Missing) => reported_status(raw, ""),
                    Some(Report::Waiting(fd)) => {
                        reported_status(raw, &read_report(&fd).unwrap_or_default())
                    }
                };
                send_exit(sock, pid, status)?;
            }
        }
    }
}

fn send_exit(sock: &OwnedFd, pid: i32, status: i32) -> Result<(), Errno> {
    sock::send(
        sock.as_fd(),
        &encode_reply(&Reply::Exited { pid, status }),
        &[],
        MsgFlags::empty(),
    )
}

/// What an init wrote to its report pipe: written in one piece (under `PIPE_BUF`), so
/// one read has it all; empty at the end of the pipe.
fn read_report(report: &OwnedFd) -> Result<String, Errno> {
    let mut buf = [0u8; 64];
    let len = nix::unistd::read(report, &mut buf)?;
    Ok(String::from_utf8_lossy(buf.get(..len).unwrap_or_default()).into_owned())
}

/// Close every descriptor but `keep`, and put `/dev/null` on stdin and stdout: the
/// spawner holds no listener, no file and no end of the MCP stdio transport.
fn keep_only(keep: &[i32]) {
    let open: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    for fd in open {
        // The listing's own descriptor is closed by now: its name is gone.
        let still_open = std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok();
        if fd > 2 && still_open && !keep.contains(&fd) {
            // SAFETY: inherited from the server at fork and open (checked just above);
            // nothing in this process uses them again (the server's own objects are never
            // touched here), so closing them pulls nothing from under an owner.
            #[allow(unsafe_code)]
            drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        }
    }
    crate::runner::run_init::null_stdio(false);
}
