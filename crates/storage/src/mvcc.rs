//! Multi-version rows keyed by hybrid time.
//!
//! A version of user key `k` in the tablet with 16-byte prefix `p`, written at hybrid time
//! `t`, is stored in [`Cf::Data`] as
//!
//! ```text
//! key   = p (16 bytes) ‖ encode_bytes(k) ‖ !t (8 bytes, big-endian)
//! value = kind (1 byte: 0 = put, 1 = tombstone) ‖ expire_at (8 bytes BE, µs; 0 = never) ‖ data
//! ```
//!
//! `encode_bytes` is order-preserving and prefix-free, so the versions of one key are
//! contiguous and sorted newest first (the time is inverted). A read at time `r` seeks to
//! `p ‖ enc(k) ‖ !r` and takes the first entry it meets if it still belongs to `k`: that is
//! the newest version at or below `r`. A version is visible at `r` unless it is a tombstone
//! or its `expire_at` is at or before `r`'s physical time.
//!
//! Garbage collection ([`gc`]) keeps every version newer than a cutoff and the newest one at
//! or below it (unless that one is a tombstone or expired, in which case it goes too).

use std::ops::Bound;

use common::keys::{decode_bytes, encode_bytes};
use common::HybridTime;

use crate::{prefix_end, Cf, KvEngine, Result, StorageError, WriteBatch};

const KIND_PUT: u8 = 0;
const KIND_TOMBSTONE: u8 = 1;
const HEADER: usize = 9;

/// One version's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Version {
    Put {
        data: Vec<u8>,
        expire_at_micros: Option<u64>,
    },
    Tombstone,
}

impl Version {
    fn encode(&self) -> Vec<u8> {
        match self {
            Version::Put {
                data,
                expire_at_micros,
            } => {
                let mut v = Vec::with_capacity(HEADER + data.len());
                v.push(KIND_PUT);
                v.extend_from_slice(&expire_at_micros.unwrap_or(0).to_be_bytes());
                v.extend_from_slice(data);
                v
            }
            Version::Tombstone => {
                let mut v = vec![KIND_TOMBSTONE];
                v.extend_from_slice(&0u64.to_be_bytes());
                v
            }
        }
    }

    fn decode(raw: &[u8]) -> Result<Version> {
        if raw.len() < HEADER {
            return Err(corrupt("version shorter than its header"));
        }
        let expire = u64::from_be_bytes(raw[1..HEADER].try_into().map_err(|_| corrupt("header"))?);
        match raw[0] {
            KIND_PUT => Ok(Version::Put {
                data: raw[HEADER..].to_vec(),
                expire_at_micros: (expire != 0).then_some(expire),
            }),
            KIND_TOMBSTONE => Ok(Version::Tombstone),
            k => Err(corrupt(&format!("unknown version kind {k}"))),
        }
    }

    /// The data if this version is live at `at`.
    pub(crate) fn visible_at(self, at: HybridTime) -> Option<Vec<u8>> {
        match self {
            Version::Put {
                data,
                expire_at_micros,
            } => match expire_at_micros {
                Some(e) if e <= at.micros() => None,
                _ => Some(data),
            },
            Version::Tombstone => None,
        }
    }
}

fn corrupt(detail: &str) -> StorageError {
    StorageError::Corrupt {
        what: "mvcc data",
        detail: detail.to_owned(),
    }
}

/// The longest key the engine stores (fjall's limit: a 16-bit length).
const MAX_STORED_KEY: usize = u16::MAX as usize;

/// Whether user key `key` can be stored: its longest stored form (`p ‖ enc(k) ‖ !t`, and the
/// shorter intent key) fits the engine's key limit. Callers must check before writing (the
/// engine panics on longer keys) and may answer reads of longer keys with "absent".
pub fn key_fits(key: &[u8]) -> bool {
    let zeros = key.iter().filter(|&&b| b == 0).count();
    16 + key.len() + zeros + 2 + 8 <= MAX_STORED_KEY
}

/// `p ‖ enc(k)`: the prefix shared by every version of `k`.
pub fn key_prefix(prefix: &[u8; 16], key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + key.len() + 10);
    out.extend_from_slice(prefix);
    encode_bytes(key, &mut out);
    out
}

fn versioned_key(prefix: &[u8; 16], key: &[u8], ht: HybridTime) -> Vec<u8> {
    let mut out = key_prefix(prefix, key);
    out.extend_from_slice(&(!ht.0).to_be_bytes());
    out
}

