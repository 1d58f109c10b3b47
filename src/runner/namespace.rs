//! Each run in its own mount and PID namespaces, set up by the run supervisor.
//!
//! Why (SECURITY.md, "Containment"):
//! - **Mount namespace.** Codex resolves the directory names it is given long after 2Bot
//!   checked them, so a name must be one nobody else can re-point. The supervisor makes a
//!   private copy of the mount tree, covers [`MOUNT_DIR`] with a fresh tmpfs, bind-mounts
//!   each checked directory there from a descriptor opened beneath its root (no symlink
//!   followed), and makes the tmpfs read-only. Codex gets only those private names
//!   (`isolation::View`); other runs cannot even see them.
//! - **PID namespace.** A command Codex runs cannot see or signal its supervisor (it has
//!   no pid in the run's namespace), and when the run's init ends, the kernel kills every
//!   process left in the namespace: a `setsid` daemon cannot outlive its run.
//!
//! The process shape is `spawner` → `init` (pid 1 inside, cloned by the run spawner
//! straight into the new namespaces) → Codex; a supervisor started by exec (the spawner
//! gone, the start-up probe) unshares them and forks the init instead. The init forwards
//! a stop to everything in the namespace, reaps orphans, and reports how Codex ended over
//! a pipe, so the runner sees the same exit status as without namespaces. As root the
//! namespaces are made directly; otherwise inside a user namespace that maps only 2Bot's
//! own uid and gid.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{Gid, Uid};

use super::isolation::MOUNT_DIR;
use super::run_init::PROBE_PROGRAM;
use super::supervise::Args;

/// What the runner asks the supervisor to isolate, on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// The allowed roots: each extra directory is opened beneath the one it lies in.
    pub roots: Vec<PathBuf>,
    /// Private name → checked path; the first is the cwd, bound from the supervisor's
    /// own working directory (the runner started it in the directory it opened).
    pub binds: Vec<(PathBuf, PathBuf)>,
}

/// Why runs cannot be isolated here.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The supervisor binary did not start at all.
    #[error("cannot start the run supervisor: {0}")]
    Start(std::io::Error),
    /// The supervisor's set-up failed; its own last word on stderr.
    #[error("{0}")]
    Refused(String),
}

/// Whether runs can be isolated here: one supervisor goes through the whole set-up (user
/// namespace where needed, tmpfs, a bind, the init) and starts nothing. Blocking, a few ms.
pub fn probe(
    supervisor: &Path,
    codex_user: Option<&(u32, u32, Vec<u32>)>,
) -> Result<(), ProbeError> {
    let args = Args {
        parent: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
        grace: Duration::from_millis(100),
        user: codex_user.cloned(),
        isolation: Some(Isolation {
            roots: Vec::new(),
            binds: vec![(Path::new(MOUNT_DIR).join("probe"), PathBuf::from("/"))],
        }),
        program: PROBE_PROGRAM.into(),
        args: Vec::new(),
    };
    let out = std::process::Command::new(supervisor)
        .arg(super::supervise::SUBCOMMAND)
        .args(args.to_argv())
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .output()
        .map_err(ProbeError::Start)?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reason = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(super::supervise::SPAWN_FAILED_MARKER))
        .or_else(|| stderr.lines().next_back())
        .unwrap_or("no reason given")
        .trim()
        .to_owned();
    Err(ProbeError::Refused(reason))
}

/// Why a run's namespaces could not be made. Each says what the operator can do.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    /// `/mnt` is missing (and cannot be made) or is not a root-owned, non-writable directory.
    #[error(
        "{MOUNT_DIR} must be a directory owned by root and writable by nobody else ({0}); create it as root with `mkdir -m 755 {MOUNT_DIR}`"
    )]
    MountDir(String),
    /// Root without CAP_SYS_ADMIN cannot both isolate a run and switch to the Codex user.
    #[error(
        "running Codex as TWOBOT_CODEX_USER in private namespaces needs CAP_SYS_ADMIN: add it to the unit's CapabilityBoundingSet (deploy/systemd; Codex never gets it), or set TWOBOT_RUN_NAMESPACES=off"
    )]
    NeedsSysAdmin,
    /// The kernel refused the namespaces.
    #[error(
        "the kernel refused private namespaces ({0}): run 2Bot as root (with TWOBOT_CODEX_USER), or allow unprivileged user namespaces"
    )]
    Unshare(Errno),
    /// A mount or the user mapping failed.
    #[error("cannot {0}: {1}")]
    Setup(String, String),
    /// A checked directory could not be opened as checked.
    #[error("{0} can no longer be opened as checked: {1}")]
    Changed(String, super::cwd::OpenError),
}

