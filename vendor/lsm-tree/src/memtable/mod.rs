// Copyright (c) 2024-present, fjall-rs
// This source code is licensed under both the Apache 2.0 and MIT License
// (found in the LICENSE-* files in the repository)
//
// AiSQL patch (vendor/lsm-tree/AISQL-PATCH.md): the items live in a B-tree behind a
// read-write lock instead of a lock-free skiplist. An insert into a skiplist of a few hundred
// thousand entries visits ~2·log2(n) nodes, each its own allocation and most of them a cache
// miss; a B-tree visits ~log6(n) nodes of up to 11 keys laid out side by side, about half the
// time per insert. Readers copy out entries under the read lock in small chunks, so a
// long-lived iterator never holds the lock and never blocks the writer.

use crate::key::InternalKey;
use crate::{
    value::{InternalValue, SeqNo, UserValue},
    ValueType,
};
use std::collections::{BTreeMap, VecDeque};
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use crate::tree::inner::MemtableId;

type Items = BTreeMap<MemKey, (ValueType, UserValue)>;

/// How many 8-byte chunks of the user key a [`MemKey`] holds in front of the key.
const HEADS: usize = 4;
/// User keys this long or shorter are compared by their heads and length alone.
const COVERED: usize = 8 * HEADS;

/// A key of the map: an entry's key and, in front, its user key's first [`COVERED`] bytes
/// as big-endian numbers (zero-padded). Comparing those numbers first keeps comparisons
/// inside the node, without a call to `memcmp` or a look at the key's heap bytes; keys
/// whose heads agree are ordered by length and seqno when both are covered, else by the
/// full comparison. The order is the order of the `InternalKey`s.
#[derive(Clone)]
struct MemKey {
    heads: [u64; HEADS],
    key: InternalKey,
}

impl MemKey {
    fn new(key: InternalKey) -> Self {
        let mut bytes = [0u8; COVERED];
        for (d, s) in bytes.iter_mut().zip(key.user_key.iter()) {
            *d = *s;
        }
        let mut heads = [0u64; HEADS];
        for (h, c) in heads.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            *h = u64::from_be_bytes(b);
        }
        Self { heads, key }
    }
}

impl PartialEq for MemKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for MemKey {}

impl PartialOrd for MemKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MemKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.heads.cmp(&other.heads).then_with(|| {
            let (a, b) = (self.key.user_key.len(), other.key.user_key.len());
            if a <= COVERED && b <= COVERED {
                // Equal padded bytes: equal keys if equally long, else the shorter is a
                // prefix of the longer (whose rest is zeros) and comes first. Then newer
                // versions first, as `InternalKey` orders them.
                a.cmp(&b).then_with(|| other.key.seqno.cmp(&self.key.seqno))
            } else {
                self.key.cmp(&other.key)
            }
        })
    }
}

fn mem_bound(b: Bound<&InternalKey>) -> Bound<MemKey> {
    b.cloned().map(MemKey::new)
}

/// The entry an item of the map stands for.
fn entry(key: &MemKey, (value_type, value): &(ValueType, UserValue)) -> InternalValue {
    let mut key = key.key.clone();
    key.value_type = *value_type;
    InternalValue {
        key,
        value: value.clone(),
    }
}

/// Entries an iterator copies out at its first fetch; each later fetch doubles it, up to
/// [`MAX_CHUNK`]. Point reads take one or two entries, scans many.
const FIRST_CHUNK: usize = 4;
const MAX_CHUNK: usize = 256;

/// The memtable serves as an intermediary, ephemeral, sorted storage for new items
///
/// When the Memtable exceeds some size, it should be flushed to a table.
pub struct Memtable {
    #[doc(hidden)]
    pub id: MemtableId,

    /// The actual content, a B-tree behind a read-write lock. Each value carries its entry's
    /// [`ValueType`]: `BTreeMap::insert` keeps the old key when an equal one (same user key
    /// and seqno, as when a batch writes a key twice) is inserted, and `InternalKey`'s
    /// equality ignores the value type, so the type in the map's key can be stale.
    items: RwLock<Items>,

