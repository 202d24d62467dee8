//! Shared plumbing of the AiSQL binaries: flag parsing (with `--flagfile`), logging, binding
//! every listener before anything touches the data directory, signal handling, and the
//! start-up of an mserver or a dbserver with all of its listeners.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use tokio::sync::watch;

/// A comma-separated `host:port` list flag.
#[derive(Clone, Debug)]
pub struct AddrList(pub Vec<String>);

pub fn addr_list(s: &str) -> Result<AddrList, String> {
    common::flags::parse_addr_list(s).map(AddrList)
}

pub fn host_port(s: &str) -> Result<String, String> {
    common::flags::parse_host_port(s)
}

/// Parse the command line of `T`, inlining `--flagfile`s. Bad flags exit with code 2.
pub fn parse<T: Parser>() -> T {
    match common::flags::expand_flagfile(std::env::args().collect()) {
        Ok(args) => T::parse_from(args),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,openraft=warn,h2=warn,tower=warn,fjall=warn,lsm_tree=warn",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Bind `addr` for `flag`, with an error that names both.
pub fn bind(flag: &str, addr: &str) -> Result<TcpListener> {
    let sock =
        common::flags::resolve(addr).with_context(|| format!("{flag}: cannot resolve {addr}"))?;
    TcpListener::bind(sock).map_err(|e| {
        anyhow!(
            "cannot listen on {addr} (port {}, {flag}): {e}",
            sock.port()
        )
    })
}

/// `host:port` with `0.0.0.0` replaced by `127.0.0.1` (an address others can dial here).
pub fn dialable(addr: &str, listener: &TcpListener) -> String {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or("127.0.0.1");
    let host = if host == "0.0.0.0" || host == "[::]" || host == "::" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{port}")
}

/// A receiver that turns `true` on Ctrl-C or SIGTERM.
pub fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        let _ = tx.send(true);
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    rx
}

/// A future that resolves when `rx` turns true.
pub async fn until(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

pub fn raft_timing(heartbeat_ms: u64, missed: u64) -> consensus::Timing {
    let min = heartbeat_ms.max(10) * missed.max(2);
    consensus::Timing {
        heartbeat_interval_ms: heartbeat_ms.max(10),
        election_timeout_min_ms: min,
        election_timeout_max_ms: min * 2,
    }
}

/// The address peers use to reach a server: `--server_broadcast_addresses` if given, else
/// the bound RPC address made dialable.
pub fn advertised(broadcast: Option<&AddrList>, bind_addr: &str, rpc: &TcpListener) -> String {
    match broadcast {
        Some(b) => b.0[0].clone(),
        None => dialable(bind_addr, rpc),
    }
}

/// The first of `--fs_data_dirs`, or `~/var/aisql/<sub>`.
pub fn data_dir(fs_data_dirs: Option<&str>, sub: &str) -> PathBuf {
    fs_data_dirs
        .and_then(|d| d.split(',').next())
        .map(PathBuf::from)
        .unwrap_or_else(|| default_data_dir(sub))
}

pub fn default_data_dir(sub: &str) -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join("var").join("aisql").join(sub)
}

/// Listeners of an mserver, bound up front.
pub struct MserverListeners {
    pub rpc: TcpListener,
    pub web: TcpListener,
}

/// Run an mserver until `shutdown`.
pub async fn run_mserver(
    l: MserverListeners,
    config: mserver::MserverConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let m = mserver::Mserver::start(config)
        .await
        .context("starting bm-mserver")?;
    let web_src: Arc<dyn web::WebSource> = Arc::new(MserverPage(m.clone()));
    let web = tokio::spawn(web::serve(l.web, web_src, until(shutdown.clone())));
    m.serve(l.rpc, until(shutdown))
        .await
        .context("bm-mserver")?;
    let _ = web.await;
    Ok(())
}

struct MserverPage(Arc<mserver::Mserver>);

impl web::WebSource for MserverPage {
    fn title(&self) -> String {
        format!("bm-mserver node {}", self.0.node_id())
    }
    fn home_html(&self) -> String {
        let c = self.0.catalog();
        let leader = if self.0.is_leader() {
            "this mserver".to_string()
        } else {
            self.0.leader_addr().unwrap_or_else(|| "unknown".into())
        };
        let mut s = format!(
            "<p>Catalog leader: {}</p><p>{} dbservers, {} tables, {} tablets</p><h2>Tables</h2><table><tr><th>namespace</th><th>table</th><th>tablets</th><th>RF</th></tr>",
            web::escape(&leader),
            c.servers.len(),
            c.tables.len(),
            c.tablets.len()
        );
        for t in c.tables.values() {
            s.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                web::escape(&t.namespace),
                web::escape(&t.name),
                t.tablet_ids.len(),
                t.replication_factor
            ));
        }
        s.push_str(
            "</table><h2>Dbservers</h2><table><tr><th>uuid</th><th>rpc</th><th>http</th></tr>",
        );
        for sv in c.servers.values() {
            s.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                web::escape(&sv.server_uuid),
                web::escape(&sv.rpc_addr),
                web::escape(&sv.http_addr)
            ));
        }
        s + "</table>"
    }
    fn metrics(&self) -> String {
        let c = self.0.catalog();
        let mut out = String::new();
        web::metric(
            &mut out,
            "aisql_mserver_is_leader",
            "gauge",
            "1 if this mserver leads the catalog.",
            u8::from(self.0.is_leader()),
        );
        web::metric(
            &mut out,
            "aisql_mserver_tables",
            "gauge",
            "Tables in the catalog.",
            c.tables.len(),
        );
        web::metric(
            &mut out,
            "aisql_mserver_tablets",
            "gauge",
            "Tablets in the catalog.",
            c.tablets.len(),
        );
        web::metric(
            &mut out,
            "aisql_mserver_dbservers",
            "gauge",
            "Registered dbservers.",
            c.servers.len(),
        );
        out
    }
}

