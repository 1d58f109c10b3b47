//! A [`RunSpec`] as the app-server backend says it: the `codex app-server` command line,
//! the thread request (`thread/start|resume|fork`) and the turn request (`turn/start` or
//! `review/start`). Pure; the app-server twin of `codex::exec_argv`, with the same pins:
//!
//! - the sandbox, the writable roots (exactly the checked `add_dirs`), the approval policy
//!   (default `never`, as exec) and `approvals_reviewer = "user"` are set on the command
//!   line (`-c`, which wins over `$CODEX_HOME`'s config, as on exec) and again in the
//!   thread request (`sandbox`, `approvalPolicy`, `approvalsReviewer`, and `config`, whose
//!   dotted keys Codex 0.169 applies like `-c`: measured, `runtimeWorkspaceRoots` then
//!   lists the extra roots). `approvalsReviewer` is ALWAYS `user`: Codex's auto-review
//!   model can never approve a request; only a person can, through 2Bot.
//! - a profile cannot be said: `codex app-server` refuses `--profile` (0.169: "--profile
//!   only applies to runtime commands"), so a run with one is refused with that reason.
//! - `skip_git_repo_check` has no app-server meaning (it never checks for a repository),
//!   and is not passed: as config, Codex 0.169 warns it is ignored, into every result.
//! - images go in as `localImage` inputs (the run's private copies); the output schema
//!   inline (`outputSchema`), so no schema file is needed.

use std::ffi::OsString;

use serde_json::{Map, Value, json};

use super::protocol::{ReviewStartParams, ReviewTarget, ThreadParams, TurnStartParams, UserInput};
use crate::codex::command::toml_string;
use crate::error::ToolError;
use crate::run::{ApprovalPolicy, Review, RunSpec};

/// What [`plan`] makes of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Codex's arguments (after the program name).
    pub args: Vec<OsString>,
    /// `initialize`'s params: the experimental API is declared only for a granular
    /// policy, which Codex 0.169 refuses without it.
    pub initialize: Value,
    /// `thread/start`, `thread/resume` or `thread/fork`.
    pub thread_method: &'static str,
    /// Its params.
    pub thread: ThreadParams,
    /// The turn, once the thread id is known.
    pub turn: TurnPlan,
}

/// The turn request of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnPlan {
    /// `turn/start` with these inputs.
    Start {
        /// The prompt and images.
        input: Vec<UserInput>,
        /// The reasoning effort.
        effort: Option<String>,
        /// The output schema.
        output_schema: Option<Value>,
    },
    /// `review/start` of this target.
    Review(ReviewTarget),
}

impl TurnPlan {
    /// The method and params for the thread `thread_id`.
    pub fn request(&self, thread_id: &str) -> (&'static str, Value) {
        let thread_id = thread_id.to_owned();
        match self {
            Self::Start {
                input,
                effort,
                output_schema,
            } => (
                "turn/start",
                json!(TurnStartParams {
                    thread_id,
                    input: input.clone(),
                    effort: effort.clone(),
                    output_schema: output_schema.clone(),
                }),
            ),
            Self::Review(target) => (
                "review/start",
                json!(ReviewStartParams {
                    thread_id,
                    target: target.clone(),
                }),
            ),
        }
    }

    /// Whether the turn is a review (which cannot be steered).
    pub fn is_review(&self) -> bool {
        matches!(self, Self::Review(_))
    }
}

/// The approval policy a run gets when the caller names none (as exec).
const DEFAULT_APPROVAL: ApprovalPolicy = ApprovalPolicy::Never;

/// Plan one run (`spec` as prepared: private names, private image copies).
pub fn plan(spec: &RunSpec) -> Result<Plan, ToolError> {
    if let Some(profile) = &spec.profile {
        return Err(ToolError::Unsupported {
            param: format!("profile = {profile:?}"),
            reason: "`codex app-server` takes no profile (Codex 0.169: \"--profile only applies to runtime commands\"); profiles need TWOBOT_CODEX_BACKEND=exec".to_owned(),
        });
    }
    let output_schema = spec
        .output_schema
        .as_deref()
        .map(serde_json::from_str::<Value>)
        .transpose()
        .map_err(|e| ToolError::Unsupported {
            param: "output_schema".to_owned(),
            reason: format!("it is not JSON ({e})"),
        })?;
    let sandbox = spec.sandbox.as_str();
    let approval = spec.approval_policy.unwrap_or(DEFAULT_APPROVAL);
    let roots: Vec<String> = spec
        .add_dirs
        .iter()
        .map(|d| d.to_string_lossy().into_owned())
        .collect();
    let effort = spec.reasoning_effort.map(|e| e.as_str().to_owned());

    let mut args: Vec<OsString> = vec!["app-server".into(), "--listen".into(), "stdio://".into()];
    let mut pin = |key: &str, value: String| {
        args.push("-c".into());
        args.push(format!("{key}={value}").into());
    };
    pin("sandbox_mode", toml_string(sandbox));
    let toml_roots: Vec<String> = roots.iter().map(|r| toml_string(r)).collect();
    pin(
        "sandbox_workspace_write.writable_roots",
        format!("[{}]", toml_roots.join(",")),
    );
    pin("approval_policy", approval.toml());
    pin("approvals_reviewer", toml_string("user"));
    if let Some(effort) = &effort {
        pin("model_reasoning_effort", toml_string(effort));
    }

    let mut config = Map::new();
    config.insert("sandbox_mode".into(), json!(sandbox));
    config.insert(
        "sandbox_workspace_write.writable_roots".into(),
        json!(roots),
    );
    if let Some(effort) = &effort {
        config.insert("model_reasoning_effort".into(), json!(effort));
    }
    let (thread_method, thread_id) = match (&spec.review, &spec.resume, &spec.fork) {
        (None, Some(thread), _) => ("thread/resume", Some(thread.clone())),
        (None, None, Some(thread)) => ("thread/fork", Some(thread.clone())),
        _ => ("thread/start", None),
    };
    let thread = ThreadParams {
        thread_id,
        cwd: spec.cwd.to_string_lossy().into_owned(),
        sandbox: sandbox.to_owned(),
        approval_policy: approval.json(),
        approvals_reviewer: "user".to_owned(),
        model: spec.model.clone(),
        ephemeral: (thread_method != "thread/resume").then_some(spec.ephemeral),
        exclude_turns: (thread_method != "thread/start").then_some(true),
        config,
    };
    let turn = match &spec.review {
        Some(review) => TurnPlan::Review(match review {
            Review::Uncommitted => ReviewTarget::UncommittedChanges,
            Review::Base(branch) => ReviewTarget::BaseBranch {
                branch: branch.clone(),
            },
            Review::Commit(sha) => ReviewTarget::Commit { sha: sha.clone() },
            Review::Custom => ReviewTarget::Custom {
                instructions: spec.prompt.clone(),
            },
        }),
        None => TurnPlan::Start {
            input: std::iter::once(UserInput::Text {
                text: spec.prompt.clone(),
            })
            .chain(spec.images.iter().map(|p| UserInput::LocalImage {
                path: p.to_string_lossy().into_owned(),
            }))
            .collect(),
            effort,
            output_schema,
        },
    };
    let mut initialize = json!({"clientInfo": {"name": "2bot", "title": "2Bot", "version": env!("CARGO_PKG_VERSION")}});
    if approval.is_granular() {
        initialize["capabilities"] = json!({"experimentalApi": true});
    }
    Ok(Plan {
        args,
        initialize,
        thread_method,
        thread,
        turn,
    })
}

#[cfg(test)]
#[path = "params_tests.rs"]
mod tests;