    /// Approximate active memtable size.
    ///
    /// If this grows too large, a flush is triggered.
    pub(crate) approximate_size: AtomicU64,

    /// Highest encountered sequence number.
    ///
    /// This is used so that `get_highest_seqno` has O(1) complexity.
    pub(crate) highest_seqno: AtomicU64,

    pub(crate) requested_rotation: AtomicBool,
}

/// `true` if no key lies between the two bounds (`BTreeMap::range` panics on some of these).
fn bounds_empty(lo: &Bound<MemKey>, hi: &Bound<MemKey>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a >= b
        }
        _ => false,
    }
}

/// An iterator over a key range of a [`Memtable`], in both directions. It copies entries out
/// in chunks under the read lock and releases the lock between chunks; what lies between the
/// two ends is read at the next fetch, so like the skiplist's iterator it may see entries
/// inserted after it was created (readers filter those out by sequence number).
pub struct MemtableRange<'a> {
    memtable: &'a Memtable,
    /// Lower end of the part not yet fetched.
    lo: Bound<MemKey>,
    /// Upper end of the part not yet fetched.
    hi: Bound<MemKey>,
    /// Fetched from the front, ascending; `next` pops its front.
    front: VecDeque<InternalValue>,
    /// Fetched from the back, descending; `next_back` pops its front.
    back: VecDeque<InternalValue>,
    /// Nothing is left between `lo` and `hi`.
    middle_done: bool,
    chunk: usize,
}

impl MemtableRange<'_> {
    fn next_chunk(&mut self) -> usize {
        let chunk = self.chunk;
        self.chunk = (self.chunk * 2).min(MAX_CHUNK);
        chunk
    }

    /// Copies the next chunk of the unfetched part, from its low end (`forward`) or its high
    /// end, into `front` or `back`.
    fn fetch(&mut self, forward: bool) {
        if self.middle_done {
            return;
        }
        if bounds_empty(&self.lo, &self.hi) {
            self.middle_done = true;
            return;
        }
        let chunk = self.next_chunk();
        let items = self.memtable.read_items();
        let range = items.range::<MemKey, _>((self.lo.as_ref(), self.hi.as_ref()));
        let (got, last) = if forward {
            copy_out(&mut self.front, range, chunk)
        } else {
            copy_out(&mut self.back, range.rev(), chunk)
        };
        drop(items);
        if let Some(last) = last {
            *(if forward { &mut self.lo } else { &mut self.hi }) = Bound::Excluded(last);
        }
        if got < chunk {
            self.middle_done = true;
        }
    }
}

/// Appends up to `chunk` items of `items` to `dst` as entries; returns how many, and the map
/// key of the last one (where the next fetch from this end resumes, exclusive).
fn copy_out<'m>(
    dst: &mut VecDeque<InternalValue>,
    items: impl Iterator<Item = (&'m MemKey, &'m (ValueType, UserValue))>,
    chunk: usize,
) -> (usize, Option<MemKey>) {
    let mut got = 0;
    let mut last = None;
    for (k, v) in items.take(chunk) {
        dst.push_back(entry(k, v));
        got += 1;
        last = Some(k);
    }
    (got, last.cloned())
}

impl Iterator for MemtableRange<'_> {
    type Item = InternalValue;

    fn next(&mut self) -> Option<InternalValue> {
        if self.front.is_empty() {
            self.fetch(true);
        }
        self.front.pop_front().or_else(|| self.back.pop_back())
    }
}

impl DoubleEndedIterator for MemtableRange<'_> {
    fn next_back(&mut self) -> Option<InternalValue> {
        if self.back.is_empty() {
            self.fetch(false);
        }
        self.back.pop_front().or_else(|| self.front.pop_back())
    }
}

impl Memtable {
    fn read_items(&self) -> RwLockReadGuard<'_, Items> {
        self.items
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_items(&self) -> RwLockWriteGuard<'_, Items> {
        self.items
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Returns the memtable ID.
    pub fn id(&self) -> MemtableId {
        self.id
    }

