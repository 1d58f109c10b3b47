//! `2bot-mcp oauth hash-password`: turn the operator's password into the Argon2id PHC
//! string `TWOBOT_OAUTH_PASSWORD_FILE` holds, so the password itself is never written
//! anywhere. It is read on stdin (never as an argument, which `ps` and shell history
//! would show): typed at a terminal without echo and twice, or the first line of a pipe.
//! stdout carries only the PHC string, so `… > FILE` makes the file.

use std::io::{BufRead, IsTerminal as _, Write as _};
use std::process::ExitCode;

use crate::oauth::password::{PasswordError, check_password, hash_password};

/// Longest line read from a pipe.
const MAX_LINE_BYTES: u64 = 4096;

/// Why no hash was printed.
#[derive(Debug, thiserror::Error)]
pub enum HashPasswordError {
    /// Stdin (or the terminal) could not be read.
    #[error("cannot read the password: {0}")]
    Read(#[from] std::io::Error),
    /// Nothing arrived on stdin.
    #[error("no password on stdin (run it at a terminal to type it, or pipe it in)")]
    NoInput,
    /// The first line does not end within the limit.
    #[error("the password line is longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
    /// Not text.
    #[error("the password is not UTF-8 text")]
    NotUtf8,
    /// The two typed passwords differ.
    #[error("the two passwords differ; nothing was written")]
    Mismatch,
    /// Too short, or the hashing failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
}

/// Run the subcommand: the PHC string on stdout and exit 0, or one line on stderr and
/// exit 2.
pub fn run() -> ExitCode {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        from_terminal()
    } else {
        first_line(stdin.lock())
    };
    match password.and_then(|p| Ok(hash_password(&p)?)) {
        Ok(phc) => {
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{phc}").and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write the hash to stdout: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Typed twice without echo (rpassword reads the controlling terminal); the prompts go
/// to stderr so stdout stays the hash alone.
fn from_terminal() -> Result<String, HashPasswordError> {
    eprint!("Password for the sign-in page (at least 12 characters): ");
    let first = rpassword::read_password()?;
    check_password(&first)?;
    eprint!("The same password again: ");
    let second = rpassword::read_password()?;
    if first != second {
        return Err(HashPasswordError::Mismatch);
    }
    Ok(first)
}

/// The first line of `input`, without its line ending (`\n` or `\r\n`); anything after
/// it is ignored. Spaces are kept: they are part of the password.
pub fn first_line(input: impl BufRead) -> Result<String, HashPasswordError> {
    let mut line = Vec::new();
    input
        .take(MAX_LINE_BYTES + 1)
        .read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(HashPasswordError::NoInput);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if line.len() as u64 > MAX_LINE_BYTES {
        return Err(HashPasswordError::TooLong);
    }
    String::from_utf8(line).map_err(|_| HashPasswordError::NotUtf8)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn first_line_takes_one_line_without_its_ending_and_refuses_the_rest_clearly() {
        let ok = |input: &[u8]| first_line(input).unwrap();
        assert_eq!(ok(b"a long password\n"), "a long password");
        assert_eq!(ok(b"a long password\r\nsecond line\n"), "a long password");
        assert_eq!(ok(b"no newline at end"), "no newline at end");
        assert_eq!(ok(b"  spaces kept  \n"), "  spaces kept  ");
        assert_eq!(ok(b"\n"), "");
        let err = |input: &[u8]| first_line(input).unwrap_err().to_string();
        assert!(err(b"").contains("no password on stdin"));
        assert!(err(&[b'x'; 5000]).contains("longer than 4096 bytes"));
        assert!(err(b"\xff\xfe password\n").contains("not UTF-8"));
        let mut exact = vec![b'x'; 4096];
        exact.push(b'\n');
        assert_eq!(first_line(&exact[..]).unwrap().len(), 4096);
    }
}
