//! aisql: start a local cluster, administer a running one, and run Prometheus for it.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use bins::{AddrList, DbAddrs, MserverListeners};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(
    name = "aisql",
    version,
    about = "AiSQL: start a local cluster, or administer a running one"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run one bm-mserver and one bm-dbserver (replication factor 1) in this process, in the
    /// foreground, until Ctrl-C or SIGTERM.
    Start(StartFlags),
    /// List servers, tables or tablets.
    List {
        what: ListWhat,
        #[command(flatten)]
        admin: AdminFlags,
    },
    /// Create a namespace.
    CreateNamespace {
        name: String,
        #[command(flatten)]
        admin: AdminFlags,
    },
    /// Create a table NAMESPACE.NAME (the namespace is created if missing).
    CreateTable {
        name: String,
        /// Hash tablets (0 = one per live dbserver).
        #[arg(long = "num_tablets", default_value_t = 0)]
        num_tablets: u32,
        /// One range-partitioned tablet instead of hash tablets.
        #[arg(long = "range")]
        range: bool,
        /// Replication factor (0 = the cluster default).
        #[arg(long = "replication_factor", default_value_t = 0)]
        replication_factor: u32,
        #[command(flatten)]
        admin: AdminFlags,
    },
    /// Write a key (a quick check of the write path).
    Put {
        table: String,
        key: String,
        value: String,
        #[command(flatten)]
        admin: AdminFlags,
    },
    /// Read a key.
    Get {
        table: String,
        key: String,
        #[command(flatten)]
        admin: AdminFlags,
    },
    /// Run Debian's `prometheus` on 9010 scraping the cluster (replaces this process).
    Prometheus(PrometheusFlags),
}

/// The shipped Prometheus configuration: every target of the default one-node cluster.
const PROMETHEUS_YML: &str = include_str!("../../../../deploy/prometheus/prometheus.yml");

