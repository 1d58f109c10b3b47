//! A fork straight into new namespaces, and the spawner's own pidfd: how the spawner
//! starts a run's init as pid 1 of the run's PID namespace, one process and one exit
//! fewer per run than a supervisor that unshares and forks the init itself
//! (BENCHMARKS.md, "where a warm call's time goes").
//!
//! Why a raw `clone` system call: glibc's `fork` takes no namespace flags, and its
//! `clone` wants a callback on a stack of its own. With no stack, the system call is what
//! glibc's `fork` makes, without its bookkeeping, none of which the spawner needs: it is
//! single-threaded (no lock to reset), registers no atfork handler, and the thread id
//! glibc keeps for the child stays the parent's, which nothing in the child reads
//! (`raise` and `abort` ask the kernel for it).

use std::os::fd::{FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;
use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Pid};

/// `fork`, with the child in the new namespaces `flags` names.
///
/// # Safety
/// As for `fork`: the calling process must be single-threaded, since the child may run
/// any code.
#[allow(unsafe_code)]
pub(super) unsafe fn fork_into(flags: CloneFlags) -> Result<ForkResult, Errno> {
    let flags = libc::c_ulong::from(flags.bits().cast_unsigned())
        | libc::c_ulong::from(libc::SIGCHLD.cast_unsigned());
    // SAFETY: no stack, no thread-id pointers, no TLS: the child gets a copy of this
    // process, as after `fork` (the caller's single thread is this function's contract).
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(ForkResult::Child),
        pid => Ok(ForkResult::Parent {
            child: Pid::from_raw(i32::try_from(pid).map_err(|_| Errno::EOVERFLOW)?),
        }),
    }
}

/// A pidfd of this process: inherited by the inits it clones, whose parent has no pid in
/// their namespace, so that they can tell whether it died before they could ask for its
/// death signal. None where the kernel has no pidfds (before 5.3).
pub(super) fn own_pidfd() -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor (close-on-exec)
    // or -1; nothing else is touched.
    #[allow(unsafe_code)]
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: a descriptor just returned to us, owned by nothing else.
    #[allow(unsafe_code)]
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
