//! The shared state backend through the real binary: `TWOBOT_DATABASE_URL` pointing at a
//! throw-away PostgreSQL cluster (`common::postgres`, over its private unix socket).
//! What an operator sees (`--print-config`, `doctor`), a server that cannot reach its
//! database refusing to start, and two servers on one database acting as one service
//! for thread ownership and finished runs.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::doctor::Setup;
use crate::common::http::{http_client, spawn_http};
use crate::common::postgres;
use crate::common::{call, structured, text};

/// A plain connection to the test database, for what only the test may look at.
async fn raw(db: &postgres::Database) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// The URL with a password in it (the cluster trusts its socket, so any password works).
fn with_password(db: &postgres::Database) -> String {
    db.url()
        .replacen("postgres://twobot@", "postgres://twobot:hunter2@", 1)
}

/// `--print-config` names the backend and shows the URL with its password hidden, in
/// both places a URL carries one; `--help` never shows the variable's value; a URL that
/// is not PostgreSQL's stops the start naming the variable, not the password.
#[tokio::test]
async fn print_config_names_postgres_and_never_shows_the_database_password() -> Result<()> {
    let db = postgres::database();
    let url = format!("{}&password=hunter3", with_password(&db));
    let setup = Setup::healthy()?.with("TWOBOT_DATABASE_URL", url);
    let (code, out, err) = setup.run(&["--print-config"]).await?;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!out.contains("hunter"), "{out}");
    let shown = format!(
        "TWOBOT_DATABASE_URL=postgres://twobot:***@/{}?host={}&port={}&password=***  # environment, password redacted",
        db.name,
        db.cluster.socket_dir().display(),
        postgres::PORT
    );
    assert!(out.contains(&shown), "missing {shown:?} in:\n{out}");
    assert!(out.contains("\nstate: postgres\n"), "{out}");

    let (code, out, _) = setup.run(&["--help"]).await?;
    assert_eq!(code, Some(0));
    assert!(
        out.contains("TWOBOT_DATABASE_URL") && !out.contains("hunter"),
        "{out}"
    );

    let setup = setup.with("TWOBOT_DATABASE_URL", "mysql://bot:hunter2@db/x");
    let (code, out, err) = setup.run(&["--print-config"]).await?;
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        err.contains("TWOBOT_DATABASE_URL: \"mysql://bot:***@db/x\" not a PostgreSQL URL"),
        "{err}"
    );
    assert!(!err.contains("hunter"), "{err}");
    Ok(())
}

/// `doctor` connects and reads the schema version without changing it: a fresh
/// database, then one a server migrated, then one a newer 2Bot migrated, then one that
/// is not there.
#[tokio::test]
async fn doctor_reports_the_database_connection_and_its_schema_version() -> Result<()> {
    let db = postgres::database();
    let setup = Setup::healthy()?.with("TWOBOT_DATABASE_URL", with_password(&db));
    let shown = format!(
        "postgres://twobot:***@/{}?host={}&port={}",
        db.name,
        db.cluster.socket_dir().display(),
        postgres::PORT
    );

    let (code, out, err) = setup.run(&["doctor"]).await?;
    assert_eq!(code, Some(0), "{out}{err}");
    let version = twobot::state::postgres::SCHEMA_VERSION;
    let fresh = format!(
        "[ok  ] state store: {shown}: connected, no 2Bot schema yet (version {version} is created at the first start)"
    );
    assert!(out.contains(&fresh), "missing {fresh:?} in:\n{out}");
    assert!(!out.contains("hunter2"), "{out}");
    let tables: i64 = raw(&db)
        .await
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(tables, 0, "doctor changed nothing");

    twobot::state::PostgresStore::connect(&db.url()).await?;
    let (code, out, _) = setup.run(&["doctor"]).await?;
    assert_eq!(code, Some(0), "{out}");
    let current =
        format!("[ok  ] state store: {shown}: connected, schema version {version} (current)");
    assert!(out.contains(&current), "missing {current:?} in:\n{out}");

    raw(&db)
        .await
        .execute(
            "INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, 0)",
            &[&(version + 1)],
        )
        .await?;
    let (code, out, _) = setup.run(&["doctor"]).await?;
    assert_eq!(code, Some(1), "{out}");
    let newer = format!(
        "[FAIL] state store: {shown}: the state schema is at version {}, newer than this 2Bot knows ({version})",
        version + 1
    );
    assert!(out.contains(&newer), "missing {newer:?} in:\n{out}");

    let gone = tempfile::tempdir()?;
    let setup = setup.with(
        "TWOBOT_DATABASE_URL",
        format!(
            "postgres://twobot:hunter2@/x?host={}",
            gone.path().display()
        ),
    );
    let (code, out, _) = setup.run(&["doctor"]).await?;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "[FAIL] state store: cannot reach the state database: postgres://twobot:***@/x"
        ),
        "{out}"
    );
    assert!(!out.contains("hunter2"), "{out}");
    Ok(())
}

