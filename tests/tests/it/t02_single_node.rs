//! One mserver and one dbserver: acknowledged writes survive `kill -9` of the dbserver (8a),
//! and of the mserver; a SIGTERM stops both cleanly.

use std::time::Duration;

use aisql_tests::{Cluster, ClusterOpts};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9() {
    let mut cluster = Cluster::start(ClusterOpts::default());
    cluster.wait_for_dbservers(1).await;
    let table = cluster.create_table("test", "kv", 3).await;
    let c = cluster.client();
    let mut acked = Vec::new();
    for i in 0..300u32 {
        let k = format!("key{i:05}");
        c.put(&table, k.as_bytes(), format!("value{i}").as_bytes())
            .await
            .expect("put");
        acked.push(k);
    }
    c.delete(&table, b"key00007").await.expect("delete");

    cluster.dbservers[0].kill9();
    cluster.dbservers[0].start();
    for (i, k) in acked.iter().enumerate() {
        let v = c
            .get(&table, k.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("get {k}: {e}\n{}", cluster.logs()));
        if i == 7 {
            assert_eq!(v, None, "a delete survives too");
        } else {
            assert_eq!(
                v,
                Some(format!("value{i}").into_bytes()),
                "{k} lost after kill -9"
            );
        }
    }
    assert_eq!(c.scan_all(&table).await.unwrap().len(), 299);

    // The mserver restarts with its catalog.
    cluster.mservers[0].kill9();
    cluster.mservers[0].start();
    let again = c.open_table("test", "kv").await.expect("catalog survives");
    assert_eq!(again.tablets.len(), 3);
    c.put(&again, b"after", b"restart").await.unwrap();

    for p in cluster
        .dbservers
        .iter_mut()
        .chain(cluster.mservers.iter_mut())
    {
        assert_eq!(
            p.terminate(Duration::from_secs(10)),
            Some(0),
            "{} exits 0 on SIGTERM",
            p.name
        );
    }
}

/// Garbage on every port of a running cluster gets an error or a closed connection; the
/// servers stay up and keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_on_every_port_is_survived() {
    use std::io::{Read, Write};
    let cluster = Cluster::start(ClusterOpts::default());
    cluster.wait_for_dbservers(1).await;
    let table = cluster.create_table("test", "garbage", 1).await;
    let a = &cluster.db_addrs[0];
    let mut targets = vec![
        cluster.mserver_addrs[0].clone(),
        a.rpc.clone(),
        format!("{}:{}", a.ip, a.web),
        a.pgsql.clone(),
        a.cql.clone(),
        a.redis.clone(),
    ];
    targets.dedup();
    let payloads: Vec<Vec<u8>> = vec![
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff".to_vec(),
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect(),
        vec![0xFF; 70_000],
    ];
    for addr in &targets {
        for p in &payloads {
            if let Ok(mut s) = std::net::TcpStream::connect(addr) {
                s.set_read_timeout(Some(Duration::from_millis(300))).ok();
                let _ = s.write_all(p);
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
            }
        }
    }
    let c = cluster.client();
    c.put(&table, b"still", b"alive")
        .await
        .expect("write after garbage");
    assert_eq!(
        c.get(&table, b"still").await.unwrap().as_deref(),
        Some(&b"alive"[..])
    );
    for p in cluster.mservers.iter().chain(&cluster.dbservers) {
        assert!(p.is_running(), "{} survived", p.name);
    }
    // The web port answers 404 for unknown paths and serves metrics.
    let metrics = http_get(&format!("{}:{}", a.ip, a.web), "/prometheus-metrics");
    assert!(
        metrics.starts_with("HTTP/1.1 200") && metrics.contains("aisql_dbserver_tablets"),
        "{metrics}"
    );
    assert!(
        http_get(&format!("{}:{}", a.ip, a.web), "/column_family/x").starts_with("HTTP/1.1 404")
    );
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