#[derive(clap::Args, Debug)]
struct PrometheusFlags {
    /// Configuration file (default: the shipped deploy/prometheus/prometheus.yml, written to
    /// the storage directory).
    #[arg(long = "config")]
    config: Option<PathBuf>,
    /// Address Prometheus listens on.
    #[arg(long = "listen_address", default_value = "0.0.0.0:9010")]
    listen_address: String,
    /// Where Prometheus keeps its data (default: ~/var/aisql/prometheus).
    #[arg(long = "storage_path")]
    storage_path: Option<PathBuf>,
    /// The prometheus binary.
    #[arg(long = "prometheus_bin", default_value = "prometheus")]
    prometheus_bin: PathBuf,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ListWhat {
    Servers,
    Tables,
    Tablets,
}

#[derive(clap::Args, Debug)]
struct AdminFlags {
    /// The mservers to ask.
    #[arg(long = "mserver_addrs", default_value = "127.0.0.1:11000", value_parser = bins::addr_list)]
    mserver_addrs: AddrList,
    /// Print JSON instead of a table.
    #[arg(long = "json")]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct StartFlags {
    /// Where data lives (mserver/ and dbserver/ below it).
    #[arg(long = "base_dir")]
    base_dir: Option<PathBuf>,
    /// Interface every listener binds to.
    #[arg(long = "bind_ip", default_value = "0.0.0.0")]
    bind_ip: String,
    /// Address the servers advertise to each other and to clients.
    #[arg(long = "advertise_address", default_value = "127.0.0.1")]
    advertise_address: String,
    #[arg(long = "mserver_rpc_port", default_value_t = 11000)]
    mserver_rpc_port: u16,
    #[arg(long = "mserver_webserver_port", default_value_t = 10000)]
    mserver_webserver_port: u16,
    #[arg(long = "dbserver_rpc_port", default_value_t = 21000)]
    dbserver_rpc_port: u16,
    #[arg(long = "dbserver_webserver_port", default_value_t = 20000)]
    dbserver_webserver_port: u16,
    #[arg(long = "pgsql_proxy_bind_address", default_value = "0.0.0.0:2521", value_parser = bins::host_port)]
    pgsql_proxy_bind_address: String,
    #[arg(long = "cql_proxy_bind_address", default_value = "0.0.0.0:9542", value_parser = bins::host_port)]
    cql_proxy_bind_address: String,
    #[arg(long = "redis_proxy_bind_address", default_value = "0.0.0.0:6879", value_parser = bins::host_port)]
    redis_proxy_bind_address: String,
    #[arg(long = "pgsql_proxy_webserver_port", default_value_t = 8100)]
    pgsql_proxy_webserver_port: u16,
    #[arg(long = "cql_proxy_webserver_port", default_value_t = 8200)]
    cql_proxy_webserver_port: u16,
    #[arg(long = "redis_proxy_webserver_port", default_value_t = 8300)]
    redis_proxy_webserver_port: u16,
    #[command(flatten)]
    apis: bins::ApiOptions,
}

fn main() {
    bins::block_on("aisql", async_main());
}

async fn async_main() {
    let (cli, matches) = bins::parse_with_matches::<Cli>();
    let result = match cli.cmd {
        Cmd::Start(f) => {
            bins::init_logging();
            let varz = matches
                .subcommand_matches("start")
                .map(bins::flag_values)
                .unwrap_or_default();
            start(f, varz).await
        }
        Cmd::Prometheus(f) => prometheus(f),
        Cmd::List { what, admin } => list(what, admin).await,
        Cmd::CreateNamespace { name, admin } => client(&admin)
            .create_namespace(&name, true)
            .await
            .map_err(Into::into),
        Cmd::CreateTable {
            name,
            num_tablets,
            range,
            replication_factor,
            admin,
        } => create_table(&name, num_tablets, range, replication_factor, &admin).await,
        Cmd::Put {
            table,
            key,
            value,
            admin,
        } => put(&table, &key, &value, &admin).await,
        Cmd::Get { table, key, admin } => get(&table, &key, &admin).await,
    };
    if let Err(e) = result {
        eprintln!("aisql: {e:#}");
        std::process::exit(1);
    }
}

async fn start(f: StartFlags, varz: Vec<(String, String)>) -> Result<()> {
    f.apis.validate()?;
    let base = f
        .base_dir
        .clone()
        .unwrap_or_else(|| bins::default_data_dir(""));
    let ip = &f.bind_ip;
    // Bind everything first: a taken port stops us before any data is written.
    let m = MserverListeners {
        rpc: bins::bind(
            "--mserver_rpc_port",
            &format!("{ip}:{}", f.mserver_rpc_port),
        )?,
        web: bins::bind(
            "--mserver_webserver_port",
            &format!("{ip}:{}", f.mserver_webserver_port),
        )?,
    };
    let d = DbAddrs {
        rpc: &format!("{ip}:{}", f.dbserver_rpc_port),
        web: format!("{ip}:{}", f.dbserver_webserver_port),
        pgsql: &f.pgsql_proxy_bind_address,
        cql: &f.cql_proxy_bind_address,
        redis: &f.redis_proxy_bind_address,
        web_interface: ip,
        pgsql_web_port: f.pgsql_proxy_webserver_port,
        cql_web_port: f.cql_proxy_webserver_port,
        redis_web_port: f.redis_proxy_webserver_port,
    }
    .bind()?;
    let adv = &f.advertise_address;
    let port = |l: &std::net::TcpListener| l.local_addr().map(|a| a.port()).unwrap_or(0);
    let mserver_addr = format!("{adv}:{}", port(&m.rpc));
    let dbserver_addr = format!("{adv}:{}", port(&d.rpc));
    let endpoints = [
        ("bm-mserver RPC", mserver_addr.clone()),
        (
            "bm-mserver web UI",
            format!("http://{adv}:{}/", port(&m.web)),
        ),
        ("bm-dbserver RPC", dbserver_addr.clone()),
        (
            "bm-dbserver web UI",
            format!("http://{adv}:{}/", port(&d.web)),
        ),
        ("BSQL (PostgreSQL)", format!("{adv}:{}", port(&d.pgsql))),
        ("BCQL (Cassandra)", format!("{adv}:{}", port(&d.cql))),
        ("BEDIS (Redis)", format!("{adv}:{}", port(&d.redis))),
        (
            "BSQL metrics",
            format!("http://{adv}:{}/prometheus-metrics", port(&d.pgsql_web)),
        ),
        (
            "BCQL metrics",
            format!("http://{adv}:{}/prometheus-metrics", port(&d.cql_web)),
        ),
        (
            "BEDIS metrics",
            format!("http://{adv}:{}/prometheus-metrics", port(&d.redis_web)),
        ),
    ];
    let http_addr = format!("{adv}:{}", port(&d.web));
    let timing = consensus::Timing::default();
    let mcfg = mserver::MserverConfig {
        rpc_addr: mserver_addr.clone(),
        mserver_addrs: vec![mserver_addr.clone()],
        http_addr: format!("{adv}:{}", port(&m.web)),
        data_dir: base.join("mserver"),
        replication_factor: 1,
        dbserver_unresponsive_timeout_ms: 60_000,
        timing,
    };
    let dcfg = dbserver::DbServerConfig {
        rpc_addr: dbserver_addr,
        http_addr,
        // Set by `run_dbserver` from the BCQL listener.
        cql_addr: String::new(),
        mserver_addrs: vec![mserver_addr],
        data_dir: base.join("dbserver"),
        timing,
        heartbeat_interval_ms: 500,
        history_retention_secs: 900,
        // One server, one clock: no skew to allow for.
        max_clock_skew_usec: 0,
    };
    let shutdown = bins::shutdown_signal();
    let ms = tokio::spawn(bins::run_mserver(m, mcfg, varz.clone(), shutdown.clone()));
    let ds = tokio::spawn(bins::run_dbserver(d, dcfg, f.apis, varz, shutdown.clone()));
    println!("AiSQL is starting; data in {}", base.display());
    for (name, addr) in endpoints {
        println!("  {name:<20} {addr}");
    }
    println!("Press Ctrl-C to stop.");
    let (a, b) = tokio::join!(ms, ds);
    a.map_err(|e| anyhow!("mserver task: {e}"))??;
    b.map_err(|e| anyhow!("dbserver task: {e}"))??;
    println!("AiSQL stopped.");
    Ok(())
}

/// Exec Debian's prometheus with the shipped (or given) configuration.
fn prometheus(f: PrometheusFlags) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let storage = f
        .storage_path
        .unwrap_or_else(|| bins::default_data_dir("prometheus"));
    std::fs::create_dir_all(&storage)
        .map_err(|e| anyhow!("creating {}: {e}", storage.display()))?;
    let config = match f.config {
        Some(c) => c,
        None => {
            let c = storage.join("prometheus.yml");
            std::fs::write(&c, PROMETHEUS_YML)
                .map_err(|e| anyhow!("writing {}: {e}", c.display()))?;
            c
        }
    };
    println!(
        "prometheus on http://{}/targets, config {}, data in {}",
        f.listen_address,
        config.display(),
        storage.display()
    );
    let err = std::process::Command::new(&f.prometheus_bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address={}", f.listen_address))
        .arg(format!(
            "--storage.tsdb.path={}",
            storage.join("data").display()
        ))
        .exec();
    bail!(
        "cannot run {} ({err}); on Debian: apt-get install prometheus",
        f.prometheus_bin.display()
    )
}

fn client(a: &AdminFlags) -> client::Client {
    client::Client::new(a.mserver_addrs.0.clone()).with_timeout(std::time::Duration::from_secs(10))
}

fn split_name(name: &str) -> Result<(&str, &str)> {
    name.split_once('.')
        .ok_or_else(|| anyhow!("table name must be NAMESPACE.NAME, got '{name}'"))
}

/// Print rows as an aligned table.
fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!(
        "{}",
        line(header.iter().map(|s| s.to_string()).collect()).trim_end()
    );
    for r in rows {
        println!("{}", line(r).trim_end());
    }
}

