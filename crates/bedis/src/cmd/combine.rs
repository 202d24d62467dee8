//! Flat combining of concurrent writes to one key on this server.
//!
//! Every change of a key is a compare-and-set on its meta row (see `db.rs`), so clients that
//! write one hot key at once — redis-benchmark's LPUSH, HSET and ZADD all hit one key — would
//! retry each other, and about one of them would win per Raft round. Instead:
//!
//! * the first command on a key runs as usual, inline (the *leader*);
//! * commands on the same key that arrive meanwhile queue behind it;
//! * when the leader is done, a task takes the whole queue and runs it as one *batch*: the
//!   commands in arrival order, in one snapshot transaction (each sees the ones before it),
//!   committed as one single-tablet write. It repeats while commands keep arriving.
//!
//! A command's reply is sent only after the write holding its change is durable, and a batch
//! is all-or-nothing: on a conflict with a writer elsewhere the whole batch runs again on a
//! fresh snapshot. The transaction's snapshot is taken after every command of the batch was
//! received, so each command still takes effect between its arrival and its reply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::{committed, err, notify, retry, run, Reply, Session};
use crate::db::{Access, DbKey, Dbs};
use crate::frame::Frame;

/// Single-key commands that read and then change their key: the ones hot keys contend on.
/// (A plain SET does not read, so it never contends.)
pub const COMBINED: &[&str] = &[
    "incr",
    "decr",
    "incrby",
    "decrby",
    "incrbyfloat",
    "append",
    "setrange",
    "hset",
    "hmset",
    "hsetnx",
    "hdel",
    "hincrby",
    "hincrbyfloat",
    "lpush",
    "rpush",
    "lpushx",
    "rpushx",
    "lpop",
    "rpop",
    "lset",
    "linsert",
    "lrem",
    "ltrim",
    "sadd",
    "srem",
    "spop",
    "zadd",
    "zincrby",
    "zrem",
    "zpopmin",
    "zpopmax",
    "zremrangebyscore",
    "zremrangebyrank",
    "zremrangebylex",
];

/// Most commands committed in one batch.
const MAX_BATCH: usize = 128;

/// The keys with a leader or a batch running, and the commands queued behind it.
#[derive(Default)]
pub struct Combiner {
    queues: Mutex<HashMap<DbKey, Vec<Pending>>>,
}

/// A queued command.
struct Pending {
    name: &'static str,
    args: Vec<Vec<u8>>,
    db: usize,
    proto: u8,
    done: oneshot::Sender<Reply>,
}

impl Combiner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DbKey, Vec<Pending>>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Run command `name` (one of [`COMBINED`]) with arguments `a` (`a[0]` is the key).
pub(super) async fn run_combined(
    s: &mut Session,
    dbs: &Dbs,
    name: &'static str,
    a: &[Vec<u8>],
) -> Reply {
    let key: DbKey = (s.db, a[0].clone());
    let rx = {
        let mut queues = dbs.combiner.lock();
        match queues.get_mut(&key) {
            Some(queue) => {
                let (tx, rx) = oneshot::channel();
                queue.push(Pending {
                    name,
                    args: a.to_vec(),
                    db: s.db,
                    proto: s.proto,
                    done: tx,
                });
                Some(rx)
            }
            None => {
                queues.insert(key.clone(), Vec::new());
                None
            }
        }
    };
    if let Some(rx) = rx {
        return rx.await.unwrap_or_else(|_| {
            Frame::err("ERR the write was interrupted; its outcome is unknown")
        });
    }
    // The leader: run at once; whatever queued meanwhile is handed on when it is done (also
    // if this future is dropped).
    let _lead = Lead { dbs, key };
    run_direct(s, dbs, name, a).await
}

/// Hands the queue of its key on when the leader is done.
struct Lead<'a> {
    dbs: &'a Dbs,
    key: DbKey,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        let Some(batch) = take_batch(self.dbs, &self.key) else {
            return;
        };
        // A leader dropped outside the runtime (at shutdown) cannot hand on: then nothing
        // runs the queued commands, whose callers get an error.
        match (self.dbs.shared(), tokio::runtime::Handle::try_current()) {
            (Some(dbs), Ok(rt)) => {
                let key = std::mem::take(&mut self.key);
                rt.spawn(drain(dbs, key, batch));
            }
            _ => {
                self.dbs.combiner.lock().remove(&self.key);
            }
        }
    }
}

/// The next batch queued on `key`, or None after forgetting the key (nothing queued).
fn take_batch(dbs: &Dbs, key: &DbKey) -> Option<Vec<Pending>> {
    let mut queues = dbs.combiner.lock();
    let queue = queues.get_mut(key)?;
    if queue.is_empty() {
        queues.remove(key);
        return None;
    }
    let n = queue.len().min(MAX_BATCH);
    Some(queue.drain(..n).collect())
}

/// Run batches on `key` until nothing is queued.
async fn drain(dbs: Arc<Dbs>, key: DbKey, mut batch: Vec<Pending>) {
    loop {
        run_batch(&dbs, batch).await;
        match take_batch(&dbs, &key) {
            Some(next) => batch = next,
            None => return,
        }
    }
}

/// One command, outside any transaction (its own compare-and-set loop).
pub(super) async fn run_direct(s: &mut Session, dbs: &Dbs, name: &str, a: &[Vec<u8>]) -> Reply {
    let mut acc = Access::direct(dbs);
    let reply = run(s, &mut acc, name, a).await;
    notify(dbs, "new", &acc.created);
    notify(dbs, name, &acc.touched);
    reply
}

/// Run `batch` in one transaction and answer each command (one alone runs directly).
async fn run_batch(dbs: &Dbs, batch: Vec<Pending>) {
    let batch = match <[Pending; 1]>::try_from(batch) {
        Ok([p]) => {
            let reply = run_direct(&mut Session::local(p.db, p.proto), dbs, p.name, &p.args).await;
            let _ = p.done.send(reply);
            return;
        }
        Err(batch) => batch,
    };
    let mut attempt = 0;
    loop {
        let mut txn = dbs.client().begin(client::Isolation::Snapshot);
        let mut replies = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let mut cleanups = Vec::new();
        for p in &batch {
            let before = txn.savepoint();
            let mut acc = Access::in_txn(dbs, &mut txn);
            let reply = run(
                &mut Session::local(p.db, p.proto),
                &mut acc,
                p.name,
                &p.args,
            )
            .await;
            let (touched, created, cleanup) = (acc.touched, acc.created, acc.cleanups);
            if matches!(reply, Frame::Error(_)) {
                // A failed command changes nothing, whatever it buffered.
                txn.rollback_to(before);
            } else {
                events.push((p.name, touched, created));
                cleanups.extend(cleanup);
            }
            replies.push(reply);
        }
        let outcome = if txn.has_writes() {
            txn.commit().await.map(|_| ())
        } else {
            Ok(())
        };
        match outcome {
            Ok(()) => {
                committed(dbs, cleanups).await;
                for (name, touched, created) in &events {
                    notify(dbs, "new", created);
                    notify(dbs, name, touched);
                }
                for (p, reply) in batch.into_iter().zip(replies) {
                    let _ = p.done.send(reply);
                }
                return;
            }
            Err(e) if retry(&e, &mut attempt).await => continue,
            Err(e) => {
                let reply = err::backend(e);
                for p in batch {
                    let _ = p.done.send(reply.clone());
                }
                return;
            }
        }
    }
}
