//! One datagram and its descriptors over the spawner's `SOCK_SEQPACKET` socket, for both
//! sides: the server's async reader and writer, and the spawner's blocking loop.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr, recvmsg, sendmsg};

/// The most descriptors one message carries (a request's cwd, stdin, stdout, stderr).
pub(super) const MAX_FDS: usize = 4;

/// The largest message either side reads; the server sends nothing larger (a larger
/// request starts its supervisor by exec instead).
pub(super) const MAX_MESSAGE: usize = 128 * 1024;

/// Send `bytes` as one message, with `fds` beside it.
pub(super) fn send(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[RawFd],
    flags: MsgFlags,
) -> Result<(), Errno> {
    let iov = [IoSlice::new(bytes)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
    let sent = sendmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &iov,
        cmsgs,
        flags | MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if sent == bytes.len() {
        Ok(())
    } else {
        Err(Errno::EMSGSIZE)
    }
}

/// One message received: its length in the buffer, whether it was longer than the
/// buffer, and the descriptors that came with it (owned here, close-on-exec).
#[derive(Debug)]
pub(super) struct Received {
    pub(super) len: usize,
    pub(super) truncated: bool,
    pub(super) fds: Vec<OwnedFd>,
}

/// Receive one message into `buf`; `None` when the other side has closed the socket.
pub(super) fn recv(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: MsgFlags,
) -> Result<Option<Received>, Errno> {
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        flags | MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    let cmsgs = msg.cmsgs();
    for cmsg in cmsgs.into_iter().flatten() {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            for fd in raw {
                // SAFETY: the kernel has just installed these descriptors in this process
                // for this message; nothing else refers to them, so they are ours to own.
                #[allow(unsafe_code)]
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    if msg.bytes == 0 && fds.is_empty() && !msg.flags.contains(MsgFlags::MSG_TRUNC) {
        return Ok(None);
    }
    Ok(Some(Received {
        len: msg.bytes,
        truncated: msg.flags.contains(MsgFlags::MSG_TRUNC)
            || msg.flags.contains(MsgFlags::MSG_CTRUNC),
        fds,
    }))
}
