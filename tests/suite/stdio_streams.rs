//! The stdio server reads and writes whatever the client handed it: pipes (rmcp, the
//! Python SDK), socket pairs (Node's libuv, so Claude Desktop and the MCP Inspector), a
//! pipe shared with stderr, or a file. Pipes and sockets are polled by the runtime
//! (non-blocking, no thread parked in a read); a stream that is also stderr stays
//! blocking, because the log writes to it with blocking writes.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::common::*;

/// `2bot-mcp` on stdio with the test's own state and root, its streams as given.
fn server(
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
) -> Result<(tokio::process::Child, tempfile::TempDir)> {
    let tmp = tempfile::tempdir()?;
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"))
        .env("CODEX_BIN", fake_codex())
        .env("CODEX_ALLOWED_ROOTS", tmp.path())
        .env("TWOBOT_STATE_DIR", tmp.path().join("state"))
        .env("TWOBOT_LOG_LEVEL", "info")
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()?;
    Ok((child, tmp))
}

/// Initialize, then call `run_codex_prompt`; the answer to the call, skipping any line
/// that is not JSON-RPC (log lines, when stderr shares the stream).
async fn session<W, R>(to: &mut W, from: R) -> Result<Value>
where
    W: AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
{
    let requests = [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"run_codex_prompt","arguments":{"prompt":"scenario:fixed"}}}),
    ];
    for request in requests {
        to.write_all(format!("{request}\n").as_bytes()).await?;
    }
    to.flush().await?;
    let mut lines = BufReader::new(from).lines();
    let answer = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Ok(message) = serde_json::from_str::<Value>(&line)
                && message["id"] == 2
            {
                return Ok(message);
            }
        }
        anyhow::bail!("the server closed its stdout without answering the call")
    })
    .await
    .context("no answer to the call within 30 s")??;
    Ok(answer)
}

/// Whether the server's descriptor `fd` is non-blocking (`O_NONBLOCK`, octal 4000, in
/// `/proc/PID/fdinfo`).
fn non_blocking(pid: u32, fd: u32) -> Result<bool> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))?;
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .context("no flags in fdinfo")?;
    Ok(u32::from_str_radix(flags.trim(), 8)? & 0o4000 != 0)
}

fn answer_text(answer: &Value) -> &str {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

/// The call is answered while the server's stdin and stdout are non-blocking (polled by
/// the runtime), and the server exits 0 once its stdin closes.
async fn answers_polled_and_exits_at_eof<W, R>(
    mut child: tokio::process::Child,
    mut to: W,
    from: R,
) -> Result<()>
where
    W: AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
{
    let answer = session(&mut to, from).await?;
    assert_eq!(answer_text(&answer), "fixed answer", "{answer}");
    let pid = child.id().context("pid")?;
    assert!(non_blocking(pid, 0)?, "stdin is read by a blocking thread");
    assert!(
        non_blocking(pid, 1)?,
        "stdout is written by a blocking thread"
    );
    drop(to);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
    assert!(status.success(), "{status}");
    Ok(())
}

#[tokio::test]
async fn a_server_on_pipes_answers_and_polls_them_instead_of_parking_a_thread_in_a_read()
-> Result<()> {
    let (mut child, _tmp) = server(Stdio::piped(), Stdio::piped(), Stdio::null())?;
    let (stdin, stdout) = (
        child.stdin.take().context("stdin")?,
        child.stdout.take().context("stdout")?,
    );
    answers_polled_and_exits_at_eof(child, stdin, stdout).await
}

#[tokio::test]
async fn a_server_on_socket_pairs_as_node_starts_it_answers_polls_them_and_exits_at_eof()
-> Result<()> {
    let (client_in, server_in) = UnixStream::pair()?;
    let (client_out, server_out) = UnixStream::pair()?;
    let (child, _tmp) = server(
        Stdio::from(OwnedFd::from(server_in)),
        Stdio::from(OwnedFd::from(server_out)),
        Stdio::null(),
    )?;
    client_in.set_nonblocking(true)?;
    client_out.set_nonblocking(true)?;
    let to = tokio::net::UnixStream::from_std(client_in)?;
    let from = tokio::net::UnixStream::from_std(client_out)?;
    answers_polled_and_exits_at_eof(child, to, from).await
}

#[tokio::test]
async fn a_stdout_that_is_also_stderr_stays_blocking_and_carries_the_answer_among_log_lines()
-> Result<()> {
    let (reader, writer) = std::io::pipe()?;
    let (mut child, _tmp) = server(
        Stdio::piped(),
        Stdio::from(writer.try_clone()?),
        Stdio::from(writer),
    )?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let from = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))?;
    let answer = session(&mut stdin, from).await?;
    assert_eq!(answer_text(&answer), "fixed answer", "{answer}");
    let pid = child.id().context("pid")?;
    assert!(
        !non_blocking(pid, 1)?,
        "stdout shares stderr's pipe and was made non-blocking: log lines could be lost"
    );
    assert!(!non_blocking(pid, 2)?, "stderr was made non-blocking");
    Ok(())
}

#[tokio::test]
async fn a_server_writing_to_a_file_leaves_every_answer_in_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("answers.jsonl");
    let (mut child, _tmp) = server(
        Stdio::piped(),
        Stdio::from(std::fs::File::create(&out)?),
        Stdio::null(),
    )?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let requests = [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
    ];
    for request in requests {
        stdin.write_all(format!("{request}\n").as_bytes()).await?;
    }
    stdin.flush().await?;
    let listed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if text.contains(r#""id":2"#) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .context("no tools/list answer in the file within 30 s")?;
    let answers: Vec<Value> = listed
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(answers.len(), 2, "{listed}");
    assert_eq!(answers[0]["result"]["serverInfo"]["name"], "2Bot");
    assert_eq!(answers[1]["result"]["tools"][0]["name"], "run_codex_prompt");
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
    assert!(status.success(), "{status}");
    Ok(())
}
