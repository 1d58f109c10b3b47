//! `2bot-mcp __read-image`: the caller's image opened and read as Codex's user.
//!
//! 2Bot may run as root (so that Codex can have a user of its own); an image copied with
//! root's privileges would hand the caller any file on the machine. So when Codex has its
//! own user, the runner starts this hidden mode of its own binary with Codex's uid and
//! gid (std drops the supplementary groups, and the exec leaves no capability behind),
//! and it opens the image exactly as [`super::images::open_image`] does — beneath its
//! root, through no symlink, never `/proc`, `/sys` or `/dev`, only a regular file — and
//! streams it to stdout. Its exit status is the reason when it cannot; it says nothing
//! else, so nothing about the file reaches the caller but that reason.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::errno::Errno;

use super::cwd::OpenError;
use super::images::{ImageError, MAX_COPY_BYTES, bounded_copy, open_image};

/// The hidden subcommand (kept out of `--help`: `main` dispatches on it before clap):
/// `2bot-mcp __read-image <path> [root…]`.
pub const SUBCOMMAND: &str = "__read-image";

// The reader's exit status carries the error back (0 is success, 2 bad usage).
const EXIT_SWAPPED: u8 = 20;
const EXIT_GONE: u8 = 21;
const EXIT_OUTSIDE: u8 = 22;
const EXIT_NOT_A_FILE: u8 = 23;
const EXIT_SYSTEM: u8 = 24;
const EXIT_DENIED: u8 = 25;
const EXIT_TOO_LARGE: u8 = 26;
const EXIT_COPY: u8 = 27;
/// Any other errno of the open, as `EXIT_ERRNO + errno`.
const EXIT_ERRNO: u8 = 100;

impl ImageError {
    /// The reader's exit status for this error.
    fn exit_code(&self) -> u8 {
        match self {
            Self::Changed(OpenError::Swapped) => EXIT_SWAPPED,
            Self::Changed(OpenError::Gone) => EXIT_GONE,
            Self::Changed(OpenError::OutsideRoots) => EXIT_OUTSIDE,
            Self::Changed(OpenError::NotAFile) => EXIT_NOT_A_FILE,
            Self::Changed(OpenError::Other(e)) => {
                EXIT_ERRNO.saturating_add(u8::try_from(*e as i32).unwrap_or(0))
            }
            Self::System => EXIT_SYSTEM,
            Self::Denied => EXIT_DENIED,
            Self::TooLarge => EXIT_TOO_LARGE,
            Self::Copy(_) | Self::Reader(_) | Self::NoReader => EXIT_COPY,
        }
    }

    /// The error a reader's exit status stands for; `None` for success. Pure.
    fn from_exit_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => return None,
            EXIT_SWAPPED => OpenError::Swapped.into(),
            EXIT_GONE => OpenError::Gone.into(),
            EXIT_OUTSIDE => OpenError::OutsideRoots.into(),
            EXIT_NOT_A_FILE => OpenError::NotAFile.into(),
            EXIT_SYSTEM => Self::System,
            EXIT_DENIED => Self::Denied,
            EXIT_TOO_LARGE => Self::TooLarge,
            EXIT_COPY => Self::Reader("it could not write the image".to_owned()),
            c if c > EXIT_ERRNO => {
                OpenError::Other(Errno::from_raw(i32::from(c - EXIT_ERRNO))).into()
            }
            c => Self::Reader(format!("exit status {c}")),
        })
    }
}

/// Who opens the caller's images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// 2Bot itself: Codex runs as 2Bot's user and could read the file anyway.
    Server,
    /// `helper __read-image` started with Codex's uid and gid.
    As {
        /// The `2bot-mcp` binary.
        helper: PathBuf,
        /// Codex's uid.
        uid: u32,
        /// Codex's primary gid.
        gid: u32,
    },
    /// Codex has its own user but no binary was given to read as it: images are refused.
    Unavailable,
}

