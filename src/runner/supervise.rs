//! The run supervisor: a hidden mode of the `2bot-mcp` binary (`2bot-mcp __supervise …`)
//! that the runner starts instead of Codex, so that nothing a run started outlives it.
//!
//! A process group is not enough: a command that calls `setsid` leaves it, and SIGKILL of
//! the server leaves the whole group running. The supervisor closes both gaps:
//!
//! - it is a child subreaper (`PR_SET_CHILD_SUBREAPER`), so every orphaned descendant,
//!   `setsid` or not, is reparented to it, where a scan of `/proc` finds it;
//! - it notices the server's death (`PR_SET_PDEATHSIG`, and `getppid()` polled as a
//!   backstop, because the death signal follows the *thread* that forked);
//! - when Codex exits, or the run is stopped (SIGTERM from the runner, or the server gone),
//!   it signals every remaining descendant, SIGKILLs what is left, reaps it all, and ends
//!   the way Codex ended (same exit code, or the same signal), so the runner's result is
//!   unchanged.
//!
//! With private namespaces the run spawner starts the run's init instead
//! (`super::run_init`), which does the same from inside the run's PID namespace; the
//! supervisor runs for a run without them, and, unsharing them first, when it is started
//! by exec.
//!
//! It is synchronous and small on purpose: no runtime, no logging set-up, one signalfd.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid, getpid, getppid};

use super::proc_tree::{kill_all, signal_all};

/// The hidden subcommand (kept out of `--help`: `main` dispatches on it before clap).
pub const SUBCOMMAND: &str = "__supervise";

/// Exit code and stderr marker by which the runner recognises "Codex could not be started".
pub const SPAWN_FAILED: u8 = 127;
/// Prefix of the one stderr line the supervisor writes when Codex could not be started.
pub const SPAWN_FAILED_MARKER: &str = "2bot-supervise: cannot start Codex: ";

/// The reason on a supervisor's stderr that Codex could not be started, if it says so.
pub fn spawn_failure(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix(SPAWN_FAILED_MARKER))
        .map(str::to_owned)
}

/// How often the supervisor looks for the server's death and for reparented orphans.
pub(super) const TICK: Duration = Duration::from_millis(200);

/// Why the supervisor's command line did not parse (only 2Bot writes it, so a bug or a
/// person typing the hidden subcommand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// An operand is absent (or not UTF-8 where text is needed).
    #[error("missing {0}")]
    Missing(&'static str),
    /// An operand is present but does not parse.
    #[error("bad {0}")]
    Bad(&'static str),
    /// Isolation with nothing to isolate: the cwd is always the first bind.
    #[error("--isolate without a --bind")]
    NoBind,
}

/// Why Codex could not be started; said after [`SPAWN_FAILED_MARKER`].
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The supplementary groups of `TWOBOT_CODEX_USER`.
    #[error("cannot set the Codex user's groups: {0}")]
    Groups(Errno),
    /// The run's init could not switch to `TWOBOT_CODEX_USER`.
    #[error("cannot become the Codex user: {0}")]
    User(Errno),
    /// The run's PID namespace got no `/proc` of its own.
    #[error("cannot mount /proc for the run's PID namespace: {0}")]
    Proc(Errno),
    /// The run's init could not listen for stop signals.
    #[error("signalfd: {0}")]
    Signalfd(Errno),
    /// `exec` failed: no such program, not executable.
    #[error("{0}")]
    Spawn(#[from] std::io::Error),
}

/// What the runner tells the supervisor, on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The server's pid: when our parent is no longer this, the server is gone.
    pub parent: i32,
    /// How long a stopped run may take to exit after SIGTERM before everything is SIGKILLed.
    pub grace: Duration,
    /// Run Codex as this uid/gid (with the supplementary groups), when set.
    pub user: Option<(u32, u32, Vec<u32>)>,
    /// Run Codex in private mount and PID namespaces with these private names.
    pub isolation: Option<super::namespace::Isolation>,
    /// Codex and its arguments.
    pub program: OsString,
    /// Codex's arguments.
    pub args: Vec<OsString>,
}