    /// Returns `true` if the memtable was already flagged for rotation.
    pub fn is_flagged_for_rotation(&self) -> bool {
        self.requested_rotation
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Flags the memtable as requested for rotation.
    pub fn flag_rotated(&self) {
        self.requested_rotation
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    #[doc(hidden)]
    #[must_use]
    pub fn new(id: MemtableId) -> Self {
        Self {
            id,
            items: RwLock::new(BTreeMap::new()),
            approximate_size: AtomicU64::default(),
            highest_seqno: AtomicU64::default(),
            requested_rotation: AtomicBool::default(),
        }
    }

    /// Creates an iterator over all items.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = InternalValue> + '_ {
        self.range::<(Bound<InternalKey>, Bound<InternalKey>)>((Bound::Unbounded, Bound::Unbounded))
    }

    /// Creates an iterator over a range of items.
    pub(crate) fn range<'a, R: RangeBounds<InternalKey> + 'a>(
        &'a self,
        range: R,
    ) -> MemtableRange<'a> {
        MemtableRange {
            memtable: self,
            lo: mem_bound(range.start_bound()),
            hi: mem_bound(range.end_bound()),
            front: VecDeque::new(),
            back: VecDeque::new(),
            middle_done: false,
            chunk: FIRST_CHUNK,
        }
    }

    /// Returns the item by key if it exists.
    ///
    /// The item with the highest seqno will be returned, if `seqno` is None.
    #[doc(hidden)]
    pub fn get(&self, key: &[u8], seqno: SeqNo) -> Option<InternalValue> {
        if seqno == 0 {
            return None;
        }

        // InternalKeys are sorted by user_key, then by seqno descending: the lowest entry at or
        // above (key, seqno - 1) is the newest version of `key` below `seqno`, if it is `key`.
        let lower_bound = MemKey::new(InternalKey::new(key, seqno - 1, ValueType::Value));

        let items = self.read_items();
        items
            .range(lower_bound..)
            .next()
            .filter(|(k, _)| &*k.key.user_key == key)
            .map(|(k, v)| entry(k, v))
    }

    /// Gets approximate size of memtable in bytes.
    pub fn size(&self) -> u64 {
        self.approximate_size
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Counts the number of items in the memtable.
    pub fn len(&self) -> usize {
        self.read_items().len()
    }

    /// Returns `true` if the memtable is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.read_items().is_empty()
    }