impl Reader {
    /// The reader for a run: as Codex's `user` (uid, gid) through `helper`, or 2Bot itself.
    pub fn for_run(helper: Option<&Path>, user: Option<(u32, u32)>) -> Self {
        match (user, helper) {
            (None, _) => Self::Server,
            (Some((uid, gid)), Some(helper)) => Self::As {
                helper: helper.to_owned(),
                uid,
                gid,
            },
            (Some(_), None) => Self::Unavailable,
        }
    }

    /// Copy the image `path` (checked, canonical) from beneath `roots` into `into`.
    pub(super) fn copy(
        &self,
        roots: &[PathBuf],
        path: &Path,
        into: &mut std::fs::File,
    ) -> Result<(), ImageError> {
        match self {
            Self::Server => {
                let source = open_image(roots, path)?;
                bounded_copy(source, into)
            }
            Self::As { helper, uid, gid } => {
                let mut child = Command::new(helper)
                    .arg0("2bot-mcp")
                    .arg(SUBCOMMAND)
                    .arg(path)
                    .args(roots)
                    // std drops the supplementary groups and every capability with root.
                    .uid(*uid)
                    .gid(*gid)
                    .env_clear()
                    .current_dir("/")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| ImageError::Reader(e.kind().to_string()))?;
                let copied = match child.stdout.take() {
                    Some(out) => bounded_copy(out, into),
                    None => Err(ImageError::Reader("no pipe".to_owned())),
                };
                if copied.is_err() {
                    let _ = child.kill();
                }
                let status = child
                    .wait()
                    .map_err(|e| ImageError::Reader(e.kind().to_string()))?;
                copied?;
                match status.code() {
                    Some(code) => {
                        match ImageError::from_exit_code(u8::try_from(code).unwrap_or(u8::MAX)) {
                            None => Ok(()),
                            Some(e) => Err(e),
                        }
                    }
                    None => Err(ImageError::Reader("it was killed".to_owned())),
                }
            }
            Self::Unavailable => Err(ImageError::NoReader),
        }
    }
}

/// The reader's `main`: `argv` is everything after [`SUBCOMMAND`]. Writes the image to
/// stdout; the exit status says why not.
pub fn reader_main(argv: &[OsString]) -> std::process::ExitCode {
    let Some(path) = argv.first() else {
        eprintln!("2bot-read-image: missing path (this mode is started by 2bot-mcp itself)");
        return std::process::ExitCode::from(2);
    };
    let roots: Vec<PathBuf> = argv
        .get(1..)
        .unwrap_or_default()
        .iter()
        .map(PathBuf::from)
        .collect();
    let result = open_image(&roots, Path::new(path)).and_then(|file| {
        let copied = std::io::copy(
            &mut file.take(MAX_COPY_BYTES + 1),
            &mut std::io::stdout().lock(),
        )
        .map_err(|e| ImageError::Copy(e.kind()))?;
        if copied > MAX_COPY_BYTES {
            return Err(ImageError::TooLarge);
        }
        Ok(())
    });
    std::process::ExitCode::from(result.err().map_or(0, |e| e.exit_code()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_reader_exit_status_reads_back_as_its_error() {
        let errors = [
            ImageError::Changed(OpenError::Swapped),
            ImageError::Changed(OpenError::Gone),
            ImageError::Changed(OpenError::OutsideRoots),
            ImageError::Changed(OpenError::NotAFile),
            ImageError::Changed(OpenError::Other(Errno::EIO)),
            ImageError::System,
            ImageError::Denied,
            ImageError::TooLarge,
        ];
        for e in errors {
            let back = ImageError::from_exit_code(e.exit_code()).unwrap();
            assert_eq!(back.to_string(), e.to_string());
        }
        assert!(ImageError::from_exit_code(0).is_none());
        assert!(matches!(
            ImageError::from_exit_code(2),
            Some(ImageError::Reader(_))
        ));
    }
}
