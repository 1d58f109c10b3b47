//! The names a call may pass to Codex (a model, a profile, a thread id): charsets that
//! can be neither a flag nor a path, and the policy's lists (apart from mod.rs, which
//! holds the decision and its rules).

use super::refusal::{Refusal, Rule, quoted, refuse};

/// A model or profile name: safe charset, and listed when the policy lists names.
pub(super) fn checked_name(
    param: &str,
    value: Option<&str>,
    allowed: Option<&[String]>,
) -> Result<Option<String>, Refusal> {
    let Some(value) = value else {
        return Ok(None);
    };
    // A profile names a file, `$CODEX_HOME/<profile>.config.toml`: no `/`, no `..`, so
    // it can only name a file in Codex's home.
    if param == "profile" && !is_profile_name(value) {
        return Err(refuse(param, quoted(value), Rule::BadProfileName));
    }
    if !is_safe_name(value) {
        return Err(refuse(param, quoted(value), Rule::BadName));
    }
    if let Some(allowed) = allowed
        && !allowed.iter().any(|a| a == value)
    {
        return Err(refuse(
            param,
            quoted(value),
            Rule::NotListed(allowed.join(", ")),
        ));
    }
    Ok(Some(value.to_owned()))
}

/// `^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$`
pub fn is_safe_name(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    s.len() <= 128
        && first.is_ascii_alphanumeric()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-'))
}

/// A Codex profile name: a file name in `$CODEX_HOME`, never a path.
pub fn is_profile_name(s: &str) -> bool {
    is_thread_id(s)
}

/// A Codex thread id: a UUID, or a thread name from a charset that can be neither a
/// flag (`--last`) nor a path (`../x`).
pub fn is_thread_id(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    s.len() <= 128
        && first.is_ascii_alphanumeric()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !s.contains("..")
}
