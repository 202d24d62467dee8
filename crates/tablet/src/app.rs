//! The tablet's replicated state machine: applies [`WriteCmd`]s to MVCC storage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use common::{Hlc, HybridTime};
use consensus::StateMachineApp;
use storage::latest::{Latest, Newest, RowKey};
use storage::mvcc::{self, Version};
use storage::{Cf, KvEngine, StorageError, WriteBatch};
use txn::{Intent, IntentKind, IntentSet, StatusAt, TxnId};

use crate::intent_store::{self, IntentIndex, IntentStore};
use crate::retries::{self, RequestId, Retries, Seen};

/// A condition on the current value of a key, checked at apply time.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Condition {
    #[default]
    None,
    IfAbsent,
    IfPresent,
    IfEquals(Vec<u8>),
    /// Prewrite of a distributed transaction: store the op as a provisional record of
    /// `txn` instead of a version (`read`: a serializable read intent; the value is
    /// ignored). Fails with [`Conflict::Locked`] if another transaction holds a conflicting
    /// intent on the key, with [`Conflict::Newer`] if the key has a version newer than
    /// `since_ht`.
    Intent {
        txn: TxnId,
        since_ht: u64,
        read: bool,
    },
    /// Resolve `txn`'s intents on the key: its write intent becomes a version at
    /// `commit_ht`; with `None` (aborted) they are dropped. No-op if there are none.
    Resolve {
        txn: TxnId,
        commit_ht: Option<u64>,
    },
    /// A single-tablet transaction's check: the key has no version newer than `since_ht`
    /// (else [`Conflict::Newer`]). With `check_only`, the op itself is not written.
    Unchanged {
        since_ht: u64,
        check_only: bool,
    },
    /// A serializable transaction's check of a range it scanned, `[op.key, end)` (`end`
    /// empty: to the tablet's end): no key there has a version newer than `since_ht` (else
    /// [`Conflict::Newer`]) or a write intent of another transaction (else
    /// [`Conflict::Locked`]). Writes nothing. Once it holds, the tablet's time is raised to
    /// `raise_to` (the transaction's commit time, 0: none), so nothing lands in the range at
    /// or below that time after the check: no phantom can appear before the commit.
    RangeUnchanged {
        txn: TxnId,
        since_ht: u64,
        end: Vec<u8>,
        raise_to: u64,
    },
    /// As `Intent`, for a transaction whose status record is in a participant tablet
    /// (`status_at`), which the intent names for whoever meets it.
    IntentAt {
        txn: TxnId,
        since_ht: u64,
        read: bool,
        status_at: StatusAt,
    },
    /// Compare-and-set the status record of `txn` kept in this tablet (the op's key is
    /// ignored) from `expected` (`None`: absent) to the op's value, a `TxnStatus` (else the
    /// write fails). With `commit_min` > 0 it is the commit of a transaction anchored here:
    /// the record becomes `Committed { commit_ht }` and the write's other ops are written
    /// at `commit_ht = max(the write's time, commit_min)`.
    TxnStatus {
        txn: TxnId,
        expected: Option<Vec<u8>>,
        commit_min: u64,
    },
    /// Remove the status record of `txn` kept in this tablet (its intents are resolved).
    ForgetStatus {
        txn: TxnId,
    },
}

impl Condition {
    /// The parts of a prewrite (`Intent` or `IntentAt`).
    pub(crate) fn intent(&self) -> Option<(&TxnId, u64, bool, Option<&StatusAt>)> {
        match self {
            Condition::Intent {
                txn,
                since_ht,
                read,
            } => Some((txn, *since_ht, *read, None)),
            Condition::IntentAt {
                txn,
                since_ht,
                read,
                status_at,
            } => Some((txn, *since_ht, *read, Some(status_at))),
            _ => None,
        }
    }
}

/// Why a write was refused by the transaction rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// Another transaction's intent is on `key`: resolve it, then retry.
    Locked {
        txn: TxnId,
        key: Vec<u8>,
        written_at_us: u64,
        /// Where the transaction's status record is (`None`: `system_txn.status`).
        status_at: Option<StatusAt>,
    },
    /// `key` changed after the snapshot the writer read it at.
    Newer { key: Vec<u8> },
}

/// One change of a write. Key and value are encoded as bytes ([`common::serde_bytes`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WriteOp {
    #[serde(with = "common::serde_bytes")]
    pub key: Vec<u8>,
    /// `None` deletes the key.
    #[serde(with = "common::serde_bytes::option")]
    pub value: Option<Vec<u8>>,
    /// Milliseconds to live from the commit time, `0` = forever.
    pub ttl_ms: u64,
    /// Absolute expiry in µs since the epoch; overrides `ttl_ms` when non-zero.
    pub expire_at_us: u64,
    /// Apply the whole write only if every op's condition holds.
    pub condition: Condition,
}

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    pub ht: HybridTime,
    /// False when a condition failed (or a conflict stopped it) and nothing was written.
    pub applied: bool,
    /// Set when the transaction rules refused the write.
    pub conflict: Option<Conflict>,
    /// A resend answered by the retry filter: applied earlier, and `ht` is not its time.
    pub resent: bool,
}

