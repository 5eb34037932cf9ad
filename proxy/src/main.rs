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
use mcpgate::listener::{LimitsSource, ListenerApp, ListenerLimits, ReadySource};
use mcpgate::runtime::{build_snapshot, Reloader};
use pingora::listeners::{L4BufferSettings, ListenerConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mcpgate: one governed front door for MCP.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    /// The gateway config file.
    #[arg(long, value_name = "FILE", default_value = "conf/mcpgate.yaml", env = "MCPGATE_CONFIG")]
    config: PathBuf,

    /// Validate the config and exit: parse it and build every server as a start would
    /// (URL specs are fetched, so this needs their network), without listening.
    #[arg(long, short_alias = 't')]
    test: bool,

    /// Run in the background (Pingora's daemon mode).
    #[arg(short, long)]
    daemon: bool,

    /// Take the listening sockets over from the running mcpgate (graceful binary upgrade,
    /// systemd/README.md).
    #[arg(short, long)]
    upgrade: bool,

    /// A Pingora server conf file, read when the config has no `pingora:` section (kept
    /// for Pingora's `-c`; the config's `pingora:` is the documented way).
    #[arg(short = 'c', long = "conf", value_name = "FILE", hide = true)]
    pingora_conf: Option<String>,

    /// Passed by `cargo test` harnesses; ignored (Pingora accepts it too).
    #[arg(long, hide = true)]
    nocapture: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

impl Cli {
    /// Pingora's options from ours. Its `--test` is never set: mcpgate's `--test` is
    /// handled before Pingora is started.
    fn pingora_opt(&self) -> Opt {
        Opt { upgrade: self.upgrade, daemon: self.daemon, nocapture: self.nocapture, conf: self.pingora_conf.clone(), ..Opt::default() }
    }
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
    /// Print the stored form (`sha256:…`) of an API key for `consumers[].api_keys`. The key
    /// is read from standard input (one line), so it never lands in shell history; with
    /// `--generate` a fresh random key is made and printed with its hash.
    HashKey {
        /// Make a new random key instead of reading one.
        #[arg(long)]
        generate: bool,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let opt = cli.pingora_opt();
    match cli.command {
        Some(Command::OpenapiToTools { spec, base_url }) => openapi_to_tools(&spec, base_url.as_deref()),
        Some(Command::HashKey { generate }) => hash_key(generate),
        None if cli.test => test_config(&cli.config),
        None => run(cli.config, opt),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap_or_else(|e| {
        eprintln!("mcpgate: cannot start a runtime: {e}");
        std::process::exit(1)
    })
}

fn hash_key(generate: bool) -> ExitCode {
    use mcpgate::auth::apikey;
    if generate {
        let key = apikey::generate();
        println!("key:  {key}\nhash: {}", apikey::hash(&key));
        return ExitCode::SUCCESS;
    }
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("mcpgate hash-key: cannot read the key from standard input: {e}");
        return ExitCode::FAILURE;
    }
    let key = line.trim_end_matches(['\r', '\n']);
    if key.is_empty() {
        eprintln!("mcpgate hash-key: give the key on standard input (echo -n KEY | mcpgate hash-key), or use --generate");
        return ExitCode::FAILURE;
    }
    println!("{}", apikey::hash(key));
    ExitCode::SUCCESS
}

fn openapi_to_tools(spec: &str, base_url: Option<&str>) -> ExitCode {
    match runtime().block_on(mcpgate::openapi::convert_source(spec, Path::new("."), base_url)) {
        Ok(conversion) => {
            for s in &conversion.skipped {
                eprintln!("skipped: {s}");
            }
            for w in &conversion.warnings {
                eprintln!("warning: {w}");
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
            if let Some(url) = &e.unfetched {
                eprintln!("mcpgate: note: --test builds every server as a start would, fetching URL specs too, so it needs to reach {url} (offline it fails); check the URL and the network, or point `spec:` at a local copy of the document");
            }
            ExitCode::FAILURE
        }
    }
}

fn pingora_conf(config: &Config, opt: &Opt) -> Result<Option<ServerConf>, String> {
    match &config.pingora {
        Some(p) => {
            let text = serde_yaml::to_string(p).map_err(|e| e.to_string())?;
            let mut conf = ServerConf::from_yaml(&format!("---\nversion: 1\n{text}")).map_err(|e| e.to_string())?;
            // Pingora's own defaults hold every shutdown for 5 minutes, idle or not.
            conf.grace_period_seconds.get_or_insert(GRACE_PERIOD);
            conf.graceful_shutdown_timeout_seconds.get_or_insert(SHUTDOWN_TIMEOUT);
            Ok(Some(conf))
        }
        None if opt.conf.is_some() => Ok(None),
        None => Ok(Some(ServerConf { grace_period_seconds: Some(GRACE_PERIOD), graceful_shutdown_timeout_seconds: Some(SHUTDOWN_TIMEOUT), ..ServerConf::default() })),
    }
}

/// Seconds a stopping process keeps serving the requests it has (long-lived SSE streams
/// would otherwise hold a shutdown for Pingora's 5 minutes).
const GRACE_PERIOD: u64 = 10;
/// Seconds the runtimes then get to finish.
const SHUTDOWN_TIMEOUT: u64 = 5;

fn run(path: PathBuf, opt: Opt) -> ExitCode {
    // Resolved now: a daemonized process changes directory, and a binary upgrade starts
    // the next process with this path.
    let path = std::fs::canonicalize(&path).unwrap_or(path);
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
    if !opt_upgrade(&server) {
        // Pingora panics in the listener's own thread when a bind fails and the rest of the
        // process keeps running (an admin listener saying ready over a dead MCP port).
        for addr in config.listen.iter().chain(std::iter::once(&config.admin.listen).filter(|a| !a.is_empty())) {
            if let Err(e) = std::net::TcpListener::bind(addr) {
                eprintln!("mcpgate: cannot listen on {addr}: {e} (is another process using it?)");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut server = server;
    let upgrade = (!server.configuration.upgrade_sock.is_empty()).then(|| mcpgate::runtime::reload::Upgrade {
        binary: std::env::args_os().next().map(PathBuf::from).and_then(|p| std::fs::canonicalize(p).ok()).unwrap_or_else(|| PathBuf::from("mcpgate")),
        daemon: server.configuration.daemon || server.options.as_ref().is_some_and(|o| o.daemon),
    });
    server.bootstrap();

    let state = GatewayState::new();
    mcpgate::listener::prepare_descriptors(config.connections.max);
    let proxy = pingora_proxy::http_proxy(&server.configuration, Gateway::new(state.clone()));
    let initial = config.connections.limits();
    let served = state.clone();
    let limits: LimitsSource = Box::new(move || served.snapshot.load().as_ref().map_or(initial, |s| s.config.connections.limits()));
    let served = state.clone();
    let ready: ReadySource = Box::new(move || served.snapshot.load().is_some());
    let mut gateway = Service::new("mcpgate".to_string(), ListenerApp::new("mcp", proxy, limits).wait_until(ready));
    for addr in &config.listen {
        gateway.add_listener(listener_config(addr));
    }
    server.add_service(gateway);
    if !config.admin.listen.is_empty() {
        let admin_app = ListenerApp::new("admin", AdminApp::new(state.clone(), &config), Box::new(|| ListenerLimits::ADMIN));
        let mut admin = Service::new("mcpgate admin".to_string(), admin_app);
        admin.add_listener(listener_config(&config.admin.listen));
        server.add_service(admin);
    }
    log::info!("mcpgate {} listening on {:?} (admin {})", env!("CARGO_PKG_VERSION"), config.listen, config.admin.listen);
    server.add_service(background_service("config reloader", Reloader::new(state, path, config, upgrade)));
    server.run_forever()
}

/// Whether this process takes its listening sockets from a running one (`-u`).
fn opt_upgrade(server: &Server) -> bool {
    server.options.as_ref().is_some_and(|o| o.upgrade)
}

/// A TCP listener without Pingora's 64 KiB read buffer per connection: requests are read
/// straight into the HTTP parser's buffer, so an idle connection costs a few KiB.
fn listener_config(addr: &str) -> ListenerConfig {
    ListenerConfig::tcp(addr).l4_buffer(L4BufferSettings::new(0, pingora::listeners::DEFAULT_L4_WRITE_BUFFER_SIZE))
}
