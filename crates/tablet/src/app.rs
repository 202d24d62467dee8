//! The tablet's replicated state machine: applies [`WriteCmd`]s to MVCC storage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::{Hlc, HybridTime};
use consensus::StateMachineApp;
use storage::{mvcc, Cf, KvEngine, StorageError, WriteBatch};

/// A condition on the current value of a key, checked at apply time.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Condition {
    #[default]
    None,
    IfAbsent,
    IfPresent,
    IfEquals(Vec<u8>),
}

/// One change of a write.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WriteOp {
    pub key: Vec<u8>,
    /// `None` deletes the key.
    pub value: Option<Vec<u8>>,
    /// Milliseconds to live from the commit time, `0` = forever.
    pub ttl_ms: u64,
    /// Absolute expiry in µs since the epoch; overrides `ttl_ms` when non-zero.
    pub expire_at_us: u64,
    /// Apply the whole write only if every op's condition holds.
    pub condition: Condition,
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    pub ht: HybridTime,
    /// False when a condition failed and nothing was written.
    pub applied: bool,
}

/// A log entry of a tablet: the proposer's stamp and one or more independent writes, as
/// queued by concurrent callers. Each write is applied atomically on its own (its own
/// conditions, its own hybrid time: `max(stamp, previous + 1)`), in order.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct WriteCmd {
    pub ht: u64,
    pub writes: Vec<Vec<WriteOp>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    last_ht: u64,
    rows: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A value written earlier in the current apply round: (value or `None` if deleted, expiry µs).
type PendingValue = (Option<Vec<u8>>, Option<u64>);

pub(crate) struct TabletApp {
    engine: Arc<dyn KvEngine>,
    prefix: [u8; 16],
    clock: Arc<Hlc>,
    /// Hybrid time of the last applied write; persisted with the applied state.
    last_ht: Mutex<HybridTime>,
    /// Values written by entries of the current apply round that are still in the batch
    /// (not yet in the engine): `key → (value or None if deleted, expiry µs)`. Conditions of
    /// later entries in the round must see them. Cleared when the batch is written.
    pending: Mutex<HashMap<Vec<u8>, PendingValue>>,
}

pub(crate) fn decode_ht(raw: &[u8]) -> Option<HybridTime> {
    Some(HybridTime(u64::from_be_bytes(
        raw.get(..8)?.try_into().ok()?,
    )))
}

/// Decode an apply reply: per write, the commit time and whether it was applied.
pub(crate) fn decode_outcomes(raw: &[u8]) -> Vec<WriteOutcome> {
    raw.chunks_exact(9)
        .filter_map(|c| {
            Some(WriteOutcome {
                ht: decode_ht(c)?,
                applied: c[8] == 1,
            })
        })
        .collect()
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
            pending: Mutex::default(),
        })
    }

    /// The hybrid time of the last checkpoint: no replay after a crash reads below it, so GC
    /// must keep what reads at or after it need.
    pub(crate) fn checkpointed_ht(&self) -> Result<HybridTime, StorageError> {
        Ok(
            match self
                .engine
                .get(Cf::RaftMeta, &Self::last_ht_key(&self.prefix))?
            {
                Some(raw) => decode_ht(&raw).unwrap_or(HybridTime::MIN),
                None => HybridTime::MIN,
            },
        )
    }

    fn last_ht_key(prefix: &[u8; 16]) -> Vec<u8> {
        let mut k = prefix.to_vec();
        k.extend_from_slice(b"last_ht");
        k
    }

    /// Apply one write at `ht`: all its conditions hold and every op is written, or nothing.
    fn apply_one(
        &self,
        ht: HybridTime,
        ops: &[WriteOp],
        batch: &mut WriteBatch,
        pending: &mut HashMap<Vec<u8>, PendingValue>,
    ) -> Result<bool, StorageError> {
        for op in ops {
            if op.condition == Condition::None {
                continue;
            }
            // As of just before this write: on a replay after a crash, versions this write
            // (or later ones) already stored must not change the verdict.
            let just_before = HybridTime(ht.0 - 1);
            let current = match pending.get(&op.key) {
                // Same visibility rule as the engine read below (`visible_at(just_before)`).
                Some((v, exp)) => v
                    .clone()
                    .filter(|_| exp.is_none_or(|e| e > just_before.micros())),
                None => mvcc::get(self.engine.as_ref(), &self.prefix, &op.key, just_before)?,
            };
            let holds = match &op.condition {
                Condition::None => true,
                Condition::IfAbsent => current.is_none(),
                Condition::IfPresent => current.is_some(),
                Condition::IfEquals(expected) => current.as_deref() == Some(&expected[..]),
            };
            if !holds {
                return Ok(false);
            }
        }
        for op in ops {
            match &op.value {
                Some(v) => {
                    let expire = if op.expire_at_us > 0 {
                        Some(op.expire_at_us)
                    } else {
                        (op.ttl_ms > 0)
                            .then(|| ht.micros().saturating_add(op.ttl_ms.saturating_mul(1000)))
                    };
                    mvcc::put(batch, &self.prefix, &op.key, ht, v, expire);
                    pending.insert(op.key.clone(), (Some(v.clone()), expire));
                }
                None => {
                    mvcc::delete(batch, &self.prefix, &op.key, ht);
                    pending.insert(op.key.clone(), (None, None));
                }
            }
        }
        Ok(true)
    }
}

impl StateMachineApp for TabletApp {
    fn apply(
        &self,
        _index: u64,
        payload: &[u8],
        batch: &mut WriteBatch,
    ) -> Result<Vec<u8>, StorageError> {
        let cmd: WriteCmd = match bincode::deserialize(payload) {
            Ok(c) => c,
            Err(e) => {
                // Deterministic on every replica: the entry is skipped everywhere.
                tracing::error!(error = %e, "undecodable tablet log entry skipped");
                return Ok(Vec::new());
            }
        };
        let mut last = self.last_ht.lock().unwrap_or_else(|e| e.into_inner());
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut reply = Vec::with_capacity(9 * cmd.writes.len());
        for ops in &cmd.writes {
            let ht = HybridTime(cmd.ht).max(last.next());
            *last = ht;
            self.clock.update(ht);
            reply.extend_from_slice(&ht.0.to_be_bytes());
            reply.push(self.apply_one(ht, ops, batch, &mut pending)? as u8);
        }
        Ok(reply)
    }

    fn checkpoint(&self, batch: &mut WriteBatch) {
        let ht = *self.last_ht.lock().unwrap_or_else(|e| e.into_inner());
        batch.put(
            Cf::RaftMeta,
            Self::last_ht_key(&self.prefix),
            ht.0.to_be_bytes().to_vec(),
        );
    }

    fn applied(&self) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn snapshot(&self) -> Result<Vec<u8>, StorageError> {
        // The checkpointed time, which matches the checkpointed applied index the snapshot
        // claims; rows written after it are re-applied identically by the receiver.
        let last_ht = match self
            .engine
            .get(Cf::RaftMeta, &Self::last_ht_key(&self.prefix))?
        {
            Some(raw) => decode_ht(&raw).map(|h| h.0).unwrap_or(0),
            None => 0,
        };
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
