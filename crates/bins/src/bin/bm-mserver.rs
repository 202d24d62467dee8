//! bm-mserver: the AiSQL metadata master.

use std::path::PathBuf;

use anyhow::Result;
use bins::{AddrList, MserverListeners};
use clap::Parser;

/// AiSQL metadata master: the catalog of namespaces, tables and tablets, dbserver liveness
/// and placement.
#[derive(Parser, Debug)]
#[command(name = "bm-mserver", version, about)]
struct Flags {
    /// Address to bind the RPC port to (comma-separated; the first is used).
    #[arg(long = "rpc_bind_addresses", default_value = "0.0.0.0:11000", value_parser = bins::addr_list)]
    rpc_bind_addresses: AddrList,
    /// Address other servers use to reach this mserver (default: the bind address, with
    /// 0.0.0.0 replaced by 127.0.0.1).
    #[arg(long = "server_broadcast_addresses", value_parser = bins::addr_list)]
    server_broadcast_addresses: Option<AddrList>,
    /// Every mserver's RPC address, in the same order on every mserver (default: this one).
    #[arg(long = "mserver_addrs", value_parser = bins::addr_list)]
    mserver_addrs: Option<AddrList>,
    /// Interface of the web server.
    #[arg(long = "webserver_interface", default_value = "0.0.0.0")]
    webserver_interface: String,
    /// Port of the web server (status pages, /prometheus-metrics).
    #[arg(long = "webserver_port", default_value_t = 10000)]
    webserver_port: u16,
    /// Data directories (comma-separated; the first is used).
    #[arg(long = "fs_data_dirs")]
    fs_data_dirs: Option<String>,
    /// Default replication factor of new tables.
    #[arg(long = "replication_factor", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=7))]
    replication_factor: u32,
    /// A dbserver silent for this long is shown dead and gets no new replicas.
    #[arg(long = "dbserver_unresponsive_timeout_ms", default_value_t = 60_000)]
    dbserver_unresponsive_timeout_ms: u64,
    /// Raft heartbeat interval.
    #[arg(long = "raft_heartbeat_interval_ms", default_value_t = 100)]
    raft_heartbeat_interval_ms: u64,
    /// Missed heartbeats before a follower calls an election.
    #[arg(
        long = "leader_failure_max_missed_heartbeat_periods",
        default_value_t = 5
    )]
    leader_failure_max_missed_heartbeat_periods: u64,
    /// Read more flags from this file (one --flag=value per line).
    #[arg(long = "flagfile")]
    flagfile: Option<PathBuf>,
}

#[tokio::main]
async fn main() {
    let (flags, matches) = bins::parse_with_matches::<Flags>();
    bins::init_logging();
    if let Err(e) = run(flags, bins::flag_values(&matches)).await {
        eprintln!("bm-mserver: {e:#}");
        std::process::exit(1);
    }
}

async fn run(f: Flags, varz: Vec<(String, String)>) -> Result<()> {
    let bind_addr = f.rpc_bind_addresses.0[0].clone();
    let listeners = MserverListeners {
        rpc: bins::bind("--rpc_bind_addresses", &bind_addr)?,
        web: bins::bind(
            "--webserver_port",
            &format!("{}:{}", f.webserver_interface, f.webserver_port),
        )?,
    };
    let rpc_addr = bins::advertised(
        f.server_broadcast_addresses.as_ref(),
        &bind_addr,
        &listeners.rpc,
    );
    let http_addr = bins::dialable(
        &format!("{}:{}", f.webserver_interface, f.webserver_port),
        &listeners.web,
    );
    let data_dir = bins::data_dir(f.fs_data_dirs.as_deref(), "mserver");
    let config = mserver::MserverConfig {
        rpc_addr: rpc_addr.clone(),
        mserver_addrs: f.mserver_addrs.map(|a| a.0).unwrap_or_default(),
        http_addr,
        data_dir,
        replication_factor: f.replication_factor,
        dbserver_unresponsive_timeout_ms: f.dbserver_unresponsive_timeout_ms,
        timing: bins::raft_timing(
            f.raft_heartbeat_interval_ms,
            f.leader_failure_max_missed_heartbeat_periods,
        ),
    };
    tracing::info!(%rpc_addr, "bm-mserver starting");
    let shutdown = bins::shutdown_signal();
    bins::run_mserver(listeners, config, varz, shutdown).await
}
