//! The cluster test harness. [`Cluster`] starts real `bm-mserver` / `bm-dbserver` processes
//! on ephemeral ports of distinct 127.0.0.x addresses, each with its own data directory, and
//! stops them by PID when dropped — also when a test fails. Tests kill (`kill -9`) and
//! restart single nodes and talk to the cluster through the client library.
//!
//! Binaries are taken from the cargo target directory the test runs from (build them first:
//! `cargo build --bins`), or from `$AISQL_BIN_DIR`.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Where the binaries are.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("AISQL_BIN_DIR") {
        return PathBuf::from(d);
    }
    // target/<profile>/deps/<test-binary>
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not found: run `cargo build --bins` first",
        p.display()
    );
    p
}

static NEXT_IP: AtomicU8 = AtomicU8::new(0);

/// A loopback address no other cluster of this test process uses (127.0.0.2 …).
pub fn fresh_ip() -> String {
    let pid_part = (std::process::id() % 50) as u8 * 4;
    let n = NEXT_IP.fetch_add(1, Ordering::SeqCst);
    format!("127.0.{}.{}", 1 + pid_part, 2 + n)
}

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A port that was free on `ip` a moment ago. Ports come from 10000–29999 (never AiSQL's
/// defaults), below the
/// kernel's ephemeral range (32768+), so a client socket's local port cannot take one
/// between this check and the server's bind.
pub fn free_port(ip: &str) -> u16 {
    let ip: Ipv4Addr = ip.parse().expect("ip");
    let start = 10_000 + (std::process::id() % 400) as u16 * 50;
    for _ in 0..20_000 {
        let n = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        let port = 10_000 + (start - 10_000 + n) % 20_000;
        // Never AiSQL's default ports, so tests can run beside a real server.
        if [10000, 11000, 20000, 21000].contains(&port) {
            continue;
        }
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on {ip}")
}

/// `GET path` over HTTP/1.0 from `addr` (`host:port`): (status code, body). For the web
/// endpoints of the servers and of Prometheus.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_owned()))
}

/// A server process. Killed with SIGKILL when dropped.
pub struct Proc {
    pub name: String,
    bin: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    /// More environment for the next (re)start, e.g. `AISQL_FAILPOINT`.
    pub env: Vec<(String, String)>,
}

impl Proc {
    /// Start `bin` with `args`, stdout and stderr appended to `log` (also for tools such as
    /// prometheus: the process is killed by PID when dropped).
    pub fn spawn(name: &str, bin: PathBuf, args: Vec<String>, log: PathBuf) -> Proc {
        let mut p = Proc {
            name: name.into(),
            bin,
            args,
            log,
            child: None,
            env: Vec::new(),
        };
        p.start();
        p
    }

    /// (Re)start the process with its original arguments.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(&self.bin)
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("AISQL_TEST_RUST_LOG")
                    .unwrap_or_else(|_| "info,openraft=error".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the process has exited by itself (reaped then; `start` may run it again).
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(_))) => {
                self.child = None;
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait up to `timeout` for a clean exit; returns the exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// The last lines of the process's log (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let v: Vec<&str> = text.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Addresses of one dbserver.
#[derive(Clone, Debug)]
pub struct DbAddrs {
    pub ip: String,
    pub rpc: String,
    pub web: u16,
    pub pgsql: String,
    pub cql: String,
    pub redis: String,
    /// Metrics ports of BSQL, BCQL and BEDIS.
    pub pgsql_web: u16,
    pub cql_web: u16,
    pub redis_web: u16,
}

/// Options of a test cluster.
#[derive(Clone, Debug)]
pub struct ClusterOpts {
    pub mservers: usize,
    pub dbservers: usize,
    pub replication_factor: u32,
    pub unresponsive_timeout_ms: u64,
    /// More flags for every dbserver.
    pub dbserver_flags: Vec<String>,
}

impl Default for ClusterOpts {
    fn default() -> Self {
        Self {
            mservers: 1,
            dbservers: 1,
            replication_factor: 1,
            unresponsive_timeout_ms: 3000,
            dbserver_flags: Vec::new(),
        }
    }
}

/// A running test cluster.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub mservers: Vec<Proc>,
    pub dbservers: Vec<Proc>,
    pub mserver_addrs: Vec<String>,
    /// `host:port` of each mserver's web UI.
    pub mserver_web: Vec<String>,
    pub db_addrs: Vec<DbAddrs>,
}

impl Cluster {
    pub fn start(opts: ClusterOpts) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("aisql-test-")
            // AISQL_TEST_KEEP=1 keeps the data directories and logs for a post-mortem.
            .disable_cleanup(std::env::var_os("AISQL_TEST_KEEP").is_some())
            .tempdir()
            .expect("tempdir");
        let m_ips: Vec<String> = (0..opts.mservers).map(|_| fresh_ip()).collect();
        let mserver_addrs: Vec<String> = m_ips
            .iter()
            .map(|ip| format!("{ip}:{}", free_port(ip)))
            .collect();
        let list = mserver_addrs.join(",");
        let mut mservers = Vec::new();
        let mut mserver_web = Vec::new();
        for (i, addr) in mserver_addrs.iter().enumerate() {
            let ip = &m_ips[i];
            let web = free_port(ip);
            mserver_web.push(format!("{ip}:{web}"));
            let args = vec![
                format!("--rpc_bind_addresses={addr}"),
                format!("--mserver_addrs={list}"),
                format!("--webserver_interface={ip}"),
                format!("--webserver_port={web}"),
                format!(
                    "--fs_data_dirs={}",
                    dir.path().join(format!("m{i}")).display()
                ),
                format!("--replication_factor={}", opts.replication_factor),
                format!(
                    "--dbserver_unresponsive_timeout_ms={}",
                    opts.unresponsive_timeout_ms
                ),
            ];
            mservers.push(Proc::spawn(
                &format!("mserver{i}"),
                bin("bm-mserver"),
                args,
                dir.path().join(format!("m{i}.log")),
            ));
        }
        let mut dbservers = Vec::new();
        let mut db_addrs = Vec::new();
        for i in 0..opts.dbservers {
            let ip = fresh_ip();
            let a = DbAddrs {
                rpc: format!("{ip}:{}", free_port(&ip)),
                web: free_port(&ip),
                pgsql: format!("{ip}:{}", free_port(&ip)),
                cql: format!("{ip}:{}", free_port(&ip)),
                redis: format!("{ip}:{}", free_port(&ip)),
                pgsql_web: free_port(&ip),
                cql_web: free_port(&ip),
                redis_web: free_port(&ip),
                ip: ip.clone(),
            };
            let mut args = vec![
                format!("--rpc_bind_addresses={}", a.rpc),
                format!("--server_broadcast_addresses={}", a.rpc),
                format!("--dbserver_mserver_addrs={list}"),
                format!("--webserver_interface={ip}"),
                format!("--webserver_port={}", a.web),
                format!("--pgsql_proxy_bind_address={}", a.pgsql),
                format!("--cql_proxy_bind_address={}", a.cql),
                format!("--redis_proxy_bind_address={}", a.redis),
                format!("--pgsql_proxy_webserver_port={}", a.pgsql_web),
                format!("--cql_proxy_webserver_port={}", a.cql_web),
                format!("--redis_proxy_webserver_port={}", a.redis_web),
                format!(
                    "--fs_data_dirs={}",
                    dir.path().join(format!("d{i}")).display()
                ),
            ];
            args.extend(opts.dbserver_flags.iter().cloned());
            dbservers.push(Proc::spawn(
                &format!("dbserver{i}"),
                bin("bm-dbserver"),
                args,
                dir.path().join(format!("d{i}.log")),
            ));
            db_addrs.push(a);
        }
        Cluster {
            dir,
            mservers,
            dbservers,
            mserver_addrs,
            mserver_web,
            db_addrs,
        }
    }

    pub fn client(&self) -> client::Client {
        client::Client::new(self.mserver_addrs.clone())
    }

    /// Poll the mserver's server list until `done` holds of it; fail with `what` after 60 s.
    async fn wait_for_servers(
        &self,
        what: &str,
        done: impl Fn(&[rpc::mserver::ServerInfo]) -> bool,
    ) {
        let c = self.client().with_timeout(Duration::from_secs(5));
        let t0 = Instant::now();
        loop {
            if let Ok(r) = c.list_servers().await {
                if done(&r.servers) {
                    return;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "{what}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until `n` dbservers are registered and alive.
    pub async fn wait_for_dbservers(&self, n: usize) {
        self.wait_for_servers("dbservers did not register", |servers| {
            servers.iter().filter(|s| s.alive).count() >= n
        })
        .await
    }

    /// Wait until dbserver `i`, (re)started at `since`, has heartbeated since then: right
    /// after a `kill -9` and restart, the mserver still counts the old process as alive
    /// until it misses heartbeats, and [`Cluster::wait_for_dbservers`] would return at once.
    pub async fn wait_for_restart(&self, i: usize, since: Instant) {
        let rpc = &self.db_addrs[i].rpc;
        let what = format!("dbserver {i} did not heartbeat after its restart");
        self.wait_for_servers(&what, |servers| {
            servers.iter().any(|s| {
                &s.rpc_addr == rpc
                    && s.alive
                    && u128::from(s.heartbeat_age_ms) < since.elapsed().as_millis()
            })
        })
        .await
    }

    /// Create namespace `ns` (if needed) and table `ns.name`, and wait for its leaders.
    pub async fn create_table(&self, ns: &str, name: &str, num_tablets: u32) -> client::Table {
        let c = self.client();
        c.create_namespace(ns, true)
            .await
            .expect("create namespace");
        c.create_table(rpc::mserver::CreateTableRequest {
            namespace_name: ns.into(),
            name: name.into(),
            num_tablets,
            ..Default::default()
        })
        .await
        .expect("create table");
        let t = c.open_table(ns, name).await.expect("open table");
        c.wait_for_leaders(&t).await.expect("leaders");
        t
    }

    /// The last log lines of every process.
    pub fn logs(&self) -> String {
        self.mservers
            .iter()
            .chain(&self.dbservers)
            .map(|p| format!("--- {} ---\n{}", p.name, p.log_tail(15)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
