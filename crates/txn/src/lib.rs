//! `txn` — the records distributed transactions leave in storage, and the rules that read
//! them. Key types: [`TxnId`], [`Intent`], [`TxnStatus`], [`Isolation`].
//!
//! * **Provisional records** ([`Intent`], module [`intents`]): a transaction that commits
//!   over several tablets first *prewrites* each of its keys as an intent in the tablet's
//!   [`storage::Cf::Intents`] family, beside the key's MVCC versions in `Cf::Data`. An
//!   intent is a lock: while it is there, no other writer may touch the key and readers wait
//!   for it to be resolved. A serializable transaction also leaves *read* intents on the keys
//!   it read, which block writers but not readers or other read intents.
//! * **Status record** ([`TxnStatus`]): one key per transaction in the table
//!   `system_txn.status`, written with compare-and-set. Its absence means *pending*; so does
//!   `Pending { heartbeat_us }`, which a coordinator whose commit runs long keeps fresh. The
//!   commit point is the write of `Committed { commit_ht }`; anyone may instead write
//!   `Aborted` once the transaction's intents (and heartbeat) are older than the timeout.
//!   Exactly one of the two wins, so every participant resolves the same way. The
//!   coordinator deletes the record once every intent is resolved.
//! * **Resolution**: an intent of a committed transaction becomes an MVCC version at the
//!   commit time; one of an aborted transaction is dropped.
//!
//! The tablet applies these rules in its state machine (`tablet::app`); the coordinator and
//! the resolver live in `client::txn`. The argument for correctness is in
//! `docs/design/transactions.md`.

pub mod intents;

use serde::{Deserialize, Serialize};

/// A transaction's id: 16 random bytes.
pub type TxnId = [u8; 16];

/// The namespace and table that hold transaction status records.
pub const STATUS_NAMESPACE: &str = "system_txn";
pub const STATUS_TABLE: &str = "status";

/// How long a pending transaction's intents may stay before anyone may abort it.
pub const DEFAULT_TIMEOUT_MICROS: u64 = 5_000_000;

/// Isolation levels, named as in PostgreSQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Isolation {
    /// A fresh snapshot per statement.
    #[default]
    ReadCommitted,
    /// One snapshot for the whole transaction (PostgreSQL REPEATABLE READ).
    Snapshot,
    /// Snapshot plus read intents validated at commit: write skew is impossible.
    Serializable,
}

/// What an intent stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntentKind {
    /// A provisional write (a put or a delete).
    Write,
    /// A serializable read: the key must not change until the transaction resolves.
    Read,
}

/// One provisional record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub txn: TxnId,
    pub kind: IntentKind,
    /// The snapshot the transaction read the key at: a committed version newer than this
    /// made the prewrite fail.
    pub since_ht: u64,
    /// Physical time (µs) the intent was written: it may be aborted by anyone after
    /// [`DEFAULT_TIMEOUT_MICROS`] if its transaction has not committed.
    pub written_at_us: u64,
    /// For a write: the new value, `None` for a delete.
    pub value: Option<Vec<u8>>,
    /// Milliseconds to live from the commit time, `0` = forever.
    pub ttl_ms: u64,
    /// Absolute expiry in µs; overrides `ttl_ms` when non-zero.
    pub expire_at_us: u64,
    /// Where the transaction's status record is: `None` in `system_txn.status`, else in a
    /// tablet of a user table (a participant's, see [`StatusAt`]).
    pub status_at: Option<StatusAt>,
}

/// A status record kept in a participant tablet of the transaction (the one its commit
/// writes directly, with the record, in one Raft write), in that tablet's intents family
/// ([`intents::status_key`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StatusAt {
    pub table_id: String,
    pub tablet: u32,
}

/// An intent as written before [`Intent::status_at`] existed.
#[derive(Deserialize)]
struct IntentV1 {
    txn: TxnId,
    kind: IntentKind,
    since_ht: u64,
    written_at_us: u64,
    value: Option<Vec<u8>>,
    ttl_ms: u64,
    expire_at_us: u64,
}

/// Marks the current encoding of an intent set (a length no set can have).
const SET_V2: [u8; 8] = [0xFF; 8];

/// The intents on one key: one write intent, or any number of read intents (and at most
/// one write intent, of a transaction that also read the key).
pub type IntentSet = Vec<Intent>;

/// Encode the intents of a key for `Cf::Intents`: [`SET_V2`] ‖ bincode(set).
pub fn encode_set(set: &IntentSet) -> Vec<u8> {
    let mut out = SET_V2.to_vec();
    if bincode::serialize_into(&mut out, set).is_err() {
        out.clear();
    }
    out
}