/// Split a stored key into (user key, hybrid time).
fn split_key(raw: &[u8]) -> Result<(Vec<u8>, HybridTime)> {
    if raw.len() < 16 + 2 + 8 {
        return Err(corrupt("key too short"));
    }
    let (user, rest) = decode_bytes(&raw[16..]).ok_or_else(|| corrupt("bad key encoding"))?;
    let t: [u8; 8] = rest.try_into().map_err(|_| corrupt("bad version suffix"))?;
    Ok((user, HybridTime(!u64::from_be_bytes(t))))
}

/// Add a put of `key` at `ht` to `batch`.
pub fn put(
    batch: &mut WriteBatch,
    prefix: &[u8; 16],
    key: &[u8],
    ht: HybridTime,
    data: &[u8],
    expire_at_micros: Option<u64>,
) {
    // Encoded straight from `data` (as `Version::encode` would), without a copy into a
    // `Version` first.
    let mut v = Vec::with_capacity(HEADER + data.len());
    v.push(KIND_PUT);
    v.extend_from_slice(&expire_at_micros.unwrap_or(0).to_be_bytes());
    v.extend_from_slice(data);
    batch.put(Cf::Data, versioned_key(prefix, key, ht), v);
}

/// Add a delete (tombstone) of `key` at `ht` to `batch`.
pub fn delete(batch: &mut WriteBatch, prefix: &[u8; 16], key: &[u8], ht: HybridTime) {
    batch.put(
        Cf::Data,
        versioned_key(prefix, key, ht),
        Version::Tombstone.encode(),
    );
}

/// The value of `key` as of `read_ht`, or `None` if absent, deleted or expired.
pub fn get(
    engine: &dyn KvEngine,
    prefix: &[u8; 16],
    key: &[u8],
    read_ht: HybridTime,
) -> Result<Option<Vec<u8>>> {
    let kp = key_prefix(prefix, key);
    let start = versioned_key(prefix, key, read_ht);
    let end = prefix_end(&kp);
    match engine
        .scan(Cf::Data, Bound::Included(start), end, false)
        .next()
    {
        Some(kv) => {
            let (_, raw) = kv?;
            Ok(Version::decode(&raw)?.visible_at(read_ht))
        }
        None => Ok(None),
    }
}

/// Bounds of a user-key range scan.
#[derive(Clone, Debug, Default)]
pub struct ScanRange {
    /// Inclusive start key; `None` = from the first key.
    pub start: Option<Vec<u8>>,
    /// Exclusive end key; `None` = to the last key.
    pub end: Option<Vec<u8>>,
}

/// The stored-key bounds of user-key `range` in a tablet with `prefix` (keys stored as
/// `prefix ‖ enc(key) ...`, as versions in `Cf::Data` and intents in `Cf::Intents` are).
pub fn range_bounds(prefix: &[u8; 16], range: &ScanRange) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let start = match &range.start {
        Some(s) => Bound::Included(key_prefix(prefix, s)),
        None => Bound::Included(prefix.to_vec()),
    };
    let end = match &range.end {
        Some(e) => Bound::Excluded(key_prefix(prefix, e)),
        None => prefix_end(prefix),
    };
    (start, end)
}

/// A user key and its value.
pub type Row = (Vec<u8>, Vec<u8>);

/// Live rows in `range` as of `read_ht`, ascending by key, at most `limit` of them.
pub fn scan(
    engine: &dyn KvEngine,
    prefix: &[u8; 16],
    range: &ScanRange,
    read_ht: HybridTime,
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    Ok(scan_checked(engine, prefix, range, read_ht, limit, read_ht)?.0)
}

