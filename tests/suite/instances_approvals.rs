//! A person's answer to a Codex approval reaches the instance whose run asked (issue
//! 21): behind a round-robin balancer the run card's poll and its Approve/Deny click land
//! on any instance, while the approval and its one-time token wait in the process that
//! runs Codex. Real parts: two `2bot-mcp` instances on one throw-away PostgreSQL, nginx
//! in front, the fake Codex on the app-server backend asking to `touch` a marker (so what
//! the answer did is seen on disk), the official Python SDK starting runs through the
//! balancer, and rmcp clients playing the card on the instance that does not hold the
//! run (they read the token from `_meta`, as the card does).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rmcp::RoleClient;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use serde_json::{Value, json};

use crate::common::cluster::{Balancer, Cluster, SECRET, Sdk, StaticTokens, TokenSource, log_of};
use crate::common::http::http_client;
use crate::common::{Recorder, structured, text};

const PEOPLE: StaticTokens = StaticTokens(&["alice", "bob"]);

/// The app-server backend, and the ceiling that lets a command approval reach a person
/// (src/policy/approvals.rs).
const ASKING: &[(&str, &str)] = &[
    ("TWOBOT_CODEX_BACKEND", "app-server"),
    ("TWOBOT_ALLOW_DANGER_FULL_ACCESS", "true"),
];

type Client = RunningService<RoleClient, Recorder>;

struct Service {
    cluster: Cluster,
    balancer: Balancer,
    sdk: Sdk,
}

impl Service {
    async fn start() -> Result<Self> {
        let sdk = Sdk::new()?;
        let cluster = Cluster::start(2, &PEOPLE, ASKING).await?;
        let ports: Vec<u16> = cluster.members.iter().map(|m| m.port).collect();
        let balancer = Balancer::start(&ports).await?;
        Ok(Self {
            cluster,
            balancer,
            sdk,
        })
    }

    /// Alice's background run, started through the balancer, whose Codex asks to touch
    /// `marker`; its id, the member holding it and the other member.
    async fn asking_run(&self, marker: &Path) -> Result<(String, usize, usize)> {
        let args = json!({
            "prompt": format!("scenario:approve_command touch {}", marker.display()),
            "sandbox": "workspace-write", "allow_edits": true, "approval_policy": "on-request",
            "background": true, "timeout_sec": 120,
        });
        let r = self
            .sdk
            .call(
                &self.balancer.mcp(),
                &PEOPLE.token("alice")?,
                "run_codex_prompt",
                args,
            )
            .await?;
        let run_id = r["structuredContent"]["run_id"]
            .as_str()
            .with_context(|| format!("run_id: {r}"))?
            .to_owned();
        let holder = self.cluster.holder(&run_id).await?;
        Ok((run_id, holder, (holder + 1) % self.cluster.members.len()))
    }

    /// An rmcp client of member `m` (bypassing the balancer) as `who`.
    async fn card(&self, m: usize, who: &str) -> Result<Client> {
        http_client(&self.cluster.members[m].mcp(), Some(&PEOPLE.token(who)?)).await
    }
}

async fn tool(client: &Client, name: &'static str, args: Value) -> Result<CallToolResult> {
    let Value::Object(map) = args else {
        anyhow::bail!("arguments must be an object")
    };
    Ok(client
        .call_tool(CallToolRequestParams::new(name).with_arguments(map))
        .await?)
}

/// Poll `get_codex_run` as the card does until a request is pending; its id and token.
async fn pending(card: &Client, run_id: &str) -> Result<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = tool(
            card,
            "get_codex_run",
            json!({"run_id": run_id, "wait_sec": 5}),
        )
        .await?;
        let snapshot = structured(&got);
        if let Some(p) = snapshot["pending_approvals"].get(0) {
            let id = p["id"].as_str().context("approval id")?.to_owned();
            let meta = serde_json::to_value(&got.meta)?;
            let token = meta["2bot/approvalTokens"][&id]
                .as_str()
                .with_context(|| format!("the card's token in _meta: {meta}"))?
                .to_owned();
            return Ok((id, token));
        }
        ensure!(
            Instant::now() < deadline && snapshot["status"] == "working",
            "no pending approval: {snapshot:#}"
        );
    }
}

