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
    old_layout_rows_are_moved(&cluster, &addr).await;
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

/// Rows written by a version before row keys carried a hash (meta `'k' ‖ key`, elements
/// `'e' ‖ len ‖ key ‖ sub`) are moved when a server first uses the database, and read back.
async fn old_layout_rows_are_moved(cluster: &Cluster, addr: &str) {
    let c = cluster.client();
    let t = cluster.create_table("system_redis", "db7", 2).await;
    let meta = |kind: u8, expire: u64, payload: &[u8]| {
        let mut v = vec![kind];
        v.extend_from_slice(&expire.to_be_bytes());
        v.extend_from_slice(payload);
        v
    };
    let op = |key: Vec<u8>, value: Vec<u8>, expire_at_us: u64| client::KvOp {
        key,
        value,
        expire_at_us,
        ..Default::default()
    };
    let k = |key: &[u8]| [b"k".as_slice(), key].concat();
    let e = |key: &[u8], sub: &[u8]| {
        [b"e".as_slice(), &(key.len() as u32).to_be_bytes(), key, sub].concat()
    };
    // A string, a string with a TTL, and a hash of two fields (generation 42).
    let in_an_hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64)
        + 3_600_000_000;
    let mut coll = Vec::new();
    for w in [42u64, 1, 2, 0, 0] {
        coll.extend_from_slice(&w.to_be_bytes());
    }
    let gen = 42u64.to_be_bytes();
    let writes = [
        (
            b"old:str".as_slice(),
            vec![op(k(b"old:str"), meta(0, 0, b"hello"), 0)],
        ),
        (
            b"old:ttl".as_slice(),
            vec![op(k(b"old:ttl"), meta(0, in_an_hour, b"v"), in_an_hour)],
        ),
        (
            b"old:h".as_slice(),
            vec![
                op(k(b"old:h"), meta(1, 0, &coll), 0),
                op(e(b"old:h", b"f1"), [gen.as_slice(), b"v1"].concat(), 0),
                op(e(b"old:h", b"f2"), [gen.as_slice(), b"v2"].concat(), 0),
            ],
        ),
    ];
    for (key, ops) in writes {
        let w = c.write_tablet(&t, t.tablet_for(key), ops).await.unwrap();
        assert!(w.applied);
    }
    let got = redis_cli(
        addr,
        "SELECT 7\nGET old:str\nHGETALL old:h\nTTL old:ttl\nDBSIZE\nHSET old:h f3 v3\nHLEN old:h\n",
    );
    let hash = ["1) \"f1\"", "2) \"v1\"", "3) \"f2\"", "4) \"v2\""];
    assert_eq!(got[..2], ["OK", "\"hello\""], "{got:?}");
    assert_eq!(got[2..6], hash, "{got:?}");
    let ttl: i64 = got[6].trim_start_matches("(integer) ").parse().unwrap();
    assert!((3590..=3600).contains(&ttl), "{got:?}");
    assert_eq!(
        got[7..],
        ["(integer) 3", "(integer) 1", "(integer) 3"],
        "{got:?}"
    );
    // No row of the old layout is left.
    for idx in 0..t.tablets.len() {
        for tag in [b'e', b'k'] {
            let r = c
                .scan_tablet(&t, idx, Some(vec![tag]), Some(vec![tag + 1]), 10)
                .await
                .unwrap();
            assert!(r.kvs.is_empty(), "old rows left: {:?}", r.kvs);
        }
    }
    assert_eq!(redis_cli(addr, "SELECT 7\nFLUSHDB\n"), ["OK", "OK"]);
}
