//! Whether Codex can read the built-in server's state directory. The signing keys live
//! there (in `state.db`, with the embedded store), and a valid signature is what the MCP endpoint checks first: a Codex that can
//! read the key (the default, Codex running as 2Bot's own user) lets any caller who may
//! run a command mint tokens. `live.rs` stops minted tokens that name no live grant; this
//! stops the key from being readable at all. The built-in server therefore starts only
//! when `TWOBOT_CODEX_USER` is a separate user that can neither list nor enter the state
//! directory nor read the key, or when the operator accepts the risk by name
//! (`TWOBOT_OAUTH_ALLOW_SHARED_CODEX_USER=true`, warned at every start). `doctor` reports
//! the same decision.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

/// Owner, group and mode of a file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// Permission bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
}

impl Facts {
    /// `path`'s facts, `None` if it does not exist (or cannot be read: `Store::open` says why).
    pub fn of(path: &Path) -> Option<Self> {
        std::fs::metadata(path).ok().map(|m| Self {
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
        })
    }
}

/// The user Codex runs as: uid and every group (the primary one included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    /// Its uid.
    pub uid: u32,
    /// Its groups.
    pub groups: Vec<u32>,
}

/// Why Codex can read the state directory. Pure data; the messages say the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Exposure {
    /// No `TWOBOT_CODEX_USER`: Codex runs as 2Bot's user.
    #[error(
        "Codex runs as 2Bot's own user (TWOBOT_CODEX_USER is not set), so a caller's Codex command can read the signing key in TWOBOT_STATE_DIR and mint tokens"
    )]
    SharedUser,
    /// `TWOBOT_CODEX_USER` is 2Bot's own uid.
    #[error(
        "TWOBOT_CODEX_USER is 2Bot's own user (uid {0}), so a caller's Codex command can read the signing key in TWOBOT_STATE_DIR and mint tokens"
    )]
    SameUser(u32),
    /// `TWOBOT_CODEX_USER` is root, which reads everything.
    #[error("TWOBOT_CODEX_USER is root, which can read the signing key in TWOBOT_STATE_DIR")]
    Root,
    /// The directory lets Codex's user list or enter it.
    #[error(
        "TWOBOT_STATE_DIR (mode {mode:03o}, owner {uid}:{gid}) can be listed or entered by TWOBOT_CODEX_USER (uid {reader}); chmod 700 it, owned by 2Bot's user"
    )]
    DirOpen {
        /// The directory's mode.
        mode: u32,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
        /// Codex's uid.
        reader: u32,
    },
    /// The key file is readable by Codex's user.
    #[error(
        "the signing key in TWOBOT_STATE_DIR (mode {mode:03o}, owner {uid}:{gid}) is readable by TWOBOT_CODEX_USER (uid {reader}); chmod 600 it, owned by 2Bot's user"
    )]
    KeyReadable {
        /// The key's mode.
        mode: u32,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
        /// Codex's uid.
        reader: u32,
    },
}

/// The permission class (owner, group, other) `reader` falls in for `facts`, shifted to
/// the low three bits (r=4, w=2, x=1); root gets all of them. Unix uses the first class
/// that matches, so an owner without read bits cannot read through the group's.
fn bits_for(facts: Facts, reader: &Reader) -> u32 {
    if reader.uid == 0 {
        return 0o7;
    }
    if facts.uid == reader.uid {
        (facts.mode >> 6) & 0o7
    } else if reader.groups.contains(&facts.gid) {
        (facts.mode >> 3) & 0o7
    } else {
        facts.mode & 0o7
    }
}

/// Why Codex (`codex`: `None` when it runs as 2Bot's user, `server_uid`) could read the
/// state directory `dir` or the key file `key` (`None`: not there yet; the server makes
/// the directory 0700 and the key 0600, its own), or `None` if it cannot. Pure.
pub fn exposure(
    server_uid: u32,
    codex: Option<&Reader>,
    dir: Option<Facts>,
    key: Option<Facts>,
) -> Option<Exposure> {
    let Some(reader) = codex else {
        return Some(Exposure::SharedUser);
    };
    if reader.uid == 0 {
        return Some(Exposure::Root);
    }
    if reader.uid == server_uid {
        return Some(Exposure::SameUser(reader.uid));
    }
    if let Some(d) = dir
        && bits_for(d, reader) & 0o5 != 0
    {
        return Some(Exposure::DirOpen {
            mode: d.mode & 0o777,
            uid: d.uid,
            gid: d.gid,
            reader: reader.uid,
        });
    }
    if let Some(k) = key
        && bits_for(k, reader) & 0o4 != 0
    {
        return Some(Exposure::KeyReadable {
            mode: k.mode & 0o777,
            uid: k.uid,
            gid: k.gid,
            reader: reader.uid,
        });
    }
    None
}

