//! A cwd on a file system that never answers (a network mount whose server went away)
//! holds up only the calls that name it: the policy check that resolves it waits on
//! tokio's blocking pool, never on a runtime thread, so everything else is answered
//! meanwhile, and the stuck calls end with a reason once the file system fails.
//!
//! The file system is FUSE with no server: the test opens `/dev/fuse`, mounts it, and
//! never reads the kernel's requests, so every lookup beneath the mount waits until the
//! test closes the device, as a lookup on a hard NFS mount waits for its server.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use crate::common::http::*;
use crate::common::programs::require_root;
use crate::common::*;

/// A FUSE mount whose server never answers; unmounted when dropped.
struct HungMount {
    path: PathBuf,
    device: Option<File>,
}

impl HungMount {
    fn at(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path)?;
        let device = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .context("/dev/fuse (the kernel's FUSE support)")?;
        let options = format!(
            "fd={},rootmode=40000,user_id=0,group_id=0",
            device.as_raw_fd()
        );
        nix::mount::mount(
            Some("2bot-hung"),
            path,
            Some("fuse"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some(options.as_str()),
        )
        .context("mount a FUSE file system")?;
        Ok(Self {
            path: path.to_owned(),
            device: Some(device),
        })
    }

    /// The server "comes back" failing: closing the device aborts the connection, and
    /// every waiting request fails (ENOTCONN).
    fn fail(&mut self) {
        self.device = None;
    }
}

impl Drop for HungMount {
    fn drop(&mut self) {
        self.fail();
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Calls naming a cwd on a hung mount wait; tools/list, /healthz and a run elsewhere are
/// answered meanwhile (three stuck checks are more than the runtime's two threads on the
/// machines this runs on, so a check on a runtime thread fails this test); once the
/// mount fails, each stuck call ends with a refusal that names its cwd.
#[tokio::test]
async fn a_cwd_on_a_hung_mount_holds_up_only_the_calls_that_name_it() -> Result<()> {
    require_root("mounting a FUSE file system")?;
    let server = spawn_http(&[]).await?;
    let root = server._tmp.path().canonicalize()?.join("root");
    let mut mount = HungMount::at(&root.join("hung"))?;
    let stuck_cwd = root.join("hung/project");

    // Every client is connected first: once checks wait on runtime threads, nothing
    // more would be answered, and the test would wait instead of failing.
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(http_client(&server.url, None).await?);
    }
    let client = http_client(&server.url, None).await?;
    let mut stuck = Vec::new();
    for client in clients {
        let cwd = stuck_cwd.display().to_string();
        stuck.push(tokio::spawn(async move {
            let result = call(&client, json!({"prompt": "scenario:ok", "cwd": cwd})).await;
            let _ = client.cancel().await;
            result
        }));
    }
    // Long enough for the three to reach their check (each has its client's session).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        stuck.iter().all(|call| !call.is_finished()),
        "a call on the hung mount returned before the mount failed"
    );

    let within = Duration::from_secs(5);
    let health = tokio::time::timeout(within, reqwest::get(format!("{}/healthz", server.base)))
        .await
        .context("/healthz waited on the hung mount")??;
    assert_eq!(health.status(), 200);
    let tools = tokio::time::timeout(within, client.list_all_tools())
        .await
        .context("tools/list waited on the hung mount")??;
    assert!(tools.iter().any(|t| t.name == "run_codex_prompt"));
    let elsewhere = tokio::time::timeout(within, call(&client, json!({"prompt": "scenario:ok"})))
        .await
        .context("a run elsewhere waited on the hung mount")??;
    assert_eq!(elsewhere.is_error, Some(false), "{}", text(&elsewhere));
    assert!(
        stuck.iter().all(|call| !call.is_finished()),
        "a call on the hung mount returned before the mount failed"
    );

    mount.fail();
    for call in stuck {
        let result = tokio::time::timeout(within, call)
            .await
            .context("a stuck call did not end once the mount failed")???;
        assert_eq!(result.is_error, Some(true), "{}", text(&result));
        let said = text(&result);
        assert!(
            said.contains("cwd") && said.contains(&stuck_cwd.display().to_string()),
            "the refusal does not name the cwd: {said}"
        );
    }
    client.cancel().await?;
    Ok(())
}
