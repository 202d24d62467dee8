//! A tablet's intents and status records (`Cf::Intents`), held in memory and checkpointed
//! lazily.
//!
//! Most provisional records live a few milliseconds: a transfer's intent is written by its
//! prewrite and removed by its resolution a few apply rounds later, and a status record by
//! the commit and removed once its intents are resolved. Writing each to its own key meant a
//! memtable insert and later a tombstone (and their flush and compaction) per record, a
//! sixth of a transaction's inserts. So the truth is in memory ([`IntentStore`]), and the
//! store keeps it in two levels, as the retry filter does:
//!
//! * the records' own keys in `Cf::Intents` (encoding in `txn::intents`), written only for a
//!   record that outlived [`SAVE_AFTER`] rounds, or when the unsaved ones grew past
//!   [`MAX_UNSAVED`] records or [`MAX_UNSAVED_BYTES`];
//! * in between, the records changed since their keys were last written (a [`Delta`]: raw
//!   key, value or `None` if removed), carried in every apply round's checkpoint record
//!   (`TabletApp::checkpoint`), which is written in the same atomic batch as the round.
//!
//! The state as of a round is the keys overlaid with that round's delta. A fjall crash
//! restores a prefix of the batches, and the newest surviving record's delta covers every
//! change since the keys that prefix holds, so [`IntentStore::load`] rebuilds exactly the
//! records of the surviving applied index. A record born and removed between two saves is
//! never written to its key at all.
//!
//! Also here: [`IntentIndex`], the keys that may have intents, readable without a lock.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

use storage::mvcc::key_prefix;
use storage::{Cf, KvEngine, StorageError, WriteBatch};
use txn::{intents, IntentSet, TxnId};

/// Raw `Cf::Intents` pairs (key with the tablet prefix, value).
pub(crate) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Records changed since their keys were last written: raw key and value, or `None` if the
/// record was removed (and its key still holds it).
pub(crate) type Delta = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Rounds a record stays unsaved (in the checkpoint record only) before its key is written.
const SAVE_AFTER: u64 = 64;
/// Most unsaved records; past it, all are written to their keys.
const MAX_UNSAVED: usize = 64;
/// Most bytes of unsaved records; past it, all are written to their keys.
const MAX_UNSAVED_BYTES: usize = 32 * 1024;

/// The intents and status records of one tablet as of its last apply round.
#[derive(Default)]
pub(crate) struct IntentStore {
    /// The intents of every key that has any.
    sets: HashMap<Vec<u8>, IntentSet>,
    /// Status records of transactions anchored here (encoded `TxnStatus`).
    status: HashMap<TxnId, Vec<u8>>,
    /// Records changed since their keys were last written: raw key → (value or `None`, the
    /// round it first changed in).
    unsaved: HashMap<Vec<u8>, (Option<Vec<u8>>, u64)>,
    /// Raw keys `Cf::Intents` holds for this tablet.
    saved: HashSet<Vec<u8>>,
    /// Rounds checkpointed.
    round: u64,
}

impl IntentStore {
    /// The records as last checkpointed: the tablet's keys in `engine` overlaid with `delta`
    /// (from the newest checkpoint record). The delta's records stay unsaved.
    pub(crate) fn load(
        engine: &dyn KvEngine,
        prefix: &[u8; 16],
        delta: Delta,
    ) -> Result<Self, StorageError> {
        let mut store = IntentStore::default();
        for (k, v) in intents::export(engine, prefix)? {
            store.saved.insert(k.clone());
            store.put_raw(&k, v)?;
        }
        for (k, v) in delta {
            match &v {
                Some(v) => store.put_raw(&k, v.clone())?,
                None => store.remove_raw(&k)?,
            }
            store.unsaved.insert(k, (v, 0));
        }
        Ok(store)
    }

    fn put_raw(&mut self, key: &[u8], value: Vec<u8>) -> Result<(), StorageError> {
        match intents::decode_pair(key, &value)? {
            intents::Stored::Set(user, set) => {
                self.sets.insert(user, set);
            }
            intents::Stored::Status(txn, raw) => {
                self.status.insert(txn, raw);
            }
        }
        Ok(())
    }

