//! What operators see of every run and every refusal: the audit record and the metrics.
//!
//! Both are written from here only, at the two points every path passes — a refusal at
//! admission and the end of an admitted run — so a direct call, a task and a background
//! run report the same way on both transports.

use std::sync::Arc;
use std::time::Duration;

use super::Caller;
use super::handle::Ended;
use super::refusal::RunRefusal;
use super::store::KeptRefusal;
use crate::audit::{
    ApprovalAuditRecord, AuditLog, AuditRecord, Outcome, PromptDigest, now_rfc3339,
};
use crate::error::ToolError;
use crate::metrics::{RefusalReason, RunLabels, TokenKind, TokenLabels, metrics};
use crate::run::control::ApprovalRecord;
use crate::run::{CallTransport, RunPath, RunRequest, RunSpec};
use crate::run_queue::QueueRefusal;

/// What the end-of-run record says of the run itself.
#[derive(Debug)]
pub struct RunFacts {
    cwd: String,
    sandbox: &'static str,
    model: Option<String>,
    resume: Option<String>,
    prompt: Option<PromptDigest>,
}

/// Where records go (the audit log is optional; metrics are always kept).
#[derive(Debug, Clone, Default)]
pub struct Observer {
    audit: Option<Arc<AuditLog>>,
}

impl Observer {
    /// Record to `audit` as well as to the metrics.
    pub fn new(audit: Option<Arc<AuditLog>>) -> Self {
        Self { audit }
    }

    /// The audit log, if any (for SIGHUP).
    pub fn audit(&self) -> Option<&Arc<AuditLog>> {
        self.audit.as_ref()
    }

    fn write<R: serde::Serialize>(&self, record: impl FnOnce(bool) -> R) {
        if let Some(log) = &self.audit
            && !log.write(&record(log.keeps_prompts()))
        {
            metrics().audit_write_failures.inc();
        }
    }

    /// A call refused at admission: nothing ran.
    pub fn refused(&self, caller: &Caller, request: &RunRequest, refusal: &RunRefusal) {
        let (outcome, reason) = match refusal {
            RunRefusal::Policy(_) => (Outcome::Refused, RefusalReason::policy),
            RunRefusal::ThreadOwner(_) | RunRefusal::ThreadElsewhere { .. } => {
                (Outcome::Refused, RefusalReason::thread_owner)
            }
            RunRefusal::BackgroundDisabled => (Outcome::Refused, RefusalReason::disabled),
            RunRefusal::Queue(QueueRefusal::Busy { .. }) => (Outcome::Busy, RefusalReason::busy),
            RunRefusal::Queue(QueueRefusal::PrincipalQueueFull { .. })
            | RunRefusal::Kept(KeptRefusal::PrincipalFull(_))
            | RunRefusal::ServiceQuota { .. } => (Outcome::Busy, RefusalReason::quota),
            RunRefusal::Kept(KeptRefusal::Full(_)) => (Outcome::Busy, RefusalReason::too_many_runs),
        };
        self.count(caller, outcome);
        metrics().refused(reason);
        self.write(|keep_prompts| AuditRecord {
            time: now_rfc3339(),
            request_id: caller.request_id.clone(),
            principal: caller.principal.owner_key(),
            transport: caller.transport,
            path: caller.path,
            cwd: request.cwd.clone(),
            sandbox: Some(request.sandbox.as_str().to_owned()),
            model: request.model.clone(),
            thread_id: request.thread_id.clone(),
            outcome,
            reason: Some(refusal.to_string()),
            exit_code: None,
            duration_ms: 0,
            input_tokens: 0,
            cached_input_tokens: 0,
            output_tokens: 0,
            commands: 0,
            files_changed: 0,
            prompt: PromptDigest::of(&request.prompt, keep_prompts),
        });
    }

