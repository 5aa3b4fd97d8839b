//! `voxguard gateway`: serve voxguard in front of an SWML agent it did not build.
//!
//! Owns the command line of gateway mode (the upstream URL, the configuration file) and
//! starting the runtime the way the reference agents do: server settings from the environment,
//! state from the data directory or `VOXGUARD_DATABASE_URL`. Everything the gateway enforces is
//! the library's (`voxguard::gateway`, the pipeline); this module must not add rules of its own.

use std::path::PathBuf;

use clap::Args;

use crate::Exit;

/// `gateway --help`: examples, then the exit codes.
pub const GATEWAY_AFTER_HELP: &str = "\
Examples:
  voxguard gateway --upstream http://127.0.0.1:5000/
  voxguard gateway --config gateway.toml
  VOXGUARD_UPSTREAM_PASSWORD=... SWML_PROXY_URL_BASE=https://gw.example.com \\
      voxguard gateway --upstream http://agent@10.0.0.5:3000/agent

The platform fetches SWML from the gateway; the gateway fetches it from the upstream,
rewrites every webhook to itself with its own credentials and per-call tokens, and checks
each function call (auth, token, schema, input guards, limits, emergency switch, transfer
allow-list, audit) before forwarding it. docs/gateway.md has every setting.

Exit codes:
  0  stopped by SIGTERM or Ctrl-C
  2  configuration error (the message names the key or variable)
  3  the server could not start (port taken, state unreachable)";

/// `voxguard gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// The upstream agent's SWML URL (credentials may be in it; VOXGUARD_UPSTREAM_URL or
    /// upstream.url in the file otherwise).
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// The gateway configuration file (docs/gateway.md).
    #[arg(long, value_name = "FILE", env = "VOXGUARD_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Where state lives when VOXGUARD_DATABASE_URL is not set (SQLite files).
    #[arg(
        long,
        value_name = "DIR",
        env = "VOXGUARD_DATA_DIR",
        default_value = "./voxguard-data"
    )]
    data_dir: PathBuf,
}

/// Run the gateway until SIGTERM or Ctrl-C.
pub fn run(args: &GatewayArgs) -> Exit {
    voxguard::init_tracing();
    let config =
        match voxguard::GatewayConfig::load(args.config.as_deref(), args.upstream.as_deref()) {
            Ok(config) => config,
            Err(error) => {
                eprintln!("error: {error}");
                return Exit::Usage;
            }
        };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return Exit::Internal;
        }
    };
    runtime.block_on(serve(config, args.data_dir.clone()))
}

async fn serve(config: voxguard::GatewayConfig, data_dir: PathBuf) -> Exit {
    let runtime = match voxguard::Runtime::from_env() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error}");
            return Exit::Usage;
        }
    };
    let production = runtime.config().production;
    let state = match voxguard::State::open_from_env(&data_dir, production).await {
        Ok(state) => state,
        Err(error) => {
            eprintln!("error: {error}");
            return Exit::Internal;
        }
    };
    let running = match runtime.state(state).gateway(config).bind().await {
        Ok(running) => running,
        Err(
            error @ (voxguard::RuntimeError::Gateway(_)
            | voxguard::RuntimeError::GatewayAgent(_)
            | voxguard::RuntimeError::Config(_)),
        ) => {
            eprintln!("error: {error}");
            return Exit::Usage;
        }
        Err(error) => {
            eprintln!("error: {error}");
            return Exit::Internal;
        }
    };
    println!(
        "voxguard gateway listening on {}://{}/",
        running.scheme(),
        running.local_addr()
    );

    running.serve().await;
    Exit::Ok
}
