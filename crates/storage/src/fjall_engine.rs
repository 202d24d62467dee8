//! [`FjallEngine`]: the [`KvEngine`] over fjall. One fjall database per data directory
//! (a single journal shared by every keyspace, so one `fdatasync` makes every earlier write
//! of every column family durable), one keyspace per [`Cf`].

use std::ops::Bound;
use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::{Cf, KvEngine, KvIter, Op, Result, StorageError, WriteBatch};

/// The fjall-backed engine.
pub struct FjallEngine {
    db: Database,
    families: [Keyspace; 4],
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
        ];
        Ok(Self { db, families })
    }

    fn ks(&self, cf: Cf) -> &Keyspace {
        match cf {
            Cf::Data => &self.families[0],
            Cf::RaftLog => &self.families[1],
            Cf::RaftMeta => &self.families[2],
            Cf::Meta => &self.families[3],
        }
    }
}

impl KvEngine for FjallEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.ks(cf).get(key).map_err(io)?.map(|v| v.to_vec()))
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
        let it = self.ks(cf).range::<Vec<u8>, _>((start, end));
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
        self.db.persist(PersistMode::SyncData).map_err(io)
    }

    fn disk_space(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }
}
