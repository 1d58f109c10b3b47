//! The elicitation relay over a real rmcp session (an in-memory pipe): a server whose
//! one tool asks an approval and relays it exactly as a direct call does, and a client
//! that declared form elicitation and answers as the test says.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, ElicitRequestParams, ElicitResult,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ClientHandler, ErrorData, RoleClient, RoleServer, ServerHandler, ServiceExt};
use serde_json::json;

use crate::run::control::{ApprovalKind, ApprovalRequest, Channel, ControlConfig, Decision};

/// A server with one tool: ask one approval and relay it, like `TwoBot::direct`.
#[derive(Clone)]
struct AsksOnce;

impl ServerHandler for AsksOnce {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, ErrorData> {
        let (handle, _publisher) =
            crate::runs::handle::channel(tokio_util::sync::CancellationToken::new());
        let control = handle.control().clone();
        control.configure(ControlConfig {
            approval_timeout: Duration::from_secs(2),
            reachable: true,
        });
        let ask = control.ask(ApprovalRequest {
            kind: ApprovalKind::Command {
                command: "touch ran".into(),
                cwd: "/repo".into(),
            },
            reason: None,
        });
        let record = tokio::select! {
            record = ask => record,
            () = super::relay(&handle, &ctx.peer, "tester") => unreachable!("the relay outlives the ask"),
        };
        let text = serde_json::to_string(&record).unwrap();
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}

/// A client that declared form elicitation and replies `reply` (`None`: an error).
#[derive(Clone)]
struct Person {
    reply: Option<serde_json::Value>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ClientHandler for Person {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        let mut info = rmcp::model::ClientConfig::default();
        info.capabilities = serde_json::from_value(json!({"elicitation": {"form": {}}})).unwrap();
        info
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let message = serde_json::to_value(&request).unwrap()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.seen.lock().unwrap().push(message);
        match &self.reply {
            Some(reply) => Ok(serde_json::from_value(reply.clone()).unwrap()),
            None => Err(ErrorData::internal_error(
                "the user interface is gone",
                None,
            )),
        }
    }
}

async fn decided(
    reply: Option<serde_json::Value>,
) -> (crate::run::control::ApprovalRecord, Vec<String>) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move { AsksOnce.serve(a).await.unwrap().waiting().await });
    let person = Person {
        reply,
        seen: Default::default(),
    };
    let client = person.clone().serve(b).await.unwrap();
    let result = client
        .call_tool(CallToolRequestParams::new("ask"))
        .await
        .unwrap();
    let text = match &result.content[0] {
        ContentBlock::Text(t) => t.text.clone(),
        other => panic!("{other:?}"),
    };
    client.cancel().await.unwrap();
    server.abort();
    let seen = person.seen.lock().unwrap().clone();
    (serde_json::from_str(&text).unwrap(), seen)
}

/// OpenAI's `codex mcp-server` misread replies so that every approval was denied: an
/// accepted form really approves, and the person saw what would run.
#[tokio::test]
async fn an_accepted_elicitation_approves_and_the_person_saw_the_command() {
    let (record, seen) = decided(Some(
        json!({"action": "accept", "content": {"approve": true}}),
    ))
    .await;
    assert_eq!(record.decision, Decision::Accept);
    assert_eq!(record.channel, Channel::Elicitation);
    assert_eq!(record.answered_by.as_deref(), Some("tester"));
    assert!(
        seen[0].contains("$ touch ran") && seen[0].contains("/repo"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn an_unchecked_box_a_decline_and_a_dismissed_dialog_each_decline() {
    let (record, _) = decided(Some(
        json!({"action": "accept", "content": {"approve": false}}),
    ))
    .await;
    assert_eq!(record.decision, Decision::Decline);
    let (record, _) = decided(Some(json!({"action": "decline"}))).await;
    assert_eq!(
        (record.decision, record.channel),
        (Decision::Decline, Channel::Elicitation)
    );
    let (record, _) = decided(Some(json!({"action": "cancel"}))).await;
    assert_eq!(
        record.decision,
        Decision::Decline,
        "a dismissed dialog never stops the turn"
    );
    assert!(record.note.unwrap().contains("dismissed"));
}

/// A client that fails to answer leaves the request to the card or the timeout.
#[tokio::test]
async fn a_failed_elicitation_leaves_the_request_to_its_timeout() {
    let (record, seen) = decided(None).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (record.decision, record.channel),
        (Decision::Decline, Channel::Timeout)
    );
}
