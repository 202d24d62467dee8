//! Three mservers and three dbservers, RF=3:
//! 8b — 10,000 keys; `kill -9` a dbserver holding leaders; writes and reads go on, nothing
//!      acknowledged is missing; restarted, it catches up;
//! 8d — the unavailability window of a tablet whose leader died (printed);
//! 8c — `kill -9` the mserver leader: another leads; heartbeats and table creation work;
//! and a Cassandra driver given one node finds all three through `system.peers`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aisql_tests::{Cluster, ClusterOpts};
use rpc::tablet::tablet_service_client::TabletServiceClient;

async fn write_range(c: &client::Client, table: &client::Table, range: std::ops::Range<u32>) {
    let c = Arc::new(c.clone());
    let table = Arc::new(table.clone());
    let mut tasks = Vec::new();
    let chunk = (range.len() / 16).max(1) as u32;
    let mut start = range.start;
    while start < range.end {
        let end = (start + chunk).min(range.end);
        let (c, table) = (c.clone(), table.clone());
        tasks.push(tokio::spawn(async move {
            for i in start..end {
                let k = format!("k{i:06}");
                c.put(&table, k.as_bytes(), k.as_bytes())
                    .await
                    .unwrap_or_else(|e| panic!("put {k}: {e}"));
            }
        }));
        start = end;
    }
    for t in tasks {
        t.await.expect("writer");
    }
}

async fn check_range(c: &client::Client, table: &client::Table, range: std::ops::Range<u32>) {
    for i in range {
        let k = format!("k{i:06}");
        assert_eq!(
            c.get(table, k.as_bytes()).await.expect("get").as_deref(),
            Some(k.as_bytes()),
            "{k} missing"
        );
    }
}

