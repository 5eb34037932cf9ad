//! The `mcpgate` binary: run the gateway, validate a config, or convert an OpenAPI
//! document to tool definitions.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use mcpgate::admin::AdminApp;
use mcpgate::config::Config;
use mcpgate::gateway::{Gateway, GatewayState};
use mcpgate::runtime::{build_snapshot, Reloader};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mcpgate: one governed front door for MCP.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    /// The gateway config file.
    #[arg(long, value_name = "FILE", default_value = "conf/mcpgate.yaml", env = "MCPGATE_CONFIG")]
    config: PathBuf,

    /// Pingora's options (-d daemon, -u graceful upgrade, -t test, -c Pingora conf file).
    #[command(flatten)]
    pingora: Opt,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the tools generated from an OpenAPI/Swagger document, in the REST tool YAML
    /// format (`type: rest` servers load it unchanged).
    OpenapiToTools {
        /// Path or http(s) URL of the document.
        spec: String,
        /// Base URL override.
        #[arg(long)]
        base_url: Option<String>,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::OpenapiToTools { spec, base_url }) => openapi_to_tools(&spec, base_url.as_deref()),
        None if cli.pingora.test => test_config(&cli.config),
        None => run(cli.config, cli.pingora),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap_or_else(|e| {
        eprintln!("mcpgate: cannot start a runtime: {e}");
        std::process::exit(1)
    })
}

fn openapi_to_tools(spec: &str, base_url: Option<&str>) -> ExitCode {
    match runtime().block_on(mcpgate::openapi::convert_source(spec, Path::new("."), base_url)) {
        Ok(conversion) => {
            for s in &conversion.skipped {
                eprintln!("skipped: {s}");
            }
            print!("{}", mcpgate::openapi::to_yaml(&conversion.file));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcpgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--test`: everything a start would do short of listening — parse, validate, and build
/// every server (specs fetched, templates compiled, databases parsed).
fn test_config(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcpgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime().block_on(build_snapshot(Arc::new(config), None)) {
        Ok(s) => {
            let tools: usize = s.routes.values().map(|r| r.catalog.len()).sum();
            println!("{}: OK ({} route(s), {tools} tool(s))", path.display(), s.routes.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcpgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn pingora_conf(config: &Config, opt: &Opt) -> Result<Option<ServerConf>, String> {
    match &config.pingora {
        Some(p) => {
            let text = serde_yaml::to_string(p).map_err(|e| e.to_string())?;
            ServerConf::from_yaml(&format!("---\nversion: 1\n{text}")).map(Some).map_err(|e| e.to_string())
        }
        None if opt.conf.is_some() => Ok(None),
        None => {
            // Long-lived SSE streams would otherwise hold a shutdown for Pingora's 5 minutes.
            Ok(Some(ServerConf { grace_period_seconds: Some(10), graceful_shutdown_timeout_seconds: Some(5), ..ServerConf::default() }))
        }
    }
}

fn run(path: PathBuf, opt: Opt) -> ExitCode {
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcpgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match pingora_conf(&config, &opt) {
        Ok(Some(conf)) => Server::new_with_opt_and_conf(Some(opt), conf),
        Ok(None) => match Server::new(Some(opt)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mcpgate: Pingora conf: {e}");
                return ExitCode::FAILURE;
            }
        },
        Err(e) => {
            eprintln!("mcpgate: {}: field `pingora`: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let mut server = server;
    let upgrade = (!server.configuration.upgrade_sock.is_empty()).then(|| mcpgate::runtime::reload::Upgrade {
        binary: std::env::args_os().next().map(PathBuf::from).and_then(|p| std::fs::canonicalize(p).ok()).unwrap_or_else(|| PathBuf::from("mcpgate")),
        daemon: server.configuration.daemon || server.options.as_ref().is_some_and(|o| o.daemon),
    });
    server.bootstrap();

    let state = GatewayState::new();
    let mut gateway = pingora_proxy::http_proxy_service_with_name(&server.configuration, Gateway::new(state.clone()), "mcpgate");
    for addr in &config.listen {
        gateway.add_tcp(addr);
    }
    server.add_service(gateway);
    if !config.admin.listen.is_empty() {
        let mut admin = Service::new("mcpgate admin".to_string(), AdminApp::new(state.clone()));
        admin.add_tcp(&config.admin.listen);
        server.add_service(admin);
    }
    log::info!("mcpgate {} listening on {:?} (admin {})", env!("CARGO_PKG_VERSION"), config.listen, config.admin.listen);
    server.add_service(background_service("config reloader", Reloader::new(state, path, config, upgrade)));
    server.run_forever()
}
