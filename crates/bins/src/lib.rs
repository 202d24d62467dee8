//! Shared plumbing of the AiSQL binaries: flag parsing (with `--flagfile`), logging (to
//! stderr and to the ring buffer behind `/logs`), binding every listener before anything
//! touches the data directory, signal handling, and the start-up of an mserver or a dbserver
//! with all of its listeners, web UIs and metrics ports.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use clap::{ArgMatches, Parser};
use common::metrics::ApiMetrics;
use tokio::sync::watch;

// glibc malloc fragments under the store's churn of small keys and values (its slow path
// was ~25 % of a write-heavy profile); mimalloc keeps per-thread free lists. Built with
// `no_thp`: with transparent huge pages every page mimalloc purged and touched again was a
// fresh 2 MiB page for the kernel to zero (~6 % of the CPU of an RF=3 write load).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    parse_with_matches::<T>().0
}

/// [`parse`], also returning clap's matches (for [`flag_values`]).
pub fn parse_with_matches<T: Parser>() -> (T, ArgMatches) {
    let args = match common::flags::expand_flagfile(std::env::args().collect()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let matches = T::command().get_matches_from(args);
    match T::from_arg_matches(&matches) {
        Ok(t) => (t, matches),
        Err(e) => e.exit(),
    }
}

/// Every flag's effective value (given or default), sorted by name, for `/varz`.
pub fn flag_values(m: &ArgMatches) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = m
        .ids()
        .filter_map(|id| {
            let raw = m.try_get_raw(id.as_str()).ok()??;
            let vals: Vec<String> = raw.map(|r| r.to_string_lossy().into_owned()).collect();
            Some((id.as_str().to_owned(), vals.join(",")))
        })
        .collect();
    v.sort();
    v
}

/// Log to stderr and keep the recent lines for `/logs` (`RUST_LOG` overrides the filter).
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,openraft=warn,h2=warn,tower=warn,fjall=warn,lsm_tree=warn",
        )
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .with(web::logs::layer())
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

/// Where clients of another server reach an API `listener`: its own address, or on a
/// wildcard bind the host the server advertises for RPC (`rpc_addr`).
pub fn api_addr(listener: &TcpListener, rpc_addr: &str) -> String {
    let Ok(a) = listener.local_addr() else {
        return String::new();
    };
    if !a.ip().is_unspecified() {
        return a.to_string();
    }
    let host = rpc_addr.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
    format!("{host}:{}", a.port())
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

/// Run an mserver until `shutdown`; `flags` are shown on its `/varz`.
pub async fn run_mserver(
    l: MserverListeners,
    config: mserver::MserverConfig,
    flags: Vec<(String, String)>,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let m = mserver::Mserver::start(config)
        .await
        .context("starting bm-mserver")?;
    let app = mserver::web_ui::router(m.clone(), flags);
    let web = tokio::spawn(web::serve(l.web, app, until(shutdown.clone())));
    m.serve(l.rpc, until(shutdown))
        .await
        .context("bm-mserver")?;
    let _ = web.await;
    Ok(())
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

/// The metrics of the three client APIs, each served on its own metrics port. A query layer
/// reports to its own (`bsql`, `bcql`, `bedis`): pass the clone to its `serve`.
#[derive(Clone, Debug)]
pub struct ApiPorts {
    pub bsql: ApiMetrics,
    pub bcql: ApiMetrics,
    pub bedis: ApiMetrics,
}

impl ApiPorts {
    fn new() -> Self {
        Self {
            bsql: ApiMetrics::new("bsql"),
            bcql: ApiMetrics::new("bcql"),
            bedis: ApiMetrics::new("bedis"),
        }
    }
}

/// The web app of an API metrics port: `/prometheus-metrics` with that API's metrics and the
/// process's.
fn api_metrics_app(name: &str, metrics: &ApiMetrics) -> axum::Router {
    let registry = common::metrics::Registry::new();
    metrics.register(&registry);
    web::metrics_only(Arc::new(web::Site {
        server: format!("AiSQL {name} metrics"),
        nav: Vec::new(),
        flags: Vec::new(),
        metrics: registry,
        started: std::time::Instant::now(),
    }))
}

/// Flags of the client APIs a dbserver serves (shared by `bm-dbserver` and `aisql start`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ApiOptions {
    /// BCQL clients must log in with a role and password (PasswordAuthenticator; the first
    /// role is cassandra/cassandra). `--use_cassandra_authentication` or `=true|false`.
    #[arg(
        long = "use_cassandra_authentication",
        value_name = "BOOL",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub cql_password_auth: bool,
    /// BSQL clients must log in with a role's password (SCRAM-SHA-256; the role `yugabyte`
    /// has the password `yugabyte` until it is changed). `--bsql_enable_auth` or
    /// `=true|false`.
    #[arg(
        long = "bsql_enable_auth",
        value_name = "BOOL",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub sql_password_auth: bool,
    /// PEM certificate (chain) BSQL offers to clients that ask for TLS (`sslmode=require`);
    /// with `--bsql_ssl_key_file`. Without them SSLRequest is answered `N`.
    #[arg(
        long = "bsql_ssl_cert_file",
        value_name = "PATH",
        requires = "sql_ssl_key"
    )]
    pub sql_ssl_cert: Option<std::path::PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `--bsql_ssl_cert_file`.
    #[arg(
        long = "bsql_ssl_key_file",
        value_name = "PATH",
        requires = "sql_ssl_cert"
    )]
    pub sql_ssl_key: Option<std::path::PathBuf>,
}

