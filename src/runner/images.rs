//! The caller's images as private copies for `codex exec --image`, read with no more
//! privilege than Codex has.
//!
//! Codex opens an image by name, later than the policy checked it (the call may have
//! queued): a name swapped for a symlink in between would make Codex read — and send to
//! the model — a file outside the roots. So, right before the spawn, each checked image
//! is opened beneath its root through no symlink (as the cwd is) and copied into a fresh
//! private directory (0700, files 0600, owned by Codex's user when it has its own);
//! Codex gets the copies, which are removed when the run ends, however it ends.
//!
//! Who opens the file matters as much as how (issue 19, point 3): 2Bot often runs as root
//! so that Codex can run as a user of its own, and a copy made with root's privileges
//! handed the least-trusted caller `/etc/shadow`. So with a Codex user the file is opened
//! by a short-lived `2bot-mcp __read-image` process started with Codex's uid and gid (no
//! capabilities survive its exec), which streams the bytes back over a pipe; without one,
//! 2Bot opens it itself, since Codex could read whatever 2Bot can. Either way `/proc`,
//! `/sys` and `/dev` (by path, and procfs or sysfs wherever mounted) are never read, and
//! only a regular file is: the open is `O_NONBLOCK`, so a FIFO cannot hang it.

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::statfs::{DEVPTS_SUPER_MAGIC, PROC_SUPER_MAGIC, SYSFS_MAGIC, fstatfs};

use super::cwd::{OpenError, open_file_beneath};
use super::image_reader::Reader;

/// Bytes copied of one image at most: above any size the policy lets through (its
/// default cap is 20 MiB), so the policy's cap decides and this only bounds a file
/// that grew since it was checked.
pub const MAX_COPY_BYTES: u64 = 256 * 1024 * 1024;

/// Why an image could not be handed to Codex. Names no path.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// It cannot be opened as the policy checked it.
    #[error("it changed after it was checked: {0}")]
    Changed(#[from] OpenError),
    /// It lies in `/proc`, `/sys` or `/dev`, or on procfs or sysfs.
    #[error(
        "it is in /proc, /sys or /dev (or on the kernel's procfs or sysfs); 2Bot never reads those as images"
    )]
    System,
    /// The user that reads it (Codex's, when it has its own) may not.
    #[error("the user Codex runs as may not read it (permission denied)")]
    Denied,
    /// It grew beyond what may be copied since it was checked.
    #[error("it grew beyond {MAX_COPY_BYTES} bytes since it was checked")]
    TooLarge,
    /// The private copy could not be written.
    #[error("the private copy could not be written ({0})")]
    Copy(std::io::ErrorKind),
    /// The reader process could not be run or ended strangely.
    #[error("the image reader (2bot-mcp __read-image, as Codex's user) failed: {0}")]
    Reader(String),
    /// Codex has its own user but there is no binary to read images as it.
    #[error(
        "images are read as Codex's user by the 2bot-mcp binary, which this server was not given"
    )]
    NoReader,
}

/// Copy at most [`MAX_COPY_BYTES`] from `source`; more is [`ImageError::TooLarge`].
pub(super) fn bounded_copy(source: impl Read, into: &mut std::fs::File) -> Result<(), ImageError> {
    let copied = std::io::copy(&mut source.take(MAX_COPY_BYTES + 1), into)
        .map_err(|e| ImageError::Copy(e.kind()))?;
    if copied > MAX_COPY_BYTES {
        return Err(ImageError::TooLarge);
    }
    Ok(())
}

/// Open the checked image `path` beneath its root through no symlink, as whoever calls
/// this: never in `/proc`, `/sys` or `/dev`, never on procfs or sysfs, only a regular file.
pub fn open_image(roots: &[PathBuf], path: &Path) -> Result<std::fs::File, ImageError> {
    // By path first, so nothing there is even opened (a device's open can have effects).
    if ["/proc", "/sys", "/dev"]
        .iter()
        .any(|d| path.starts_with(d))
    {
        return Err(ImageError::System);
    }
    let file = open_file_beneath(roots, path).map_err(|e| match e {
        OpenError::Other(Errno::EACCES | Errno::EPERM) => ImageError::Denied,
        other => other.into(),
    })?;
    // And by what it is: procfs or sysfs mounted elsewhere (inside a root, say).
    let kind = fstatfs(&file)
        .map_err(|e| ImageError::Changed(OpenError::Other(e)))?
        .filesystem_type();
    if [PROC_SUPER_MAGIC, SYSFS_MAGIC, DEVPTS_SUPER_MAGIC].contains(&kind) {
        return Err(ImageError::System);
    }
    Ok(file)
}

/// The private copies of one run's images; removed when dropped.
#[derive(Debug)]
pub struct PrivateImages {
    dir: Option<PathBuf>,
    paths: Vec<PathBuf>,
}

impl PrivateImages {
    /// No images: nothing to copy or remove.
    pub fn none() -> Self {
        Self {
            dir: None,
            paths: Vec::new(),
        }
    }

    /// Copy `images` (canonical paths the policy checked) from beneath `roots`, read by
    /// `reader`, into a new private directory in `tmp`; `owner` (uid, gid) gets the copies
    /// when Codex runs as another user. On error, the index of the image that failed.
    pub fn copy(
        images: &[PathBuf],
        roots: &[PathBuf],
        tmp: &Path,
        owner: Option<(u32, u32)>,
        reader: &Reader,
    ) -> Result<Self, (usize, ImageError)> {
        if images.is_empty() {
            return Ok(Self::none());
        }
        let dir = tmp.join(format!("2bot-images-{}", uuid::Uuid::new_v4()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| (0, ImageError::Copy(e.kind())))?;
        // From here on the directory is ours to remove, even if a copy fails.
        let mut made = Self {
            dir: Some(dir.clone()),
            paths: Vec::with_capacity(images.len()),
        };
        let own = |path: &Path| match owner {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
            None => Ok(()),
        };
        own(&dir).map_err(|e| (0, ImageError::Copy(e.kind())))?;
        for (i, image) in images.iter().enumerate() {
            // The extension stays: Codex reads the image's type from it.
            let name = match image.extension() {
                Some(ext) => format!("image-{i}.{}", ext.to_string_lossy()),
                None => format!("image-{i}"),
            };
            let path = dir.join(name);
            let mut copy = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| (i, ImageError::Copy(e.kind())))?;
            reader.copy(roots, image, &mut copy).map_err(|e| (i, e))?;
            own(&path).map_err(|e| (i, ImageError::Copy(e.kind())))?;
            made.paths.push(path);
        }
        Ok(made)
    }

    /// Where the copies are, in the caller's order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}

impl Drop for PrivateImages {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
#[path = "images_tests.rs"]
mod tests;
