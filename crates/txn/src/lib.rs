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
//!   `system_txn.status`, written with compare-and-set. Its absence means *pending*. The
//!   commit point is the write of `Committed { commit_ht }`; anyone may instead write
//!   `Aborted` once the transaction's intents are older than the timeout. Exactly one of the
//!   two wins, so every participant resolves the same way.
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
}

/// The intents on one key: one write intent, or any number of read intents (and at most
/// one write intent, of a transaction that also read the key).
pub type IntentSet = Vec<Intent>;

/// Encode the intents of a key for `Cf::Intents`.
pub fn encode_set(set: &IntentSet) -> Vec<u8> {
    bincode::serialize(set).unwrap_or_default()
}

/// Decode the intents of a key; `None` if the bytes are not an intent set.
pub fn decode_set(raw: &[u8]) -> Option<IntentSet> {
    bincode::deserialize(raw).ok()
}

/// Whether `other` (an intent of another transaction) stops `kind` from being taken.
pub fn conflicts(kind: IntentKind, other: &Intent) -> bool {
    !(kind == IntentKind::Read && other.kind == IntentKind::Read)
}

/// The value of a transaction's status record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnStatus {
    Committed { commit_ht: u64 },
    Aborted,
}

impl TxnStatus {
    pub fn encode(&self) -> Vec<u8> {
        bincode::serialize(self).unwrap_or_default()
    }
    pub fn decode(raw: &[u8]) -> Option<TxnStatus> {
        bincode::deserialize(raw).ok()
    }
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
        };
        assert_eq!(decode_set(&encode_set(&vec![i.clone()])), Some(vec![i]));
        let s = TxnStatus::Committed { commit_ht: 9 };
        assert_eq!(TxnStatus::decode(&s.encode()), Some(s));
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
                expire_at_us: 0
            }
        ));
    }
}