impl ApiOptions {
    /// Check what can be checked before anything starts (the BSQL certificate and key).
    pub fn validate(&self) -> Result<()> {
        if let (Some(cert), Some(key)) = (&self.sql_ssl_cert, &self.sql_ssl_key) {
            bsql::tls_acceptor(cert, key).context("BSQL TLS")?;
        }
        Ok(())
    }
}

/// Run a dbserver with all its listeners until `shutdown`; `flags` are shown on its `/varz`.
pub async fn run_dbserver(
    l: DbListeners,
    mut config: dbserver::DbServerConfig,
    apis: ApiOptions,
    flags: Vec<(String, String)>,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    config.cql_addr = api_addr(&l.cql, &config.rpc_addr);
    // A bad certificate or key stops the server before it starts, naming the file.
    let sql_tls = match (&apis.sql_ssl_cert, &apis.sql_ssl_key) {
        (Some(cert), Some(key)) => Some(bsql::tls_acceptor(cert, key).context("BSQL TLS")?),
        _ => None,
    };
    let server = dbserver::DbServer::start(config)
        .await
        .context("starting bm-dbserver")?;
    let mut tasks = Vec::new();
    let app = dbserver::web_ui::router(server.clone(), flags);
    tasks.push(tokio::spawn(web::serve(
        l.web,
        app,
        until(shutdown.clone()),
    )));
    let api = ApiPorts::new();
    for (listener, name, metrics) in [
        (l.pgsql_web, "BSQL", &api.bsql),
        (l.cql_web, "BCQL", &api.bcql),
        (l.redis_web, "BEDIS", &api.bedis),
    ] {
        tasks.push(tokio::spawn(web::serve(
            listener,
            api_metrics_app(name, metrics),
            until(shutdown.clone()),
        )));
    }
    tasks.push(tokio::spawn(bedis::serve(
        l.redis,
        server.local_client(),
        // Tablets per live dbserver of each BEDIS database (see `bedis::serve`).
        common::tuning_knob("AISQL_BEDIS_TABLETS_PER_SERVER", 2),
        api.bedis.clone(),
        until(shutdown.clone()),
    )));
    tasks.push(tokio::spawn(bsql::serve(
        l.pgsql,
        server.local_client(),
        bsql::Config {
            num_tablets: 4,
            password_auth: apis.sql_password_auth,
            tls: sql_tls,
        },
        api.bsql.clone(),
        until(shutdown.clone()),
    )));
    tasks.push(tokio::spawn(bcql::serve(
        l.cql,
        server.local_client(),
        bcql::Config {
            server_uuid: server.uuid().to_owned(),
            num_tablets: 4,
            password_auth: apis.cql_password_auth,
        },
        api.bcql.clone(),
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

/// Stack of each runtime thread: statements run deep async state machines (BSQL's EXECUTE
/// of a prepared UPDATE nests two), which debug builds keep large.
const THREAD_STACK: usize = 16 << 20;

/// Run `main` on a multi-threaded tokio runtime whose threads have [`THREAD_STACK`]; a
/// runtime that cannot start ends the process (exit code 1), naming `program`.
pub fn block_on(program: &str, main: impl std::future::Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK)
        .build();
    match runtime {
        Ok(rt) => rt.block_on(main),
        Err(e) => {
            eprintln!("{program}: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    }
}
