//! The caller's images as private copies for `codex exec --image`.
//!
//! Codex opens an image by name, later than the policy checked it (the call may have
//! queued): a name swapped for a symlink in between would make Codex read — and send to
//! the model — a file outside the roots. So, right before the spawn, each checked image
//! is opened beneath its root through no symlink (as the cwd is) and copied into a fresh
//! private directory (0700, files 0600, owned by Codex's user when it has its own);
//! Codex gets the copies, which are removed when the run ends, however it ends.

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::cwd::{OpenError, open_file_beneath};

/// Bytes copied of one image at most: above any size the policy lets through (its
/// default cap is 20 MiB), so the policy's cap decides and this only bounds a file
/// that grew since it was checked.
pub const MAX_COPY_BYTES: u64 = 256 * 1024 * 1024;

/// Why an image could not be handed to Codex.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// It cannot be opened as the policy checked it (names no path).
    #[error("{0}")]
    Changed(#[from] OpenError),
    /// It grew beyond what may be copied since it was checked.
    #[error("it grew beyond {MAX_COPY_BYTES} bytes since it was checked")]
    TooLarge,
    /// The private copy could not be written.
    #[error("the private copy could not be written ({0})")]
    Copy(std::io::ErrorKind),
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

    /// Copy `images` (canonical paths the policy checked) from beneath `roots` into a new
    /// private directory in `tmp`; `owner` (uid, gid) gets the copies when Codex runs
    /// as another user. On error, the index of the image that failed.
    pub fn copy(
        images: &[PathBuf],
        roots: &[PathBuf],
        tmp: &Path,
        owner: Option<(u32, u32)>,
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
            let source = open_file_beneath(roots, image).map_err(|e| (i, e.into()))?;
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
            let copied = std::io::copy(&mut source.take(MAX_COPY_BYTES + 1), &mut copy)
                .map_err(|e| (i, ImageError::Copy(e.kind())))?;
            if copied > MAX_COPY_BYTES {
                return Err((i, ImageError::TooLarge));
            }
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
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn images_are_copied_privately_and_removed_when_the_run_ends() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path().canonicalize().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.join("shots")).unwrap();
        std::fs::write(root.join("shots/a.png"), b"png bytes").unwrap();
        let copies = PrivateImages::copy(
            &[root.join("shots/a.png")],
            std::slice::from_ref(&root),
            tmp.path(),
            None,
        )
        .unwrap();
        let copy = copies.paths()[0].clone();
        assert_eq!(std::fs::read(&copy).unwrap(), b"png bytes");
        assert_eq!(copy.extension().unwrap(), "png");
        assert!(!copy.starts_with(&root));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&copy), 0o600);
        assert_eq!(mode(copy.parent().unwrap()), 0o700);
        drop(copies);
        assert!(!copy.parent().unwrap().exists());
    }

    #[test]
    fn an_image_swapped_for_a_symlink_after_the_check_is_refused_and_nothing_is_left() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path().canonicalize().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret.png");
        std::fs::write(&secret, b"secret").unwrap();
        std::fs::write(root.join("ok.png"), b"ok").unwrap();
        // Checked as a file in the root, then swapped for a link to outside.
        std::os::unix::fs::symlink(&secret, root.join("swapped.png")).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let err = PrivateImages::copy(
            &[root.join("ok.png"), root.join("swapped.png")],
            std::slice::from_ref(&root),
            tmp.path(),
            None,
        )
        .unwrap_err();
        assert_eq!(err.0, 1);
        assert!(
            matches!(err.1, ImageError::Changed(OpenError::Swapped)),
            "{:?}",
            err.1
        );
        assert!(!err.1.to_string().contains("secret"));
        // The partial copy went with the error.
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
        // A directory, or a path outside every root, is refused too.
        std::fs::create_dir(root.join("dir.png")).unwrap();
        for bad in [root.join("dir.png"), secret] {
            assert!(
                PrivateImages::copy(&[bad], std::slice::from_ref(&root), tmp.path(), None).is_err()
            );
        }
    }
}