async fn list(what: ListWhat, a: AdminFlags) -> Result<()> {
    let c = client(&a);
    match what {
        ListWhat::Servers => {
            let r = c.list_servers().await?;
            if a.json {
                let v = json!({
                    "mservers": r.mservers.iter().map(|m| json!({"node_id": m.node_id, "rpc_addr": m.rpc_addr, "role": m.role})).collect::<Vec<_>>(),
                    "dbservers": r.servers.iter().map(|s| json!({
                        "uuid": s.server_uuid, "rpc_addr": s.rpc_addr, "http_addr": s.http_addr, "alive": s.alive,
                        "heartbeat_age_ms": (s.heartbeat_age_ms != u64::MAX).then_some(s.heartbeat_age_ms),
                        "tablets": s.num_tablets, "leaders": s.num_leaders, "disk_bytes": s.disk_bytes,
                    })).collect::<Vec<_>>(),
                    "replication_factor": r.replication_factor,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let mut rows: Vec<Vec<String>> = r
                    .mservers
                    .iter()
                    .map(|m| {
                        vec![
                            "mserver".into(),
                            m.rpc_addr.clone(),
                            m.role.clone(),
                            "-".into(),
                            "-".into(),
                            "-".into(),
                        ]
                    })
                    .collect();
                for s in &r.servers {
                    let age = if s.heartbeat_age_ms == u64::MAX {
                        "-".into()
                    } else {
                        format!("{}ms", s.heartbeat_age_ms)
                    };
                    rows.push(vec![
                        "dbserver".into(),
                        s.rpc_addr.clone(),
                        if s.alive {
                            "ALIVE".into()
                        } else {
                            "DEAD".into()
                        },
                        age,
                        s.num_tablets.to_string(),
                        s.num_leaders.to_string(),
                    ]);
                }
                print_table(
                    &[
                        "KIND",
                        "ADDRESS",
                        "STATE",
                        "HEARTBEAT",
                        "TABLETS",
                        "LEADERS",
                    ],
                    rows,
                );
            }
        }
        ListWhat::Tables => {
            let r = c.list_tables().await?;
            if a.json {
                let v = json!({
                    "namespaces": r.namespaces,
                    "tables": r.tables.iter().map(|t| json!({
                        "id": t.table_id, "namespace": t.namespace_name, "name": t.name, "tablets": t.num_tablets,
                        "range_partitioned": t.range_partitioned, "replication_factor": t.replication_factor,
                    })).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows = r
                    .tables
                    .iter()
                    .map(|t| {
                        vec![
                            t.namespace_name.clone(),
                            t.name.clone(),
                            t.table_id.clone(),
                            t.num_tablets.to_string(),
                            if t.range_partitioned {
                                "range".into()
                            } else {
                                "hash".into()
                            },
                            t.replication_factor.to_string(),
                        ]
                    })
                    .collect();
                print_table(
                    &["NAMESPACE", "TABLE", "ID", "TABLETS", "PARTITIONING", "RF"],
                    rows,
                );
            }
        }
        ListWhat::Tablets => {
            let r = c.list_tablets().await?;
            let names: std::collections::HashMap<_, _> = r
                .tables
                .iter()
                .map(|t| {
                    (
                        t.table_id.clone(),
                        format!("{}.{}", t.namespace_name, t.name),
                    )
                })
                .collect();
            if a.json {
                let v: Vec<_> = r
                    .tablets
                    .iter()
                    .map(|t| {
                        json!({
                            "tablet_id": t.tablet_id, "table": names.get(&t.table_id), "hash_start": t.hash_start, "hash_end": t.hash_end,
                            "leader": t.replicas.iter().find(|x| x.is_leader).map(|x| x.rpc_addr.clone()),
                            "replicas": t.replicas.iter().map(|x| json!({"uuid": x.server_uuid, "rpc_addr": x.rpc_addr, "leader": x.is_leader, "alive": x.alive})).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows = r
                    .tablets
                    .iter()
                    .map(|t| {
                        vec![
                            names.get(&t.table_id).cloned().unwrap_or_default(),
                            t.tablet_id.clone(),
                            format!("[{}, {})", t.hash_start, t.hash_end),
                            t.replicas
                                .iter()
                                .find(|x| x.is_leader)
                                .map(|x| x.rpc_addr.clone())
                                .unwrap_or_else(|| "-".into()),
                            t.replicas
                                .iter()
                                .map(|x| x.rpc_addr.clone())
                                .collect::<Vec<_>>()
                                .join(","),
                        ]
                    })
                    .collect();
                print_table(
                    &["TABLE", "TABLET", "HASH RANGE", "LEADER", "REPLICAS"],
                    rows,
                );
            }
        }
    }
    Ok(())
}

async fn create_table(
    name: &str,
    num_tablets: u32,
    range: bool,
    rf: u32,
    a: &AdminFlags,
) -> Result<()> {
    let (ns, table) = split_name(name)?;
    let c = client(a);
    c.create_namespace(ns, true).await?;
    let info = c
        .create_table(rpc::mserver::CreateTableRequest {
            namespace_name: ns.into(),
            name: table.into(),
            schema: vec![],
            num_tablets,
            range_partitioned: range,
            replication_factor: rf,
            if_not_exists: false,
        })
        .await?;
    let t = c.open_table(ns, table).await?;
    c.wait_for_leaders(&t).await?;
    if a.json {
        println!(
            "{}",
            json!({"id": info.table_id, "tablets": info.num_tablets})
        );
    } else {
        println!(
            "created {name} ({} tablets, id {})",
            info.num_tablets, info.table_id
        );
    }
    Ok(())
}

async fn put(name: &str, key: &str, value: &str, a: &AdminFlags) -> Result<()> {
    let (ns, table) = split_name(name)?;
    let c = client(a);
    let t = c.open_table(ns, table).await?;
    let ht = c.put(&t, key.as_bytes(), value.as_bytes()).await?;
    println!("OK {}", ht.0);
    Ok(())
}

async fn get(name: &str, key: &str, a: &AdminFlags) -> Result<()> {
    let (ns, table) = split_name(name)?;
    let c = client(a);
    let t = c.open_table(ns, table).await?;
    match c.get(&t, key.as_bytes()).await? {
        Some(v) => println!("{}", String::from_utf8_lossy(&v)),
        None => bail!("key not found"),
    }
    Ok(())
}
