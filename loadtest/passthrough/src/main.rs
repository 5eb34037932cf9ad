//! A bare Pingora passthrough proxy: the baseline mcpgate is measured against. It does
//! nothing but pick the one upstream, with the same Pingora version, allocator and
//! connection pooling as mcpgate.
//!
//! `passthrough --listen 127.0.0.1:P --upstream 127.0.0.1:Q [--threads N]`

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Passthrough {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:18100".into());
    let upstream: SocketAddr = arg("--upstream").and_then(|u| u.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: passthrough --listen ADDR --upstream HOST:PORT [--threads N]");
        std::process::exit(2)
    });
    let threads = arg("--threads").and_then(|t| t.parse().ok()).unwrap_or(1);
    let conf = ServerConf { threads, grace_period_seconds: Some(0), graceful_shutdown_timeout_seconds: Some(0), ..ServerConf::default() };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Passthrough { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
