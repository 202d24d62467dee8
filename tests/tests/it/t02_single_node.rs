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
