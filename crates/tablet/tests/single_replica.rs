//! A one-replica tablet over the fjall engine: writes are acknowledged, readable, ordered by
//! hybrid time, and survive closing and reopening the store.

use std::sync::Arc;

use common::Hlc;
use consensus::{GroupEnv, RaftRouter, Timing};
use storage::{FjallEngine, GroupCommit, KvEngine};
use tablet::{PeerMeta, Tablet, TabletMeta, WriteOp};

fn env(dir: &std::path::Path) -> GroupEnv {
    let engine: Arc<dyn KvEngine> = Arc::new(FjallEngine::open(dir).unwrap());
    GroupEnv {
        group_commit: Arc::new(GroupCommit::start(engine.clone())),
        engine,
        pool: rpc::ChannelPool::new(),
        router: RaftRouter::new(),
        timing: Timing::default(),
        metrics: Default::default(),
    }
}

fn meta() -> TabletMeta {
    TabletMeta {
        tablet_id: "0123456789abcdef0123456789abcdef".into(),
        table_id: "t".into(),
        table_name: "t".into(),
        hash_start: 0,
        hash_end: 65536,
        peers: vec![PeerMeta {
            server_uuid: "s".into(),
            node_id: 1,
            rpc_addr: "127.0.0.1:1".into(),
        }],
        initial_leader_uuid: "s".into(),
    }
}

async fn wait_leader(t: &Tablet) {
    for _ in 0..200 {
        if t.status().is_leader {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no leader");
}

fn put(k: &str, v: &str) -> WriteOp {
    WriteOp {
        key: k.into(),
        value: Some(v.into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_read_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let env = env(dir.path());
        let t = Tablet::open(&env, meta(), 1, Arc::new(Hlc::new()), true, 900_000_000)
            .await
            .unwrap();
        wait_leader(&t).await;
        let h1 = t.write(vec![put("a", "1")]).await.unwrap().ht;
        let h2 = t
            .write(vec![put("a", "2"), put("b", "x")])
            .await
            .unwrap()
            .ht;
        assert!(h2 > h1);
        let (vals, _) = t
            .read(&[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()], None)
            .await
            .unwrap();
        assert_eq!(vals, vec![Some(b"2".to_vec()), Some(b"x".to_vec()), None]);
        let (old, _) = t.read(&[b"a".to_vec()], Some(h1)).await.unwrap();
        assert_eq!(old, vec![Some(b"1".to_vec())]);
        t.write(vec![WriteOp {
            key: "b".into(),
            value: None,
            ..Default::default()
        }])
        .await
        .unwrap();
        conditional_writes(&t).await;
        t.shutdown().await;
        env.group_commit.shutdown();
    }
    let env = env(dir.path());
    let t = Tablet::open(&env, meta(), 1, Arc::new(Hlc::new()), true, 900_000_000)
        .await
        .unwrap();
    wait_leader(&t).await;
    let (vals, _) = t.read(&[b"a".to_vec(), b"b".to_vec()], None).await.unwrap();
    assert_eq!(vals, vec![Some(b"2".to_vec()), None]);
    // Conditional writes replayed from the log (no checkpoint was due) decide as they did.
    let (vals, _) = t
        .read(&[b"c".to_vec(), b"n".to_vec(), b"d".to_vec()], None)
        .await
        .unwrap();
    assert_eq!(vals, vec![Some(b"3".to_vec()), Some(b"60".to_vec()), None]);
    let (rows, _) = t.scan(&Default::default(), 10, None).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], (b"a".to_vec(), b"2".to_vec()));
    t.shutdown().await;
}

/// All conditions hold or nothing is written; compare-and-set increments lose nothing.
async fn conditional_writes(t: &Arc<Tablet>) {
    let absent = |k: &str, v: &str| WriteOp {
        condition: tablet::Condition::IfAbsent,
        ..put(k, v)
    };
    assert!(t.write(vec![absent("c", "1")]).await.unwrap().applied);
    let o = t
        .write(vec![absent("d", "1"), absent("c", "2")])
        .await
        .unwrap();
    assert!(!o.applied, "c exists, so the batch fails");
    let (vals, _) = t.read(&[b"c".to_vec(), b"d".to_vec()], None).await.unwrap();
    assert_eq!(vals, vec![Some(b"1".to_vec()), None]);
    let cas = WriteOp {
        condition: tablet::Condition::IfEquals(b"1".to_vec()),
        ..put("c", "3")
    };
    assert!(t.write(vec![cas.clone()]).await.unwrap().applied);
    assert!(
        !t.write(vec![cas]).await.unwrap().applied,
        "the value is 3 now"
    );
    let incr = |t: Arc<Tablet>| async move {
        for _ in 0..20 {
            loop {
                let (v, _) = t.read(&[b"n".to_vec()], None).await.unwrap();
                let cur = v[0].clone();
                let n: u64 = cur
                    .as_deref()
                    .map(|b| std::str::from_utf8(b).unwrap().parse().unwrap())
                    .unwrap_or(0);
                let condition = match cur {
                    Some(c) => tablet::Condition::IfEquals(c),
                    None => tablet::Condition::IfAbsent,
                };
                let op = WriteOp {
                    condition,
                    ..put("n", &(n + 1).to_string())
                };
                if t.write(vec![op]).await.unwrap().applied {
                    break;
                }
            }
        }
    };
    tokio::join!(incr(t.clone()), incr(t.clone()), incr(t.clone()));
    let (v, _) = t.read(&[b"n".to_vec()], None).await.unwrap();
    assert_eq!(v[0].as_deref(), Some(&b"60"[..]));
}

/// Past several checkpoints (every 512 entries): reopening replays from the last one and the
/// data, the hybrid clock and conditions are as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let last = {
        let env = env(dir.path());
        let t = Tablet::open(&env, meta(), 1, Arc::new(Hlc::new()), true, 900_000_000)
            .await
            .unwrap();
        wait_leader(&t).await;
        let mut last = None;
        for i in 0..1200 {
            last = Some(
                t.write(vec![put(&format!("k{i:04}"), &i.to_string())])
                    .await
                    .unwrap()
                    .ht,
            );
        }
        t.shutdown().await;
        env.group_commit.shutdown();
        last.unwrap()
    };
    let env = env(dir.path());
    let clock = Arc::new(Hlc::new());
    let t = Tablet::open(&env, meta(), 1, clock, true, 900_000_000)
        .await
        .unwrap();
    wait_leader(&t).await;
    let (rows, _) = t.scan(&Default::default(), 5000, None).await.unwrap();
    assert_eq!(rows.len(), 1200);
    assert_eq!(rows[1199], (b"k1199".to_vec(), b"1199".to_vec()));
    let again = WriteOp {
        condition: tablet::Condition::IfAbsent,
        ..put("k0007", "x")
    };
    assert!(
        !t.write(vec![again]).await.unwrap().applied,
        "k0007 exists after replay"
    );
    let next = t.write(vec![put("new", "v")]).await.unwrap().ht;
    assert!(next > last, "hybrid time keeps growing across restarts");
    t.shutdown().await;
}
