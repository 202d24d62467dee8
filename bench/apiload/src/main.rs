//! `apiload` — a small closed-loop load generator for `bench/bcql.sh`. It speaks just
//! enough of two protocols to measure a server, not the client: CQL v4 (STARTUP, QUERY,
//! PREPARE, pipelined EXECUTE on many stream ids) and RESP (pipelined SET/GET). Each
//! connection keeps `inflight / conns` requests outstanding, refilling as answers arrive.
//!
//! apiload cql HOST:PORT SECS CONNS INFLIGHT   -> "insert <ops/s>" and "select <ops/s>"
//! apiload redis HOST:PORT SECS CONNS INFLIGHT -> "set <ops/s>" and "get <ops/s>"

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const VALUE: [u8; 100] = [b'x'; 100];
const KEYS: u64 = 100_000;

/// The next pseudo-random key (an LCG).
fn next(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 33) % KEYS
}

fn frame(stream: i16, op: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![4, 0];
    f.extend_from_slice(&stream.to_be_bytes());
    f.push(op);
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

async fn read_frame(r: &mut BufReader<TcpStream>) -> (u8, Vec<u8>) {
    let mut h = [0u8; 9];
    r.read_exact(&mut h).await.expect("read header");
    let n = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) as usize;
    let mut body = vec![0; n];
    r.read_exact(&mut body).await.expect("read body");
    (h[4], body)
}

fn long_string(s: &str) -> Vec<u8> {
    let mut b = (s.len() as u32).to_be_bytes().to_vec();
    b.extend_from_slice(s.as_bytes());
    b
}

async fn cql_conn(addr: &str) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).ok();
    let mut r = BufReader::new(s);
    let mut body = 1u16.to_be_bytes().to_vec();
    for x in ["CQL_VERSION", "3.0.0"] {
        body.extend_from_slice(&(x.len() as u16).to_be_bytes());
        body.extend_from_slice(x.as_bytes());
    }
    r.get_mut().write_all(&frame(0, 0x01, &body)).await.unwrap();
    let (op, _) = read_frame(&mut r).await;
    assert_eq!(op, 0x02, "READY");
    r
}

async fn cql_query(r: &mut BufReader<TcpStream>, q: &str) {
    let mut body = long_string(q);
    body.extend_from_slice(&[0, 1, 0]);
    r.get_mut().write_all(&frame(0, 0x07, &body)).await.unwrap();
    let (op, b) = read_frame(r).await;
    assert_eq!(op, 0x08, "{q}: {}", String::from_utf8_lossy(&b));
}

async fn cql_prepare(r: &mut BufReader<TcpStream>, q: &str) -> Vec<u8> {
    r.get_mut()
        .write_all(&frame(0, 0x09, &long_string(q)))
        .await
        .unwrap();
    let (op, b) = read_frame(r).await;
    assert_eq!(op, 0x08, "{q}: {}", String::from_utf8_lossy(&b));
    let n = u16::from_be_bytes([b[4], b[5]]) as usize;
    b[6..6 + n].to_vec()
}

fn execute(id: &[u8], key: u64, with_value: bool) -> Vec<u8> {
    let mut b = (id.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(id);
    b.extend_from_slice(&[0, 1, 0x01 | 0x02]); // ONE, values, skip metadata
    b.extend_from_slice(&(if with_value { 2u16 } else { 1 }).to_be_bytes());
    b.extend_from_slice(&8i32.to_be_bytes());
    b.extend_from_slice(&(key as i64).to_be_bytes());
    if with_value {
        b.extend_from_slice(&(VALUE.len() as i32).to_be_bytes());
        b.extend_from_slice(&VALUE);
    }
    b
}

/// Run `depth` requests in flight on one connection for `secs`; returns completed count.
async fn cql_loop(
    addr: String,
    id: Vec<u8>,
    insert: bool,
    secs: u64,
    depth: usize,
    seed: u64,
) -> u64 {
    let mut r = cql_conn(&addr).await;
    let end = Instant::now() + Duration::from_secs(secs);
    let mut key = seed;
    let mut out = Vec::new();
    for s in 0..depth {
        let k = next(&mut key);
        out.extend_from_slice(&frame(s as i16, 0x0A, &execute(&id, k, insert)));
    }
    r.get_mut().write_all(&out).await.unwrap();
    let mut done = 0u64;
    while Instant::now() < end {
        let mut h = [0u8; 9];
        r.read_exact(&mut h).await.unwrap();
        let n = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) as usize;
        let mut body = vec![0; n];
        r.read_exact(&mut body).await.unwrap();
        assert_eq!(h[4], 0x08, "{}", String::from_utf8_lossy(&body));
        done += 1;
        let k = next(&mut key);
        let stream = i16::from_be_bytes([h[2], h[3]]);
        r.get_mut()
            .write_all(&frame(stream, 0x0A, &execute(&id, k, insert)))
            .await
            .unwrap();
    }
    done
}

