//! The caller's output schema as a private file for `codex exec --output-schema`.
//!
//! Codex reads the schema from a path, not from stdin or an argument, and the schema is
//! the caller's: a file only 2Bot (and Codex) can read, created fresh (never following
//! or reusing a name: `O_EXCL` and a random name), and removed when the run ends —
//! whatever way it ends, since removal is on drop.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A schema file that is removed when dropped.
#[derive(Debug)]
pub struct SchemaFile {
    path: PathBuf,
}

impl SchemaFile {
    /// Write `schema` to a new 0600 file in `dir`, owned by `owner` (uid, gid) when
    /// Codex runs as another user, so that Codex can read it and nobody else.
    pub fn create(dir: &Path, schema: &str, owner: Option<(u32, u32)>) -> std::io::Result<Self> {
        let path = dir.join(format!("2bot-output-schema-{}.json", uuid::Uuid::new_v4()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        // From here on the file is ours to remove, even if writing fails.
        let guard = Self { path };
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        file.write_all(schema.as_bytes())?;
        file.sync_all()?;
        Ok(guard)
    }

    /// Where the schema is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SchemaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_schema_file_is_private_and_gone_after_the_drop() {
        let dir = tempfile::tempdir().unwrap();
        let file = SchemaFile::create(dir.path(), "{\"type\":\"object\"}", None).unwrap();
        let path = file.path().to_owned();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"type\":\"object\"}"
        );
        drop(file);
        assert!(!path.exists());
    }
}
