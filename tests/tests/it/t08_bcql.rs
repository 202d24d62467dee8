//! BCQL with real Cassandra clients: the Python `cassandra-driver` (`tests/cases/bcql/
//! driver.py`: protocol negotiation from v5 down to v4, LZ4, prepared statements with
//! routing keys, paging, collections, counters, TTL, JSON, LWT, batches, error codes), a
//! cqlsh golden script (`tests/cases/bcql/*.cql`), malformed and oversized frames, and
//! durability across `kill -9`.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use aisql_tests::{Cluster, ClusterOpts};

fn cases() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/bcql")
}

/// Run `tests/cases/bcql/<script>` against the BCQL server at `addr` with more `args`;
/// panics with its output (and the cluster's logs) unless it prints OK. Returns the output.
pub fn python_case(script: &str, addr: &str, args: &[&str], cluster: &Cluster) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new("python3")
        .arg(cases().join(script))
        .args([host, port])
        .args(args)
        .output()
        .expect("python3 with cassandra-driver (pip install cassandra-driver lz4)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("OK"),
        "{script} {args:?} failed:\n{text}\n{}",
        cluster.logs()
    );
    text
}

/// Run `index.py` in keyspace `ks`, then check that the index table holds one entry per
/// indexed row: no entry was lost and none was left stale.
pub async fn secondary_index(addr: &str, ks: &str, cluster: &Cluster) {
    let out = python_case("index.py", addr, &[ks], cluster);
    let rows: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("INDEXED "))
        .and_then(|n| n.trim().parse().ok())
        .expect("index.py prints INDEXED n");
    let c = cluster.client();
    let t = c.open_table(ks, "users_email$index").await.unwrap();
    let entries = c.scan_all(&t).await.unwrap();
    assert_eq!(entries.len(), rows, "index entries vs indexed rows");
}

/// Run the driver script in `mode`.
fn driver(addr: &str, mode: &str, cluster: &Cluster) {
    python_case("driver.py", addr, &[mode], cluster);
}

/// Run cqlsh on a file; stdout and stderr together, as a terminal shows them.
fn cqlsh(addr: &str, file: &Path) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new("sh")
        .args(["-c", "exec cqlsh \"$@\" 2>&1", "sh", host, port, "-f"])
        .arg(file)
        .output()
        .expect("cqlsh (pip install cqlsh)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("WARNING: cqlsh was built against"))
        .map(|l| match l.split_once(".cql:") {
            // "/abs/path/basic.cql:12:..." -> "basic.cql:12:..."
            Some((path, tail)) => format!(
                "{}.cql:{tail}",
                Path::new(path).file_name().unwrap().to_string_lossy()
            ),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cassandra_driver_cqlsh_garbage_and_kill_9() {
    let mut cluster = Cluster::start(ClusterOpts::default());
    cluster.wait_for_dbservers(1).await;
    let addr = cluster.db_addrs[0].cql.clone();

    driver(&addr, "write", &cluster);
    secondary_index(&addr, "index_1", &cluster).await;

    // cqlsh golden scripts.
    let mut files: Vec<_> = std::fs::read_dir(cases())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cql"))
        .collect();
    files.sort();
    for f in &files {
        let expected = std::fs::read_to_string(f.with_extension("out")).unwrap();
        let got = cqlsh(&addr, f);
        let (e, g): (Vec<&str>, Vec<&str>) = (
            expected.trim_end().lines().map(str::trim_end).collect(),
            got.trim_end().lines().map(str::trim_end).collect(),
        );
        assert_eq!(e, g, "{}: cqlsh output differs", f.display());
    }

    // Garbage: a v4 header announcing an oversized body, an unknown opcode, and random
    // bytes each get an error frame (or a close), and the server keeps serving.
    for junk in [
        &[0x04u8, 0, 0, 1, 0x07, 0x7F, 0xFF, 0xFF, 0xFF][..],
        &[0x04, 0, 0, 2, 0x42, 0, 0, 0, 0][..],
        &[0x04, 0, 0, 3, 0x07, 0, 0, 0, 3, 1, 2, 3][..],
        b"GET / HTTP/1.1\r\n\r\n",
        &[0xFF; 64][..],
    ] {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(junk).unwrap();
        let mut buf = [0u8; 9];
        if s.read_exact(&mut buf).is_ok() {
            assert_eq!(buf[0], 0x84, "a v4 response header for {junk:?}");
            assert_eq!(buf[4], 0x00, "an ERROR frame for {junk:?}");
        }
    }

    // The BCQL metrics port counts statements by type and connections.
    let web = format!("{}:{}", cluster.db_addrs[0].ip, cluster.db_addrs[0].cql_web);
    let (status, body) = aisql_tests::http_get(&web, "/prometheus-metrics").unwrap();
    assert_eq!(status, 200);
    for needle in [
        "aisql_api_commands_total{api=\"bcql\",command=\"select\"}",
        "aisql_api_commands_total{api=\"bcql\",command=\"insert\"}",
        "aisql_api_commands_total{api=\"bcql\",command=\"prepare\"}",
    ] {
        assert!(
            body.contains(needle),
            "{needle} missing from BCQL metrics:\n{body}"
        );
    }

    // Durability: what was acknowledged survives kill -9 of the dbserver.
    cluster.dbservers[0].kill9();
    cluster.dbservers[0].start();
    driver(&addr, "verify", &cluster);
}

/// `--use_cassandra_authentication`: the Python driver and cqlsh log in with roles and
/// passwords (`tests/cases/bcql/auth.py`); anything else is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_authentication() {
    let cluster = Cluster::start(ClusterOpts {
        dbserver_flags: vec!["--use_cassandra_authentication".into()],
        ..Default::default()
    });
    cluster.wait_for_dbservers(1).await;
    let addr = cluster.db_addrs[0].cql.clone();
    python_case("auth.py", &addr, &[], &cluster);
    let (host, port) = addr.rsplit_once(':').unwrap();
    let cqlsh = |args: &[&str]| {
        let out = Command::new("cqlsh")
            .args([host, port])
            .args(args)
            .output()
            .expect("cqlsh");
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    let listed = cqlsh(&["-u", "cassandra", "-p", "cassandra", "-e", "LIST ROLES"]);
    assert!(
        listed.contains("cassandra") && listed.contains("bob"),
        "{listed}"
    );
    let refused = cqlsh(&["-u", "cassandra", "-p", "nope", "-e", "LIST ROLES"]);
    assert!(
        refused.contains("Provided username cassandra and/or password are incorrect"),
        "{refused}"
    );
}
