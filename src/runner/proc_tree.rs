//! The supervisor's descendants, found through `/proc` (pid → ppid, zombies left out),
//! and the two ways it ends them: a signal to each, or SIGKILL and reap until none is
//! left. Apart from [`super::supervise`] because it is the one part that reads the
//! process table rather than its own children.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Send `signal` to every descendant of `me`.
pub(super) fn signal_all(me: Pid, signal: Signal) {
    for pid in descendants(me, &process_table()) {
        let _ = kill(pid, signal);
    }
}

/// SIGKILL every descendant of `me` and reap them, until none is left (bounded).
pub(super) fn kill_all(me: Pid) {
    // No child at all (ECHILD) means no descendant at all: every living descendant has a
    // living ancestor among our children, or is one (orphans are reparented to us). This
    // spares the common clean end the /proc scan.
    if waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) == Err(Errno::ECHILD) {
        return;
    }
    let started = Instant::now();
    loop {
        let found = descendants(me, &process_table());
        if found.is_empty() || started.elapsed() > Duration::from_secs(10) {
            break;
        }
        for pid in &found {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        // Killed children (and orphans reparented to us meanwhile) are reaped here.
        while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            if status == WaitStatus::StillAlive {
                std::thread::sleep(Duration::from_millis(5));
                break;
            }
        }
    }
    while matches!(
        waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)),
        Ok(s) if s != WaitStatus::StillAlive
    ) {}
}

/// pid → ppid for every process visible in /proc (zombies excluded: they are dead already).
fn process_table() -> BTreeMap<i32, i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()))
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            parse_stat(&stat)
                .filter(|(_, state)| *state != 'Z')
                .map(|(ppid, _)| (pid, ppid))
        })
        .collect()
}

/// The parent pid and state from a `/proc/<pid>/stat` line (the command name may hold
/// spaces and parentheses, so read after the last `)`).
pub fn parse_stat(stat: &str) -> Option<(i32, char)> {
    let (_, rest) = stat.rsplit_once(") ")?;
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

/// Every pid below `root` in `table` (pid → ppid).
pub fn descendants(root: Pid, table: &BTreeMap<i32, i32>) -> Vec<Pid> {
    let mut found = BTreeSet::new();
    let mut frontier = vec![root.as_raw()];
    while let Some(parent) = frontier.pop() {
        for (pid, ppid) in table {
            if *ppid == parent && *pid != root.as_raw() && found.insert(*pid) {
                frontier.push(*pid);
            }
        }
    }
    found.into_iter().map(Pid::from_raw).collect()
}

#[cfg(test)]
#[path = "proc_tree_tests.rs"]
mod tests;
