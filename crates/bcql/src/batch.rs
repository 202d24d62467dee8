//! [`ReadBatcher`]: point reads of one tablet that arrive together share one read call.
//!
//! Drivers keep many statements in flight, each run by its own task. The first task to read
//! a tablet becomes the batch's leader: it yields once, so that the tasks already runnable
//! (the rest of a pipelined burst, from any connection) can add their keys, then reads every
//! queued key in one call and hands each task its values. Each read happens after its
//! statement arrived and before it is answered, so batched reads stay linearizable.

use std::collections::HashMap;
use std::sync::Mutex;

use client::Table;
use common::HybridTime;
use tokio::sync::oneshot;

use crate::error::{CqlError, Result};

type Reply = Result<(Vec<Option<Vec<u8>>>, HybridTime)>;

struct Waiter {
    keys: Vec<Vec<u8>>,
    tx: Option<oneshot::Sender<Reply>>,
}

/// Batches of pending reads, by tablet id.
#[derive(Default)]
pub struct ReadBatcher {
    pending: Mutex<HashMap<String, Vec<Waiter>>>,
}

impl ReadBatcher {
    /// Read `keys` of tablet `idx` now (linearizably), with the values and their read time.
    pub async fn read(
        &self,
        client: &client::Client,
        table: &Table,
        idx: usize,
        keys: Vec<Vec<u8>>,
    ) -> Reply {
        let tablet = table.tablet_id(idx);
        let rx = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending.get_mut(&tablet) {
                Some(waiters) => {
                    let (tx, rx) = oneshot::channel();
                    waiters.push(Waiter { keys, tx: Some(tx) });
                    Some(rx)
                }
                None => {
                    pending.insert(tablet.clone(), vec![Waiter { keys, tx: None }]);
                    None
                }
            }
        };
        if let Some(rx) = rx {
            return rx
                .await
                .unwrap_or_else(|_| Err(CqlError::server("batched read abandoned")));
        }
        // The leader: let the runnable tasks join, then read for everyone. Should this task
        // be dropped midway, the guard takes the batch away (its waiters get an error)
        // rather than leave later readers queued behind a leader that is gone.
        let mut guard = Leader {
            batcher: self,
            tablet,
            taken: false,
        };
        tokio::task::yield_now().await;
        let waiters = guard.take();
        let all: Vec<Vec<u8>> = waiters
            .iter()
            .flat_map(|w| w.keys.iter().cloned())
            .collect();
        let res = client.read_tablet_at(table, idx, &all, None).await;
        let mut own = None;
        match res {
            Ok((values, ht)) => {
                let mut values = values.into_iter();
                for w in waiters {
                    let reply = Ok((values.by_ref().take(w.keys.len()).collect(), ht));
                    match w.tx {
                        Some(tx) => {
                            let _ = tx.send(reply);
                        }
                        None => own = Some(reply),
                    }
                }
            }
            Err(e) => {
                let e = CqlError::from(e);
                for w in waiters {
                    match w.tx {
                        Some(tx) => {
                            let _ = tx.send(Err(e.clone()));
                        }
                        None => own = Some(Err(e.clone())),
                    }
                }
            }
        }
        own.unwrap_or_else(|| Err(CqlError::server("batched read lost")))
    }
}

/// The batch a leader has yet to take.
struct Leader<'a> {
    batcher: &'a ReadBatcher,
    tablet: String,
    taken: bool,
}

impl Leader<'_> {
    fn take(&mut self) -> Vec<Waiter> {
        if std::mem::replace(&mut self.taken, true) {
            return Vec::new();
        }
        self.batcher
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.tablet)
            .unwrap_or_default()
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        // Once taken, a later batch of the same tablet is not ours to touch; before, the
        // waiters' senders drop and they fail.
        self.take();
    }
}
