//! A mock OpenAI Responses API on 127.0.0.1, so the real Codex CLI runs fully offline.
//!
//! Each `POST /v1/responses` is answered from a script (one list of output items per
//! request, in order; a plain "mock done" message once the script is exhausted) as the
//! SSE stream Codex expects. Every request body is kept for assertions. A [`delay`] item in
//! a response holds that response back (so a test can steer or interrupt a running turn).
//! `docs/app-server-protocol.md` records what Codex 0.169 does with each item.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Shared {
    script: Arc<Mutex<VecDeque<Vec<Value>>>>,
    requests: Arc<Mutex<Vec<Value>>>,
}

/// The running mock.
pub struct MockResponses {
    pub addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockResponses {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An assistant message output item.
pub fn message(text: &str) -> Value {
    json!({"type": "message", "role": "assistant", "id": "msg_mock",
           "content": [{"type": "output_text", "text": text}]})
}

/// A request from the model to run a shell command (Codex 0.169's `exec_command` tool).
pub fn exec_command(cmd: &str) -> Value {
    // Call ids are unique per call, as a real model's are (a resumed thread replays old ones).
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    json!({"type": "function_call", "name": "exec_command", "call_id": format!("call_mock_{n}"),
           "arguments": json!({"cmd": cmd}).to_string()})
}

/// Like [`exec_command`], but asks to run outside the sandbox (`require_escalated`), which
/// Codex 0.169 under `approval_policy = "on-request"` (read-only or workspace-write) turns
/// into an `item/commandExecution/requestApproval` carrying `justification` as its `reason`.
/// Accepted, the command runs unsandboxed; declined, it never starts. `login: false` keeps a
/// login shell's profile (e.g. a stuck `pyenv rehash` lock) from stalling the approved run.
pub fn exec_command_escalated(cmd: &str, justification: &str) -> Value {
    let mut call = exec_command(cmd);
    call["arguments"] = json!({"cmd": cmd, "sandbox_permissions": "require_escalated",
                               "justification": justification, "login": false})
    .to_string()
    .into();
    call
}

/// A file edit: Codex 0.169 exposes no `apply_patch` tool to an unknown model, but it
/// intercepts `apply_patch` run through `exec_command` and turns it into a `fileChange`
/// item and `turn/diff/updated`. Under on-request it asks (`item/fileChange/requestApproval`)
/// when the sandbox would not allow the write: read-only, or a path outside the writable
/// roots (which under workspace-write include cwd and /tmp).
pub fn apply_patch(patch: &str) -> Value {
    exec_command(&format!("apply_patch <<'PATCH'\n{patch}PATCH\n"))
}

/// A patch (for [`apply_patch`]) that creates `path` (relative to the run's cwd, or absolute)
/// with `lines`.
pub fn add_file_patch(path: &str, lines: &[&str]) -> String {
    let body: String = lines.iter().map(|l| format!("+{l}\n")).collect();
    format!("*** Begin Patch\n*** Add File: {path}\n{body}*** End Patch\n")
}

/// The model asks for wider sandbox permissions, e.g. `{"file_system": {"write": ["sub"]},
/// "network": {"enabled": true}}` (paths relative to the run's cwd, or absolute). Codex 0.169 offers the `request_permissions` tool only
/// with its `request_permissions_tool` feature, and then sends
/// `item/permissions/requestApproval` under `on-request` or `granular` with
/// `request_permissions` on (never under `never`, nor granular without it: those grant
/// nothing without asking). What is granted applies to later commands of the turn.
pub fn request_permissions(permissions: Value, reason: &str) -> Value {
    json!({"type": "function_call", "name": "request_permissions", "call_id": "call_mock_permissions",
           "arguments": json!({"permissions": permissions, "reason": reason}).to_string()})
}

/// The model asks the user a question (`request_user_input`, offered by Codex 0.169 in Plan
/// mode or with its `default_mode_request_user_input` feature, under any approval policy):
/// Codex sends `item/tool/requestUserInput` and waits for the answers.
pub fn request_user_input(id: &str, question: &str) -> Value {
    json!({"type": "function_call", "name": "request_user_input", "call_id": "call_mock_question",
           "arguments": json!({"questions": [{"id": id, "header": "Question", "question": question,
               "options": [{"label": "Yes (Recommended)", "description": "go on"},
                           {"label": "No", "description": "stop"}]}]}).to_string()})
}

/// Not an output item: holds the response it is in back for `ms` milliseconds before any
/// byte is sent, so the turn stays running (for `turn/steer` and `turn/interrupt`).
pub fn delay(ms: u64) -> Value {
    json!({"type": DELAY, "ms": ms})
}

const DELAY: &str = "mock_delay";

impl MockResponses {
    /// Start on an ephemeral loopback port with `script`.
    pub async fn start(script: Vec<Vec<Value>>) -> Result<Self> {
        let shared = Shared {
            script: Arc::new(Mutex::new(script.into())),
            requests: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/responses", post(respond))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// Write a `CODEX_HOME/config.toml` that points Codex at this mock.
    pub fn write_codex_home(&self, home: &Path) -> Result<()> {
        self.write_codex_home_with(home, "")
    }

    /// Like [`Self::write_codex_home`], with `top` (top-level TOML keys, e.g. a
    /// `sandbox_mode` the operator's config might set) at the head of `config.toml`.
    pub fn write_codex_home_with(&self, home: &Path, top: &str) -> Result<()> {
        std::fs::create_dir_all(home)?;
        std::fs::write(
            home.join("config.toml"),
            format!(
                r#"{top}
model = "mock-model"
model_provider = "mock"

[model_providers.mock]
name = "mock"
base_url = "http://{}/v1"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"#,
                self.addr
            ),
        )?;
        Ok(())
    }

    /// Every request body received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Wait until at least `n` requests have arrived (e.g. the turn is now waiting on a
    /// [`delay`]ed response), or fail after `within`.
    pub async fn wait_for_requests(&self, n: usize, within: Duration) -> Result<Vec<Value>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return Ok(requests);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the mock got {} of {n} requests within {within:?}",
                requests.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn respond(State(shared): State<Shared>, body: axum::body::Bytes) -> impl IntoResponse {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.requests.lock().unwrap().push(request);
    let n = shared.requests.lock().unwrap().len();
    let items = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| vec![message("mock done")]);
    let (delays, items): (Vec<Value>, Vec<Value>) =
        items.into_iter().partition(|i| i["type"] == DELAY);
    let wait: u64 = delays.iter().filter_map(|d| d["ms"].as_u64()).sum();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    let id = format!("resp_{n}");
    let mut events = vec![json!({"type": "response.created", "response": {"id": id}})];
    for item in items {
        events.push(json!({"type": "response.output_item.done", "item": item}));
    }
    events.push(json!({"type": "response.completed", "response": {"id": id, "usage": {
        "input_tokens": 11, "input_tokens_details": {"cached_tokens": 3},
        "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 18}}}));
    let body: String = events
        .iter()
        .map(|e| {
            format!(
                "event: {}\ndata: {}\n\n",
                e["type"].as_str().unwrap_or(""),
                e
            )
        })
        .collect();
    ([(header::CONTENT_TYPE, "text/event-stream")], body)
}
