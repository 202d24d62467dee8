//! Intents in the store: one `Cf::Intents` pair per user key that has any,
//!
//! ```text
//! key   = tablet prefix (16 bytes) ‖ encode_bytes(user key)
//! value = bincode(IntentSet)
//! ```
//!
//! the same key as the user key's MVCC versions in `Cf::Data` without the time suffix.
//!
//! The same family holds the status records of transactions anchored in the tablet
//! ([`crate::StatusAt`]):
//!
//! ```text
//! key   = tablet prefix (16 bytes) ‖ 0x00 0x01 ‖ transaction id (16 bytes)
//! value = bincode(TxnStatus)
//! ```
//!
//! No encoded user key starts with `0x00 0x01` (a zero byte is followed by `0xFF`, or by
//! `0x00` as the terminator), so the two never meet; the walks over user keys skip these.

use std::ops::Bound;

use common::keys::decode_bytes;
use storage::{prefix_end, Cf, KvEngine, StorageError};

use crate::{decode_set, IntentSet};

type Result<T> = std::result::Result<T, StorageError>;

fn corrupt(detail: &str) -> StorageError {
    StorageError::Corrupt {
        what: "transaction intents",
        detail: detail.to_owned(),
    }
}

/// Marks a status record's key after the tablet prefix.
const STATUS_MARK: [u8; 2] = [0x00, 0x01];

/// The `Cf::Intents` key of transaction `txn`'s status record in the tablet `prefix`.
pub fn status_key(prefix: &[u8; 16], txn: &crate::TxnId) -> Vec<u8> {
    let mut k = Vec::with_capacity(34);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&STATUS_MARK);
    k.extend_from_slice(txn);
    k
}

/// Whether a raw `Cf::Intents` key (with its tablet prefix) is a status record's.
pub fn is_status_key(raw: &[u8]) -> bool {
    raw.get(16..18) == Some(&STATUS_MARK[..])
}

/// A raw `Cf::Intents` pair of a tablet, decoded.
pub enum Stored {
    /// The intents on a user key.
    Set(Vec<u8>, IntentSet),
    /// A status record and its raw value.
    Status(crate::TxnId, Vec<u8>),
}

/// What a raw `Cf::Intents` key (with its tablet prefix) names.
pub enum StoredKey {
    /// The intents on this user key.
    Set(Vec<u8>),
    /// This transaction's status record.
    Status(crate::TxnId),
}

/// Decode a raw `Cf::Intents` key (with its tablet prefix).
pub fn decode_key(key: &[u8]) -> Result<StoredKey> {
    if is_status_key(key) {
        let txn = key
            .get(18..)
            .and_then(|t| crate::TxnId::try_from(t).ok())
            .ok_or_else(|| corrupt("bad status key"))?;
        return Ok(StoredKey::Status(txn));
    }
    let (user, rest) = decode_bytes(key.get(16..).unwrap_or_default())
        .ok_or_else(|| corrupt("bad key encoding"))?;
    if !rest.is_empty() {
        return Err(corrupt("trailing bytes after the key"));
    }
    Ok(StoredKey::Set(user))
}

/// Decode a raw `Cf::Intents` pair (its key with the tablet prefix), as [`export`] returns.
pub fn decode_pair(key: &[u8], value: &[u8]) -> Result<Stored> {
    Ok(match decode_key(key)? {
        StoredKey::Status(txn) => Stored::Status(txn, value.to_vec()),
        StoredKey::Set(user) => Stored::Set(
            user,
            decode_set(value).ok_or_else(|| corrupt("undecodable set"))?,
        ),
    })
}

/// Every raw pair of a tablet in `Cf::Intents` (the records saved to their keys).
pub fn export(engine: &dyn KvEngine, prefix: &[u8; 16]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    engine
        .scan(
            Cf::Intents,
            Bound::Included(prefix.to_vec()),
            prefix_end(prefix),
            false,
        )
        .collect()
}