/// Listeners of a dbserver, bound up front.
pub struct DbListeners {
    pub rpc: TcpListener,
    pub web: TcpListener,
    pub pgsql: TcpListener,
    pub cql: TcpListener,
    pub redis: TcpListener,
    pub pgsql_web: TcpListener,
    pub cql_web: TcpListener,
    pub redis_web: TcpListener,
}

/// Every address a dbserver listens on, with the flag that sets it.
pub struct DbAddrs<'a> {
    pub rpc: &'a str,
    pub web: String,
    pub pgsql: &'a str,
    pub cql: &'a str,
    pub redis: &'a str,
    pub web_interface: &'a str,
    pub pgsql_web_port: u16,
    pub cql_web_port: u16,
    pub redis_web_port: u16,
}

impl DbAddrs<'_> {
    pub fn bind(&self) -> Result<DbListeners> {
        let w = |p: u16| format!("{}:{p}", self.web_interface);
        Ok(DbListeners {
            rpc: bind("--rpc_bind_addresses", self.rpc)?,
            web: bind("--webserver_port", &self.web)?,
            pgsql: bind("--pgsql_proxy_bind_address", self.pgsql)?,
            cql: bind("--cql_proxy_bind_address", self.cql)?,
            redis: bind("--redis_proxy_bind_address", self.redis)?,
            pgsql_web: bind("--pgsql_proxy_webserver_port", &w(self.pgsql_web_port))?,
            cql_web: bind("--cql_proxy_webserver_port", &w(self.cql_web_port))?,
            redis_web: bind("--redis_proxy_webserver_port", &w(self.redis_web_port))?,
        })
    }
}

/// The metrics page of an API port: its name and whether its query layer is built in.
struct ApiPage(&'static str, bool);

impl web::WebSource for ApiPage {
    fn title(&self) -> String {
        format!("AiSQL {} metrics", self.0)
    }
    fn home_html(&self) -> String {
        "<p>Metrics at <a href=\"/prometheus-metrics\">/prometheus-metrics</a>.</p>".into()
    }
    fn metrics(&self) -> String {
        let mut out = String::new();
        web::metric(
            &mut out,
            "aisql_api_available",
            "gauge",
            "1 when this API's query layer is built in.",
            u8::from(self.1),
        );
        out
    }
}

/// Run a dbserver with all its listeners until `shutdown`.
pub async fn run_dbserver(
    l: DbListeners,
    config: dbserver::DbServerConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let server = dbserver::DbServer::start(config)
        .await
        .context("starting bm-dbserver")?;
    let mut tasks = Vec::new();
    let page: Arc<dyn web::WebSource> = Arc::new(dbserver::WebPage(server.clone()));
    tasks.push(tokio::spawn(web::serve(
        l.web,
        page,
        until(shutdown.clone()),
    )));
    for (listener, name, available) in [
        (l.pgsql_web, "BSQL", true),
        (l.cql_web, "BCQL", false),
        (l.redis_web, "BEDIS", true),
    ] {
        tasks.push(tokio::spawn(web::serve(
            listener,
            Arc::new(ApiPage(name, available)),
            until(shutdown.clone()),
        )));
    }
    tasks.push(tokio::spawn(bedis::serve(
        l.redis,
        server.local_client(),
        8,
        until(shutdown.clone()),
    )));
    tasks.push(tokio::spawn(bsql::serve(
        l.pgsql,
        server.local_client(),
        4,
        until(shutdown.clone()),
    )));
    tasks.push(tokio::spawn(dbserver::serve_placeholder(
        l.cql,
        dbserver::Protocol::Cql,
        until(shutdown.clone()),
    )));
    server
        .serve(l.rpc, until(shutdown))
        .await
        .context("bm-dbserver")?;
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}
