//! BEDIS with the real `redis-cli`: golden cases (`tests/cases/bedis/*.redis`, verified
//! against redis-server 7.0.15), redis-py (`tests/cases/bedis/client.py`, and `hot_key.py`: no update lost under contention), pipelining, a raw-socket protocol error, and durability
//! across `kill -9` of the dbserver.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use aisql_tests::{Cluster, ClusterOpts};

/// Run redis-cli against `addr` with `input` on stdin; returns its stdout lines.
pub fn redis_cli(addr: &str, input: &str) -> Vec<String> {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut child = Command::new("redis-cli")
        .args(["-h", host, "-p", port, "--no-raw"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli (apt-get install redis-tools)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    // redis-cli adds a "(1.23s)" line after slow commands: not part of the reply.
    let timing = |l: &str| {
        l.starts_with('(') && l.ends_with("s)") && l[1..l.len() - 2].parse::<f64>().is_ok()
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !timing(l))
        .map(str::to_owned)
        .collect()
}

/// Run one golden file; panics with a diff on mismatch.
fn run_golden(addr: &str, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let (mut cmds, mut expected) = (Vec::new(), Vec::new());
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        match line.strip_prefix("> ") {
            Some(c) => cmds.push(c.to_owned()),
            None => expected.push(line.to_owned()),
        }
    }
    let got = redis_cli(addr, &(cmds.join("\n") + "\n"));
    if got != expected {
        let mut diff = String::new();
        for i in 0..got.len().max(expected.len()) {
            let (e, g) = (
                expected.get(i).map(String::as_str).unwrap_or("<none>"),
                got.get(i).map(String::as_str).unwrap_or("<none>"),
            );
            if e != g {
                diff.push_str(&format!("line {i}: expected {e:?}, got {g:?}\n"));
            }
        }
        panic!("{}: output differs\n{diff}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cli_golden_cases_pipelining_and_kill_9() {
    let mut cluster = Cluster::start(ClusterOpts::default());
    cluster.wait_for_dbservers(1).await;
    let addr = cluster.db_addrs[0].redis.clone();
    // The first command creates db0's table; give it time.
    let mut ready = false;
    for _ in 0..100 {
        if redis_cli(&addr, "SET ready 1\n") == ["OK"] {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "BEDIS never answered\n{}", cluster.logs());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/bedis");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "redis"))
    {
        assert_eq!(redis_cli(&addr, "FLUSHALL\n"), ["OK"]);
        run_golden(&addr, f);
    }

    // redis-py: MULTI/EXEC pipelines, WATCH across clients, pub/sub, blocking pops woken by
    // another client, RESP3.
    let (host, port) = addr.rsplit_once(':').unwrap();
    let python = |script: &str, extra: &[&str]| {
        let out = std::process::Command::new("python3")
            .arg(dir.join(script))
            .args([host, port])
            .args(extra)
            .output()
            .expect("python3 with redis-py (pip install redis)");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("OK"),
            "{script} failed:\n{text}\n{}",
            cluster.logs()
        );
    };
    python("client.py", &[]);
    // Concurrent read-modify-writes of one hash field and one list: nothing is lost.
    python("hot_key.py", &["5"]);

    // Pipelining: 1,000 commands in one write, replies in order.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    let mut req = Vec::new();
    for i in 0..1000 {
        let v = format!("v{i}");
        req.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n$5\r\npipe{}\r\n${}\r\n{v}\r\n",
                i % 10,
                v.len()
            )
            .as_bytes(),
        );
    }
    req.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$5\r\npipe9\r\n");
    s.write_all(&req).unwrap();
    let expected_tail = b"$4\r\nv999\r\n";
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    while !got.ends_with(expected_tail) {
        let n = s.read(&mut buf).expect("pipelined replies");
        assert!(n > 0, "connection closed");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        got.len(),
        1000 * 5 + expected_tail.len(),
        "1000 +OK and the GET reply"
    );

    // A protocol error is answered and the connection closed; the server stays up.
    let mut bad = std::net::TcpStream::connect(&addr).unwrap();
    bad.write_all(b"*1\r\n$999999999999\r\n").unwrap();
    let mut reply = String::new();
    let _ = bad.read_to_string(&mut reply);
    assert!(reply.starts_with("-ERR Protocol error"), "{reply}");

    // Binary-safe keys and values round-trip.
    let mut b = std::net::TcpStream::connect(&addr).unwrap();
    b.write_all(b"*3\r\n$3\r\nSET\r\n$3\r\nk\x00\xff\r\n$4\r\n\r\n\x00\x01\r\n*2\r\n$3\r\nGET\r\n$3\r\nk\x00\xff\r\n").unwrap();
    let mut got = Vec::new();
    while got.len() < 5 + 10 {
        let n = b.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"+OK\r\n$4\r\n\r\n\x00\x01\r\n");

    // Acknowledged writes and TTLs survive kill -9.
    assert_eq!(
        redis_cli(
            &addr,
            "SET durable yes\nSET withttl v EX 1000\nINCR cnt\nINCR cnt\n"
        ),
        ["OK", "OK", "(integer) 1", "(integer) 2"]
    );
    cluster.dbservers[0].kill9();
    cluster.dbservers[0].start();
    let mut after = Vec::new();
    for _ in 0..100 {
        after = redis_cli(&addr, "GET durable\nGET cnt\nTTL withttl\n");
        if after.first().map(String::as_str) == Some("\"yes\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(after[..2], ["\"yes\"", "\"2\""], "{}", cluster.logs());
    let ttl: i64 = after[2].trim_start_matches("(integer) ").parse().unwrap();
    assert!((990..=1000).contains(&ttl), "TTL survives restart: {ttl}");
}
