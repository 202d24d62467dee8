//! `aisql start` as a user runs it: one process with an mserver and a dbserver on the given
//! ports and data directory; the admin CLI against it (tables for people, `--json` for
//! scripts); data kept across `kill -9` and restart; a clean exit on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aisql_tests::{bin, free_port, fresh_ip};

struct Started {
    child: Child,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[String], log: &std::path::Path) -> Started {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new(bin("aisql"))
        .arg("start")
        .args(args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Started { child }
}

fn cli(mserver: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin("aisql"))
        .args(args)
        .arg(format!("--mserver_addrs={mserver}"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn wait_ok(mserver: &str, args: &[&str]) -> String {
    let t0 = Instant::now();
    loop {
        let (code, out) = cli(mserver, args);
        if code == 0 {
            return out;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "aisql {args:?}: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn aisql_start_keeps_data_across_kill_9_and_stops_cleanly() {
    let ip = fresh_ip();
    let dir = tempfile::tempdir().unwrap();
    let p = |_: &str| free_port(&ip);
    let mrpc = p("m");
    let args: Vec<String> = vec![
        format!("--base_dir={}", dir.path().join("data").display()),
        format!("--bind_ip={ip}"),
        format!("--advertise_address={ip}"),
        format!("--mserver_rpc_port={mrpc}"),
        format!("--mserver_webserver_port={}", p("mw")),
        format!("--dbserver_rpc_port={}", p("d")),
        format!("--dbserver_webserver_port={}", p("dw")),
        format!("--pgsql_proxy_bind_address={ip}:{}", p("pg")),
        format!("--cql_proxy_bind_address={ip}:{}", p("cql")),
        format!("--redis_proxy_bind_address={ip}:{}", p("redis")),
        format!("--pgsql_proxy_webserver_port={}", p("pgw")),
        format!("--cql_proxy_webserver_port={}", p("cqlw")),
        format!("--redis_proxy_webserver_port={}", p("rw")),
    ];
    let log = dir.path().join("aisql.log");
    let mserver = format!("{ip}:{mrpc}");
    let mut server = start(&args, &log);

    wait_ok(&mserver, &["create-table", "app.kv", "--num_tablets", "3"]);
    wait_ok(&mserver, &["create-table", "app.ranged", "--range"]);
    for (k, v) in [("alpha", "1"), ("beta", "2"), ("gamma", "3")] {
        assert_eq!(
            wait_ok(&mserver, &["put", "app.kv", k, v])
                .split_whitespace()
                .next(),
            Some("OK")
        );
    }
    let printed = std::fs::read_to_string(&log).unwrap();
    for name in [
        "bm-mserver RPC",
        "bm-dbserver web UI",
        "BSQL (PostgreSQL)",
        "BCQL (Cassandra)",
        "BEDIS (Redis)",
        "BEDIS metrics",
    ] {
        assert!(
            printed.contains(name),
            "aisql start prints {name}:\n{printed}"
        );
    }

    // Admin listings, for people and for scripts.
    let servers = wait_ok(&mserver, &["list", "servers"]);
    assert!(
        servers.contains("ALIVE") && servers.contains("LEADER"),
        "{servers}"
    );
    let tables: serde_json::Value =
        serde_json::from_str(&wait_ok(&mserver, &["list", "tables", "--json"])).unwrap();
    let names: Vec<&str> = tables["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"kv") && names.contains(&"ranged"),
        "{tables}"
    );
    let ranged = tables["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ranged")
        .unwrap();
    assert_eq!(ranged["tablets"], 1);
    assert_eq!(ranged["range_partitioned"], true);
    // Leaders reach the listing with the next heartbeats.
    let t0 = Instant::now();
    loop {
        let tablets: serde_json::Value =
            serde_json::from_str(&wait_ok(&mserver, &["list", "tablets", "--json"])).unwrap();
        assert_eq!(tablets.as_array().unwrap().len(), 4);
        if tablets
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["leader"].is_string())
        {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{tablets}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // kill -9, restart on the same directory: everything is there.
    let _ = server.child.kill();
    let _ = server.child.wait();
    drop(server);
    let mut server = start(&args, &log);
    assert_eq!(wait_ok(&mserver, &["get", "app.kv", "beta"]).trim(), "2");
    assert_eq!(wait_ok(&mserver, &["get", "app.kv", "gamma"]).trim(), "3");

    // SIGTERM: a clean exit with status 0.
    let pid = server.child.id();
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "aisql start did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("AiSQL stopped."));
}
