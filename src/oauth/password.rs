//! The operator's password for the built-in authorization server's sign-in page: made
//! into an Argon2id PHC string by `2bot-mcp oauth hash-password`, kept in
//! `TWOBOT_OAUTH_PASSWORD_FILE`, loaded once at start and checked at each sign-in.
//!
//! 2Bot never stores the password itself, so a leaked file or backup costs an attacker
//! an Argon2id guess per candidate. Parameters: m = 19 MiB, t = 2, p = 1, OWASP's
//! baseline (and the argon2 crate's default), not stronger on purpose: the hash is
//! computed on a public page, so every sign-in attempt costs the server what a guess
//! costs the attacker, and 19 MiB keeps a burst of attempts from several addresses
//! within a small host's memory; the 12-character minimum does the rest. A file made
//! elsewhere may be stronger (up to [`MAX_M_COST_KIB`]) but not weaker than OWASP's
//! weakest equivalent row ([`MIN_M_COST_KIB`], [`MIN_COST_KIB_PASSES`]).

use std::fmt;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Fewest characters `hash-password` accepts.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Memory `hash-password` uses, in KiB (OWASP: 19 MiB).
pub const M_COST_KIB: u32 = 19 * 1024;
/// Passes `hash-password` makes.
pub const T_COST: u32 = 2;
/// Lanes `hash-password` uses.
pub const P_COST: u32 = 1;
/// Least memory a loaded hash may ask for (OWASP's weakest row: 7 MiB with t = 5).
pub const MIN_M_COST_KIB: u32 = 7 * 1024;
/// Least memory × passes a loaded hash may ask for (OWASP's rows are all ≥ 7 MiB × 5).
pub const MIN_COST_KIB_PASSES: u64 = 7 * 1024 * 5;
/// Most memory a loaded hash may ask for: each sign-in allocates it (1 GiB).
pub const MAX_M_COST_KIB: u32 = 1024 * 1024;
/// Most passes a loaded hash may ask for (a sign-in must not take minutes).
pub const MAX_T_COST: u32 = 64;
/// Largest password file read: a PHC string is about 100 bytes.
const MAX_FILE_BYTES: u64 = 4096;

/// Why a password cannot be hashed or a password file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Nothing to hash.
    #[error("the password is empty")]
    Empty,
    /// Too guessable to protect a server that runs Codex.
    #[error("the password has {chars} characters; use at least {MIN_PASSWORD_CHARS}")]
    TooShort {
        /// Characters given.
        chars: usize,
    },
    /// The file cannot be read.
    #[error("TWOBOT_OAUTH_PASSWORD_FILE: cannot read {path:?}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Someone besides its owner could put their own hash there and sign in.
    #[error(
        "TWOBOT_OAUTH_PASSWORD_FILE: {path:?} is writable by {who} (mode {mode:o}), who could put their own password there; chmod 600 it"
    )]
    Writable {
        /// The file.
        path: PathBuf,
        /// "its group" or "every user".
        who: &'static str,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not one Argon2id PHC string (its contents are never quoted: it may
    /// hold the password itself by mistake).
    #[error(
        "TWOBOT_OAUTH_PASSWORD_FILE: {path:?} {reason}; make it with `2bot-mcp oauth hash-password > FILE`"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: PhcError,
    },
    /// The hashing library failed (out of memory, or a parameter it refuses).
    #[error("Argon2id failed: {0}")]
    Hash(String),
}

/// What makes a password file's contents unusable; never quotes them, since the
/// operator may have written the password itself.
#[derive(Debug, thiserror::Error)]
pub enum PhcError {
    /// A directory, a device, a pipe.
    #[error("is not a regular file")]
    NotFile,
    /// Too long for a PHC string (and too long to read whole).
    #[error("is larger than {MAX_FILE_BYTES} bytes, so it is not a password hash")]
    TooLarge,
    /// Binary contents.
    #[error("is not UTF-8 text, so it is not a PHC string")]
    NotUtf8,
    /// Only whitespace.
    #[error("is empty")]
    Empty,
    /// Several lines: which one would count is anyone's guess.
    #[error("holds more than one line; it must hold one PHC string")]
    Lines,
    /// No leading `$`: most likely the password itself.
    #[error(
        "holds no PHC string (it must start with `$argon2id$`; did you write the password itself?)"
    )]
    NotPhc,
    /// Another algorithm's hash (its id, cut to 16 characters).
    #[error(
        "holds a `${0}$` hash; only `$argon2id$` is accepted (Argon2id resists both GPU and side-channel attacks)"
    )]
    Algorithm(String),
    /// An Argon2id string the PHC parser refuses.
    #[error("is not a valid Argon2id PHC string ({0})")]
    Malformed(argon2::password_hash::Error),
    /// Not Argon2 version 19.
    #[error("is not an Argon2 version 19 (`v=19`) hash")]
    Version,
    /// No salt, or a hash too short to be worth checking against.
    #[error("lacks a salt or a hash of at least 16 bytes")]
    NoSalt,
    /// Parameters Argon2 itself refuses.
    #[error("has unusable Argon2 parameters ({0})")]
    Params(argon2::password_hash::Error),
    /// Cheap enough to guess offline.
    #[error(
        "asks for m={m} KiB, t={t}: weaker than OWASP's minimum (at least {MIN_M_COST_KIB} KiB, and memory × passes ≥ {MIN_COST_KIB_PASSES})"
    )]
    Weak {
        /// Memory, KiB.
        m: u32,
        /// Passes.
        t: u32,
    },
    /// Costly enough that every sign-in would stall the server.
    #[error(
        "asks for m={m} KiB, t={t}: more than a sign-in may cost (at most {MAX_M_COST_KIB} KiB and {MAX_T_COST} passes)"
    )]
    Costly {
        /// Memory, KiB.
        m: u32,
        /// Passes.
        t: u32,
    },
}

