//! Harness for the HTTP transport: spawn `2bot-mcp --transport http` on an ephemeral
//! loopback port, and talk to it with rmcp's Streamable HTTP client or raw reqwest.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use super::{Recorder, fake_codex};

/// A running HTTP server.
pub struct HttpServer {
    pub child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// `http://127.0.0.1:PORT/mcp`
    pub url: String,
    pub record: PathBuf,
    pub log: PathBuf,
    pub _tmp: tempfile::TempDir,
}

/// Start the binary in http mode with `env` on top of the test defaults, on a port it
/// picks (`TWOBOT_PORT=0`; its listening line says which).
pub async fn spawn_http(env: &[(&str, &str)]) -> Result<HttpServer> {
    spawn_http_with(env, None).await
}

/// A listening socket on 127.0.0.1 and its port, for a server that must know its own
/// address before it starts (an issuer, an instance URL, a balancer's upstream).
pub fn loopback_listener() -> Result<(std::net::TcpListener, u16)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// [`spawn_http`] serving `listener` (handed over at fd 3 with `LISTEN_FDS=1`, as
/// systemd's socket activation does): the port is held from before the start, so no
/// other process can take it in between.
pub async fn spawn_http_on(
    listener: std::net::TcpListener,
    env: &[(&str, &str)],
) -> Result<HttpServer> {
    spawn_http_with(env, Some(listener)).await
}

async fn spawn_http_with(
    env: &[(&str, &str)],
    listener: Option<std::net::TcpListener>,
) -> Result<HttpServer> {
    let tmp = tempfile::tempdir()?;
    let base_dir = tmp.path().canonicalize()?;
    let root = base_dir.join("root");
    let record = base_dir.join("record");
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&record)?;
    let log = base_dir.join("server.log");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TWOBOT_TRANSPORT", "http")
        .env("TWOBOT_PORT", "0")
        .env("TWOBOT_LOG_LEVEL", "debug")
        .env("CODEX_BIN", fake_codex())
        .env("CODEX_ALLOWED_ROOTS", &root)
        .env("FAKE_CODEX_RECORD", &record)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true);
    super::with_backend(&mut cmd);
    super::stores::with_store(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(listener) = listener {
        use command_fds::{CommandFdExt, FdMapping};
        cmd.env("LISTEN_FDS", "1");
        cmd.fd_mappings(vec![FdMapping {
            parent_fd: listener.into(),
            child_fd: 3,
        }])?;
    }
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .context("no listening line")??
        .with_context(|| {
            format!(
                "server exited: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })?;
    let url = line
        .rsplit(' ')
        .next()
        .context("listening line has a URL")?
        .to_owned();
    let base = url.trim_end_matches("/mcp").to_owned();
    Ok(HttpServer {
        child,
        base,
        url,
        record,
        log,
        _tmp: tmp,
    })
}

/// `run_codex_prompt` with `args` as an MCP task (the request declares the tasks
/// extension in its `_meta`, SEP-2663): the server's answer, a task or a plain result.
pub async fn call_as_task(
    client: &RunningService<RoleClient, Recorder>,
    args: Value,
) -> Result<rmcp::model::CallToolResponse> {
    use rmcp::model::{CallToolRequestParams, ClientCapabilities, MetaObject, RequestMetaObject};
    let Value::Object(map) = args else {
        anyhow::bail!("arguments must be an object")
    };
    let mut params = CallToolRequestParams::new("run_codex_prompt").with_arguments(map);
    let mut meta = RequestMetaObject(MetaObject::default());
    meta.set_client_capabilities(ClientCapabilities::builder().enable_tasks().build());
    params.meta = Some(meta);
    Ok(client.call_tool_once(params).await?)
}

/// [`call_as_task`], which must start a task: its id.
pub async fn start_as_task(
    client: &RunningService<RoleClient, Recorder>,
    args: Value,
) -> Result<String> {
    match call_as_task(client, args).await? {
        rmcp::model::CallToolResponse::Task(created) => Ok(created.task.task_id),
        other => anyhow::bail!("expected a task, got {other:?}"),
    }
}

/// Connect rmcp's Streamable HTTP client, with a bearer token when given.
pub async fn http_client(
    url: &str,
    token: Option<&str>,
) -> Result<RunningService<RoleClient, Recorder>> {
    connect(url, token, Recorder::default()).await
}

/// Connect a client that declares the MCP tasks extension.
pub async fn http_task_client(
    url: &str,
    token: Option<&str>,
) -> Result<RunningService<RoleClient, Recorder>> {
    let recorder = Recorder {
        tasks: true,
        ..Recorder::default()
    };
    connect(url, token, recorder).await
}

async fn connect(
    url: &str,
    token: Option<&str>,
    recorder: Recorder,
) -> Result<RunningService<RoleClient, Recorder>> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(token) = token {
        config = config.auth_header(token.to_owned());
    }
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    Ok(recorder.serve(transport).await?)
}

/// The JSON-RPC `initialize` request body.
pub fn initialize_body() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}})
}

/// A raw POST to the MCP endpoint with the headers MCP requires.
pub fn post(url: &str, body: &Value) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string())
}

/// Initialize a raw session and return its id.
pub async fn raw_session(url: &str, token: Option<&str>) -> Result<String> {
    let mut req = post(url, &initialize_body());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    anyhow::ensure!(resp.status() == 200, "initialize: {}", resp.status());
    let id = resp
        .headers()
        .get("mcp-session-id")
        .context("session id")?
        .to_str()?
        .to_owned();
    let _ = resp.text().await;
    let mut note = post(
        url,
        &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .header("mcp-session-id", &id);
    if let Some(t) = token {
        note = note.bearer_auth(t);
    }
    note.send().await?;
    Ok(id)
}

/// Wait (at most `limit`) until the unlabelled metric `name` at `url` reads `want`:
/// what a test waits on instead of sleeping "long enough" for the server to get there.
pub async fn wait_for_metric(url: &str, name: &str, want: f64, limit: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let text = reqwest::get(url).await?.text().await?;
        let now = text.lines().find_map(|l| {
            let (key, value) = l.split_once(' ')?;
            (key == name).then(|| value.trim().parse::<f64>().ok())?
        });
        if now == Some(want) {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{name} is {now:?}, not {want}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The metrics URL a server with `TWOBOT_METRICS_ADDR` logged at start-up
/// (`url=http://ADDR/metrics`), once it appears in `log`.
pub async fn metrics_url(log: &std::path::Path) -> Result<String> {
    let logged = |text: &str| {
        text.lines().find_map(|l| {
            let rest = &l[l.find("http://")?..];
            let end = rest.find("/metrics")? + "/metrics".len();
            Some(rest[..end].to_owned())
        })
    };
    let text = super::file_when(log, |t| logged(t).is_some()).await?;
    logged(&text).context("no metrics URL")
}
