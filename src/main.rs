//! `2bot-mcp`: parse configuration, set up logging, serve the chosen transport.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use twobot::config::{Cli, Config, Transport};

fn main() -> ExitCode {
    let cli = Cli::parse_or_exit();
    let config = match Config::load(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    twobot::telemetry::init(&config.log_filter, false);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    config.log_effective();
    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            twobot::shutdown::signal().await;
            shutdown.cancel();
        });
    }
    let (tools, runs) =
        twobot::tool::tool_service(config.policy.clone(), config.limits, config.runner.clone());
    match config.transport {
        Transport::Stdio => {
            let io = (tokio::io::stdin(), tokio::io::stdout());
            match twobot::stdio::serve(
                tokio::io::join(io.0, io.1),
                tools,
                config.policy.default_timeout_sec(),
                runs,
                shutdown,
            ).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "stdio session failed to initialise");
                    ExitCode::FAILURE
                }
            }
        }
        Transport::Http => {
            tracing::error!("the http transport is not available in this build yet");
            ExitCode::from(2)
        }
    }
}