/// [`exposure`] for this process, the configured Codex user and `state_dir` as they are now.
pub fn current(codex: Option<&Reader>, state_dir: &Path) -> Option<Exposure> {
    // The keys are in `state.db` (SQLite), or still in an old key file not yet moved in.
    let dir = Facts::of(state_dir);
    [crate::state::sqlite::DB_FILE, super::signing::KEY_FILE]
        .iter()
        .find_map(|file| {
            exposure(
                nix::unistd::geteuid().as_raw(),
                codex,
                dir,
                Facts::of(&state_dir.join(file)),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (codex, dir, key) → exposure.
    type Case<'a> = (
        Option<&'a Reader>,
        Option<Facts>,
        Option<Facts>,
        Option<Exposure>,
    );

    fn facts(mode: u32, uid: u32, gid: u32) -> Option<Facts> {
        Some(Facts { mode, uid, gid })
    }

    #[test]
    fn codex_may_start_beside_the_built_in_server_only_if_it_cannot_reach_the_key() {
        let nobody = Reader {
            uid: 65534,
            groups: vec![65534],
        };
        let in_group = Reader {
            uid: 2000,
            groups: vec![2000, 50],
        };
        let owner_no_bits = Reader {
            uid: 2000,
            groups: vec![2000],
        };
        let root = Reader {
            uid: 0,
            groups: vec![0],
        };
        let server = Reader {
            uid: 1000,
            groups: vec![1000],
        };
        let (dir, key) = (facts(0o700, 1000, 1000), facts(0o600, 1000, 1000));
        let table: Vec<Case<'_>> = vec![
            (None, dir, key, Some(Exposure::SharedUser)),
            (Some(&server), dir, key, Some(Exposure::SameUser(1000))),
            (Some(&root), dir, key, Some(Exposure::Root)),
            (Some(&nobody), dir, key, None),
            (Some(&nobody), None, None, None),
            (Some(&nobody), dir, None, None),
            (
                Some(&nobody),
                facts(0o755, 1000, 1000),
                key,
                Some(Exposure::DirOpen {
                    mode: 0o755,
                    uid: 1000,
                    gid: 1000,
                    reader: 65534,
                }),
            ),
            // Search (x) alone is enough to open a known name.
            (
                Some(&nobody),
                facts(0o701, 1000, 1000),
                key,
                Some(Exposure::DirOpen {
                    mode: 0o701,
                    uid: 1000,
                    gid: 1000,
                    reader: 65534,
                }),
            ),
            (Some(&in_group), facts(0o750, 1000, 60), key, None),
            (
                Some(&in_group),
                facts(0o750, 1000, 50),
                key,
                Some(Exposure::DirOpen {
                    mode: 0o750,
                    uid: 1000,
                    gid: 50,
                    reader: 2000,
                }),
            ),
            // The owner's class decides for the owner: 0077 owned by Codex shuts it out.
            (Some(&owner_no_bits), facts(0o077, 2000, 2000), key, None),
            (
                Some(&nobody),
                dir,
                facts(0o604, 1000, 1000),
                Some(Exposure::KeyReadable {
                    mode: 0o604,
                    uid: 1000,
                    gid: 1000,
                    reader: 65534,
                }),
            ),
            (
                Some(&nobody),
                dir,
                facts(0o600, 65534, 1000),
                Some(Exposure::KeyReadable {
                    mode: 0o600,
                    uid: 65534,
                    gid: 1000,
                    reader: 65534,
                }),
            ),
        ];
        for (codex, dir, key, want) in table {
            assert_eq!(
                exposure(1000, codex, dir, key),
                want,
                "{codex:?} {dir:?} {key:?}"
            );
        }
    }
}
