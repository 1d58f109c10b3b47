//! Approvals between Codex and a person, on the MCP side: whether this caller can be
//! asked at all ([`reach`]), what a person is shown ([`message`], [`form`]), and how a
//! reply is read ([`decision_of`]). The relays that use them are [`super::elicit`] (a
//! legacy session's `elicitation/create`) and [`super::input_required`] (the 2026-07-28
//! round trip); the run card answers through `answer_codex_approval` ([`super::control`]).
//!
//! Replies are read by the spec's three actions, and one rule is ours: `cancel` (the
//! person dismissed the dialog) declines the one request and never stops the turn, so a
//! closed dialog cannot kill work; `Decision::Cancel` is never produced from a reply.
//! OpenAI's own `codex mcp-server` misread replies so that every approval was denied:
//! the table test at the bottom pins ours.

use rmcp::RoleServer;
use rmcp::model::{ElicitRequestParams, ElicitationAction, ProtocolVersion};
use rmcp::service::RequestContext;
use serde_json::{Value, json};

use crate::run::RunPath;
use crate::run::control::{ApprovalKind, ControlConfig, Decision, Pending};

/// What the client said it can do, as far as asking a person goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientFacts {
    /// A legacy (2025-11-25 or older) session whose client declared form elicitation:
    /// 2Bot may send it `elicitation/create` while the session lives.
    pub legacy_elicitation: bool,
    /// A 2026-07-28 request whose per-request capabilities declare elicitation: the call
    /// may be answered with `input_required` and retried with the answers.
    pub stateless_elicitation: bool,
    /// The client declared the MCP Apps extension (it can show the run card).
    pub ui: bool,
}

/// The channels that can reach a person for one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reach {
    /// Send `elicitation/create` on the session.
    pub elicitation: bool,
    /// Answer a direct call with `input_required`.
    pub input_required: bool,
    /// The run is kept (task or background): the card, or a later call, can answer it.
    pub kept: bool,
}

impl Reach {
    /// Whether any channel reaches a person.
    pub fn any(self) -> bool {
        self.elicitation || self.input_required || self.kept
    }

    /// The run's control settings: reachable or not, and the operator's timeout.
    pub fn control(self, approval_timeout: std::time::Duration) -> ControlConfig {
        ControlConfig {
            approval_timeout,
            reachable: self.any(),
        }
    }
}

/// Which channels reach a person for a call with `facts` on `path`.
///
/// The card alone does not make a direct call reachable: it learns a run's id and the
/// approval tokens from a kept run's snapshots only, so on a direct call nobody could
/// press its buttons and the request would wait its whole timeout for nothing (and
/// ChatGPT gives up on a call after about a minute). A kept run is reachable anyway.
pub fn reach(facts: ClientFacts, path: RunPath) -> Reach {
    Reach {
        elicitation: facts.legacy_elicitation,
        input_required: facts.stateless_elicitation && path == RunPath::Direct,
        kept: matches!(path, RunPath::Task | RunPath::Background),
    }
}

/// What the request in `ctx` says of its client.
pub fn facts(ctx: &RequestContext<RoleServer>) -> ClientFacts {
    let modern = ctx
        .meta
        .protocol_version()
        .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
    let legacy_elicitation = !modern
        && ctx.peer.peer_info().is_some_and(|info| {
            info.protocol_version < ProtocolVersion::V_2026_07_28
                && info.capabilities.elicitation.as_ref().is_some_and(|e| {
                    // No mode named means form (2025-06-18 clients).
                    e.form.is_some() || e.url.is_none()
                })
        });
    let stateless_elicitation = modern
        && ctx
            .meta
            .client_capabilities()
            .and_then(|c| c.elicitation)
            .is_some_and(|e| e.form.is_some() || e.url.is_none());
    let ui = ctx
        .client_capabilities()
        .and_then(|c| c.extensions)
        .is_some_and(|e| e.contains_key(super::apps::EXTENSION_ID));
    ClientFacts {
        legacy_elicitation,
        stateless_elicitation,
        ui,
    }
}

