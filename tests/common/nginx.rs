//! nginx for the tests, serving on sockets the test already holds.
//!
//! Why held sockets: a port picked by binding and releasing it can be taken by another
//! process before nginx binds it, and the test then fails, or talks to that process.
//! nginx takes listening sockets from its parent as it does in a binary upgrade: the
//! descriptors are named in the `NGINX` environment variable, and a `listen` of the
//! same address uses the inherited socket instead of binding a new one. The port is
//! ours from before nginx starts to its end. nginx keeps inherited sockets only with its
//! master process (alone, it closes them), so it runs with one worker, in a process
//! group of its own that the drop kills whole.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use command_fds::{CommandFdExt, FdMapping};

use super::programs::{APT_NGINX, require};

/// A running nginx; its master and worker are killed when dropped.
pub struct Nginx {
    child: tokio::process::Child,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.start_kill();
    }
}

impl Nginx {
    /// nginx with `http_block` (the inside of `http { }`) in `dir` (its pid file, logs and
    /// temp paths go there), serving `listeners`, which its `listen` lines name by their
    /// addresses. Fails naming the install command when nginx is absent.
    pub async fn start(dir: &Path, http_block: &str, listeners: Vec<TcpListener>) -> Result<Self> {
        let nginx = require(&["nginx", "/usr/sbin/nginx"], "nginx", APT_NGINX)?;
        let tmp = dir.display();
        let conf = format!(
            "daemon off;\nworker_processes 1;\nuser root;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log notice;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  client_body_temp_path {tmp}/body;\n  proxy_temp_path {tmp}/proxy;\n  \
             fastcgi_temp_path {tmp}/fastcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n\
             {http_block}\n}}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let mut fds = Vec::new();
        let mut names = String::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let child_fd = 3 + i32::try_from(i)?;
            names.push_str(&format!("{child_fd};"));
            fds.push(FdMapping {
                parent_fd: listener.into(),
                child_fd,
            });
        }
        let mut command = tokio::process::Command::new(nginx);
        command
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .env("NGINX", names)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log"))?)
            .kill_on_drop(true)
            .process_group(0)
            .fd_mappings(fds)?;
        let child = command.spawn().context("start nginx")?;
        let mut nginx = Self {
            child,
            dir: dir.to_owned(),
        };
        nginx.ready().await?;
        Ok(nginx)
    }

    /// nginx writes its pid file once its configuration is loaded and its sockets are
    /// set up; a connection made before then would wait in the held socket's backlog,
    /// but an nginx that refused its configuration would never take it.
    async fn ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.dir.join("nginx.pid").exists() {
            if let Some(status) = self.child.try_wait()? {
                bail!("nginx exited ({status}): {}", self.logs());
            }
            if Instant::now() > deadline {
                bail!("nginx did not start in 10 s: {}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let log = self.logs();
        if !log.contains("using inherited sockets") {
            bail!("nginx did not take the test's sockets: {log}");
        }
        Ok(())
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }
}
