//! The tablet's replicated state machine: applies [`WriteCmd`]s to MVCC storage.

use std::sync::{Arc, Mutex};

use common::{Hlc, HybridTime};
use consensus::StateMachineApp;
use storage::{mvcc, Cf, KvEngine, StorageError, WriteBatch};

/// One change of a write.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WriteOp {
    pub key: Vec<u8>,
    /// `None` deletes the key.
    pub value: Option<Vec<u8>>,
    /// Milliseconds to live, `0` = forever.
    pub ttl_ms: u64,
}

/// A log entry of a tablet: the proposer's stamp and the ops.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct WriteCmd {
    pub ht: u64,
    pub ops: Vec<WriteOp>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    last_ht: u64,
    rows: Vec<(Vec<u8>, Vec<u8>)>,
}

pub(crate) struct TabletApp {
    engine: Arc<dyn KvEngine>,
    prefix: [u8; 16],
    clock: Arc<Hlc>,
    /// Hybrid time of the last applied write; persisted with the applied state.
    last_ht: Mutex<HybridTime>,
}

pub(crate) fn decode_ht(raw: &[u8]) -> Option<HybridTime> {
    Some(HybridTime(u64::from_be_bytes(raw.try_into().ok()?)))
}

impl TabletApp {
    pub(crate) fn open(
        engine: Arc<dyn KvEngine>,
        prefix: [u8; 16],
        clock: Arc<Hlc>,
    ) -> Result<Self, StorageError> {
        let last = match engine.get(Cf::RaftMeta, &Self::last_ht_key(&prefix))? {
            Some(raw) => decode_ht(&raw).ok_or(StorageError::Corrupt {
                what: "tablet last_ht",
                detail: format!("{} bytes", raw.len()),
            })?,
            None => HybridTime::MIN,
        };
        clock.update(last);
        Ok(Self {
            engine,
            prefix,
            clock,
            last_ht: Mutex::new(last),
        })
    }

    fn last_ht_key(prefix: &[u8; 16]) -> Vec<u8> {
        let mut k = prefix.to_vec();
        k.extend_from_slice(b"last_ht");
        k
    }
}

impl StateMachineApp for TabletApp {
    fn apply(&self, _index: u64, payload: &[u8], batch: &mut WriteBatch) -> Vec<u8> {
        let cmd: WriteCmd = match bincode::deserialize(payload) {
            Ok(c) => c,
            Err(e) => {
                // Deterministic on every replica: the entry is skipped everywhere.
                tracing::error!(error = %e, "undecodable tablet log entry skipped");
                return Vec::new();
            }
        };
        let mut last = self.last_ht.lock().unwrap_or_else(|e| e.into_inner());
        let ht = HybridTime(cmd.ht).max(last.next());
        *last = ht;
        self.clock.update(ht);
        for op in &cmd.ops {
            match &op.value {
                Some(v) => {
                    let expire = (op.ttl_ms > 0)
                        .then(|| ht.micros().saturating_add(op.ttl_ms.saturating_mul(1000)));
                    mvcc::put(batch, &self.prefix, &op.key, ht, v, expire);
                }
                None => mvcc::delete(batch, &self.prefix, &op.key, ht),
            }
        }
        batch.put(
            Cf::RaftMeta,
            Self::last_ht_key(&self.prefix),
            ht.0.to_be_bytes().to_vec(),
        );
        ht.0.to_be_bytes().to_vec()
    }

    fn snapshot(&self) -> Result<Vec<u8>, StorageError> {
        let last_ht = self.last_ht.lock().unwrap_or_else(|e| e.into_inner()).0;
        let rows = mvcc::export(self.engine.as_ref(), &self.prefix)?;
        bincode::serialize(&Snapshot { last_ht, rows }).map_err(|e| StorageError::Io(e.to_string()))
    }

    fn install(&self, data: &[u8], batch: &mut WriteBatch) -> Result<(), StorageError> {
        let snap: Snapshot = bincode::deserialize(data).map_err(|e| StorageError::Corrupt {
            what: "tablet snapshot",
            detail: e.to_string(),
        })?;
        // Delete the old rows in the same atomic batch as the new ones.
        for kv in self.engine.scan(
            Cf::Data,
            std::ops::Bound::Included(self.prefix.to_vec()),
            storage::prefix_end(&self.prefix),
            false,
        ) {
            batch.delete(Cf::Data, kv?.0);
        }
        for (k, v) in snap.rows {
            batch.put(Cf::Data, k, v);
        }
        let ht = HybridTime(snap.last_ht);
        *self.last_ht.lock().unwrap_or_else(|e| e.into_inner()) = ht;
        self.clock.update(ht);
        batch.put(
            Cf::RaftMeta,
            Self::last_ht_key(&self.prefix),
            ht.0.to_be_bytes().to_vec(),
        );
        Ok(())
    }
}