    /// What the record of `spec`'s end will need, taken before the prompt goes to Codex
    /// (so the prompt is hashed once, and only when there is an audit log).
    pub fn facts(&self, spec: &RunSpec) -> RunFacts {
        RunFacts {
            cwd: spec.cwd.display().to_string(),
            sandbox: spec.sandbox.as_str(),
            model: spec.model.clone(),
            resume: spec.resume.clone(),
            prompt: self
                .audit
                .as_ref()
                .map(|log| PromptDigest::of(&spec.prompt, log.keeps_prompts())),
        }
    }

    /// A `tools/call` the HTTP auth layer refused: no principal, so the record says who
    /// was *not* let in, with what the arguments asked for.
    pub fn auth_denied(
        &self,
        request_id: Option<String>,
        reason: &str,
        arguments: &serde_json::Value,
    ) {
        let text = |key: &str| {
            arguments
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        count(CallTransport::Http, RunPath::Direct, Outcome::Refused);
        self.write(|keep_prompts| AuditRecord {
            time: now_rfc3339(),
            request_id,
            principal: "unauthenticated".to_owned(),
            transport: CallTransport::Http,
            path: RunPath::Direct,
            cwd: text("cwd"),
            sandbox: text("sandbox"),
            model: text("model"),
            thread_id: text("thread_id"),
            outcome: Outcome::Refused,
            reason: Some(format!("authentication: {reason}")),
            exit_code: None,
            duration_ms: 0,
            input_tokens: 0,
            cached_input_tokens: 0,
            output_tokens: 0,
            commands: 0,
            files_changed: 0,
            prompt: PromptDigest::of(&text("prompt").unwrap_or_default(), keep_prompts),
        });
    }

    /// An admitted run ended (or never got to run).
    pub fn ended(&self, caller: &Caller, facts: RunFacts, ended: &Ended, took: Duration) {
        let m = metrics();
        let (outcome, reason) = match ended {
            Ended::Ran(out) if out.ok => (Outcome::Ok, None),
            Ended::Ran(out) if out.timed_out => (Outcome::TimedOut, out.error.clone()),
            Ended::Ran(out) if out.cancelled => (Outcome::Cancelled, out.error.clone()),
            Ended::Ran(out) => (Outcome::Failed, out.error.clone()),
            Ended::NotRun(e @ ToolError::CancelledInQueue) => {
                (Outcome::Cancelled, Some(e.to_string()))
            }
            Ended::NotRun(e) => {
                m.refused(RefusalReason::spawn);
                (Outcome::Failed, Some(e.to_string()))
            }
        };
        self.count(caller, outcome);
        m.run_duration.observe(took.as_secs_f64());
        let out = match ended {
            Ended::Ran(out) => Some(out),
            Ended::NotRun(_) => None,
        };
        if let Some(out) = out {
            let usage = &out.summary.usage;
            for (kind, n) in [
                (TokenKind::input, usage.input_tokens),
                (TokenKind::cached_input, usage.cached_input_tokens),
                (TokenKind::output, usage.output_tokens),
            ] {
                if n > 0 {
                    m.codex_tokens
                        .get_or_create(&TokenLabels { kind })
                        .inc_by(n);
                }
            }
        }
        self.write(|keep_prompts| AuditRecord {
            time: now_rfc3339(),
            request_id: caller.request_id.clone(),
            principal: caller.principal.owner_key(),
            transport: caller.transport,
            path: caller.path,
            cwd: Some(facts.cwd),
            sandbox: Some(facts.sandbox.to_owned()),
            model: facts.model,
            thread_id: out
                .and_then(|o| o.summary.thread_id.clone())
                .or(facts.resume),
            outcome,
            reason,
            exit_code: out.and_then(|o| o.exit_code),
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            input_tokens: out.map_or(0, |o| o.summary.usage.input_tokens),
            cached_input_tokens: out.map_or(0, |o| o.summary.usage.cached_input_tokens),
            output_tokens: out.map_or(0, |o| o.summary.usage.output_tokens),
            commands: out.map_or(0, |o| o.summary.commands.len()),
            files_changed: out.map_or(0, |o| o.summary.file_changes.len()),
            prompt: facts
                .prompt
                .unwrap_or_else(|| PromptDigest::of("", keep_prompts)),
        });
    }

    /// An approval request of run `run_id` was answered (by a person or a fallback).
    pub fn approval(&self, caller: &Caller, run_id: &str, record: &ApprovalRecord) {
        metrics().approval(record.decision, record.channel);
        tracing::info!(
            run_id,
            approval_id = %record.id,
            decision = record.decision.as_str(),
            channel = record.channel.as_str(),
            by = record.answered_by.as_deref().unwrap_or(""),
            "approval decided"
        );
        self.write(|_| ApprovalAuditRecord {
            time: now_rfc3339(),
            kind: "approval",
            request_id: caller.request_id.clone(),
            principal: caller.principal.owner_key(),
            run_id: run_id.to_owned(),
            approval_id: record.id.clone(),
            request: record.request.clone(),
            decision: record.decision.as_str(),
            channel: record.channel.as_str(),
            answered_by: record.answered_by.clone(),
            note: record.note.clone(),
            waited_ms: record.waited_ms,
        });
    }

    fn count(&self, caller: &Caller, outcome: Outcome) {
        count(caller.transport, caller.path, outcome);
    }
}

/// One more run (or refusal) in `twobot_runs_total`.
fn count(transport: CallTransport, path: RunPath, outcome: Outcome) {
    metrics()
        .runs
        .get_or_create(&RunLabels {
            outcome: outcome.into(),
            transport: transport.into(),
            path: path.into(),
        })
        .inc();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::run::control::{ApprovalKind, Channel, Decision};
    use crate::run::{Principal, QuotaKey};

    /// Every decision is one audit line (who, what, how, which way) and one count, with
    /// caller-sized strings cut like every other line's.
    #[test]
    fn an_approval_decision_is_one_audit_line_and_one_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = Arc::new(AuditLog::open(&path, false, Default::default(), || {}).unwrap());
        let observer = Observer::new(Some(log.clone()));
        let principal = Principal::Token {
            name: "alice".into(),
        };
        let caller = Caller {
            quota: QuotaKey::of(&principal),
            owner: principal.owner_key(),
            principal,
            request_id: Some("req-1".into()),
            transport: CallTransport::Http,
            path: RunPath::Background,
            approvals: Default::default(),
        };
        let counted = || {
            metrics()
                .approvals
                .get_or_create(&crate::metrics::ApprovalLabels {
                    decision: Decision::Accept.into(),
                    channel: Channel::Card.into(),
                })
                .get()
        };
        let before = counted();
        observer.approval(
            &caller,
            "run-1",
            &ApprovalRecord {
                id: "a1".into(),
                request: ApprovalKind::Command {
                    command: format!("touch ran {}", "x".repeat(100_000)),
                    cwd: "/repo".into(),
                },
                reason: None,
                decision: Decision::Accept,
                channel: Channel::Card,
                answered_by: Some("alice".into()),
                note: None,
                waited_ms: 1200,
            },
        );
        assert_eq!(counted(), before + 1);
        assert!(
            metrics()
                .encode()
                .contains(r#"twobot_approvals_total{decision="accept",channel="card"}"#)
        );
        assert!(log.flush());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.len() < 20_000,
            "the command was cut: {} bytes",
            text.len()
        );
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["kind"], "approval");
        assert_eq!(line["principal"], "token:alice");
        assert_eq!(line["run_id"], "run-1");
        assert_eq!(line["approval_id"], "a1");
        assert_eq!(line["decision"], "accept");
        assert_eq!(line["channel"], "card");
        assert_eq!(line["answered_by"], "alice");
        assert_eq!(line["request"]["cwd"], "/repo");
        assert!(
            line["request"]["command"]
                .as_str()
                .unwrap()
                .starts_with("touch ran")
        );
    }
}
