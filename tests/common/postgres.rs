//! A throw-away PostgreSQL cluster for the tests: Debian's `initdb` and `pg_ctl` on a
//! private unix socket (no TCP listener), shared by the tests of one run that overlap,
//! and a fresh database for each test.
//!
//! The cluster is real (the same server an operator runs), so the SQL, the migrations'
//! locking and the connection handling are tested against PostgreSQL itself. It is
//! started by the first test that asks and stopped (`pg_ctl stop -m immediate`) when the
//! last test holding it ends. PostgreSQL refuses to run as root, so under root (CI) its
//! programs run as the `postgres` user Debian's package creates, owning the directories.
//! [`tls_cluster`] starts one of a test's own that also listens on 127.0.0.1 with TLS,
//! its certificate issued for `localhost` by a CA made for it (openssl).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// What a test says when the programs are missing.
pub const NOT_INSTALLED: &str =
    "PostgreSQL is not installed: apt-get install postgresql (bash .ci/run installs it)";

/// The port named in the shared cluster's socket file (`.s.PGSQL.<port>`); nothing
/// listens on TCP there.
pub const PORT: u16 = 5432;

/// The cluster's superuser (trust authentication on the private socket).
pub const USER: &str = "twobot";

static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// A running cluster.
pub struct Cluster {
    /// Where `initdb`, `pg_ctl` and `createdb` are.
    bin: PathBuf,
    /// Holds `data/`, `sock/` and the server log.
    dir: tempfile::TempDir,
    /// Whether its programs run as the `postgres` user (we are root).
    as_postgres: bool,
    /// Its port: the socket file's name, and with TLS the TCP port on 127.0.0.1.
    pub port: u16,
    /// Whether `pg_ctl start` succeeded (so drop stops it).
    running: bool,
    /// How long `initdb` plus `pg_ctl start` took.
    pub started_in: Duration,
}

/// A fresh database on the shared cluster (which lives at least as long).
pub struct Database {
    pub cluster: Arc<Cluster>,
    pub name: String,
}

impl Database {
    /// A libpq URL for it over the unix socket (`sslmode` and the rest appended by callers).
    pub fn url(&self) -> String {
        format!(
            "postgres://{USER}@/{}?host={}&port={}",
            self.name,
            self.cluster.socket_dir().display(),
            self.cluster.port
        )
    }
}

/// A new, empty database, on the cluster the running tests share (started if none is).
/// Panics (failing the test) with [`NOT_INSTALLED`] when PostgreSQL is missing.
pub fn database() -> Database {
    database_on(cluster())
}

/// A new, empty database on `cluster`.
pub fn database_on(cluster: Arc<Cluster>) -> Database {
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let out = Command::new(cluster.bin.join("createdb"))
        .args(["-h"])
        .arg(cluster.socket_dir())
        .args(["-p", &cluster.port.to_string(), "-U", USER, &name])
        .output()
        .expect("run createdb");
    assert!(
        out.status.success(),
        "createdb {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Database { cluster, name }
}

/// The shared cluster, started now if no running test holds it.
pub fn cluster() -> Arc<Cluster> {
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(cluster) = shared.upgrade() {
        return cluster;
    }
    let cluster = Arc::new(Cluster::start(false).unwrap_or_else(|e| panic!("{e}")));
    eprintln!(
        "postgres test cluster started in {} ms",
        cluster.started_in.as_millis()
    );
    *shared = Arc::downgrade(&cluster);
    cluster
}

/// A cluster of the caller's own that also serves TLS on 127.0.0.1 (`cluster.port`),
/// with a certificate for `localhost` issued by the CA in the returned file.
pub fn tls_cluster() -> (Arc<Cluster>, PathBuf) {
    let cluster = Cluster::start(true).unwrap_or_else(|e| panic!("{e}"));
    let ca = cluster.dir.path().join("tls/ca.pem");
    (Arc::new(cluster), ca)
}

/// The directory holding `initdb`, `pg_ctl` and `createdb`: PATH first, then Debian's versioned
/// directories (newest first), which are not on PATH.
pub fn bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    debian.sort_by_key(|p| {
        let version = p
            .parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok());
        std::cmp::Reverse(version)
    });
    // A link on PATH (`/usr/local/bin/initdb`) stands for the directory it points into,
    // where the other programs (`createdb`) are.
    on_path
        .into_iter()
        .chain(debian)
        .filter_map(|dir| dir.join("initdb").canonicalize().ok())
        .filter_map(|initdb| initdb.parent().map(PathBuf::from))
        .find(|dir| ["pg_ctl", "createdb"].iter().all(|p| dir.join(p).is_file()))
}

