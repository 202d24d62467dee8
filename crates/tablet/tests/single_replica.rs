//! A one-replica tablet over the fjall engine: writes are acknowledged, readable, ordered by
//! hybrid time, and survive closing and reopening the store.

use std::sync::Arc;

use common::Hlc;
use consensus::{GroupEnv, RaftRouter, Timing};
use storage::{FjallEngine, KvEngine};
use tablet::{PeerMeta, Tablet, TabletMeta, WriteOp};

fn env(dir: &std::path::Path) -> GroupEnv {
    let engine: Arc<dyn KvEngine> = Arc::new(FjallEngine::open(dir).unwrap());
    GroupEnv {
        wal: consensus::open_wal(engine.as_ref(), &dir.join("wal")).unwrap(),
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

/// Open (or reopen) the test tablet with a fresh clock and wait until it leads.
async fn open_leader(env: &GroupEnv) -> Arc<Tablet> {
    let t = Tablet::open(env, meta(), 1, Arc::new(Hlc::new()), true, 900_000_000)
        .await
        .unwrap();
    wait_leader(&t).await;
    t
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
        let t = open_leader(&env).await;
        let h1 = t.write(vec![put("a", "1")]).await.unwrap().ht;
        let h2 = t
            .write(vec![put("a", "2"), put("b", "x")])
            .await
            .unwrap()
            .ht;
        assert!(h2 > h1);
        let (vals, _) = t
            .read(&[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()], None, None)
            .await
            .unwrap();
        assert_eq!(vals, vec![Some(b"2".to_vec()), Some(b"x".to_vec()), None]);
        let (old, _) = t.read(&[b"a".to_vec()], Some(h1), None).await.unwrap();
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
        env.wal.shutdown();
    }
    let env = env(dir.path());
    let t = open_leader(&env).await;
    let (vals, _) = t
        .read(&[b"a".to_vec(), b"b".to_vec()], None, None)
        .await
        .unwrap();
    assert_eq!(vals, vec![Some(b"2".to_vec()), None]);
    // Conditional writes replayed from the log (no checkpoint was due) decide as they did.
    let (vals, _) = t
        .read(&[b"c".to_vec(), b"n".to_vec(), b"d".to_vec()], None, None)
        .await
        .unwrap();
    assert_eq!(vals, vec![Some(b"3".to_vec()), Some(b"60".to_vec()), None]);
    let (rows, _) = t.scan(&Default::default(), 10, None, None).await.unwrap();
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
    let (vals, _) = t
        .read(&[b"c".to_vec(), b"d".to_vec()], None, None)
        .await
        .unwrap();
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
                let (v, _) = t.read(&[b"n".to_vec()], None, None).await.unwrap();
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
    let (v, _) = t.read(&[b"n".to_vec()], None, None).await.unwrap();
    assert_eq!(v[0].as_deref(), Some(&b"60"[..]));
}

/// Past several checkpoints (every 512 entries): reopening replays from the last one and the
/// data, the hybrid clock and conditions are as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let last = {
        let env = env(dir.path());
        let t = open_leader(&env).await;
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
        env.wal.shutdown();
        last.unwrap()
    };
    let env = env(dir.path());
    let clock = Arc::new(Hlc::new());
    let t = Tablet::open(&env, meta(), 1, clock, true, 900_000_000)
        .await
        .unwrap();
    wait_leader(&t).await;
    let (rows, _) = t.scan(&Default::default(), 5000, None, None).await.unwrap();
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

