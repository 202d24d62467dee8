//! Intents in the store: one `Cf::Intents` pair per user key that has any,
//!
//! ```text
//! key   = tablet prefix (16 bytes) ‖ encode_bytes(user key)
//! value = bincode(IntentSet)
//! ```
//!
//! the same key as the user key's MVCC versions in `Cf::Data` without the time suffix.

use std::ops::Bound;

use common::keys::decode_bytes;
use storage::mvcc::{key_prefix, range_bounds, ScanRange};
use storage::{prefix_end, Cf, KvEngine, StorageError, WriteBatch};

use crate::{decode_set, encode_set, IntentSet};

type Result<T> = std::result::Result<T, StorageError>;

fn corrupt(detail: &str) -> StorageError {
    StorageError::Corrupt {
        what: "transaction intents",
        detail: detail.to_owned(),
    }
}

/// The intents on `key`, if any.
pub fn get(engine: &dyn KvEngine, prefix: &[u8; 16], key: &[u8]) -> Result<Option<IntentSet>> {
    match engine.get(Cf::Intents, &key_prefix(prefix, key))? {
        Some(raw) => Ok(Some(
            decode_set(&raw).ok_or_else(|| corrupt("undecodable set"))?,
        )),
        None => Ok(None),
    }
}

/// Set (or, if `set` is empty, remove) the intents on `key`.
pub fn put(batch: &mut WriteBatch, prefix: &[u8; 16], key: &[u8], set: &IntentSet) {
    if set.is_empty() {
        batch.delete(Cf::Intents, key_prefix(prefix, key));
    } else {
        batch.put(Cf::Intents, key_prefix(prefix, key), encode_set(set));
    }
}

/// Every key with intents in `range`, ascending.
pub fn scan(
    engine: &dyn KvEngine,
    prefix: &[u8; 16],
    range: &ScanRange,
) -> Result<Vec<(Vec<u8>, IntentSet)>> {
    let (start, end) = range_bounds(prefix, range);
    let mut out = Vec::new();
    for kv in engine.scan(Cf::Intents, start, end, false) {
        let (k, v) = kv?;
        let (user, rest) = decode_bytes(k.get(16..).unwrap_or_default())
            .ok_or_else(|| corrupt("bad key encoding"))?;
        if !rest.is_empty() {
            return Err(corrupt("trailing bytes after the key"));
        }
        out.push((
            user,
            decode_set(&v).ok_or_else(|| corrupt("undecodable set"))?,
        ));
    }
    Ok(out)
}

/// Every raw intent pair of a tablet (for snapshots).
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

/// How many keys of a tablet have intents.
pub fn count(engine: &dyn KvEngine, prefix: &[u8; 16]) -> Result<usize> {
    let mut n = 0;
    for kv in engine.scan(
        Cf::Intents,
        Bound::Included(prefix.to_vec()),
        prefix_end(prefix),
        false,
    ) {
        kv?;
        n += 1;
    }
    Ok(n)
}