    /// Inserts an item into the memtable
    #[doc(hidden)]
    pub fn insert(&self, item: InternalValue) -> (u64, u64) {
        #[expect(
            clippy::expect_used,
            reason = "keys are limited to 16-bit length + values are limited to 32-bit length"
        )]
        let item_size =
            (item.key.user_key.len() + item.value.len() + std::mem::size_of::<InternalValue>())
                .try_into()
                .expect("should fit into u64");

        let size_before = self
            .approximate_size
            .fetch_add(item_size, std::sync::atomic::Ordering::AcqRel);

        let value_type = item.key.value_type;
        let key = MemKey::new(InternalKey::new(
            item.key.user_key,
            item.key.seqno,
            value_type,
        ));
        self.write_items().insert(key, (value_type, item.value));

        self.highest_seqno
            .fetch_max(item.key.seqno, std::sync::atomic::Ordering::AcqRel);

        (item_size, size_before + item_size)
    }

    /// Returns the highest sequence number in the memtable.
    pub fn get_highest_seqno(&self) -> Option<SeqNo> {
        if self.is_empty() {
            None
        } else {
            Some(
                self.highest_seqno
                    .load(std::sync::atomic::Ordering::Acquire),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ValueType;
    use test_log::test;

    /// AiSQL patch: the map's order (8-byte head first) is the order of the `InternalKey`s,
    /// for keys that share prefixes, differ only in trailing zero bytes, or are shorter than
    /// the head; iterators from both ends, and meeting in the middle, see every entry once.
    #[test]
    fn memtable_order_matches_internal_keys() {
        let memtable = Memtable::new(0);
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let alphabet = [0u8, 1, 0x7F, 0xFF];
        let mut all = Vec::new();
        for seqno in 0..2_000u64 {
            let len = 1 + rand(12) as usize;
            let key: Vec<u8> = (0..len).map(|_| alphabet[rand(4) as usize]).collect();
            let value_type = if rand(4) == 0 {
                ValueType::Tombstone
            } else {
                ValueType::Value
            };
            let item = InternalValue::from_components(key, seqno.to_be_bytes(), seqno, value_type);
            memtable.insert(item.clone());
            all.push(item);
        }
        all.sort_by(|a, b| a.key.cmp(&b.key));
        let got: Vec<_> = memtable.iter().collect();
        assert_eq!(got, all);
        let back: Vec<_> = memtable.iter().rev().collect();
        assert!(back.iter().eq(all.iter().rev()));
        for _ in 0..200 {
            let mut it = memtable.iter();
            let mut front = Vec::new();
            let mut rear = Vec::new();
            loop {
                let next = if rand(2) == 0 {
                    it.next().map(|x| front.push(x))
                } else {
                    it.next_back().map(|x| rear.push(x))
                };
                if next.is_none() && it.next().is_none() && it.next_back().is_none() {
                    break;
                }
            }
            rear.reverse();
            front.extend(rear);
            assert_eq!(front, all);
        }
        for _ in 0..500 {
            let a = &all[rand(all.len() as u64) as usize].key;
            let b = &all[rand(all.len() as u64) as usize].key;
            let want: Vec<_> = all
                .iter()
                .filter(|x| &x.key >= a && &x.key < b)
                .cloned()
                .collect();
            let got: Vec<_> = memtable.range(a.clone()..b.clone()).collect();
            assert_eq!(got, want);
            if let Some(first) = want.first() {
                assert_eq!(
                    memtable
                        .get(&first.key.user_key, SeqNo::MAX)
                        .map(|x| x.key.seqno),
                    all.iter()
                        .find(|x| x.key.user_key == first.key.user_key)
                        .map(|x| x.key.seqno)
                );
            }
        }
    }

    /// AiSQL patch: keys around the length the heads cover (shorter, equal, longer; sharing
    /// every covered byte; differing only in trailing zeros) sort as `InternalKey`s do.
    #[test]
    fn memtable_order_matches_internal_keys_around_the_covered_length() {
        let memtable = Memtable::new(0);
        let mut seed = 0x0123_4567_89AB_CDEFu64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut all = Vec::new();
        for seqno in 0..3_000u64 {
            let len = COVERED - 3 + rand(7) as usize;
            let key: Vec<u8> = (0..len)
                .map(|i| {
                    if i + 2 < COVERED {
                        7
                    } else {
                        [0u8, 1][rand(2) as usize]
                    }
                })
                .collect();
            let item = InternalValue::from_components(key, *b"v", rand(50), ValueType::Value);
            memtable.insert(item.clone());
            all.retain(|x: &InternalValue| x.key != item.key);
            all.push(item);
        }
        all.sort_by(|a, b| a.key.cmp(&b.key));
        let got: Vec<_> = memtable.iter().collect();
        assert_eq!(got, all);
        let back: Vec<_> = memtable.iter().rev().collect();
        assert!(back.iter().eq(all.iter().rev()));
    }

    /// AiSQL patch: a batch that writes one key twice shares one seqno; the later write wins,
    /// value type included.
    #[test]
    fn memtable_same_key_and_seqno_takes_the_last_write() {
        let memtable = Memtable::new(0);
        memtable.insert(InternalValue::from_components(
            *b"k",
            *b"v",
            5,
            ValueType::Value,
        ));
        memtable.insert(InternalValue::from_components(
            *b"k",
            *b"",
            5,
            ValueType::Tombstone,
        ));
        let item = memtable.get(b"k", SeqNo::MAX).expect("present");
        assert_eq!(item.key.value_type, ValueType::Tombstone);
        assert_eq!(memtable.iter().count(), 1);
    }

    #[test]
    #[expect(clippy::unwrap_used)]
    fn memtable_mvcc_point_read() {
        let memtable = Memtable::new(0);

        memtable.insert(InternalValue::from_components(
            *b"hello-key-999991",
            *b"hello-value-999991",
            0,
            ValueType::Value,
        ));

        let item = memtable.get(b"hello-key-99999", SeqNo::MAX);
        assert_eq!(None, item);

        let item = memtable.get(b"hello-key-999991", SeqNo::MAX);
        assert_eq!(*b"hello-value-999991", &*item.unwrap().value);

        memtable.insert(InternalValue::from_components(
            *b"hello-key-999991",
            *b"hello-value-999991-2",
            1,
            ValueType::Value,
        ));

        let item = memtable.get(b"hello-key-99999", SeqNo::MAX);
        assert_eq!(None, item);

        let item = memtable.get(b"hello-key-999991", SeqNo::MAX);
        assert_eq!((*b"hello-value-999991-2"), &*item.unwrap().value);

        let item = memtable.get(b"hello-key-99999", 1);
        assert_eq!(None, item);

        let item = memtable.get(b"hello-key-999991", 1);
        assert_eq!((*b"hello-value-999991"), &*item.unwrap().value);

        let item = memtable.get(b"hello-key-99999", 2);
        assert_eq!(None, item);

        let item = memtable.get(b"hello-key-999991", 2);
        assert_eq!((*b"hello-value-999991-2"), &*item.unwrap().value);
    }

    #[test]
    fn memtable_get() {
        let memtable = Memtable::new(0);

        let value =
            InternalValue::from_components(b"abc".to_vec(), b"abc".to_vec(), 0, ValueType::Value);

        memtable.insert(value.clone());

        assert_eq!(Some(value), memtable.get(b"abc", SeqNo::MAX));
    }

    #[test]
    fn memtable_get_highest_seqno() {
        let memtable = Memtable::new(0);

        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            0,
            ValueType::Value,
        ));
        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            1,
            ValueType::Value,
        ));
        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            2,
            ValueType::Value,
        ));
        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            3,
            ValueType::Value,
        ));
        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            4,
            ValueType::Value,
        ));

        assert_eq!(
            Some(InternalValue::from_components(
                b"abc".to_vec(),
                b"abc".to_vec(),
                4,
                ValueType::Value,
            )),
            memtable.get(b"abc", SeqNo::MAX)
        );
    }

    #[test]
    fn memtable_get_prefix() {
        let memtable = Memtable::new(0);

        memtable.insert(InternalValue::from_components(
            b"abc0".to_vec(),
            b"abc".to_vec(),
            0,
            ValueType::Value,
        ));
        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            255,
            ValueType::Value,
        ));

        assert_eq!(
            Some(InternalValue::from_components(
                b"abc".to_vec(),
                b"abc".to_vec(),
                255,
                ValueType::Value,
            )),
            memtable.get(b"abc", SeqNo::MAX)
        );

        assert_eq!(
            Some(InternalValue::from_components(
                b"abc0".to_vec(),
                b"abc".to_vec(),
                0,
                ValueType::Value,
            )),
            memtable.get(b"abc0", SeqNo::MAX)
        );
    }

    #[test]
    fn memtable_get_old_version() {
        let memtable = Memtable::new(0);

        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            0,
            ValueType::Value,
        ));
        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            99,
            ValueType::Value,
        ));
        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            255,
            ValueType::Value,
        ));

        assert_eq!(
            Some(InternalValue::from_components(
                b"abc".to_vec(),
                b"abc".to_vec(),
                255,
                ValueType::Value,
            )),
            memtable.get(b"abc", SeqNo::MAX)
        );

        assert_eq!(
            Some(InternalValue::from_components(
                b"abc".to_vec(),
                b"abc".to_vec(),
                99,
                ValueType::Value,
            )),
            memtable.get(b"abc", 100)
        );

        assert_eq!(
            Some(InternalValue::from_components(
                b"abc".to_vec(),
                b"abc".to_vec(),
                0,
                ValueType::Value,
            )),
            memtable.get(b"abc", 50)
        );
    }
}
