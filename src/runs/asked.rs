//! What a call asked of Codex's features that its result must answer (an output schema,
//! a review of a target), decided once from the spec and applied to the finished output.

use crate::run::RunSpec;

/// What the call asked of Codex's features that its result must answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Asked {
    /// An output schema: return the final message as JSON too.
    output: bool,
    /// A review of a target, which Codex runs without the prompt.
    target_review: bool,
}

impl Asked {
    pub(super) fn of(spec: &RunSpec) -> Self {
        Self {
            output: spec.output_schema.is_some(),
            // Said only to a caller who sent a prompt that was then left out.
            target_review: matches!(&spec.review, Some(r) if *r != crate::run::Review::Custom)
                && !spec.prompt.trim().is_empty(),
        }
    }

    /// Add `output`, and the warnings the caller must read, to a finished run.
    pub(super) fn complete(self, out: &mut crate::run::RunOutput) {
        if self.target_review {
            out.summary.warnings.push(
                "Codex 0.169 reviews --uncommitted, --base and --commit with its own instructions only: the prompt was not sent (use review={\"custom\":true} for instructions of your own)".to_owned(),
            );
        }
        if self.output {
            match crate::codex::structured::structured_output(out.summary.final_message.as_deref())
            {
                Ok(value) => out.output = Some(value),
                Err(why) if out.ok => out
                    .summary
                    .warnings
                    .push(format!("output_schema: {why}; `output` is absent")),
                Err(_) => {}
            }
        }
    }
}