/// The verdict of one write.
#[derive(Debug)]
enum Verdict {
    Applied,
    /// Applied earlier (a resend answered by the retry filter).
    AppliedEarlier,
    Failed,
    Conflict(Conflict),
}

/// A log entry of a tablet: the proposer's stamp and one or more independent writes, as
/// queued by concurrent callers. Each write is applied atomically on its own (its own
/// conditions, its own hybrid time: `max(stamp, previous + 1)`), in order.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct WriteCmd {
    pub ht: u64,
    pub writes: Vec<Vec<WriteOp>>,
    /// Per write, its name for the retry filter (unset: not filtered); empty: none is.
    pub ids: Vec<RequestId>,
}

/// A log entry written before writes had request ids.
#[derive(serde::Deserialize)]
struct WriteCmdV1 {
    ht: u64,
    writes: Vec<Vec<WriteOp>>,
}

impl WriteCmd {
    /// Decode a log entry of either layout.
    fn decode(payload: &[u8]) -> Result<WriteCmd, bincode::Error> {
        bincode::deserialize(payload).or_else(|e| {
            match bincode::deserialize::<WriteCmdV1>(payload) {
                Ok(v1) => Ok(WriteCmd {
                    ht: v1.ht,
                    writes: v1.writes,
                    ids: Vec::new(),
                }),
                Err(_) => Err(e),
            }
        })
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    last_ht: u64,
    rows: Vec<(Vec<u8>, Vec<u8>)>,
    /// Raw `Cf::Intents` pairs of the tablet (its intents and status records, saved or not).
    intents: Vec<(Vec<u8>, Vec<u8>)>,
    /// The retry filter's checkpointed pairs.
    retries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A value written earlier in the current apply round: (value or `None` if deleted, expiry
/// µs, version time).
type PendingValue = (Option<Vec<u8>>, Option<u64>, HybridTime);

/// The round's value overlay is hashed often (an insert and lookups per written key):
/// foldhash, not SipHash.
type Pending = HashMap<RowKey, PendingValue, foldhash::fast::RandomState>;

pub(crate) struct TabletApp {
    engine: Arc<dyn KvEngine>,
    prefix: [u8; 16],
    clock: Arc<Hlc>,
    /// Hybrid time of the last applied write; persisted with the applied state.
    last_ht: Mutex<HybridTime>,
    /// Values written by entries of the current apply round that are still in the batch
    /// (not yet in the engine): `key → (value or None if deleted, expiry µs)`. Conditions of
    /// later entries in the round must see them. Cleared when the batch is written.
    pending: Mutex<Pending>,
    /// Intent sets written by the current apply round (empty = removed), like `pending`.
    pending_intents: Mutex<HashMap<Vec<u8>, IntentSet>>,
    /// Status records written by the current apply round (`None` = removed), like `pending`.
    pending_status: Mutex<HashMap<TxnId, Option<Vec<u8>>>>,
    /// The keys of this tablet that have intents: reads and writes of other keys never look
    /// further.
    pub(crate) intent_index: IntentIndex,
    /// The tablet's intents and status records as of the last apply round (the truth; the
    /// engine has them only as checkpointed, `intent_store`).
    store: RwLock<IntentStore>,
    /// Newest versions of recently written keys, for point reads; updated from `pending`
    /// once a round's batch is in the engine.
    pub(crate) latest: Latest,
    /// Which writes of each client were applied recently (resends are answered, not applied).
    retries: Mutex<Retries>,
}

pub(crate) fn decode_ht(raw: &[u8]) -> Option<HybridTime> {
    Some(HybridTime(u64::from_be_bytes(
        raw.get(..8)?.try_into().ok()?,
    )))
}

/// Decode an apply reply: per write, the commit time, a verdict byte (1 applied, 0 a
/// condition failed, 2 locked, 3 newer, 4 applied earlier) and, for conflicts, who and which key.
pub(crate) fn decode_outcomes(raw: &[u8]) -> Option<Vec<WriteOutcome>> {
    let mut out = Vec::new();
    let mut rest = raw;
    let take = |rest: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        let (a, b) = (rest.get(..n)?, rest.get(n..)?);
        *rest = b;
        Some(a.to_vec())
    };
    while !rest.is_empty() {
        let ht = decode_ht(&take(&mut rest, 8)?)?;
        let code = take(&mut rest, 1)?[0];
        let conflict = match code {
            2 | 3 => {
                let u32_of = |rest: &mut &[u8]| -> Option<u32> {
                    Some(u32::from_be_bytes(take(rest, 4)?.try_into().ok()?))
                };
                let txn = if code == 2 {
                    let id = <TxnId>::try_from(&take(&mut rest, 16)?[..]).ok()?;
                    let at = u64::from_be_bytes(take(&mut rest, 8)?.try_into().ok()?);
                    let len = u32_of(&mut rest)? as usize;
                    let status_at = if len > 0 {
                        let table_id = String::from_utf8(take(&mut rest, len)?).ok()?;
                        let tablet = u32_of(&mut rest)?;
                        Some(StatusAt { table_id, tablet })
                    } else {
                        None
                    };
                    Some((id, at, status_at))
                } else {
                    None
                };
                let len = u32_of(&mut rest)? as usize;
                let key = take(&mut rest, len)?;
                Some(match txn {
                    Some((txn, written_at_us, status_at)) => Conflict::Locked {
                        txn,
                        key,
                        written_at_us,
                        status_at,
                    },
                    None => Conflict::Newer { key },
                })
            }
            _ => None,
        };
        out.push(WriteOutcome {
            ht,
            applied: code == 1 || code == 4,
            conflict,
            resent: code == 4,
        });
    }
    Some(out)
}

/// Whether `key` lies in `range`.
fn range_holds(range: &storage::mvcc::ScanRange, key: &[u8]) -> bool {
    range.start.as_deref().is_none_or(|s| key >= s) && range.end.as_deref().is_none_or(|e| key < e)
}

fn intent_kind(read: bool) -> IntentKind {
    if read {
        IntentKind::Read
    } else {
        IntentKind::Write
    }
}

fn encode_outcome(reply: &mut Vec<u8>, ht: HybridTime, v: &Verdict) {
    reply.extend_from_slice(&ht.0.to_be_bytes());
    match v {
        Verdict::Applied => reply.push(1),
        Verdict::AppliedEarlier => reply.push(4),
        Verdict::Failed => reply.push(0),
        Verdict::Conflict(Conflict::Locked {
            txn,
            key,
            written_at_us,
            status_at,
        }) => {
            reply.push(2);
            reply.extend_from_slice(txn);
            reply.extend_from_slice(&written_at_us.to_be_bytes());
            match status_at {
                Some(at) if !at.table_id.is_empty() => {
                    reply.extend_from_slice(&(at.table_id.len() as u32).to_be_bytes());
                    reply.extend_from_slice(at.table_id.as_bytes());
                    reply.extend_from_slice(&at.tablet.to_be_bytes());
                }
                _ => reply.extend_from_slice(&0u32.to_be_bytes()),
            }
            reply.extend_from_slice(&(key.len() as u32).to_be_bytes());
            reply.extend_from_slice(key);
        }
        Verdict::Conflict(Conflict::Newer { key }) => {
            reply.push(3);
            reply.extend_from_slice(&(key.len() as u32).to_be_bytes());
            reply.extend_from_slice(key);
        }
    }
}

/// The tablet's part of each apply round's checkpoint record (stored after the applied state
/// in `prefix ‖ "applied"`, see `consensus::checkpoint_blob`):
/// `2 ‖ last_ht (u64 BE) ‖ bincode((retries::Delta, intent_store::Delta))`. Version 1 (session
/// 22) had no intents part (they were all in their keys); a store whose record has no tablet
/// part at all (before session 22) keeps `last_ht` under `prefix ‖ "last_ht"` and its retry
/// filter wholly in its keys.
struct Checkpoint {
    last_ht: HybridTime,
    retries: retries::Delta,
    intents: intent_store::Delta,
}

impl Checkpoint {
    const VERSION: u8 = 2;

    fn encode(
        last_ht: HybridTime,
        retries: &retries::Delta,
        intents: &intent_store::Delta,
    ) -> Vec<u8> {
        let bytes: usize = intents
            .iter()
            .map(|(k, v)| 24 + k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        let mut out = Vec::with_capacity(9 + 16 + retries.len() * 64 + bytes);
        out.push(Self::VERSION);
        out.extend_from_slice(&last_ht.0.to_be_bytes());
        if let Err(e) = bincode::serialize_into(&mut out, &(retries, intents)) {
            // Cannot happen (bytes and options into a vector). Refusing to go on is the only
            // safe answer: a record without the unsaved intents would lose them in a crash.
            panic!("encoding the tablet checkpoint: {e}");
        }
        out
    }

    /// Decode a non-empty tablet part of a checkpoint record (version 1 or 2).
    fn decode(blob: &[u8]) -> Result<Checkpoint, StorageError> {
        let corrupt = |detail: String| StorageError::Corrupt {
            what: "tablet checkpoint",
            detail,
        };
        let version = blob.first().copied().unwrap_or(0);
        if !(1..=Self::VERSION).contains(&version) || blob.len() < 9 {
            return Err(corrupt(format!(
                "version {version} in {} bytes",
                blob.len()
            )));
        }
        let last_ht = decode_ht(&blob[1..9]).ok_or_else(|| corrupt("last_ht".into()))?;
        let (retries, intents) = if version == 1 {
            let retries = bincode::deserialize(&blob[9..]).map_err(|e| corrupt(e.to_string()))?;
            (retries, Vec::new())
        } else {
            bincode::deserialize(&blob[9..]).map_err(|e| corrupt(e.to_string()))?
        };
        Ok(Checkpoint {
            last_ht,
            retries,
            intents,
        })
    }

    /// The checkpointed part of tablet `prefix`.
    fn read(engine: &dyn KvEngine, prefix: &[u8; 16]) -> Result<Checkpoint, StorageError> {
        match consensus::checkpoint_blob(engine, prefix)? {
            Some(blob) if !blob.is_empty() => Self::decode(&blob),
            // No record yet, or one from before the tablet's part moved into it.
            _ => {
                let mut key = prefix.to_vec();
                key.extend_from_slice(b"last_ht");
                let last_ht = match engine.get(Cf::RaftMeta, &key)? {
                    Some(raw) => decode_ht(&raw).ok_or(StorageError::Corrupt {
                        what: "tablet last_ht",
                        detail: format!("{} bytes", raw.len()),
                    })?,
                    None => HybridTime::MIN,
                };
                Ok(Checkpoint {
                    last_ht,
                    retries: Vec::new(),
                    intents: Vec::new(),
                })
            }
        }
    }
}

impl TabletApp {
    pub(crate) fn open(
        engine: Arc<dyn KvEngine>,
        prefix: [u8; 16],
        clock: Arc<Hlc>,
    ) -> Result<Self, StorageError> {
        let ck = Checkpoint::read(engine.as_ref(), &prefix)?;
        let last = ck.last_ht;
        clock.update(last);
        let store = IntentStore::load(engine.as_ref(), &prefix, ck.intents)?;
        let intent_index = IntentIndex::default();
        for key in store.keys() {
            intent_index.add(key);
        }
        let retries = Mutex::new(Retries::load(engine.as_ref(), &prefix, &ck.retries)?);
        Ok(Self {
            engine,
            prefix,
            clock,
            retries,
            last_ht: Mutex::new(last),
            pending: Mutex::default(),
            pending_intents: Mutex::default(),
            pending_status: Mutex::default(),
            intent_index,
            store: RwLock::new(store),
            latest: Latest::new(),
        })
    }

    /// The hybrid time of the last checkpoint: no replay after a crash reads below it, so GC
    /// must keep what reads at or after it need.
    pub(crate) fn checkpointed_ht(&self) -> Result<HybridTime, StorageError> {
        Ok(Checkpoint::read(self.engine.as_ref(), &self.prefix)?.last_ht)
    }

    /// The intents on `key` as this apply round sees them.
    fn intents_of(
        &self,
        key: &[u8],
        pending_intents: &HashMap<Vec<u8>, IntentSet>,
    ) -> Result<IntentSet, StorageError> {
        if let Some(s) = pending_intents.get(key) {
            return Ok(s.clone());
        }
        Ok(self.intents_on(key).unwrap_or_default())
    }

    /// The intents on `key` as of the last apply round (what readers see).
    pub(crate) fn intents_on(&self, key: &[u8]) -> Option<IntentSet> {
        self.store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .set(key)
            .cloned()
    }

    /// The status record (encoded `TxnStatus`) of `txn` kept in this tablet, as of the last
    /// apply round.
    pub(crate) fn status_of(&self, txn: &TxnId) -> Option<Vec<u8>> {
        self.store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .status(txn)
            .cloned()
    }

    /// Set the intents on `key` (none: remove them) in the round's overlay (the round's
    /// checkpoint takes them to the store). A key that gets intents enters the index now; one
    /// left without leaves it in `applied`.
    fn set_intents(
        &self,
        key: &[u8],
        set: IntentSet,
        pending_intents: &mut HashMap<Vec<u8>, IntentSet>,
    ) {
        if !set.is_empty() {
            self.intent_index.add(key);
        }
        pending_intents.insert(key.to_vec(), set);
    }

    /// A key in `range` holding a write intent of a transaction other than `txn`, as this
    /// apply round sees it.
    fn foreign_intent_in(
        &self,
        range: &storage::mvcc::ScanRange,
        txn: &TxnId,
        pending_intents: &HashMap<Vec<u8>, IntentSet>,
    ) -> Result<Option<(Vec<u8>, Intent)>, StorageError> {
        // The index holds every key this round gave intents too.
        for key in self.intent_index.keys_in(range) {
            let set = self.intents_of(&key, pending_intents)?;
            if let Some(i) = set
                .into_iter()
                .find(|i| i.txn != *txn && i.kind == IntentKind::Write)
            {
                return Ok(Some((key, i)));
            }
        }
        Ok(None)
    }

    /// A key in `range` with a version newer than `since`, as this apply round sees it.
    fn changed_in(
        &self,
        range: &storage::mvcc::ScanRange,
        since: HybridTime,
        pending: &Pending,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some((key, _)) = pending
            .iter()
            .find(|(k, (_, _, ht))| *ht > since && range_holds(range, k))
        {
            return Ok(Some(key.to_vec()));
        }
        mvcc::changed_in_range(self.engine.as_ref(), &self.prefix, range, since)
    }

    /// Time of the newest version of `key` as this apply round sees it.
    fn newest(&self, key: &[u8], pending: &Pending) -> Result<Option<HybridTime>, StorageError> {
        if let Some((_, _, ht)) = pending.get(key) {
            return Ok(Some(*ht));
        }
        if let Some(n) = self.latest.get_in_round(key) {
            return Ok(Some(n.ht));
        }
        mvcc::newest_ht(self.engine.as_ref(), &self.prefix, key)
    }

    /// Add a version of `key` at `ht` to the batch and the round's overlay.
    #[allow(clippy::too_many_arguments)]
    fn write_version(
        &self,
        ht: HybridTime,
        key: &[u8],
        value: &Option<Vec<u8>>,
        ttl_ms: u64,
        expire_at_us: u64,
        batch: &mut WriteBatch,
        pending: &mut Pending,
    ) {
        match value {
            Some(v) => {
                let expire = if expire_at_us > 0 {
                    Some(expire_at_us)
                } else {
                    (ttl_ms > 0).then(|| ht.micros().saturating_add(ttl_ms.saturating_mul(1000)))
                };
                mvcc::put(batch, &self.prefix, key, ht, v, expire);
                pending.insert(RowKey::new(key), (Some(v.clone()), expire, ht));
            }
            None => {
                mvcc::delete(batch, &self.prefix, key, ht);
                pending.insert(RowKey::new(key), (None, None, ht));
            }
        }
    }

    /// Apply one write at `ht`: every rule and condition holds and every op is written, or
    /// nothing is. Also returns the newest commit time of intents it resolved.
    fn apply_one(
        &self,
        ht: HybridTime,
        ops: &[WriteOp],
        batch: &mut WriteBatch,
        pending: &mut Pending,
        pending_intents: &mut HashMap<Vec<u8>, IntentSet>,
        pending_status: &mut HashMap<TxnId, Option<Vec<u8>>>,
    ) -> Result<(Verdict, Option<HybridTime>), StorageError> {
        // The leader refuses such writes; a log written before it did must not stop replay
        // (the engine panics on keys it cannot hold).
        if ops.iter().any(|op| !mvcc::key_fits(&op.key)) {
            return Ok((Verdict::Failed, None));
        }
        // Transaction rules first: intents of others lock keys against every other write.
        for op in ops {
            let locked = |i: &Intent| {
                Ok((
                    Verdict::Conflict(Conflict::Locked {
                        txn: i.txn,
                        key: op.key.clone(),
                        written_at_us: i.written_at_us,
                        status_at: i.status_at.clone(),
                    }),
                    None,
                ))
            };
            let newer = || {
                Ok((
                    Verdict::Conflict(Conflict::Newer {
                        key: op.key.clone(),
                    }),
                    None,
                ))
            };
            if let Some((txn, since_ht, read, _)) = op.condition.intent() {
                let kind = intent_kind(read);
                let set = self.intents_of(&op.key, pending_intents)?;
                if let Some(other) = set
                    .iter()
                    .find(|i| i.txn != *txn && txn::conflicts(kind, i))
                {
                    return locked(other);
                }
                if self
                    .newest(&op.key, pending)?
                    .is_some_and(|t| t.0 > since_ht)
                {
                    return newer();
                }
                continue;
            }
            match &op.condition {
                Condition::Resolve { .. }
                | Condition::TxnStatus { .. }
                | Condition::ForgetStatus { .. } => {}
                Condition::RangeUnchanged {
                    txn, since_ht, end, ..
                } => {
                    let range = storage::mvcc::ScanRange {
                        start: Some(op.key.clone()),
                        end: (!end.is_empty()).then(|| end.clone()),
                    };
                    if let Some((key, i)) = self.foreign_intent_in(&range, txn, pending_intents)? {
                        return Ok((
                            Verdict::Conflict(Conflict::Locked {
                                txn: i.txn,
                                key,
                                written_at_us: i.written_at_us,
                                status_at: i.status_at,
                            }),
                            None,
                        ));
                    }
                    if let Some(key) = self.changed_in(&range, HybridTime(*since_ht), pending)? {
                        return Ok((Verdict::Conflict(Conflict::Newer { key }), None));
                    }
                }
                other => {
                    if let Some(i) = self.intents_of(&op.key, pending_intents)?.first() {
                        return locked(i);
                    }
                    if let Condition::Unchanged { since_ht, .. } = other {
                        if self
                            .newest(&op.key, pending)?
                            .is_some_and(|t| t.0 > *since_ht)
                        {
                            return newer();
                        }
                    }
                }
            }
        }
        // The time the write's versions get: its own, or a transaction's commit time.
        let mut at = ht;
        for op in ops {
            if let Condition::TxnStatus {
                txn,
                expected,
                commit_min,
            } = &op.condition
            {
                let current = match pending_status.get(txn) {
                    Some(v) => v.clone(),
                    None => self.status_of(txn),
                };
                if current != *expected {
                    return Ok((Verdict::Failed, None));
                }
                at = at.max(HybridTime(*commit_min));
                continue;
            }
            if !matches!(
                op.condition,
                Condition::IfAbsent | Condition::IfPresent | Condition::IfEquals(_)
            ) {
                continue;
            }
            // As of just before this write's own time.
            let just_before = HybridTime(ht.0 - 1);
            let current = match pending.get(op.key.as_slice()) {
                // Same visibility rule as the engine read below (`visible_at(just_before)`).
                Some((v, exp, _)) => v
                    .clone()
                    .filter(|_| exp.is_none_or(|e| e > just_before.micros())),
                None => match self
                    .latest
                    .get_in_round(&op.key)
                    .and_then(|n| n.value_at(just_before))
                {
                    Some(v) => v,
                    None => mvcc::get(self.engine.as_ref(), &self.prefix, &op.key, just_before)?,
                },
            };
            let holds = match &op.condition {
                Condition::IfAbsent => current.is_none(),
                Condition::IfPresent => current.is_some(),
                Condition::IfEquals(expected) => current.as_deref() == Some(&expected[..]),
                _ => true,
            };
            if !holds {
                return Ok((Verdict::Failed, None));
            }
        }
        let mut committed: Option<HybridTime> = (at > ht).then_some(at);
        for op in ops {
            if let Some((txn, since_ht, read, status_at)) = op.condition.intent() {
                let kind = intent_kind(read);
                let mut set = self.intents_of(&op.key, pending_intents)?;
                set.retain(|i| !(i.txn == *txn && i.kind == kind));
                set.push(Intent {
                    txn: *txn,
                    kind,
                    since_ht,
                    written_at_us: ht.micros(),
                    value: if read { None } else { op.value.clone() },
                    ttl_ms: op.ttl_ms,
                    expire_at_us: op.expire_at_us,
                    status_at: status_at.cloned(),
                });
                self.set_intents(&op.key, set, pending_intents);
                continue;
            }
            match &op.condition {
                Condition::TxnStatus {
                    txn, commit_min, ..
                } => {
                    let value = if *commit_min > 0 {
                        txn::TxnStatus::Committed { commit_ht: at.0 }.encode()
                    } else {
                        op.value.clone().unwrap_or_default()
                    };
                    pending_status.insert(*txn, Some(value));
                }
                Condition::ForgetStatus { txn } => {
                    pending_status.insert(*txn, None);
                }
                Condition::Resolve { txn, commit_ht } => {
                    let mut set = self.intents_of(&op.key, pending_intents)?;
                    if set.iter().all(|i| i.txn != *txn) {
                        continue; // already resolved (or never written here)
                    }
                    if let (Some(c), Some(w)) = (
                        commit_ht,
                        set.iter()
                            .find(|i| i.txn == *txn && i.kind == IntentKind::Write),
                    ) {
                        let c = HybridTime(*c);
                        self.write_version(
                            c,
                            &op.key,
                            &w.value,
                            w.ttl_ms,
                            w.expire_at_us,
                            batch,
                            pending,
                        );
                        committed = committed.max(Some(c));
                    }
                    set.retain(|i| i.txn != *txn);
                    self.set_intents(&op.key, set, pending_intents);
                }
                Condition::Unchanged {
                    check_only: true, ..
                } => {}
                Condition::RangeUnchanged { raise_to, .. } => {
                    if *raise_to > 0 {
                        committed = committed.max(Some(HybridTime(*raise_to)));
                    }
                }
                _ => self.write_version(
                    at,
                    &op.key,
                    &op.value,
                    op.ttl_ms,
                    op.expire_at_us,
                    batch,
                    pending,
                ),
            }
        }
        Ok((Verdict::Applied, committed))
    }
}

/// Hex of some bytes, for traces.
fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// A transaction id's random half (its first half is a clock reading, the same for every
/// transaction begun in the same instant), for traces.
fn short_id(txn: &TxnId) -> String {
    hex(&txn[8..12])
}

impl TabletApp {
    /// One line per applied write (`RUST_LOG=aisql::apply=debug`): tablet, log index, time,
    /// verdict and each op's key tail, value tail and condition, so replicas' logs can be
    /// diffed entry by entry.
    fn trace_write(
        &self,
        index: u64,
        ht: HybridTime,
        committed: Option<HybridTime>,
        verdict: &Verdict,
        ops: &[WriteOp],
    ) {
        let tail =
            |b: &[u8]| String::from_utf8_lossy(&b[b.len().saturating_sub(12)..]).into_owned();
        let ops: Vec<String> = ops
            .iter()
            .map(|o| {
                let c = match &o.condition {
                    Condition::Intent {
                        txn,
                        since_ht,
                        read,
                    } => format!(
                        "I{}{}s{since_ht}",
                        if *read { "r" } else { "w" },
                        short_id(txn)
                    ),
                    Condition::Resolve { txn, commit_ht } => {
                        format!("R{}c{commit_ht:?}", short_id(txn))
                    }
                    Condition::Unchanged {
                        since_ht,
                        check_only,
                    } => format!("U{}s{since_ht}", if *check_only { "c" } else { "" }),
                    other => format!("{other:?}"),
                };
                format!(
                    "{}={}:{c}",
                    tail(&o.key),
                    o.value.as_deref().map(tail).unwrap_or_default()
                )
            })
            .collect();
        tracing::debug!(target: "aisql::apply", "W t={} i={index} ht={} c={:?} {verdict:?} {}", hex(&self.prefix), ht.0, committed.map(|c| c.0), ops.join(" "));
    }
}

impl StateMachineApp for TabletApp {
    fn apply(
        &self,
        index: u64,
        payload: &[u8],
        batch: &mut WriteBatch,
    ) -> Result<Vec<u8>, StorageError> {
        let cmd = match WriteCmd::decode(payload) {
            Ok(c) => c,
            Err(e) => {
                // Deterministic on every replica: the entry is skipped everywhere.
                tracing::error!(error = %e, "undecodable tablet log entry skipped");
                return Ok(Vec::new());
            }
        };
        let mut last = self.last_ht.lock().unwrap_or_else(|e| e.into_inner());
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut pending_intents = self
            .pending_intents
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut pending_status = self
            .pending_status
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut retries = self.retries.lock().unwrap_or_else(|e| e.into_inner());
        let mut reply = Vec::with_capacity(9 * cmd.writes.len());
        for (n, ops) in cmd.writes.iter().enumerate() {
            let id = cmd.ids.get(n).filter(|id| id.is_set());
            let ht = HybridTime(cmd.ht).max(last.next());
            // Once a minute of the log's time, forget idle clients (a function of the log, so
            // every replica does it at the same write).
            if ht.micros() / 60_000_000 != last.micros() / 60_000_000 {
                retries.sweep(ht.micros());
            }
            if let Some(id) = id {
                match retries.check(id, ht.micros()) {
                    Seen::New => {}
                    // A resend of an applied write: its answer, at a time at or above its own.
                    Seen::Applied => {
                        tracing::debug!(target: "aisql::apply", "W t={} i={index} resend of {}:{} answered", hex(&self.prefix), hex(&id.client[..4]), id.seq);
                        encode_outcome(&mut reply, *last, &Verdict::AppliedEarlier);
                        continue;
                    }
                    Seen::Stale => {
                        tracing::debug!(target: "aisql::apply", "W t={} i={index} stale resend of {}:{} dropped", hex(&self.prefix), hex(&id.client[..4]), id.seq);
                        encode_outcome(&mut reply, *last, &Verdict::Failed);
                        continue;
                    }
                }
            }
            *last = ht;
            self.clock.update(ht);
            let (verdict, committed) = self.apply_one(
                ht,
                ops,
                batch,
                &mut pending,
                &mut pending_intents,
                &mut pending_status,
            )?;
            if let (Some(id), Verdict::Applied) = (id, &verdict) {
                retries.record(id);
            }
            // Versions written at a transaction's commit time: later writes go above them.
            if let Some(c) = committed {
                *last = (*last).max(c);
                self.clock.update(c);
            }
            if tracing::enabled!(target: "aisql::apply", tracing::Level::DEBUG) {
                self.trace_write(index, ht, committed, &verdict, ops);
            }
            encode_outcome(&mut reply, ht, &verdict);
        }
        Ok(reply)
    }

    fn checkpoint(&self, batch: &mut WriteBatch) -> Vec<u8> {
        // The batch goes to the engine next: readers stop trusting the cache until `applied`.
        self.latest.begin_round();
        let ht = *self.last_ht.lock().unwrap_or_else(|e| e.into_inner());
        let retries = self
            .retries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .checkpoint(&self.prefix, batch);
        // Lock order as in `apply`: the round's overlays, then the store.
        let sets = self
            .pending_intents
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let status = self
            .pending_status
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let intents = self
            .store
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .checkpoint(&self.prefix, &sets, &status, batch);
        drop((sets, status));
        Checkpoint::encode(ht, &retries, &intents)
    }

    fn applied(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        self.latest
            .end_round(pending.drain().map(|(key, (value, expire, ht))| {
                let version = match value {
                    Some(data) => Version::Put {
                        data,
                        expire_at_micros: expire,
                    },
                    None => Version::Tombstone,
                };
                (key, Newest { ht, version })
            }));
        drop(pending);
        // The round's batch is in the engine: readers see its intents and status records, and
        // then keys it left without intents leave the index.
        let mut sets = self
            .pending_intents
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let gone: Vec<Vec<u8>> = sets
            .iter()
            .filter(|(_, set)| set.is_empty())
            .map(|(key, _)| key.clone())
            .collect();
        let mut status = self
            .pending_status
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.store
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .show(sets.drain(), status.drain());
        drop((sets, status));
        for key in gone {
            self.intent_index.remove(&key);
        }
    }

    fn snapshot(&self) -> Result<Vec<u8>, StorageError> {
        // The checkpointed time, which matches the checkpointed applied index the snapshot
        // claims; rows written after it are re-applied identically by the receiver.
        let ck = Checkpoint::read(self.engine.as_ref(), &self.prefix)?;
        let last_ht = ck.last_ht.0;
        let rows = mvcc::export(self.engine.as_ref(), &self.prefix)?;
        let intents = intent_store::export(self.engine.as_ref(), &self.prefix, &ck.intents)?;
        let retries = retries::export(self.engine.as_ref(), &self.prefix, &ck.retries)?;
        bincode::serialize(&Snapshot {
            last_ht,
            rows,
            intents,
            retries,
        })
        .map_err(|e| StorageError::Io(e.to_string()))
    }

    fn install(&self, data: &[u8], batch: &mut WriteBatch) -> Result<(), StorageError> {
        let snap: Snapshot = bincode::deserialize(data).map_err(|e| StorageError::Corrupt {
            what: "tablet snapshot",
            detail: e.to_string(),
        })?;
        self.latest.clear();
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
        // The index may keep old keys (a superset is safe) and gains the snapshot's now; the
        // store becomes the snapshot's, all in its keys (the batch is written next, or the group
        // stops).
        let mut store = self.store.write().unwrap_or_else(|e| e.into_inner());
        store.install(self.engine.as_ref(), &self.prefix, snap.intents, batch)?;
        for key in store.keys() {
            self.intent_index.add(key);
        }
        drop(store);
        self.retries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .install(self.engine.as_ref(), &self.prefix, snap.retries, batch)?;
        // The checkpoint written with this batch records it (`checkpoint`).
        let ht = HybridTime(snap.last_ht);
        *self.last_ht.lock().unwrap_or_else(|e| e.into_inner()) = ht;
        self.clock.update(ht);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log entry's encoding is the one it had when keys and values were `serde`'s
    /// sequences of `u8` and client ids tuples of 16 `u8`s, so logs written before decode.
    #[test]
    fn write_cmd_encoding_is_unchanged() {
        #[derive(serde::Serialize)]
        struct OldOp {
            key: Vec<u8>,
            value: Option<Vec<u8>>,
            ttl_ms: u64,
            expire_at_us: u64,
            condition: Condition,
        }
        #[derive(serde::Serialize)]
        struct OldId {
            client: [u8; 16],
            seq: u64,
            min_running: u64,
        }
        let client: [u8; 16] = std::array::from_fn(|i| i as u8 * 17);
        let op = |value: Option<&[u8]>| WriteOp {
            key: b"user:1".to_vec(),
            value: value.map(<[u8]>::to_vec),
            ttl_ms: 5,
            expire_at_us: 7,
            condition: Condition::IfEquals(b"x".to_vec()),
        };
        let new = WriteCmd {
            ht: 42,
            writes: vec![vec![op(Some(b"v")), op(None)]],
            ids: vec![RequestId {
                client,
                seq: 3,
                min_running: 2,
            }],
        };
        // The same command in the old layout, field by field.
        let old = (
            new.ht,
            new.writes
                .iter()
                .map(|w| {
                    w.iter()
                        .map(|o| OldOp {
                            key: o.key.clone(),
                            value: o.value.clone(),
                            ttl_ms: o.ttl_ms,
                            expire_at_us: o.expire_at_us,
                            condition: o.condition.clone(),
                        })
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>(),
            new.ids
                .iter()
                .map(|i| OldId {
                    client: i.client,
                    seq: i.seq,
                    min_running: i.min_running,
                })
                .collect::<Vec<_>>(),
        );
        let bytes = bincode::serialize(&old).unwrap();
        assert_eq!(bincode::serialize(&new).unwrap(), bytes);
        let back = WriteCmd::decode(&bytes).unwrap();
        assert_eq!(
            (back.ht, &back.writes, &back.ids),
            (42, &new.writes, &new.ids)
        );
    }

    #[test]
    fn checkpoint_part_round_trips_and_old_stores_still_read() {
        let engine = storage::MemEngine::new();
        let prefix = [4; 16];
        // Nothing yet.
        let ck = Checkpoint::read(&engine, &prefix).unwrap();
        assert_eq!(ck.last_ht, HybridTime::MIN);
        assert!(ck.retries.is_empty() && ck.intents.is_empty());
        // A store from before session 22: `last_ht` under its own key.
        let mut b = WriteBatch::new();
        let mut key = prefix.to_vec();
        key.extend_from_slice(b"last_ht");
        b.put(Cf::RaftMeta, key, 77u64.to_be_bytes().to_vec());
        engine.write(b).unwrap();
        assert_eq!(
            Checkpoint::read(&engine, &prefix).unwrap().last_ht,
            HybridTime(77)
        );
        // The encoding.
        let retries = vec![([1; 16], Some(vec![9, 9])), ([2; 16], None)];
        let intents = vec![(vec![4; 20], Some(vec![1, 2])), (vec![4; 21], None)];
        let blob = Checkpoint::encode(HybridTime(88), &retries, &intents);
        assert_eq!(blob[0], Checkpoint::VERSION);
        let back = Checkpoint::decode(&blob).unwrap();
        assert_eq!(back.last_ht, HybridTime(88));
        assert_eq!((back.retries, back.intents), (retries.clone(), intents));
        // Version 1 (session 22): no intents part.
        let mut v1 = vec![1];
        v1.extend_from_slice(&99u64.to_be_bytes());
        v1.extend_from_slice(&bincode::serialize(&retries).unwrap());
        let back = Checkpoint::decode(&v1).unwrap();
        assert_eq!(back.last_ht, HybridTime(99));
        assert_eq!(back.retries, retries);
        assert!(back.intents.is_empty());
        // Garbage is an error, not a panic.
        assert!(Checkpoint::decode(&[3, 0, 0]).is_err());
        assert!(Checkpoint::decode(&[2; 12]).is_err());
    }
}