/// The run's snapshot once it ends, read through `card`.
async fn ended(card: &Client, run_id: &str) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = tool(
            card,
            "get_codex_run",
            json!({"run_id": run_id, "wait_sec": 10}),
        )
        .await?;
        let snapshot = structured(&got);
        if snapshot["status"] != "working" {
            return Ok(snapshot);
        }
        ensure!(
            Instant::now() < deadline,
            "the run never ended: {snapshot:#}"
        );
    }
}

fn answer(run_id: &str, approval_id: &str, token: &str, decision: &str) -> Value {
    json!({"run_id": run_id, "approval_id": approval_id, "token": token, "decision": decision})
}

/// `answer_codex_approval` at `card`: (is it an error, its text).
async fn answered(card: &Client, args: Value) -> Result<(bool, String)> {
    let r = tool(card, "answer_codex_approval", args).await?;
    Ok((r.is_error == Some(true), text(&r)))
}

/// The holder's own owner check: a correctly signed internal call carrying another
/// owner key (and the right token) is told the run does not exist.
async fn signed_as_bob(base: &str, run_id: &str, arguments: Value) -> Result<Value> {
    use twobot::peer::sign::{self, Stamp};
    let path = format!("/_2bot/internal/runs/{run_id}/answer");
    let body = serde_json::to_vec(&json!({"owner": "token:bob", "arguments": arguments}))?;
    let stamp = Stamp {
        from: "peer-test".into(),
        time_ms: twobot::state::now_ms(),
        nonce: uuid::Uuid::new_v4().to_string(),
    };
    let signature = sign::sign(SECRET.as_bytes(), "POST", &path, &stamp, &body);
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header(sign::H_PEER, &stamp.from)
        .header(sign::H_TIME, stamp.time_ms.to_string())
        .header(sign::H_NONCE, &stamp.nonce)
        .header(sign::H_SIGNATURE, signature)
        .body(body)
        .send()
        .await?;
    ensure!(r.status() == 200, "the signed call: {}", r.status());
    Ok(r.json().await?)
}

