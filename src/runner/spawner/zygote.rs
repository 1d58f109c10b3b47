//! The run spawner's own side: a process forked from the server before its runtime
//! started, so single-threaded and holding nothing but its socket, that forks one run
//! supervisor per request. A fork of this small process costs a fraction of an exec of
//! the 30 MB `2bot-mcp` binary, which on a VM pays for the dynamic loader's CPUID traps
//! and the page faults of a fresh image (BENCHMARKS.md, "Where the per-call overhead
//! goes").
//!
//! Each forked supervisor is set up exactly as an exec'd one would be: its own process
//! group, the run's stdin, stdout and stderr, the run's directory (the descriptor the
//! runner opened), the run's environment and nothing else, default signal dispositions;
//! then [`supervise::run`] takes over, unchanged. The spawner reaps its supervisors and
//! reports each exit status, which the server reads as its own child's.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigHandler, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::MsgFlags;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, getpid, getppid, setpgid};

use super::sock::{self, MAX_MESSAGE};
use super::wire::{Reply, WireError, decode_request, encode_reply, raw_status, request_id};
use crate::runner::supervise::{self, Args, ArgsError, SPAWN_FAILED, SPAWN_FAILED_MARKER};

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
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let (request_ready, child_ended) = {
            let mut fds = [
                PollFd::new(sock.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => return 1,
            }
            let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), ready(&fds[1]))
        };
        if child_ended {
            while let Ok(Some(_)) = signals.read_signal() {}
            if reap(&sock).is_err() {
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
            // SAFETY: this process is single-threaded (forked from the server before its
            // runtime started, and it starts no thread), so the child may run any code.
            #[allow(unsafe_code)]
            Ok(start) => match unsafe { nix::unistd::fork() } {
                Err(e) => Reply::Failed {
                    id,
                    reason: Unstartable::Fork(e).to_string(),
                },
                Ok(ForkResult::Child) => {
                    drop(sock);
                    drop(signals);
                    std::process::exit(start.supervise())
                }
                Ok(ForkResult::Parent { child }) => {
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

/// Reap every ended supervisor and tell the server how each ended.
fn reap(sock: &OwnedFd) -> Result<(), Errno> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return Ok(()),
            Ok(status) => {
                if let Some((pid, status)) = raw_status(status) {
                    sock::send(
                        sock.as_fd(),
                        &encode_reply(&Reply::Exited { pid, status }),
                        &[],
                        MsgFlags::empty(),
                    )?;
                }
            }
        }
    }
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
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
    }
}

/// One request, checked, ready to become a supervisor.
struct Start {
    args: Args,
    env: Vec<(OsString, OsString)>,
    cwd: OwnedFd,
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

/// Why a request started no supervisor: the reason the spawner sends back.
#[derive(Debug, thiserror::Error)]
enum Unstartable {
    /// The request did not fit in one message.
    #[error("a request over {MAX_MESSAGE} bytes")]
    TooLarge,
    /// The request did not decode.
    #[error("a bad request: {0}")]
    Bad(#[from] WireError),
    /// Not the run's four descriptors (cwd, stdin, stdout, stderr).
    #[error("{0} descriptors, not 4")]
    Descriptors(usize),
    /// The supervisor's command line did not parse.
    #[error(transparent)]
    Args(#[from] ArgsError),
    /// The system refused the fork.
    #[error("cannot fork the run supervisor: {0}")]
    Fork(Errno),
}

impl Start {
    /// The request in `bytes` with its descriptors; the reason it cannot start.
    fn new(bytes: &[u8], fds: Vec<OwnedFd>, me: Pid) -> Result<Self, Unstartable> {
        let request = decode_request(bytes)?;
        let [cwd, stdin, stdout, stderr]: [OwnedFd; 4] = fds
            .try_into()
            .map_err(|fds: Vec<OwnedFd>| Unstartable::Descriptors(fds.len()))?;
        let mut args = Args::parse(&request.argv)?;
        // The supervisor's parent is this spawner: when it is gone, so is the server.
        args.parent = me.as_raw();
        Ok(Self {
            args,
            env: request.env,
            cwd,
            stdin,
            stdout,
            stderr,
        })
    }

    /// In the forked child: become the run supervisor. Returns its exit code.
    fn supervise(self) -> i32 {
        let Self {
            args,
            env,
            cwd,
            stdin,
            stdout,
            stderr,
        } = self;
        crate::runner::signals::default_dispositions();
        let _ = SigSet::empty().thread_set_mask();
        let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
        let _ = nix::sys::prctl::set_name(c"2bot-supervise");
        if nix::unistd::dup2_stdin(&stdin).is_err()
            || nix::unistd::dup2_stdout(&stdout).is_err()
            || nix::unistd::dup2_stderr(&stderr).is_err()
        {
            return 2;
        }
        drop((stdin, stdout, stderr));
        if let Err(e) = nix::unistd::fchdir(&cwd) {
            eprintln!("{SPAWN_FAILED_MARKER}cannot enter the run's directory: {e}");
            return i32::from(SPAWN_FAILED);
        }
        drop(cwd);
        replace_env(env);
        i32::from(supervise::run(&args))
    }
}

/// The process's environment becomes exactly `env`, as `env_clear().envs(env)` would
/// make it for an exec'd supervisor: nothing of the server's environment reaches Codex.
fn replace_env(env: Vec<(OsString, OsString)>) {
    let old: Vec<OsString> = std::env::vars_os().map(|(key, _)| key).collect();
    for key in old {
        // SAFETY: this forked process is single-threaded: nothing reads the environment
        // concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::remove_var(key);
        }
    }
    for (key, value) in env {
        let bytes = |s: &OsString| std::os::unix::ffi::OsStrExt::as_bytes(s.as_os_str()).to_vec();
        // What set_var would panic on cannot be in an environment anyway.
        if key.is_empty()
            || bytes(&key).contains(&b'=')
            || bytes(&key).contains(&0)
            || bytes(&value).contains(&0)
        {
            continue;
        }
        // SAFETY: as above, single-threaded.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var(key, value);
        }
    }
}