    fn remove_raw(&mut self, key: &[u8]) -> Result<(), StorageError> {
        match intents::decode_key(key)? {
            intents::StoredKey::Set(user) => {
                self.sets.remove(&user);
            }
            intents::StoredKey::Status(txn) => {
                self.status.remove(&txn);
            }
        }
        Ok(())
    }

    /// Keys that have intents.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.sets.keys()
    }

    /// The intents on `key`.
    pub(crate) fn set(&self, key: &[u8]) -> Option<&IntentSet> {
        self.sets.get(key)
    }

    /// The status record of `txn` kept here.
    pub(crate) fn status(&self, txn: &TxnId) -> Option<&Vec<u8>> {
        self.status.get(txn)
    }

    /// Show a round's changes to readers, once its batch is in the engine: per key its
    /// intents (empty: none left), per transaction its status record (`None`: removed).
    pub(crate) fn show(
        &mut self,
        sets: impl Iterator<Item = (Vec<u8>, IntentSet)>,
        status: impl Iterator<Item = (TxnId, Option<Vec<u8>>)>,
    ) {
        for (key, set) in sets {
            if set.is_empty() {
                self.sets.remove(&key);
            } else {
                self.sets.insert(key, set);
            }
        }
        for (txn, raw) in status {
            match raw {
                Some(raw) => self.status.insert(txn, raw),
                None => self.status.remove(&txn),
            };
        }
    }

    fn changed(&mut self, raw_key: Vec<u8>, value: Option<Vec<u8>>) {
        if value.is_none() && !self.saved.contains(&raw_key) {
            // Born and gone between two saves: nothing to write, nothing to carry.
            self.unsaved.remove(&raw_key);
            return;
        }
        let round = self.round;
        match self.unsaved.get_mut(&raw_key) {
            Some(e) => e.0 = value,
            None => {
                self.unsaved.insert(raw_key, (value, round));
            }
        }
    }

    /// Checkpoint one round whose changes are `sets` and `status` (as for [`Self::show`]):
    /// write the records that are due to their keys in `batch`, and return the delta (the
    /// other unsaved records) for the round's checkpoint record.
    pub(crate) fn checkpoint(
        &mut self,
        prefix: &[u8; 16],
        sets: &HashMap<Vec<u8>, IntentSet>,
        status: &HashMap<TxnId, Option<Vec<u8>>>,
        batch: &mut WriteBatch,
    ) -> Delta {
        self.round += 1;
        for (key, set) in sets {
            let value = (!set.is_empty()).then(|| txn::encode_set(set));
            self.changed(key_prefix(prefix, key), value);
        }
        for (txn, raw) in status {
            self.changed(intents::status_key(prefix, txn), raw.clone());
        }
        let bytes: usize = self
            .unsaved
            .iter()
            .map(|(k, (v, _))| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        let all = self.unsaved.len() > MAX_UNSAVED || bytes > MAX_UNSAVED_BYTES;
        let due: Vec<Vec<u8>> = self
            .unsaved
            .iter()
            .filter(|(_, (_, since))| all || self.round - since >= SAVE_AFTER)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some((value, _)) = self.unsaved.remove(&key) else {
                continue;
            };
            match value {
                Some(v) => {
                    self.saved.insert(key.clone());
                    batch.put(Cf::Intents, key, v);
                }
                None => {
                    self.saved.remove(&key);
                    batch.delete(Cf::Intents, key);
                }
            }
        }
        let mut delta: Delta = self
            .unsaved
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        delta.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        delta
    }

    /// Replace the records with a snapshot's (`pairs` from [`export`]); the store's old keys
    /// are deleted and the new ones written in `batch`, so nothing is left unsaved.
    pub(crate) fn install(
        &mut self,
        engine: &dyn KvEngine,
        prefix: &[u8; 16],
        pairs: Pairs,
        batch: &mut WriteBatch,
    ) -> Result<(), StorageError> {
        for (k, _) in intents::export(engine, prefix)? {
            batch.delete(Cf::Intents, k);
        }
        *self = IntentStore {
            round: self.round,
            ..IntentStore::default()
        };
        for (k, v) in pairs {
            self.saved.insert(k.clone());
            self.put_raw(&k, v.clone())?;
            batch.put(Cf::Intents, k, v);
        }
        Ok(())
    }
}

