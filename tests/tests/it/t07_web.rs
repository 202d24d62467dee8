//! The web side of a one-node cluster (issue 4), with the real tools an operator uses:
//!
//! * every metrics endpoint (mserver, dbserver, BSQL, BCQL, BEDIS) passes `promtool check
//!   metrics` and reports what the test did; other paths answer 404; the JSON API answers;
//! * a real Prometheus, started with the shipped `deploy/prometheus/prometheus.yml` pointed at
//!   this cluster, reports every target `up` through `/api/v1/targets`;
//! * headless Chromium renders the mserver home page and the page of a table the test created
//!   over BSQL, and the DOM names the cluster's dbserver and table. Screenshots are kept under
//!   `target/test-artifacts/web/`.
//!
//! Needs `prometheus`, `promtool` (Debian package `prometheus`) and `chromium` on the PATH;
//! CI installs them (`.ci/run`), so a missing tool fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aisql_tests::{bin_dir, free_port, fresh_ip, http_get, Cluster, ClusterOpts, Proc};

/// `name` from the PATH, or a failure saying which Debian package provides it.
fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` not found on PATH: apt-get install {package}"))
}

fn get_ok(addr: &str, path: &str) -> String {
    let (code, body) = http_get(addr, path).unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"));
    assert_eq!(code, 200, "GET {addr}{path}: {body}");
    body
}

fn json(addr: &str, path: &str) -> serde_json::Value {
    let body = get_ok(addr, path);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{addr}{path} is not JSON ({e}): {body}"))
}

/// `promtool check metrics` on `text`; returns its complaints (empty if none).
fn promtool_check(promtool: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(said)
    }
}

/// Run headless Chromium with `args` (its stdout to `out`), killing it by PID after 60 s.
fn chromium(bin: &Path, profile: &Path, args: &[String], out: &Path) {
    let stdout = std::fs::File::create(out).expect("dom file");
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning chromium");
    let t0 = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            assert!(st.success(), "chromium {args:?} exited with {st}");
            return;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The DOM of `url` as Chromium renders it, and a screenshot saved as `shot`.
fn render(bin: &Path, work: &Path, url: &str, shot: &Path) -> String {
    let profile = tempfile::tempdir_in(work).expect("profile dir");
    let dom = work.join("dom.html");
    chromium(
        bin,
        profile.path(),
        &["--dump-dom".into(), url.into()],
        &dom,
    );
    let profile = tempfile::tempdir_in(work).expect("profile dir");
    chromium(
        bin,
        profile.path(),
        &[format!("--screenshot={}", shot.display()), url.into()],
        &work.join("screenshot.out"),
    );
    assert!(shot.exists(), "no screenshot of {url}");
    std::fs::read_to_string(&dom).expect("dom")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn web_ui_metrics_and_prometheus() {
    let promtool = tool("promtool", "prometheus");
    let prometheus = tool("prometheus", "prometheus");
    let chromium_bin = tool("chromium", "chromium");

    let cluster = Cluster::start(ClusterOpts::default());
    cluster.wait_for_dbservers(1).await;
    let mweb = cluster.mserver_web[0].clone();
    let d = cluster.db_addrs[0].clone();
    let dweb = format!("{}:{}", d.ip, d.web);
    let api_ports = [
        ("bsql", format!("{}:{}", d.ip, d.pgsql_web)),
        ("bcql", format!("{}:{}", d.ip, d.cql_web)),
        ("bedis", format!("{}:{}", d.ip, d.redis_web)),
    ];

    // Work through the APIs so the metrics have something to show.
    let (host, port) = d.pgsql.rsplit_once(':').unwrap();
    let (pg, conn) = tokio_postgres::connect(
        &format!("host={host} port={port} user=yugabyte dbname=yugabyte"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("BSQL connect");
    tokio::spawn(conn);
    pg.batch_execute(
        "create table web_orders (id bigint primary key, item text not null, qty int);
         insert into web_orders values (1, 'lamp', 2), (2, 'desk', 1);",
    )
    .await
    .expect("BSQL create and insert");
    let rows = pg
        .query("select item from web_orders where id = $1", &[&1i64])
        .await
        .expect("BSQL select");
    assert_eq!(rows.len(), 1);
    let mut redis = std::net::TcpStream::connect(&d.redis).expect("BEDIS connect");
    {
        use std::io::{Read, Write};
        redis
            .write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
            .unwrap();
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while !got.ends_with(b"$1\r\nv\r\n") {
            let n = redis.read(&mut buf).expect("BEDIS reply");
            assert!(n > 0, "BEDIS closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    }

    // Every metrics endpoint passes promtool and shows what happened; other paths are 404.
    let mut endpoints = vec![("mserver", mweb.clone()), ("dbserver", dweb.clone())];
    endpoints.extend(api_ports.iter().cloned());
    for (name, addr) in &endpoints {
        let text = get_ok(addr, "/prometheus-metrics");
        if let Err(e) = promtool_check(&promtool, &text) {
            panic!("promtool check metrics on {name} ({addr}):\n{e}");
        }
        for family in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_threads",
        ] {
            assert!(
                text.contains(&format!("\n{family} ")),
                "{name} lacks {family}"
            );
        }
        for path in [
            "/column_family/",
            "/column_family/name/ks:t",
            "/storage_service/x",
            "/nope",
        ] {
            let (code, _) = http_get(addr, path).unwrap();
            assert_eq!(code, 404, "{name} {path}");
        }
    }
    let m = get_ok(&mweb, "/prometheus-metrics");
    assert!(m.contains("aisql_mserver_is_leader 1"), "{m}");
    assert!(m.contains("aisql_rpc_requests_total{service=\"MserverService\",method=\"Heartbeat\"}"));
    assert!(m.contains("aisql_raft_term{group=\"sys.catalog\"}"));
    let db = get_ok(&dweb, "/prometheus-metrics");
    for s in [
        "aisql_tablet_requests_total{op=\"write\"}",
        "aisql_raft_log_append_duration_seconds_bucket",
        "aisql_raft_leader_changes_total",
        "aisql_storage_disk_bytes",
        "aisql_storage_compactions_total",
        "aisql_storage_cf_write_stalled{cf=\"data\"} 0",
    ] {
        assert!(db.contains(s), "dbserver metrics lack {s}");
    }
    let bsql = get_ok(&api_ports[0].1, "/prometheus-metrics");
    assert!(
        bsql.contains("aisql_api_commands_total{api=\"bsql\",command=\"create_table\"} 1"),
        "{bsql}"
    );
    assert!(
        bsql.contains("aisql_api_commands_total{api=\"bsql\",command=\"select\"} 1"),
        "{bsql}"
    );
    assert!(
        bsql.contains("aisql_api_connections{api=\"bsql\"} 1"),
        "{bsql}"
    );
    let bedis = get_ok(&api_ports[2].1, "/prometheus-metrics");
    assert!(
        bedis.contains("aisql_api_commands_total{api=\"bedis\",command=\"set\"} 1"),
        "{bedis}"
    );
    assert!(
        bedis.contains("aisql_api_command_duration_seconds_count{api=\"bedis\",command=\"get\"} 1")
    );

    // The JSON API.
    let health = json(&mweb, "/api/v1/health-check");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["is_leader"], true);
    assert_eq!(json(&dweb, "/api/v1/version")["product"], "AiSQL");
    let servers = json(&mweb, "/api/v1/servers");
    assert_eq!(servers["dbservers"][0]["rpc_addr"], d.rpc.as_str());
    assert_eq!(servers["dbservers"][0]["alive"], true);
    let tables = json(&mweb, "/api/v1/tables");
    let table_id = tables["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| {
            t["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("web_orders"))
        })
        .and_then(|t| t["id"].as_str())
        .unwrap_or_else(|| panic!("web_orders not in {tables}"))
        .to_owned();
    let tablets = json(&dweb, "/api/v1/tablets");
    let ours: Vec<_> = tablets["tablets"]
        .as_array()
        .expect("tablets")
        .iter()
        .filter(|t| t["table_id"] == table_id.as_str())
        .collect();
    assert!(!ours.is_empty(), "{tablets}");
    assert!(ours
        .iter()
        .all(|t| t["role"] == "LEADER" && t["term"].as_u64() >= Some(1)));

    // A real Prometheus with the shipped config, pointed at this cluster, sees every target up.
    let ip = fresh_ip();
    let prom_addr = format!("{ip}:{}", free_port(&ip));
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/prometheus.yml");
    let mut config = std::fs::read_to_string(&shipped).expect("deploy/prometheus/prometheus.yml");
    for (from, to) in [
        ("127.0.0.1:10000", mweb.as_str()),
        ("127.0.0.1:20000", dweb.as_str()),
        ("127.0.0.1:8100", api_ports[0].1.as_str()),
        ("127.0.0.1:8200", api_ports[1].1.as_str()),
        ("127.0.0.1:8300", api_ports[2].1.as_str()),
        ("127.0.0.1:9010", prom_addr.as_str()),
        ("scrape_interval: 15s", "scrape_interval: 1s"),
    ] {
        assert_eq!(
            config.matches(from).count(),
            1,
            "{from} in the shipped config"
        );
        config = config.replace(from, to);
    }
    let prom_dir = cluster.dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    std::fs::write(prom_dir.join("prometheus.yml"), &config).unwrap();
    let prom = Proc::spawn(
        "prometheus",
        prometheus,
        vec![
            format!(
                "--config.file={}",
                prom_dir.join("prometheus.yml").display()
            ),
            format!("--web.listen-address={prom_addr}"),
            format!("--storage.tsdb.path={}", prom_dir.join("data").display()),
        ],
        cluster.dir.path().join("prometheus.log"),
    );
    let t0 = Instant::now();
    let targets = loop {
        let last = http_get(&prom_addr, "/api/v1/targets")
            .ok()
            .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok());
        if let Some(v) = &last {
            let active = v["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if active.len() == 6 && active.iter().all(|t| t["health"] == "up") {
                break active;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "not every target is up after 60 s: {}\n{}",
            last.map(|v| v.to_string()).unwrap_or_default(),
            prom.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let jobs: std::collections::BTreeSet<_> = targets
        .iter()
        .filter_map(|t| t["labels"]["job"].as_str())
        .collect();
    assert_eq!(
        jobs.into_iter().collect::<Vec<_>>(),
        [
            "aisql-bcql",
            "aisql-bedis",
            "aisql-bsql",
            "aisql-dbserver",
            "aisql-mserver",
            "prometheus"
        ]
    );
    drop(prom);

    // Headless Chromium renders the home page and the table page with the real names.
    let artifacts = bin_dir()
        .parent()
        .expect("target dir")
        .join("test-artifacts/web");
    std::fs::create_dir_all(&artifacts).unwrap();
    let work = cluster.dir.path().join("chromium");
    std::fs::create_dir_all(&work).unwrap();
    let home = render(
        &chromium_bin,
        &work,
        &format!("http://{mweb}/"),
        &artifacts.join("mserver-home.png"),
    );
    assert!(home.contains("Cluster overview"), "{home}");
    assert!(
        home.contains(&d.rpc),
        "home page does not name dbserver {}: {home}",
        d.rpc
    );
    assert!(
        home.contains("public.web_orders"),
        "home page does not name the table: {home}"
    );
    assert!(
        home.contains(&dweb),
        "home page does not link the dbserver's web UI: {home}"
    );
    assert!(home.contains("1 live, 0 dead"), "{home}");
    let page = render(
        &chromium_bin,
        &work,
        &format!("http://{mweb}/table?id={table_id}"),
        &artifacts.join("mserver-table.png"),
    );
    assert!(page.contains("Table yugabyte.public.web_orders"), "{page}");
    for column in ["<td>id</td>", "<td>item</td>", "<td>qty</td>"] {
        assert!(
            page.contains(column),
            "table page lacks column {column}: {page}"
        );
    }
    assert!(
        page.contains(&format!("★ {}", d.rpc)),
        "table page does not mark the leader on {}: {page}",
        d.rpc
    );
    for t in &ours {
        let id = t["tablet_id"].as_str().unwrap();
        assert!(page.contains(id), "table page lacks tablet {id}");
    }
    let dbpage = render(
        &chromium_bin,
        &work,
        &format!("http://{dweb}/tablets"),
        &artifacts.join("dbserver-tablets.png"),
    );
    assert!(
        dbpage.contains("public.web_orders") && dbpage.contains("LEADER"),
        "{dbpage}"
    );
}
