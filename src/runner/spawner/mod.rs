//! The run spawner: a small process, forked from the server before its runtime starts,
//! that forks what each run starts with, instead of the server exec'ing `2bot-mcp
//! __supervise` for every run.
//!
//! Why: an exec of the 30 MB binary cost 1.8 ms per run on the 2-core VM this is measured
//! on (the dynamic loader's CPUID traps, the page faults of a fresh image), 3 % of a
//! 60 ms call on its own; a fork of a process that has done nothing yet costs a tenth of
//! that (BENCHMARKS.md). The server itself cannot fork: it is multi-threaded, and a fork
//! of a threaded process may only exec.
//!
//! For a run with private namespaces (the default), the spawner clones the run's init
//! straight into them ([`clone`], [`start`]): pid 1 of the run's PID namespace, with
//! Codex as its child. An exec'd supervisor instead unshares the namespaces and forks the
//! init, one process and one exit more per run (BENCHMARKS.md, "a hop not taken"). A run
//! without namespaces gets a forked run supervisor ([`super::supervise`], unchanged).
//!
//! The server sends the supervisor's command line, the run's environment and four
//! descriptors (the run's directory, stdin, stdout, stderr) over a `SOCK_SEQPACKET`
//! socket ([`wire`]); the spawner ([`zygote`]) forks, answers with the pid, reaps the
//! child when it ends and sends its wait status (for an init, how its Codex ended, from
//! the init's report pipe), which [`super::child::RunChild`] reports as a child's.
//!
//! Lifetimes: the spawner dies with the server (`PR_SET_PDEATHSIG`, and its socket's
//! EOF), and each supervisor or init with the spawner (a parent-death signal, checked
//! against the spawner's pidfd or pid once set), so SIGKILL of the server still leaves
//! nothing of any run. Should the spawner be gone, runs start their supervisor by exec
//! as before, with a warning.

mod clone;
mod sock;
mod start;
pub mod wire;
mod zygote;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, killpg};
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, socketpair};
use nix::unistd::{ForkResult, Pid, getpid};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use self::sock::MAX_MESSAGE;
use self::wire::{Reply, Request, decode_reply, encode_request};

/// Why the spawner could not be started (runs then start their supervisor by exec).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A fork is only safe while the server is single-threaded.
    #[error("the server already runs {0} threads")]
    Threaded(usize),
    /// The socket or the fork failed.
    #[error("{0}: {1}")]
    Os(&'static str, nix::errno::Errno),
}

/// Why one supervisor did not start through the spawner.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The spawner cannot take this run (gone, or the request too large): start the
    /// supervisor by exec instead.
    #[error("{0}")]
    Unavailable(String),
    /// The spawner could not start the supervisor (a fork refused by the system): the
    /// run's error.
    #[error("{0}")]
    Refused(String),
}

/// Why the server cannot reach its spawner (kept: the first answer is every run's).
#[derive(Debug, Clone, thiserror::Error)]
enum LinkError {
    /// Taken by a runtime that is gone.
    #[error("the run spawner's socket is gone")]
    SocketGone,
    /// The runtime refused to watch it.
    #[error("the run spawner's socket cannot be watched: {0}")]
    Register(Arc<std::io::Error>),
}

/// A supervisor the spawner started: its pid, the server's ends of its stdio, and its
/// wait status to come.
#[derive(Debug)]
pub struct Forked {
    /// The supervisor's pid, also its process group.
    pub pid: u32,
    /// Its stdin.
    pub stdin: pipe::Sender,
    /// Its stdout.
    pub stdout: pipe::Receiver,
    /// Its stderr.
    pub stderr: pipe::Receiver,
    /// Its raw wait status, once reaped (closed if the spawner died first).
    pub exit: oneshot::Receiver<i32>,
}

/// The server's handle on its spawner.
pub struct Spawner {
    pid: Pid,
    /// The socket, until the first run connects it to the runtime.
    socket: Mutex<Option<OwnedFd>>,
    link: OnceLock<Result<Arc<Link>, LinkError>>,
    /// Whether a run has already started by exec instead (said once as a warning).
    fell_back: AtomicBool,
}

impl std::fmt::Debug for Spawner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spawner").field("pid", &self.pid).finish()
    }
}

