//! `2bot-mcp oauth list`, `oauth revoke <client|all>` and `oauth delete-client`, run as an operator
//! would: the real binary on a state directory seeded through the library's store, with
//! the database checked afterwards.

use std::path::Path;

use anyhow::{Result, ensure};
use twobot::state::oauth::{
    AuthMethod, Client, ClientKind, Exchange, NewCode, NewRefresh, Rotation,
};
use twobot::state::{SqliteStore, StateStore};

type Store = std::sync::Arc<dyn StateStore>;

/// The state store in `state` (`state.db`), as the server opens it.
fn open(state: &Path) -> Result<Store> {
    Ok(std::sync::Arc::new(SqliteStore::open(state)?))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Run `2bot-mcp oauth <args>` with only TWOBOT_STATE_DIR (and PATH) set.
async fn oauth(state: &Path, args: &[&str]) -> Result<(Option<i32>, String, String)> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_2bot-mcp"))
        .arg("oauth")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TWOBOT_STATE_DIR", state)
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn client(id: &str, kind: ClientKind, name: &str, redirect: &str, at: i64) -> Client {
    Client {
        id: id.into(),
        kind,
        name: name.into(),
        redirect_uris: vec![redirect.into()],
        auth_method: AuthMethod::None_,
        secret_hash: None,
        created_at: at,
    }
}

/// A sign-in as the authorization endpoint and the token endpoint record it: a code,
/// then its exchange into grant `gid` with refresh token `rt`.
async fn sign_in(store: &Store, client_id: &str, gid: &str, rt: &str, at: i64) -> Result<()> {
    let code = format!("code-{gid}");
    store
        .insert_code(&NewCode {
            code_hash: code.clone(),
            client_id: client_id.into(),
            redirect_uri: "https://chatgpt.com/cb".into(),
            code_challenge: "challenge".into(),
            resource: "https://bot.example/mcp".into(),
            scope: "codex:run".into(),
            expires_at: at + 60,
        })
        .await?;
    let refresh = NewRefresh {
        token_hash: rt.into(),
        issued_at: at,
        expires_at: at + 30 * 86_400,
    };
    let out = store.exchange_code(&code, at, gid, &refresh).await?;
    ensure!(matches!(out, Exchange::Issued(_)), "{out:?}");
    Ok(())
}

/// ChatGPT (DCR) with one live and one revoked grant, Claude (CIMD) with one live grant.
async fn seeded(state: &Path) -> Result<Store> {
    let at = now() - 120;
    let store = open(state)?;
    let chatgpt = client(
        "c_chatgpt0000000000000000",
        ClientKind::Dcr,
        "ChatGPT",
        "https://chatgpt.com/connector_platform_oauth_redirect",
        at,
    );
    store.insert_client(&chatgpt).await?;
    sign_in(&store, &chatgpt.id, "g_old", "rt_old", at).await?;
    store
        .revoke_refresh_family("rt_old", None, "test", at)
        .await?;
    sign_in(&store, &chatgpt.id, "g_chatgpt", "rt_chatgpt", at).await?;
    let claude = client(
        "https://claude.ai/oauth/mcp-oauth-client-metadata",
        ClientKind::Cimd,
        "Claude",
        "https://claude.ai/api/mcp/auth_callback",
        at + 1,
    );
    store.upsert_cimd_client(&claude).await?;
    sign_in(&store, &claude.id, "g_claude", "rt_claude", at + 1).await?;
    Ok(store)
}

#[tokio::test]
async fn oauth_list_shows_each_client_with_its_live_grants_and_revoke_ends_them() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = seeded(dir.path()).await?;

    let (code, out, err) = oauth(dir.path(), &["list"]).await?;
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("CLIENT") && lines[0].contains("REGISTERED (UTC)"),
        "{out}"
    );
    let chatgpt = lines
        .iter()
        .position(|l| l.starts_with("c_chatgpt"))
        .unwrap_or(0);
    let claude = lines
        .iter()
        .position(|l| l.starts_with("https://claude.ai/"))
        .unwrap_or(0);
    assert!(
        0 < chatgpt && chatgpt < claude,
        "ChatGPT first, then Claude:\n{out}"
    );
    for (line, words) in [
        (lines[chatgpt], ["dcr", "ChatGPT", "chatgpt.com"]),
        (lines[claude], ["cimd", "Claude", "claude.ai"]),
    ] {
        for word in words {
            assert!(line.contains(word), "{word:?} missing from {line:?}");
        }
    }
    let grant_of = |at: usize| lines.get(at + 2).copied().unwrap_or_default();
    assert!(
        grant_of(chatgpt).trim_start().starts_with("g_chatgpt"),
        "{out}"
    );
    assert!(grant_of(chatgpt).contains("codex:run"), "{out}");
    assert!(
        grant_of(claude).trim_start().starts_with("g_claude"),
        "{out}"
    );
    assert!(
        !out.contains("g_old"),
        "a revoked grant is not live:\n{out}"
    );
    assert!(
        lines[claude].starts_with("https://claude.ai/oauth/mcp-oauth-client-metadata "),
        "a long client id is shown whole, to be copied into `oauth revoke`:\n{out}"
    );
    assert!(out.ends_with("2 client(s), 2 live grant(s)\n"), "{out}");

    let (code, out, err) = oauth(dir.path(), &["revoke", "c_chatgpt0000000000000000"]).await?;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("revoked 1 grant(s) of client c_chatgpt0000000000000000 (ChatGPT)"),
        "{out}"
    );
    assert!(store.grant_revoked("g_chatgpt").await?);
    assert!(
        !store.grant_revoked("g_claude").await?,
        "another client's grant stays"
    );
    let next = NewRefresh {
        token_hash: "rt_next".into(),
        issued_at: now(),
        expires_at: now() + 60,
    };
    assert_eq!(
        store
            .rotate_refresh("rt_chatgpt", "c_chatgpt0000000000000000", now(), &next)
            .await?,
        Rotation::Revoked,
        "the revoked grant's refresh token stops working at once"
    );
    let (_, out, _) = oauth(dir.path(), &["list"]).await?;
    assert!(
        !out.contains("g_chatgpt") && out.contains("(no live grants)"),
        "{out}"
    );

    let (code, out, err) = oauth(dir.path(), &["revoke", "all"]).await?;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("revoked 1 grant(s) of all clients"),
        "{out}"
    );
    assert!(store.grant_revoked("g_claude").await?);
    let (code, out, _) = oauth(dir.path(), &["revoke", "all"]).await?;
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "no live grant of all clients: nothing to revoke\n")
    );
    Ok(())
}