async fn resp_loop(addr: String, set: bool, secs: u64, depth: usize, seed: u64) -> u64 {
    let s = TcpStream::connect(&addr).await.expect("connect");
    s.set_nodelay(true).ok();
    let mut r = BufReader::new(s);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut key = seed;
    let cmd = |key: u64| -> Vec<u8> {
        let k = format!("key:{key}");
        if set {
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n$100\r\n{}\r\n",
                k.len(),
                std::str::from_utf8(&VALUE).unwrap()
            )
            .into_bytes()
        } else {
            format!("*2\r\n$3\r\nGET\r\n${}\r\n{k}\r\n", k.len()).into_bytes()
        }
    };
    let mut out = Vec::new();
    for _ in 0..depth {
        let k = next(&mut key);
        out.extend_from_slice(&cmd(k));
    }
    r.get_mut().write_all(&out).await.unwrap();
    let mut done = 0u64;
    let mut line = Vec::new();
    while Instant::now() < end {
        line.clear();
        loop {
            let b = r.read_u8().await.unwrap();
            line.push(b);
            if line.ends_with(b"\r\n") {
                break;
            }
        }
        if line[0] == b'$' {
            let n: i64 = std::str::from_utf8(&line[1..line.len() - 2])
                .unwrap()
                .parse()
                .unwrap();
            if n >= 0 {
                let mut v = vec![0; n as usize + 2];
                r.read_exact(&mut v).await.unwrap();
            }
        } else {
            assert_ne!(line[0], b'-', "{}", String::from_utf8_lossy(&line));
        }
        done += 1;
        let k = next(&mut key);
        r.get_mut().write_all(&cmd(k)).await.unwrap();
    }
    done
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (proto, addr) = (a[1].clone(), a[2].clone());
    let secs: u64 = a[3].parse().unwrap();
    let conns: usize = a[4].parse().unwrap();
    let inflight: usize = a[5].parse().unwrap();
    let depth = (inflight / conns).max(1);
    let phases: Vec<(&str, bool)> = if proto == "cql" {
        vec![("insert", true), ("select", false)]
    } else {
        vec![("set", true), ("get", false)]
    };
    let mut ids = (Vec::new(), Vec::new());
    if proto == "cql" {
        let mut r = cql_conn(&addr).await;
        cql_query(&mut r, "CREATE KEYSPACE IF NOT EXISTS bench WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}").await;
        cql_query(
            &mut r,
            "CREATE TABLE IF NOT EXISTS bench.kv (k bigint PRIMARY KEY, v blob)",
        )
        .await;
        ids.0 = cql_prepare(&mut r, "INSERT INTO bench.kv (k, v) VALUES (?, ?)").await;
        ids.1 = cql_prepare(&mut r, "SELECT v FROM bench.kv WHERE k = ?").await;
    }
    // One second of each phase first, unmeasured: tablet leaders settle and connections warm
    // up for both protocols alike (the CQL table is created just above).
    let warmup = phases.iter().map(|&(_, w)| (None, w, 1));
    let measured = phases.iter().map(|&(n, w)| (Some(n), w, secs));
    for (name, write, secs) in warmup.chain(measured) {
        let start = Instant::now();
        let tasks: Vec<_> = (0..conns)
            .map(|c| {
                let addr = addr.clone();
                let id = if write { ids.0.clone() } else { ids.1.clone() };
                let proto = proto.clone();
                tokio::spawn(async move {
                    if proto == "cql" {
                        cql_loop(addr, id, write, secs, depth, c as u64 * 7919).await
                    } else {
                        resp_loop(addr, write, secs, depth, c as u64 * 7919).await
                    }
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        if let Some(name) = name {
            println!("{name} {:.0}", total as f64 / start.elapsed().as_secs_f64());
        }
    }
}