/// last_applied of every replica on the dbserver at `addr`.
async fn applied(addr: &str) -> HashMap<String, u64> {
    let Ok(mut c) = TabletServiceClient::connect(format!("http://{addr}")).await else {
        return HashMap::new();
    };
    match c
        .list_tablet_replicas(rpc::tablet::ListTabletReplicasRequest {})
        .await
    {
        Ok(r) => r
            .into_inner()
            .tablets
            .into_iter()
            .map(|t| (t.tablet_id, t.last_applied))
            .collect(),
        Err(_) => HashMap::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rf3_survives_dbserver_and_mserver_loss() {
    let mut cluster = Cluster::start(ClusterOpts {
        mservers: 3,
        dbservers: 3,
        replication_factor: 3,
        unresponsive_timeout_ms: 3000,
        ..Default::default()
    });
    cluster.wait_for_dbservers(3).await;
    let table = cluster.create_table("test", "kv3", 6).await;
    let c = cluster.client();

    // Leaders are spread over the dbservers (reported with the next heartbeats).
    let t_wait = Instant::now();
    let tablets = loop {
        let tablets = c.list_tablets().await.unwrap().tablets;
        if tablets
            .iter()
            .all(|t| t.replicas.iter().any(|r| r.is_leader))
            || t_wait.elapsed() > Duration::from_secs(20)
        {
            break tablets;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut leaders_per_server: HashMap<String, usize> = HashMap::new();
    for t in &tablets {
        assert_eq!(t.replicas.len(), 3);
        for r in t.replicas.iter().filter(|r| r.is_leader) {
            *leaders_per_server.entry(r.rpc_addr.clone()).or_default() += 1;
        }
    }
    assert_eq!(
        leaders_per_server.len(),
        3,
        "leaders on every dbserver: {leaders_per_server:?}"
    );

    let t0 = Instant::now();
    write_range(&c, &table, 0..10_000).await;
    println!("8b: wrote 10,000 keys with RF=3 in {:?}", t0.elapsed());

    // BEDIS on an RF=3 cluster: writes through one node, read back through another after it dies.
    let redis0 = cluster.db_addrs[0].redis.clone();
    let mut bedis_ok = false;
    for _ in 0..100 {
        if crate::t04_bedis::redis_cli(&redis0, "SET ready 1\n") == ["OK"] {
            bedis_ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(bedis_ok, "BEDIS on dbserver0\n{}", cluster.logs());
    let script: String = (0..200)
        .map(|i| format!("SET bedis{i} value{i}\n"))
        .collect();
    assert!(crate::t04_bedis::redis_cli(&redis0, &script)
        .iter()
        .all(|l| l == "OK"));

    // BCQL drivers find every node through system.peers and route to all of them.
    crate::t08_bcql::python_case("peers.py", &cluster.db_addrs[0].cql, &["3"], &cluster);
    // Global secondary indexes: index tablets on other servers than the rows.
    crate::t08_bcql::secondary_index(&cluster.db_addrs[1].cql, "index_3", &cluster).await;

    // Pick the victim: a dbserver leading at least one tablet; and a key in such a tablet.
    let victim_addr = leaders_per_server.keys().next().unwrap().clone();
    let victim = cluster
        .db_addrs
        .iter()
        .position(|a| a.rpc == victim_addr)
        .unwrap();
    let led = tablets
        .iter()
        .find(|t| {
            t.replicas
                .iter()
                .any(|r| r.is_leader && r.rpc_addr == victim_addr)
        })
        .unwrap();
    let probe = (0..100_000u32)
        .map(|i| format!("probe{i}"))
        .find(|k| table.tablets[table.tablet_for(k.as_bytes())].tablet_id == led.tablet_id)
        .unwrap();
    c.put(&table, probe.as_bytes(), b"before").await.unwrap();

    // 8d: kill the leader, time until the first successful write to that tablet.
    let killed = Instant::now();
    cluster.dbservers[victim].kill9();
    c.put(&table, probe.as_bytes(), b"after")
        .await
        .expect("write after leader loss");
    let window = killed.elapsed();
    println!("8d: unavailability window after killing a tablet leader: {window:?} (target <= 3s)");
    assert!(window < Duration::from_secs(15), "{window:?}");

    // The mserver shows it dead once it misses heartbeats for --dbserver_unresponsive_timeout_ms.
    let t_dead = Instant::now();
    loop {
        let s = c.list_servers().await.unwrap();
        if s.servers
            .iter()
            .any(|x| x.rpc_addr == victim_addr && !x.alive)
        {
            break;
        }
        assert!(
            t_dead.elapsed() < Duration::from_secs(20),
            "killed dbserver still shown alive: {:?}",
            s.servers
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("dbserver shown dead {:?} after kill -9", killed.elapsed());

    // 8b: writes and reads continue; nothing acknowledged is missing.
    write_range(&c, &table, 10_000..11_000).await;
    check_range(&c, &table, 0..11_000).await;
    assert_eq!(
        c.get(&table, probe.as_bytes()).await.unwrap().as_deref(),
        Some(&b"after"[..])
    );

    // Everything written through the dead node's BEDIS is readable through the others'.
    let other = cluster
        .db_addrs
        .iter()
        .enumerate()
        .find(|(i, _)| *i != victim && *i != 0)
        .map(|(_, a)| a.redis.clone())
        .unwrap_or_else(|| cluster.db_addrs[(victim + 1) % 3].redis.clone());
    let script: String = (0..200).map(|i| format!("GET bedis{i}\n")).collect();
    let got = crate::t04_bedis::redis_cli(&other, &script);
    let want: Vec<String> = (0..200).map(|i| format!("\"value{i}\"")).collect();
    assert_eq!(got, want, "BEDIS data after losing a node");

    // Restarted, it catches up with the leaders.
    cluster.dbservers[victim].start();
    let t1 = Instant::now();
    loop {
        let mut behind = 0;
        let mine = applied(&victim_addr).await;
        let mut best: HashMap<String, u64> = HashMap::new();
        for a in &cluster.db_addrs {
            if a.rpc != victim_addr {
                for (t, i) in applied(&a.rpc).await {
                    let e = best.entry(t).or_default();
                    *e = (*e).max(i);
                }
            }
        }
        for (t, i) in &best {
            if mine.get(t).copied().unwrap_or(0) < *i {
                behind += 1;
            }
        }
        if behind == 0 && !mine.is_empty() {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(60),
            "restarted dbserver did not catch up ({behind} tablets behind)\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("8b: restarted dbserver caught up in {:?}", t1.elapsed());

    // 8c: kill the mserver leader; another leads; heartbeats and DDL keep working.
    let servers = c.list_servers().await.unwrap();
    let leader_addr = servers
        .mservers
        .iter()
        .find(|m| m.role == "LEADER")
        .expect("an mserver leader")
        .rpc_addr
        .clone();
    let leader = cluster
        .mserver_addrs
        .iter()
        .position(|a| *a == leader_addr)
        .unwrap();
    cluster.mservers[leader].kill9();
    let t2 = Instant::now();
    let t = cluster.create_table("test", "after_failover", 3).await;
    println!(
        "8c: table created {:?} after killing the mserver leader",
        t2.elapsed()
    );
    c.put(&t, b"x", b"y").await.unwrap();
    let servers = c.list_servers().await.unwrap();
    let new_leader = servers
        .mservers
        .iter()
        .find(|m| m.role == "LEADER")
        .expect("new mserver leader");
    assert_ne!(new_leader.rpc_addr, leader_addr);
    // Heartbeats reach the new leader: every dbserver shows a fresh heartbeat.
    let t3 = Instant::now();
    loop {
        let s = c.list_servers().await.unwrap();
        if s.servers.len() == 3
            && s.servers
                .iter()
                .all(|x| x.alive && x.heartbeat_age_ms < 3000)
        {
            break;
        }
        assert!(
            t3.elapsed() < Duration::from_secs(30),
            "heartbeats to the new leader: {:?}",
            s.servers
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    check_range(&c, &table, 0..200).await;

    // The surviving follower's web UI names the new leader and links to its web UI.
    let leader_idx = cluster
        .mserver_addrs
        .iter()
        .position(|a| *a == new_leader.rpc_addr)
        .unwrap();
    let follower = (0..3).find(|&i| i != leader && i != leader_idx).unwrap();
    let link = format!("href=\"http://{}/\"", cluster.mserver_web[leader_idx]);
    let t4 = Instant::now();
    loop {
        let page = aisql_tests::http_get(&cluster.mserver_web[follower], "/")
            .map(|(_, b)| b)
            .unwrap_or_default();
        if page.contains("This mserver is a follower")
            && page.contains(&new_leader.rpc_addr)
            && page.contains(&link)
        {
            break;
        }
        assert!(
            t4.elapsed() < Duration::from_secs(15),
            "follower page does not link the leader ({link}): {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
