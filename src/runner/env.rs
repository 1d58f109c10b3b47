//! What environment the Codex child gets: decided here, in one pure function.
//!
//! Codex needs the user's environment (PATH, HOME, CODEX_HOME, its API key), but
//! never 2Bot's own settings and secrets (`TWOBOT_*`: auth tokens, JWT secrets), and
//! never anything from the client. The policy file may narrow, extend or override it.

use std::collections::BTreeMap;
use std::ffi::OsString;

use crate::policy::EnvPolicy;

/// The prefix of 2Bot's own variables; none of them reaches Codex.
const OWN_PREFIX: &str = "TWOBOT_";
/// The one 2Bot variable Codex does get: the request id, for correlating logs.
pub const REQUEST_ID_VAR: &str = "TWOBOT_REQUEST_ID";

/// The child's complete environment, from the server's `parent` environment.
pub fn child_env(
    parent: impl IntoIterator<Item = (OsString, OsString)>,
    policy: &EnvPolicy,
    request_id: Option<&str>,
) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> = parent
        .into_iter()
        .filter(|(k, _)| {
            let name = k.to_string_lossy();
            !name.starts_with(OWN_PREFIX)
                && (policy.inherit || policy.pass.iter().any(|p| *p == name))
                && !policy.remove.iter().any(|r| *r == name)
        })
        .collect();
    for (k, v) in &policy.set {
        if !k.starts_with(OWN_PREFIX) {
            env.insert(k.into(), v.into());
        }
    }
    if let Some(id) = request_id {
        env.insert(REQUEST_ID_VAR.into(), id.into());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent() -> Vec<(OsString, OsString)> {
        [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/u"),
            ("OPENAI_API_KEY", "sk-x"),
            ("TWOBOT_AUTH_TOKENS", "secret"),
            ("TWOBOT_JWT_SECRET", "hs"),
            ("TWOBOT_PORT", "9000"),
            ("TWOBOT_REQUEST_ID", "spoofed"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
    }

    fn keys(env: &BTreeMap<OsString, OsString>) -> Vec<String> {
        env.keys()
            .map(|k| k.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn by_default_everything_but_twobot_variables_is_inherited() {
        let env = child_env(parent(), &EnvPolicy::default(), None);
        assert_eq!(keys(&env), ["HOME", "OPENAI_API_KEY", "PATH"]);
    }

    #[test]
    fn the_request_id_is_ours_and_cannot_be_spoofed_from_the_parent() {
        let env = child_env(parent(), &EnvPolicy::default(), Some("req-1"));
        assert_eq!(env[&OsString::from(REQUEST_ID_VAR)], "req-1");
        let env = child_env(parent(), &EnvPolicy::default(), None);
        assert!(!env.contains_key(&OsString::from(REQUEST_ID_VAR)));
    }

    #[test]
    fn without_inherit_only_passed_variables_and_set_ones_remain() {
        let policy = EnvPolicy {
            inherit: false,
            pass: vec!["PATH".into(), "TWOBOT_JWT_SECRET".into()],
            remove: vec![],
            set: BTreeMap::from([
                ("RUST_LOG".into(), "warn".into()),
                ("TWOBOT_X".into(), "y".into()),
            ]),
        };
        assert_eq!(
            keys(&child_env(parent(), &policy, None)),
            ["PATH", "RUST_LOG"]
        );
    }

    #[test]
    fn removed_variables_are_dropped_even_when_inherited() {
        let policy = EnvPolicy {
            remove: vec!["OPENAI_API_KEY".into()],
            ..EnvPolicy::default()
        };
        assert_eq!(keys(&child_env(parent(), &policy, None)), ["HOME", "PATH"]);
    }
}
