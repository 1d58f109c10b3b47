//! A process's descendants and names, read from `/proc`: how a test finds what a server
//! started for a run (its spawner, each supervisor, Codex and what Codex left behind)
//! before it kills the server, to check that all of it dies.

use std::time::Duration;

/// The direct children of `pid`, by the parent field of each `/proc/<pid>/stat`.
pub fn children(pid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|s| {
                    let (_, rest) = s.rsplit_once(") ")?;
                    rest.split(' ').nth(1)?.parse::<i32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Every descendant of `pid` alive now.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let mut next = vec![pid];
    while let Some(p) = next.pop() {
        for child in children(p) {
            found.push(child);
            next.push(child);
        }
    }
    found
}

/// The process's name (`/proc/<pid>/comm`), empty once it is gone.
pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The process's command line, its words joined by spaces (empty once it is gone).
pub fn cmdline(pid: i32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .replace('\0', " ")
}

/// The process's pid in each PID namespace it is in, outermost first (`NSpid`).
pub fn ns_pids(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|ids| {
            ids.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Panics naming each of `pids` still alive after `within`.
pub async fn assert_all_gone(pids: &[i32], within: Duration) {
    for &p in pids {
        let name = comm(p);
        assert!(super::gone_within(p, within).await, "{p} ({name}) survived");
    }
}
