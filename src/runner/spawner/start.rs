//! One request to the run spawner, checked, and what it becomes: a run's init cloned
//! straight into the run's namespaces, or (for a run without namespaces) a run
//! supervisor; set up either way exactly as an exec'd supervisor would be.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::{ForkResult, Pid, pipe2, setpgid};

use super::clone;
use super::sock::MAX_MESSAGE;
use super::wire::{WireError, decode_request};
use crate::runner::supervise::{self, Args, ArgsError, SPAWN_FAILED, SPAWN_FAILED_MARKER};
use crate::runner::{namespace, run_init, signals};

/// One request, checked, ready to become a run's init or supervisor.
pub(super) struct Start {
    args: Args,
    env: Vec<(OsString, OsString)>,
    cwd: OwnedFd,
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

/// Why a request started no init or supervisor: the reason the spawner sends back.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unstartable {
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
    /// The kernel refused the clone into the run's namespaces.
    #[error("cannot isolate the run: {0}")]
    Isolate(namespace::NsError),
    /// No pipe for the report of the run's init.
    #[error("cannot make the run's report pipe: {0}")]
    Pipe(Errno),
}

/// What a started request is on each side of the fork.
pub(super) enum Launched {
    /// In the spawner: the child's pid (its process group too, once set).
    Parent(Pid),
    /// In the child: what it is to become, by [`Start::become_run`].
    Child(Role),
}

/// What a forked child becomes.
pub(super) enum Role {
    /// A run supervisor (a run without namespaces).
    Supervisor,
    /// The run's init, pid 1 of namespaces made with these flags, its report pipe.
    Init(CloneFlags, OwnedFd),
    /// Nothing: the run cannot start, for this reason (said as the supervisor would).
    Refused(String),
}

impl Start {
    /// The request in `bytes` with its descriptors; the reason it cannot start.
    pub(super) fn new(bytes: &[u8], fds: Vec<OwnedFd>, me: Pid) -> Result<Self, Unstartable> {
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

    /// Fork what this request becomes: for an isolated run, its init, cloned straight
    /// into the run's namespaces with a report pipe kept in `reports`; otherwise a run
    /// supervisor. Called in the spawner (single-threaded).
    pub(super) fn launch(
        &self,
        reports: &mut HashMap<i32, super::zygote::Report>,
    ) -> Result<Launched, Unstartable> {
        if self.args.isolation.is_none() {
            return fork_as(Role::Supervisor);
        }
        let flags = match namespace::plan(self.args.user.as_ref()) {
            Ok(flags) => flags,
            Err(e) => return fork_as(Role::Refused(format!("cannot isolate the run: {e}"))),
        };
        let (report_rx, report_tx) =
            pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(Unstartable::Pipe)?;
        // The cwd crosses into the new mount namespace only as the working directory
        // held at the clone; a descriptor would still name the server's mount of it.
        if let Err(e) = nix::unistd::fchdir(&self.cwd) {
            return fork_as(Role::Refused(format!(
                "cannot enter the run's directory: {e}"
            )));
        }
        // A stop sent before the init reads its signalfd waits, blocked, instead of
        // meeting the spawner's ignored dispositions (an init cannot be stopped by a
        // signal it does not handle).
        let mut stops = signals::stop_signals();
        stops.remove(Signal::SIGCHLD);
        let _ = stops.thread_block();
        // SAFETY: the spawner is single-threaded (forked from the server before its
        // runtime started, and it starts no thread).
        #[allow(unsafe_code)]
        let forked = unsafe { clone::fork_into(flags) };
        if !matches!(forked, Ok(ForkResult::Child)) {
            let _ = stops.thread_unblock();
            // Hold no run's directory between runs.
            let _ = std::env::set_current_dir("/");
        }
        match forked.map_err(|e| Unstartable::Isolate(namespace::NsError::Unshare(e)))? {
            ForkResult::Child => {
                drop(report_rx);
                Ok(Launched::Child(Role::Init(flags, report_tx)))
            }
            ForkResult::Parent { child } => {
                reports.insert(child.as_raw(), super::zygote::Report::Waiting(report_rx));
                Ok(Launched::Parent(child))
            }
        }
    }

    /// In the forked child: become what `role` says, set up as an exec'd supervisor
    /// would be (its own process group, the run's stdio, environment and directory,
    /// default signal dispositions). Returns the process's exit code.
    pub(super) fn become_run(self, role: Role, spawner: Option<OwnedFd>) -> i32 {
        let Self {
            args,
            env,
            cwd,
            stdin,
            stdout,
            stderr,
        } = self;
        signals::default_dispositions();
        // An init reads its stops from a signalfd: they stay blocked from the clone on.
        let mask = match role {
            Role::Init(..) => signals::stop_signals(),
            Role::Supervisor | Role::Refused(_) => SigSet::empty(),
        };
        let _ = mask.thread_set_mask();
        let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
        let _ = nix::sys::prctl::set_name(c"2bot-supervise");
        if nix::unistd::dup2_stdin(&stdin).is_err()
            || nix::unistd::dup2_stdout(&stdout).is_err()
            || nix::unistd::dup2_stderr(&stderr).is_err()
        {
            return 2;
        }
        drop((stdin, stdout, stderr));
        match role {
            Role::Refused(reason) => {
                eprintln!("{SPAWN_FAILED_MARKER}{reason}");
                i32::from(SPAWN_FAILED)
            }
            Role::Init(flags, report) => {
                // Already in the run's directory (see `launch`).
                drop(cwd);
                replace_env(env);
                run_init::cloned(&args, flags, report, spawner)
            }
            Role::Supervisor => {
                drop(spawner);
                if let Err(e) = nix::unistd::fchdir(&cwd) {
                    eprintln!("{SPAWN_FAILED_MARKER}cannot enter the run's directory: {e}");
                    return i32::from(SPAWN_FAILED);
                }
                drop(cwd);
                replace_env(env);
                i32::from(supervise::run(&args))
            }
        }
    }
}

/// A plain fork that becomes `role` in the child.
fn fork_as(role: Role) -> Result<Launched, Unstartable> {
    // SAFETY: the spawner is single-threaded (see `launch`).
    #[allow(unsafe_code)]
    let forked = unsafe { nix::unistd::fork() };
    match forked.map_err(Unstartable::Fork)? {
        ForkResult::Child => Ok(Launched::Child(role)),
        ForkResult::Parent { child } => Ok(Launched::Parent(child)),
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
