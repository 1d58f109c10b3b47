//! Harness for Client ID Metadata Documents: a real HTTPS server on loopback
//! (tests/oauth/cimd_server.mjs under node) serving the documents a test gives, with a
//! certificate from a test CA made here with the openssl CLI. Point 2Bot at the CA with
//! `SSL_CERT_FILE` (the real binary) or `CimdFetcher::with_root_pem` (in process).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

/// A running document server.
pub struct CimdServer {
    /// `https://127.0.0.1:PORT`
    pub base: String,
    /// The port, for `https://localhost:PORT/…` ids.
    pub port: u16,
    /// The test CA's certificate (PEM): what `SSL_CERT_FILE` should name.
    pub ca_file: PathBuf,
    /// Every request the server received, as `METHOD PATH`.
    pub requests: Arc<Mutex<Vec<String>>>,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl CimdServer {
    /// `base` + `path`: the client id of the document served at `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The test CA's certificate (PEM).
    pub fn ca_pem(&self) -> Result<Vec<u8>> {
        std::fs::read(&self.ca_file).context("reading the test CA")
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Start a document server serving `docs` (URL path → JSON; every `{base}` inside is
/// replaced with the origin the client asked for, e.g. `"client_id": "{base}/doc"`).
pub async fn cimd_server(docs: &[(&str, Value)]) -> Result<CimdServer> {
    let dir = tempfile::tempdir()?;
    let pki = dir.path().join("pki");
    let root = dir.path().join("docs");
    std::fs::create_dir_all(&pki)?;
    std::fs::create_dir_all(&root)?;
    for (path, doc) in docs {
        let rel = path.trim_start_matches('/');
        ensure!(
            !rel.is_empty() && !rel.split('/').any(|s| s == ".." || s == "."),
            "document path {path:?} must be a plain path like /doc"
        );
        let file = root.join(rel);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, serde_json::to_vec_pretty(doc)?)?;
    }
    make_pki(&pki)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oauth/cimd_server.mjs");
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .env("CIMD_DOCS_DIR", &root)
        .env("CIMD_CERT", pki.join("leaf-chain.pem"))
        .env("CIMD_KEY", pki.join("leaf.key"))
        .env("CIMD_PORT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting node (Node.js must be on PATH)")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("the document server printed no listening line within 30 s")??
        .context("the document server exited")?;
    let base = line
        .strip_prefix("listening ")
        .with_context(|| format!("unexpected first line {line:?}"))?
        .to_owned();
    let port = base.rsplit(':').next().unwrap_or_default().parse()?;
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    // Keep stdout drained so the server never blocks on a full pipe.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(request) = line.strip_prefix("request ") {
                seen.lock().unwrap().push(request.to_owned());
            }
        }
    });
    Ok(CimdServer {
        base,
        port,
        ca_file: pki.join("ca.pem"),
        requests,
        _child: child,
        _dir: dir,
    })
}

/// A P-256 test CA and a leaf for 127.0.0.1, ::1 and localhost signed by it.
fn make_pki(dir: &Path) -> Result<()> {
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n\
         basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\n",
    )?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=2Bot CIMD test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    )?;
    openssl(
        dir,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    )?;
    let chain = [
        std::fs::read(dir.join("leaf.pem"))?,
        std::fs::read(dir.join("ca.pem"))?,
    ]
    .concat();
    std::fs::write(dir.join("leaf-chain.pem"), chain)?;
    Ok(())
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("running openssl (the openssl CLI must be on PATH)")?;
    ensure!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
