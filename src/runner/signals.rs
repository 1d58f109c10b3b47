//! The signals of a run's own processes: which ones the supervisor and a run's init read
//! from a signalfd, and the default dispositions Codex must start with.

use std::os::fd::AsFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;

/// The signals the supervisor (and a run's init) read from a signalfd, blocked.
pub fn stop_signals() -> SigSet {
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGCHLD,
    ] {
        mask.add(s);
    }
    mask
}

/// Every signal back to its default action. 2Bot may itself have been started with
/// SIGTERM ignored (`trap '' TERM` in a wrapper, `nohup`), and an ignored signal stays
/// ignored across exec: Codex would then shrug off the stop and live out the grace period.
/// std resets the mask (and SIGPIPE) in the child; the dispositions are ours to reset.
pub fn default_dispositions() {
    use nix::sys::signal::{SigHandler, signal};
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP | Signal::SIGPIPE) {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler of ours, so no code can run in signal context.
        #[allow(unsafe_code)]
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
}

/// Wait at most `tick` for a signal on `signals` and drain them: `Ok(true)` when a stop
/// (SIGTERM, SIGINT, SIGHUP) came. SIGCHLD only wakes the caller to reap; SIGUSR1 (the
/// parent-death signal) decides nothing, since it also comes when the server *thread*
/// that forked us exits: only `getppid()` tells.
pub fn wait_for_stop(signals: &SignalFd, tick: Duration) -> Result<bool, Errno> {
    let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
    match poll(
        &mut fds,
        PollTimeout::try_from(tick).unwrap_or(PollTimeout::NONE),
    ) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(e) => return Err(e),
    }
    let mut stop = false;
    while let Ok(Some(info)) = signals.read_signal() {
        stop |= matches!(
            Signal::try_from(i32::try_from(info.ssi_signo).unwrap_or(0)),
            Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP)
        );
    }
    Ok(stop)
}
