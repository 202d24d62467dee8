//! [`LogStore`]: the Raft log of one group, in the server's shared write-ahead log
//! ([`storage::Wal`]: append-only segments outside the LSM, `docs/design/storage.md` §3).
//!
//! Entries are bincode `Entry`s; the vote is a bincode `Vote`; the purge mark is a bincode
//! `Option<LogId>`. Appends are buffered and acknowledged to openraft by the WAL's
//! group-commit thread once an `fdatasync` covering them returns: an entry is never reported
//! durable before it is.
//!
//! The state machine's store is *not* synced on the write path: after a crash, the entries
//! after its persisted applied index are applied again from this log. So before a purge
//! drops entries, the store is synced ([`storage::KvEngine::sync`]), making the applied state
//! that covers them durable.
//!
//! openraft reads entries back to apply them and to replicate them; the most recent
//! [`CACHE_ENTRIES`] of each group are kept decoded in memory so those reads rarely touch the
//! disk. The committed index is not persisted (openraft's default): after a restart the leader
//! re-establishes it, which costs one round trip instead of a write per commit.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, StorageError, Vote,
};
use storage::{KvEngine, Wal};

use crate::{storage_err, NodeId, TypeConfig};

/// Recent entries kept in memory per group.
pub const CACHE_ENTRIES: usize = 4096;

/// The log store of one Raft group.
#[derive(Clone)]
pub struct LogStore {
    wal: Arc<Wal>,
    /// The state machine's store, synced before a purge.
    engine: Arc<dyn KvEngine>,
    prefix: [u8; 16],
    /// The newest entries by index; always a contiguous suffix of the stored log.
    cache: Arc<Mutex<BTreeMap<u64, Entry<TypeConfig>>>>,
    /// Time from `append` to its entries being durable.
    append_latency: Option<common::metrics::Histogram>,
}

impl LogStore {
    pub fn new(wal: Arc<Wal>, engine: Arc<dyn KvEngine>, prefix: [u8; 16]) -> Self {
        Self {
            wal,
            engine,
            prefix,
            cache: Arc::default(),
            append_latency: None,
        }
    }

    /// Observe the time from each append to its fsync in `h`.
    pub fn with_append_latency(mut self, h: common::metrics::Histogram) -> Self {
        self.append_latency = Some(h);
        self
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry<TypeConfig>>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait until everything written so far is durable.
    async fn durable(&self) -> Result<(), StorageError<NodeId>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.wal.sync_then(move |r| {
            let _ = tx.send(r);
        });
        rx.await
            .unwrap_or_else(|_| Err("group commit stopped".into()))
            .map_err(|e| storage_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    fn decode<T: serde::de::DeserializeOwned>(
        raw: &[u8],
        subject: ErrorSubject<NodeId>,
        what: &str,
    ) -> Result<T, StorageError<NodeId>> {
        bincode::deserialize(raw).map_err(|e| {
            storage_err(
                subject,
                ErrorVerb::Read,
                format!("corrupt raft {what}: {e}"),
            )
        })
    }

    fn decode_entry(raw: &[u8]) -> Result<Entry<TypeConfig>, StorageError<NodeId>> {
        Self::decode(raw, ErrorSubject::Logs, "log entry")
    }

    pub(crate) fn last_entry_id(&self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        match self
            .wal
            .last(&self.prefix)
            .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Read, e))?
        {
            Some((_, raw)) => Ok(Some(*Self::decode_entry(&raw)?.get_log_id())),
            None => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let first = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        {
            let cache = self.cache();
            if cache.keys().next().is_some_and(|&lowest| lowest <= first) {
                return Ok(cache.range(range.clone()).map(|(_, e)| e.clone()).collect());
            }
        }
        let end = match range.end_bound() {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => *i,
            Bound::Unbounded => u64::MAX,
        };
        self.wal
            .read(&self.prefix, first, end)
            .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Read, e))?
            .iter()
            .map(|(_, raw)| Self::decode_entry(raw))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged_log_id: Option<LogId<NodeId>> = match self.wal.purged(&self.prefix) {
            Some((_, mark)) => {
                Self::decode::<Option<LogId<NodeId>>>(&mark, ErrorSubject::Logs, "purge mark")?
            }
            None => None,
        };
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let raw = bincode::serialize(vote)
            .map_err(|e| storage_err(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        self.wal
            .save_vote(&self.prefix, &raw)
            .map_err(|e| storage_err(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        self.durable().await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        match self.wal.vote(&self.prefix) {
            Some(raw) => Self::decode(&raw, ErrorSubject::Vote, "vote").map(Some),
            None => Ok(None),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let t0 = std::time::Instant::now();
        let mut raws = Vec::new();
        let mut new = Vec::new();
        for entry in entries {
            let raw = bincode::serialize(&entry)
                .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
            raws.push((entry.get_log_id().index, raw));
            new.push(entry);
        }
        self.wal
            .append(&self.prefix, raws.iter().map(|(i, r)| (*i, &r[..])))
            .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        {
            let mut cache = self.cache();
            for e in new {
                let index = e.get_log_id().index;
                // Keep the cache a contiguous suffix: an entry after a gap starts it afresh.
                if cache
                    .keys()
                    .next_back()
                    .is_some_and(|&last| last + 1 != index)
                {
                    let _ = cache.split_off(&index);
                    if cache
                        .keys()
                        .next_back()
                        .is_some_and(|&last| last + 1 != index)
                    {
                        cache.clear();
                    }
                }
                cache.insert(index, e);
            }
            while cache.len() > CACHE_ENTRIES {
                cache.pop_first();
            }
        }
        let latency = self.append_latency.clone();
        self.wal.sync_then(move |r| {
            if let Some(h) = latency {
                h.observe(t0.elapsed().as_secs_f64());
            }
            callback.log_io_completed(r.map_err(std::io::Error::other))
        });
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let _ = self.cache().split_off(&log_id.index);
        self.wal
            .truncate(&self.prefix, log_id.index)
            .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        self.durable().await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // The applied state covering these entries is in the store but maybe not on disk.
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.sync())
            .await
            .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Write, e))?
            .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        let mark = bincode::serialize(&Some(log_id))
            .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        {
            let mut cache = self.cache();
            *cache = cache.split_off(&(log_id.index + 1));
        }
        self.wal
            .purge(&self.prefix, log_id.index, &mark)
            .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Write, e))
    }
}