/// The transaction rules in the state machine: intents lock keys against writers and
/// readers, a newer version fails a prewrite, and resolution turns an intent into a version
/// at the commit time (or drops it); all of it survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intents_lock_and_resolve() {
    use tablet::{Condition, Conflict, TabletError};
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (txn::new_id(), txn::new_id());
    let intent = |k: &str, v: &str, txn: txn::TxnId, since: u64| WriteOp {
        key: k.into(),
        value: Some(v.into()),
        condition: Condition::Intent {
            txn,
            since_ht: since,
            read: false,
        },
        ..Default::default()
    };
    let resolve = |k: &str, txn: txn::TxnId, commit_ht: Option<u64>| WriteOp {
        key: k.into(),
        condition: Condition::Resolve { txn, commit_ht },
        ..Default::default()
    };
    let commit_ht;
    {
        let env = env(dir.path());
        let t = open_leader(&env).await;
        let h0 = t.write(vec![put("k", "old")]).await.unwrap().ht;
        // A prewrite reading below the newest version conflicts.
        let o = t.write(vec![intent("k", "x", a, h0.0 - 1)]).await.unwrap();
        assert!(!o.applied);
        assert!(matches!(o.conflict, Some(Conflict::Newer { .. })));
        // A prewrite at the current snapshot takes the lock.
        let p = t.write(vec![intent("k", "new", a, h0.0)]).await.unwrap();
        assert!(p.applied && p.conflict.is_none());
        // Others are locked out: another prewrite, a plain write, a read, a scan.
        let o = t.write(vec![intent("k", "y", b, p.ht.0)]).await.unwrap();
        assert!(matches!(o.conflict, Some(Conflict::Locked { txn, .. }) if txn == a));
        let o = t.write(vec![put("k", "plain")]).await.unwrap();
        assert!(!o.applied);
        assert!(matches!(o.conflict, Some(Conflict::Locked { .. })));
        let r = t.read(&[b"k".to_vec()], None, None).await;
        assert!(matches!(r, Err(TabletError::Locked { .. })));
        let r = t.scan(&Default::default(), 10, None, None).await;
        assert!(matches!(r, Err(TabletError::Locked { .. })));
        // Other keys are untouched.
        assert!(t.write(vec![put("other", "1")]).await.unwrap().applied);
        // Commit at a time above the prewrite: a version at exactly that time.
        commit_ht = p.ht.0 + 1000;
        assert!(
            t.write(vec![resolve("k", a, Some(commit_ht))])
                .await
                .unwrap()
                .applied
        );
        let (v, _) = t.read(&[b"k".to_vec()], None, None).await.unwrap();
        assert_eq!(v[0].as_deref(), Some(&b"new"[..]));
        let (v, _) = t
            .read(
                &[b"k".to_vec()],
                Some(common::HybridTime(commit_ht - 1)),
                None,
            )
            .await
            .unwrap();
        assert_eq!(v[0].as_deref(), Some(&b"old"[..]));
        // Later writes land above the commit time.
        let after = t.write(vec![put("z", "1")]).await.unwrap().ht;
        assert!(after.0 > commit_ht);
        // An aborted prewrite leaves nothing.
        let p = t.write(vec![intent("q", "v", b, after.0)]).await.unwrap();
        assert!(p.applied);
        t.write(vec![resolve("q", b, None)]).await.unwrap();
        let (v, _) = t.read(&[b"q".to_vec()], None, None).await.unwrap();
        assert_eq!(v[0], None);
        // A pending intent on "p" stays over a restart.
        let p = t.write(vec![intent("p", "v", a, after.0)]).await.unwrap();
        assert!(p.applied);
        // A read in the uncertainty window asks for a restart.
        let r = t
            .read(
                &[b"z".to_vec()],
                Some(common::HybridTime(after.0 - 1)),
                Some(common::HybridTime(after.0 + 1_000_000)),
            )
            .await;
        assert!(
            matches!(r, Err(TabletError::ReadRestart { restart_ht, .. }) if restart_ht == after)
        );
        t.shutdown().await;
    }
    let env = env(dir.path());
    let t = Tablet::open(&env, meta(), 1, Arc::new(Hlc::new()), false, 900_000_000)
        .await
        .unwrap();
    wait_leader(&t).await;
    let r = t.read(&[b"p".to_vec()], None, None).await;
    assert!(matches!(r, Err(TabletError::Locked { .. })), "{r:?}");
    let (v, _) = t.read(&[b"k".to_vec()], None, None).await.unwrap();
    assert_eq!(v[0].as_deref(), Some(&b"new"[..]));
    assert_eq!(t.old_intents(u64::MAX).unwrap().len(), 1);
    // The apply path sees the reloaded intent too: another transaction is locked out, and
    // resolving it writes its version.
    let o = t
        .write(vec![intent("p", "w", b, fresh_ht(&t).await)])
        .await
        .unwrap();
    assert!(matches!(o.conflict, Some(Conflict::Locked { txn, .. }) if txn == a));
    let at = fresh_ht(&t).await + 1000;
    assert!(
        t.write(vec![resolve("p", a, Some(at))])
            .await
            .unwrap()
            .applied
    );
    let (v, _) = t.read(&[b"p".to_vec()], None, None).await.unwrap();
    assert_eq!(v[0].as_deref(), Some(&b"v"[..]));
    assert!(t.old_intents(u64::MAX).unwrap().is_empty());
}

/// The newest time written to `t` (a fresh write's).
async fn fresh_ht(t: &Tablet) -> u64 {
    t.write(vec![put("clock", "1")]).await.unwrap().ht.0
}

