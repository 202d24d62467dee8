//! [`LogStore`]: the Raft log of one group inside the server's shared storage engine.
//!
//! Layout (see `docs/design/storage.md`):
//! * `Cf::RaftLog`:  `group prefix (16) ‖ index (u64 BE)` → bincode `Entry`
//! * `Cf::RaftMeta`: `group prefix ‖ "vote"` → bincode `Vote`,
//!   `‖ "purged"` → bincode `Option<LogId>`
//!
//! Appends are written without syncing and acknowledged to openraft by the group-commit
//! thread once an `fdatasync` covering them returns: an entry is never reported durable
//! before it is.
//!
//! openraft reads entries back to apply them and to replicate them; the most recent
//! [`CACHE_ENTRIES`] of each group are kept in memory so those reads rarely touch the LSM.
//! The committed index is not persisted (openraft's default): after a restart the leader
//! re-establishes it, which costs one round trip instead of a write per commit.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, StorageError, Vote,
};
use storage::{Cf, GroupCommit, KvEngine, WriteBatch};

use crate::{storage_err, NodeId, TypeConfig};

/// Recent entries kept in memory per group.
pub const CACHE_ENTRIES: usize = 4096;

/// The log store of one Raft group.
#[derive(Clone)]
pub struct LogStore {
    engine: Arc<dyn KvEngine>,
    group_commit: Arc<GroupCommit>,
    prefix: [u8; 16],
    /// The newest entries by index; always a contiguous suffix of the stored log.
    cache: Arc<Mutex<BTreeMap<u64, Entry<TypeConfig>>>>,
    /// Time from `append` to its entries being durable.
    append_latency: Option<common::metrics::Histogram>,
}

impl LogStore {
    pub fn new(
        engine: Arc<dyn KvEngine>,
        group_commit: Arc<GroupCommit>,
        prefix: [u8; 16],
    ) -> Self {
        Self {
            engine,
            group_commit,
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

    fn entry_key(&self, index: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(24);
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(&index.to_be_bytes());
        k
    }

    fn meta_key(&self, name: &str) -> Vec<u8> {
        let mut k = self.prefix.to_vec();
        k.extend_from_slice(name.as_bytes());
        k
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StorageError<NodeId>> {
        let subject = || ErrorSubject::Store;
        match self
            .engine
            .get(Cf::RaftMeta, &self.meta_key(name))
            .map_err(|e| storage_err(subject(), ErrorVerb::Read, e))?
        {
            Some(raw) => bincode::deserialize(&raw).map(Some).map_err(|e| {
                storage_err(
                    subject(),
                    ErrorVerb::Read,
                    format!("corrupt raft {name}: {e}"),
                )
            }),
            None => Ok(None),
        }
    }

    fn put_meta<T: serde::Serialize>(
        &self,
        batch: &mut WriteBatch,
        name: &str,
        v: &T,
    ) -> Result<(), StorageError<NodeId>> {
        let raw = bincode::serialize(v)
            .map_err(|e| storage_err(ErrorSubject::Store, ErrorVerb::Write, e))?;
        batch.put(Cf::RaftMeta, self.meta_key(name), raw);
        Ok(())
    }

    fn write(
        &self,
        batch: WriteBatch,
        subject: ErrorSubject<NodeId>,
    ) -> Result<(), StorageError<NodeId>> {
        self.engine
            .write(batch)
            .map_err(|e| storage_err(subject, ErrorVerb::Write, e))
    }

    /// Wait until everything written so far is durable.
    async fn durable(&self) -> Result<(), StorageError<NodeId>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.group_commit.sync_then(move |r| {
            let _ = tx.send(r);
        });
        rx.await
            .unwrap_or_else(|_| Err("group commit stopped".into()))
            .map_err(|e| storage_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    fn decode_entry(raw: &[u8]) -> Result<Entry<TypeConfig>, StorageError<NodeId>> {
        bincode::deserialize(raw).map_err(|e| {
            storage_err(
                ErrorSubject::Logs,
                ErrorVerb::Read,
                format!("corrupt log entry: {e}"),
            )
        })
    }

    pub(crate) fn last_entry_id(&self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        let start = Bound::Included(self.entry_key(0));
        let end = Bound::Included(self.entry_key(u64::MAX));
        match self.engine.scan(Cf::RaftLog, start, end, true).next() {
            Some(kv) => {
                let (_, raw) =
                    kv.map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
                Ok(Some(*Self::decode_entry(&raw)?.get_log_id()))
            }
            None => Ok(None),
        }
    }

    fn delete_range(&self, from: u64, to_inclusive: u64) -> Result<(), StorageError<NodeId>> {
        let keys: Vec<Vec<u8>> = self
            .engine
            .scan(
                Cf::RaftLog,
                Bound::Included(self.entry_key(from)),
                Bound::Included(self.entry_key(to_inclusive)),
                false,
            )
            .map(|kv| kv.map(|(k, _)| k))
            .collect::<Result<_, _>>()
            .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        for chunk in keys.chunks(10_000) {
            let mut b = WriteBatch::new();
            for k in chunk {
                b.delete(Cf::RaftLog, k.clone());
            }
            self.write(b, ErrorSubject::Logs)?;
        }
        Ok(())
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
        let start = match range.start_bound() {
            Bound::Included(i) => Bound::Included(self.entry_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(self.entry_key(*i)),
            Bound::Unbounded => Bound::Included(self.entry_key(0)),
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(self.entry_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(self.entry_key(*i)),
            Bound::Unbounded => Bound::Included(self.entry_key(u64::MAX)),
        };
        let mut out = Vec::new();
        for kv in self.engine.scan(Cf::RaftLog, start, end, false) {
            let (_, raw) = kv.map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            out.push(Self::decode_entry(&raw)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged_log_id: Option<LogId<NodeId>> =
            self.read_meta::<Option<LogId<NodeId>>>("purged")?.flatten();
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
        let mut b = WriteBatch::new();
        self.put_meta(&mut b, "vote", vote)?;
        self.write(b, ErrorSubject::Vote)?;
        self.durable().await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.read_meta("vote")
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
        let mut b = WriteBatch::new();
        let mut new = Vec::new();
        for entry in entries {
            let raw = bincode::serialize(&entry)
                .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
            b.put(Cf::RaftLog, self.entry_key(entry.get_log_id().index), raw);
            new.push(entry);
        }
        self.write(b, ErrorSubject::Logs)?;
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
        self.group_commit.sync_then(move |r| {
            if let Some(h) = latency {
                h.observe(t0.elapsed().as_secs_f64());
            }
            callback.log_io_completed(r.map_err(std::io::Error::other))
        });
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let _ = self.cache().split_off(&log_id.index);
        self.delete_range(log_id.index, u64::MAX)?;
        self.durable().await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut b = WriteBatch::new();
        self.put_meta(&mut b, "purged", &Some(log_id))?;
        self.write(b, ErrorSubject::Logs)?;
        {
            let mut cache = self.cache();
            *cache = cache.split_off(&(log_id.index + 1));
        }
        self.delete_range(0, log_id.index)
    }
}
