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
        ttl_ms: 0,
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
        let h1 = t.write(vec![put("a", "1")]).await.unwrap();
        let h2 = t.write(vec![put("a", "2"), put("b", "x")]).await.unwrap();
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
            ttl_ms: 0,
        }])
        .await
        .unwrap();
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
    let (rows, _) = t.scan(&Default::default(), 10, None).await.unwrap();
    assert_eq!(rows, vec![(b"a".to_vec(), b"2".to_vec())]);
    t.shutdown().await;
}
