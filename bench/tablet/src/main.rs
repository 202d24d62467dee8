//! `bench-tablet`: single-key writes and reads through the client library with N concurrent
//! callers, on an in-process cluster (one mserver and RF dbservers, each with its own fjall
//! store and data directory, talking over loopback RPC). With RF=1 the caller's client is the
//! dbserver's local client, so calls take the in-process short-cut; with RF=3 every write is
//! replicated to two other servers over TCP before it is acknowledged.
//!
//! Every write is durable (fdatasync via group commit) before it returns.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use rand::Rng;

// The servers' allocator (as in `bins`), without linking the API layers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Resolves once `rx` turns true (the servers' shutdown signal).
async fn until(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "bench-tablet",
    about = "AiSQL tablet-layer benchmark",
    rename_all = "snake_case"
)]
struct Args {
    /// Replication factor (1 or 3): that many dbservers are started.
    #[arg(long, default_value_t = 1)]
    rf: u32,
    /// Concurrent callers.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds per phase (writes, then reads).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Tablets of the benchmark table.
    #[arg(long, default_value_t = 8)]
    tablets: u32,
    /// Distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Call the tablets over gRPC even when they are local (measures the RPC path).
    #[arg(long)]
    remote_client: bool,
    /// Only run the write phase (for profiling).
    #[arg(long)]
    skip_reads: bool,
    /// Also run a phase of 2-key transfer transactions (snapshot isolation, read both keys
    /// then write both) and print its rate next to the single-key writes.
    #[arg(long)]
    transfers: bool,
    /// Data directory (default: a temporary one, removed afterwards).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

fn listener() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind")
}

