//! `2bot-mcp`: parse configuration, set up logging, serve the chosen transport.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use twobot::config::{Cli, Command, Config, Transport};

/// The binary's own log target: the library's name, not the binary's (`2bot_mcp`), so a
/// filter written for 2Bot (`TWOBOT_LOG_LEVEL=twobot=debug`) keeps its "listening" and
/// "stopped" lines and its errors.
const LOG_TARGET: &str = "twobot";

fn main() -> ExitCode {
    // First thing, before any secret is read: not dumpable, so a same-user process (a
    // command Codex runs) can neither read /proc/<pid>/environ or /mem nor ptrace us.
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("error: cannot make the process non-dumpable (PR_SET_DUMPABLE): {e}");
        return ExitCode::from(2);
    }
    // The run supervisor, a hidden mode the runner starts instead of Codex (not in --help).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == twobot::runner::supervise::SUBCOMMAND)
    {
        return twobot::runner::supervise::main(args.get(2..).unwrap_or_default());
    }
    // The image reader, a hidden mode the runner starts as Codex's user (not in --help).
    if args
        .get(1)
        .is_some_and(|a| a == twobot::runner::image_reader::SUBCOMMAND)
    {
        return twobot::runner::image_reader::reader_main(args.get(2..).unwrap_or_default());
    }
    let (cli, matches) = Cli::parse_with_matches_or_exit();
    // The oauth subcommands need only the state store, not a configuration that serves.
    if let Some(Command::Oauth(command)) = &cli.command {
        let state_dir = cli
            .state_dir
            .clone()
            .or_else(twobot::config::default_state_dir);
        let database_url = cli.database_url.clone().filter(|u| !u.is_empty());
        let target = twobot::cli::oauth::Target {
            state_dir: state_dir.as_deref(),
            database_url: database_url.as_deref(),
        };
        return twobot::cli::oauth::run(command, target);
    }
    if cli.command == Some(Command::Doctor) {
        return twobot::cli::doctor::main(cli);
    }
    let print_config = cli.print_config;
    let codex_user = cli.codex_user.clone();
    let mut config = match Config::load(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Every run goes through the supervisor (this very binary), so nothing outlives it;
    // the cwd is opened beneath these roots right before the spawn.
    let roots = config.policy.allowed_roots.clone();
    if let Err(e) = config.runner.for_this_binary(roots, codex_user.as_deref()) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if print_config {
        print!("{}", twobot::cli::print_config::render(&matches, &config));
        return ExitCode::SUCCESS;
    }
    // First, while this is the only thread: reading the passed socket clears LISTEN_FDS.
    let inherited = match config.transport {
        Transport::Http => match twobot::http::listen::inherited() {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        Transport::Stdio => None,
    };
    let not_isolated = match isolate_runs(&mut config) {
        Ok(reason) => reason,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Still the only thread: fork the run spawner now, before the runtime or the log
    // exporter starts one (a fork of a threaded process may only exec).
    let spawner = twobot::runner::spawner::start().map(std::sync::Arc::new);
    if let Ok(spawner) = &spawner {
        config.runner.spawner = Some(spawner.clone());
    }
    let telemetry = match twobot::telemetry::init(
        &config.log_filter,
        config.log_format == twobot::config::LogFormat::Json,
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if telemetry.exporting() {
        tracing::info!(target: LOG_TARGET, "exporting spans over OTLP (OTEL_EXPORTER_OTLP_ENDPOINT)");
    }
    if let Some(reason) = not_isolated {
        tracing::warn!(target: LOG_TARGET,
            %reason,
            "runs are NOT isolated in private namespaces (TWOBOT_RUN_NAMESPACES={}): Codex receives directory names that a concurrent run able to write beneath a root could re-point (SECURITY.md, Containment)",
            config.run_namespaces.as_str()
        );
    }
    if let Err(reason) = &spawner {
        tracing::warn!(target: LOG_TARGET,
            %reason,
            "no run spawner: each run's supervisor starts by exec, about 2 ms slower per run"
        );
    }
    let Some(runtime) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::FAILURE;
    };
    let code = runtime.block_on(run(config, inherited));
    // Running calls are over; do not wait for stray blocking tasks.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    telemetry.shutdown();
    code
}

/// Why runs go without private namespaces (logged as a warning at start).
#[derive(Debug, thiserror::Error)]
enum NotIsolated {
    /// `TWOBOT_RUN_NAMESPACES=off`.
    #[error("turned off")]
    Off,
    /// `auto` on a machine that refuses them.
    #[error(transparent)]
    Refused(#[from] twobot::runner::namespace::ProbeError),
}

/// `TWOBOT_RUN_NAMESPACES=required` on a machine that refuses the namespaces.
#[derive(Debug, thiserror::Error)]
#[error("TWOBOT_RUN_NAMESPACES=required: this machine cannot isolate runs: {0}")]
struct IsolationRequired(twobot::runner::namespace::ProbeError);

/// Decide whether runs get private namespaces (`TWOBOT_RUN_NAMESPACES`): `Ok(None)` when
/// they do, `Ok(Some(why))` when they do not (off, or auto on a machine that refuses
/// them), `Err` when they are required and cannot be had.
fn isolate_runs(config: &mut Config) -> Result<Option<NotIsolated>, IsolationRequired> {
    use twobot::config::RunNamespaces;
    if config.run_namespaces == RunNamespaces::Off {
        return Ok(Some(NotIsolated::Off));
    }
    match twobot::runner::namespace::probe(
        std::path::Path::new("/proc/self/exe"),
        config.runner.codex_user.as_ref(),
    ) {
        Ok(()) => {
            config.runner.isolate = true;
            Ok(None)
        }
        Err(reason) if config.run_namespaces == RunNamespaces::Required => {
            Err(IsolationRequired(reason))
        }
        Err(reason) => Ok(Some(reason.into())),
    }
}

/// Build the async runtime, or say on stderr why it cannot start.
fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    match builder.enable_all().build() {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}

async fn run(config: Config, inherited: Option<std::net::TcpListener>) -> ExitCode {
    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            twobot::shutdown::signal().await;
            shutdown.cancel();
        });
    }
    match config.transport {
        Transport::Stdio => {
            config.log_effective();
            let Some(runs) = job_stack(&config, &shutdown).await else {
                return ExitCode::from(2);
            };
            let (stdin, stdout) = twobot::stdio::standard_streams();
            let audit = runs.observer().audit().cloned();
            let served = twobot::stdio::serve(
                tokio::io::join(stdin, stdout),
                runs,
                config.policy.default_timeout_sec(),
                shutdown,
            )
            .await;
            if let Some(audit) = audit {
                flush_audit(audit).await;
            }
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(target: LOG_TARGET, error = %e, "stdio session failed to initialise");
                    ExitCode::FAILURE
                }
            }
        }
        Transport::Http => serve_http(&config, shutdown, inherited).await,
    }
}

