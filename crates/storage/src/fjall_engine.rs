//! [`FjallEngine`]: the [`KvEngine`] over fjall. One fjall database per data directory
//! (a single journal shared by every keyspace, so one `fdatasync` makes every earlier write
//! of every column family durable), one keyspace per [`Cf`].
//!
//! **Syncing without stalling writers.** fjall's own `persist(SyncData)` holds the journal
//! lock for the whole `fdatasync`, so every writer waits for the disk. [`FjallEngine::sync`]
//! instead flushes fjall's buffer to the OS under the lock (`PersistMode::Buffer`, fast) and
//! then `fdatasync`s the active journal file through a handle of its own, outside the lock.
//! This is complete because fjall seals a journal only after syncing it (`SyncAll` in
//! `Writer::rotate`): whatever was flushed before a rotation is durable with the sealed file,
//! and whatever was flushed after is in the newest `<n>.jnl`, which we sync.

use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fjall::Readable;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::{Cf, CfStats, EngineStats, KvEngine, KvIter, Op, Result, StorageError, WriteBatch};

/// The fjall-backed engine.
pub struct FjallEngine {
    db: Database,
    families: [Keyspace; 5],
    dir: PathBuf,
    /// (journal number, open handle) of the journal last synced.
    journal: Mutex<Option<(u64, File)>>,
    /// Set when an fdatasync failed. The kernel may have dropped the dirty pages, so a later
    /// "successful" sync would prove nothing: every sync fails from then on.
    poisoned: std::sync::atomic::AtomicBool,
}

fn io(e: fjall::Error) -> StorageError {
    StorageError::Io(e.to_string())
}

impl FjallEngine {
    /// Open (creating if needed) the store under `path`. Fails, without modifying anything,
    /// if the directory holds something fjall cannot recover.
    pub fn open(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| StorageError::DataDir {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        // Never initialize a store over files we do not recognise: a missing `version` file in
        // a non-empty directory means damage or a wrong path, not a new store.
        let has_files = std::fs::read_dir(path)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if has_files && !path.join("version").exists() {
            return Err(StorageError::DataDir {
                path: path.display().to_string(),
                detail: "the directory holds files but no store `version` file; refusing to create a store over them".into(),
            });
        }
        let db = Database::builder(path)
            .manual_journal_persist(true)
            .open()
            .map_err(|e| StorageError::DataDir {
                path: path.display().to_string(),
                detail: format!("cannot open the store: {e}"),
            })?;
        let open = |cf: Cf| {
            db.keyspace(cf.name(), KeyspaceCreateOptions::default)
                .map_err(io)
        };
        let families = [
            open(Cf::Data)?,
            open(Cf::RaftLog)?,
            open(Cf::RaftMeta)?,
            open(Cf::Meta)?,
            open(Cf::Intents)?,
        ];
        Ok(Self {
            db,
            families,
            dir: path.to_path_buf(),
            journal: Mutex::new(None),
            poisoned: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The number of the newest journal file (`<n>.jnl`) in the store directory.
    fn newest_journal(&self) -> Result<u64> {
        let mut newest = None;
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| StorageError::Io(format!("listing {}: {e}", self.dir.display())))?;
        for e in entries.flatten() {
            let name = e.file_name();
            if let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".jnl"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                newest = newest.max(Some(n));
            }
        }
        newest.ok_or_else(|| StorageError::Io(format!("no journal in {}", self.dir.display())))
    }

    /// fdatasync the active journal outside fjall's journal lock.
    fn sync_journal(&self) -> Result<()> {
        let mut slot = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        // Still the newest journal? A rotation creates <n+1>.jnl; journals are deleted oldest
        // first, so if <n> is gone, newer ones exist too.
        let current = slot.as_ref().map(|(n, _)| *n);
        let stale = match current {
            Some(n) => {
                self.dir.join(format!("{}.jnl", n + 1)).exists()
                    || !self.dir.join(format!("{n}.jnl")).exists()
            }
            None => true,
        };
        if stale {
            let n = self.newest_journal()?;
            let path = self.dir.join(format!("{n}.jnl"));
            let f = File::open(&path)
                .map_err(|e| StorageError::Io(format!("opening {}: {e}", path.display())))?;
            *slot = Some((n, f));
        }
        match slot.as_ref() {
            Some((_, f)) => f.sync_data().map_err(|e| {
                self.poisoned.store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::error!(error = %e, "fdatasync of the journal failed; the store refuses further syncs");
                StorageError::Io(format!("fdatasync of the journal: {e}"))
            }),
            None => Ok(()),
        }
    }

    fn ks(&self, cf: Cf) -> &Keyspace {
        match cf {
            Cf::Data => &self.families[0],
            Cf::RaftLog => &self.families[1],
            Cf::RaftMeta => &self.families[2],
            Cf::Meta => &self.families[3],
            Cf::Intents => &self.families[4],
        }
    }
}

impl KvEngine for FjallEngine {
    // Reads go through a snapshot: fjall's plain `Keyspace::get`/`range` read at the newest
    // sequence number, which shows a batch that is still being inserted item by item (half
    // of an applied Raft entry). A snapshot reads at the newest *published* batch.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let snap = self.db.snapshot();
        Ok(snap.get(self.ks(cf), key).map_err(io)?.map(|v| v.to_vec()))
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut b = self.db.batch();
        for op in batch.ops {
            match op {
                Op::Put(cf, k, v) => b.insert(self.ks(cf), k, v),
                Op::Delete(cf, k) => b.remove(self.ks(cf), k),
            }
        }
        b.commit().map_err(io)
    }

    fn scan(
        &self,
        cf: Cf,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
    ) -> KvIter<'_> {
        let it = self
            .db
            .snapshot()
            .range::<Vec<u8>, _>(self.ks(cf), (start, end));
        let map = |g: fjall::Guard| {
            g.into_inner()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(io)
        };
        if reverse {
            Box::new(it.rev().map(map))
        } else {
            Box::new(it.map(map))
        }
    }

    fn sync(&self) -> Result<()> {
        if self.poisoned.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StorageError::Io(
                "an earlier fdatasync failed; restart the server to recover from the journal"
                    .into(),
            ));
        }
        self.db.persist(PersistMode::Buffer).map_err(io)?;
        self.sync_journal()
    }

    fn disk_space(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }

    fn stats(&self) -> EngineStats {
        let column_families = Cf::ALL
            .iter()
            .map(|&cf| {
                let ks = self.ks(cf);
                // fjall's thresholds (keyspace `local_backpressure`): a stall from 20 level-0
                // tables on, a halt with 4 sealed memtables.
                let l0 = ks.l0_table_count() as u64;
                let sealed = ks.sealed_memtable_count() as u64;
                CfStats {
                    name: cf.name(),
                    disk_bytes: ks.disk_space(),
                    tables: ks.table_count() as u64,
                    l0_tables: l0,
                    sealed_memtables: sealed,
                    write_stalled: l0 >= 20 || sealed >= 4,
                }
            })
            .collect();
        EngineStats {
            disk_bytes: self.disk_space(),
            journal_bytes: self.db.journal_disk_space().unwrap_or(0),
            journals: self.db.journal_count() as u64,
            write_buffer_bytes: self.db.write_buffer_size(),
            compactions_completed: self.db.compactions_completed() as u64,
            compactions_running: self.db.active_compactions() as u64,
            compaction_seconds: self.db.time_compacting().as_secs_f64(),
            column_families,
        }
    }
}
