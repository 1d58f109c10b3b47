//! `TWOBOT_CODEX_USER`: Codex and its commands under their own uid, apart from 2Bot.
//!
//! Non-dumpable keeps a same-user command out of the server's /proc entries, but a
//! same-user command can still read every file 2Bot can (a tokens file, a key) and signal
//! 2Bot's processes. A separate Codex user closes that: the supervisor (still 2Bot's
//! user) starts Codex with this uid, gid and supplementary groups. The switch needs
//! CAP_SETUID and CAP_SETGID, and CAP_KILL to stop the other user's processes; 2Bot
//! refuses to start when it cannot make it, rather than quietly running Codex as itself.
//! Ambient capabilities would survive a switch between two non-root users and reach Codex
//! on exec, so they are refused too.

use std::ffi::CString;

use nix::unistd::{Gid, Uid, User, getgrouplist};

/// The user Codex runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodexUser {
    /// Its name (or the uid, when it has no passwd entry we could read).
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Every group it is in, the primary one included.
    pub groups: Vec<u32>,
}

/// Why Codex cannot run as the configured user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// No such user.
    #[error(
        "TWOBOT_CODEX_USER: no user {0:?} on this system; create it (see deploy/systemd) or unset the variable"
    )]
    Unknown(String),
    /// The user database could not be read.
    #[error("TWOBOT_CODEX_USER: cannot look up {0:?}: {1}")]
    Lookup(String, String),
    /// This process cannot switch users.
    #[error(
        "TWOBOT_CODEX_USER: 2Bot cannot run Codex as another user: it needs root or CAP_SETUID, CAP_SETGID and CAP_KILL (missing: {0})"
    )]
    NotPermitted(String),
    /// Ambient capabilities would reach Codex.
    #[error(
        "TWOBOT_CODEX_USER: 2Bot holds ambient capabilities, which Codex would inherit across the user switch; run 2Bot as root with a capability bounding set instead (see deploy/systemd)"
    )]
    Ambient,
}

/// Look `spec` (a name or a numeric uid) up in the user database.
pub fn resolve(spec: &str) -> Result<CodexUser, UserError> {
    let lookup = |e: nix::errno::Errno| UserError::Lookup(spec.to_owned(), e.to_string());
    let user = match spec.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)).map_err(lookup)?,
        Err(_) => User::from_name(spec).map_err(lookup)?,
    };
    let user = user.ok_or_else(|| UserError::Unknown(spec.to_owned()))?;
    let name = CString::new(user.name.as_bytes())
        .map_err(|e| UserError::Lookup(spec.to_owned(), e.to_string()))?;
    let groups = getgrouplist(&name, user.gid)
        .map_err(lookup)?
        .into_iter()
        .map(Gid::as_raw)
        .collect();
    Ok(CodexUser {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups,
    })
}

const CAP_KILL: u32 = 5;
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;

/// Whether a process with these effective and ambient capability sets (as in
/// `/proc/self/status`) can run Codex as another user safely. Pure.
pub fn check_switch(cap_eff: u64, cap_amb: u64) -> Result<(), UserError> {
    let missing: Vec<&str> = [
        (CAP_SETUID, "CAP_SETUID"),
        (CAP_SETGID, "CAP_SETGID"),
        (CAP_KILL, "CAP_KILL"),
    ]
    .into_iter()
    .filter(|(bit, _)| cap_eff & (1 << bit) == 0)
    .map(|(_, name)| name)
    .collect();
    if !missing.is_empty() {
        return Err(UserError::NotPermitted(missing.join(", ")));
    }
    if cap_amb != 0 {
        return Err(UserError::Ambient);
    }
    Ok(())
}

/// This process's effective and ambient capability sets.
pub fn own_capabilities() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    (field("CapEff:"), field("CapAmb:"))
}

/// Resolve `spec` and check that this process can switch to it: what start-up does.
pub fn prepare(spec: &str) -> Result<CodexUser, UserError> {
    let user = resolve(spec)?;
    let (eff, amb) = own_capabilities();
    check_switch(eff, amb)?;
    Ok(user)
}

/// Whether a file of `mode`, owned by `owner`:`group`, is readable by `user` (uid 0
/// reads everything). Pure; ACLs are not considered.
pub fn readable_by(mode: u32, owner: u32, group: u32, uid: u32, groups: &[u32]) -> bool {
    if uid == 0 {
        return true;
    }
    if owner == uid {
        return mode & 0o400 != 0;
    }
    if groups.contains(&group) {
        return mode & 0o040 != 0;
    }
    mode & 0o004 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readability_follows_the_owner_then_group_then_other_bits() {
        // (mode, owner, group, uid, groups) → readable
        let table = [
            (0o600, 0, 0, 1000, vec![1000], false),
            (0o640, 0, 50, 1000, vec![1000], false),
            (0o640, 0, 50, 1000, vec![1000, 50], true),
            (0o644, 0, 0, 1000, vec![1000], true),
            (0o400, 1000, 0, 1000, vec![], true),
            // The owner bits decide for the owner, even when others may read.
            (0o044, 1000, 0, 1000, vec![0], false),
            (0o000, 5, 5, 0, vec![], true),
        ];
        for (mode, owner, group, uid, groups, want) in table {
            assert_eq!(
                readable_by(mode, owner, group, uid, &groups),
                want,
                "{mode:o} {owner}:{group} for {uid} {groups:?}"
            );
        }
    }

    #[test]
    fn the_switch_needs_setuid_setgid_and_kill_and_no_ambient_set() {
        let all = (1 << CAP_SETUID) | (1 << CAP_SETGID) | (1 << CAP_KILL);
        assert_eq!(check_switch(all, 0), Ok(()));
        assert_eq!(
            check_switch(1 << CAP_KILL, 0),
            Err(UserError::NotPermitted("CAP_SETUID, CAP_SETGID".into()))
        );
        assert_eq!(check_switch(all, 1 << CAP_KILL), Err(UserError::Ambient));
    }

    #[test]
    fn an_unknown_user_is_named() {
        assert_eq!(
            resolve("no-such-user-2bot"),
            Err(UserError::Unknown("no-such-user-2bot".into()))
        );
        assert_eq!(resolve("0").map(|u| u.uid), Ok(0));
    }
}
