//! Codex's own features a call may ask for — reasoning effort, images, an output
//! schema, a code review, a forked thread — and the operator's say over each
//! (`[features]` in the policy file).
//!
//! Every feature is on by default except what could widen a run: a review is read-only
//! unless `review_sandbox` raises it, and images are capped in number and size. The
//! checks here are pure apart from resolving image paths (the same rules as `cwd`:
//! canonical, inside a root), and each refusal names the parameter and the rule.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::paths::Look;
use super::refusal::{Refusal, Rule, quoted, refuse};
use super::{Policy, resolve_path};
use crate::run::{ReasoningEffort, Review, ReviewRequest, RunRequest, SandboxMode};

/// Images a call may attach by default.
pub const DEFAULT_MAX_IMAGES: usize = 8;
/// Bytes one image may have by default (20 MiB, as the Responses API takes).
pub const DEFAULT_MAX_IMAGE_BYTES: u64 = 20 * 1024 * 1024;
/// Bytes of an output schema (as compact JSON).
pub const MAX_OUTPUT_SCHEMA_BYTES: usize = 64 * 1024;

/// The `[features]` table of the policy file, and its effective value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Features {
    /// The reasoning efforts a call may name; `None` (the default) allows every level.
    pub reasoning_effort: Option<Vec<ReasoningEffort>>,
    /// Whether `images` may be used.
    pub images: bool,
    /// Images per call at most.
    pub max_images: usize,
    /// Bytes per image at most.
    pub max_image_bytes: u64,
    /// Whether `output_schema` may be used.
    pub output_schema: bool,
    /// Whether `review` may be used.
    pub review: bool,
    /// The most powerful sandbox a review may run under (still capped by the caller's).
    pub review_sandbox: SandboxMode,
    /// Whether `fork` may be used.
    pub fork: bool,
}

impl Default for Features {
    fn default() -> Self {
        Self {
            reasoning_effort: None,
            images: true,
            max_images: DEFAULT_MAX_IMAGES,
            max_image_bytes: DEFAULT_MAX_IMAGE_BYTES,
            output_schema: true,
            review: true,
            review_sandbox: SandboxMode::ReadOnly,
            fork: true,
        }
    }
}

/// The checked feature parameters of one call.
#[derive(Debug, Default)]
pub(super) struct Checked {
    pub reasoning_effort: Option<ReasoningEffort>,
    pub images: Vec<PathBuf>,
    pub output_schema: Option<String>,
    pub review: Option<Review>,
    pub fork: Option<String>,
}

fn disabled(param: &str, value: impl std::fmt::Display, feature: &'static str) -> Refusal {
    refuse(param, value, Rule::FeatureDisabled { feature })
}

/// Check the feature parameters of `req`; `thread` is its checked `thread_id`, which a
/// fork consumes (then the call resumes nothing).
pub(super) fn check(
    policy: &Policy,
    req: &RunRequest,
    thread: &mut Option<String>,
    look: Look,
) -> Result<Checked, Refusal> {
    let features = &policy.features;
    let mut out = Checked::default();
    if let Some(effort) = req.reasoning_effort {
        if let Some(allowed) = &features.reasoning_effort
            && !allowed.contains(&effort)
        {
            let list: Vec<&str> = allowed.iter().map(|e| e.as_str()).collect();
            return Err(refuse(
                "reasoning_effort",
                quoted(effort.as_str()),
                Rule::NotListed(list.join(", ")),
            ));
        }
        out.reasoning_effort = Some(effort);
    }
    if let Some(schema) = &req.output_schema {
        let text = serde_json::Value::Object(schema.clone()).to_string();
        if !features.output_schema {
            return Err(disabled(
                "output_schema",
                format!("<{} bytes>", text.len()),
                "output_schema",
            ));
        }
        if text.len() > MAX_OUTPUT_SCHEMA_BYTES {
            return Err(refuse(
                "output_schema",
                format!("<{} bytes>", text.len()),
                Rule::SchemaTooLarge {
                    max: MAX_OUTPUT_SCHEMA_BYTES,
                },
            ));
        }
        out.output_schema = Some(text);
    }
    if req.fork {
        let Some(source) = thread.take() else {
            return Err(refuse("fork", "true", Rule::ForkNeedsThread));
        };
        if !features.fork {
            return Err(disabled("fork", "true", "fork"));
        }
        out.fork = Some(source);
    }
    out.images = images(policy, req.images.as_deref().unwrap_or_default(), look)?;
    if let Some(review) = &req.review {
        out.review = Some(check_review(
            policy,
            req,
            review,
            thread.is_some() || req.fork,
        )?);
    }
    Ok(out)
}

