//! [`GroupCommit`]: many writers, one fsync.
//!
//! Writers write without syncing (a [`KvEngine::write`], an append to the [`crate::Wal`]) and
//! then hand a callback to [`GroupCommit::sync_then`]. A dedicated thread takes every callback
//! queued so far, syncs once, and runs them all. Under load one `fdatasync` covers the Raft
//! log appends of every tablet on the server; idle, a lone append pays one fsync and no added
//! wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::KvEngine;

type Callback = Box<dyn FnOnce(Result<(), String>) + Send>;

#[derive(Default)]
struct Queue {
    waiting: Vec<Callback>,
    closed: bool,
}

/// Counters of a [`GroupCommit`] (for metrics and benchmarks).
#[derive(Debug, Default)]
pub struct SyncStats {
    /// fsyncs done.
    pub syncs: AtomicU64,
    /// Waiters released (≥ syncs; the ratio is the average group size).
    pub waiters: AtomicU64,
    /// Total time spent in fsync, in microseconds.
    pub sync_micros: AtomicU64,
}

/// The group-commit syncer of one engine.
pub struct GroupCommit {
    shared: Arc<(Mutex<Queue>, Condvar)>,
    stats: Arc<SyncStats>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl GroupCommit {
    /// Start the syncer thread for `engine`.
    pub fn start(engine: Arc<dyn KvEngine>) -> Self {
        Self::start_with("group-commit", move || {
            engine.sync().map_err(|e| e.to_string())
        })
    }

    /// Start a syncer thread named `name` whose every round calls `sync` once: `sync` must
    /// make every write issued before it was called durable.
    pub fn start_with(
        name: &str,
        mut sync: impl FnMut() -> Result<(), String> + Send + 'static,
    ) -> Self {
        let shared: Arc<(Mutex<Queue>, Condvar)> = Arc::default();
        let stats: Arc<SyncStats> = Arc::default();
        let st = stats.clone();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || loop {
                let batch = {
                    let (lock, cv) = &*s;
                    let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
                    while q.waiting.is_empty() && !q.closed {
                        q = cv.wait(q).unwrap_or_else(|e| e.into_inner());
                    }
                    if q.waiting.is_empty() && q.closed {
                        return;
                    }
                    std::mem::take(&mut q.waiting)
                };
                let t0 = Instant::now();
                let res = sync();
                st.syncs.fetch_add(1, Ordering::Relaxed);
                st.waiters.fetch_add(batch.len() as u64, Ordering::Relaxed);
                st.sync_micros
                    .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
                if let Err(e) = &res {
                    tracing::error!(error = %e, "group commit fsync failed");
                }
                for cb in batch {
                    cb(res.clone());
                }
            })
            .expect("spawning the group-commit thread");
        Self {
            shared,
            stats,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// Run `cb` once every write issued before this call is durable.
    pub fn sync_then(&self, cb: impl FnOnce(Result<(), String>) + Send + 'static) {
        let (lock, cv) = &*self.shared;
        let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
        if q.closed {
            drop(q);
            cb(Err("storage is shut down".into()));
            return;
        }
        q.waiting.push(Box::new(cb));
        cv.notify_one();
    }

    /// Flush what is queued and stop the thread.
    pub fn shutdown(&self) {
        {
            let (lock, cv) = &*self.shared;
            let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
            q.closed = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemEngine;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_callback_runs() {
        let gc = GroupCommit::start(Arc::new(MemEngine::new()));
        let n = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..100 {
            let n = n.clone();
            let tx = tx.clone();
            gc.sync_then(move |r| {
                assert!(r.is_ok());
                n.fetch_add(1, Ordering::SeqCst);
                tx.send(()).unwrap();
            });
        }
        for _ in 0..100 {
            rx.recv().unwrap();
        }
        assert_eq!(n.load(Ordering::SeqCst), 100);
        gc.shutdown();
    }
}
