//! The run's init: pid 1 of the run's PID namespace.
//!
//! The run spawner clones it straight into the run's new namespaces ([`cloned`]); a
//! supervisor started by exec (when the spawner is gone, and the start-up probe) unshares
//! them and forks it ([`run`]). Either way it starts Codex, forwards a stop to every
//! process of the run at once (`kill(-1, …)` from pid 1 reaches exactly the run), reaps
//! orphans, and when Codex ends kills what is left and reports how Codex ended over a
//! pipe, so the runner reads the same exit status as without namespaces (pid 1 of a
//! namespace cannot die of its own signal to pass it on). When the init itself ends,
//! the kernel kills whatever remains in the namespace.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid, getppid};

use super::signals::wait_for_stop;
use super::supervise::{Args, End, Failure, SPAWN_FAILED, SPAWN_FAILED_MARKER, StartError, TICK};

/// The program name that makes the init report success without starting anything: the
/// start-up probe of whether this machine allows the namespaces.
pub const PROBE_PROGRAM: &str = "__probe";

/// Fork the init (pid 1 of the new PID namespace) and supervise it from outside: forward
/// a stop, kill it when the server is gone, and end the way Codex ended.
pub(super) fn run(args: &Args, signals: &SignalFd) -> Result<End, Failure> {
    let (report_rx, report_tx) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Failure::Setup(format!("pipe: {e}")))?;
    // SAFETY: the supervisor is single-threaded (no runtime, no thread started), so the
    // child may run any code after fork; it only calls `init` and exits.
    #[allow(unsafe_code)]
    let forked = unsafe { nix::unistd::fork() };
    match forked {
        Err(e) => Err(Failure::Setup(format!("cannot fork the run's init: {e}"))),
        Ok(ForkResult::Child) => {
            drop(report_rx);
            let end = init(args, report_tx);
            std::process::exit(end)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(report_tx);
            Ok(outside(args, signals, child, report_rx))
        }
    }
}

/// The supervisor's side: wait for the init, relay stops, then read how Codex ended.
fn outside(args: &Args, signals: &SignalFd, init: Pid, report: OwnedFd) -> End {
    loop {
        match waitpid(init, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(_) => break,
            Ok(_) => {}
        }
        if wait_for_stop(signals, TICK).unwrap_or(false) {
            let _ = kill(init, Signal::SIGTERM);
        }
        if getppid().as_raw() != args.parent {
            // The server is gone: the init's death takes the whole namespace with it.
            let _ = kill(init, Signal::SIGKILL);
        }
    }
    let mut text = String::new();
    let _ = std::fs::File::from(report).read_to_string(&mut text);
    parse_report(&text).unwrap_or(End::Signal(Signal::SIGKILL))
}

/// Pid 1 of the run, cloned by the run spawner straight into namespaces made with `flags`
/// (a process and an exit fewer per run than a supervisor that unshares and forks):
/// lay out the private names, then be the init. How Codex ended goes to `report`, which
/// the spawner reads when it reaps us ([`reported_status`]); returns the init's own exit
/// code. `spawner` is a pidfd of the spawner, our parent, which has no pid in here.
pub(super) fn cloned(
    args: &Args,
    flags: CloneFlags,
    report: OwnedFd,
    spawner: Option<OwnedFd>,
) -> i32 {
    use nix::sys::prctl;
    // Same as the server: nothing of this process is readable through /proc by Codex.
    let _ = prctl::set_dumpable(false);
    // The spawner gone means the server is gone (it dies with the server), and so is
    // the run: our death ends the namespace.
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    if spawner.as_ref().is_some_and(exited) {
        // It died before the death signal was set, so none will come.
        return 1;
    }
    drop(spawner);
    if let Some(iso) = &args.isolation
        && let Err(e) = super::namespace::lay_out(iso, flags)
    {
        eprintln!("{SPAWN_FAILED_MARKER}cannot isolate the run: {e}");
        return i32::from(SPAWN_FAILED);
    }
    init(args, report)
}

/// Whether the process behind `pidfd` has exited (its pidfd is then readable).
fn exited(pidfd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(
        std::os::fd::AsFd::as_fd(pidfd),
        PollFlags::POLLIN,
    )];
    poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
}

/// The wait status the server reads for a cloned init: how Codex ended, from the init's
/// `report`, when the init itself exited cleanly; otherwise the init's own `raw` status
/// (it could not start Codex, or it was killed: the runner's SIGKILL after the grace).
/// A clean exit with no report counts as killed, as for an exec'd supervisor.
pub(super) fn reported_status(raw: i32, report: &str) -> i32 {
    if raw != 0 {
        return raw;
    }
    match parse_report(report).unwrap_or(End::Signal(Signal::SIGKILL)) {
        End::Code(code) => (code & 0xff) << 8,
        End::Signal(signal) => signal as i32,
    }
}

/// How the init tells the supervisor how Codex ended: `code N` or `signal N`.
fn report_line(end: End) -> String {
    match end {
        End::Code(code) => format!("code {code}\n"),
        End::Signal(signal) => format!("signal {}\n", signal as i32),
    }
}