/// The checkpointed records of a tablet as raw pairs (for snapshots): its keys overlaid with
/// `delta`, the newest checkpoint record's.
pub(crate) fn export(
    engine: &dyn KvEngine,
    prefix: &[u8; 16],
    delta: &Delta,
) -> Result<Pairs, StorageError> {
    let mut pairs: BTreeMap<Vec<u8>, Vec<u8>> =
        intents::export(engine, prefix)?.into_iter().collect();
    for (k, v) in delta {
        match v {
            Some(v) => pairs.insert(k.clone(), v.clone()),
            None => pairs.remove(k),
        };
    }
    Ok(pairs.into_iter().collect())
}

/// The keys of a tablet that have intents, readable without the store's lock (intents are
/// few and short-lived; reads and writes of other keys never look further). Always a superset
/// of the keys with intents in the [`IntentStore`]: a key is added as soon as an apply round
/// writes an intent for it (before the round's changes reach the store), and removed only
/// once a round that left it with none is in the store (`TabletApp::applied`), so a reader
/// that does not find a key here cannot miss an intent.
#[derive(Default)]
pub(crate) struct IntentIndex {
    keys: RwLock<BTreeSet<Vec<u8>>>,
    /// `keys.len()`, readable without the lock.
    len: AtomicUsize,
}

impl IntentIndex {
    /// Whether any key may have intents.
    pub(crate) fn any(&self) -> bool {
        self.len.load(Ordering::Acquire) > 0
    }