/// Approve on the instance that does not hold the run: the card there reads the
/// pending request and its token (forwarded `get_codex_run`), a wrong owner and a wrong
/// token are refused exactly as the holder refuses them, the holder itself checks the
/// owner of a signed call, and the approval runs the command on the holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approve_click_on_another_instance_runs_the_command_where_the_run_is() -> Result<()> {
    let s = Service::start().await?;
    let marks = tempfile::tempdir()?;
    let marker = marks.path().join("approved-elsewhere");
    let (run_id, holder, other) = s.asking_run(&marker).await?;
    let (alice_there, alice_here) = (
        s.card(other, "alice").await?,
        s.card(holder, "alice").await?,
    );
    let (bob_there, bob_here) = (s.card(other, "bob").await?, s.card(holder, "bob").await?);
    let (approval, token) = pending(&alice_there, &run_id).await?;

    let bobs = answer(&run_id, &approval, &token, "approve");
    let (here, there) = (
        answered(&bob_here, bobs.clone()).await?,
        answered(&bob_there, bobs.clone()).await?,
    );
    ensure!(
        here.0 && here.1.contains("no run"),
        "bob at the holder: {here:?}"
    );
    ensure!(
        here == there,
        "bob elsewhere: {there:?}, at the holder: {here:?}"
    );
    let holders_check = signed_as_bob(&s.cluster.members[holder].base(), &run_id, bobs).await?;
    ensure!(
        holders_check["isError"] == true && holders_check.to_string().contains("no run"),
        "the holder answered a signed call for bob: {holders_check}"
    );
    let forged = answer(&run_id, &approval, "not-the-token", "approve");
    let (here, there) = (
        answered(&alice_here, forged.clone()).await?,
        answered(&alice_there, forged).await?,
    );
    ensure!(
        here.0 && here.1.contains("token does not match"),
        "a wrong token at the holder: {here:?}"
    );
    ensure!(
        here == there,
        "a wrong token elsewhere: {there:?}, at the holder: {here:?}"
    );
    ensure!(!marker.exists(), "a refused answer ran the command");

    let ok = tool(
        &alice_there,
        "answer_codex_approval",
        answer(&run_id, &approval, &token, "approve"),
    )
    .await?;
    ensure!(
        ok.is_error != Some(true),
        "alice's approve elsewhere: {}",
        text(&ok)
    );
    ensure!(
        structured(&ok) == json!({"run_id": run_id, "approval_id": approval, "decision": "accept"}),
        "{}",
        structured(&ok)
    );
    let log = log_of(&s.cluster.members[holder].server);
    ensure!(
        log.lines()
            .any(|l| l.contains("a forwarded follow-up") && l.contains("answer")),
        "the answer elsewhere was not forwarded to the holder"
    );
    let last = ended(&alice_there, &run_id).await?;
    let result = &last["result"];
    ensure!(
        marker.exists(),
        "the approved command did not run: {last:#}"
    );
    ensure!(last["status"] == "completed", "{last:#}");
    ensure!(result["approvals"][0]["decision"] == "accept", "{result:#}");
    ensure!(result["approvals"][0]["channel"] == "card", "{result:#}");
    ensure!(
        result["approvals"][0]["answered_by"] == "alice",
        "{result:#}"
    );
    ensure!(result["commands"][0]["status"] == "completed", "{result:#}");
    let again = answered(&alice_there, answer(&run_id, &approval, &token, "approve")).await?;
    ensure!(again.0, "a spent approval was answered again: {again:?}");
    Ok(())
}

/// Deny on the instance that does not hold the run declines: the command never runs
/// and the result says who declined. With the holder gone, a click elsewhere is refused
/// naming the holder's address (it is not silently lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_click_elsewhere_declines_and_a_gone_holder_is_named() -> Result<()> {
    let mut s = Service::start().await?;
    let marks = tempfile::tempdir()?;
    let denied = marks.path().join("denied-elsewhere");
    let (run_id, _, other) = s.asking_run(&denied).await?;
    let card = s.card(other, "alice").await?;
    let (approval, token) = pending(&card, &run_id).await?;
    let no = tool(
        &card,
        "answer_codex_approval",
        answer(&run_id, &approval, &token, "deny"),
    )
    .await?;
    ensure!(structured(&no)["decision"] == "decline", "{}", text(&no));
    let last = ended(&card, &run_id).await?;
    let result = &last["result"];
    ensure!(!denied.exists(), "the denied command ran: {last:#}");
    ensure!(
        result["approvals"][0]["decision"] == "decline",
        "{result:#}"
    );
    ensure!(
        result["approvals"][0]["answered_by"] == "alice",
        "{result:#}"
    );
    ensure!(result["commands"][0]["status"] == "declined", "{result:#}");

    let orphan = marks.path().join("never-answered");
    let (run_id, holder, other) = s.asking_run(&orphan).await?;
    let card = s.card(other, "alice").await?;
    let (approval, token) = pending(&card, &run_id).await?;
    let mut gone = s.cluster.members.remove(holder).server;
    gone.child.start_kill()?;
    gone.child.wait().await?;
    let (refused, why) = answered(&card, answer(&run_id, &approval, &token, "approve")).await?;
    ensure!(
        refused && why.contains("refused") && why.contains(&gone.base),
        "an answer for a gone holder: {why}"
    );
    ensure!(!orphan.exists(), "the command ran without its instance");
    Ok(())
}