/// What a person is asked: what would happen on accept, in plain text.
pub fn message(pending: &Pending) -> String {
    let mut text = match &pending.request.kind {
        ApprovalKind::Command { command, cwd } => {
            format!("Codex wants to run a command.\n\n$ {command}\n\nin {cwd}")
        }
        ApprovalKind::FileChange { paths, diff } => format!(
            "Codex wants to change {}:\n{}\n\n{diff}",
            if paths.len() == 1 { "a file" } else { "files" },
            paths
                .iter()
                .map(|p| format!("  {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        ApprovalKind::Permissions { summary, .. } => {
            format!("Codex wants more permissions for its commands:\n\n{summary}")
        }
    };
    if let Some(reason) = &pending.request.reason {
        text.push_str("\n\nCodex's reason: ");
        text.push_str(reason);
    }
    text.push_str("\n\nApprove?");
    text
}

/// The form a person answers: one boolean, `approve`.
pub fn form(pending: &Pending) -> Option<ElicitRequestParams> {
    serde_json::from_value(json!({
        "mode": "form",
        "message": message(pending),
        "requestedSchema": {
            "type": "object",
            "properties": {
                "approve": {
                    "type": "boolean",
                    "title": "Approve",
                    "description": "Let Codex do this (unchecked: Codex is told no and goes on)",
                    "default": false
                }
            },
            "required": ["approve"]
        }
    }))
    .ok()
}

/// A reply, read by the spec: `accept` approves unless the form says `approve: false`;
/// `decline` declines; `cancel` (dismissed) declines this request only, noted as such.
pub fn decision_of(
    action: &ElicitationAction,
    content: Option<&Value>,
) -> (Decision, Option<String>) {
    match action {
        ElicitationAction::Accept => {
            let refused = content
                .and_then(|c| c.get("approve"))
                .is_some_and(|a| *a == Value::Bool(false));
            if refused {
                (Decision::Decline, None)
            } else {
                (Decision::Accept, None)
            }
        }
        ElicitationAction::Decline => (Decision::Decline, None),
        ElicitationAction::Cancel => (
            Decision::Decline,
            Some("declined: the person dismissed the dialog".to_owned()),
        ),
        // A later spec's action this build does not know: not a yes.
        _ => (
            Decision::Decline,
            Some("declined: the reply's action is not accept, decline or cancel".to_owned()),
        ),
    }
}

/// A reply given as JSON (an `ElicitResult`), read like [`decision_of`]; `None` when
/// it is not one (then the request stays pending).
pub fn decision_of_json(reply: &Value) -> Option<(Decision, Option<String>)> {
    let action: ElicitationAction = serde_json::from_value(reply.get("action")?.clone()).ok()?;
    Some(decision_of(&action, reply.get("content")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::run::control::ApprovalRequest;

    /// The spec's actions, and the content of an accepted form, each read one way.
    #[test]
    fn replies_are_read_by_the_spec_and_a_dismissed_dialog_only_declines() {
        let cases = [
            (
                json!({"action": "accept", "content": {"approve": true}}),
                Decision::Accept,
                false,
            ),
            (json!({"action": "accept"}), Decision::Accept, false),
            (
                json!({"action": "accept", "content": {}}),
                Decision::Accept,
                false,
            ),
            (
                json!({"action": "accept", "content": {"approve": false}}),
                Decision::Decline,
                false,
            ),
            (json!({"action": "decline"}), Decision::Decline, false),
            (
                json!({"action": "decline", "content": {"approve": true}}),
                Decision::Decline,
                false,
            ),
            (json!({"action": "cancel"}), Decision::Decline, true),
        ];
        for (reply, decision, noted) in cases {
            let (got, note) = decision_of_json(&reply).unwrap();
            assert_eq!(got, decision, "{reply}");
            assert_eq!(note.is_some(), noted, "{reply}");
        }
        for bad in [json!({}), json!({"action": "maybe"}), json!("accept")] {
            assert!(decision_of_json(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn only_an_elicitation_or_a_kept_run_makes_a_caller_reachable() {
        let none = ClientFacts::default();
        let legacy = ClientFacts {
            legacy_elicitation: true,
            ..none
        };
        let stateless = ClientFacts {
            stateless_elicitation: true,
            ..none
        };
        let ui = ClientFacts { ui: true, ..none };
        assert!(!reach(none, RunPath::Direct).any());
        assert!(!reach(ui, RunPath::Direct).any());
        assert!(reach(ui, RunPath::Background).any());
        assert!(reach(none, RunPath::Task).any());
        assert!(reach(legacy, RunPath::Direct).elicitation);
        assert!(reach(stateless, RunPath::Direct).input_required);
        // The round trip answers a call; a task or a background start has none to answer.
        assert!(!reach(stateless, RunPath::Background).input_required);
    }

    #[test]
    fn the_form_shows_what_would_run_and_asks_one_boolean() {
        let pending = Pending {
            id: "a1".into(),
            request: ApprovalRequest {
                kind: ApprovalKind::Command {
                    command: "touch ran".into(),
                    cwd: "/work/repo".into(),
                },
                reason: Some("to check".into()),
            },
            asked_at_ms: 0,
            token: "t".into(),
        };
        let params = serde_json::to_value(form(&pending).unwrap()).unwrap();
        let message = params["message"].as_str().unwrap();
        assert!(message.contains("$ touch ran") && message.contains("in /work/repo"));
        assert!(message.contains("to check"), "{message}");
        assert_eq!(
            params["requestedSchema"]["properties"]["approve"]["type"],
            "boolean"
        );
        assert_eq!(params["requestedSchema"]["required"], json!(["approve"]));
        let diff = Pending {
            request: ApprovalRequest {
                kind: ApprovalKind::FileChange {
                    paths: vec!["src/lib.rs".into()],
                    diff: "+fn new() {}".into(),
                },
                reason: None,
            },
            ..pending
        };
        let text = super::message(&diff);
        assert!(
            text.contains("src/lib.rs") && text.contains("+fn new() {}"),
            "{text}"
        );
    }
}
