//! BCQL with real Cassandra clients: the Python `cassandra-driver` (`tests/cases/bcql/
//! driver.py`: protocol negotiation from v5 down to v4, LZ4, prepared statements with
//! routing keys, paging, collections, counters, TTL, JSON, LWT, batches, error codes), a
//! cqlsh golden script (`tests/cases/bcql/*.cql`), the `scylla` Rust driver, malformed and
//! oversized frames, and durability across `kill -9`.

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

/// ScyllaDB's Rust driver: DDL, prepared statements (token-aware), paging, a batch, a
/// lightweight transaction and the driver's view of a syntax error.
async fn scylla_rust_driver(addr: &str) {
    use futures::StreamExt;
    use scylla::client::session_builder::SessionBuilder;
    use scylla::statement::batch::Batch;
    use scylla::statement::unprepared::Statement;

    let session = SessionBuilder::new()
        .known_node(addr)
        .build()
        .await
        .expect("scylla driver connects");
    session
        .query_unpaged(
            "CREATE KEYSPACE rs WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
            &[],
        )
        .await
        .unwrap();
    session
        .query_unpaged(
            "CREATE TABLE rs.kv (k int, c int, v text, PRIMARY KEY (k, c))",
            &[],
        )
        .await
        .unwrap();
    let ins = session
        .prepare("INSERT INTO rs.kv (k, c, v) VALUES (?, ?, ?)")
        .await
        .unwrap();
    assert!(
        ins.is_token_aware(),
        "partition-key indexes in PREPARED metadata"
    );
    for k in 0..20i32 {
        for c in 0..5i32 {
            session
                .execute_unpaged(&ins, (k, c, format!("v{k}.{c}")))
                .await
                .unwrap();
        }
    }
    let sel = session
        .prepare("SELECT c, v FROM rs.kv WHERE k = ?")
        .await
        .unwrap();
    let rows = session
        .execute_unpaged(&sel, (3i32,))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let got: Vec<(i32, String)> = rows
        .rows::<(i32, String)>()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        got,
        (0..5).map(|c| (c, format!("v3.{c}"))).collect::<Vec<_>>()
    );

    // Paging: 100 rows in pages of 7.
    let mut all = Statement::new("SELECT k, c, v FROM rs.kv");
    all.set_page_size(7);
    let mut stream = session
        .query_iter(all, &[])
        .await
        .unwrap()
        .rows_stream::<(i32, i32, String)>()
        .unwrap();
    let mut n = 0;
    while let Some(row) = stream.next().await {
        let (k, c, v) = row.unwrap();
        assert_eq!(v, format!("v{k}.{c}"));
        n += 1;
    }
    assert_eq!(n, 100);

    // A logged batch of prepared statements.
    let mut batch = Batch::default();
    batch.append_statement(ins.clone());
    batch.append_statement(ins.clone());
    session
        .batch(&batch, ((100i32, 0i32, "a"), (100i32, 1i32, "b")))
        .await
        .unwrap();
    let count = session
        .query_unpaged("SELECT count(*) FROM rs.kv WHERE k = 100", &[])
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row::<(i64,)>()
        .unwrap();
    assert_eq!(count, (2,));

    // A lightweight transaction: applied once, then not.
    for expected in [true, false] {
        let applied = session
            .query_unpaged(
                "INSERT INTO rs.kv (k, c, v) VALUES (200, 0, 'x') IF NOT EXISTS",
                &[],
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .rows::<(bool,)>()
            .map(|mut r| r.next().unwrap().unwrap().0);
        // Not applied: the row comes back too ([applied], k, c, v).
        let applied = applied.unwrap_or(false);
        assert_eq!(applied, expected);
    }

    // Bad CQL: the driver sees a syntax error, and the session keeps working.
    let err = session.query_unpaged("SELEC 1", &[]).await.unwrap_err();
    assert!(format!("{err:?}").contains("SyntaxError"), "{err:?}");
    session
        .query_unpaged("SELECT k FROM rs.kv LIMIT 1", &[])
        .await
        .unwrap();
}

/// One frame: v4 request header (stream id, opcode) and body.
fn cql_frame(stream: i16, opcode: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![0x04, 0];
    f.extend_from_slice(&stream.to_be_bytes());
    f.push(opcode);
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// Read one response frame: (stream id, opcode).
fn read_cql_frame(s: &mut impl Read) -> (i16, u8) {
    let mut h = [0u8; 9];
    s.read_exact(&mut h).unwrap();
    let len = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (i16::from_be_bytes([h[2], h[3]]), h[4])
}

/// Every v4 stream id (0..=32767) in flight at once on one connection: each request is
/// answered once, under its own stream id (the server bounds how many run at a time and
/// stops reading meanwhile, so the client writes while it reads).
fn all_stream_ids_in_flight(addr: &str) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut startup = 1u16.to_be_bytes().to_vec();
    for part in ["CQL_VERSION", "3.0.0"] {
        startup.extend_from_slice(&(part.len() as u16).to_be_bytes());
        startup.extend_from_slice(part.as_bytes());
    }
    s.write_all(&cql_frame(0, 0x01, &startup)).unwrap();
    assert_eq!(read_cql_frame(&mut s), (0, 0x02), "READY");
    let query = "SELECT v FROM rs.kv WHERE k = 3 AND c = 1"; // a row scylla_rust_driver wrote
    let mut body = (query.len() as i32).to_be_bytes().to_vec();
    body.extend_from_slice(query.as_bytes());
    body.extend_from_slice(&[0, 1, 0]); // consistency ONE, no flags
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, &mut w);
        for id in 0..=i16::MAX {
            out.write_all(&cql_frame(id, 0x07, &body)).unwrap();
        }
        out.flush().unwrap();
    });
    let mut seen = vec![false; 1 << 15];
    for _ in 0..=i16::MAX {
        let (id, op) = read_cql_frame(&mut s);
        assert_eq!(op, 0x08, "RESULT for stream {id}");
        assert!(
            !std::mem::replace(&mut seen[id as usize], true),
            "stream {id} twice"
        );
    }
    writer.join().unwrap();
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
    scylla_rust_driver(&addr).await;
    let a = addr.clone();
    tokio::task::spawn_blocking(move || all_stream_ids_in_flight(&a))
        .await
        .unwrap();

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