/// Decode the intents of a key (either encoding); `None` if the bytes are not an intent set.
pub fn decode_set(raw: &[u8]) -> Option<IntentSet> {
    if let Some(rest) = raw.strip_prefix(&SET_V2) {
        return bincode::deserialize(rest).ok();
    }
    let old: Vec<IntentV1> = bincode::deserialize(raw).ok()?;
    Some(
        old.into_iter()
            .map(|i| Intent {
                txn: i.txn,
                kind: i.kind,
                since_ht: i.since_ht,
                written_at_us: i.written_at_us,
                value: i.value,
                ttl_ms: i.ttl_ms,
                expire_at_us: i.expire_at_us,
                status_at: None,
            })
            .collect(),
    )
}

/// Whether `other` (an intent of another transaction) stops `kind` from being taken.
pub fn conflicts(kind: IntentKind, other: &Intent) -> bool {
    !(kind == IntentKind::Read && other.kind == IntentKind::Read)
}

/// How often a coordinator whose commit is still running refreshes its `Pending`
/// heartbeat (and how long it waits before writing the first one).
pub const HEARTBEAT_INTERVAL_MICROS: u64 = 1_000_000;

/// The value of a transaction's status record. (Variants are only ever appended: the
/// encoding is bincode's variant index.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnStatus {
    Committed {
        commit_ht: u64,
    },
    Aborted,
    /// Still running, alive at `heartbeat_us` (µs since the epoch, the coordinator's clock).
    Pending {
        heartbeat_us: u64,
    },
}

impl TxnStatus {
    pub fn encode(&self) -> Vec<u8> {
        bincode::serialize(self).unwrap_or_default()
    }
    pub fn decode(raw: &[u8]) -> Option<TxnStatus> {
        bincode::deserialize(raw).ok()
    }

    /// Whether the transaction is decided (committed or aborted).
    pub fn is_final(&self) -> bool {
        !matches!(self, TxnStatus::Pending { .. })
    }
}

/// Whether a transaction with no final status may be aborted by anyone at `now_us`: its
/// intent was written at `written_at_us`, its last heartbeat (if any) was `heartbeat_us`,
/// and neither is within the timeout.
pub fn abandoned(now_us: u64, written_at_us: u64, heartbeat_us: Option<u64>) -> bool {
    let alive = written_at_us.max(heartbeat_us.unwrap_or(0));
    now_us >= alive.saturating_add(DEFAULT_TIMEOUT_MICROS)
}

/// A fresh random transaction id.
pub fn new_id() -> TxnId {
    let mut id = [0u8; 16];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // 8 bytes of time (for readable ordering in logs) and 8 of randomness.
    id[..8].copy_from_slice(&(now as u64).to_be_bytes());
    id[8..].copy_from_slice(&random_u64().to_be_bytes());
    id
}

fn random_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// Hex form of an id, for messages and logs.
pub fn id_hex(id: &TxnId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_ids_differ() {
        let i = Intent {
            txn: new_id(),
            kind: IntentKind::Write,
            since_ht: 5,
            written_at_us: 6,
            value: Some(b"v".to_vec()),
            ttl_ms: 0,
            expire_at_us: 0,
            status_at: Some(StatusAt {
                table_id: "t".into(),
                tablet: 3,
            }),
        };
        assert_eq!(
            decode_set(&encode_set(&vec![i.clone(), i.clone()])),
            Some(vec![i.clone(), i.clone()])
        );
        // Sets written before `status_at` existed still decode.
        let v1 = (
            1u64,
            i.txn,
            0u32,
            5u64,
            6u64,
            Some(b"v".to_vec()),
            0u64,
            0u64,
        );
        let old = decode_set(&bincode::serialize(&v1).unwrap()).unwrap();
        assert_eq!(old[0].status_at, None);
        assert_eq!(old[0].value, i.value);
        let s = TxnStatus::Committed { commit_ht: 9 };
        assert_eq!(TxnStatus::decode(&s.encode()), Some(s));
        // Records written before `Pending` existed still decode the same.
        assert_eq!(TxnStatus::Aborted.encode(), vec![1, 0, 0, 0]);
        let p = TxnStatus::Pending { heartbeat_us: 7 };
        assert_eq!(TxnStatus::decode(&p.encode()), Some(p.clone()));
        assert!(!p.is_final() && TxnStatus::Aborted.is_final());
        let t = DEFAULT_TIMEOUT_MICROS;
        assert!(!abandoned(t, 1, None));
        assert!(abandoned(t + 1, 1, None));
        assert!(!abandoned(t + 1, 1, Some(2)));
        assert_ne!(new_id(), new_id());
        assert!(!conflicts(
            IntentKind::Read,
            &Intent {
                txn: new_id(),
                kind: IntentKind::Read,
                since_ht: 0,
                written_at_us: 0,
                value: None,
                ttl_ms: 0,
                expire_at_us: 0,
                status_at: None,
            }
        ));
    }
}