impl Args {
    /// The command line (after the subcommand) that [`Args::parse`] reads back.
    pub fn to_argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec![
            self.parent.to_string().into(),
            self.grace.as_millis().to_string().into(),
        ];
        if let Some((uid, gid, groups)) = &self.user {
            let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
            argv.push(format!("{uid}:{gid}:{}", groups.join(",")).into());
        } else {
            argv.push("-".into());
        }
        if let Some(iso) = &self.isolation {
            super::namespace::to_argv(iso, &mut argv);
        }
        argv.push("--".into());
        argv.push(self.program.clone());
        argv.extend(self.args.iter().cloned());
        argv
    }

    /// Read `<parent pid> <grace ms> <uid:gid:groups | -> [--isolate [--root R]… [--bind
    /// PRIVATE REAL]…] -- <program> <args…>`.
    pub fn parse(argv: &[OsString]) -> Result<Self, ArgsError> {
        let text = |i: usize, what: &'static str| -> Result<String, ArgsError> {
            argv.get(i)
                .and_then(|a| a.to_str())
                .map(str::to_owned)
                .ok_or(ArgsError::Missing(what))
        };
        let parent = text(0, "parent pid")?
            .parse::<i32>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or(ArgsError::Bad("parent pid"))?;
        let grace = Duration::from_millis(
            text(1, "grace")?
                .parse::<u64>()
                .map_err(|_| ArgsError::Bad("grace"))?,
        );
        let user = match text(2, "user")?.as_str() {
            "-" => None,
            spec => Some(parse_user(spec).ok_or(ArgsError::Bad("user"))?),
        };
        let mut at = 3;
        let isolation = if argv.get(at).is_some_and(|a| a == "--isolate") {
            at += 1;
            let mut iso = super::namespace::Isolation {
                roots: Vec::new(),
                binds: Vec::new(),
            };
            loop {
                let word = argv.get(at).and_then(|a| a.to_str());
                let operand = |i: usize| argv.get(at + i).cloned().map(PathBuf::from);
                match word {
                    Some("--root") => {
                        iso.roots
                            .push(operand(1).ok_or(ArgsError::Missing("root"))?);
                        at += 2;
                    }
                    Some("--bind") => {
                        let private = operand(1).ok_or(ArgsError::Missing("bind name"))?;
                        let real = operand(2).ok_or(ArgsError::Missing("bind path"))?;
                        iso.binds.push((private, real));
                        at += 3;
                    }
                    _ => break,
                }
            }
            if iso.binds.is_empty() {
                return Err(ArgsError::NoBind);
            }
            Some(iso)
        } else {
            None
        };
        if argv.get(at).is_none_or(|a| a != "--") {
            return Err(ArgsError::Missing("--"));
        }
        let program = argv
            .get(at + 1)
            .cloned()
            .ok_or(ArgsError::Missing("program"))?;
        Ok(Self {
            parent,
            grace,
            user,
            isolation,
            program,
            args: argv.get(at + 2..).unwrap_or_default().to_vec(),
        })
    }
}

fn parse_user(spec: &str) -> Option<(u32, u32, Vec<u32>)> {
    let mut parts = spec.splitn(3, ':');
    let uid = parts.next()?.parse().ok()?;
    let gid = parts.next()?.parse().ok()?;
    let groups = match parts.next()? {
        "" => Vec::new(),
        list => list
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?,
    };
    Some((uid, gid, groups))
}

/// The supervisor's `main`: `argv` is everything after [`SUBCOMMAND`].
pub fn main(argv: &[OsString]) -> ExitCode {
    let args = match Args::parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("2bot-supervise: {e} (this mode is started by 2bot-mcp itself)");
            return ExitCode::from(2);
        }
    };
    ExitCode::from(run(&args))
}

/// Supervise Codex as `args` say, in this process (exec'd as [`SUBCOMMAND`], or forked by
/// the run spawner); the process's exit code. A Codex killed by a signal is reproduced
/// by dying of the same signal before this returns.
pub fn run(args: &Args) -> u8 {
    match supervise(args) {
        Ok(end) => end.exit(),
        Err(Failure::Spawn(e)) => {
            eprintln!("{SPAWN_FAILED_MARKER}{e}");
            SPAWN_FAILED
        }
        Err(Failure::Setup(e)) => {
            eprintln!("2bot-supervise: {e}");
            2
        }
    }
}

/// How Codex ended, to be reproduced by the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Code(i32),
    Signal(Signal),
}