/// A loopback port no socket holds now. Another process may take it before PostgreSQL
/// binds it; [`Cluster::start`] then starts again on another.
fn unused_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("a free port: {e}"))
}

impl Cluster {
    fn start(tls: bool) -> Result<Self, String> {
        let begun = Instant::now();
        let bin = bin_dir().ok_or_else(|| NOT_INSTALLED.to_owned())?;
        let dir = tempfile::Builder::new()
            .prefix("2bot-pg")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        std::fs::create_dir(dir.path().join("sock")).map_err(|e| format!("socket dir: {e}"))?;
        let port = if tls { unused_port()? } else { PORT };
        let mut extra = String::from("-c listen_addresses=''");
        if tls {
            let tls_dir = dir.path().join("tls");
            make_certificates(&tls_dir)?;
            extra = format!(
                "-c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={0}/server.pem -c ssl_key_file={0}/server.key",
                tls_dir.display()
            );
        }
        let as_postgres = nix::unistd::geteuid().is_root();
        if as_postgres {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .ok_or_else(|| {
                    format!("running as root and there is no `postgres` user to run PostgreSQL as; {NOT_INSTALLED}")
                })?;
            let owned = ["", "sock", "tls", "tls/server.key", "tls/server.pem"];
            for path in owned
                .iter()
                .map(|p| dir.path().join(p))
                .filter(|p| p.exists())
            {
                nix::unistd::chown(&path, Some(user.uid), Some(user.gid))
                    .map_err(|e| format!("chown {}: {e}", path.display()))?;
            }
        }
        let mut cluster = Self {
            bin,
            dir,
            as_postgres,
            port,
            running: false,
            started_in: Duration::ZERO,
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        )?;
        let log = cluster.dir.path().join("server.log").display().to_string();
        // PostgreSQL binds its TCP port itself and cannot be handed a socket: a port
        // another process took since it was picked fails the start with "could not
        // bind", and the start is tried again on another (the socket-only cluster has
        // nothing to race for).
        let mut attempts = 0;
        loop {
            let options = format!(
                "-k {} -p {} {extra} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
                cluster.socket_dir().display(),
                cluster.port
            );
            let started = cluster.run(
                "pg_ctl",
                &[
                    "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options, "start",
                ],
            );
            attempts += 1;
            match started {
                Err(_) if tls && attempts < 5 && cluster.log().contains("could not bind") => {
                    cluster.port = unused_port()?;
                }
                other => break other?,
            }
        }
        cluster.running = true;
        cluster.started_in = begun.elapsed();
        Ok(cluster)
    }

    /// The private directory holding the server's socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// The server's log (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Run one of PostgreSQL's programs, as `postgres` when we are root.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&path);
            cmd
        } else {
            Command::new(&path)
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed ({}): {}{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            ))
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        let data = self.data_dir();
        if let Err(e) = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]) {
            eprintln!("stopping the test cluster: {e}");
        }
    }
}

/// A CA, and a server key and certificate for `localhost` that it signed, in `dir`
/// (`ca.pem`, `server.key` 0600, `server.pem`).
fn make_certificates(dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [&[&str]; 3] = [
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=2bot test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat(),
        &[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    ];
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| format!("ext.cnf: {e}"))?;
    for args in steps {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("openssl (apt-get install openssl): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .map_err(|e| format!("server.key: {e}"))
}