/// A serializable range check: refused when a key in the range has a version newer than
/// the snapshot or another transaction's write intent, ignoring the checker's own intents
/// and keys outside the range; when it holds it raises the tablet's time to `raise_to`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_checks_see_phantoms() {
    use tablet::{Condition, Conflict};
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path());
    let t = open_leader(&env).await;
    let (me, other) = (txn::new_id(), txn::new_id());
    let check = |start: &str, end: &str, since: u64, raise_to: u64| WriteOp {
        key: start.into(),
        condition: Condition::RangeUnchanged {
            txn: me,
            since_ht: since,
            end: end.into(),
            raise_to,
        },
        ..Default::default()
    };
    let intent = |k: &str, txn: txn::TxnId, since: u64| WriteOp {
        key: k.into(),
        value: Some(b"v".to_vec()),
        condition: Condition::Intent {
            txn,
            since_ht: since,
            read: false,
        },
        ..Default::default()
    };
    let s = t.write(vec![put("a", "1")]).await.unwrap().ht.0;
    // Nothing new in [b, c): holds.
    assert!(t.write(vec![check("b", "c", s, 0)]).await.unwrap().applied);
    // A row appears in the range: refused as Newer, naming it.
    t.write(vec![put("b5", "1")]).await.unwrap();
    let o = t.write(vec![check("b", "c", s, 0)]).await.unwrap();
    assert!(matches!(o.conflict, Some(Conflict::Newer { ref key }) if key == b"b5"));
    // A row outside it, and an empty end (to the tablet's end) that covers it.
    let s = t.write(vec![put("d", "1")]).await.unwrap().ht.0;
    t.write(vec![put("z", "1")]).await.unwrap();
    assert!(t.write(vec![check("b", "c", s, 0)]).await.unwrap().applied);
    assert!(!t.write(vec![check("b", "", s, 0)]).await.unwrap().applied);
    // Intents: the checker's own do not count, another transaction's do.
    let s = t.write(vec![put("q", "1")]).await.unwrap().ht.0;
    assert!(t.write(vec![intent("m1", me, s)]).await.unwrap().applied);
    let now = t.write(vec![put("zz", "1")]).await.unwrap().ht.0;
    assert!(
        t.write(vec![check("m", "n", now, 0)])
            .await
            .unwrap()
            .applied
    );
    assert!(
        t.write(vec![intent("m2", other, now)])
            .await
            .unwrap()
            .applied
    );
    let o = t.write(vec![check("m", "n", now, 0)]).await.unwrap();
    assert!(
        matches!(o.conflict, Some(Conflict::Locked { txn, ref key, .. }) if txn == other && key == b"m2")
    );
    // When it holds, later writes land above `raise_to`.
    let raise_to = now + 5_000_000_000;
    assert!(
        t.write(vec![check("x", "y", now, raise_to)])
            .await
            .unwrap()
            .applied
    );
    let after = t.write(vec![put("x1", "1")]).await.unwrap().ht.0;
    assert!(after > raise_to, "{after} <= {raise_to}");
    t.shutdown().await;
}

/// The retry filter: a resent write (same client and number) is answered as applied and not
/// applied again, so it cannot undo a later write; this holds across a restart; a resend
/// below what the client still has running is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_writes_apply_once() {
    let dir = tempfile::tempdir().unwrap();
    let id = |seq, min_running| tablet::RequestId {
        client: [5; 16],
        seq,
        min_running,
    };
    let read = |t: Arc<Tablet>| async move {
        let (v, _) = t.read(&[b"k".to_vec()], None, None).await.unwrap();
        v.into_iter().next().flatten()
    };
    {
        let env = env(dir.path());
        let t = open_leader(&env).await;
        assert!(
            t.write_request(vec![put("k", "1")], id(1, 1))
                .await
                .unwrap()
                .applied
        );
        t.write(vec![put("k", "2")]).await.unwrap();
        let again = t
            .write_request(vec![put("k", "1")], id(1, 1))
            .await
            .unwrap();
        assert!(again.applied, "a resend is answered as applied");
        assert_eq!(read(t.clone()).await.as_deref(), Some(&b"2"[..]));
        t.shutdown().await;
        env.wal.shutdown();
    }
    let env = env(dir.path());
    let t = open_leader(&env).await;
    t.write_request(vec![put("k", "1")], id(1, 1))
        .await
        .unwrap();
    assert_eq!(
        read(t.clone()).await.as_deref(),
        Some(&b"2"[..]),
        "after a restart too"
    );
    // The client has nothing below 3 running: 2 is stale, 3 is new.
    let stale = t
        .write_request(vec![put("k", "3")], id(2, 3))
        .await
        .unwrap();
    assert!(!stale.applied);
    assert!(
        t.write_request(vec![put("k", "4")], id(3, 3))
            .await
            .unwrap()
            .applied
    );
    assert_eq!(read(t.clone()).await.as_deref(), Some(&b"4"[..]));
    t.shutdown().await;
}