fn images(policy: &Policy, raw: &[String], look: Look) -> Result<Vec<PathBuf>, Refusal> {
    let features = &policy.features;
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    if !features.images {
        return Err(disabled("images", quoted(&raw[0]), "images"));
    }
    if raw.len() > features.max_images {
        return Err(refuse(
            "images",
            format!("<{} images>", raw.len()),
            Rule::TooManyImages {
                max: features.max_images,
            },
        ));
    }
    raw.iter()
        .enumerate()
        .map(|(i, path)| {
            let param = format!("images[{i}]");
            // Codex splits `--image` values at commas (measured on 0.169): such a path
            // would reach Codex as two other paths.
            if path.contains(',') {
                return Err(refuse(param, quoted(path), Rule::CommaInPath));
            }
            let resolved = resolve_path(policy, &param, path, false, look)?;
            let size = std::fs::metadata(&resolved).map(|m| m.len()).unwrap_or(0);
            if size > features.max_image_bytes {
                return Err(refuse(
                    param,
                    quoted(path),
                    Rule::ImageTooLarge {
                        max: features.max_image_bytes,
                    },
                ));
            }
            Ok(resolved)
        })
        .collect()
}

fn check_review(
    policy: &Policy,
    req: &RunRequest,
    review: &ReviewRequest,
    on_a_thread: bool,
) -> Result<Review, Refusal> {
    let value = serde_json::to_string(review).unwrap_or_default();
    if !policy.features.review {
        return Err(disabled("review", value, "review"));
    }
    let target = match (
        review.uncommitted,
        &review.base,
        &review.commit,
        review.custom,
    ) {
        (true, None, None, false) => Review::Uncommitted,
        (false, Some(base), None, false) if is_branch_name(base) => Review::Base(base.clone()),
        (false, Some(base), None, false) => {
            return Err(refuse("review.base", quoted(base), Rule::BadBranch));
        }
        (false, None, Some(sha), false) if is_commit_sha(sha) => Review::Commit(sha.clone()),
        (false, None, Some(sha), false) => {
            return Err(refuse("review.commit", quoted(sha), Rule::BadCommit));
        }
        (false, None, None, true) => Review::Custom,
        _ => return Err(refuse("review", value, Rule::ReviewTarget)),
    };
    // A review is a new, one-shot look at the code: nothing to continue, nothing to show.
    let other = if on_a_thread {
        Some(if req.fork { "fork" } else { "thread_id" })
    } else if req.images.as_ref().is_some_and(|i| !i.is_empty()) {
        Some("images")
    } else {
        None
    };
    if let Some(other) = other {
        return Err(refuse("review", value, Rule::ReviewWith(other)));
    }
    let ceiling = policy.features.review_sandbox;
    if req.sandbox > ceiling {
        return Err(refuse(
            "sandbox",
            quoted(req.sandbox.as_str()),
            Rule::ReviewAboveSandbox { ceiling },
        ));
    }
    Ok(target)
}

/// A branch name Codex passes to git: a safe charset, never a flag (first character
/// alphanumeric), never a path trick (`..`, `//`, a trailing `/` or `.lock`), never a
/// reflog expression (`@{`).
pub fn is_branch_name(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    s.len() <= 200
        && first.is_ascii_alphanumeric()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && !s.contains("..")
        && !s.contains("//")
        && !s.contains("/.")
        && !s.ends_with('/')
        && !s.ends_with('.')
        && !s.ends_with(".lock")
}

/// A commit id: 4 to 64 hex digits (abbreviated, SHA-1 or SHA-256).
pub fn is_commit_sha(s: &str) -> bool {
    (4..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
#[path = "features_tests.rs"]
mod tests;