fn addr(l: &std::net::TcpListener) -> String {
    format!("127.0.0.1:{}", l.local_addr().expect("addr").port())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let tmp = tempfile::tempdir()?;
    let base = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let timing = consensus::Timing::default();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);

    let m_rpc = listener();
    let m_addr = addr(&m_rpc);
    let mcfg = mserver::MserverConfig {
        rpc_addr: m_addr.clone(),
        mserver_addrs: vec![m_addr.clone()],
        http_addr: String::new(),
        data_dir: base.join("mserver"),
        replication_factor: args.rf,
        dbserver_unresponsive_timeout_ms: 60_000,
        timing,
    };
    let ms = mserver::Mserver::start(mcfg).await?;
    tokio::spawn(ms.clone().serve(m_rpc, until(stop.clone())));

    let mut servers = Vec::new();
    for i in 0..args.rf {
        let rpc = listener();
        let cfg = dbserver::DbServerConfig {
            rpc_addr: addr(&rpc),
            http_addr: String::new(),
            cql_addr: String::new(),
            mserver_addrs: vec![m_addr.clone()],
            data_dir: base.join(format!("dbserver{i}")),
            timing,
            heartbeat_interval_ms: 500,
            history_retention_secs: 900,
            max_clock_skew_usec: 0,
        };
        let s = dbserver::DbServer::start(cfg).await?;
        tokio::spawn(s.clone().serve(rpc, until(stop.clone())));
        servers.push(s);
    }
    let client = if args.remote_client {
        client::Client::new(vec![m_addr.clone()])
    } else {
        servers[0].local_client()
    };
    // Wait for registration, then create the table.
    loop {
        let r = client.list_servers().await?;
        if r.servers.iter().filter(|s| s.alive).count() as u32 >= args.rf {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.create_namespace("bench", true).await?;
    client
        .create_table(rpc::mserver::CreateTableRequest {
            namespace_name: "bench".into(),
            name: "kv".into(),
            num_tablets: args.tablets,
            replication_factor: args.rf,
            ..Default::default()
        })
        .await?;
    let table = Arc::new(client.open_table("bench", "kv").await?);
    client.wait_for_leaders(&table).await?;

    println!(
        "bench-tablet: RF={} tablets={} concurrency={} value={}B keys={} ({}s per phase)",
        args.rf, args.tablets, args.concurrency, args.value_size, args.keys, args.seconds
    );
    // Preload so reads hit existing keys.
    let preload = args.keys.min(20_000);
    run_phase("preload", &args, &client, &table, Some(preload), true).await?;
    let write = run_phase("write", &args, &client, &table, None, true).await?;
    let w = write.rate;
    let r = if args.skip_reads {
        0.0
    } else {
        run_phase("read", &args, &client, &table, None, false)
            .await?
            .rate
    };
    if args.transfers {
        let x = run_transfers(&args, &client, &table).await?;
        // The CPU ratio moves less from run to run on a shared VM than the rate ratio: it is
        // what the rate ratio would be if both phases had the same CPU to themselves.
        println!(
            "RESULT transfers_per_sec={:.0} ratio_to_writes={:.2} (target >= 0.3) cpu_ratio={:.2}",
            x.rate,
            x.rate / w.max(1.0),
            write.cpu / x.cpu.max(1.0)
        );
    }
    for (i, s) in servers.iter().enumerate() {
        let st = s.sync_stats();
        let (n, w, us) = (
            st.syncs.load(Ordering::Relaxed),
            st.waiters.load(Ordering::Relaxed),
            st.sync_micros.load(Ordering::Relaxed),
        );
        println!(
            "dbserver{i}: {n} fsyncs, {:.1} waiters/fsync, {:.0}us/fsync",
            w as f64 / n.max(1) as f64,
            us as f64 / n.max(1) as f64
        );
    }
    println!(
        "RESULT rf={} writes_per_sec={:.0} reads_per_sec={:.0}",
        args.rf, w, r
    );

    let _ = stop_tx.send(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

/// CPU time (user + system) this process has used, in seconds (0 where `/proc` is missing).
/// Per-operation CPU is steadier than throughput on a shared VM.
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// 2-key transfer transactions for `args.seconds`; returns committed transactions per second
/// and CPU per committed transaction.
async fn run_transfers(
    args: &Args,
    client: &client::Client,
    table: &Arc<client::Table>,
) -> Result<Phase> {
    let done = Arc::new(AtomicU64::new(0));
    let conflicts = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = cpu_secs();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, table, done, conflicts, errors, stop) = (
            client.clone(),
            table.clone(),
            done.clone(),
            conflicts.clone(),
            errors.clone(),
            stop.clone(),
        );
        let keys = args.keys;
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut read_lat) = (Vec::new(), Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let (a, b) = {
                    let mut r = rand::rng();
                    (r.random_range(0..keys), r.random_range(0..keys))
                };
                if a == b {
                    continue;
                }
                let (ka, kb) = (format!("key{a:010}"), format!("key{b:010}"));
                let t0 = Instant::now();
                let mut t = client.begin(client::Isolation::Snapshot);
                let r = async {
                    let v = t
                        .get_many(&[(&table, ka.as_bytes()), (&table, kb.as_bytes())])
                        .await?;
                    read_lat.push(t0.elapsed().as_micros() as u32);
                    let n = |v: &Option<Vec<u8>>| v.as_ref().map(|x| x.len()).unwrap_or(0);
                    t.put(
                        &table,
                        ka.as_bytes(),
                        format!("{}", n(&v[0]) + 1).as_bytes(),
                    );
                    t.put(
                        &table,
                        kb.as_bytes(),
                        format!("{}", n(&v[1]) + 1).as_bytes(),
                    );
                    t.commit().await
                }
                .await;
                lat.push(t0.elapsed().as_micros() as u32);
                match r {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(e) if e.code() == common::StatusCode::TxnConflict => {
                        conflicts.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
            (lat, read_lat)
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut lat_all, mut read_all) = (Vec::new(), Vec::new());
    for t in tasks {
        let (lat, read) = t.await?;
        lat_all.extend(lat);
        read_all.extend(read);
    }
    lat_all.sort_unstable();
    read_all.sort_unstable();
    let read_p50 = read_all.get(read_all.len() / 2).copied().unwrap_or(0);
    let secs = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    let rate = n as f64 / secs;
    let pct = |p: f64| {
        lat_all
            .get(((lat_all.len() as f64 * p) as usize).min(lat_all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let cpu = (cpu_secs() - cpu0) * 1e6 / n.max(1) as f64;
    println!(
        "transfer: {n:>9} txns in {secs:>5.1}s = {rate:>9.0} txn/s   p50 {}us (reads {read_p50}us) p99 {}us   conflicts {} errors {}   cpu {cpu:.0}us/txn",
        pct(0.5),
        pct(0.99),
        conflicts.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
    );
    Ok(Phase { rate, cpu })
}

/// What a phase measured: operations per second, and CPU microseconds per operation.
struct Phase {
    rate: f64,
    cpu: f64,
}

/// Run one phase; returns its rate and CPU per operation.
async fn run_phase(
    name: &str,
    args: &Args,
    client: &client::Client,
    table: &Arc<client::Table>,
    total: Option<u64>,
    write: bool,
) -> Result<Phase> {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut lat_all: Vec<u32> = Vec::new();
    let cpu0 = cpu_secs();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.concurrency {
        let (client, table, done, errors, stop) = (
            client.clone(),
            table.clone(),
            done.clone(),
            errors.clone(),
            stop.clone(),
        );
        let (keys, size, conc) = (args.keys, args.value_size, args.concurrency as u64);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let value = vec![b'v'; size];
            let mut i = w as u64;
            while !stop.load(Ordering::Relaxed) {
                let k = match total {
                    Some(t) if i >= t => break,
                    Some(_) => i,
                    None => rand::rng().random_range(0..keys),
                };
                i += conc;
                let key = format!("key{k:010}");
                let t0 = Instant::now();
                let ok = if write {
                    client.put(&table, key.as_bytes(), &value).await.is_ok()
                } else {
                    client.get(&table, key.as_bytes()).await.is_ok()
                };
                lat.push(t0.elapsed().as_micros() as u32);
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        }));
    }
    if total.is_none() {
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        stop.store(true, Ordering::Relaxed);
    }
    for t in tasks {
        lat_all.extend(t.await?);
    }
    let secs = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    lat_all.sort_unstable();
    let pct = |p: f64| {
        lat_all
            .get(((lat_all.len() as f64 * p) as usize).min(lat_all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let rate = n as f64 / secs;
    let cpu = (cpu_secs() - cpu0) * 1e6 / n.max(1) as f64;
    println!(
        "{name:>8}: {n:>9} ops in {secs:>5.1}s = {rate:>9.0} ops/s   p50 {}us p99 {}us   errors {}   cpu {cpu:.0}us/op",
        pct(0.5),
        pct(0.99),
        errors.load(Ordering::Relaxed),
    );
    Ok(Phase { rate, cpu })
}