/// The socket in the runtime, and who waits for what on it.
struct Link {
    fd: AsyncFd<OwnedFd>,
    state: Mutex<State>,
}

type Answer = Result<(i32, oneshot::Receiver<i32>), String>;

#[derive(Default)]
struct State {
    next: u64,
    replies: HashMap<u64, oneshot::Sender<Answer>>,
    exits: HashMap<i32, oneshot::Sender<i32>>,
    gone: bool,
}

/// Fork the spawner. Call it from `main` while the process is still single-threaded:
/// before the async runtime, the log exporter or anything else starts a thread.
pub fn start() -> Result<Spawner, StartError> {
    let threads = threads_in(&std::fs::read_to_string("/proc/self/status").unwrap_or_default());
    if threads != Some(1) {
        return Err(StartError::Threaded(threads.unwrap_or(0)));
    }
    let (server_end, spawner_end) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| StartError::Os("socketpair", e))?;
    let server = getpid();
    // SAFETY: checked just above: this process has one thread, so the child may run any
    // code; it runs only the spawner's loop and exits.
    #[allow(unsafe_code)]
    let forked = unsafe { nix::unistd::fork() };
    match forked.map_err(|e| StartError::Os("fork", e))? {
        ForkResult::Child => {
            drop(server_end);
            std::process::exit(zygote::serve(spawner_end, server))
        }
        ForkResult::Parent { child } => Ok(Spawner {
            pid: child,
            socket: Mutex::new(Some(server_end)),
            link: OnceLock::new(),
            fell_back: AtomicBool::new(false),
        }),
    }
}

/// Pure: the thread count in `/proc/self/status`.
fn threads_in(status: &str) -> Option<usize> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

impl Spawner {
    /// Whether this is the first run to start by exec instead: the warning is said once,
    /// not for every run of a server whose spawner is gone.
    pub fn first_fallback(&self) -> bool {
        !self.fell_back.swap(true, Ordering::Relaxed)
    }

    /// Start a supervisor with `argv` (after its subcommand) and `env`, in `cwd`.
    pub async fn spawn(
        &self,
        argv: Vec<OsString>,
        env: &BTreeMap<OsString, OsString>,
        cwd: BorrowedFd<'_>,
    ) -> Result<Forked, SpawnError> {
        let unavailable = |e: &dyn std::fmt::Display| SpawnError::Unavailable(e.to_string());
        let link = self.link().map_err(|e| unavailable(&e))?;
        let mut request = Request {
            id: 0,
            argv,
            env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut state = lock(&link.state);
            if state.gone {
                return Err(unavailable(&"the run spawner is gone"));
            }
            state.next += 1;
            request.id = state.next;
            state.replies.insert(request.id, tx);
        }
        // Whatever happens from here, the id does not outlive this call: a reply that
        // finds nobody waiting kills the supervisor it started.
        let _pending = Pending(&link, request.id);
        let bytes = encode_request(&request);
        if bytes.len() > MAX_MESSAGE {
            return Err(unavailable(&format!(
                "a request of {} bytes (over {MAX_MESSAGE})",
                bytes.len()
            )));
        }
        let pipes = Pipes::new().map_err(|e| unavailable(&e))?;
        let fds = [
            cwd.as_raw_fd(),
            pipes.child.0.as_raw_fd(),
            pipes.child.1.as_raw_fd(),
            pipes.child.2.as_raw_fd(),
        ];
        link.fd
            .async_io(Interest::WRITABLE, |fd| {
                sock::send(fd.as_fd(), &bytes, &fds, MsgFlags::MSG_DONTWAIT)
                    .map_err(io::Error::from)
            })
            .await
            .map_err(|e| unavailable(&format!("cannot reach the run spawner: {e}")))?;
        drop(pipes.child);
        match rx.await {
            Ok(Ok((pid, exit))) => Ok(Forked {
                pid: pid.unsigned_abs(),
                stdin: pipes.stdin,
                stdout: pipes.stdout,
                stderr: pipes.stderr,
                exit,
            }),
            Ok(Err(reason)) => Err(SpawnError::Refused(reason)),
            Err(_) => Err(unavailable(&"the run spawner is gone")),
        }
    }