/// The namespaces a run gets here, checked before any is made: mount and PID, made
/// directly as root with CAP_SYS_ADMIN, otherwise inside a user namespace of 2Bot's own
/// ids; and [`MOUNT_DIR`] fit to hold the private names (checked from outside: inside a
/// user namespace its owner, root, shows as nobody). Read from this process's
/// credentials, so the spawner (cloning the run's init into them) and an exec'd
/// supervisor (unsharing them) decide alike.
pub fn plan(codex_user: Option<&(u32, u32, Vec<u32>)>) -> Result<CloneFlags, NsError> {
    let direct = Uid::effective().is_root() && has_cap_sys_admin();
    if !direct && codex_user.is_some() {
        // A user namespace made after the fact could map the Codex user only with the
        // help of a process left outside it; 2Bot runs as root here anyway.
        return Err(NsError::NeedsSysAdmin);
    }
    let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID;
    if !direct {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    check_mount_dir(Uid::effective().is_root())?;
    Ok(flags)
}

/// Enter new mount and PID namespaces and lay out the private names. Called by an exec'd
/// supervisor, single-threaded, before it forks the init.
pub fn enter(iso: &Isolation, codex_user: Option<&(u32, u32, Vec<u32>)>) -> Result<(), NsError> {
    let flags = plan(codex_user)?;
    unshare(flags).map_err(NsError::Unshare)?;
    lay_out(iso, flags)
}

/// In namespaces just made with `flags` (by `unshare`, or by the clone that started this
/// process as the run's init): map the ids of a user namespace, then lay out the private
/// names. The working directory is the run's cwd, carried into the new mount namespace.
pub fn lay_out(iso: &Isolation, flags: CloneFlags) -> Result<(), NsError> {
    if flags.contains(CloneFlags::CLONE_NEWUSER) {
        write_maps(&id_maps(Uid::current().as_raw(), Gid::current().as_raw()))?;
    }
    let fail = |what: &str| {
        let what = what.to_owned();
        move |e: Errno| NsError::Setup(what, e.to_string())
    };
    // Nothing mounted here may show in the server's namespace (systemd makes "/" shared).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(fail("make the mount tree private"))?;
    let tmpfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("tmpfs"),
        MOUNT_DIR,
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=0755,size=64k,nr_inodes=256"),
    )
    .map_err(fail("mount a tmpfs on /mnt"))?;
    for (i, (private, real)) in iso.binds.iter().enumerate() {
        // Opened only now, inside the new namespace: a bind's source must be one of its
        // mounts. The cwd is the very directory the runner opened (our working directory).
        let dir = if i == 0 {
            super::cwd::open_current().map_err(|e| NsError::Changed("cwd".into(), e))?
        } else {
            super::cwd::open_beneath(&iso.roots, real)
                .map_err(|e| NsError::Changed(real.display().to_string(), e))?
        };
        std::fs::create_dir(private)
            .map_err(|e| NsError::Setup(format!("create {}", private.display()), e.to_string()))?;
        mount(
            Some(&dir.proc_path()),
            private,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(fail(&format!("bind {}", private.display())))?;
    }
    // The layout is final: nobody in the run can add, rename or replace a private name.
    mount(
        None::<&str>,
        MOUNT_DIR,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | tmpfs_flags,
        None::<&str>,
    )
    .map_err(fail("make /mnt read-only"))?;
    Ok(())
}

/// The id maps of a run's user namespace (made when 2Bot cannot mount directly, not being
/// root): exactly its own uid and gid, which Codex keeps. An unprivileged writer must deny
/// setgroups before it may write a gid map.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IdMaps {
    uid_map: String,
    gid_map: String,
}

/// Pure: the maps for a supervisor with `uid`/`gid`.
fn id_maps(uid: u32, gid: u32) -> IdMaps {
    IdMaps {
        uid_map: format!("{uid} {uid} 1"),
        gid_map: format!("{gid} {gid} 1"),
    }
}

fn write_maps(maps: &IdMaps) -> Result<(), NsError> {
    let setup = |what: &str| {
        let what = what.to_owned();
        move |e: std::io::Error| NsError::Setup(what, e.to_string())
    };
    // A non-dumpable process's /proc files belong to root, so a non-root supervisor may
    // not write its own maps; it holds no secret (its environment is Codex's).
    let _ = nix::sys::prctl::set_dumpable(true);
    let written = std::fs::write("/proc/self/setgroups", "deny")
        .map_err(setup("deny setgroups"))
        .and_then(|()| {
            std::fs::write("/proc/self/uid_map", &maps.uid_map).map_err(setup("map the user"))
        })
        .and_then(|()| {
            std::fs::write("/proc/self/gid_map", &maps.gid_map).map_err(setup("map the groups"))
        });
    let _ = nix::sys::prctl::set_dumpable(false);
    written
}

/// Whether this process may mount in its own namespace (CAP_SYS_ADMIN, bit 21 of CapEff).
fn has_cap_sys_admin() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 21) != 0)
}

/// `/mnt` must exist as a directory only root may change: its name is what Codex resolves.
fn check_mount_dir(as_root: bool) -> Result<(), NsError> {
    let meta = match std::fs::symlink_metadata(MOUNT_DIR) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && as_root => {
            std::fs::create_dir(MOUNT_DIR)
                .map_err(|e| NsError::MountDir(format!("cannot create it: {e}")))?;
            std::fs::symlink_metadata(MOUNT_DIR).map_err(|e| NsError::MountDir(e.to_string()))?
        }
        Err(e) => return Err(NsError::MountDir(e.to_string())),
        Ok(meta) => meta,
    };
    if !meta.file_type().is_dir() {
        return Err(NsError::MountDir("it is not a directory".into()));
    }
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(NsError::MountDir(format!(
            "owner uid {}, mode {:o}",
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// `--isolate` arguments for the supervisor's command line (see `Args::to_argv`).
pub fn to_argv(iso: &Isolation, argv: &mut Vec<OsString>) {
    argv.push("--isolate".into());
    for root in &iso.roots {
        argv.push("--root".into());
        argv.push(root.clone().into_os_string());
    }
    for (private, real) in &iso.binds {
        argv.push("--bind".into());
        argv.push(private.clone().into_os_string());
        argv.push(real.clone().into_os_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_s_user_namespace_maps_exactly_2bot_s_own_ids() {
        assert_eq!(
            id_maps(1000, 1001),
            IdMaps {
                uid_map: "1000 1000 1".into(),
                gid_map: "1001 1001 1".into()
            }
        );
    }
}
