//! The signals of a run's own processes: which ones the supervisor and a run's init read
//! from a signalfd, and the default dispositions Codex must start with.

use nix::sys::signal::{SigSet, Signal};

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
