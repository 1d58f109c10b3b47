//! Several 2Bot instances as one service, for real: a throw-away PostgreSQL database
//! (`common::postgres`), N `2bot-mcp` processes sharing it (each with its internal
//! address and the shared instance secret), and nginx in front with a plain round-robin
//! upstream (no sticky sessions). Calls go through the official Python MCP SDK
//! (`tests/clients/python_cluster_client.py`), one stateless client per call, so the
//! balancer may send each to any instance.
//!
//! Where callers' tokens come from is a [`TokenSource`]: static bearer tokens today; the
//! built-in authorization server's sign-in can take its place without touching the
//! tests that use it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use super::http::{HttpServer, loopback_listener, spawn_http_on};
use super::nginx::Nginx;
use super::postgres;
use super::programs::{python_sdk, repo};

/// The secret the test's instances share (32+ bytes).
pub const SECRET: &str = "test-instance-secret-0123456789-abcdefghij";

/// Where callers' bearer tokens come from.
pub trait TokenSource {
    /// What every instance needs to accept them.
    fn server_env(&self) -> Vec<(String, String)>;
    /// A token for `who`.
    fn token(&self, who: &str) -> Result<String>;
}

/// `TWOBOT_AUTH_TOKENS`: `tok-<name>` for each name.
pub struct StaticTokens(pub &'static [&'static str]);

impl TokenSource for StaticTokens {
    fn server_env(&self) -> Vec<(String, String)> {
        let tokens: Vec<String> = self.0.iter().map(|n| format!("{n}:tok-{n}")).collect();
        vec![
            ("TWOBOT_ENABLE_NO_AUTH".into(), "false".into()),
            ("TWOBOT_AUTH_TOKENS".into(), tokens.join(",")),
        ]
    }

    fn token(&self, who: &str) -> Result<String> {
        ensure!(self.0.contains(&who), "no static token for {who}");
        Ok(format!("tok-{who}"))
    }
}

/// One instance: its process and the port its internal address names.
pub struct Member {
    pub server: HttpServer,
    pub port: u16,
}

impl Member {
    /// Its internal address (`TWOBOT_INSTANCE_URL`).
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its own MCP endpoint, bypassing the balancer.
    pub fn mcp(&self) -> String {
        format!("{}/mcp", self.base())
    }
}

/// N instances on one database.
pub struct Cluster {
    pub db: postgres::Database,
    pub members: Vec<Member>,
    env: Vec<(String, String)>,
}

impl Cluster {
    /// Start `n` instances on a fresh database, each with `extra` settings.
    pub async fn start(n: usize, tokens: &dyn TokenSource, extra: &[(&str, &str)]) -> Result<Self> {
        let db = postgres::database();
        let mut env: Vec<(String, String)> = vec![
            ("TWOBOT_DATABASE_URL".into(), db.url()),
            ("TWOBOT_INSTANCE_SECRET".into(), SECRET.into()),
            ("TWOBOT_ENABLE_BACKGROUND_RUNS".into(), "true".into()),
        ];
        env.extend(tokens.server_env());
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut cluster = Self {
            db,
            members: Vec::new(),
            env,
        };
        for _ in 0..n {
            let member = cluster.member().await?;
            cluster.members.push(member);
        }
        Ok(cluster)
    }

    /// Start `n` instances as if on `n` hosts: each with a Codex home of its own under
    /// `homes`, so a thread one of them started can only be resumed where it lives.
    pub async fn start_apart(
        n: usize,
        tokens: &dyn TokenSource,
        homes: &std::path::Path,
    ) -> Result<Self> {
        let mut cluster = Self::start(0, tokens, &[]).await?;
        for m in 0..n {
            let home = homes.join(format!("codex-home-{m}"));
            std::fs::create_dir(&home)?;
            let home = home.display().to_string();
            let member = cluster.member_with(&[("CODEX_HOME", &home)]).await?;
            cluster.members.push(member);
        }
        Ok(cluster)
    }

    /// Start an instance with the cluster's settings, on a port of its own.
    pub async fn member(&self) -> Result<Member> {
        self.member_with(&[]).await
    }

    /// Start an instance with the cluster's settings and `extra` of its own.
    pub async fn member_with(&self, extra: &[(&str, &str)]) -> Result<Member> {
        let (listener, _) = loopback_listener()?;
        self.member_on(listener, extra).await
    }