/// A server whose database is unreachable does not start (exit 2), and says why in one
/// line naming the variable, without the password.
#[tokio::test]
async fn a_server_whose_database_is_unreachable_refuses_to_start() -> Result<()> {
    let gone = tempfile::tempdir()?;
    let url = format!(
        "postgres://twobot:hunter2@/x?host={}&connect_timeout=2",
        gone.path().display()
    );
    let setup = Setup::healthy()?.with("TWOBOT_DATABASE_URL", url);
    let (code, out, err) = tokio::time::timeout(Duration::from_secs(60), setup.run(&[])).await??;
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        err.contains("error: TWOBOT_DATABASE_URL: the state store cannot be opened: cannot reach the state database: postgres://twobot:***@/x"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    Ok(())
}

/// Two servers on one database are one service for thread ownership: a thread Alice
/// started on the first is refused to Bob on the second and resumed by Alice there, and
/// both servers are registered instances with their heartbeats in the database.
#[tokio::test]
async fn a_thread_started_on_one_server_is_owned_on_another_sharing_the_database() -> Result<()> {
    let db = postgres::database();
    let url = with_password(&db);
    let env = [
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", "alice:tok-alice,bob:tok-bob"),
        ("TWOBOT_DATABASE_URL", url.as_str()),
    ];
    let first = spawn_http(&env).await?;
    let second = spawn_http(&env).await?;

    let alice_first = http_client(&first.url, Some("tok-alice")).await?;
    let started = call(
        &alice_first,
        json!({"prompt": "scenario:ok", "ephemeral": false}),
    )
    .await?;
    assert_eq!(started.is_error, Some(false), "{}", text(&started));
    let thread = structured(&started)["thread_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let client = raw(&db).await;
    let row = client
        .query_one(
            "SELECT owner, instance FROM threads WHERE thread_id = $1",
            &[&thread],
        )
        .await?;
    let (owner, holder): (String, String) = (row.get(0), row.get(1));
    assert!(!owner.is_empty() && !holder.is_empty(), "{owner} {holder}");
    let instances: Vec<String> = client
        .query("SELECT instance FROM instances ORDER BY started_ms", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(instances.len(), 2, "{instances:?}");
    assert!(instances.contains(&holder), "{holder} not in {instances:?}");

    let bob_second = http_client(&second.url, Some("tok-bob")).await?;
    let stolen = call(
        &bob_second,
        json!({"prompt": "scenario:ok", "thread_id": thread}),
    )
    .await?;
    assert_eq!(stolen.is_error, Some(true), "{}", text(&stolen));
    assert!(
        text(&stolen).contains("only your own threads"),
        "{}",
        text(&stolen)
    );

    let alice_second = http_client(&second.url, Some("tok-alice")).await?;
    let resumed = call(
        &alice_second,
        json!({"prompt": "scenario:ok", "thread_id": thread, "ephemeral": false}),
    )
    .await?;
    assert_eq!(resumed.is_error, Some(false), "{}", text(&resumed));
    assert_eq!(structured(&resumed)["thread_id"], thread.as_str());
    Ok(())
}

/// A background run that ended on one server is served by another on the same
/// database, with the same result, to its owner only.
#[tokio::test]
async fn a_run_finished_on_one_server_is_served_by_another_sharing_the_database() -> Result<()> {
    let db = postgres::database();
    let url = with_password(&db);
    let env = [
        ("TWOBOT_ENABLE_BACKGROUND_RUNS", "true"),
        ("TWOBOT_ENABLE_NO_AUTH", "false"),
        ("TWOBOT_AUTH_TOKENS", "alice:tok-alice,bob:tok-bob"),
        ("TWOBOT_DATABASE_URL", url.as_str()),
    ];
    let first = spawn_http(&env).await?;
    let second = spawn_http(&env).await?;

    let alice_first = http_client(&first.url, Some("tok-alice")).await?;
    let started = call(
        &alice_first,
        json!({"prompt": "scenario:ok", "background": true}),
    )
    .await?;
    let run_id = structured(&started)["run_id"].as_str().unwrap().to_owned();
    let done = get_run(&alice_first, json!({"run_id": run_id, "wait_sec": 30})).await?;
    assert_eq!(structured(&done)["status"], "completed", "{}", text(&done));

    // The row lands a moment after the caller saw the end (its writer is off the run's path).
    let client = raw(&db).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let row = client
            .query_opt("SELECT state FROM runs WHERE run_id = $1", &[&run_id])
            .await?;
        if row.is_some_and(|r| r.get::<_, String>(0) == "completed") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run {run_id} never stored as completed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let alice_second = http_client(&second.url, Some("tok-alice")).await?;
    let served = get_run(&alice_second, json!({"run_id": run_id})).await?;
    assert_eq!(served.is_error, Some(false), "{}", text(&served));
    let s = structured(&served);
    assert_eq!(s["status"], "completed", "{s}");
    assert_eq!(s["result"], structured(&done)["result"], "the same result");
    assert_eq!(text(&served), "fake answer");

    let bob_second = http_client(&second.url, Some("tok-bob")).await?;
    let hidden = get_run(&bob_second, json!({"run_id": run_id})).await?;
    assert_eq!(hidden.is_error, Some(true), "{}", text(&hidden));
    assert!(text(&hidden).contains("no run"), "{}", text(&hidden));
    Ok(())
}

async fn get_run(
    client: &rmcp::service::RunningService<rmcp::RoleClient, crate::common::Recorder>,
    args: serde_json::Value,
) -> Result<rmcp::model::CallToolResult> {
    let serde_json::Value::Object(map) = args else {
        anyhow::bail!("arguments must be an object")
    };
    Ok(client
        .call_tool(rmcp::model::CallToolRequestParams::new("get_codex_run").with_arguments(map))
        .await?)
}
