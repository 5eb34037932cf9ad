//! Runs a primary-key SELECT through a sqlx pool from N concurrent tasks for a duration
//! and prints requests/s, p50 and p99 as JSON: the baseline the gateway's `query` tool is
//! compared with in `loadtest/db-bench.sh`.
//!
//! `sqlx-direct URL POOL_SIZE CONCURRENCY SECONDS [default|lean] [THREADS]`
//!
//! It is built with the same TLS support as the gateway, so the same URL gets the same
//! transport (with `sslmode=prefer`, TLS whenever the server offers it), and it runs on
//! `THREADS` runtime worker threads (default 1), as many as the gateway is given.
//!
//! `default` (the default) uses sqlx's pool defaults, which ping every connection on
//! acquire; `lean` pings only connections idle for over a second (sqlx still pings each
//! connection it takes back): the leanest sqlx pool, a stricter reference than what a
//! sqlx user gets by default.

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads = args.get(6).and_then(|t| t.parse().ok()).unwrap_or(1usize).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap_or_else(|e| {
        eprintln!("sqlx-direct: cannot start the runtime: {e}");
        std::process::exit(1)
    });
    runtime.block_on(run(args));
}

async fn run(args: Vec<String>) {
    let (url, pool_size, conc, secs, policy) = match args.as_slice() {
        [_, u, p, c, s] => (u.clone(), p.parse().unwrap_or(8), c.parse().unwrap_or(64), s.parse().unwrap_or(10), "default"),
        [_, u, p, c, s, m, ..] => (u.clone(), p.parse().unwrap_or(8), c.parse().unwrap_or(64), s.parse().unwrap_or(10), m.as_str()),
        _ => {
            eprintln!("usage: sqlx-direct URL POOL_SIZE CONCURRENCY SECONDS [default|lean] [THREADS]");
            std::process::exit(2)
        }
    };
    let mut options = sqlx::postgres::PgPoolOptions::new().max_connections(pool_size);
    if policy == "lean" {
        options = options.test_before_acquire(false).before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > Duration::from_secs(1) {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        });
    }
    let pool = options.connect(&url).await.unwrap_or_else(|e| {
        eprintln!("sqlx-direct: {e}");
        std::process::exit(1)
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for t in 0..conc {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = t;
            while Instant::now() < deadline {
                let start = Instant::now();
                let row: Result<(i32, String), _> = sqlx::query_as("SELECT id, name FROM mcpgate_bench WHERE id = $1").bind(i % 1000 + 1).fetch_one(&pool).await;
                if row.is_ok() {
                    lat.push(start.elapsed());
                }
                i += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all.sort();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    println!("{{\"requests\": {}, \"rps\": {:.1}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}}}", all.len(), all.len() as f64 / secs as f64, pct(0.5), pct(0.99));
}
