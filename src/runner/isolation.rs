//! Which names Codex is given for the directories the policy checked.
//!
//! Opening the checked cwd is not enough on its own: Codex is handed directories by
//! *name* (`-C`, `--add-dir`, `sandbox_workspace_write.writable_roots`) and resolves each
//! name again, later, and its sandbox binds it by name. A caller whose earlier run may
//! write beneath a root can swap a component of that name for a symlink between the
//! check and Codex's lookup (a `renameat2(RENAME_EXCHANGE)` loop wins a few times in a
//! hundred), and the later run then works outside the roots.
//!
//! So each run gets a private mount namespace (`runner::namespace`, set up by the run
//! supervisor) in which a fresh tmpfs covers [`MOUNT_DIR`] and every checked directory is
//! bind-mounted, from the descriptor opened beneath its root, at a fixed private name
//! below it. Codex receives only those private names: no other process can see or
//! re-point them, and the tmpfs is read-only once the binds are made. This module is the
//! pure part: the plan of private names and the way back from them to the real paths a
//! caller knows.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where each run's private directories appear inside its own mount namespace. `/mnt`
/// exists on every Linux the project targets, belongs to root, and is by convention the
/// place for a temporarily mounted filesystem; its contents are hidden from the run only.
pub const MOUNT_DIR: &str = "/mnt";

/// One checked directory and the private name Codex gets for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// The canonical path the policy checked.
    pub real: PathBuf,
    /// Its name inside the run's mount namespace.
    pub private: PathBuf,
}

/// The private names of one run: the cwd first, then each extra directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    binds: Vec<Bind>,
}

impl View {
    /// Plan the private names for `cwd` and `add_dirs`: `MOUNT_DIR/<last component>`, so
    /// the model still sees the project's name, with `-2`, `-3`… when two names collide.
    /// A directory given twice gets one name. Pure.
    pub fn plan(cwd: &Path, add_dirs: &[PathBuf]) -> Self {
        let mut binds: Vec<Bind> = Vec::with_capacity(1 + add_dirs.len());
        for real in std::iter::once(cwd).chain(add_dirs.iter().map(PathBuf::as_path)) {
            if binds.iter().any(|b| b.real == real) {
                continue;
            }
            let base = real
                .file_name()
                .map_or_else(|| OsString::from("root"), sanitize);
            let mut name = base.clone();
            let mut n = 1;
            while binds.iter().any(|b| b.private.file_name() == Some(&name)) {
                n += 1;
                name = base.clone();
                name.push(format!("-{n}"));
            }
            binds.push(Bind {
                real: real.to_owned(),
                private: Path::new(MOUNT_DIR).join(name),
            });
        }
        Self { binds }
    }

    /// Every bind, the cwd's first.
    pub fn binds(&self) -> &[Bind] {
        &self.binds
    }

    /// The private name of a checked directory (itself when it was not planned).
    pub fn private_of(&self, real: &Path) -> PathBuf {
        self.binds
            .iter()
            .find(|b| b.real == real)
            .map_or_else(|| real.to_owned(), |b| b.private.clone())
    }

    /// A path Codex reported, back in the caller's terms: a path below a private name
    /// becomes the same path below the real directory; anything else is kept as it is.
    pub fn to_real(&self, reported: &str) -> String {
        let path = Path::new(reported);
        for bind in &self.binds {
            if let Ok(rest) = path.strip_prefix(&bind.private) {
                let real = if rest.as_os_str().is_empty() {
                    bind.real.clone()
                } else {
                    bind.real.join(rest)
                };
                return real.to_string_lossy().into_owned();
            }
        }
        reported.to_owned()
    }
}

/// A directory name safe as one path component of the private name (it always is one,
/// being a file name; this only keeps it printable).
fn sanitize(name: &std::ffi::OsStr) -> OsString {
    let text: String = name
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    if text.is_empty() || text == "." || text == ".." {
        OsString::from("dir")
    } else {
        OsString::from(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cwd_and_extra_dirs_get_private_names_after_their_last_component() {
        let view = View::plan(
            Path::new("/home/me/src/proj"),
            &[
                PathBuf::from("/home/me/src/lib"),
                PathBuf::from("/data/proj"),
            ],
        );
        let names: Vec<(&str, &str)> = view
            .binds()
            .iter()
            .map(|b| {
                (
                    b.real.to_str().unwrap_or_default(),
                    b.private.to_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("/home/me/src/proj", "/mnt/proj"),
                ("/home/me/src/lib", "/mnt/lib"),
                ("/data/proj", "/mnt/proj-2"),
            ]
        );
    }

    #[test]
    fn a_directory_given_twice_and_the_filesystem_root_get_one_sane_name() {
        let view = View::plan(Path::new("/"), &[PathBuf::from("/")]);
        assert_eq!(view.binds().len(), 1);
        assert_eq!(view.private_of(Path::new("/")), Path::new("/mnt/root"));
        assert_eq!(
            View::plan(Path::new("/x/a\nb"), &[]).private_of(Path::new("/x/a\nb")),
            Path::new("/mnt/a_b")
        );
    }

    #[test]
    fn reported_paths_below_a_private_name_map_back_and_others_stay() {
        let view = View::plan(
            Path::new("/home/me/proj"),
            &[PathBuf::from("/srv/proj"), PathBuf::from("/srv/other")],
        );
        for (reported, real) in [
            ("/mnt/proj/src/main.rs", "/home/me/proj/src/main.rs"),
            ("/mnt/proj", "/home/me/proj"),
            ("/mnt/proj-2/a.txt", "/srv/proj/a.txt"),
            ("/mnt/other/x", "/srv/other/x"),
            // A sibling whose name only starts like a private name is not below it.
            ("/mnt/proj-3/x", "/mnt/proj-3/x"),
            ("src/main.rs", "src/main.rs"),
            ("/etc/passwd", "/etc/passwd"),
        ] {
            assert_eq!(view.to_real(reported), real, "{reported}");
        }
    }
}