#[tokio::test]
async fn oauth_revoke_of_an_unknown_client_fails_and_changes_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = seeded(dir.path()).await?;
    let (code, out, err) = oauth(dir.path(), &["revoke", "c_nobody"]).await?;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        err.starts_with("error: oauth revoke: no client \"c_nobody\" in ")
            && err.contains("oauth list"),
        "{err}"
    );
    assert!(!store.grant_revoked("g_chatgpt").await? && !store.grant_revoked("g_claude").await?);
    Ok(())
}

/// `oauth delete-client` removes one client and its grants (the other client keeps its
/// own); an unknown id fails and changes nothing (issue 19, point 6).
#[tokio::test]
async fn oauth_delete_client_removes_one_client_and_its_grants() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = seeded(dir.path()).await?;
    let claude = "https://claude.ai/oauth/mcp-oauth-client-metadata";
    let (code, out, err) = oauth(dir.path(), &["delete-client", claude]).await?;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.starts_with(&format!("deleted client {claude} (Claude) with its grants")),
        "{out}"
    );
    assert!(store.client(claude).await?.is_none());
    assert!(store.grant_revoked("g_claude").await?, "its grant is gone");
    assert!(
        !store.grant_revoked("g_chatgpt").await?,
        "the other client's grant"
    );
    let (_, listed, _) = oauth(dir.path(), &["list"]).await?;
    assert!(
        !listed.contains(claude) && listed.contains("ChatGPT"),
        "{listed}"
    );

    let (code, out, err) = oauth(dir.path(), &["delete-client", claude]).await?;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        err.starts_with(&format!(
            "error: oauth delete-client: no client \"{claude}\" in "
        )),
        "{err}"
    );
    assert!(store.client("c_chatgpt0000000000000000").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn oauth_commands_on_a_directory_without_state_say_so_and_create_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let shown = dir.path().display();
    let (code, out, _) = oauth(dir.path(), &["list"]).await?;
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        format!("no built-in authorization server state in {shown}\n")
    );
    let (code, _, err) = oauth(dir.path(), &["revoke", "all"]).await?;
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        format!("error: oauth revoke: no built-in authorization server state in {shown}\n")
    );
    assert_eq!(
        std::fs::read_dir(dir.path())?.count(),
        0,
        "nothing was created"
    );

    open(dir.path())?;
    let (code, out, _) = oauth(dir.path(), &["list"]).await?;
    assert_eq!((code, out.as_str()), (Some(0), "no clients\n"));
    Ok(())
}

#[tokio::test]
async fn a_client_name_with_terminal_escapes_is_listed_harmless() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = open(dir.path())?;
    store
        .insert_client(&client(
            "c_evil",
            ClientKind::Dcr,
            "Evil\x1b]0;pwned\x07\x1b[2J\u{202e}",
            "http://127.0.0.1:9/cb",
            now(),
        ))
        .await?;
    let (code, out, _) = oauth(dir.path(), &["list"]).await?;
    assert_eq!(code, Some(0));
    assert!(
        !out.contains('\x1b') && !out.contains('\x07') && !out.contains('\u{202e}'),
        "{out:?}"
    );
    assert!(out.contains("Evil\\u{1b}]0;pwned"), "{out}");
    Ok(())
}