/// Every audit record queued, written before the process ends (bounded; see
/// [`twobot::audit::AuditLog::drain_at_exit`]), waited for off the runtime's threads.
async fn flush_audit(audit: std::sync::Arc<twobot::audit::AuditLog>) {
    let _ = tokio::task::spawn_blocking(move || audit.drain_at_exit()).await;
}

/// The run lifecycle both transports share ([`twobot::runs::assemble`]); `None` after
/// one line on stderr when a part of it cannot be set up.
async fn job_stack(config: &Config, shutdown: &CancellationToken) -> Option<twobot::runs::Runs> {
    match twobot::runs::assemble::assemble(config, shutdown).await {
        Ok(runs) => Some(runs),
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

async fn serve_http(
    config: &Config,
    signal: CancellationToken,
    inherited: Option<std::net::TcpListener>,
) -> ExitCode {
    use twobot::http::{HttpSettings, Issuer, Shutdown, router, serve};
    let bind = std::net::SocketAddr::new(config.host, config.port);
    let listener = match inherited {
        // Socket activation: the service manager's socket, whatever TWOBOT_PORT says.
        Some(passed) => match tokio::net::TcpListener::from_std(passed) {
            Ok(l) => {
                tracing::info!(target: LOG_TARGET, "serving the socket the service manager passed (LISTEN_FDS=1); TWOBOT_HOST and TWOBOT_PORT are not used");
                l
            }
            Err(e) => {
                eprintln!("error: {}", twobot::http::listen::ListenError::Invalid(e));
                return ExitCode::from(2);
            }
        },
        None => match tokio::net::TcpListener::bind(bind).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: TWOBOT_HOST/TWOBOT_PORT: cannot listen on {bind}: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let local = listener.local_addr().unwrap_or(bind);
    let settings = match HttpSettings::new(config, local) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    config.log_effective();
    // Before the run stack opens the state directory: a refused set-up writes nothing.
    let resource = twobot::oauth::Resource {
        url: settings.resource(),
        scopes: settings.scopes.clone(),
        required_scopes: settings
            .auth
            .as_ref()
            .map(|a| a.required_scopes.clone())
            .unwrap_or_default(),
        trusted_proxies: settings.trusted_proxies.clone(),
    };
    let oauth = match twobot::oauth::prepare(config, resource) {
        Ok(oauth) => oauth,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(runs) = job_stack(config, &signal).await else {
        return ExitCode::from(2);
    };
    let audit = runs.observer().audit().cloned();
    let store = runs.persist().lasting().store.clone();
    // The built-in authorization server, handed to the HTTP stack: its routes beside the
    // MCP endpoint, and its grant check behind every JWT the endpoint verifies.
    let issuer = match twobot::oauth::install(oauth, store, audit).await {
        Ok(server) => server.map(|server| Issuer {
            for_clients: server.client_routes(),
            pages: server.page_routes(),
            grants: server.grant_check(),
        }),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(exposure) = &settings.public_no_auth {
        tracing::warn!(target: LOG_TARGET, %exposure, "serving WITHOUT AUTH on {exposure} (TWOBOT_ALLOW_PUBLIC_NO_AUTH=true)");
    }
    let shutdown = Shutdown {
        signal,
        ..Shutdown::default()
    };
    let tracker = runs.tracker();
    let audit = runs.observer().audit().cloned();
    let app = router(&settings, runs, &shutdown, issuer);
    // The one line on stdout in http mode: where to connect.
    println!(
        "2Bot MCP endpoint listening on http://{local}{}",
        settings.path
    );
    tracing::info!(target: LOG_TARGET, url = %format!("http://{local}{}", settings.path), public = %settings.resource(), auth = settings.auth.is_some(), "listening");
    let served = serve(listener, app, tracker, shutdown, settings.serve_limits()).await;
    if let Some(audit) = audit {
        // The last interval's unauthenticated refusals, then everything queued, on disk
        // before the process ends.
        audit.write_summaries();
        flush_audit(audit).await;
    }
    match served {
        Ok(()) => {
            tracing::info!(target: LOG_TARGET, "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(target: LOG_TARGET, error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}
