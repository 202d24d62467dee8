//! Any bytes on any port: a one-node cluster gets mutated and random input on every port it
//! listens on (BSQL, BCQL, BEDIS, the web UIs and metrics ports, the RPC ports), hundreds of
//! connections each, including absurd length prefixes. Afterwards both processes are still
//! running and every API still answers a well-formed request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use aisql_tests::{Cluster, ClusterOpts};
use common::fuzz::XorShift;

/// Connections per port.
const ROUNDS: usize = 300;

/// A seed with a few random edits, or (one time in five) random bytes.
fn mutate(rng: &mut XorShift, seeds: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(5) == 0 {
        let n = rng.below(300);
        return (0..n).map(|_| rng.next_u64() as u8).collect();
    }
    let mut b = seeds[rng.below(seeds.len())].clone();
    let edits = 1 + rng.below(4);
    common::fuzz::mutate(rng, &mut b, edits, &[], &[0x7F, 0xFF, 0xFF, 0xFF]);
    b
}

/// Send `payload` on a fresh connection, read whatever comes back for a moment, close.
fn poke(addr: &str, payload: &[u8]) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(30)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = s.write_all(payload);
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
}

fn pg_startup() -> Vec<u8> {
    let mut body = vec![0, 3, 0, 0];
    for (k, v) in [("user", "postgres"), ("database", "postgres")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    m.extend_from_slice(&body);
    m
}

fn pg_query(sql: &str) -> Vec<u8> {
    let mut m = pg_startup();
    m.push(b'Q');
    m.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
    m.extend_from_slice(sql.as_bytes());
    m.push(0);
    m
}

fn cql_frame(opcode: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![0x04, 0, 0, 1, opcode];
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn cql_startup_and_query(q: &str) -> Vec<u8> {
    let mut startup = vec![0, 1, 0, 11];
    startup.extend_from_slice(b"CQL_VERSION");
    startup.extend_from_slice(&[0, 5]);
    startup.extend_from_slice(b"3.0.0");
    let mut f = cql_frame(0x01, &startup);
    let mut body = (q.len() as u32).to_be_bytes().to_vec();
    body.extend_from_slice(q.as_bytes());
    body.extend_from_slice(&[0, 1, 0]);
    f.extend(cql_frame(0x07, &body));
    f
}

/// Hammer `addr` with mutations of `seeds`.
fn fuzz_port(addr: String, seeds: Vec<Vec<u8>>, seed: u64) {
    let mut rng = XorShift::new(seed);
    for _ in 0..ROUNDS {
        let payload = mutate(&mut rng, &seeds);
        poke(&addr, &payload);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_port_survives_any_bytes() {
    let cluster = Cluster::start(ClusterOpts::default());
    cluster.wait_for_dbservers(1).await;
    let db = cluster.db_addrs[0].clone();
    let http = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes();
    let web_seeds = vec![
        http("/"),
        http("/metrics"),
        http("/tablets"),
        http("/api/v1/health"),
        b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\nxx".to_vec(),
    ];
    // gRPC: the HTTP/2 preface and a SETTINGS frame. The wire protocol (same port): its
    // preface, then frames of every method (empty and junk payloads, a ping, an unknown
    // method, a length far past the limit).
    let wire = |frames: &[(u8, &[u8])]| {
        let mut b = b"AISQLW1\n".to_vec();
        for (i, (method, payload)) in frames.iter().enumerate() {
            b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            b.push(*method);
            b.extend_from_slice(&(i as u64).to_le_bytes());
            b.extend_from_slice(payload);
        }
        b
    };
    let mut huge = wire(&[(4, b"")]);
    huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    let rpc_seeds = vec![
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00".to_vec(),
        http("/"),
        wire(&[(0, b""), (1, b"\x0a\x03abc\x12\x02\x01\x02"), (2, b"")]),
        wire(&[
            (3, b"\x0a\x01t\x12\x04\x0a\x02\x08\x01"),
            (4, b"\x0a\x00"),
            (5, b"\xff\xff"),
        ]),
        wire(&[(9, b"x"), (0x80, b""), (0xFF, b"\x01\x00\x00\x00oops")]),
        huge,
    ];
    let mut targets: Vec<(String, Vec<Vec<u8>>)> = vec![
        (
            db.redis.clone(),
            vec![
                b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n".to_vec(),
                b"*2\r\n$4\r\nLPOP\r\n$1\r\nl\r\n*1\r\n$4\r\nPING\r\n".to_vec(),
                b"*1\r\n$2147483647\r\n".to_vec(),
                b"*99999999\r\n".to_vec(),
                b"HELLO 3\r\nZADD z 1 a\r\nMULTI\r\nEXEC\r\n".to_vec(),
            ],
        ),
        (
            db.pgsql.clone(),
            vec![
                pg_startup(),
                pg_query("SELECT 1"),
                pg_query("CREATE TABLE t (k int PRIMARY KEY, v text)"),
                vec![0, 0, 0, 8, 4, 210, 22, 47], // SSLRequest
                vec![0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 1, 0, 0, 0, 2], // CancelRequest
            ],
        ),
        (
            db.cql.clone(),
            vec![
                cql_frame(0x05, &[]),
                cql_startup_and_query("SELECT * FROM system.local"),
                cql_startup_and_query(
                    "CREATE KEYSPACE k WITH replication = {'class': 'SimpleStrategy'}",
                ),
                cql_frame(
                    0x09,
                    &[0, 0, 0, 8, b'S', b'E', b'L', b'E', b'C', b'T', b' ', b'1'],
                ),
            ],
        ),
        (cluster.mserver_addrs[0].clone(), rpc_seeds.clone()),
        (db.rpc.clone(), rpc_seeds),
        (cluster.mserver_web[0].clone(), web_seeds.clone()),
        (format!("{}:{}", db.ip, db.web), web_seeds.clone()),
    ];
    for port in [db.pgsql_web, db.cql_web, db.redis_web] {
        targets.push((format!("{}:{port}", db.ip), web_seeds.clone()));
    }
    let workers: Vec<_> = targets
        .into_iter()
        .enumerate()
        .map(|(i, (addr, seeds))| {
            std::thread::spawn(move || fuzz_port(addr, seeds, 0x5DEECE66D * (i as u64 + 1)))
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }

    for p in cluster.mservers.iter().chain(cluster.dbservers.iter()) {
        assert!(p.is_running(), "{} died:\n{}", p.name, cluster.logs());
    }
    // Every API still answers.
    let mut r = TcpStream::connect(&db.redis).unwrap();
    r.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    r.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut buf = [0u8; 7];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+PONG\r\n");

    let mut pg = TcpStream::connect(&db.pgsql).unwrap();
    pg.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    pg.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).unwrap();
    let mut one = [0u8; 1];
    pg.read_exact(&mut one).unwrap();
    assert!(
        one[0] == b'N' || one[0] == b'S',
        "SSLRequest answered {one:?}"
    );

    let mut c = TcpStream::connect(&db.cql).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(&cql_frame(0x05, &[])).unwrap();
    let mut head = [0u8; 9];
    c.read_exact(&mut head).unwrap();
    assert_eq!(head[4], 0x06, "OPTIONS answered with opcode {}", head[4]);

    // The RPC port's wire protocol answers a ping.
    let mut w = TcpStream::connect(&db.rpc).unwrap();
    w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    w.write_all(&wire(&[(0, b"")])).unwrap();
    let mut head = [0u8; 13];
    w.read_exact(&mut head).unwrap();
    assert_eq!(head[4], 0x80, "ping answered with method {}", head[4]);

    let (status, _) = aisql_tests::http_get(&cluster.mserver_web[0], "/").unwrap();
    assert_eq!(status, 200);
}
