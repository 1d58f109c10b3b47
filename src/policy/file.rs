//! The operator's policy file (`TWOBOT_POLICY_FILE`, TOML; examples in `policies/`).
//!
//! Every key is optional: what the file leaves out falls back to the environment's
//! value or 2Bot's default, and an environment variable that is set wins over the file
//! (see `config`). Unknown keys are an error, so a typo never silently weakens a policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::run::SandboxMode;

/// The TOML document.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Directories Codex may work in (cwd and add_dirs must resolve inside one).
    pub allowed_roots: Option<Vec<PathBuf>>,
    /// The most powerful sandbox any caller may ask for.
    pub sandbox_ceiling: Option<SandboxMode>,
    /// Allow `danger-full-access` at all.
    pub allow_danger_full_access: Option<bool>,
    /// The only models a request may name.
    pub allowed_models: Option<Vec<String>>,
    /// The only profiles a request may name.
    pub allowed_profiles: Option<Vec<String>>,
    /// Upper bound of `timeout_sec`.
    pub max_timeout_sec: Option<u64>,
    /// Upper bound of the prompt size, in bytes.
    pub max_prompt_bytes: Option<usize>,
    /// Codex processes running at once.
    pub max_concurrent_runs: Option<usize>,
    /// Calls waiting for a slot before new ones are refused as busy.
    pub max_queued_runs: Option<usize>,
    /// Authenticated callers: sandbox granted by each scope (highest match wins).
    #[serde(default)]
    pub scopes: BTreeMap<String, SandboxMode>,
    /// The environment Codex gets.
    #[serde(default)]
    pub codex_env: EnvPolicy,
    /// Which of Codex's own features calls may use.
    #[serde(default)]
    pub features: super::Features,
}

/// What environment the Codex child gets. 2Bot's own `TWOBOT_*` variables are never passed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnvPolicy {
    /// Inherit the server's environment. When false, only `pass` is inherited.
    #[serde(default = "yes")]
    pub inherit: bool,
    /// Variables inherited when `inherit = false`.
    #[serde(default)]
    pub pass: Vec<String>,
    /// Variables never passed, even when inherited.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Variables set (or overridden) for Codex.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

impl Default for EnvPolicy {
    fn default() -> Self {
        Self {
            inherit: true,
            pass: Vec::new(),
            remove: Vec::new(),
            set: BTreeMap::new(),
        }
    }
}

/// Why the policy file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    /// Unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, or not a valid policy.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: ParseError,
    },
}

/// Why a policy document does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not TOML, an unknown key (a typo must not pass as a default), or a wrong value;
    /// the parser's message, put on one line for the one-line start-up error.
    #[error("{}", .0.to_string().replace('\n', " "))]
    Toml(#[from] toml::de::Error),
}

impl PolicyFile {
    /// Read and parse `path`.
    pub fn load(path: &Path) -> Result<Self, PolicyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| PolicyFileError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parse a policy document.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Ok(toml::from_str(text)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_empty_file_is_a_valid_policy_that_changes_nothing() {
        assert_eq!(PolicyFile::parse("").unwrap(), PolicyFile::default());
    }

    #[test]
    fn a_full_policy_parses() {
        let p = PolicyFile::parse(
            r#"
            allowed_roots = ["/srv/repos"]
            sandbox_ceiling = "workspace-write"
            allowed_models = ["gpt-5"]
            max_timeout_sec = 600
            [scopes]
            "codex:read" = "read-only"
            [codex_env]
            inherit = false
            pass = ["PATH", "HOME"]
            set = { RUST_LOG = "warn" }
            "#,
        )
        .unwrap();
        assert_eq!(p.sandbox_ceiling, Some(SandboxMode::WorkspaceWrite));
        assert_eq!(p.scopes["codex:read"], SandboxMode::ReadOnly);
        assert!(!p.codex_env.inherit);
        assert_eq!(p.codex_env.set["RUST_LOG"], "warn");
    }

    #[test]
    fn a_typo_is_an_error_not_a_silent_default() {
        let err = PolicyFile::parse("sandbox_celing = \"read-only\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sandbox_celing"), "{err}");
        let err = PolicyFile::parse("sandbox_ceiling = \"root\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("root"), "{err}");
    }

    #[test]
    fn the_features_table_allows_or_forbids_each_feature_and_refuses_typos() {
        let p = PolicyFile::parse(
            r#"
            [features]
            reasoning_effort = ["low", "medium"]
            images = false
            max_images = 2
            output_schema = false
            review = true
            review_sandbox = "workspace-write"
            fork = false
            "#,
        )
        .unwrap();
        let f = p.features;
        assert_eq!(
            f.reasoning_effort,
            Some(vec![
                crate::run::ReasoningEffort::Low,
                crate::run::ReasoningEffort::Medium
            ])
        );
        assert!(!f.images && !f.output_schema && f.review && !f.fork);
        assert_eq!(f.max_images, 2);
        assert_eq!(
            f.max_image_bytes,
            super::super::features::DEFAULT_MAX_IMAGE_BYTES
        );
        assert_eq!(f.review_sandbox, SandboxMode::WorkspaceWrite);
        let err = PolicyFile::parse("[features]\nimage = true")
            .unwrap_err()
            .to_string();
        assert!(err.contains("image"), "{err}");
        let err = PolicyFile::parse("[features]\nreasoning_effort = [\"max\"]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max"), "{err}");
    }

    #[test]
    fn every_committed_example_policy_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                PolicyFile::load(&path).unwrap();
                seen += 1;
            }
        }
        assert!(seen >= 3, "default, read-only and trusted-team examples");
    }
}