    /// Whether `key` may have intents.
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.any()
            && self
                .keys
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(key)
    }

    /// The keys in `range` that may have intents, in key order (a copy).
    pub(crate) fn keys_in(&self, range: &storage::mvcc::ScanRange) -> Vec<Vec<u8>> {
        if !self.any() {
            return Vec::new();
        }
        let start = match &range.start {
            Some(s) => Bound::Included(s.as_slice()),
            None => Bound::Unbounded,
        };
        let end = match &range.end {
            Some(e) => Bound::Excluded(e.as_slice()),
            None => Bound::Unbounded,
        };
        // `BTreeSet::range` panics on an empty or inverted range.
        if matches!((start, end), (Bound::Included(s), Bound::Excluded(e)) if s >= e) {
            return Vec::new();
        }
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.range::<[u8], _>((start, end)).cloned().collect()
    }

    pub(crate) fn add(&self, key: &[u8]) {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if !keys.contains(key) {
            keys.insert(key.to_vec());
            self.len.store(keys.len(), Ordering::Release);
        }
    }

    pub(crate) fn remove(&self, key: &[u8]) {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if keys.remove(key) {
            self.len.store(keys.len(), Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::MemEngine;
    use txn::{Intent, IntentKind};

    fn intent(n: u8) -> IntentSet {
        vec![Intent {
            txn: [n; 16],
            kind: IntentKind::Write,
            since_ht: 1,
            written_at_us: 2,
            value: Some(vec![n; 10]),
            ttl_ms: 0,
            expire_at_us: 0,
            status_at: None,
        }]
    }

    const P: [u8; 16] = [7; 16];

    /// One apply round changing `sets` and `status`: checkpoint, write the batch, show the
    /// changes; returns the round's delta (what its checkpoint record carries).
    fn round(
        store: &mut IntentStore,
        engine: &MemEngine,
        sets: Vec<(Vec<u8>, IntentSet)>,
        status: Vec<(TxnId, Option<Vec<u8>>)>,
    ) -> Delta {
        let sets: HashMap<_, _> = sets.into_iter().collect();
        let status: HashMap<_, _> = status.into_iter().collect();
        let mut batch = WriteBatch::new();
        let delta = store.checkpoint(&P, &sets, &status, &mut batch);
        engine.write(batch).unwrap();
        store.show(sets.into_iter(), status.into_iter());
        delta
    }

    fn reload(engine: &MemEngine, delta: &Delta) -> IntentStore {
        IntentStore::load(engine, &P, delta.clone()).unwrap()
    }

    #[test]
    fn short_lived_records_never_reach_their_keys() {
        let engine = MemEngine::new();
        let mut s = IntentStore::default();
        let d = round(
            &mut s,
            &engine,
            vec![(b"a".to_vec(), intent(1))],
            vec![([1; 16], Some(vec![1, 2, 3]))],
        );
        assert_eq!(d.len(), 2);
        assert!(intents::export(&engine, &P).unwrap().is_empty());
        assert_eq!(s.set(b"a"), Some(&intent(1)));
        // A crash here: the record's delta brings both back.
        let back = reload(&engine, &d);
        assert_eq!(back.set(b"a"), Some(&intent(1)));
        assert_eq!(back.status(&[1; 16]), Some(&vec![1, 2, 3]));
        // Resolved and forgotten before a save: no key, no tombstone, nothing carried.
        let d = round(
            &mut s,
            &engine,
            vec![(b"a".to_vec(), Vec::new())],
            vec![([1; 16], None)],
        );
        assert!(d.is_empty());
        assert!(s.set(b"a").is_none() && s.status(&[1; 16]).is_none());
        assert!(intents::export(&engine, &P).unwrap().is_empty());
        let back = reload(&engine, &d);
        assert!(back.set(b"a").is_none() && back.status(&[1; 16]).is_none());
    }

    #[test]
    fn long_lived_records_are_saved_and_their_removal_carried() {
        let engine = MemEngine::new();
        let mut s = IntentStore::default();
        let mut d = round(&mut s, &engine, vec![(b"old".to_vec(), intent(2))], vec![]);
        for _ in 0..SAVE_AFTER {
            d = round(&mut s, &engine, vec![], vec![]);
        }
        // Saved to its key, no longer carried.
        assert!(d.is_empty());
        assert_eq!(intents::export(&engine, &P).unwrap().len(), 1);
        assert_eq!(reload(&engine, &d).set(b"old"), Some(&intent(2)));
        // Its removal is carried until its own save, and the overlay hides the key.
        let d = round(&mut s, &engine, vec![(b"old".to_vec(), Vec::new())], vec![]);
        assert_eq!(d.len(), 1);
        assert!(reload(&engine, &d).set(b"old").is_none());
        assert!(export(&engine, &P, &d).unwrap().is_empty());
        // A restart carries it on, and it is saved (deleted) in time.
        let mut s = reload(&engine, &d);
        let mut d = d;
        for _ in 0..=SAVE_AFTER {
            d = round(&mut s, &engine, vec![], vec![]);
        }
        assert!(d.is_empty());
        assert!(intents::export(&engine, &P).unwrap().is_empty());
    }

    #[test]
    fn many_unsaved_records_are_saved_at_once() {
        let engine = MemEngine::new();
        let mut s = IntentStore::default();
        let sets = (0..=MAX_UNSAVED)
            .map(|n| (vec![b'k', n as u8], intent(n as u8)))
            .collect();
        let d = round(&mut s, &engine, sets, vec![]);
        assert!(d.is_empty());
        assert_eq!(intents::export(&engine, &P).unwrap().len(), MAX_UNSAVED + 1);
        let back = reload(&engine, &d);
        assert_eq!(back.keys().count(), MAX_UNSAVED + 1);
        // A snapshot of the store and its install elsewhere.
        let pairs = export(&engine, &P, &d).unwrap();
        let other = MemEngine::new();
        let mut fresh = IntentStore::default();
        let mut batch = WriteBatch::new();
        fresh.install(&other, &P, pairs, &mut batch).unwrap();
        other.write(batch).unwrap();
        assert_eq!(fresh.keys().count(), MAX_UNSAVED + 1);
        assert!(round(&mut fresh, &other, vec![], vec![]).is_empty());
    }
}