/// [`scan`], and also the newest time of any version it passed over that lies in
/// `(read_ht, uncertain_until]`: a write the reader cannot order before or after itself
/// (the transaction layer's read-restart check).
pub fn scan_checked(
    engine: &dyn KvEngine,
    prefix: &[u8; 16],
    range: &ScanRange,
    read_ht: HybridTime,
    limit: usize,
    uncertain_until: HybridTime,
) -> Result<(Vec<Row>, Option<HybridTime>)> {
    let (start, end) = range_bounds(prefix, range);
    let mut out = Vec::new();
    let mut uncertain: Option<HybridTime> = None;
    let mut current: Option<Vec<u8>> = None; // user key whose visible version was decided
    for kv in engine.scan(Cf::Data, start, end, false) {
        let (raw_key, raw_val) = kv?;
        let (user, ht) = split_key(&raw_key)?;
        if ht > read_ht {
            if ht <= uncertain_until {
                uncertain = uncertain.max(Some(ht));
            }
            continue;
        }
        if current.as_deref() == Some(&user[..]) {
            continue;
        }
        current = Some(user.clone());
        if let Some(v) = Version::decode(&raw_val)?.visible_at(read_ht) {
            out.push((user, v));
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok((out, uncertain))
}

/// The first key in `range` with a version (put or tombstone) newer than `since`, if any:
/// a serializable transaction's check that a range it scanned did not change.
pub fn changed_in_range(
    engine: &dyn KvEngine,
    prefix: &[u8; 16],
    range: &ScanRange,
    since: HybridTime,
) -> Result<Option<Vec<u8>>> {
    let (start, end) = range_bounds(prefix, range);
    for kv in engine.scan(Cf::Data, start, end, false) {
        let (raw_key, _) = kv?;
        let (user, ht) = split_key(&raw_key)?;
        if ht > since {
            return Ok(Some(user));
        }
    }
    Ok(None)
}

/// The time of the newest version of `key` (put or tombstone, expired or not), if any.
pub fn newest_ht(
    engine: &dyn KvEngine,
    prefix: &[u8; 16],
    key: &[u8],
) -> Result<Option<HybridTime>> {
    match first_version(engine, prefix, key)? {
        Some((k, _)) => Ok(Some(split_key(&k)?.1)),
        None => Ok(None),
    }
}

/// The newest version of `key` (put or tombstone, expired or not) and its time, if any.
pub fn newest(
    engine: &dyn KvEngine,
    prefix: &[u8; 16],
    key: &[u8],
) -> Result<Option<crate::latest::Newest>> {
    match first_version(engine, prefix, key)? {
        Some((k, v)) => Ok(Some(crate::latest::Newest {
            ht: split_key(&k)?.1,
            version: Version::decode(&v)?,
        })),
        None => Ok(None),
    }
}

/// The stored (key, value) of the newest version of `key`, if any.
fn first_version(
    engine: &dyn KvEngine,
    prefix: &[u8; 16],
    key: &[u8],
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    let kp = key_prefix(prefix, key);
    let end = prefix_end(&kp);
    engine
        .scan(Cf::Data, Bound::Included(kp), end, false)
        .next()
        .transpose()
}

/// Every stored version under `prefix` (for snapshots), raw.
pub fn export(engine: &dyn KvEngine, prefix: &[u8; 16]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    engine
        .scan(
            Cf::Data,
            Bound::Included(prefix.to_vec()),
            prefix_end(prefix),
            false,
        )
        .collect()
}

/// What one [`gc`] pass removed and kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Versions removed.
    pub removed: usize,
    /// Bytes (key and value, uncompressed) of the versions kept: the tablet's data size,
    /// measured on the way at no extra cost.
    pub kept_bytes: u64,
}

/// Remove versions under `prefix` that no read at or after `cutoff` can see.
pub fn gc(engine: &dyn KvEngine, prefix: &[u8; 16], cutoff: HybridTime) -> Result<GcStats> {
    let mut batch = WriteBatch::new();
    let mut removed = 0;
    let mut kept_bytes = 0u64;
    let mut current: Option<Vec<u8>> = None;
    let mut kept_old_for_current = false;
    for kv in engine.scan(
        Cf::Data,
        Bound::Included(prefix.to_vec()),
        prefix_end(prefix),
        false,
    ) {
        let (raw_key, raw_val) = kv?;
        let (user, ht) = split_key(&raw_key)?;
        if current.as_deref() != Some(&user[..]) {
            current = Some(user);
            kept_old_for_current = false;
        }
        let size = (raw_key.len() + raw_val.len()) as u64;
        if ht > cutoff {
            kept_bytes += size;
            continue;
        }
        if kept_old_for_current {
            batch.delete(Cf::Data, raw_key);
        } else {
            kept_old_for_current = true;
            // The newest version at or below the cutoff: keep it unless nothing can see it.
            if Version::decode(&raw_val)?.visible_at(cutoff).is_none() {
                batch.delete(Cf::Data, raw_key);
            } else {
                kept_bytes += size;
            }
        }
        if batch.len() >= 10_000 {
            removed += batch.len();
            engine.write(std::mem::take(&mut batch))?;
        }
    }
    removed += batch.len();
    if !batch.is_empty() {
        engine.write(batch)?;
    }
    Ok(GcStats {
        removed,
        kept_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_limit_counts_the_encoding() {
        let max = MAX_STORED_KEY - 16 - 2 - 8;
        assert!(key_fits(&vec![b'a'; max]));
        assert!(!key_fits(&vec![b'a'; max + 1]));
        let mut k = vec![b'a'; max - 1];
        k.push(0); // escaped to two bytes
        assert!(!key_fits(&k));
    }
    use crate::MemEngine;

    const P: [u8; 16] = [7; 16];

    fn ht(n: u64) -> HybridTime {
        HybridTime::new(n, 0)
    }

    fn write(e: &dyn KvEngine, f: impl FnOnce(&mut WriteBatch)) {
        let mut b = WriteBatch::new();
        f(&mut b);
        e.write(b).unwrap();
    }

    #[test]
    fn snapshot_reads_see_the_newest_version_at_or_below() {
        let e = MemEngine::new();
        write(&e, |b| put(b, &P, b"k", ht(10), b"v10", None));
        write(&e, |b| put(b, &P, b"k", ht(20), b"v20", None));
        write(&e, |b| delete(b, &P, b"k", ht(30)));
        assert_eq!(get(&e, &P, b"k", ht(5)).unwrap(), None);
        assert_eq!(get(&e, &P, b"k", ht(10)).unwrap(), Some(b"v10".to_vec()));
        assert_eq!(get(&e, &P, b"k", ht(25)).unwrap(), Some(b"v20".to_vec()));
        assert_eq!(get(&e, &P, b"k", ht(30)).unwrap(), None);
        // another tablet and a key sharing a prefix are unaffected
        assert_eq!(get(&e, &[8; 16], b"k", ht(25)).unwrap(), None);
        assert_eq!(get(&e, &P, b"k\0", ht(25)).unwrap(), None);
    }

    #[test]
    fn ttl_hides_expired_versions() {
        let e = MemEngine::new();
        write(&e, |b| put(b, &P, b"k", ht(10), b"v", Some(100)));
        assert_eq!(get(&e, &P, b"k", ht(99)).unwrap(), Some(b"v".to_vec()));
        assert_eq!(get(&e, &P, b"k", ht(100)).unwrap(), None);
    }

    #[test]
    fn scans_are_ordered_versioned_and_limited() {
        let e = MemEngine::new();
        for (i, k) in [b"a", b"b", b"c", b"d"].iter().enumerate() {
            write(&e, |b| put(b, &P, *k, ht(10 + i as u64), b"old", None));
            write(&e, |b| put(b, &P, *k, ht(50), b"new", None));
        }
        write(&e, |b| delete(b, &P, b"b", ht(60)));
        let all = scan(&e, &P, &ScanRange::default(), ht(70), 100).unwrap();
        let keys: Vec<_> = all.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"c".to_vec(), b"d".to_vec()]);
        let old = scan(&e, &P, &ScanRange::default(), ht(20), 100).unwrap();
        assert_eq!(old.len(), 4);
        assert!(old.iter().all(|(_, v)| v == b"old"));
        let r = ScanRange {
            start: Some(b"b".to_vec()),
            end: Some(b"d".to_vec()),
        };
        let mid = scan(&e, &P, &r, ht(20), 1).unwrap();
        assert_eq!(mid, vec![(b"b".to_vec(), b"old".to_vec())]);
    }

    #[test]
    fn gc_keeps_what_reads_after_the_cutoff_need() {
        let e = MemEngine::new();
        write(&e, |b| put(b, &P, b"k", ht(10), b"v10", None));
        write(&e, |b| put(b, &P, b"k", ht(20), b"v20", None));
        write(&e, |b| put(b, &P, b"k", ht(40), b"v40", None));
        write(&e, |b| put(b, &P, b"gone", ht(10), b"x", None));
        write(&e, |b| delete(b, &P, b"gone", ht(20)));
        let removed = gc(&e, &P, ht(30)).unwrap().removed;
        assert_eq!(removed, 3); // k@10, gone@20 tombstone, gone@10
        assert_eq!(get(&e, &P, b"k", ht(30)).unwrap(), Some(b"v20".to_vec()));
        assert_eq!(get(&e, &P, b"k", ht(40)).unwrap(), Some(b"v40".to_vec()));
        assert_eq!(export(&e, &P).unwrap().len(), 2);
    }
}