    /// Start an instance on `port` again (the address a killed instance had).
    pub async fn member_at(&self, port: u16) -> Result<Member> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("port {port} is taken again"))?;
        self.member_on(listener, &[]).await
    }

    /// An instance serving `listener` (its address is the instance URL, known before
    /// it starts: the socket is handed over, never released in between).
    async fn member_on(
        &self,
        listener: std::net::TcpListener,
        extra: &[(&str, &str)],
    ) -> Result<Member> {
        let port = listener.local_addr()?.port();
        let url = format!("http://127.0.0.1:{port}");
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.push(("TWOBOT_INSTANCE_URL", url.as_str()));
        env.extend_from_slice(extra);
        let server = spawn_http_on(listener, &env).await?;
        Ok(Member { server, port })
    }

    /// A plain connection to the shared database (to see what the store holds).
    pub async fn sql(&self) -> Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.db.url(), tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Which member holds run `run_id` (from its row and the holder's instance row).
    pub async fn holder(&self, run_id: &str) -> Result<usize> {
        let sql = self.sql().await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let row = sql
                .query_opt(
                    "SELECT i.url FROM runs r JOIN instances i USING (instance) WHERE r.run_id = $1",
                    &[&run_id],
                )
                .await?;
            if let Some(row) = row {
                let url: Option<String> = row.get(0);
                let url = url.context("the holder has no instance URL")?;
                return self
                    .members
                    .iter()
                    .position(|m| m.base() == url)
                    .with_context(|| format!("no member at {url}"));
            }
            ensure!(
                Instant::now() < deadline,
                "run {run_id} has no row with a live holder"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// nginx in front of the instances, on a socket the test holds from before it starts.
pub struct Balancer {
    _nginx: Nginx,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Balancer {
    /// The service's MCP endpoint.
    pub fn mcp(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// nginx in front of `ports` (Debian's package; the test fails naming it if absent).
    pub async fn start(ports: &[u16]) -> Result<Self> {
        Self::start_on(loopback_listener()?.0, ports).await
    }

    /// [`Self::start`] on `listener`, whose address is known before the instances start
    /// (the built-in authorization server's issuer is the balancer's address).
    pub async fn start_on(listener: std::net::TcpListener, ports: &[u16]) -> Result<Self> {
        let port = listener.local_addr()?.port();
        let dir = tempfile::tempdir()?;
        let tmp = dir.path().display().to_string();
        let servers: String = ports
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p};\n"))
            .collect();
        // Round robin is nginx's default; nothing pins a client to an instance.
        let http = format!(
            "  access_log {tmp}/access.log;\n  upstream twobot {{\n{servers}  }}\n  \
             server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://twobot;\n      \
             proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_set_header Host $http_host;\n      \
             proxy_buffering off;\n      proxy_read_timeout 120s;\n    }}\n  }}\n"
        );
        let nginx = Nginx::start(dir.path(), &http, vec![listener]).await?;
        Ok(Self {
            _nginx: nginx,
            port,
            _dir: dir,
        })
    }
}

/// A caller of the service through the official Python SDK.
pub struct Sdk {
    python: PathBuf,
    script: PathBuf,
}

impl Sdk {
    /// The SDK's interpreter (the test fails naming the install command if absent).
    pub fn new() -> Result<Self> {
        Ok(Self {
            python: python_sdk()?,
            script: repo("tests/clients/python_cluster_client.py"),
        })
    }

    /// Call `tool` at `url` with `token`; `{isError, text, structuredContent}`.
    pub async fn call(&self, url: &str, token: &str, tool: &str, args: Value) -> Result<Value> {
        let out = tokio::process::Command::new(&self.python)
            .arg(&self.script)
            .args([url, tool, &args.to_string()])
            .env("TWOBOT_TEST_TOKEN", token)
            .kill_on_drop(true)
            .output()
            .await?;
        ensure!(
            out.status.success(),
            "{tool} at {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("{tool}: {}", String::from_utf8_lossy(&out.stdout)))
    }
}

/// The log of a member, for assertions and failure messages.
pub fn log_of(server: &HttpServer) -> String {
    std::fs::read_to_string(&server.log).unwrap_or_default()
}

/// The one run directory the fake Codex created under `record` (each member records
/// into its own directory, so where it appears names the instance that ran it).
pub fn run_dirs(record: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(record)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}