/// Hash `password` with Argon2id and a fresh random salt, as a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$…$…`).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    check_password(password)?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Hash(format!("no random salt: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` is long enough to be hashed (checked before a terminal asks for
/// it a second time).
pub fn check_password(password: &str) -> Result<(), PasswordError> {
    match password.chars().count() {
        0 => Err(PasswordError::Empty),
        chars if chars < MIN_PASSWORD_CHARS => Err(PasswordError::TooShort { chars }),
        _ => Ok(()),
    }
}

/// The operator's password hash, loaded and checked.
#[derive(Clone)]
pub struct PasswordHashFile {
    path: PathBuf,
    phc: String,
    world_readable: bool,
}

// The hash is not printed: it is what an offline guesser needs.
impl fmt::Debug for PasswordHashFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHashFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl PasswordHashFile {
    /// Read `path`: one Argon2id PHC string (surrounding whitespace ignored), in a file
    /// only its owner may write.
    pub fn load(path: &Path) -> Result<Self, PasswordError> {
        let read = |source| PasswordError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let meta = file.metadata().map_err(read)?;
        if !meta.is_file() {
            return Err(invalid(path, PhcError::NotFile));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o002 != 0 {
            return Err(PasswordError::Writable {
                path: path.to_owned(),
                who: "every user",
                mode,
            });
        }
        if mode & 0o020 != 0 {
            return Err(PasswordError::Writable {
                path: path.to_owned(),
                who: "its group",
                mode,
            });
        }
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(invalid(path, PhcError::TooLarge));
        }
        let text = String::from_utf8(bytes).map_err(|_| invalid(path, PhcError::NotUtf8))?;
        let phc = parse_phc(text.trim()).map_err(|reason| invalid(path, reason))?;
        Ok(Self {
            path: path.to_owned(),
            phc: phc.to_owned(),
            world_readable: mode & 0o004 != 0,
        })
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What deserves a warning at start: a hash every local user can read is open to
    /// an offline guess.
    pub fn warning(&self) -> Option<String> {
        self.world_readable.then(|| {
            format!(
                "TWOBOT_OAUTH_PASSWORD_FILE {:?} is readable by every user, who can guess the password offline; chmod 600 it",
                self.path
            )
        })
    }

    /// Whether `password` is the operator's. The comparison of the computed hash is in
    /// constant time (password-hash's `Output`); this takes as long as one Argon2id
    /// hash, so call it from a blocking thread.
    pub fn verify(&self, password: &str) -> bool {
        // Parsed again rather than kept, since `PasswordHash` borrows; `load` checked it.
        PasswordHash::new(&self.phc).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
    }
}

fn invalid(path: &Path, reason: PhcError) -> PasswordError {
    PasswordError::Invalid {
        path: path.to_owned(),
        reason,
    }
}

/// `text` if it is one usable Argon2id PHC string, else why not (never quoting it).
fn parse_phc(text: &str) -> Result<&str, PhcError> {
    if text.is_empty() {
        return Err(PhcError::Empty);
    }
    if text.lines().count() > 1 {
        return Err(PhcError::Lines);
    }
    if !text.starts_with('$') {
        return Err(PhcError::NotPhc);
    }
    let id = text.split('$').nth(1).unwrap_or_default();
    if id != "argon2id" {
        return Err(PhcError::Algorithm(id.chars().take(16).collect()));
    }
    let hash = PasswordHash::new(text).map_err(PhcError::Malformed)?;
    if hash.version != Some(u32::from(Version::V0x13)) {
        return Err(PhcError::Version);
    }
    if hash.salt.is_none() || hash.hash.as_ref().is_none_or(|h| h.len() < 16) {
        return Err(PhcError::NoSalt);
    }
    let params = Params::try_from(&hash).map_err(PhcError::Params)?;
    let (m, t) = (params.m_cost(), params.t_cost());
    if m < MIN_M_COST_KIB || u64::from(m) * u64::from(t) < MIN_COST_KIB_PASSES {
        return Err(PhcError::Weak { m, t });
    }
    if m > MAX_M_COST_KIB || t > MAX_T_COST {
        return Err(PhcError::Costly { m, t });
    }
    Ok(text)
}

#[cfg(test)]
#[path = "password_tests.rs"]
mod tests;