    /// The socket in this runtime, with its reader task (made on first use).
    fn link(&self) -> Result<Arc<Link>, LinkError> {
        self.link
            .get_or_init(|| {
                let fd = lock(&self.socket).take().ok_or(LinkError::SocketGone)?;
                // SAFETY: the socket is owned here and handed over whole: no other
                // registration or owner of this descriptor exists.
                #[allow(unsafe_code)]
                let fd = unsafe { AsyncFd::register(fd) }
                    .map_err(|e| LinkError::Register(Arc::new(e.into_parts().1)))?;
                let link = Arc::new(Link {
                    fd,
                    state: Mutex::new(State::default()),
                });
                tokio::spawn(read(link.clone(), self.pid));
                Ok(link)
            })
            .clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Drops a request's entry when its caller stops waiting.
struct Pending<'a>(&'a Link, u64);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).replies.remove(&self.1);
    }
}

/// A run's three pipes: the server's ends (in the runtime) and the child's.
struct Pipes {
    stdin: pipe::Sender,
    stdout: pipe::Receiver,
    stderr: pipe::Receiver,
    child: (OwnedFd, OwnedFd, OwnedFd),
}

impl Pipes {
    fn new() -> io::Result<Self> {
        let pair = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from);
        let (stdin_r, stdin_w) = pair()?;
        let (stdout_r, stdout_w) = pair()?;
        let (stderr_r, stderr_w) = pair()?;
        Ok(Self {
            stdin: pipe::Sender::from_owned_fd(stdin_w)?,
            stdout: pipe::Receiver::from_owned_fd(stdout_r)?,
            stderr: pipe::Receiver::from_owned_fd(stderr_r)?,
            child: (stdin_r, stdout_w, stderr_w),
        })
    }
}

/// Read the spawner's replies until it is gone; then every waiter hears so.
async fn read(link: Arc<Link>, spawner: Pid) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let received = link
            .fd
            .async_io(Interest::READABLE, |fd| {
                sock::recv(fd.as_fd(), &mut buf, MsgFlags::MSG_DONTWAIT).map_err(io::Error::from)
            })
            .await;
        let len = match received {
            Ok(Some(r)) if !r.truncated => r.len,
            Ok(Some(_)) => {
                tracing::error!("the run spawner sent a message over {MAX_MESSAGE} bytes");
                continue;
            }
            Ok(None) | Err(_) => break,
        };
        match decode_reply(buf.get(..len).unwrap_or_default()) {
            Ok(reply) => deliver(&link, reply),
            Err(e) => tracing::error!(error = %e, "the run spawner sent a bad message"),
        }
    }
    let mut state = lock(&link.state);
    state.gone = true;
    state.replies.clear();
    state.exits.clear();
    tracing::error!(
        pid = spawner.as_raw(),
        "the run spawner has gone: runs in flight lose their exit status, new runs start their supervisor by exec"
    );
}

/// Hand one reply to whoever waits for it.
fn deliver(link: &Link, reply: Reply) {
    let mut state = lock(&link.state);
    match reply {
        Reply::Started { id, pid } => {
            let (tx, rx) = oneshot::channel();
            state.exits.insert(pid, tx);
            let taken = state
                .replies
                .remove(&id)
                .is_some_and(|waiter| waiter.send(Ok((pid, rx))).is_ok());
            if !taken {
                // Its run was dropped while it started: nobody will stop it but us.
                state.exits.remove(&pid);
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        Reply::Failed { id, reason } => {
            if let Some(waiter) = state.replies.remove(&id) {
                let _ = waiter.send(Err(reason));
            }
        }
        Reply::Exited { pid, status } => {
            if let Some(waiter) = state.exits.remove(&pid) {
                let _ = waiter.send(status);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_count_is_read_from_proc_status() {
        for (status, threads) in [
            ("Name:\tx\nThreads:\t1\nSigQ:\t0/1\n", Some(1)),
            ("Threads:\t17\n", Some(17)),
            ("Name:\tx\n", None),
            ("Threads:\tmany\n", None),
        ] {
            assert_eq!(threads_in(status), threads, "{status:?}");
        }
    }
}