impl End {
    fn exit(self) -> u8 {
        match self {
            Self::Code(code) => u8::try_from(code & 0xff).unwrap_or(1),
            Self::Signal(signal) => {
                // Die of the same signal, so the runner reads the same status as before.
                // It is blocked (or, for SIGKILL, unblockable): raise it, then unblock it.
                let _ = kill(getpid(), signal);
                let mut set = SigSet::empty();
                set.add(signal);
                let _ = set.thread_unblock();
                128u8.saturating_add(u8::try_from(signal as i32).unwrap_or(0))
            }
        }
    }
}

/// Why the supervisor could not run Codex.
#[derive(Debug)]
pub(super) enum Failure {
    /// Codex itself could not be started (reported to the caller as such).
    Spawn(String),
    /// The supervisor could not set itself up.
    Setup(String),
}

/// Codex's command: its program and arguments, and its user when one is set (the
/// supplementary groups are set on this process first: std keeps them across setuid).
pub(super) fn codex_command(args: &Args) -> Result<std::process::Command, StartError> {
    let mut command = std::process::Command::new(&args.program);
    command.args(&args.args);
    if let Some((uid, gid, groups)) = &args.user {
        let groups: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
        nix::unistd::setgroups(&groups).map_err(StartError::Groups)?;
        command.uid(Uid::from_raw(*uid).as_raw()).gid(*gid);
    }
    Ok(command)
}

fn supervise(args: &Args) -> Result<End, Failure> {
    use nix::sys::prctl;
    // Same as the server: nothing of this process is readable through /proc by Codex.
    let _ = prctl::set_dumpable(false);
    super::signals::default_dispositions();
    let mask = super::signals::stop_signals();
    // Blocked here, read from the signalfd; std resets the mask in Codex before exec.
    let setup = |what: &str| {
        let what = what.to_owned();
        move |e: Errno| Failure::Setup(format!("cannot {what}: {e}"))
    };
    mask.thread_block().map_err(setup("block signals"))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(setup("open a signalfd"))?;
    prctl::set_child_subreaper(true).map_err(setup("become a child subreaper"))?;
    prctl::set_pdeathsig(Signal::SIGUSR1).map_err(setup("set the parent-death signal"))?;
    if getppid().as_raw() != args.parent {
        // The server died before we got here.
        return Ok(End::Signal(Signal::SIGKILL));
    }

    if let Some(iso) = &args.isolation {
        super::namespace::enter(iso, args.user.as_ref())
            .map_err(|e| Failure::Spawn(format!("cannot isolate the run: {e}")))?;
        return super::run_init::run(args, &signals);
    }
    let mut command = codex_command(args).map_err(|e| Failure::Spawn(e.to_string()))?;
    let codex = match command.spawn() {
        Ok(c) => Pid::from_raw(i32::try_from(c.id()).unwrap_or(i32::MAX)),
        Err(e) => return Err(Failure::Spawn(e.to_string())),
    };

    let me = getpid();
    let mut codex_end: Option<End> = None;
    let mut stop_deadline: Option<Instant> = None;
    let mut killed = false;
    loop {
        // Reap whatever ended: Codex, or orphans reparented to us.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == codex => {
                    codex_end = Some(End::Code(code));
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == codex => {
                    codex_end = Some(End::Signal(signal));
                }
                // No child left at all: Codex was reaped while we killed the tree (its
                // status went with it), so it ended by our SIGKILL.
                Err(Errno::ECHILD) => {
                    codex_end.get_or_insert(End::Signal(Signal::SIGKILL));
                    break;
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if let Some(end) = codex_end {
            kill_all(me);
            return Ok(end);
        }
        let mut stop = super::signals::wait_for_stop(&signals, TICK)
            .map_err(|e| Failure::Setup(format!("poll failed: {e}")))?;
        let parent_gone = getppid().as_raw() != args.parent;
        stop |= parent_gone;
        if stop && stop_deadline.is_none() {
            signal_all(me, Signal::SIGTERM);
            // Act a little before the runner's own SIGKILL, so nothing is orphaned by it.
            let grace = if parent_gone {
                Duration::ZERO
            } else {
                args.grace * 4 / 5
            };
            stop_deadline = Some(Instant::now() + grace);
        }
        if let Some(deadline) = stop_deadline
            && Instant::now() >= deadline
            && !killed
        {
            kill_all(me);
            killed = true;
        }
    }
}

#[cfg(test)]
#[path = "supervise_tests.rs"]
mod tests;