fn parse_report(text: &str) -> Option<End> {
    let (kind, n) = text.trim().split_once(' ')?;
    let n: i32 = n.parse().ok()?;
    match kind {
        "code" => Some(End::Code(n)),
        "signal" => Signal::try_from(n).ok().map(End::Signal),
        _ => None,
    }
}

/// Pid 1 of the run: start Codex, reap everything, stop everything, report. Returns the
/// init's own exit code (the report carries Codex's).
fn init(args: &Args, report: OwnedFd) -> i32 {
    use nix::sys::prctl;
    // Our supervisor gone means the run is over: our death ends the namespace.
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    let mut out = std::fs::File::from(report);
    let end = match start_and_wait(args) {
        Ok(end) => end,
        Err(message) => {
            eprintln!("{SPAWN_FAILED_MARKER}{message}");
            End::Code(i32::from(SPAWN_FAILED))
        }
    };
    let _ = out.write_all(report_line(end).as_bytes());
    0
}

fn start_and_wait(args: &Args) -> Result<End, StartError> {
    // A /proc of this namespace: Codex's own sandbox (bwrap) looks itself up there by its
    // pid here, so without it every command would fail; and commands see only the run's
    // processes. Where it is refused (a container may), the start-up probe fails too,
    // and `auto` runs without namespaces rather than with a broken Codex.
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(StartError::Proc)?;
    let mask = super::signals::stop_signals();
    let signals = SignalFd::with_flags(
        &mask,
        nix::sys::signalfd::SfdFlags::SFD_NONBLOCK | nix::sys::signalfd::SfdFlags::SFD_CLOEXEC,
    )
    .map_err(StartError::Signalfd)?;
    if args.program == PROBE_PROGRAM {
        return Ok(End::Code(0));
    }
    let cwd = args
        .isolation
        .as_ref()
        .and_then(|iso| iso.binds.first())
        .map(|(private, _)| private.clone())
        .unwrap_or_else(|| PathBuf::from("/"));
    // The init itself becomes the Codex user, groups included (std's own user switch in
    // the child would drop the supplementary groups as it sets the uid from root); as pid
    // 1 of the run it still reaches every process of the run, all of them that user's.
    if let Some((uid, gid, groups)) = &args.user {
        let groups: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
        nix::unistd::setgroups(&groups)
            .and_then(|()| nix::unistd::setgid(Gid::from_raw(*gid)))
            .and_then(|()| nix::unistd::setuid(Uid::from_raw(*uid)))
            .map_err(StartError::User)?;
    }
    let mut command = std::process::Command::new(&args.program);
    command.args(&args.args);
    // `PWD` too: a shell trusts it over getcwd when both name the same directory.
    command.current_dir(&cwd).env("PWD", &cwd);
    let codex = command.spawn()?;
    let codex = Pid::from_raw(i32::try_from(codex.id()).unwrap_or(i32::MAX));
    // Codex holds the run's stdio now; without our copies the runner reads the end of
    // Codex's output when Codex and what it started are gone, not after our own exit.
    null_stdio(true);
    let mut end: Option<End> = None;
    let mut deadline: Option<Instant> = None;
    let mut killed = false;
    loop {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == codex => end = Some(End::Code(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == codex => {
                    end = Some(End::Signal(sig));
                }
                Err(Errno::ECHILD) => {
                    end.get_or_insert(End::Signal(Signal::SIGKILL));
                    break;
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if let Some(end) = end {
            // Whatever Codex left behind dies with it (and with us, a moment later).
            let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
            while waitpid(Pid::from_raw(-1), None).is_ok() {}
            return Ok(end);
        }
        if wait_for_stop(&signals, TICK).unwrap_or(false) && deadline.is_none() {
            // Every process of the run, `setsid` or not, at once.
            let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
            deadline = Some(Instant::now() + args.grace * 4 / 5);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) && !killed {
            let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
            killed = true;
        }
    }
}

/// Put `/dev/null` on stdin and stdout, and on stderr when `stderr_too` (the run's init
/// says nothing after Codex started; the spawner keeps the server's stderr).
pub(super) fn null_stdio(stderr_too: bool) {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        if stderr_too {
            let _ = nix::unistd::dup2_stderr(&null);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_report_round_trips_codes_and_signals() {
        for end in [End::Code(0), End::Code(3), End::Signal(Signal::SIGTERM)] {
            assert_eq!(parse_report(&report_line(end)), Some(end));
        }
        assert_eq!(parse_report(""), None);
        assert_eq!(parse_report("signal 999"), None);
        assert_eq!(parse_report("exit 1"), None);
    }

    #[test]
    fn a_cloned_init_s_status_is_codex_s_when_it_reported_and_its_own_otherwise() {
        use std::os::unix::process::ExitStatusExt;
        use std::process::ExitStatus;
        let cases: [(i32, &str, Option<i32>, Option<i32>); 6] = [
            (0, "code 0\n", Some(0), None),
            (0, "code 3\n", Some(3), None),
            (0, "signal 15\n", None, Some(15)),
            (0, "", None, Some(9)),
            (127 << 8, "", Some(127), None),
            (9, "code 0\n", None, Some(9)),
        ];
        for (raw, report, code, signal) in cases {
            let status = ExitStatus::from_raw(reported_status(raw, report));
            assert_eq!(
                (status.code(), status.signal()),
                (code, signal),
                "{raw} {report:?}"
            );
        }
    }
}
