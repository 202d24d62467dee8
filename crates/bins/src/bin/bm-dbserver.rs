//! bm-dbserver: the AiSQL data server.

use std::path::PathBuf;

use anyhow::Result;
use bins::{AddrList, DbAddrs};
use clap::Parser;

/// AiSQL data server: hosts tablet replicas and serves BSQL, BCQL and BEDIS.
#[derive(Parser, Debug)]
#[command(name = "bm-dbserver", version, about)]
struct Flags {
    /// Address to bind the RPC port to (comma-separated; the first is used).
    #[arg(long = "rpc_bind_addresses", default_value = "0.0.0.0:21000", value_parser = bins::addr_list)]
    rpc_bind_addresses: AddrList,
    /// The mservers' RPC addresses.
    #[arg(long = "dbserver_mserver_addrs", default_value = "0.0.0.0:11000", value_parser = bins::addr_list)]
    dbserver_mserver_addrs: AddrList,
    /// Address peers use to reach this server (default: the bind address, with 0.0.0.0
    /// replaced by 127.0.0.1).
    #[arg(long = "server_broadcast_addresses", value_parser = bins::addr_list)]
    server_broadcast_addresses: Option<AddrList>,
    /// Interface of the web servers.
    #[arg(long = "webserver_interface", default_value = "0.0.0.0")]
    webserver_interface: String,
    /// Port of the web server (status pages, /prometheus-metrics).
    #[arg(long = "webserver_port", default_value_t = 20000)]
    webserver_port: u16,
    /// BSQL (PostgreSQL wire) listen address.
    #[arg(long = "pgsql_proxy_bind_address", default_value = "0.0.0.0:2521", value_parser = bins::host_port)]
    pgsql_proxy_bind_address: String,
    /// BCQL (CQL native protocol v4) listen address.
    #[arg(long = "cql_proxy_bind_address", default_value = "0.0.0.0:9542", value_parser = bins::host_port)]
    cql_proxy_bind_address: String,
    /// BEDIS (Redis RESP) listen address.
    #[arg(long = "redis_proxy_bind_address", default_value = "0.0.0.0:6879", value_parser = bins::host_port)]
    redis_proxy_bind_address: String,
    /// BSQL metrics port.
    #[arg(long = "pgsql_proxy_webserver_port", default_value_t = 8100)]
    pgsql_proxy_webserver_port: u16,
    /// BCQL metrics port.
    #[arg(long = "cql_proxy_webserver_port", default_value_t = 8200)]
    cql_proxy_webserver_port: u16,
    /// BEDIS metrics port.
    #[arg(long = "redis_proxy_webserver_port", default_value_t = 8300)]
    redis_proxy_webserver_port: u16,
    /// Data directories (comma-separated; the first is used).
    #[arg(long = "fs_data_dirs")]
    fs_data_dirs: Option<String>,
    /// Interval of heartbeats to the mserver leader.
    #[arg(long = "heartbeat_interval_ms", default_value_t = 500)]
    heartbeat_interval_ms: u64,
    /// Raft heartbeat interval.
    #[arg(long = "raft_heartbeat_interval_ms", default_value_t = 100)]
    raft_heartbeat_interval_ms: u64,
    /// Missed heartbeats before a follower calls an election.
    #[arg(
        long = "leader_failure_max_missed_heartbeat_periods",
        default_value_t = 5
    )]
    leader_failure_max_missed_heartbeat_periods: u64,
    /// How long old row versions are kept for reads in the past.
    #[arg(
        long = "timestamp_history_retention_interval_sec",
        default_value_t = 900
    )]
    timestamp_history_retention_interval_sec: u64,
    /// The most two servers' clocks may differ, in µs: a transaction's read treats versions
    /// this far above its snapshot as possibly earlier and restarts.
    #[arg(long = "max_clock_skew_usec", default_value_t = 500_000)]
    max_clock_skew_usec: u64,
    #[command(flatten)]
    apis: bins::ApiOptions,
    /// Read more flags from this file (one --flag=value per line).
    #[arg(long = "flagfile")]
    flagfile: Option<PathBuf>,
}

fn main() {
    bins::block_on("bm-dbserver", async_main());
}

async fn async_main() {
    let (flags, matches) = bins::parse_with_matches::<Flags>();
    bins::init_logging();
    if let Err(e) = run(flags, bins::flag_values(&matches)).await {
        eprintln!("bm-dbserver: {e:#}");
        std::process::exit(1);
    }
}

async fn run(f: Flags, varz: Vec<(String, String)>) -> Result<()> {
    f.apis.validate()?;
    let bind_addr = f.rpc_bind_addresses.0[0].clone();
    let listeners = DbAddrs {
        rpc: &bind_addr,
        web: format!("{}:{}", f.webserver_interface, f.webserver_port),
        pgsql: &f.pgsql_proxy_bind_address,
        cql: &f.cql_proxy_bind_address,
        redis: &f.redis_proxy_bind_address,
        web_interface: &f.webserver_interface,
        pgsql_web_port: f.pgsql_proxy_webserver_port,
        cql_web_port: f.cql_proxy_webserver_port,
        redis_web_port: f.redis_proxy_webserver_port,
    }
    .bind()?;
    let rpc_addr = bins::advertised(
        f.server_broadcast_addresses.as_ref(),
        &bind_addr,
        &listeners.rpc,
    );
    let http_addr = bins::dialable(
        &format!("{}:{}", f.webserver_interface, f.webserver_port),
        &listeners.web,
    );
    let data_dir = bins::data_dir(f.fs_data_dirs.as_deref(), "dbserver");
    let config = dbserver::DbServerConfig {
        rpc_addr: rpc_addr.clone(),
        http_addr,
        mserver_addrs: f.dbserver_mserver_addrs.0,
        // Set by `run_dbserver` from the BCQL listener.
        cql_addr: String::new(),
        data_dir,
        timing: bins::raft_timing(
            f.raft_heartbeat_interval_ms,
            f.leader_failure_max_missed_heartbeat_periods,
        ),
        heartbeat_interval_ms: f.heartbeat_interval_ms,
        history_retention_secs: f.timestamp_history_retention_interval_sec,
        max_clock_skew_usec: f.max_clock_skew_usec,
    };
    tracing::info!(%rpc_addr, "bm-dbserver starting");
    let shutdown = bins::shutdown_signal();
    bins::run_dbserver(listeners, config, f.apis, varz, shutdown).await
}
